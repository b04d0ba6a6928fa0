"""Multi-tenant v2 ticketing service."""
