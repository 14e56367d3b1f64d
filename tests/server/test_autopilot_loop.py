"""The autopilot inside the server (``loopwise server --autopilot-every``): a thread that ticks
every deployment with a policy in every project, survives a failing tick, and stops with the
app; in a real server process and through the app's lifespan in-process."""

from __future__ import annotations

import logging
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.server import create_app
from loopwise.server.autopilot_loop import AutopilotLoop, check_period
from loopwise.store import AutopilotDecision, Store, TrafficPlan, open_store

from ..autopilot.world import policy_text
from .harness import serve_in_thread, start_server

DIGEST = "sha256:" + "ab" * 32
WITH_POLICY = [("alpha", "a-prod"), ("beta", "b-prod")]
WITHOUT_POLICY = ("beta", "b-plain")
BROKEN = ("gamma", "g-broken")
"""A deployment whose stored policy the controller cannot read: its tick fails every time."""


def populate(store: Store) -> None:
    """Three projects: deployments with a policy, one without, one with a broken policy."""
    for project in ("alpha", "beta", "gamma"):
        store.get_or_create_project(project)
        store.create_model_version(project, "m", flavour="python", artifact_digest=DIGEST)
    for project, deployment in [*WITH_POLICY, WITHOUT_POLICY, BROKEN]:
        store.create_deployment(project, deployment, "m", TrafficPlan({1: 100}), "for the test")
    for project, deployment in WITH_POLICY:
        store.set_autopilot_policy(project, deployment, policy_text())
    # The store keeps any text; only the autopilot's checks would refuse this one.
    store.set_autopilot_policy(*BROKEN, "label: y\nmonitor: {window: 3x}\n")


def wait_for_start(store: Store, timeout_s: float = 60) -> list[AutopilotDecision]:
    """The 'start' decisions of the deployments with a policy, once all are there."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = [store.latest_autopilot_decision(p, d) for p, d in WITH_POLICY]
        if all(f is not None for f in found):
            return [f for f in found if f is not None]
        if time.monotonic() > deadline:
            raise AssertionError(f"the autopilot did not start within {timeout_s} s: {found}")
        time.sleep(0.1)


def assert_only_policies_were_ticked(store: Store) -> None:
    for project, deployment in WITH_POLICY:
        decisions = store.autopilot_decisions(project, deployment)
        assert [d.kind for d in decisions] == ["start"]  # later ticks: nothing due yet
        assert decisions[0].actor == "autopilot"
    assert store.autopilot_decisions(*WITHOUT_POLICY) == []
    assert store.autopilot_decisions(*BROKEN) == []


@pytest.mark.slow
def test_a_server_process_runs_the_autopilot_of_every_project(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = open_store(path)
    try:
        populate(store)
    finally:
        store.close()
    before_ms = int(time.time() * 1000)
    process, url = start_server(path, "--no-auth", "--autopilot-every", "1")
    log = tmp_path / "server.log"
    try:
        store = open_store(path)
        try:
            starts = wait_for_start(store)
            after_ms = int(time.time() * 1000)
            # A few more rounds: the broken deployment fails each time, and the server serves on.
            deadline = time.monotonic() + 60
            while log.read_text().count("g-broken: the tick failed") < 2:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
            assert httpx.get(url + "/health", timeout=5).status_code == 200
            answer = httpx.get(f"{url}/api/v1/projects/alpha/deployments/a-prod/autopilot/policy")
            assert answer.status_code == 200 and answer.json()["revision"] == 1
            assert_only_policies_were_ticked(store)
            assert all(before_ms <= d.at_ms <= after_ms for d in starts)  # the real clock
        finally:
            store.close()
    finally:
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=60)
    text = log.read_text()
    assert code == 0, text
    assert "The autopilot ticks every deployment with a policy every 1 s." in text
    assert "monitor.window" in text  # the failing tick's reason is in the log


def test_without_the_option_the_server_runs_no_autopilot(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = open_store(path)
    try:
        populate(store)
        app = create_app(store, auth=False)
        with serve_in_thread(app, lifespan="on") as url:
            assert httpx.get(url + "/health", timeout=5).status_code == 200
            assert not hasattr(app.state, "autopilot")
        assert store.latest_autopilot_decision(*WITH_POLICY[0]) is None
    finally:
        store.close()


def test_the_lifespan_starts_and_stops_the_loop(tmp_path: Path) -> None:
    path = tmp_path / "store"
    store = open_store(path)
    try:
        populate(store)
        app = create_app(store, auth=False, autopilot_every_s=0.05)
        with serve_in_thread(app, lifespan="on") as url:
            wait_for_start(store)
            loop: AutopilotLoop = app.state.autopilot
            while loop.rounds_ < 3:
                time.sleep(0.05)
            assert httpx.get(url + "/health", timeout=5).status_code == 200
            thread = loop._thread
            assert thread is not None and thread.is_alive()
        assert not thread.is_alive()  # stopped with the app
        rounds = loop.rounds_
        time.sleep(0.2)
        assert loop.rounds_ == rounds
        assert_only_policies_were_ticked(store)
    finally:
        store.close()


def test_a_failing_round_is_logged_and_the_next_one_runs(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(tmp_path / "store")
    loop = AutopilotLoop(store, 0.05)
    try:
        populate(store)
        with caplog.at_level(logging.ERROR):
            loop.start()
            loop.start()  # already running: one thread
            wait_for_start(store)
            while loop.rounds_ < 3:
                time.sleep(0.05)
        loop.stop()
        failures = [r for r in caplog.records if "g-broken" in r.getMessage()]
        assert len(failures) >= 3 and all(r.exc_info for r in failures)
        assert_only_policies_were_ticked(store)
        # A deployment that gets a policy later is picked up by a later round.
        store.set_autopilot_policy(*WITHOUT_POLICY, policy_text())
        loop.start()
        deadline = time.monotonic() + 60
        while store.latest_autopilot_decision(*WITHOUT_POLICY) is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        loop.stop()
        loop.stop()  # stopping twice is harmless
        store.close()


@pytest.mark.parametrize("every_s", [-1, math.nan, math.inf, True, "5"])
def test_the_period_must_be_a_positive_number_of_seconds(tmp_path: Path, every_s: object) -> None:
    with pytest.raises(InvalidArgumentError, match="positive number of seconds") as caught:
        check_period(every_s)
    assert caught.value.details["parameter"] == "autopilot_every_s"
    if isinstance(every_s, float | int):
        store = open_store(tmp_path / "store")
        try:
            with pytest.raises(InvalidArgumentError):
                create_app(store, autopilot_every_s=every_s)
        finally:
            store.close()


def test_the_command_refuses_a_negative_period(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(tmp_path / "store"), "server",
         "--autopilot-every", "-5"],
        capture_output=True,
        text=True,
        timeout=60,
    )  # fmt: skip
    assert result.returncode == 2
    assert "--autopilot-every" in result.stderr
