"""Ticket states per tenant (seed 003): the API, the rules, seeding."""
