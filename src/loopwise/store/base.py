"""The store interface: everything durable in Loopwise goes through these methods.

Backends (embedded SQLite, PostgreSQL, and later the remote control plane) implement this
class and must pass the conformance suite in ``tests/store/conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store.artifacts import ArtifactStore, clean_artifact_path
from loopwise.store.entities import (
    Alert,
    ArtifactFile,
    AuditRecord,
    AuditVerification,
    AutopilotDecision,
    AutopilotPolicy,
    DatasetSuite,
    DatasetVersion,
    Deployment,
    DeploymentChange,
    Metric,
    ModelVersion,
    Outcome,
    OutcomeReceipt,
    PredictionSegment,
    Project,
    RegisteredModel,
    Role,
    Run,
    RunStatus,
    Token,
    TrafficPlan,
)

__all__ = ["MetricEntry", "Store"]


class MetricEntry(NamedTuple):
    run_id: str
    key: str
    value: float
    step: int
    timestamp_ms: int


def _refuse_links_out(folder: Path, paths: Iterable[Path]) -> None:
    """Refuse a folder holding a symbolic link that leads out of it: logging the folder must
    not upload what the link points at (a key, another user's file). Links within it are
    followed; a link the caller names itself is logged as the file it points at."""
    root = folder.resolve()
    for path in paths:
        if path.is_symlink() and not path.resolve().is_relative_to(root):
            shown = str(path.relative_to(folder))[:200]
            raise InvalidArgumentError(
                f"Expected the files of {str(folder)[:200]!r} to lie in it, but {shown!r} is a "
                "symbolic link leading out of it, which is not followed. Copy the file into "
                "the folder, log it with its own log_artifact call, or remove the link.",
                parameter="local_path",
                link=shown,
            )


class Store(ABC):
    """Metadata, artifacts and metric streams of one Loopwise installation."""

    uri: str
    artifacts: ArtifactStore
    spool_dir: Path | None
    """Where this machine's processes spool values in flight (metrics, predictions); None for
    the default (see ``loopwise.store.spool.default_spool_dir``)."""

    # -- lifecycle ----------------------------------------------------------------------------
    @abstractmethod
    def close(self) -> None:
        """Flush pending metric writes and release connections."""

    @abstractmethod
    def flush(self) -> None:
        """Block until every metric logged so far is written to the metadata store."""

    # -- projects -----------------------------------------------------------------------------
    @abstractmethod
    def get_or_create_project(self, name: str) -> Project: ...

    @abstractmethod
    def get_project(self, name: str) -> Project: ...

    @abstractmethod
    def list_projects(self) -> list[Project]: ...

    # -- runs ---------------------------------------------------------------------------------
    @abstractmethod
    def create_run(
        self,
        project: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run: ...

    @abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    @abstractmethod
    def end_run(self, run_id: str, status: RunStatus) -> Run: ...

    @abstractmethod
    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None: ...

    @abstractmethod
    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Params are write-once: logging a different value for a key is a ConflictError."""

    @abstractmethod
    def log_metrics(self, entries: Sequence[MetricEntry]) -> None:
        """Write metric values synchronously; durable when this returns."""

    @abstractmethod
    def log_metrics_async(self, entries: Sequence[MetricEntry]) -> None:
        """Accept metric values without waiting for the database.

        All are checked before any is accepted. They must be durable against a killed process
        once this returns (a local spool); they reach the metadata store in the background, or
        on the next open after a crash.
        """

    def log_metric_async(self, entry: MetricEntry) -> None:
        """One value through :meth:`log_metrics_async`."""
        self.log_metrics_async([entry])

    # A metric spool (``store/spool.py``) drains through these three, so that a client replaying
    # its spool after a crash, here or across the network, writes each value exactly once.
    # A spool's progress belongs to the project of its records (none once they name several):
    # ``project`` limits the last two to that project's spools, as a project-scoped token is.
    @abstractmethod
    def write_spooled_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int
    ) -> None:
        """Write a spool's batch and record, atomically, that it reached ``upto_seq``.

        A batch whose ``upto_seq`` the spool has already reached is ignored (a replay). The
        progress moves only with records: an empty batch cannot move it, and once recorded it
        moves by at most the number of entries (InvalidArgumentError otherwise).
        """

    @abstractmethod
    def spool_progress(self, spool_id: str, project: str | None = None) -> int:
        """The highest sequence number of ``spool_id`` written so far (0 if none).

        With ``project``: NotFoundError if the spool belongs to another project (or several).
        """

    @abstractmethod
    def forget_spool(self, spool_id: str, project: str | None = None) -> None:
        """Drop a spool's progress record once its file is gone (audited; none: no change).

        With ``project``: NotFoundError if the spool belongs to another project (or several).
        """

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    @abstractmethod
    def search_runs(
        self,
        project: str,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[Run]:
        """Runs of a project matching e.g. ``metrics.auc > 0.8 and params.model = 'hgb'``."""

    # -- run artifacts ------------------------------------------------------------------------
    def log_artifact(
        self, run_id: str, local_path: Path, artifact_path: str = ""
    ) -> list[ArtifactFile]:
        """Store a file or a folder (recursively) under ``artifact_path`` in the run's tree."""
        local_path = Path(local_path)
        if not local_path.exists():
            raise InvalidArgumentError(
                f"Expected an existing file or folder to log, got {str(local_path)!r}, which "
                "does not exist.",
                parameter="local_path",
            )
        prefix = clean_artifact_path(artifact_path)
        if local_path.is_dir():
            files = sorted(p for p in local_path.rglob("*") if p.is_file())
            _refuse_links_out(local_path, local_path.rglob("*"))
            pairs = [(p, p.relative_to(local_path).as_posix()) for p in files]
        else:
            pairs = [(local_path, local_path.name)]
        self.get_run(run_id)  # refuse an unknown run before uploading anything
        stored = []
        for path, rel in pairs:
            digest, size = self.artifacts.put_file(path)
            stored.append(
                ArtifactFile(
                    path=f"{prefix}/{rel}" if prefix else rel, digest=digest, size_bytes=size
                )
            )
        self.record_artifacts(run_id, stored)
        return stored

    @abstractmethod
    def record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        """Add files whose bytes are already in ``artifacts`` to the run's tree (by path)."""

    @abstractmethod
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactFile]: ...

    def download_artifacts(self, run_id: str, artifact_path: str, dest: Path) -> Path:
        """Copy a file or folder of the run's tree to ``dest``, verifying every digest."""
        files = self.list_artifacts(run_id, artifact_path)
        prefix = clean_artifact_path(artifact_path)
        if not files:
            existing = [a.path for a in self.list_artifacts(run_id)]
            raise NotFoundError(
                f"Run {run_id} has no artifact at {artifact_path!r}. Its artifacts: "
                f"{existing[:20]}.",
                kind="artifact",
                wanted=artifact_path,
            )
        dest = Path(dest)
        if len(files) == 1 and files[0].path == prefix:
            target = dest / Path(prefix).name
            return self.artifacts.get_file(files[0].digest, target, name=f"{run_id}/{prefix}")
        base = prefix.rsplit("/", 1)[-1] if prefix else ""
        root = dest / base if base else dest
        for f in files:
            rel = f.path[len(prefix) + 1 :] if prefix else f.path
            self.artifacts.get_file(f.digest, root / rel, name=f"{run_id}/{f.path}")
        return root

    # -- datasets -----------------------------------------------------------------------------
    @abstractmethod
    def create_dataset_version(
        self,
        project: str,
        name: str,
        *,
        content_hash: str,
        artifact_digest: str,
        num_rows: int,
        schema: Mapping[str, str],
        split: str | None = None,
        description: str | None = None,
        profile_digest: str | None = None,
    ) -> tuple[DatasetVersion, bool]:
        """Register a version; returns ``(version, created)``. Same content gives the same version.

        ``profile_digest`` names the blob of the version's profile, where it has one.
        """

    @abstractmethod
    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        """A version by number, or the latest when ``version`` is None."""

    @abstractmethod
    def list_dataset_versions(
        self, project: str, name: str | None = None
    ) -> list[DatasetVersion]: ...

    @abstractmethod
    def set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion:
        """Give a version logged before profiles existed its profile's digest.

        Versions are immutable: setting the digest it already has is a no-op, and a different
        one is a ConflictError.
        """

    @abstractmethod
    def set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite:
        """Attach a validation suite (YAML text) to a dataset name, replacing any before.

        The name need not have versions yet: a suite may be attached before the first one.
        """

    @abstractmethod
    def get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None:
        """The suite attached to a dataset name, or None."""

    @abstractmethod
    def delete_dataset_suite(self, project: str, name: str) -> None:
        """Detach a dataset's suite; NotFoundError if it has none."""

    @abstractmethod
    def link_dataset(self, run_id: str, dataset_version_id: int, role: str = "input") -> None: ...

    @abstractmethod
    def run_datasets(self, run_id: str) -> list[DatasetVersion]: ...

    @abstractmethod
    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        """Ids of the runs that used a dataset version."""

    # -- registry -----------------------------------------------------------------------------
    @abstractmethod
    def create_model_version(
        self,
        project: str,
        name: str,
        *,
        flavour: str,
        artifact_digest: str,
        run_id: str | None = None,
        signature: Mapping[str, Any] | None = None,
        metadata: Mapping[str, Any] | None = None,
        description: str | None = None,
    ) -> ModelVersion:
        """Next version number under ``name``; records the run's metrics and datasets."""

    @abstractmethod
    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion: ...

    @abstractmethod
    def list_models(self, project: str) -> list[RegisteredModel]: ...

    @abstractmethod
    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]: ...

    @abstractmethod
    def set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the version it pointed at before."""

    @abstractmethod
    def delete_alias(self, project: str, name: str, alias: str) -> int: ...

    @abstractmethod
    def resolve_alias(self, project: str, name: str, alias: str) -> int: ...

    # -- deployments: a model served through a traffic plan ------------------------------------
    # Plans are checked with ``validate.check_traffic_plan`` and against the registry: every
    # version they name must exist. Each change is a new revision in the deployment's history
    # and a record in the audit log. ``expected_revision`` makes a change conditional (optimistic
    # concurrency): when the deployment is no longer at that revision, it is a ConflictError
    # and nothing changes.
    @abstractmethod
    def create_deployment(
        self, project: str, name: str, model: str, plan: TrafficPlan, reason: str = ""
    ) -> Deployment:
        """A new deployment of ``model`` at revision 1; ConflictError if the name is taken."""

    @abstractmethod
    def get_deployment(self, project: str, name: str) -> Deployment: ...

    @abstractmethod
    def list_deployments(self, project: str) -> list[Deployment]:
        """The project's deployments by name."""

    @abstractmethod
    def set_deployment_plan(
        self,
        project: str,
        name: str,
        plan: TrafficPlan,
        reason: str,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Follow a new plan from the next revision on. A plan equal to the current one changes
        nothing (the same revision comes back)."""

    @abstractmethod
    def deployment_history(self, project: str, name: str) -> list[DeploymentChange]:
        """Every revision of the deployment, oldest first."""

    @abstractmethod
    def rollback_deployment(
        self,
        project: str,
        name: str,
        reason: str,
        to_revision: int | None = None,
        expected_revision: int | None = None,
    ) -> Deployment:
        """Restore an earlier revision's plan, recorded as a new revision.

        Without ``to_revision``: the plan in force before the current plan was first set, so
        that rolling back twice goes two plans back (never forward again to the plan just
        rolled back from); a ConflictError when the current plan is the first. Restoring the
        plan that is already current changes nothing.
        """

    # -- the autopilot: each deployment's policy and the decisions taken under it ----------------
    # Both belong to an existing deployment (NotFoundError otherwise) and every change is
    # audited. Decisions are numbered 1, 2, 3 … per deployment by the controller: recording
    # the next number is how it claims the step, so two controllers that decided from the same
    # state cannot both record (ConflictError for the second, even at the same moment).
    @abstractmethod
    def set_autopilot_policy(
        self, project: str, deployment: str, text: str, expected_revision: int | None = None
    ) -> AutopilotPolicy:
        """Store the deployment's next policy revision (the YAML text exactly as given).

        Text equal to the current revision's changes nothing (that revision comes back).
        ``expected_revision``: a ConflictError, and no change, unless the current revision
        (0 when there is none) is this one.
        """

    @abstractmethod
    def get_autopilot_policy(
        self, project: str, deployment: str, revision: int | None = None
    ) -> AutopilotPolicy:
        """The current policy (or revision ``revision``); NotFoundError when there is none."""

    @abstractmethod
    def record_autopilot_decision(
        self,
        project: str,
        deployment: str,
        seq: int,
        kind: str,
        summary: str,
        state: Mapping[str, Any],
        evidence: Mapping[str, Any],
        at_ms: int,
    ) -> AutopilotDecision:
        """Append decision ``seq``, which must be the last one's plus 1 (1 for the first):
        otherwise a ConflictError and nothing is stored."""

    @abstractmethod
    def autopilot_decisions(
        self, project: str, deployment: str, after_seq: int = 0, limit: int | None = None
    ) -> list[AutopilotDecision]:
        """Decisions with ``seq > after_seq``, oldest first, at most ``limit`` (the first)."""

    @abstractmethod
    def latest_autopilot_decision(self, project: str, deployment: str) -> AutopilotDecision | None:
        """The decision with the highest ``seq``, or None when there is none yet."""

    # -- prediction log ---------------------------------------------------------------------------
    # Predictions are Parquet blobs in ``artifacts``, indexed by these two methods; a
    # prediction spool (``store/predictions.py``) writes and reads them.
    @abstractmethod
    def add_prediction_segments(
        self,
        segments: Sequence[PredictionSegment],
        spool_id: str | None = None,
        upto_seq: int = 0,
    ) -> None:
        """Index segments whose Parquet bytes are already in ``artifacts``, all or none.

        With ``spool_id``, also record atomically that the spool reached ``upto_seq``; a batch
        whose ``upto_seq`` that spool has already reached is ignored (a replay), so each
        spooled prediction is indexed once.
        """

    @abstractmethod
    def list_prediction_segments(
        self,
        project: str,
        deployment: str | None = None,
        start_ms: int | None = None,
        end_ms: int | None = None,
    ) -> list[PredictionSegment]:
        """Segments that may hold rows with ``start_ms <= timestamp_ms < end_ms``, oldest first.

        ``deployment`` None means every deployment of the project.
        """

    # -- outcomes: ground truth that arrives after the prediction -------------------------------
    @abstractmethod
    def record_outcomes(
        self,
        project: str,
        deployment: str,
        outcomes: Sequence[Outcome | tuple[Any, ...]],
        overwrite: bool = False,
    ) -> OutcomeReceipt:
        """Record each prediction row's outcome once, all or none; safe to send again.

        ``outcomes``: ``Outcome`` or ``(request_id, value[, timestamp_ms])``. An id recorded
        before with the same value is a duplicate (nothing changes); with a different value a
        conflict, left as it was unless ``overwrite``. Ids need no logged prediction (yet).
        """

    @abstractmethod
    def get_outcomes(
        self, project: str, deployment: str, request_ids: Sequence[str]
    ) -> dict[str, Outcome]:
        """The recorded outcomes of these prediction rows, by request id (absent: none yet)."""

    # -- alerts ---------------------------------------------------------------------------------
    @abstractmethod
    def raise_alert(
        self,
        project: str,
        *,
        deployment: str | None,
        rule: str,
        severity: str,
        fingerprint: str,
        message: str,
        details: Mapping[str, Any] | None = None,
        window_start_ms: int | None = None,
        window_end_ms: int | None = None,
    ) -> tuple[Alert, bool]:
        """Open an alert, or, while one with the same fingerprint is open, update that one.

        Returns ``(alert, created)``. A repeat adds one to ``occurrences`` and takes the new
        severity, message, details, window and ``last_seen_ms``. Concurrent raises of one
        fingerprint make one alert.
        """

    @abstractmethod
    def list_alerts(
        self,
        project: str,
        *,
        deployment: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        limit: int = 100,
    ) -> list[Alert]:
        """Alerts, most recently seen first; ``status`` None means open and resolved."""

    @abstractmethod
    def get_alert(self, project: str, alert_id: int) -> Alert: ...

    @abstractmethod
    def resolve_alert(self, project: str, alert_id: int) -> Alert:
        """Close an alert (resolving a resolved one changes nothing); the next raise of its
        fingerprint opens a new one."""

    # -- access ---------------------------------------------------------------------------------
    @abstractmethod
    def blob_digests(self, project: str) -> set[str]:
        """Digests a project's runs, datasets (their data and profiles), model versions and
        prediction log refer to directly.

        (A model version's digest names its manifest; the files it lists are not included.)
        """

    # -- access: API tokens and the audit log ---------------------------------------------------
    # Every change above is recorded in the audit log in the same transaction as the change,
    # attributed to ``loopwise.store.actor.current_actor()``.
    @abstractmethod
    def create_token(
        self, role: Role | str, project: str | None = None, name: str = ""
    ) -> tuple[Token, str]:
        """A new token and its secret; the secret is shown once and stored only as a salted hash."""

    @abstractmethod
    def list_tokens(self, include_revoked: bool = False) -> list[Token]: ...

    @abstractmethod
    def revoke_token(self, token_id: str) -> Token: ...

    @abstractmethod
    def authenticate(self, secret: str) -> Token:
        """The live token a secret belongs to; AuthenticationError if unknown, malformed or revoked."""

    @abstractmethod
    def audit_log(
        self, since_ms: int | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        """Records with ``seq > after_seq`` (and ``time_ms >= since_ms``), oldest first."""

    @abstractmethod
    def verify_audit(self) -> AuditVerification:
        """Walk the whole hash chain and say whether, and where, it was tampered with."""
