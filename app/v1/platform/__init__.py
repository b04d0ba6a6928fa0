"""Seed 004's API (the Ticketing Platform API) at /api/v1: tickets, comments, users and sign-in."""
