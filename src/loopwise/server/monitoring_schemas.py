"""The REST API's JSON shapes for monitoring: outcomes (delayed labels) and alerts.

They mirror ``loopwise.store.entities.Outcome``, ``OutcomeReceipt`` and ``Alert``. Bodies are
bounded (``MAX_OUTCOMES_PER_CALL``); the remote client splits larger batches.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, StrictBool, StrictFloat, StrictInt

from loopwise.server.schemas import Count, JsonObject, Model, Text

__all__ = [
    "MAX_OUTCOMES_PER_CALL",
    "AlertOut",
    "AlertRaised",
    "OutcomeIn",
    "OutcomeOut",
    "OutcomeQuery",
    "OutcomeReceiptOut",
    "RaiseAlert",
    "RecordOutcomes",
]

MAX_OUTCOMES_PER_CALL = 10_000
"""Outcomes (or ids to look up) one request may carry."""

OutcomeValueJson = StrictBool | StrictInt | StrictFloat | Text


class OutcomeIn(Model):
    request_id: Text = Field(description="The prediction row's id in the prediction log.")
    value: OutcomeValueJson = Field(description="The label or target: a number, string or bool.")
    timestamp_ms: Count | None = Field(
        default=None, description="When the outcome happened; omitted: when it is received."
    )


class RecordOutcomes(Model):
    outcomes: list[OutcomeIn] = Field(max_length=MAX_OUTCOMES_PER_CALL)
    overwrite: bool = Field(
        default=False,
        description="Replace outcomes recorded before with a different value (else they are "
        "reported as conflicts and left unchanged).",
    )


class OutcomeQuery(Model):
    request_ids: list[Text] = Field(max_length=MAX_OUTCOMES_PER_CALL)


class OutcomeOut(BaseModel):
    request_id: str
    value: bool | int | float | str
    timestamp_ms: int
    received_ms: int


class OutcomeReceiptOut(BaseModel):
    new: int
    duplicates: int
    updated: int
    conflicts: list[str]


class RaiseAlert(Model):
    deployment: Text | None = None
    rule: Text
    severity: Literal["info", "warning", "critical"]
    fingerprint: Text = Field(description="The dedup key: one open alert per fingerprint.")
    message: Text
    details: JsonObject = Field(default_factory=dict)
    window_start_ms: Count | None = None
    window_end_ms: Count | None = None


class AlertOut(BaseModel):
    id: int
    project: str
    deployment: str | None
    rule: str
    severity: str
    fingerprint: str
    status: str
    message: str
    details: dict[str, Any]
    window_start_ms: int | None
    window_end_ms: int | None
    first_seen_ms: int
    last_seen_ms: int
    occurrences: int
    resolved_ms: int | None


class AlertRaised(BaseModel):
    alert: AlertOut
    created: bool
