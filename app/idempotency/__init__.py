"""Idempotency-Key on every write: a retried request gets the first one's answer instead of a second write."""
