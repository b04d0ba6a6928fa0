"""Tenants and their realms: files in tenants/, their rows in the database, and the in-memory registry."""
