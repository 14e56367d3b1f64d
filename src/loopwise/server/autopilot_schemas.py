"""The REST API's JSON shapes for the autopilot: a deployment's policy and its decisions.

They mirror ``loopwise.store.entities.AutopilotPolicy`` and ``AutopilotDecision``. Request
fields are loosely typed on purpose: the store checks them, so a bad decision is refused with
the same message, naming the field (and the key of ``state`` or ``evidence``), in every mode.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, StrictInt

from loopwise.server.schemas import Count, Model

__all__ = ["AutopilotDecisionOut", "AutopilotPolicyOut", "RecordDecision", "SetPolicy"]


class SetPolicy(Model):
    text: str = Field(description="The policy as YAML text; stored exactly as sent.")
    expected_revision: Count | None = Field(
        default=None,
        description="Change only if the policy is still at this revision (0: none yet); else 409.",
    )


class RecordDecision(Model):
    seq: StrictInt = Field(
        description="The last decision's seq plus 1 (1 for the first); else 409."
    )
    kind: str = Field(description="What was decided, e.g. retrain, canary, promote, rollback.")
    summary: str = Field(description="One sentence for people.")
    state: dict[str, Any] = Field(description="The controller's state after this decision.")
    evidence: dict[str, Any] = Field(description="Metric values, test results, thresholds.")
    at_ms: StrictInt = Field(description="The controller's clock for this decision.")


class AutopilotPolicyOut(BaseModel):
    project: str
    deployment: str
    revision: int
    text: str
    actor: str
    created_ms: int


class AutopilotDecisionOut(BaseModel):
    project: str
    deployment: str
    seq: int
    kind: str
    summary: str
    state: dict[str, Any]
    evidence: dict[str, Any]
    at_ms: int
    actor: str
    created_ms: int
