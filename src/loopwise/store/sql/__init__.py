"""The SQL metadata store: SQLite for one machine, PostgreSQL for teams."""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.exc import DatabaseError

from loopwise.errors import StoreError
from loopwise.store.artifacts import ArtifactStore
from loopwise.store.base import Store
from loopwise.store.migrate import check_schema, current_revision, upgrade
from loopwise.store.predictions import recover_predictions
from loopwise.store.spool import MetricSpool, recover_spools
from loopwise.store.sql.access import SqlAccess
from loopwise.store.sql.alerts import SqlAlerts
from loopwise.store.sql.autopilot import SqlAutopilot
from loopwise.store.sql.core import make_engines
from loopwise.store.sql.dataset_quality import SqlDatasetQuality
from loopwise.store.sql.deployments import SqlDeployments
from loopwise.store.sql.outcomes import SqlOutcomes
from loopwise.store.sql.predictions import SqlPredictions

__all__ = ["SqlStore"]

log = logging.getLogger(__name__)


class SqlStore(
    SqlDatasetQuality,
    SqlAutopilot,
    SqlDeployments,
    SqlAccess,
    SqlPredictions,
    SqlOutcomes,
    SqlAlerts,
    Store,
):
    """Metadata in SQL, artifacts in an ArtifactStore, metrics spooled under ``spool_dir``."""

    spool_dir: Path

    def __init__(
        self, db_url: str, artifacts: ArtifactStore, spool_dir: Path, uri: str = ""
    ) -> None:
        super().__init__()
        self.db_url = db_url
        self.artifacts = artifacts
        self.spool_dir = spool_dir
        self.uri = uri or db_url

    def open(self, create: bool = True) -> SqlStore:
        """Connect, check the schema, and replay the spools that crashed processes left.

        An empty database gets its tables when ``create`` is true; an older or newer schema is
        refused with the command that fixes it.
        """
        self.write_engine, self.read_engine = make_engines(self.db_url)
        try:
            if create and current_revision(self.read_engine) is None:
                upgrade(self.write_engine)
            check_schema(self.read_engine, self.uri)
            self._spool = MetricSpool(self.spool_dir, self._write_metric_batch, self._forget_spool)
            self._replay_spools()
        except BaseException as exc:
            # A refused store must not keep its database files open.
            self.write_engine.dispose()
            self.read_engine.dispose()
            if isinstance(exc, DatabaseError):
                self._refuse_damaged(exc)
            raise
        return self

    def _refuse_damaged(self, exc: DatabaseError) -> None:
        """A SQLite file that is not a database (zeroed, truncated, overwritten) is a clear
        StoreError naming the file and the way out, not a driver traceback."""
        message = str(exc.orig)
        if self.write_engine.dialect.name != "sqlite" or not (
            "not a database" in message or "malformed" in message
        ):
            return
        path = self.write_engine.url.database or self.db_url
        raise StoreError(
            f"The metadata database {path} is damaged ({message}): SQLite cannot read it. "
            "Restore it from a backup; or, to start over with an empty store, move it aside "
            f"(with its -wal and -shm files), e.g. `mv {path} {path}.damaged`, and open the "
            "store again.",
            path=str(path),
        ) from exc

    def _replay_spools(self) -> None:
        """Replay what crashed processes spooled; whatever is wrong with a spool, the store
        opens (a warning says what was set aside, see ``store/spool.py``)."""
        try:
            # Through the checked front door: a replayed value is refused (and set aside)
            # where it would be refused from the API, e.g. for a run that does not exist.
            recover_spools(
                self.spool_dir, self.write_spooled_metrics, self._committed_seq, self._forget_spool
            )
            if (self.spool_dir / "predictions").is_dir():  # a prediction spool was used here
                recover_predictions(self)
        except Exception as exc:
            log.warning(
                "Could not replay the spools in %s (%s); they are kept.", self.spool_dir, exc
            )

    def close(self) -> None:
        self._spool.close()
        self.write_engine.dispose()
        self.read_engine.dispose()
