"""What the autopilot takes from stored records and what only the operator decides: decisions
are the controller's (a person records a resume, nothing else), a retraining pipeline runs only
where the operator allows it, and the URLs a policy names are fetched only where allowed."""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.responses import PlainTextResponse

import loopwise as lw
from loopwise.autopilot.settings import OperatorSettings, pipeline_allowed
from loopwise.context import Context
from loopwise.errors import PermissionDeniedError
from loopwise.server import create_app
from loopwise.store import RemoteStore, Store, TrafficPlan, open_store

from ..server.harness import AppTransport, serve_in_thread
from .test_policy import ALIAS_BOMB
from .world import DEPLOYMENT, PIPELINE, World, policy_text

API = f"/api/v1/projects/p/deployments/{DEPLOYMENT}/autopilot"
DIGEST = "sha256:" + "ab" * 32


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    context = lw.init(project="auto", uri=tmp_path / "store")
    yield context
    lw.shutdown()


# -- decisions: the controller's alone -------------------------------------------------------------
@dataclass
class Served:
    store: Store
    client: httpx.Client
    secrets: dict[str, str]

    def as_(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.secrets[who]}"}


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    store = open_store(tmp_path / "store")
    store.get_or_create_project("p")
    store.create_model_version("p", "m", flavour="python", artifact_digest=DIGEST)
    store.create_deployment("p", DEPLOYMENT, "m", TrafficPlan({1: 100}), "for the test")
    store.set_autopilot_policy("p", DEPLOYMENT, policy_text())
    store.create_deployment("p", "fresh", "m", TrafficPlan({1: 100}), "never ticked")
    store.set_autopilot_policy("p", "fresh", policy_text())
    paused = {"phase": "paused", "production": 1, "paused_reason": "2 candidates failed"}
    store.record_autopilot_decision("p", DEPLOYMENT, 1, "escalate", "paused", paused, {}, 1)
    secrets = {
        "admin": store.create_token("admin", name="controller")[1],
        "editor": store.create_token("editor", project="p", name="editor")[1],
    }
    transport = AppTransport(create_app(store))
    with httpx.Client(transport=transport, base_url="http://test") as client:
        yield Served(store, client, secrets)
    store.close()


INJECTED = {
    "phase": "watching",
    "production": 1,
    "pending_retrain": {"train": "x/1", "holdout": "x/2", "since_ms": 0, "rows": 10},
}


def test_an_editor_cannot_record_a_controller_decision(served: Served) -> None:
    body = {"seq": 2, "kind": "retrain", "summary": "s", "state": INJECTED, "evidence": {},
            "at_ms": 2}  # fmt: skip
    response = served.client.post(f"{API}/decisions", json=body, headers=served.as_("editor"))
    assert response.status_code == 403, response.text
    assert "admin" in response.json()["error"]["message"]
    assert served.store.latest_autopilot_decision("p", DEPLOYMENT).seq == 1  # type: ignore[union-attr]


def test_an_editors_resume_keeps_the_controllers_state(served: Served) -> None:
    """A person may resume; the state recorded is the paused one resumed, not the body's."""
    body = {"seq": 2, "kind": "resume", "summary": "Resumed", "state": INJECTED,
            "evidence": {"reason": "fixed upstream"}, "at_ms": 2}  # fmt: skip
    response = served.client.post(f"{API}/decisions", json=body, headers=served.as_("editor"))
    assert response.status_code == 200, response.text
    recorded = response.json()
    assert recorded["kind"] == "resume" and recorded["seq"] == 2
    assert recorded["state"]["phase"] == "watching"
    assert recorded["state"]["pending_retrain"] is None
    assert recorded["evidence"] == {"reason": "fixed upstream"}
    assert recorded["actor"] == "token:editor"


def test_the_controller_records_with_an_admin_token(served: Served) -> None:
    body = {"seq": 2, "kind": "hold", "summary": "s", "state": {"phase": "paused"},
            "evidence": {}, "at_ms": 2}  # fmt: skip
    response = served.client.post(f"{API}/decisions", json=body, headers=served.as_("admin"))
    assert response.status_code == 200, response.text


def test_resume_through_a_remote_store_with_an_editor_token(served: Served, tmp_path: Path) -> None:
    transport = AppTransport(create_app(served.store))
    remote = RemoteStore(
        "http://t", served.secrets["editor"], transport=transport, spool_dir=tmp_path / "sp"
    ).open()
    try:
        decision = lw.autopilot.resume(DEPLOYMENT, reason="looked", store=remote, project="p")
        assert decision.kind == "resume" and decision.state["phase"] == "watching"
        with pytest.raises(PermissionDeniedError, match="admin"):
            lw.autopilot.run_once("fresh", store=remote, project="p")  # would record 'start'
        assert served.store.latest_autopilot_decision("p", "fresh") is None
    finally:
        remote.close()


def test_a_remote_controller_with_an_admin_token_ticks(served: Served, tmp_path: Path) -> None:
    transport = AppTransport(create_app(served.store))
    remote = RemoteStore(
        "http://t", served.secrets["admin"], transport=transport, spool_dir=tmp_path / "sp"
    ).open()
    try:
        tick = lw.autopilot.run_once("fresh", store=remote, project="p")
        assert [d.kind for d in tick.decisions] == ["start"]
        assert tick.decisions[0].actor == "token:controller"
    finally:
        remote.close()


# -- retraining pipelines: the operator's list -----------------------------------------------------
EVIL = """
import pathlib
pathlib.Path({marker!r}).write_text("imported")
import loopwise as lw

@lw.step
def register(data: str) -> str:
    return data

@lw.pipeline
def training(data: str):
    return register(data)
"""


def test_a_pipeline_the_operator_did_not_allow_is_never_imported(
    ctx: Context, tmp_path: Path
) -> None:
    marker = tmp_path / "imported.txt"
    evil = tmp_path / "elsewhere" / "evil.py"
    evil.parent.mkdir()
    evil.write_text(EVIL.format(marker=str(marker)))
    world = World(change=2)
    world.setup()
    # An editor changes the policy through the store (the REST API never imports it).
    retrain = {"pipeline": f"{evil}:training", "window": "3D", "min_rows": 300, "cooldown": "1D"}
    ctx.store.set_autopilot_policy(ctx.project, DEPLOYMENT, policy_text(retrain=retrain))
    path_before = list(sys.path)
    world.play(range(0, 4))
    assert not marker.exists()
    assert sys.path == path_before
    history = lw.autopilot.history(DEPLOYMENT)
    refused = [d for d in history if d.kind == "escalate"]
    assert refused and "LOOPWISE_AUTOPILOT_PIPELINES" in refused[0].summary
    assert "retrain" not in [d.kind for d in history]


def test_the_operator_allows_a_pipeline_by_argument(
    ctx: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPWISE_AUTOPILOT_PIPELINES")
    real_run_once = lw.autopilot.run_once
    allowed = OperatorSettings(pipelines=(PIPELINE,))
    monkeypatch.setattr(
        lw.autopilot, "run_once", functools.partial(real_run_once, settings=allowed)
    )
    world = World(change=2)
    world.setup()
    world.play(range(0, 4))
    assert "retrain" in world.kinds()


@pytest.mark.parametrize(
    ("ref", "allowed", "expected"),
    [
        ("mypkg.flows:training", ["mypkg.flows:*"], True),
        ("mypkg.flows:training", ["mypkg.flows"], True),
        ("mypkg.flows:training", ["mypkg.flows:training"], True),
        ("mypkg.flows:other", ["mypkg.flows:training"], False),
        ("mypkg.flowsx:training", ["mypkg.flows:*"], False),
        ("mypkg:training", ["mypkg.flows:*"], False),
        ("{dir}/train.py:training", ["{dir}/"], True),
        ("{dir}/train.py:training", ["{dir}"], True),
        ("{dir}/sub/train.py:training", ["{dir}/"], True),
        ("{dir}/../train.py:training", ["{dir}/"], False),
        ("{dir}/train.py:training", ["{dir}/train.py"], True),
        ("{dir}/train.py:training", ["{dir}/train.py:other"], False),
        ("{dir}/other.py:training", ["{dir}/train.py:*"], False),
        ("{dir}/train.py:training", [], False),
        ("{dir}/train.py:training", ["mypkg.flows:*"], False),
    ],
)
def test_pipeline_allow_list(tmp_path: Path, ref: str, allowed: list[str], expected: bool) -> None:
    folder = tmp_path / "pipes"
    (folder / "sub").mkdir(parents=True)
    for path in (folder / "train.py", folder / "other.py", folder / "sub" / "train.py"):
        path.write_text("")
    (tmp_path / "train.py").write_text("")
    fill = {"dir": str(folder)}
    entries = [a.format(**fill) for a in allowed]
    assert pipeline_allowed(ref.format(**fill), entries) is expected


# -- outbound URLs of a policy ------------------------------------------------------------------
def test_a_policy_with_a_loopback_metrics_url_is_refused_over_http(served: Served) -> None:
    text = policy_text(rollout={"metrics_url": "http://127.0.0.1:9100/metrics"})
    response = served.client.put(f"{API}/policy", json={"text": text}, headers=served.as_("editor"))
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["details"]["parameter"] == "rollout.metrics_url"
    assert "LOOPWISE_ALLOW_OUTBOUND_HOSTS" in error["message"]
    webhook = policy_text(escalation={"webhook": "http://169.254.169.254/latest/meta-data"})
    response = served.client.put(
        f"{API}/policy", json={"text": webhook}, headers=served.as_("editor")
    )
    assert response.status_code == 400, response.text
    assert response.json()["error"]["details"]["parameter"] == "escalation.webhook"


SECRET = "internal-only: db password hunter2"


@pytest.fixture
def internal_page() -> Iterator[str]:
    """An internal page the control plane can reach and an editor should never read."""
    app = FastAPI()

    @app.get("/metrics")
    def page() -> PlainTextResponse:
        return PlainTextResponse(f"<html>{SECRET}</html>\n")

    with serve_in_thread(app) as url:
        yield f"{url}/metrics"


def test_a_metrics_url_answer_is_never_kept_in_the_evidence(
    ctx: Context, internal_page: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = httpx.URL(internal_page).netloc.decode()
    rollout = {"steps": [20, 100], "min_samples": 60, "metrics_url": internal_page}
    monkeypatch.setenv("LOOPWISE_ALLOW_OUTBOUND_HOSTS", host)  # the operator allows it
    world = World(change=2)
    world.setup(policy_text(rollout=rollout))
    world.play(range(0, 4))
    history = lw.autopilot.history(DEPLOYMENT)
    assert "promote" in [d.kind for d in history]
    text = str([(d.summary, d.evidence) for d in history])
    assert "hunter2" not in text and "<html>" not in text
    promote = next(d for d in history if d.kind == "promote")
    assert "not Prometheus text" in promote.evidence["errors"]["unavailable"]


def test_a_metrics_url_the_operator_did_not_allow_is_not_fetched(
    ctx: Context, internal_page: str
) -> None:
    rollout = {"steps": [20, 100], "min_samples": 60, "metrics_url": internal_page}
    world = World(change=2)
    world.setup(policy_text(task="classification"))
    ctx.store.set_autopilot_policy(ctx.project, DEPLOYMENT, policy_text(rollout=rollout))
    world.play(range(0, 4))
    history = lw.autopilot.history(DEPLOYMENT)
    promote = next(d for d in history if d.kind == "promote")
    unavailable = promote.evidence["errors"]["unavailable"]
    assert "LOOPWISE_ALLOW_OUTBOUND_HOSTS" in unavailable and SECRET not in unavailable


def test_an_alias_bomb_policy_gets_a_short_400(served: Served) -> None:
    response = served.client.put(
        f"{API}/policy", json={"text": ALIAS_BOMB}, headers=served.as_("editor")
    )
    assert response.status_code == 400
    assert len(response.content) < 2000, len(response.content)


@pytest.mark.parametrize(("setting", "allowed"), [("1", True), ("", False)])
def test_the_gates_load_pickles_only_as_the_operator_allows(
    ctx: Context, monkeypatch: pytest.MonkeyPatch, setting: str, allowed: bool
) -> None:
    real_load = lw.models.load
    asked: list[bool] = []

    def load(ref: Any, **kwargs: Any) -> Any:
        if sys._getframe(1).f_globals["__name__"] == "loopwise.autopilot.retraining":
            asked.append(kwargs.get("allow_pickle", False))  # the gates' loads
        return real_load(ref, **kwargs)

    monkeypatch.setattr(lw.models, "load", load)
    monkeypatch.setenv("LOOPWISE_AUTOPILOT_ALLOW_PICKLE", setting)
    world = World(change=2)
    world.setup()
    world.play(range(0, 4))
    assert "retrain" in world.kinds()
    assert asked and set(asked) == {allowed}
