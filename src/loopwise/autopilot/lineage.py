"""Which data a model version was trained on, and a candidate that names the data the autopilot
trained it on even when its pipeline recorded none (drift, validation and estimated performance
all start from a version's training data)."""

from __future__ import annotations

import logging

from loopwise.context import current
from loopwise.data.validation import attach_suite, attached_suite
from loopwise.store import DatasetVersion, ModelVersion, RunStatus

__all__ = ["training_dataset", "with_training_data"]

log = logging.getLogger(__name__)


def _datasets(version: ModelVersion) -> list[DatasetVersion]:
    ctx = current()
    found = []
    for ref in version.datasets:
        name, _, number = ref.partition("/")
        found.append(ctx.store.get_dataset_version(ctx.project, name, int(number)))
    return found


def training_dataset(version: ModelVersion) -> DatasetVersion | None:
    """The dataset ``version`` was trained on, as the monitor finds it: its training run's
    ``train`` split, else the first dataset it used (None: it names none)."""
    datasets = _datasets(version)
    for dataset in datasets:
        if dataset.split == "train":
            return dataset
    return datasets[0] if datasets else None


def _carry_suite(source: str, target: str) -> None:
    """The suite attached to dataset ``source`` attached to ``target`` too, unless ``target``
    has one: the data a candidate was trained on are validated as production's were, so the
    monitor keeps checking served inputs after a promotion."""
    attached = attached_suite(source)
    if source != target and attached is not None and attached_suite(target) is None:
        attach_suite(target, attached[0], on_failure=attached[1])


def _registered_before(candidate: ModelVersion, train_ref: str) -> ModelVersion | None:
    """A version of the same files registered with ``train_ref`` already (an earlier tick
    did so and was interrupted before judging it)."""
    ctx = current()
    for version in reversed(ctx.store.list_model_versions(ctx.project, candidate.name)):
        if version.artifact_digest == candidate.artifact_digest and train_ref in version.datasets:
            return version
    return None


def with_training_data(
    candidate: ModelVersion, train_ref: str, holdout_ref: str | None = None
) -> ModelVersion:
    """``candidate`` when its lineage names a ``train`` split; otherwise the same files
    registered as the next version, its training run linked to ``train_ref`` (and
    ``holdout_ref``, held out of training), the data the autopilot handed the pipeline.

    A registry version never changes, so the lineage cannot be added to ``candidate`` itself;
    a pipeline whose registering step takes the data as a dataset input (docs/autopilot.md)
    records it and needs no second version."""
    recorded = training_dataset(candidate)
    if recorded is not None and recorded.split == "train":
        _carry_suite(train_ref.partition("/")[0], recorded.name)
        return candidate
    before = _registered_before(candidate, train_ref)
    if before is not None:
        return before
    ctx = current()
    store, project = ctx.store, ctx.project
    run_id = candidate.run_id
    if run_id is None:
        tags = {"loopwise.kind": "autopilot", "loopwise.candidate": candidate.ref}
        run_id = store.create_run(project, f"lineage of {candidate.ref}", tags=tags).id
        store.end_run(run_id, RunStatus.FINISHED)
    for role, ref in (("train", train_ref), ("holdout", holdout_ref)):
        if ref is not None:
            name, _, number = ref.partition("/")
            store.link_dataset(
                run_id, store.get_dataset_version(project, name, int(number)).id, role
            )
    log.warning(
        "%s names no training data (its pipeline read %s without recording it): registering "
        "its files again with that lineage, so that drift, validation and estimated "
        "performance can watch it",
        candidate.ref,
        train_ref,
    )
    return store.create_model_version(
        project,
        candidate.name,
        flavour=candidate.flavour,
        artifact_digest=candidate.artifact_digest,
        run_id=run_id,
        signature=candidate.signature,
        metadata=candidate.metadata,
        description=(
            f"{candidate.ref} as the autopilot retrained it, with its training data "
            f"{train_ref} named (its pipeline recorded none)"
        ),
    )
