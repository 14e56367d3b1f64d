"""The REST API's JSON shapes for deployments and their traffic plans.

They mirror ``loopwise.store.entities.Deployment``, ``DeploymentChange`` and ``TrafficPlan``. A
plan's versions are object keys, so they travel as strings (``{"shares": {"3": 95, "4": 5}}``);
the store checks the plan whole, with the same messages in every mode.
"""

from __future__ import annotations

from typing import Literal, cast

from pydantic import BaseModel, Field

from loopwise.server.schemas import Id, Int64, Model, Text
from loopwise.store.entities import TrafficPlan

__all__ = [
    "CreateDeployment",
    "DeploymentChangeOut",
    "DeploymentOut",
    "Rollback",
    "SetPlan",
    "TrafficPlanIn",
    "TrafficPlanOut",
]


class TrafficPlanIn(Model):
    shares: dict[Text, Int64] = Field(
        max_length=100,
        description="Version number (as a string key) to a whole percentage; the shares sum "
        "to exactly 100.",
        examples=[{"3": 95, "4": 5}],
    )
    shadow: list[Int64] = Field(
        default_factory=list,
        max_length=100,
        description="Versions that receive a copy of the traffic; their answers are logged, "
        "never returned.",
    )

    def to_plan(self) -> TrafficPlan:
        # Keys are still JSON strings here: the store's check reads their digits and refuses
        # anything else with a message that names the field.
        return TrafficPlan(shares=cast("dict[int, int]", self.shares), shadow=list(self.shadow))


class CreateDeployment(Model):
    name: Text
    model: Text = Field(description="The registered model whose versions the plan names.")
    plan: TrafficPlanIn
    reason: Text = ""


class SetPlan(Model):
    plan: TrafficPlanIn
    reason: Text = Field(description="Why the plan changes; kept in the history.")
    expected_revision: Id | None = Field(
        default=None,
        description="Change only if the deployment is still at this revision (else 409).",
    )


class Rollback(Model):
    reason: Text
    to_revision: Id | None = Field(
        default=None,
        description="The revision whose plan to restore; default: the plan in force before "
        "the current one was first set.",
    )
    expected_revision: Id | None = None


class TrafficPlanOut(BaseModel):
    shares: dict[int, int]
    shadow: list[int]


class DeploymentOut(BaseModel):
    project: str
    name: str
    model: str
    plan: TrafficPlanOut
    revision: int
    created_ms: int
    updated_ms: int


class DeploymentChangeOut(BaseModel):
    revision: int
    kind: Literal["create", "set_plan", "rollback"]
    plan: TrafficPlanOut
    reason: str
    actor: str
    time_ms: int
    restored_revision: int | None
