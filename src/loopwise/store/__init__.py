"""Storage for everything durable: metadata, artifacts and metric streams.

``open_store(uri)`` picks the backend from a URI (``LOOPWISE_URI``): a folder path (the
default ``./.loopwise``: SQLite plus a local artifact folder) or a ``postgresql+psycopg://``
URL with ``LOOPWISE_ARTIFACTS`` naming where artifacts go: a folder, or an ``s3://bucket/prefix``
URL (metric spools then live in ``LOOPWISE_SPOOL``, by default a per-user cache folder).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError, NotAStoreError
from loopwise.store.artifacts import ArtifactStore, LocalArtifactStore
from loopwise.store.base import MetricEntry, Store
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
from loopwise.store.spool import default_spool_dir

if TYPE_CHECKING:
    from loopwise.store.remote import RemoteStore
    from loopwise.store.sql import SqlStore

# The backends (SQLAlchemy, httpx, boto3) are imported on first use, in the functions below and
# in __getattr__, so that `import loopwise.store` for the entities stays cheap.

__all__ = [
    "DEFAULT_URI",
    "Alert",
    "ArtifactFile",
    "ArtifactStore",
    "AuditRecord",
    "AuditVerification",
    "AutopilotDecision",
    "AutopilotPolicy",
    "DatasetSuite",
    "DatasetVersion",
    "Deployment",
    "DeploymentChange",
    "Metric",
    "MetricEntry",
    "ModelVersion",
    "Outcome",
    "OutcomeReceipt",
    "PredictionSegment",
    "Project",
    "RegisteredModel",
    "RemoteStore",
    "Role",
    "Run",
    "RunStatus",
    "Store",
    "Token",
    "TrafficPlan",
    "open_store",
    "resolve_uri",
    "upgrade_store",
]


def __getattr__(name: str) -> Any:
    if name == "RemoteStore":
        from loopwise.store.remote import RemoteStore  # httpx: loaded on first use

        return RemoteStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | {"RemoteStore"})


DEFAULT_URI = ".loopwise"
DB_FILE = "loopwise.db"


def resolve_uri(uri: str | os.PathLike[str] | None = None) -> str:
    """The store URI to use: the argument, else ``LOOPWISE_URI``, else ``./.loopwise``."""
    if uri is None:
        uri = os.environ.get("LOOPWISE_URI") or DEFAULT_URI
    if not isinstance(uri, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"Expected a store URI (a folder path or a database URL), got {type(uri).__name__}.",
            parameter="uri",
        )
    return os.fspath(uri)


def _is_url(uri: str) -> bool:
    return "://" in uri


def _folder_store(folder: Path, create: bool) -> SqlStore:
    from loopwise.store.sql import SqlStore  # SQLAlchemy: loaded on first use

    folder = folder.expanduser()
    db = folder / DB_FILE
    if folder.exists() and not folder.is_dir():
        raise NotAStoreError(
            f"Expected a Loopwise store folder at {folder}, found a file. Point LOOPWISE_URI at a "
            "folder (it is created if missing).",
            path=str(folder),
        )
    # List first, then look for the database: a store that another process is creating at this
    # moment has its database file before any other, so a file seen here implies it by then.
    if folder.is_dir() and any(folder.iterdir()) and not db.exists():
        raise NotAStoreError(
            f"{folder} is not a Loopwise store: it has files but no {DB_FILE}. Use an empty or new "
            "folder, e.g. LOOPWISE_URI=./.loopwise.",
            path=str(folder),
        )
    if not db.exists() and not create:
        raise NotAStoreError(f"There is no Loopwise store at {folder}.", path=str(folder))
    folder.mkdir(parents=True, exist_ok=True)
    store = SqlStore(
        f"sqlite:///{db.resolve()}",
        LocalArtifactStore(folder / "artifacts"),
        folder / "spool",
        uri=str(folder),
    )
    return store


def _make_store(uri: str) -> SqlStore:
    from loopwise.store.sql import SqlStore  # SQLAlchemy: loaded on first use

    if uri.startswith(("postgresql", "sqlite")):
        artifacts = os.environ.get("LOOPWISE_ARTIFACTS")
        if not artifacts:
            raise InvalidArgumentError(
                f"A database URL ({uri.split('://')[0]}://…) needs LOOPWISE_ARTIFACTS set to the "
                "folder artifacts are stored in, or to an s3://bucket/prefix URL.",
                parameter="LOOPWISE_ARTIFACTS",
            )
        if artifacts.startswith("s3://"):
            from loopwise.store.s3 import S3ArtifactStore  # boto3: loaded on first use

            # The spool is per machine: it is shared by this machine's processes using this
            # database (so that a crashed one is replayed), never by other machines.
            spool = default_spool_dir(uri)
            return SqlStore(uri, S3ArtifactStore.from_url(artifacts), spool, uri=uri)
        return SqlStore(
            uri, LocalArtifactStore(Path(artifacts)), Path(artifacts) / "spool", uri=uri
        )
    if _is_url(uri):
        raise InvalidArgumentError(
            f"Unsupported store URI {uri!r}. Expected a folder path (e.g. ./.loopwise), a "
            "postgresql+psycopg:// URL, or a Loopwise server's http(s):// URL.",
            parameter="uri",
        )
    return _folder_store(Path(uri), create=True)


def open_store(uri: str | os.PathLike[str] | None = None) -> Store:
    """Open the store at ``uri`` (a new folder store is created) and check its schema.

    An ``http(s)://`` URI is a Loopwise server (remote mode); ``LOOPWISE_TOKEN`` holds the token.
    """
    resolved = resolve_uri(uri)
    if resolved.startswith(("http://", "https://")):
        from loopwise.store.remote import RemoteStore  # httpx: loaded on first use

        return RemoteStore(resolved, os.environ.get("LOOPWISE_TOKEN") or None).open()
    return _make_store(resolved).open()


def upgrade_store(uri: str | os.PathLike[str] | None = None) -> tuple[str | None, str]:
    """Migrate the store's schema to this Loopwise's; returns ``(before, after)`` revisions."""
    resolved = resolve_uri(uri)
    if resolved.startswith(("http://", "https://")):
        raise InvalidArgumentError(
            f"{resolved} is a Loopwise server: upgrade its database where it runs, with "
            "`loopwise --uri <its database URL or folder> db upgrade`.",
            parameter="uri",
        )
    from loopwise.store.migrate import upgrade  # SQLAlchemy and Alembic: loaded on first use
    from loopwise.store.sql.core import make_engines

    store = _make_store(resolved)
    write_engine, _ = make_engines(store.db_url)
    try:
        return upgrade(write_engine)
    finally:
        write_engine.dispose()
