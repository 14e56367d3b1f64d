"""The SQL metadata store: SQLite for one machine, PostgreSQL for teams."""

from __future__ import annotations

from pathlib import Path

from loopwise.store.artifacts import ArtifactStore
from loopwise.store.base import Store
from loopwise.store.migrate import check_schema, current_revision, upgrade
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
            recover_spools(
                self.spool_dir, self._write_metric_batch, self._committed_seq, self._forget_spool
            )
            if (self.spool_dir / "predictions").is_dir():  # a prediction spool was used here
                from loopwise.store.predictions import recover_predictions

                recover_predictions(self)
        except BaseException:
            # A refused store must not keep its database files open.
            self.write_engine.dispose()
            self.read_engine.dispose()
            raise
        return self

    def close(self) -> None:
        self._spool.close()
        self.write_engine.dispose()
        self.read_engine.dispose()
