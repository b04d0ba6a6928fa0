"""The persistence boundary (Database: pool + current transaction), the embedded cluster, notifications and
Piccolo's migrations. The only package that imports the database driver."""
