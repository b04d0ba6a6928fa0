"""The seeds' own v1 APIs at /api/v1: a thin translation onto the services the v2 API uses, with no rules of its own.

One module (or package) per seed resource; errors.py renders each seed's error envelope; tenant_mapping.py reads
the tenant file's [v1] section.
"""
