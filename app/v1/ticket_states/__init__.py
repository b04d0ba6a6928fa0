"""Seed 003: /api/v1/ticket_states, with integer ids, over TicketStateService."""
