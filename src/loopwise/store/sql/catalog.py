"""Dataset versions, lineage and the model registry in the SQL store."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError

from loopwise.errors import NotFoundError, not_found
from loopwise.store.entities import DatasetVersion, ModelVersion, RegisteredModel
from loopwise.store.sql.core import now_ms
from loopwise.store.sql.runs import SqlRuns, upsert
from loopwise.store.sql.schema import (
    DATASETS,
    MODELS,
    PREDICTION_SEGMENTS,
    RUN_ARTIFACTS,
    RUN_DATASETS,
    RUNS,
    ProjectRow,
)
from loopwise.store.sql.schema import MODEL_ALIASES as ALIASES
from loopwise.store.sql.schema import MODEL_VERSIONS as VERSIONS

__all__ = ["SqlCatalog"]


def _dataset(row: Any, project: str) -> DatasetVersion:
    return DatasetVersion(
        id=row.id,
        project=project,
        name=row.name,
        version=row.version,
        content_hash=row.content_hash,
        artifact_digest=row.artifact_digest,
        num_rows=row.num_rows,
        schema=dict(row.schema),
        created_ms=row.created_ms,
        split=row.split,
        description=row.description,
        profile_digest=row.profile_digest,
    )


def _json_number(value: float) -> float | str:
    """Strict JSON (PostgreSQL's) has no NaN or infinity: those are stored by name."""
    return value if math.isfinite(value) else repr(value)  # 'nan', 'inf' or '-inf'


class SqlCatalog(SqlRuns):
    # -- datasets -------------------------------------------------------------------------------
    def _create_dataset_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> tuple[DatasetVersion, bool]:
        def existing(conn: Connection, project_id: int) -> Any:
            return conn.execute(
                select(DATASETS).where(
                    DATASETS.c.project_id == project_id,
                    DATASETS.c.name == name,
                    DATASETS.c.content_hash == fields["content_hash"],
                )
            ).first()

        def create(conn: Connection) -> tuple[Any, bool]:
            project_id = self._project_id(conn, project)
            row = existing(conn, project_id)
            if row is not None:
                return row, False
            latest = conn.execute(
                select(func.max(DATASETS.c.version)).where(
                    DATASETS.c.project_id == project_id, DATASETS.c.name == name
                )
            ).scalar()
            conn.execute(
                DATASETS.insert().values(
                    project_id=project_id,
                    name=name,
                    version=(latest or 0) + 1,
                    created_ms=now_ms(),
                    **fields,
                )
            )
            self._audit(
                conn,
                "dataset.create",
                project,
                f"dataset:{name}/{(latest or 0) + 1}",
                None,
                {
                    "content_hash": fields["content_hash"],
                    "artifact_digest": fields["artifact_digest"],
                    "rows": fields["num_rows"],
                },
            )
            return existing(conn, project_id), True

        try:
            row, created = self._write(create)
        except IntegrityError:  # the same data logged concurrently by another process
            row, created = self._write(create)
        return _dataset(row, project), created

    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            query = select(DATASETS).where(
                DATASETS.c.project_id == project_id, DATASETS.c.name == name
            )
            if version is None:
                query = query.order_by(DATASETS.c.version.desc()).limit(1)
            else:
                query = query.where(DATASETS.c.version == version)
            row = conn.execute(query).first()
            if row is not None:
                return _dataset(row, project)
            names = set(
                conn.execute(
                    select(DATASETS.c.name).where(DATASETS.c.project_id == project_id)
                ).scalars()
            )
            if name not in names:
                raise not_found(
                    "dataset", name, names, hint="Log one with lw.log_dataset(df, name=...)."
                )
            versions = conn.execute(
                select(DATASETS.c.version).where(
                    DATASETS.c.project_id == project_id, DATASETS.c.name == name
                )
            ).scalars()
            raise NotFoundError(
                f"Dataset {name!r} has no version {version}; it has versions {sorted(versions)}.",
                kind="dataset_version",
                wanted=f"{name}/{version}",
            )

    def list_dataset_versions(self, project: str, name: str | None = None) -> list[DatasetVersion]:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            query = select(DATASETS).where(DATASETS.c.project_id == project_id)
            if name is not None:
                query = query.where(DATASETS.c.name == name)
            rows = conn.execute(query.order_by(DATASETS.c.name, DATASETS.c.version)).all()
        return [_dataset(r, project) for r in rows]

    def _link_dataset(self, run_id: str, dataset_version_id: int, role: str) -> None:
        def write(conn: Connection) -> None:
            self._check_run(conn, run_id)
            # Lineage stays inside a project: a version of another project's dataset is as
            # unknown here as one that does not exist (ids are sequential, easy to guess).
            run_project = select(RUNS.c.project_id).where(RUNS.c.id == run_id).scalar_subquery()
            dataset = conn.execute(
                select(DATASETS.c.name, DATASETS.c.version).where(
                    DATASETS.c.id == dataset_version_id, DATASETS.c.project_id == run_project
                )
            ).first()
            if dataset is None:
                raise NotFoundError(
                    f"No dataset version with id {dataset_version_id!r} in the project of run "
                    f"{run_id!r}. Log the data in that project with lw.log_dataset, and link "
                    "the version it returns.",
                    kind="dataset_version",
                    wanted=str(dataset_version_id)[:40],
                )
            link = {"run_id": run_id, "dataset_version_id": dataset_version_id, "role": role}
            linked = conn.execute(select(RUN_DATASETS.c.run_id).filter_by(**link)).first()
            if linked is not None:
                return
            upsert(
                conn,
                RUN_DATASETS,
                [link],
                ["run_id", "dataset_version_id", "role"],
                ["role"],
            )
            self._audit(
                conn,
                "dataset.link",
                self._project_of_run(conn, run_id),
                f"run:{run_id}",
                None,
                {"dataset": f"{dataset.name}/{dataset.version}", "role": role},
            )

        self._write(write)

    def run_datasets(self, run_id: str) -> list[DatasetVersion]:
        with self._read() as conn:
            self._check_run(conn, run_id)
            used = select(RUN_DATASETS.c.dataset_version_id).where(RUN_DATASETS.c.run_id == run_id)
            rows = conn.execute(
                select(DATASETS, ProjectRow.name.label("project"))
                .join(ProjectRow, ProjectRow.id == DATASETS.c.project_id)
                .where(DATASETS.c.id.in_(used))
                .order_by(DATASETS.c.name, DATASETS.c.version)
            ).all()
        return [_dataset(r, r.project) for r in rows]

    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        with self._read() as conn:
            return list(
                conn.execute(
                    select(RUN_DATASETS.c.run_id)
                    .where(RUN_DATASETS.c.dataset_version_id == dataset_version_id)
                    .distinct()
                    .order_by(RUN_DATASETS.c.run_id)
                ).scalars()
            )

    # -- registry -------------------------------------------------------------------------------
    def _model_id(self, conn: Connection, project: str, name: str) -> int:
        project_id = self._project_id(conn, project)
        model_id = conn.execute(
            select(MODELS.c.id).where(MODELS.c.project_id == project_id, MODELS.c.name == name)
        ).scalar()
        if model_id is None:
            names = conn.execute(
                select(MODELS.c.name).where(MODELS.c.project_id == project_id)
            ).scalars()
            raise not_found(
                "model", name, names, hint="Register one with run.log_model(model, name=...)."
            )
        return int(model_id)

    def _aliases(self, conn: Connection, model_id: int) -> dict[str, int]:
        rows = conn.execute(
            select(ALIASES.c.alias, ALIASES.c.version).where(ALIASES.c.model_id == model_id)
        )
        return {alias: version for alias, version in rows.all()}

    def _version(self, row: Any, project: str, name: str, aliases: dict[str, int]) -> ModelVersion:
        return ModelVersion(
            id=row.id,
            project=project,
            name=name,
            version=row.version,
            flavour=row.flavour,
            artifact_digest=row.artifact_digest,
            created_ms=row.created_ms,
            run_id=row.run_id,
            signature=row.signature,
            metadata=dict(row.metadata),
            metrics={k: float(v) for k, v in row.metrics.items()},
            datasets=list(row.datasets),
            aliases=sorted(a for a, v in aliases.items() if v == row.version),
            description=row.description,
        )

    def _create_model_version(
        self, project: str, name: str, fields: Mapping[str, Any]
    ) -> ModelVersion:
        run_id = fields["run_id"]
        metrics: dict[str, float] = {}
        datasets: list[str] = []
        if run_id is not None:
            self.flush()  # the version's metrics snapshot must include what the run just logged
            run = self.get_run(run_id)
            if run.project != project:
                # The version would copy the run's metrics and dataset names into this project.
                raise NotFoundError(
                    f"No run with id {run_id!r} in project {project!r}. A model version links "
                    "to a run of its own project: pass the id of the run that trained it there.",
                    kind="run",
                    wanted=str(run_id)[:80],
                )
            metrics = dict(run.metrics)
            datasets = [d.ref for d in self.run_datasets(run_id) if d.project == project]

        def create(conn: Connection) -> int:
            project_id = self._project_id(conn, project)
            model_id = conn.execute(
                select(MODELS.c.id).where(MODELS.c.project_id == project_id, MODELS.c.name == name)
            ).scalar()
            if model_id is None:
                model_id = conn.execute(
                    MODELS.insert().values(
                        project_id=project_id, name=name, created_ms=now_ms(), description=None
                    )
                ).inserted_primary_key[0]  # type: ignore[index]
            latest = conn.execute(
                select(func.max(VERSIONS.c.version)).where(VERSIONS.c.model_id == model_id)
            ).scalar()
            version = (latest or 0) + 1
            conn.execute(
                VERSIONS.insert().values(
                    model_id=model_id,
                    version=version,
                    flavour=fields["flavour"],
                    artifact_digest=fields["artifact_digest"],
                    run_id=run_id,
                    signature=fields["signature"],
                    metadata=fields["metadata"] or {},
                    metrics={k: _json_number(v) for k, v in metrics.items()},
                    datasets=datasets,
                    description=fields["description"],
                    created_ms=now_ms(),
                )
            )
            self._audit(
                conn,
                "model_version.create",
                project,
                f"model:{name}/{version}",
                None,
                {key: fields[key] for key in ("flavour", "artifact_digest", "run_id")},
            )
            return version

        try:
            version = self._write(create)
        except IntegrityError:  # a concurrent registration took the number: take the next one
            version = self._write(create)
        return self.get_model_version(project, name, version)

    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion:
        with self._read() as conn:
            model_id = self._model_id(conn, project, name)
            row = conn.execute(
                select(VERSIONS).where(
                    VERSIONS.c.model_id == model_id, VERSIONS.c.version == version
                )
            ).first()
            if row is None:
                versions = sorted(
                    conn.execute(
                        select(VERSIONS.c.version).where(VERSIONS.c.model_id == model_id)
                    ).scalars()
                )
                raise NotFoundError(
                    f"Model {name!r} has no version {version}; it has versions {versions}.",
                    kind="model_version",
                    wanted=f"{name}/{version}",
                    existing=versions,
                )
            return self._version(row, project, name, self._aliases(conn, model_id))

    def list_models(self, project: str) -> list[RegisteredModel]:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            rows = conn.execute(
                select(MODELS, func.max(VERSIONS.c.version).label("latest"))
                .join(VERSIONS, VERSIONS.c.model_id == MODELS.c.id)
                .where(MODELS.c.project_id == project_id)
                .group_by(MODELS.c.id)
                .order_by(MODELS.c.name)
            ).all()
            return [
                RegisteredModel(
                    project=project,
                    name=r.name,
                    created_ms=r.created_ms,
                    latest_version=r.latest,
                    aliases=self._aliases(conn, r.id),
                    description=r.description,
                )
                for r in rows
            ]

    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]:
        with self._read() as conn:
            model_id = self._model_id(conn, project, name)
            aliases = self._aliases(conn, model_id)
            rows = conn.execute(
                select(VERSIONS).where(VERSIONS.c.model_id == model_id).order_by(VERSIONS.c.version)
            ).all()
            return [self._version(r, project, name, aliases) for r in rows]

    def _set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        def move(conn: Connection) -> int | None:
            model_id = self._model_id(conn, project, name)
            exists_ = conn.execute(
                select(VERSIONS.c.id).where(
                    VERSIONS.c.model_id == model_id, VERSIONS.c.version == version
                )
            ).first()
            if exists_ is None:
                versions = sorted(
                    conn.execute(
                        select(VERSIONS.c.version).where(VERSIONS.c.model_id == model_id)
                    ).scalars()
                )
                raise NotFoundError(
                    f"Cannot point alias {alias!r} at version {version} of model {name!r}: it has versions {versions}.",
                    kind="model_version",
                    wanted=f"{name}/{version}",
                )
            before = self._aliases(conn, model_id).get(alias)
            upsert(
                conn,
                ALIASES,
                [{"model_id": model_id, "alias": alias, "version": version}],
                ["model_id", "alias"],
                ["version"],
            )
            self._audit(
                conn,
                "alias.set",
                project,
                f"model:{name}@{alias}",
                None if before is None else {"version": before},
                {"version": version},
            )
            return before

        return self._write(move)

    def delete_alias(self, project: str, name: str, alias: str) -> int:
        def delete(conn: Connection) -> int:
            model_id = self._model_id(conn, project, name)
            aliases = self._aliases(conn, model_id)
            if alias not in aliases:
                raise not_found(f"alias of model {name!r}", alias, aliases)
            conn.execute(
                ALIASES.delete().where(ALIASES.c.model_id == model_id, ALIASES.c.alias == alias)
            )
            self._audit(
                conn,
                "alias.delete",
                project,
                f"model:{name}@{alias}",
                {"version": aliases[alias]},
                None,
            )
            return aliases[alias]

        return self._write(delete)

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        with self._read() as conn:
            model_id = self._model_id(conn, project, name)
            aliases = self._aliases(conn, model_id)
        if alias not in aliases:
            raise not_found(
                f"alias of model {name!r}",
                alias,
                aliases,
                hint=f"Set one with: loopwise models alias {name} {alias} VERSION",
            )
        return aliases[alias]

    # -- access ---------------------------------------------------------------------------------
    def blob_digests(self, project: str) -> set[str]:
        with self._read() as conn:
            project_id = self._project_id(conn, project)
            run_files = (
                select(RUN_ARTIFACTS.c.digest)
                .join(RUNS, RUNS.c.id == RUN_ARTIFACTS.c.run_id)
                .where(RUNS.c.project_id == project_id)
            )
            datasets = select(DATASETS.c.artifact_digest).where(DATASETS.c.project_id == project_id)
            profiles = select(DATASETS.c.profile_digest).where(
                DATASETS.c.project_id == project_id, DATASETS.c.profile_digest.is_not(None)
            )
            models = (
                select(VERSIONS.c.artifact_digest)
                .join(MODELS, MODELS.c.id == VERSIONS.c.model_id)
                .where(MODELS.c.project_id == project_id)
            )
            predictions = select(PREDICTION_SEGMENTS.c.digest).where(
                PREDICTION_SEGMENTS.c.project_id == project_id
            )
            queries = (run_files, datasets, profiles, models, predictions)
            return {row[0] for query in queries for row in conn.execute(query)}
