"""`make bench`: throughput and latency of the v2 API against the database ceiling, on this machine.

Everything is set up here and torn down afterwards: a fresh folder under the system temp dir, an embedded
PostgreSQL cluster with production durability (fsync and synchronous commit on), two test tenants with inline JWKS
realms, the real server (`python -m app serve`) as a subprocess, 100,000 seeded tickets, then wrk against
PATCH .../update, GET .../ticket/{objectId} and /health/live, and pgbench running the update's exact SQL.
"""
