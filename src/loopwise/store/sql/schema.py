"""SQLAlchemy table definitions of the metadata store.

Tables are only ever created by the Alembic migrations in ``loopwise/store/migrations``; a
test checks that these models and the migrations describe the same schema.
"""

from __future__ import annotations

from typing import Any, ClassVar, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class StoreMeta(Base):
    """Facts about the store itself, e.g. the oldest Loopwise that can read it."""

    __tablename__ = "loopwise_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class ProjectRow(Base):
    __tablename__ = "projects"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_ms: Mapped[int] = mapped_column(BigInteger)


class RunRow(Base):
    __tablename__ = "runs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(250))
    status: Mapped[str] = mapped_column(String(16))
    start_ms: Mapped[int] = mapped_column(BigInteger)
    end_ms: Mapped[int | None] = mapped_column(BigInteger)
    environment: Mapped[dict[str, Any]] = mapped_column(JSON)
    __table_args__ = (Index("ix_runs_project_start", "project_id", "start_ms"),)


class RunTagRow(Base):
    __tablename__ = "run_tags"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunParamRow(Base):
    __tablename__ = "run_params"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class MetricRow(Base):
    """Every logged value. SQLite turns NaN into NULL, hence the separate ``is_nan`` flag."""

    __tablename__ = "metrics"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    key: Mapped[str] = mapped_column(String(250))
    value: Mapped[float | None] = mapped_column(Float(precision=53))
    is_nan: Mapped[bool] = mapped_column(Boolean)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_metrics_run_key_step", "run_id", "key", "step"),)


class LatestMetricRow(Base):
    """The latest value per run and key, kept on write so that search never scans history."""

    __tablename__ = "latest_metrics"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float(precision=53))
    is_nan: Mapped[bool] = mapped_column(Boolean)
    step: Mapped[int] = mapped_column(BigInteger)
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (Index("ix_latest_metrics_key_value", "key", "value"),)


class MetricSpoolRow(Base):
    """How far each process's local spool (metrics or predictions) has reached the database."""

    __tablename__ = "metric_spools"
    spool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    committed_seq: Mapped[int] = mapped_column(BigInteger)
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    """The project of every batch written so far; NULL once batches named several (or for
    progress recorded before spools had projects): then only a token for all projects sees it."""


class RunArtifactRow(Base):
    __tablename__ = "run_artifacts"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    path: Mapped[str] = mapped_column(String(1000), primary_key=True)
    digest: Mapped[str] = mapped_column(String(71))
    size_bytes: Mapped[int] = mapped_column(BigInteger)


class DatasetVersionRow(Base):
    __tablename__ = "dataset_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    content_hash: Mapped[str] = mapped_column(String(71))
    artifact_digest: Mapped[str] = mapped_column(String(71))
    num_rows: Mapped[int] = mapped_column(BigInteger)
    schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    split: Mapped[str | None] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    profile_digest: Mapped[str | None] = mapped_column(String(71))
    __table_args__ = (
        UniqueConstraint("project_id", "name", "version", name="uq_dataset_versions_version"),
        UniqueConstraint("project_id", "name", "content_hash", name="uq_dataset_versions_content"),
    )


class DatasetSuiteRow(Base):
    """The validation suite attached to a dataset name (one per project and name)."""

    __tablename__ = "dataset_suites"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    suite: Mapped[str] = mapped_column(Text)
    on_failure: Mapped[str] = mapped_column(String(8))
    updated_ms: Mapped[int] = mapped_column(BigInteger)


class RunDatasetRow(Base):
    __tablename__ = "run_datasets"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    dataset_version_id: Mapped[int] = mapped_column(
        ForeignKey("dataset_versions.id"), primary_key=True
    )
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    __table_args__ = (Index("ix_run_datasets_dataset", "dataset_version_id"),)


class RegisteredModelRow(Base):
    __tablename__ = "registered_models"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_registered_models_name"),)


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    version: Mapped[int] = mapped_column(Integer)
    flavour: Mapped[str] = mapped_column(String(64))
    artifact_digest: Mapped[str] = mapped_column(String(71))
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"))
    signature: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    model_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)
    datasets: Mapped[list[Any]] = mapped_column(JSON)
    description: Mapped[str | None] = mapped_column(Text)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("model_id", "version", name="uq_model_versions_version"),)


class ModelAliasRow(Base):
    __tablename__ = "model_aliases"
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"), primary_key=True)
    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    version: Mapped[int] = mapped_column(Integer)


class TokenRow(Base):
    """An API token. Only a salted hash of its secret is kept."""

    __tablename__ = "tokens"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16))
    project_id: Mapped[int | None] = mapped_column(ForeignKey("projects.id"))
    salt: Mapped[str] = mapped_column(String(64))
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_ms: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str] = mapped_column(String(250))
    revoked_ms: Mapped[int | None] = mapped_column(BigInteger)


class PredictionSegmentRow(Base):
    """One Parquet file of the prediction log (its bytes are a blob): a deployment's hour."""

    __tablename__ = "prediction_segments"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    deployment: Mapped[str] = mapped_column(String(200))
    hour_ms: Mapped[int] = mapped_column(BigInteger)
    digest: Mapped[str] = mapped_column(String(71))
    num_rows: Mapped[int] = mapped_column(BigInteger)
    min_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    max_timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (
        Index("ix_prediction_segments_deployment_hour", "project_id", "deployment", "hour_ms"),
    )


class OutcomeRow(Base):
    """The ground truth of one prediction row (its request id), recorded when it arrives."""

    __tablename__ = "outcomes"
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    deployment: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    """Canonical JSON of a number, string or bool."""
    timestamp_ms: Mapped[int] = mapped_column(BigInteger)
    received_ms: Mapped[int] = mapped_column(BigInteger)


class AlertRow(Base):
    """An alert a monitor raised; at most one open alert per (project, fingerprint)."""

    __tablename__ = "alerts"
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    deployment: Mapped[str | None] = mapped_column(String(200))
    rule: Mapped[str] = mapped_column(String(200))
    severity: Mapped[str] = mapped_column(String(16))
    fingerprint: Mapped[str] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    window_start_ms: Mapped[int | None] = mapped_column(BigInteger)
    window_end_ms: Mapped[int | None] = mapped_column(BigInteger)
    first_seen_ms: Mapped[int] = mapped_column(BigInteger)
    last_seen_ms: Mapped[int] = mapped_column(BigInteger)
    occurrences: Mapped[int] = mapped_column(BigInteger)
    resolved_ms: Mapped[int | None] = mapped_column(BigInteger)
    __table_args__ = (
        # Dedup: raising an alert whose fingerprint is open updates it (ON CONFLICT on this).
        Index(
            "uq_alerts_open_fingerprint",
            "project_id",
            "fingerprint",
            unique=True,
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index("ix_alerts_project_last_seen", "project_id", "last_seen_ms"),
    )


class DeploymentRow(Base):
    """A named deployment: one model through a traffic plan, at its latest revision."""

    __tablename__ = "deployments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    project_id: Mapped[int] = mapped_column(ForeignKey("projects.id"))
    name: Mapped[str] = mapped_column(String(200))
    model_id: Mapped[int] = mapped_column(ForeignKey("registered_models.id"))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    """The current plan: ``{"shares": {"<version>": percent, …}, "shadow": [versions]}``."""
    revision: Mapped[int] = mapped_column(Integer)
    created_ms: Mapped[int] = mapped_column(BigInteger)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_deployments_name"),)


class DeploymentChangeRow(Base):
    """One revision of a deployment's plan: its history, never updated or deleted."""

    __tablename__ = "deployment_changes"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    plan: Mapped[dict[str, Any]] = mapped_column(JSON)
    reason: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    time_ms: Mapped[int] = mapped_column(BigInteger)
    restored_revision: Mapped[int | None] = mapped_column(Integer)


class AutopilotPolicyRow(Base):
    """One revision of a deployment's autopilot policy (YAML text), never updated or deleted."""

    __tablename__ = "autopilot_policies"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(250))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class AutopilotDecisionRow(Base):
    """One decision of a deployment's autopilot. The primary key is what lets exactly one of
    two controllers record a given step."""

    __tablename__ = "autopilot_decisions"
    deployment_id: Mapped[int] = mapped_column(ForeignKey("deployments.id"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    summary: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    """The controller's state after the decision, as compact JSON text."""
    evidence: Mapped[str] = mapped_column(Text)
    """JSON text, like ``state``."""
    at_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(250))
    created_ms: Mapped[int] = mapped_column(BigInteger)


class AuditRow(Base):
    """One record of the hash-chained audit log; names, not foreign keys, so it outlives them."""

    __tablename__ = "audit_log"
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    time_ms: Mapped[int] = mapped_column(BigInteger)
    actor: Mapped[str] = mapped_column(String(250))
    token_id: Mapped[str | None] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(64))
    project: Mapped[str | None] = mapped_column(String(200))
    target: Mapped[str] = mapped_column(String(1000))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON(none_as_null=True))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    __table_args__ = (Index("ix_audit_log_time_ms", "time_ms"),)


class AuditHeadRow(Base):
    """The audit log's one-row head: appends lock it, so records get consecutive numbers."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))


def _table(model: type[Base]) -> Table:
    return cast(Table, model.__table__)


# Core tables, for the store's bulk queries (the ORM classes above define them).
RUNS = _table(RunRow)
RUN_TAGS = _table(RunTagRow)
RUN_PARAMS = _table(RunParamRow)
METRICS = _table(MetricRow)
LATEST_METRICS = _table(LatestMetricRow)
METRIC_SPOOLS = _table(MetricSpoolRow)
RUN_ARTIFACTS = _table(RunArtifactRow)
DATASETS = _table(DatasetVersionRow)
DATASET_SUITES = _table(DatasetSuiteRow)
RUN_DATASETS = _table(RunDatasetRow)
MODELS = _table(RegisteredModelRow)
MODEL_VERSIONS = _table(ModelVersionRow)
MODEL_ALIASES = _table(ModelAliasRow)
PROJECTS = _table(ProjectRow)
TOKENS = _table(TokenRow)
PREDICTION_SEGMENTS = _table(PredictionSegmentRow)
OUTCOMES = _table(OutcomeRow)
ALERTS = _table(AlertRow)
DEPLOYMENTS = _table(DeploymentRow)
DEPLOYMENT_CHANGES = _table(DeploymentChangeRow)
AUTOPILOT_POLICIES = _table(AutopilotPolicyRow)
AUTOPILOT_DECISIONS = _table(AutopilotDecisionRow)
AUDIT_LOG = _table(AuditRow)
AUDIT_HEAD = _table(AuditHeadRow)
