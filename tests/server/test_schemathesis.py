"""Schemathesis against a live control plane: every operation, valid and invalid data, three tokens.

A real uvicorn server on loopback serves a populated SQLite store. Generated requests must never
get a 5xx, and every response must match the status codes, content types and schemas the
OpenAPI spec declares. Invalid requests must be refused with a 4xx in the error envelope.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.transport.requests import ManagedCookiesSession

from loopwise.server import create_app
from loopwise.store import ArtifactFile, MetricEntry, Store, open_store

from .harness import serve_in_thread

pytestmark = pytest.mark.slow(seconds=70)

BLOB = b"model bytes"
SETTINGS = hypothesis.settings(
    max_examples=30,
    derandomize=True,  # the same cases on every run; widen max_examples locally to explore
    database=None,
    deadline=None,
    suppress_health_check=list(hypothesis.HealthCheck),
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate, hypothesis.Phase.shrink],
)
AUTH_SETTINGS = hypothesis.settings(SETTINGS, max_examples=10)
"""Refusing a token does not depend on the data, so fewer examples do."""
CONFORMANCE = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@dataclass
class Live:
    """A populated store served on loopback, and the values its objects are known by."""

    url: str
    store: Store
    secrets: dict[str, str]
    known: dict[str, list[Any]]


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    store = open_store(Path(tmp_path_factory.mktemp("schemathesis")) / "store")
    store.get_or_create_project("demo")
    run = store.create_run("demo", "baseline", {"team": "ml"})
    store.log_metrics(
        [MetricEntry(run.id, "auc", 0.9, 0, 1), MetricEntry(run.id, "loss", 0.1, 0, 1)]
    )
    store.log_params(run.id, {"max_depth": "6"})
    finished = store.create_run("demo", "finished")
    store.end_run(finished.id, "FINISHED")  # type: ignore[arg-type]
    digest, size = store.artifacts.put_bytes(BLOB)
    store.record_artifacts(run.id, [ArtifactFile("model/model.bin", digest, size)])
    dataset, _ = store.create_dataset_version(
        "demo", "data", content_hash="h1", artifact_digest=digest, num_rows=3, schema={"x": "int64"}
    )
    store.link_dataset(run.id, dataset.id)
    store.create_model_version("demo", "model", flavour="python", artifact_digest=digest)
    store.create_model_version("demo", "model", flavour="python", artifact_digest=digest)
    store.set_alias("demo", "model", "prod", 1)
    store.record_outcomes("demo", "churn", [("r1:0", 1), ("r2:0", "no")])
    alert, _ = store.raise_alert(
        "demo", deployment="churn", rule="drift", severity="warning", fingerprint="f", message="m"
    )
    secrets = {
        role: store.create_token(role, name=f"schemathesis-{role}")[1]
        for role in ("admin", "viewer")
    }
    known: dict[str, list[Any]] = {
        "project": ["demo"],
        "run_id": [run.id, finished.id],
        "name": ["data", "model"],
        "version": [1, 2],
        "alias": ["prod"],
        "digest": [digest],
        "dataset_version_id": [dataset.id],
        "key": ["auc", "loss"],
        "deployment": ["churn"],
        "alert_id": [alert.id],
        "range": ["bytes=0-", "bytes=3-", "bytes=2-5", f"bytes={len(BLOB)}-"],
    }
    with serve_in_thread(create_app(store)) as url:
        yield Live(url, store, secrets, known)
    store.close()


@pytest.fixture(scope="module")
def session() -> Iterator[ManagedCookiesSession]:
    """One keep-alive connection pool for every generated request (Schemathesis opens a session,
    and so a connection, per request otherwise); it drops response cookies between requests."""
    with ManagedCookiesSession() as session:
        yield session


def _schema(live: Live, token: str | None) -> schemathesis.BaseSchema:
    """The live server's spec, sending ``token``.

    Parameters that name stored objects take a known value half the time, so that generated
    requests reach the handlers' success paths as well as their 404s.
    """
    where = {name: "path" for name in live.known} | {"key": "query", "range": "header"}
    config = schemathesis.Config.from_dict(
        {
            "headers": {"Authorization": f"Bearer {token}"} if token else {},
            "dictionaries": {name: {"values": values} for name, values in live.known.items()},
            "parameters": {
                f"{where[name]}.{name}": {"dictionary": name, "probability": 0.5}
                for name in live.known
            },
        }
    )
    return schemathesis.openapi.from_url(f"{live.url}/openapi.json", config=config)


def _fuzz(
    subtests: pytest.Subtests,
    schema: schemathesis.BaseSchema,
    modes: list[GenerationMode],
    check: Callable[[Case[Any]], None],
    settings: hypothesis.settings = SETTINGS,
) -> None:
    """Run ``check`` on generated cases of every operation, one subtest per operation and mode.

    (Schemathesis 4's ``pytest.from_fixture`` fails on pytest 9.2, which renamed a node
    attribute it sets, so Hypothesis is driven here with each operation's ``as_strategy``.)
    """
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # raises if the spec has an operation it cannot test
        for mode in modes:
            if mode is GenerationMode.NEGATIVE and not _can_be_invalid(operation.definition.raw):
                continue
            with subtests.test(msg=f"{mode.value} {operation.label}"):

                @hypothesis.settings(settings)
                @hypothesis.given(case=operation.as_strategy(generation_mode=mode))
                def run(case: Case[Any]) -> None:
                    check(case)

                run()


def _can_be_invalid(operation: dict[str, Any]) -> bool:
    """Whether the spec rules out some request to ``operation``, so negative mode can make one.

    A path segment or an optional header or query value that may be any string cannot be
    invalid (Hypothesis would search in vain for one); a JSON body, a required query
    parameter (left out) or a typed or constrained value can.
    """
    if "application/json" in operation.get("requestBody", {}).get("content", {}):
        return True
    free = [{"type": "string"}, {"anyOf": [{"type": "string"}, {"type": "null"}]}]
    for parameter in operation.get("parameters", []):
        schema = {k: v for k, v in parameter["schema"].items() if k not in ("title", "default")}
        if schema not in free or (parameter["in"] == "query" and parameter.get("required")):
            return True
    return False


def _permission(case: Case[Any]) -> str:
    return str(case.operation.definition.raw.get("x-loopwise-permission", "public"))


def _where(case: Case[Any], response: Any) -> str:
    return f"{case.method} {case.formatted_path} -> {response.status_code} {response.text[:300]}"


def _assert_envelope(case: Case[Any], response: Any, code: str | None = None) -> None:
    if case.method == "HEAD":
        return  # a HEAD response has no body to carry the envelope
    error = response.json()["error"]
    assert set(error) == {"code", "message", "details"}, _where(case, response)
    assert error["message"], _where(case, response)
    if code is not None:
        assert error["code"] == code, _where(case, response)


def test_admin_token_valid_and_invalid_data(
    live: Live, session: ManagedCookiesSession, subtests: pytest.Subtests
) -> None:
    def check(case: Case[Any]) -> None:
        checks = [*CONFORMANCE, negative_data_rejection]
        response = case.call_and_validate(session=session, checks=checks)
        if response.status_code >= 400:
            _assert_envelope(case, response)

    _fuzz(subtests, _schema(live, live.secrets["admin"]), list(GenerationMode), check)


def test_viewer_token_is_refused_writes(
    live: Live, session: ManagedCookiesSession, subtests: pytest.Subtests
) -> None:
    def check(case: Case[Any]) -> None:
        response = case.call_and_validate(session=session, checks=CONFORMANCE)
        if _permission(case) in ("write", "admin"):
            # Routes check the role after FastAPI validated the request (400) and after a run
            # id was looked up to find its project (404); neither says more than a viewer sees.
            assert response.status_code in (400, 403, 404), _where(case, response)
        if response.status_code >= 400:
            _assert_envelope(case, response)

    schema = _schema(live, live.secrets["viewer"])
    _fuzz(subtests, schema, [GenerationMode.POSITIVE], check, AUTH_SETTINGS)


def test_no_token_is_refused(
    live: Live, session: ManagedCookiesSession, subtests: pytest.Subtests
) -> None:
    def check(case: Case[Any]) -> None:
        response = case.call_and_validate(session=session, checks=CONFORMANCE)
        if _permission(case) == "public":
            assert response.status_code == 200, _where(case, response)
        else:
            assert response.status_code == 401, _where(case, response)
            _assert_envelope(case, response, "unauthenticated")

    _fuzz(subtests, _schema(live, None), [GenerationMode.POSITIVE], check, AUTH_SETTINGS)
