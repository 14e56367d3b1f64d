"""Every store entity is pinned to its API response schema and to the remote client's decoder.

The entities (``loopwise.store.entities``) are mirrored by hand three times: a ``*Out`` model the
server answers with, and a decoder in the remote store that turns the JSON back into the entity.
These tests fail, naming the field and the file to edit, when one of the three forgets a field:

* every entity dataclass is paired with its schema (or listed in ``NO_API_TWIN`` with a reason);
* each pair has the same field names, the same JSON kind of value and the same nullability;
* a sample entity with every field set (no defaults) survives entity → response JSON (as FastAPI
  makes it) → remote decoder unchanged;
* through the real app in-process, what ``RemoteStore`` reads equals what the server's store has.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fastapi import FastAPI
from pydantic import BaseModel, TypeAdapter

from loopwise.server import create_app
from loopwise.server.autopilot_schemas import AutopilotDecisionOut, AutopilotPolicyOut
from loopwise.server.deployment_schemas import (
    DeploymentChangeOut,
    DeploymentOut,
    TrafficPlanOut,
)
from loopwise.server.monitoring_schemas import AlertOut, OutcomeOut, OutcomeReceiptOut
from loopwise.server.routes.access import AuditRecordOut, AuditVerificationOut, TokenOut
from loopwise.server.schemas import (
    ArtifactFileOut,
    DatasetSuiteOut,
    DatasetVersionOut,
    MetricOut,
    ModelVersionOut,
    PredictionSegmentOut,
    ProjectOut,
    RegisteredModelOut,
    RunOut,
)
from loopwise.store import Store, entities, open_store, remote
from loopwise.store.base import MetricEntry
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
from loopwise.store.remote import RemoteStore
from loopwise.store.remote import alerts as remote_alerts
from loopwise.store.remote import autopilot as remote_autopilot
from loopwise.store.remote import outcomes as remote_outcomes
from loopwise.store.remote.access import _token
from loopwise.store.remote.catalog import _dataset, _model_version
from loopwise.store.remote.deployments import _change, _deployment
from loopwise.store.remote.runs import _run

from .harness import AppTransport

ROOT = Path(__file__).resolve().parents[2]
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32


def _where(obj: Any) -> str:
    """The file that defines ``obj``, relative to the repository: the one to edit."""
    source = inspect.getsourcefile(obj)
    assert source is not None
    path = Path(source).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


@dataclass(frozen=True)
class Inline:
    """A decoder the remote store writes inline (``cls(**json)`` unless ``decode`` says
    otherwise), in the module ``home``."""

    cls: type[Any]
    home: ModuleType
    decode: Callable[[Mapping[str, Any]], Any] | None = None

    def __call__(self, d: Mapping[str, Any]) -> Any:
        return self.cls(**d) if self.decode is None else self.decode(d)


def _metric(d: Mapping[str, Any]) -> Metric:
    # as RemoteStore.get_metric_history decodes each row
    return Metric(d["key"], float(d["value"]), d["step"], d["timestamp_ms"])


def _decoder(decode: Callable[[Mapping[str, Any]], Any]) -> str:
    """The decoder and the file it lives in, for messages."""
    if isinstance(decode, Inline):
        return f"the inline {decode.cls.__name__}(...) (in {_where(decode.home)})"
    return f"{decode.__qualname__} (in {_where(decode)})"


@dataclass(frozen=True)
class Pair:
    """An entity, the response model the server answers with, and the remote decoder."""

    entity: type[Any]
    schema: type[BaseModel]
    decode: Callable[[Mapping[str, Any]], Any]
    sample: Any
    """An instance with every field set to something other than its default (and not None)."""

    def __str__(self) -> str:
        return self.entity.__name__


PLAN = TrafficPlan(shares={3: 95, 4: 5}, shadow=[5])

PAIRS = [
    Pair(Project, ProjectOut, Inline(Project, remote), Project(7, "proj", 1_700_000_000_000)),
    Pair(
        Metric,
        MetricOut,
        Inline(Metric, remote, _metric),
        Metric("loss", float("nan"), 3, 1_700_000_000_001),
    ),
    Pair(
        Run,
        RunOut,
        _run,
        Run(
            id="r1",
            project="proj",
            name="train",
            status=RunStatus.FINISHED,
            start_ms=1_700_000_000_000,
            end_ms=1_700_000_000_500,
            params={"alpha": "0.1"},
            tags={"team": "ml"},
            metrics={"loss": 0.25, "gain": float("inf"), "drop": float("-inf")},
            environment={"python": "3.12", "packages": {"numpy": "2.0"}},
        ),
    ),
    Pair(
        ArtifactFile,
        ArtifactFileOut,
        Inline(ArtifactFile, remote),
        ArtifactFile("model/model.pkl", DIGEST, 1234),
    ),
    Pair(
        DatasetVersion,
        DatasetVersionOut,
        _dataset,
        DatasetVersion(
            id=4,
            project="proj",
            name="census",
            version=2,
            content_hash="h1",
            artifact_digest=DIGEST,
            num_rows=100,
            schema={"AGEP": "int64", "SEX": "string"},
            created_ms=1_700_000_000_000,
            split="train",
            description="the 2018 sample",
            profile_digest=OTHER_DIGEST,
        ),
    ),
    Pair(
        DatasetSuite,
        DatasetSuiteOut,
        Inline(DatasetSuite, remote),
        DatasetSuite("proj", "census", "expectations: []\n", "fail", 1_700_000_000_000),
    ),
    Pair(
        PredictionSegment,
        PredictionSegmentOut,
        Inline(PredictionSegment, remote),
        PredictionSegment(
            project="proj",
            deployment="prod",
            hour_ms=1_699_999_200_000,
            digest=DIGEST,
            num_rows=10,
            min_timestamp_ms=1_699_999_200_001,
            max_timestamp_ms=1_699_999_300_000,
            size_bytes=2048,
            created_ms=1_700_000_000_000,
        ),
    ),
    Pair(
        Outcome,
        OutcomeOut,
        Inline(Outcome, remote_outcomes),
        Outcome("req-1:0", "employed", 1_700_000_000_000, 1_700_000_000_100),
    ),
    Pair(
        OutcomeReceipt,
        OutcomeReceiptOut,
        Inline(OutcomeReceipt, remote_outcomes),
        OutcomeReceipt(new=2, duplicates=1, updated=1, conflicts=["req-9:0"]),
    ),
    Pair(
        Alert,
        AlertOut,
        Inline(Alert, remote_alerts),
        Alert(
            id=3,
            project="proj",
            deployment="prod",
            rule="drift",
            severity="critical",
            fingerprint="drift:prod:AGEP",
            status="resolved",
            message="AGEP drifted",
            details={"column": "AGEP", "p_value": 0.001},
            window_start_ms=1_699_996_400_000,
            window_end_ms=1_700_000_000_000,
            first_seen_ms=1_700_000_000_100,
            last_seen_ms=1_700_000_000_200,
            occurrences=2,
            resolved_ms=1_700_000_000_300,
        ),
    ),
    Pair(
        RegisteredModel,
        RegisteredModelOut,
        Inline(RegisteredModel, remote),
        RegisteredModel(
            project="proj",
            name="employment",
            created_ms=1_700_000_000_000,
            latest_version=2,
            aliases={"production": 1},
            description="who is employed",
        ),
    ),
    Pair(
        ModelVersion,
        ModelVersionOut,
        _model_version,
        ModelVersion(
            id=9,
            project="proj",
            name="employment",
            version=2,
            flavour="sklearn",
            artifact_digest=DIGEST,
            created_ms=1_700_000_000_000,
            run_id="r1",
            signature={"inputs": [{"name": "AGEP", "type": "int64"}]},
            metadata={"sklearn_version": "1.5"},
            metrics={"loss": 0.25, "gain": float("inf")},
            datasets=["census/2"],
            aliases=["production"],
            description="second try",
        ),
    ),
    Pair(
        Token,
        TokenOut,
        _token,
        Token(
            id="tok_3f9a1c2b7d4e",
            name="ci",
            role=Role.EDITOR,
            project="proj",
            created_ms=1_700_000_000_000,
            created_by="token:admin",
            revoked_ms=1_700_000_000_100,
        ),
    ),
    Pair(
        AuditRecord,
        AuditRecordOut,
        Inline(AuditRecord, remote),
        AuditRecord(
            seq=5,
            time_ms=1_700_000_000_000,
            actor="token:admin",
            token_id="tok_3f9a1c2b7d4e",
            action="alias.set",
            project="proj",
            target="model:employment@production",
            before={"version": 1},
            after={"version": 2},
            prev_hash="a" * 64,
            hash="b" * 64,
        ),
    ),
    Pair(
        AuditVerification,
        AuditVerificationOut,
        Inline(AuditVerification, remote),
        AuditVerification(False, 6, "c" * 64, 7, "record 7 was edited"),
    ),
    Pair(TrafficPlan, TrafficPlanOut, TrafficPlan.from_json, PLAN),
    Pair(
        Deployment,
        DeploymentOut,
        _deployment,
        Deployment("proj", "prod", "employment", PLAN, 3, 1_700_000_000_000, 1_700_000_000_100),
    ),
    Pair(
        DeploymentChange,
        DeploymentChangeOut,
        _change,
        DeploymentChange(
            revision=3,
            kind="rollback",
            plan=PLAN,
            reason="canary failed",
            actor="token:admin",
            time_ms=1_700_000_000_000,
            restored_revision=1,
        ),
    ),
    Pair(
        AutopilotPolicy,
        AutopilotPolicyOut,
        Inline(AutopilotPolicy, remote_autopilot),
        AutopilotPolicy("proj", "prod", 2, "label: employed\n", "token:admin", 1_700_000_000_000),
    ),
    Pair(
        AutopilotDecision,
        AutopilotDecisionOut,
        Inline(AutopilotDecision, remote_autopilot),
        AutopilotDecision(
            project="proj",
            deployment="prod",
            seq=4,
            kind="canary",
            summary="start a canary of version 4",
            state={"phase": "canary", "candidate": 4},
            evidence={"p_value": 0.2},
            at_ms=1_700_000_000_000,
            actor="token:admin",
            created_ms=1_700_000_000_100,
        ),
    ),
]

NO_API_TWIN: dict[type[Any], str] = {}
"""Entity dataclasses the API never returns, each with the reason (none today)."""


def _entity_classes() -> set[type[Any]]:
    """The dataclasses defined in ``loopwise.store.entities`` (or a module inside it)."""
    return {
        obj
        for obj in vars(entities).values()
        if inspect.isclass(obj)
        and dataclasses.is_dataclass(obj)
        and (
            obj.__module__ == entities.__name__
            or obj.__module__.startswith(entities.__name__ + ".")
        )
    }


def test_every_entity_is_paired_with_a_schema_or_says_why_not() -> None:
    paired = {pair.entity for pair in PAIRS}
    assert len(paired) == len(PAIRS), "an entity is paired twice in PAIRS"
    assert not paired & NO_API_TWIN.keys(), "an entity is both paired and in NO_API_TWIN"
    unaccounted = _entity_classes() - paired - NO_API_TWIN.keys()
    assert not unaccounted, (
        f"entities {sorted(c.__name__ for c in unaccounted)} (in {_where(entities)}) have no "
        f"response schema pinned to them: add a Pair to PAIRS in {_where(test_fields_match)}, "
        "or list them in NO_API_TWIN with the reason the API never returns them"
    )
    gone = (paired | NO_API_TWIN.keys()) - _entity_classes()
    assert not gone, f"{sorted(c.__name__ for c in gone)} are no longer entity dataclasses"


# -- field names, kinds and nullability ----------------------------------------------------------
def _kinds(tp: Any) -> frozenset[str]:
    """The JSON kinds a type annotation allows (``null`` included), coarsely."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        return _kinds(typing.get_args(tp)[0])
    if origin in (typing.Union, types.UnionType):
        return frozenset().union(*(_kinds(arg) for arg in typing.get_args(tp)))
    if origin is typing.Literal:
        return frozenset().union(*(_kinds(type(value)) for value in typing.get_args(tp)))
    if tp is type(None) or tp is None:
        return frozenset({"null"})
    if tp is Any:
        return frozenset({"any"})
    cls = origin or tp
    if inspect.isclass(cls):
        if issubclass(cls, Enum):
            return _kinds(type(next(iter(cls)).value))
        if issubclass(cls, bool):
            return frozenset({"boolean"})
        if issubclass(cls, int):
            return frozenset({"integer"})
        if issubclass(cls, float):
            return frozenset({"number"})
        if issubclass(cls, str):
            return frozenset({"string"})
        if issubclass(cls, list | tuple):
            return frozenset({"array"})
        if issubclass(cls, dict) or dataclasses.is_dataclass(cls) or issubclass(cls, BaseModel):
            return frozenset({"object"})
    raise AssertionError(f"no JSON kind known for {tp!r}: teach _kinds about it")


def _entity_fields(cls: type[Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls, include_extras=True)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _schema_fields(schema: type[BaseModel]) -> dict[str, Any]:
    """The schema's fields under their JSON names (the alias where it has one)."""
    return {
        (info.serialization_alias or info.alias or name): info.rebuild_annotation()
        for name, info in schema.model_fields.items()
    }


NOT_NULL_IN_RESPONSES: dict[tuple[type[Any], str], str] = {
    (Outcome, "timestamp_ms"): "None only on the way in (it means now); a stored outcome has one",
}
"""Entity fields that may be None, but never in what the server returns, with the reason."""


@pytest.mark.parametrize("pair", PAIRS, ids=str)
def test_fields_match(pair: Pair) -> None:
    entity, schema = pair.entity, pair.schema
    ours, theirs = _entity_fields(entity), _schema_fields(schema)
    missing = [name for name in ours if name not in theirs]
    assert not missing, (
        f"{schema.__name__} (in {_where(schema)}) lacks field(s) {missing} of "
        f"{entity.__name__} (in {_where(entity)}): the API would not return them; add them to "
        f"{schema.__name__}, and check the remote decoder {_decoder(pair.decode)}"
    )
    extra = [name for name in theirs if name not in ours]
    assert not extra, (
        f"{schema.__name__} (in {_where(schema)}) has field(s) {extra} that {entity.__name__} "
        f"(in {_where(entity)}) lacks: remove them from the schema or add them to the entity"
    )
    for name, hint in ours.items():
        want, got = _kinds(hint), _kinds(theirs[name])
        if (entity, name) in NOT_NULL_IN_RESPONSES:
            want -= {"null"}
        assert ("null" in want) == ("null" in got), (
            f"{entity.__name__}.{name} is {'' if 'null' in want else 'not '}nullable but "
            f"{schema.__name__}.{name} (in {_where(schema)}) is "
            f"{'' if 'null' in got else 'not '}: make them agree"
        )
        assert "any" in got or want <= got, (
            f"{entity.__name__}.{name} holds {sorted(want)} but {schema.__name__}.{name} (in "
            f"{_where(schema)}) takes {sorted(got)}: fix the schema's type"
        )


# -- round trips ----------------------------------------------------------------------------------
def _response_json(schema: type[BaseModel], value: Any) -> Any:
    """``value`` as the server sends it for ``response_model=schema`` (FastAPI validates the
    returned object from its attributes, then dumps JSON by alias)."""
    adapter = TypeAdapter(schema)
    validated = adapter.validate_python(value, from_attributes=True)
    return json.loads(adapter.dump_json(validated, by_alias=True))


@pytest.mark.parametrize("pair", PAIRS, ids=str)
def test_sample_sets_every_field(pair: Pair) -> None:
    """A field left at its default (or None) would pass a round trip even if forgotten."""
    for f in dataclasses.fields(pair.entity):
        value = getattr(pair.sample, f.name)
        assert value is not None, f"give the {pair} sample a non-None {f.name}"
        if f.default is not dataclasses.MISSING:
            assert value != f.default, f"give the {pair} sample a non-default {f.name}"
        if f.default_factory is not dataclasses.MISSING:
            assert value != f.default_factory(), f"give the {pair} sample a non-default {f.name}"


@pytest.mark.parametrize("pair", PAIRS, ids=str)
def test_entity_round_trips_through_schema_and_remote_decoder(pair: Pair) -> None:
    sent = _response_json(pair.schema, pair.sample)
    json.dumps(sent, allow_nan=False)  # valid JSON: NaN and infinities travel as strings
    decoded = pair.decode(sent)
    assert type(decoded) is pair.entity
    assert decoded == pair.sample, (
        f"{pair} changed on its way through {pair.schema.__name__} (in {_where(pair.schema)}) "
        f"and {_decoder(pair.decode)}"
    )


# -- through the app: what RemoteStore reads is what the server's store has ----------------------
SUITE = "expectations:\n  - column: AGEP\n    rule: between\n    min: 0\n    max: 120\n"
POLICY = "label: employed\nretrain:\n  pipeline: train.py:training\n"


def _populate(store: Store, folder: Path) -> None:
    """Data where every optional field of every entity is set."""
    store.get_or_create_project("proj")
    run = store.create_run("proj", "train", tags={"team": "ml"}, environment={"python": "3.12"})
    store.log_params(run.id, {"alpha": "0.1"})
    store.log_metrics(
        [
            _entry(run.id, "loss", float("nan"), 0),  # in the history, not the latest value
            _entry(run.id, "loss", 0.5, 1),
            _entry(run.id, "gain", float("inf"), 0),
        ]
    )
    (folder / "model.pkl").write_bytes(b"not really a model")
    store.log_artifact(run.id, folder / "model.pkl", "model/model.pkl")
    dataset, _ = store.create_dataset_version(
        "proj",
        "census",
        content_hash="h1",
        artifact_digest=DIGEST,
        num_rows=100,
        schema={"AGEP": "int64"},
        split="train",
        description="the 2018 sample",
        profile_digest=OTHER_DIGEST,
    )
    store.set_dataset_suite("proj", "census", SUITE, "fail")
    store.link_dataset(run.id, dataset.id)
    store.end_run(run.id, RunStatus.FINISHED)
    for _ in range(3):
        store.create_model_version(
            "proj",
            "employment",
            flavour="sklearn",
            artifact_digest=DIGEST,
            run_id=run.id,
            signature={"inputs": []},
            metadata={"sklearn_version": "1.5"},
            description="a try",
        )
    store.set_alias("proj", "employment", "production", 1)
    store.create_deployment("proj", "prod", "employment", TrafficPlan({1: 100}), reason="first")
    store.set_deployment_plan("proj", "prod", TrafficPlan({1: 90, 2: 10}, [3]), reason="canary")
    store.rollback_deployment("proj", "prod", reason="canary failed", to_revision=1)
    store.add_prediction_segments(
        [
            PredictionSegment(
                project="proj",
                deployment="prod",
                hour_ms=1_699_999_200_000,
                digest=DIGEST,
                num_rows=10,
                min_timestamp_ms=1_699_999_200_001,
                max_timestamp_ms=1_699_999_300_000,
                size_bytes=2048,
            )
        ]
    )
    store.record_outcomes("proj", "prod", [Outcome("req-1:0", "employed", 1_700_000_000_000)])
    alert, _ = store.raise_alert(
        "proj",
        deployment="prod",
        rule="drift",
        severity="critical",
        fingerprint="drift:prod:AGEP",
        message="AGEP drifted",
        details={"column": "AGEP"},
        window_start_ms=1_699_996_400_000,
        window_end_ms=1_700_000_000_000,
    )
    store.resolve_alert("proj", alert.id)
    store.set_autopilot_policy("proj", "prod", POLICY)
    store.record_autopilot_decision(
        "proj", "prod", 1, "hold", "nothing to do", {"phase": "idle"}, {"p": 0.5}, 1_000
    )
    token, _ = store.create_token("editor", project="proj", name="ci")
    store.revoke_token(token.id)


def _entry(run_id: str, key: str, value: float, step: int) -> MetricEntry:
    return MetricEntry(run_id, key, value, step, 1_700_000_000_000 + step)


READS: dict[type[Any], Callable[[Store], Any]] = {
    Project: lambda s: s.get_project("proj"),
    Metric: lambda s: s.get_metric_history(_run_id(s), "loss"),
    Run: lambda s: s.get_run(_run_id(s)),
    ArtifactFile: lambda s: s.list_artifacts(_run_id(s)),
    DatasetVersion: lambda s: s.list_dataset_versions("proj"),
    DatasetSuite: lambda s: s.get_dataset_suite("proj", "census"),
    PredictionSegment: lambda s: s.list_prediction_segments("proj"),
    Outcome: lambda s: s.get_outcomes("proj", "prod", ["req-1:0"]),
    OutcomeReceipt: lambda s: s.record_outcomes(
        "proj", "prod", [Outcome("req-1:0", "employed", 1_700_000_000_000)]
    ),
    Alert: lambda s: s.list_alerts("proj", status="resolved"),
    RegisteredModel: lambda s: s.list_models("proj"),
    ModelVersion: lambda s: s.list_model_versions("proj", "employment"),
    Token: lambda s: [t for t in s.list_tokens(include_revoked=True) if t.name == "ci"],
    AuditRecord: lambda s: s.audit_log(),
    AuditVerification: lambda s: s.verify_audit(),
    TrafficPlan: lambda s: s.get_deployment("proj", "prod").plan,
    Deployment: lambda s: s.get_deployment("proj", "prod"),
    DeploymentChange: lambda s: s.deployment_history("proj", "prod"),
    AutopilotPolicy: lambda s: s.get_autopilot_policy("proj", "prod"),
    AutopilotDecision: lambda s: s.autopilot_decisions("proj", "prod"),
}
"""For each paired entity, a read that returns it (the same call on either store)."""


def _run_id(store: Store) -> str:
    return store.search_runs("proj")[0].id


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Store]]:
    """The server's store, populated, and a ``RemoteStore`` reading it through the app."""
    root = tmp_path_factory.mktemp("pinning")
    server = open_store(root / "server-store")
    _populate(server, root)
    _, secret = server.create_token("admin", name="tests")
    app: FastAPI = create_app(server)
    remote = RemoteStore(
        "http://loopwise.test", secret, transport=AppTransport(app), spool_dir=root / "spool"
    ).open()
    yield server, remote
    remote.close()
    server.close()


def test_every_pair_has_a_read() -> None:
    assert set(READS) == {pair.entity for pair in PAIRS}


@pytest.mark.parametrize("pair", PAIRS, ids=str)
def test_remote_store_reads_what_the_server_store_has(
    pair: Pair, stores: tuple[Store, Store]
) -> None:
    server, remote = stores
    here, there = READS[pair.entity](server), READS[pair.entity](remote)
    found = list(here.values()) if isinstance(here, dict) else here
    found = found if isinstance(found, list) else [found]
    assert found, f"the read for {pair} found nothing: fix _populate"
    assert all(type(item) is pair.entity for item in found)
    assert there == here, (
        f"RemoteStore returned a different {pair} than the server's store: check "
        f"{pair.schema.__name__} (in {_where(pair.schema)}) and {_decoder(pair.decode)}"
    )
