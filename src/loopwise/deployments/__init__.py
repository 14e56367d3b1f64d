"""Deployments: a model served through a traffic plan over its versions, with a history.

``lw.deployments.create("employment-prod", "employment", {3: 95, 4: 5})`` creates one;
``set_plan``, ``rollback`` and ``history`` change and explain it; ``assign`` says which version
answers a request key.
"""

from loopwise.deployments.api import create, get, history, list_deployments, rollback, set_plan
from loopwise.deployments.assign import assign
from loopwise.store import Deployment, DeploymentChange, TrafficPlan

__all__ = [
    "Deployment",
    "DeploymentChange",
    "TrafficPlan",
    "assign",
    "create",
    "get",
    "history",
    "list_deployments",
    "rollback",
    "set_plan",
]
