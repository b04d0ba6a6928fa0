"""Webhooks: tenant admins' subscriptions, the outbox dispatcher that turns committed ticket events into deliveries,
and the workers that sign and send them (Standard Webhooks), in order per (subscription, ticket)."""
