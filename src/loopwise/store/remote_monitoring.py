# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.store.remote.outcomes`` and ``loopwise.store.remote.alerts``."""

from loopwise.store.remote.alerts import RemoteAlerts
from loopwise.store.remote.outcomes import MAX_OUTCOMES_PER_CALL, RemoteOutcomes

__all__ = ["MAX_OUTCOMES_PER_CALL", "RemoteAlerts", "RemoteOutcomes"]
