"""The controller on a synthetic stream with a known change point (and a data bug): it
notices the change, retrains, gates, canaries and promotes; it refuses broken data and
escalates; a rollback and a pause follow bad candidates; the state survives in the store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.autopilot.report import write_report
from loopwise.context import Context
from loopwise.errors import ConflictError
from loopwise.monitoring import list_alerts
from loopwise.monitoring.report.html import esc

from .world import DAY_MS, DEPLOYMENT, START_MS, World, policy_text


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Context]:
    context = lw.init(project="auto", uri=tmp_path / "store")
    yield context
    lw.shutdown()


@pytest.mark.slow(seconds=10)  # the whole loop over many windows
def test_a_change_point_is_noticed_retrained_canaried_and_promoted(store: Context) -> None:
    world = World(change=3)
    rollout = {"strategy": "canary", "steps": [20, 100], "min_samples": 60, "alias": "production"}
    world.setup(policy_text(rollout=rollout))
    world.play(range(0, 3))
    assert "retrain" not in world.kinds()  # before the change: checks, no churn
    assert world.kinds()[0] == "start"
    assert "observe" in world.kinds()
    world.play(range(3, 5))
    kinds = world.kinds()
    assert kinds.count("retrain") == 1
    assert kinds.count("promote") == 1
    assert kinds.index("retrain") < kinds.index("rollout") < kinds.index("promote")
    deployment = lw.deployments.get(DEPLOYMENT)
    assert deployment.plan.shares == {2: 100}
    assert lw.models.get("synthetic@production").version == 2
    # Served accuracy collapsed at the change and came back once the candidate took over.
    assert world.served[3] < 0.75
    assert world.served[4] > world.served[3] + 0.1
    # Every decision is in the audit trail with its evidence and the state it left.
    history = lw.autopilot.history(DEPLOYMENT)
    promote = next(d for d in history if d.kind == "promote")
    assert promote.state["production"] == 2
    trigger = next(d for d in history if d.evidence.get("drop", {}).get("triggered"))
    assert trigger.evidence["drop"]["p_value"] < 0.05
    # The change point is found inside the check window: training starts at the change.
    change_ms = trigger.state["drop_since_ms"]
    assert abs(change_ms - (START_MS + 3 * DAY_MS)) < DAY_MS / 8
    gate = next(d for d in history if d.kind == "rollout")
    assert gate.evidence["gates"]["holdout"]["passed"] is True
    changes = lw.deployments.history(DEPLOYMENT)
    assert [c.plan.shares for c in changes] == [{1: 100}, {1: 80, 2: 20}, {2: 100}]
    assert all("autopilot decision #" in c.reason for c in changes[1:])

    # The new model learnt from the few rows after the change: once three times as many are
    # in, it is retrained once more (and gated as usual), and then no more.
    world.play(range(5, 12))
    history = lw.autopilot.history(DEPLOYMENT)
    retrains = [d for d in history if d.kind == "retrain"]
    assert len(retrains) == 2
    assert "retrain.refresh_factor" in retrains[1].summary
    assert retrains[1].evidence["data"]["rows"] >= 3 * retrains[0].evidence["data"]["rows"]
    assert retrains[1].evidence["data"]["start_ms"] >= START_MS + 3 * DAY_MS  # after the change
    assert min(world.served[6:]) > 0.85
    # Gated as usual: here the model from the first rows after the change is already as good
    # as a linear model gets, so the refresh is rejected, and that counts as no failure.
    refresh = next(d for d in history if d.seq > retrains[1].seq)
    assert refresh.kind == "reject" and "a refresh, not a repair" in refresh.summary
    assert refresh.state["failed_candidates"] == 0
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {2: 100}


def test_broken_inputs_are_escalated_in_their_window_and_never_trained_on(store: Context) -> None:
    world = World(change=100, bug=2)
    world.setup()
    world.play(range(0, 4))
    history = lw.autopilot.history(DEPLOYMENT)
    escalations = [d for d in history if d.kind == "escalate"]
    # The check at the end of the broken window escalates it, and only that window.
    (escalation,) = escalations
    assert escalation.at_ms == START_MS + 3 * DAY_MS
    assert "x1" in escalation.summary and "range" in escalation.summary
    assert escalation.state["quarantine"] == [[START_MS + 2 * DAY_MS, START_MS + 3 * DAY_MS]]
    assert "retrain" not in [d.kind for d in history]
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {1: 100}
    (alert,) = list_alerts(DEPLOYMENT)  # one open alert for the problem, however many windows
    assert alert.rule == "autopilot" and alert.severity == "critical"
    assert alert.occurrences == len(escalations)


def test_failed_candidates_pause_the_autopilot_until_a_person_resumes(store: Context) -> None:
    # A gate no candidate can pass (99% better): each retrain is rejected, and the
    # second failure in a row escalates and pauses instead of retraining in a loop.
    policy = policy_text(gates={"min_improvement": 0.99})
    world = World(change=1)
    world.setup(policy)
    world.play(range(0, 5))
    kinds = world.kinds()
    assert kinds.count("reject") == 1
    assert kinds.count("escalate") == 1
    assert kinds.count("retrain") == 2
    state = lw.autopilot.state(DEPLOYMENT)
    assert state is not None and state.phase == "paused"
    assert "hold" in kinds[kinds.index("escalate") :]
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {1: 100}
    resumed = lw.autopilot.resume(DEPLOYMENT, reason="looked at it")
    assert resumed.kind == "resume" and resumed.state["phase"] == "watching"
    with pytest.raises(ConflictError, match="not paused"):
        lw.autopilot.resume(DEPLOYMENT, reason="again")


def test_a_regressor_is_watched_on_rmse_by_default(store: Context) -> None:
    world = World(task="regression", change=2)
    world.setup(policy_text("regression"))
    world.play(range(0, 5))
    kinds = world.kinds()
    assert kinds.count("promote") == 1
    first_check = next(d for d in lw.autopilot.history(DEPLOYMENT) if d.kind == "observe")
    assert first_check.evidence["metric"] == "rmse"
    assert world.served[-1] < world.served[2] / 2


def test_a_plan_changed_by_a_person_is_adopted(store: Context) -> None:
    world = World(change=1)
    world.setup()
    world.play(range(0, 3))  # promotes version 2
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {2: 100}
    now = lw.autopilot.history(DEPLOYMENT)[-1].at_ms + 1
    lw.deployments.set_plan(DEPLOYMENT, 1, reason="a person prefers the old one")
    tick = lw.autopilot.run_once(DEPLOYMENT, now_ms=now)
    assert [d.kind for d in tick.decisions] == ["adopt"]
    state = lw.autopilot.state(DEPLOYMENT)
    assert state is not None and state.production == 1 and state.phase == "watching"
    # A split set by hand is not something the autopilot acts from: it pauses.
    lw.deployments.set_plan(DEPLOYMENT, {1: 50, 2: 50}, reason="a person tries a split")
    tick = lw.autopilot.run_once(DEPLOYMENT, now_ms=now + 1)
    assert [d.kind for d in tick.decisions] == ["hold"]
    state = lw.autopilot.state(DEPLOYMENT)
    assert state is not None and state.phase == "paused"
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {1: 50, 2: 50}  # left as the person set it


def test_a_shadow_rollout_judges_the_candidate_on_copies_before_it_takes_traffic(
    store: Context,
) -> None:
    rollout = {"strategy": "shadow", "min_samples": 60}
    world = World(change=2)
    world.setup(policy_text(rollout=rollout))
    world.play(range(0, 5))
    history = lw.autopilot.history(DEPLOYMENT)
    kinds = [d.kind for d in history]
    assert kinds.count("rollout") == 1 and kinds.count("promote") == 1
    shadowing = [c.plan for c in lw.deployments.history(DEPLOYMENT) if c.plan.shadow]
    assert [(p.shares, p.shadow) for p in shadowing] == [({1: 100}, [2])]
    promote = next(d for d in history if d.kind == "promote")
    # Judged on the shadow's answers to live requests: both arms saw the same rows.
    assert promote.evidence["rows"]["candidate"] == promote.evidence["rows"]["production"]
    assert promote.evidence["metric"]["candidate"] > promote.evidence["metric"]["baseline"]
    assert lw.deployments.get(DEPLOYMENT).plan.shares == {2: 100}


def test_a_blue_green_rollout_switches_at_once_after_the_gates(store: Context) -> None:
    world = World(change=2)
    world.setup(policy_text(rollout={"strategy": "blue-green"}))
    world.play(range(0, 4))
    kinds = world.kinds()
    assert "rollout" not in kinds and kinds.count("promote") == 1
    assert kinds.index("retrain") < kinds.index("promote")
    assert [c.plan.shares for c in lw.deployments.history(DEPLOYMENT)] == [{1: 100}, {2: 100}]
    # No rollout.alias in the policy: the registry's aliases are left alone.
    assert lw.models.get("synthetic/2").aliases == []


def test_the_report_draws_the_lines_and_marks_the_decisions(store: Context, tmp_path: Path) -> None:
    world = World(change=2)
    world.setup()
    world.play(range(0, 4))
    starts = [START_MS + i * DAY_MS for i in range(4)]
    path = write_report(
        tmp_path / "reports" / "autopilot.html",
        deployment=DEPLOYMENT,
        starts_ms=starts,
        series={"autopilot": world.served, "<static>": [0.9, 0.9, 0.5, 0.5]},
        labels=["day 0", "day 1", "day 2", "day 3"],
        decisions=lw.autopilot.history(DEPLOYMENT),
    )
    page = path.read_text()
    assert page.count("<script>") >= 2  # plotly.js inlined: no network needed
    assert "&lt;static&gt;" in page and "<static>" not in page  # names are escaped
    promote = next(d for d in lw.autopilot.history(DEPLOYMENT) if d.kind == "promote")
    assert esc(promote.summary.split(":")[0]) in page  # as the page escapes it
    assert '"promoted"' in page and "day 2" in page
    with pytest.raises(lw.LoopwiseError, match="one value per window"):
        write_report(
            tmp_path / "x.html",
            deployment=DEPLOYMENT,
            starts_ms=starts,
            series={"short": [1.0]},
            decisions=[],
        )


def test_an_unreachable_metrics_url_is_recorded_and_does_not_stop_the_rollout(
    store: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOOPWISE_ALLOW_OUTBOUND_HOSTS", "127.0.0.1:9")  # as an operator would
    rollout = {"steps": [20, 100], "min_samples": 60, "metrics_url": "http://127.0.0.1:9/metrics"}
    world = World(change=2)
    world.setup(policy_text(rollout=rollout))
    world.play(range(0, 4))
    promote = next(d for d in lw.autopilot.history(DEPLOYMENT) if d.kind == "promote")
    assert "could not be read" in promote.evidence["errors"]["unavailable"]


@pytest.mark.slow(seconds=8)  # the whole loop over many windows
def test_labels_a_whole_window_late_are_judged_when_they_come(store: Context) -> None:
    # Each window's labels come in while the next window is served: a check judges the
    # labelled rows served since the last rows it judged, not only the window just served.
    world = World(change=3, label_delay=1)
    world.setup()
    world.play(range(0, 8))
    history = lw.autopilot.history(DEPLOYMENT)
    judged = [d for d in history if d.evidence.get("drop", {}).get("source") == "realised"]
    assert judged and judged[0].evidence["check"]["labelled"] >= 150
    kinds = [d.kind for d in history]
    assert "retrain" in kinds and "promote" in kinds
    trigger = next(d for d in history if d.evidence.get("drop", {}).get("triggered"))
    # The drop is found in the window the labels came in, and traced back to the change.
    assert trigger.at_ms < START_MS + 5 * DAY_MS + 1
    assert abs(trigger.state["drop_since_ms"] - (START_MS + 3 * DAY_MS)) < DAY_MS / 8
    assert world.served[-1] > 0.85
