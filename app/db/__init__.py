"""Database access: the embedded cluster, the connection pool, Piccolo tables and migrations."""
