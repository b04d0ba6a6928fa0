"""Rate limits: requests a minute per client and writes a minute per ticket, counted in Redis (see limiter.py)."""
