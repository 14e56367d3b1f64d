"""What access control answers: the one refusal of every bad API token."""

from __future__ import annotations

__all__ = ["INVALID_TOKEN"]

INVALID_TOKEN = (
    "The API token is not valid: it is unknown, malformed or revoked. Check that the whole "
    "secret (lw_…) was copied, or ask an admin for a new one: loopwise token create."
)
"""The one answer to every bad secret, so that none tells more than another."""
