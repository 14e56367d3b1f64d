"""The store interface: everything durable in Loopwise goes through these methods.

Each public method is the one front door of its operation: it checks its arguments once, then
calls a protected hook (``raise_alert`` -> ``_raise_alert``) that does only the backend's work
with checked values (httpx's ``Client.send`` over ``BaseTransport.handle_request``). Checks that
need the backend's state (not found, conflicts) stay in the hooks. Backends (SQLite and
PostgreSQL in ``store/sql/``, the control plane in ``store/remote/``) implement the hooks and the
abstract methods that need no check, and must pass the conformance suite in
``tests/store/conformance.py``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store.artifacts import ArtifactStore, clean_artifact_path
from loopwise.store.checks import (
    check_alias,
    check_dataset_suite,
    check_digest_argument,
    check_flavour,
    check_metric_entry,
    check_name,
    check_optional_digest,
    check_optional_name,
    check_spool_id,
    check_string_map,
    check_text,
)
from loopwise.store.entities import (
    ArtifactFile,
    AuditRecord,
    AuditVerification,
    DatasetSuite,
    DatasetVersion,
    Metric,
    ModelVersion,
    Project,
    RegisteredModel,
    Role,
    Run,
    RunStatus,
    Token,
)
from loopwise.store.served import ServedOperations

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


class Store(ServedOperations, ABC):
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
    def get_or_create_project(self, name: str) -> Project:
        check_name(name, "project")
        return self._get_or_create_project(name)

    @abstractmethod
    def _get_or_create_project(self, name: str) -> Project: ...

    @abstractmethod
    def get_project(self, name: str) -> Project: ...

    @abstractmethod
    def list_projects(self) -> list[Project]: ...

    # -- runs ---------------------------------------------------------------------------------
    def create_run(
        self,
        project: str,
        name: str,
        tags: Mapping[str, str] | None = None,
        environment: Mapping[str, Any] | None = None,
    ) -> Run:
        if not isinstance(name, str) or not 0 < len(name) <= 250:
            raise InvalidArgumentError(
                f"Expected a run name of 1-250 characters, got {name!r}.", parameter="name"
            )
        return self._create_run(project, name, check_string_map(tags or {}, "tag"), environment)

    @abstractmethod
    def _create_run(
        self, project: str, name: str, tags: dict[str, str], environment: Mapping[str, Any] | None
    ) -> Run: ...

    @abstractmethod
    def get_run(self, run_id: str) -> Run: ...

    # The SQL backend checks the status itself: through the remote backend, the server's request
    # schema refuses a bad one first, with its own message.
    @abstractmethod
    def end_run(self, run_id: str, status: RunStatus) -> Run: ...

    def set_tags(self, run_id: str, tags: Mapping[str, str]) -> None:
        self._set_tags(run_id, check_string_map(tags, "tag"))

    @abstractmethod
    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Params are write-once: logging a different value for a key is a ConflictError."""
        self._log_params(run_id, check_string_map(params, "param"))

    @abstractmethod
    def _log_params(self, run_id: str, params: dict[str, str]) -> None: ...

    def log_metrics(self, entries: Sequence[MetricEntry]) -> None:
        """Write metric values synchronously; durable when this returns."""
        self._log_metrics([check_metric_entry(e) for e in entries])

    @abstractmethod
    def _log_metrics(self, entries: Sequence[MetricEntry]) -> None: ...

    def log_metrics_async(self, entries: Sequence[MetricEntry]) -> None:
        """Accept metric values without waiting for the database.

        All are checked before any is accepted. They must be durable against a killed process
        once this returns (a local spool); they reach the metadata store in the background, or
        on the next open after a crash.
        """
        self._log_metrics_async([check_metric_entry(e) for e in entries])

    @abstractmethod
    def _log_metrics_async(self, entries: Sequence[MetricEntry]) -> None: ...

    def log_metric_async(self, entry: MetricEntry) -> None:
        """One value through :meth:`log_metrics_async`."""
        self.log_metrics_async([entry])

    # A metric spool (``store/spool.py``) drains through these three, so that a client replaying
    # its spool after a crash, here or across the network, writes each value exactly once.
    # A spool's progress belongs to the project of its records (none once they name several):
    # ``project`` limits the last two to that project's spools, as a project-scoped token is.
    def write_spooled_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int
    ) -> None:
        """Write a spool's batch and record, atomically, that it reached ``upto_seq``.

        A batch whose ``upto_seq`` the spool has already reached is ignored (a replay). The
        progress moves only with records: an empty batch cannot move it, and once recorded it
        moves by at most the number of entries (InvalidArgumentError otherwise).
        """
        checked = [check_metric_entry(e) for e in entries]
        self._write_spooled_metrics(checked, check_spool_id(spool_id), upto_seq)

    @abstractmethod
    def _write_spooled_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int
    ) -> None: ...

    def spool_progress(self, spool_id: str, project: str | None = None) -> int:
        """The highest sequence number of ``spool_id`` written so far (0 if none).

        With ``project``: NotFoundError if the spool belongs to another project (or several).
        """
        spool_id = check_spool_id(spool_id)
        if project is not None:
            check_name(project, "project")
        return self._spool_progress(spool_id, project)

    @abstractmethod
    def _spool_progress(self, spool_id: str, project: str | None) -> int: ...

    def forget_spool(self, spool_id: str, project: str | None = None) -> None:
        """Drop a spool's progress record once its file is gone (audited; none: no change).

        With ``project``: NotFoundError if the spool belongs to another project (or several).
        """
        spool_id = check_spool_id(spool_id)
        if project is not None:
            check_name(project, "project")
        self._forget_spool_progress(spool_id, project)

    @abstractmethod
    def _forget_spool_progress(self, spool_id: str, project: str | None) -> None: ...

    @abstractmethod
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    def search_runs(
        self,
        project: str,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[Run]:
        """Runs of a project matching e.g. ``metrics.auc > 0.8 and params.model = 'hgb'``."""
        # The SQL backend checks the arguments as it parses them; through the remote backend,
        # the server's request schema refuses a bad one first, with its own message.
        return self._search_runs(project, filter_string, order_by, max_results)

    @abstractmethod
    def _search_runs(
        self, project: str, filter_string: str, order_by: Sequence[str], max_results: int
    ) -> list[Run]: ...

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

    def record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        """Add files whose bytes are already in ``artifacts`` to the run's tree (by path)."""
        checked = []
        for f in files:
            path = clean_artifact_path(f.path)
            if not path:
                raise InvalidArgumentError(
                    "Expected an artifact path naming a file, got an empty path.",
                    parameter="path",
                )
            checked.append(ArtifactFile(path=path, digest=f.digest, size_bytes=f.size_bytes))
        self._record_artifacts(run_id, checked)

    @abstractmethod
    def _record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        """``files``: their paths cleaned (``clean_artifact_path``), none empty."""

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[ArtifactFile]:
        return self._list_artifacts(run_id, clean_artifact_path(prefix))

    @abstractmethod
    def _list_artifacts(self, run_id: str, prefix: str) -> list[ArtifactFile]: ...

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
        check_name(name, "dataset")
        fields = {
            "content_hash": content_hash,
            "artifact_digest": artifact_digest,
            "num_rows": num_rows,
            "schema": dict(schema),
            "split": check_optional_name(split, "split"),
            "description": check_text(description, "description"),
            "profile_digest": check_optional_digest(profile_digest, "profile_digest"),
        }
        return self._create_dataset_version(project, name, fields)

    @abstractmethod
    def _create_dataset_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> tuple[DatasetVersion, bool]:
        """``fields``: the keyword arguments of ``create_dataset_version``, checked."""

    @abstractmethod
    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        """A version by number, or the latest when ``version`` is None."""

    @abstractmethod
    def list_dataset_versions(
        self, project: str, name: str | None = None
    ) -> list[DatasetVersion]: ...

    def set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion:
        """Give a version logged before profiles existed its profile's digest.

        Versions are immutable: setting the digest it already has is a no-op, and a different
        one is a ConflictError.
        """
        digest = check_digest_argument(profile_digest, "profile_digest")
        return self._set_dataset_profile(project, name, version, digest)

    @abstractmethod
    def _set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion: ...

    def set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite:
        """Attach a validation suite (YAML text) to a dataset name, replacing any before.

        The name need not have versions yet: a suite may be attached before the first one.
        """
        check_name(name, "dataset")
        text, policy = check_dataset_suite(suite, on_failure)
        return self._set_dataset_suite(project, name, text, policy)

    @abstractmethod
    def _set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite: ...

    def get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None:
        """The suite attached to a dataset name, or None."""
        check_name(name, "dataset")
        return self._get_dataset_suite(project, name)

    @abstractmethod
    def _get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None: ...

    def delete_dataset_suite(self, project: str, name: str) -> None:
        """Detach a dataset's suite; NotFoundError if it has none."""
        check_name(name, "dataset")
        self._delete_dataset_suite(project, name)

    @abstractmethod
    def _delete_dataset_suite(self, project: str, name: str) -> None: ...

    def link_dataset(self, run_id: str, dataset_version_id: int, role: str = "input") -> None:
        check_name(role, "dataset role")
        self._link_dataset(run_id, dataset_version_id, role)

    @abstractmethod
    def _link_dataset(self, run_id: str, dataset_version_id: int, role: str) -> None: ...

    @abstractmethod
    def run_datasets(self, run_id: str) -> list[DatasetVersion]: ...

    @abstractmethod
    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        """Ids of the runs that used a dataset version."""

    # -- registry -----------------------------------------------------------------------------
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
        check_name(name, "model")
        fields = {
            "flavour": check_flavour(flavour),
            "artifact_digest": artifact_digest,
            "run_id": run_id,
            "signature": dict(signature) if signature is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "description": check_text(description, "description"),
        }
        return self._create_model_version(project, name, fields)

    @abstractmethod
    def _create_model_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> ModelVersion:
        """``fields``: the keyword arguments of ``create_model_version``, checked."""

    @abstractmethod
    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion: ...

    @abstractmethod
    def list_models(self, project: str) -> list[RegisteredModel]: ...

    @abstractmethod
    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]: ...

    def set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        """Point ``alias`` at ``version`` atomically; returns the version it pointed at before."""
        check_alias(alias)
        return self._set_alias(project, name, alias, version)

    @abstractmethod
    def _set_alias(self, project: str, name: str, alias: str, version: int) -> int | None: ...

    @abstractmethod
    def delete_alias(self, project: str, name: str, alias: str) -> int: ...

    @abstractmethod
    def resolve_alias(self, project: str, name: str, alias: str) -> int: ...

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
