# TEMPORARY re-exports (issue 17): delete once importers are moved
"""Moved to ``loopwise.store.remote.deployments``."""

from loopwise.store.remote.deployments import RemoteDeployments, _change, _deployment

__all__ = ["RemoteDeployments", "_change", "_deployment"]
