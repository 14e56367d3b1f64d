"""What the SQL store keeps about data quality: profile digests and per-dataset suites."""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Connection, select

from loopwise.errors import ConflictError, NotFoundError
from loopwise.store.entities import DatasetSuite, DatasetVersion
from loopwise.store.sql.catalog import SqlCatalog, _dataset
from loopwise.store.sql.core import now_ms
from loopwise.store.sql.runs import upsert
from loopwise.store.sql.schema import DATASET_SUITES, DATASETS

__all__ = ["SqlDatasetQuality"]


def _suite(row: Any, project: str) -> DatasetSuite:
    return DatasetSuite(
        project=project,
        name=row.name,
        suite=row.suite,
        on_failure=cast(Any, row.on_failure),
        updated_ms=row.updated_ms,
    )


class SqlDatasetQuality(SqlCatalog):
    # -- profiles -------------------------------------------------------------------------------
    def _set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion:
        current = self.get_dataset_version(project, name, version)  # NotFoundError, explained
        if current.profile_digest == profile_digest:
            return current
        if current.profile_digest is not None:
            raise _immutable(current, profile_digest)

        def write(conn: Connection) -> DatasetVersion:
            updated = conn.execute(
                DATASETS.update()
                .where(DATASETS.c.id == current.id, DATASETS.c.profile_digest.is_(None))
                .values(profile_digest=profile_digest)
            ).rowcount
            row = conn.execute(select(DATASETS).where(DATASETS.c.id == current.id)).one()
            if updated == 0:  # another process set it first
                if row.profile_digest != profile_digest:
                    raise _immutable(_dataset(row, project), profile_digest)
                return _dataset(row, project)
            self._audit(
                conn,
                "dataset.profile",
                project,
                f"dataset:{current.ref}",
                {"profile_digest": None},
                {"profile_digest": profile_digest},
            )
            return _dataset(row, project)

        return self._write(write)

    # -- validation suites ----------------------------------------------------------------------
    def _set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite:
        def write(conn: Connection) -> Any:
            project_id = self._project_id(conn, project)
            before = self._suite_row(conn, project_id, name)
            upsert(
                conn,
                DATASET_SUITES,
                [
                    {
                        "project_id": project_id,
                        "name": name,
                        "suite": suite,
                        "on_failure": on_failure,
                        "updated_ms": now_ms(),
                    }
                ],
                ["project_id", "name"],
                ["suite", "on_failure", "updated_ms"],
            )
            self._audit(
                conn,
                "dataset_suite.set",
                project,
                f"dataset:{name}",
                None if before is None else {"on_failure": before.on_failure},
                {"on_failure": on_failure, "suite_chars": len(suite)},
            )
            return self._suite_row(conn, project_id, name)

        return _suite(self._write(write), project)

    def _get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None:
        with self._read() as conn:
            row = self._suite_row(conn, self._project_id(conn, project), name)
        return None if row is None else _suite(row, project)

    def _delete_dataset_suite(self, project: str, name: str) -> None:
        def delete(conn: Connection) -> None:
            project_id = self._project_id(conn, project)
            before = self._suite_row(conn, project_id, name)
            if before is None:
                raise NotFoundError(
                    f"Dataset {name!r} of project {project!r} has no validation suite to "
                    "detach. Attach one with: loopwise data suite attach.",
                    kind="dataset_suite",
                    wanted=name,
                )
            conn.execute(
                DATASET_SUITES.delete().where(
                    DATASET_SUITES.c.project_id == project_id, DATASET_SUITES.c.name == name
                )
            )
            self._audit(
                conn,
                "dataset_suite.delete",
                project,
                f"dataset:{name}",
                {"on_failure": before.on_failure},
                None,
            )

        self._write(delete)

    def _suite_row(self, conn: Connection, project_id: int, name: str) -> Any:
        return conn.execute(
            select(DATASET_SUITES).where(
                DATASET_SUITES.c.project_id == project_id, DATASET_SUITES.c.name == name
            )
        ).first()


def _immutable(version: DatasetVersion, digest: str) -> ConflictError:
    return ConflictError(
        f"Dataset version {version.ref} already has profile {version.profile_digest}; it "
        f"cannot change to {digest}, because versions are immutable. Log the data as a new "
        "version instead.",
        dataset=version.ref,
        profile_digest=version.profile_digest,
    )
