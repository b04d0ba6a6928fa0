"""Kept only for tests/bench, which imports these names from here: the helpers live in tests/support.py, and tests
import them from there."""

from tests.support import API, auth_headers, token

__all__ = ["API", "auth_headers", "token"]
