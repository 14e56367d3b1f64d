# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.store.remote.autopilot``."""

from loopwise.store.remote.autopilot import MAX_DECISIONS_PER_CALL, RemoteAutopilot

__all__ = ["MAX_DECISIONS_PER_CALL", "RemoteAutopilot"]
