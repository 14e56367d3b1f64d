"""Plain records that cross the store boundary.

ORM rows never leave the store: every backend returns these frozen dataclasses, and the SDK,
CLI and API build on them alone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Literal

__all__ = [
    "Alert",
    "ArtifactFile",
    "AuditRecord",
    "AuditVerification",
    "AutopilotDecision",
    "AutopilotPolicy",
    "DatasetSuite",
    "DatasetVersion",
    "Deployment",
    "DeploymentChange",
    "Metric",
    "ModelVersion",
    "Outcome",
    "OutcomeReceipt",
    "PredictionSegment",
    "Project",
    "RegisteredModel",
    "Role",
    "Run",
    "RunStatus",
    "Token",
    "TrafficPlan",
    "ms_to_datetime",
]


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Milliseconds since the epoch (how the store keeps time) to an aware UTC datetime."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"


@dataclass(frozen=True)
class Project:
    id: int
    name: str
    created_ms: int


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int
    timestamp_ms: int

    def __eq__(self, other: object) -> bool:
        # NaN is a valid metric value and must compare equal to itself in round-trip checks.
        if not isinstance(other, Metric):
            return NotImplemented
        same_value = self.value == other.value or (
            math.isnan(self.value) and math.isnan(other.value)
        )
        return (self.key, self.step, self.timestamp_ms) == (
            other.key,
            other.step,
            other.timestamp_ms,
        ) and same_value

    def __hash__(self) -> int:
        return hash((self.key, self.step, self.timestamp_ms))


@dataclass(frozen=True)
class Run:
    id: str
    project: str
    name: str
    status: RunStatus
    start_ms: int
    end_ms: int | None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    """The latest value of each metric (highest step, then latest timestamp)."""
    environment: dict[str, Any] | None = field(default_factory=dict)
    """What the run ran on (see ``capture_environment``). ``None`` in search results, which
    leave it out to stay fast: ``get_run`` has it."""

    @property
    def start_time(self) -> datetime:
        return datetime.fromtimestamp(self.start_ms / 1000, tz=UTC)

    @property
    def duration_s(self) -> float | None:
        return None if self.end_ms is None else (self.end_ms - self.start_ms) / 1000


@dataclass(frozen=True)
class ArtifactFile:
    path: str
    """Path inside the run's artifact tree, always with forward slashes."""
    digest: str
    """``sha256:<hex>`` of the content."""
    size_bytes: int


@dataclass(frozen=True)
class DatasetVersion:
    id: int
    project: str
    name: str
    version: int
    content_hash: str
    """Hash of the data itself (schema and values), independent of file encoding."""
    artifact_digest: str
    num_rows: int
    schema: dict[str, str]
    """Column name to Arrow type, in column order."""
    created_ms: int
    split: str | None = None
    description: str | None = None
    profile_digest: str | None = None
    """Digest of the version's profile (``loopwise.data.profiles``); None before it has one."""

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


@dataclass(frozen=True)
class DatasetSuite:
    """The validation suite attached to a dataset name: every new version is checked with it."""

    project: str
    name: str
    suite: str
    """The suite as YAML text (``loopwise.data.validation.Suite.to_yaml``)."""
    on_failure: Literal["warn", "fail"]
    """``"warn"`` (log the version and report) or ``"fail"`` (refuse the version)."""
    updated_ms: int


@dataclass(frozen=True)
class PredictionSegment:
    """One Parquet file of the prediction log: rows of one deployment within one hour (UTC).

    The bytes are a blob in the artifact store; the metadata store indexes them, so a reader
    finds the files of a time range without opening the others.
    """

    project: str
    deployment: str
    hour_ms: int
    """Start of the hour its rows fall in (milliseconds since the epoch, a multiple of 3600000)."""
    digest: str
    """``sha256:<hex>`` of the Parquet file."""
    num_rows: int
    min_timestamp_ms: int
    max_timestamp_ms: int
    size_bytes: int
    created_ms: int = 0
    """When the store registered it (0 before that)."""


OutcomeValue = bool | int | float | str
"""A label or target: a JSON scalar (integral floats are kept as ints, so 1.0 and 1 are one value)."""


@dataclass(frozen=True)
class Outcome:
    """The ground truth of one logged prediction row, which may arrive long after it."""

    request_id: str
    """The prediction row's id in the prediction log (``<request id>:<row>`` for a request of
    several rows)."""
    value: OutcomeValue
    timestamp_ms: int | None = None
    """When the outcome happened (ms since the epoch); None when recording means "now"."""
    received_ms: int = 0
    """When the store recorded (or last overwrote) it; 0 before that."""


@dataclass(frozen=True)
class OutcomeReceipt:
    """What recording a batch of outcomes did: it is safe to send a batch again."""

    new: int
    """Outcomes recorded for the first time."""
    duplicates: int
    """Outcomes already recorded with the same value: nothing changed (a retry, or a repeat)."""
    updated: int = 0
    """Outcomes that replaced a different value (only with ``overwrite=True``)."""
    conflicts: list[str] = field(default_factory=list)
    """Request ids recorded before with a different value, left unchanged (without
    ``overwrite``): pass ``overwrite=True`` to replace them."""

    def __add__(self, other: OutcomeReceipt) -> OutcomeReceipt:
        return OutcomeReceipt(
            self.new + other.new,
            self.duplicates + other.duplicates,
            self.updated + other.updated,
            [*self.conflicts, *other.conflicts],
        )


@dataclass(frozen=True)
class Alert:
    """A condition a monitor found, kept until resolved; repeats update it, not add to it."""

    id: int
    project: str
    deployment: str | None
    rule: str
    """The rule that fired, e.g. ``drift`` or ``accuracy_drop``."""
    severity: Literal["info", "warning", "critical"]
    fingerprint: str
    """The dedup key (e.g. rule, deployment and column): one open alert per fingerprint."""
    status: Literal["open", "resolved"]
    message: str
    details: dict[str, Any]
    window_start_ms: int | None
    window_end_ms: int | None
    """The latest window the rule fired in (``[start, end)``, ms since the epoch)."""
    first_seen_ms: int
    last_seen_ms: int
    occurrences: int
    """How many times it was raised while open (1 when new)."""
    resolved_ms: int | None = None


@dataclass(frozen=True)
class RegisteredModel:
    project: str
    name: str
    created_ms: int
    latest_version: int
    aliases: dict[str, int] = field(default_factory=dict)
    description: str | None = None


@dataclass(frozen=True)
class ModelVersion:
    id: int
    project: str
    name: str
    version: int
    flavour: str
    artifact_digest: str
    """Digest of the manifest that lists the model's files and their digests."""
    created_ms: int
    run_id: str | None = None
    signature: dict[str, Any] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    """Flavour details needed to load the model (e.g. the types its file was written with)."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The training run's metrics when the version was registered."""
    datasets: list[str] = field(default_factory=list)
    """Dataset versions the training run used, as ``name/version``."""
    aliases: list[str] = field(default_factory=list)
    description: str | None = None

    @property
    def ref(self) -> str:
        return f"{self.name}/{self.version}"


class Role(StrEnum):
    """What an API token may do: admin everything, editor read and write data, viewer read."""

    ADMIN = "admin"
    EDITOR = "editor"
    VIEWER = "viewer"


@dataclass(frozen=True)
class Token:
    """An API token. Its secret is never part of it: it is shown once, when created."""

    id: str
    """Public id such as ``tok_3f9a1c2b7d4e``; it appears in the secret but reveals nothing."""
    name: str
    role: Role
    project: str | None
    """The one project the token may touch, or None for all projects."""
    created_ms: int
    created_by: str
    """The actor that created it."""
    revoked_ms: int | None = None

    @property
    def revoked(self) -> bool:
        return self.revoked_ms is not None


@dataclass(frozen=True)
class AuditRecord:
    """One change in the hash-chained audit log."""

    seq: int
    """1, 2, 3 … with no gaps."""
    time_ms: int
    actor: str
    """Who: the OS user in embedded mode, ``token:<name>`` through the server."""
    token_id: str | None
    action: str
    """What, e.g. ``run.create``, ``alias.set`` or ``token.revoke``."""
    project: str | None
    target: str
    """What it was done to, e.g. ``run:<id>``, ``model:employment@production``."""
    before: dict[str, Any] | None
    """The values it changed, as they were; None for something created."""
    after: dict[str, Any] | None
    prev_hash: str
    hash: str
    """sha256 of ``prev_hash`` and the canonical JSON of the fields above it."""


@dataclass(frozen=True)
class AuditVerification:
    """The outcome of walking the audit log's hash chain."""

    ok: bool
    records: int
    """How many records were checked (on a break: how many were intact before it)."""
    head_hash: str | None
    """Hash of the last record: keep it elsewhere to anchor the chain. None for an empty log."""
    broken_seq: int | None
    """The first record where the chain breaks."""
    reason: str
    """In plain words, e.g. "record 7 was edited: its content no longer matches its hash"."""


@dataclass(frozen=True)
class TrafficPlan:
    """How a deployment splits its traffic between versions of its model.

    ``shares`` maps version numbers to whole percentages that sum to exactly 100; ``shadow``
    versions receive a copy of the traffic, and their answers are logged but never returned.
    The store checks a plan (``loopwise.store.checks.check_traffic_plan``) and keeps it with
    its versions in ascending order.
    """

    shares: dict[int, int]
    shadow: list[int] = field(default_factory=list)

    @property
    def versions(self) -> list[int]:
        """Every version the plan names: those with a share, then the shadow ones."""
        return [*self.shares, *self.shadow]

    @property
    def spec(self) -> str:
        """The plan as the CLI writes it, e.g. ``3=95,4=5`` (shadow versions not included)."""
        return ",".join(f"{version}={share}" for version, share in self.shares.items())

    def to_json(self) -> dict[str, Any]:
        """The plan as JSON carries it: version numbers become object keys (strings)."""
        return {
            "shares": {str(version): share for version, share in self.shares.items()},
            "shadow": list(self.shadow),
        }

    @classmethod
    def from_json(cls, data: Any) -> TrafficPlan:
        """The inverse of :meth:`to_json` (for plans that were checked when stored)."""
        shares = sorted((int(version), int(share)) for version, share in data["shares"].items())
        return cls(shares=dict(shares), shadow=sorted(int(v) for v in data.get("shadow") or []))


@dataclass(frozen=True)
class Deployment:
    """A named deployment (e.g. ``employment-prod``): one model served through a traffic plan."""

    project: str
    name: str
    model: str
    """The registered model whose versions the plan names."""
    plan: TrafficPlan
    revision: int
    """1 when created; each change of plan (a rollback too) adds one."""
    created_ms: int
    updated_ms: int
    """When the current plan was set."""


@dataclass(frozen=True)
class DeploymentChange:
    """One entry of a deployment's history: the plan one revision set, and why."""

    revision: int
    kind: Literal["create", "set_plan", "rollback"]
    plan: TrafficPlan
    reason: str
    actor: str
    """Who made the change (as the audit log names them)."""
    time_ms: int
    restored_revision: int | None = None
    """For a rollback: the revision whose plan it restored."""


@dataclass(frozen=True)
class AutopilotPolicy:
    """One revision of a deployment's autopilot policy, as the YAML text it was given in."""

    project: str
    deployment: str
    revision: int
    """1 for the deployment's first policy; each change adds one."""
    text: str
    """The YAML exactly as set (the autopilot parses and checks it before storing it)."""
    actor: str
    """Who set it (as the audit log names them)."""
    created_ms: int


@dataclass(frozen=True)
class AutopilotDecision:
    """One step of a deployment's autopilot: what it decided, from what evidence, and the
    state it left."""

    project: str
    deployment: str
    seq: int
    """1, 2, 3 … per deployment, with no gaps."""
    kind: str
    """What it decided, e.g. ``observe``, ``retrain``, ``gate``, ``canary``, ``promote``,
    ``rollback``, ``escalate`` or ``hold``."""
    summary: str
    """One sentence for people."""
    state: dict[str, Any]
    """The controller's state after this decision (a JSON object)."""
    evidence: dict[str, Any]
    """What it decided from: metric values, test results, thresholds (a JSON object)."""
    at_ms: int
    """The controller's clock for this decision (e.g. the end of the window it judged)."""
    actor: str
    created_ms: int
    """When the store recorded it."""
