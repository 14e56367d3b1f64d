"""Autopilot policies and decisions on every ``Store`` backend: the same behaviour, the same refusals.

A backend's test class mixes ``AutopilotConformance`` in beside ``DeploymentConformance``, whose
``store`` (a fresh, empty store) and ``reopen`` fixtures it uses. SQL backends also mix in
``SqlAutopilotChecks``: the primary key, not only the read before it, refuses a second decision
with the same number.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store import AutopilotDecision, AutopilotPolicy, Store, TrafficPlan
from loopwise.store.sql.autopilot import SqlAutopilot

DIGEST = "sha256:" + "ab" * 32
# Valid policies: the REST API parses a policy before storing it.
POLICY_1 = "label: employed\nretrain:\n  pipeline: train.py:training\n"
POLICY_2 = (
    "# tighter gates after the March incident — see the runbook\n"
    "label: employed\nretrain:\n  pipeline: train.py:training\ngates:\n  alpha: 0.01   \n"
)


def _setup(store: Store, *deployments: str) -> None:
    store.get_or_create_project("proj")
    store.create_model_version("proj", "employment", flavour="sklearn", artifact_digest=DIGEST)
    for name in deployments or ("prod",):
        store.create_deployment("proj", name, "employment", TrafficPlan({1: 100}), "first")


def _decide(
    store: Store, seq: int, kind: str = "observe", deployment: str = "prod", **state: Any
) -> AutopilotDecision:
    return store.record_autopilot_decision(
        "proj",
        deployment,
        seq,
        kind,
        f"step {seq}: {kind}",
        {"step": seq, **state},
        {"window": [seq * 10, seq * 10 + 10]},
        1_700_000_000_000 + seq,
    )


def _refused(call: Callable[[], Any], parameter: str, *words: str) -> InvalidArgumentError:
    with pytest.raises(InvalidArgumentError) as info:
        call()
    assert info.value.details.get("parameter") == parameter, info.value.details
    for word in words:
        assert word in info.value.message, info.value.message
    return info.value


def _deep(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {}
    for _ in range(levels - 1):
        value = {"d": value}
    return value


# (state, evidence, parameter, words in the message)
BAD_JSON: list[tuple[Any, Any, str, tuple[str, ...]]] = [
    ([1, 2], {}, "state", ("JSON object", "got list")),
    (None, {}, "state", ("got NoneType",)),
    ({1: "a"}, {}, "state", ("state[1]", "key of type int")),
    ({"a": {"b": math.nan}}, {}, "state", ("state['a']['b']", "nan")),
    ({"a": [1, math.inf]}, {}, "state", ("state['a'][1]", "inf")),
    ({"seen": {1, 2}}, {}, "state", ("state['seen']", "set")),
    ({"a": "nul\x00"}, {}, "state", ("state['a']", "NUL")),
    (_deep(65), {}, "state", ("deeper than 64",)),
    ({"blob": "x" * 1_000_001}, {}, "state", ("at most 1000000 bytes",)),
    ({}, {"auc": math.nan}, "evidence", ("evidence['auc']", "nan")),
    ({}, "auc=0.9", "evidence", ("got str",)),
    ({}, {"at": object()}, "evidence", ("evidence['at']", "object")),
]

# (seq, kind, summary, at_ms, parameter, words)
BAD_FIELDS: list[tuple[Any, Any, Any, Any, str, str]] = [
    (0, "observe", "s", 0, "seq", "between 1 and"),
    (-1, "observe", "s", 0, "seq", "between 1 and"),
    (True, "observe", "s", 0, "seq", "integer"),
    (1.0, "observe", "s", 0, "seq", "integer"),
    (2**63, "observe", "s", 0, "seq", "between 1 and"),
    (1, "", "s", 0, "kind", "1-40 lowercase letters"),
    (1, "Retrain", "s", 0, "kind", "'Retrain'"),
    (1, "1st", "s", 0, "kind", "starting with a letter"),
    (1, "re train", "s", 0, "kind", "'re train'"),
    (1, "re.train", "s", 0, "kind", "'re.train'"),
    (1, "a" * 41, "s", 0, "kind", "1-40"),
    (1, 7, "s", 0, "kind", "got 7"),
    (1, "observe", "", 0, "summary", "one sentence"),
    (1, "observe", "   ", 0, "summary", "blank text"),
    (1, "observe", "x" * 2001, 0, "summary", "at most 2000 characters, got 2001"),
    (1, "observe", b"bytes", 0, "summary", "got bytes"),
    (1, "observe", "nul\x00", 0, "summary", "NUL"),
    (1, "observe", "s", -1, "at_ms", "between 0 and"),
    (1, "observe", "s", True, "at_ms", "integer"),
    (1, "observe", "s", 1.5, "at_ms", "integer"),
    (1, "observe", "s", "5", "at_ms", "integer"),
]


class AutopilotConformance:
    @pytest.fixture
    def reopen(self) -> Callable[[], Store]:
        raise NotImplementedError("A backend's test class must override the `reopen` fixture.")

    # -- policies ---------------------------------------------------------------------------------
    def test_autopilot_policy_revisions(self, store: Store) -> None:
        _setup(store)
        before = int(time.time() * 1000)
        first = store.set_autopilot_policy("proj", "prod", POLICY_1)
        assert (first.project, first.deployment, first.revision) == ("proj", "prod", 1)
        assert first.text == POLICY_1 and first.actor
        assert before <= first.created_ms <= int(time.time() * 1000)
        second = store.set_autopilot_policy("proj", "prod", POLICY_2)
        assert second.revision == 2 and second.text == POLICY_2  # comments, spaces and all
        assert store.get_autopilot_policy("proj", "prod") == second
        assert store.get_autopilot_policy("proj", "prod", revision=1) == first
        assert store.get_autopilot_policy("proj", "prod", revision=2) == second
        # The text in force again: nothing changes.
        assert store.set_autopilot_policy("proj", "prod", POLICY_2) == second
        # A policy seen before is a new revision when it comes back.
        third = store.set_autopilot_policy("proj", "prod", POLICY_1)
        assert (third.revision, third.text) == (3, POLICY_1)
        with pytest.raises(NotFoundError, match="no autopilot policy revision 4; its revisions "):
            store.get_autopilot_policy("proj", "prod", revision=4)

    def test_autopilot_policy_with_a_stale_revision_is_a_conflict(self, store: Store) -> None:
        _setup(store)
        first = store.set_autopilot_policy("proj", "prod", POLICY_1, expected_revision=0)
        assert first.revision == 1
        with pytest.raises(ConflictError, match="at revision 1, not the expected 0") as info:
            store.set_autopilot_policy("proj", "prod", POLICY_2, expected_revision=0)
        assert info.value.details["revision"] == 1
        # Even the text in force: the caller decided on stale facts and must look again.
        with pytest.raises(ConflictError):
            store.set_autopilot_policy("proj", "prod", POLICY_1, expected_revision=0)
        assert store.set_autopilot_policy("proj", "prod", POLICY_1, expected_revision=1) == first
        assert store.get_autopilot_policy("proj", "prod") == first
        second = store.set_autopilot_policy("proj", "prod", POLICY_2, expected_revision=1)
        assert second.revision == 2

    def test_a_deployment_without_a_policy_says_how_to_set_one(self, store: Store) -> None:
        _setup(store)
        with pytest.raises(NotFoundError) as info:
            store.get_autopilot_policy("proj", "prod")
        assert "'prod'" in info.value.message
        assert "loopwise autopilot set-policy prod FILE" in info.value.message
        with pytest.raises(NotFoundError, match="no autopilot policy"):
            store.get_autopilot_policy("proj", "prod", revision=1)

    def test_policies_belong_to_one_deployment(self, store: Store) -> None:
        _setup(store, "prod", "canary")
        store.set_autopilot_policy("proj", "prod", POLICY_1)
        store.set_autopilot_policy("proj", "prod", POLICY_2)
        other = store.set_autopilot_policy("proj", "canary", POLICY_2)
        assert other.revision == 1
        assert store.get_autopilot_policy("proj", "prod").revision == 2

    # -- decisions --------------------------------------------------------------------------------
    def test_decisions_are_numbered_read_in_order_and_paged(self, store: Store) -> None:
        _setup(store)
        assert store.latest_autopilot_decision("proj", "prod") is None
        assert store.autopilot_decisions("proj", "prod") == []
        kinds = ["observe", "retrain", "gate", "canary", "promote", "hold"]
        made = [_decide(store, seq, kind) for seq, kind in enumerate(kinds, start=1)]
        assert [(d.seq, d.kind) for d in made] == list(enumerate(kinds, start=1))
        assert made[0].summary == "step 1: observe" and made[0].at_ms == 1_700_000_000_001
        assert all(d.actor and d.created_ms > 0 for d in made)
        assert store.autopilot_decisions("proj", "prod") == made
        assert store.autopilot_decisions("proj", "prod", after_seq=2) == made[2:]
        assert store.autopilot_decisions("proj", "prod", limit=2) == made[:2]
        assert store.autopilot_decisions("proj", "prod", after_seq=2, limit=3) == made[2:5]
        assert store.autopilot_decisions("proj", "prod", after_seq=5, limit=3) == made[5:]
        assert store.autopilot_decisions("proj", "prod", after_seq=6) == []
        assert store.autopilot_decisions("proj", "prod", after_seq=100, limit=1) == []
        assert store.latest_autopilot_decision("proj", "prod") == made[-1]

    def test_a_decision_out_of_sequence_is_a_conflict(self, store: Store) -> None:
        _setup(store)
        with pytest.raises(ConflictError, match="no decision 1 yet.*the next is 1") as info:
            _decide(store, 2)
        assert info.value.details["expected_seq"] == 1
        first = _decide(store, 1)
        records = len(store.audit_log())
        with pytest.raises(ConflictError, match="already has decision 1.*the next is 2") as info:
            _decide(store, 1, "retrain")
        assert (info.value.details["seq"], info.value.details["expected_seq"]) == (1, 2)
        with pytest.raises(ConflictError, match="no decision 2 yet"):
            _decide(store, 3)  # a gap
        assert store.autopilot_decisions("proj", "prod") == [first]
        assert len(store.audit_log()) == records  # nothing was stored
        assert _decide(store, 2).seq == 2

    def test_decisions_are_numbered_per_deployment(self, store: Store) -> None:
        _setup(store, "prod", "canary")
        _decide(store, 1, deployment="prod")
        _decide(store, 2, deployment="prod")
        theirs = _decide(store, 1, "retrain", deployment="canary")
        assert store.autopilot_decisions("proj", "canary") == [theirs]
        assert store.latest_autopilot_decision("proj", "prod").seq == 2  # type: ignore[union-attr]

    def test_decision_json_round_trips(self, store: Store, reopen: Callable[[], Store]) -> None:
        _setup(store)
        state = {
            "phase": "canary",
            "candidate": {"version": 2, "share": 5, "started_ms": 1_700_000_000_000},
            "failed": [],
            "history": [{"step": 5, "ok": True}, {"step": 25, "ok": None}],
            "scores": [0.1, 1e-300, 1.0, -0.0, 2.5e300, 123456789.123456789],
            "big": 2**62,
            "nothing": None,
            "empty": {},
            "unicode": "Zürich — 東京 ✓",
            "pair": (1, "two"),  # a tuple is a JSON array: it comes back as a list
        }
        evidence = {"auc": {"production": 0.8125, "candidate": 0.84375}, "p_value": 0.0031}
        made = store.record_autopilot_decision(
            "proj", "prod", 1, "canary", "Canary at 5%.", state, evidence, 0
        )
        expected = {**state, "pair": [1, "two"]}
        assert made.state == expected and made.evidence == evidence and made.at_ms == 0
        read = store.autopilot_decisions("proj", "prod")[0]
        assert read == made
        assert isinstance(read.state["scores"][2], float)  # 1.0 stays a float
        assert isinstance(read.state["big"], int) and read.state["big"] == 2**62
        assert math.copysign(1.0, read.state["scores"][3]) == -1.0
        assert list(read.state) == list(state)  # keys keep their order
        assert reopen().latest_autopilot_decision("proj", "prod") == made

    def test_concurrent_decisions_with_one_seq_record_one(self, store: Store) -> None:
        _setup(store)
        _decide(store, 1)
        outcomes: list[object] = [None] * 8
        start = threading.Barrier(len(outcomes))

        def record(i: int) -> None:
            start.wait()
            try:
                outcomes[i] = _decide(store, 2, "retrain", writer=i)
            except ConflictError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=record, args=(i,)) for i in range(len(outcomes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won = [o for o in outcomes if isinstance(o, AutopilotDecision)]
        assert len(won) == 1, outcomes
        assert sum(isinstance(o, ConflictError) for o in outcomes) == len(outcomes) - 1
        assert store.autopilot_decisions("proj", "prod", after_seq=1) == won
        assert store.latest_autopilot_decision("proj", "prod") == won[0]
        audited = [r for r in store.audit_log() if r.action == "autopilot.retrain"]
        assert len(audited) == 1 and (audited[0].after or {})["seq"] == 2

    def test_concurrent_first_policies_make_one(self, store: Store) -> None:
        _setup(store)
        outcomes: list[object] = [None] * 6
        start = threading.Barrier(len(outcomes))

        def set_policy(i: int) -> None:
            start.wait()
            try:
                text = POLICY_1 + f"# writer {i}\n"
                outcomes[i] = store.set_autopilot_policy("proj", "prod", text, expected_revision=0)
            except ConflictError as exc:
                outcomes[i] = exc

        threads = [threading.Thread(target=set_policy, args=(i,)) for i in range(len(outcomes))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        won = [o for o in outcomes if isinstance(o, AutopilotPolicy)]
        assert len(won) == 1 and won[0].revision == 1, outcomes
        assert store.get_autopilot_policy("proj", "prod") == won[0]

    # -- bad input and unknown deployments --------------------------------------------------------
    @pytest.mark.parametrize(("state", "evidence", "parameter", "words"), BAD_JSON)
    def test_bad_decision_json_is_refused_naming_the_key(
        self, store: Store, state: Any, evidence: Any, parameter: str, words: tuple[str, ...]
    ) -> None:
        _setup(store)
        _refused(
            lambda: store.record_autopilot_decision(
                "proj", "prod", 1, "observe", "s", state, evidence, 0
            ),
            parameter,
            parameter,
            *words,
        )
        assert store.latest_autopilot_decision("proj", "prod") is None

    @pytest.mark.parametrize(("seq", "kind", "summary", "at_ms", "parameter", "words"), BAD_FIELDS)
    def test_bad_decision_fields_are_refused(
        self,
        store: Store,
        seq: Any,
        kind: Any,
        summary: Any,
        at_ms: Any,
        parameter: str,
        words: str,
    ) -> None:
        _setup(store)
        _refused(
            lambda: store.record_autopilot_decision(
                "proj", "prod", seq, kind, summary, {}, {}, at_ms
            ),
            parameter,
            words,
        )
        assert store.latest_autopilot_decision("proj", "prod") is None

    def test_bad_policy_and_read_arguments_are_refused(self, store: Store) -> None:
        _setup(store)
        calls: list[tuple[Callable[[], Any], str, str]] = [
            (lambda: store.set_autopilot_policy("proj", "prod", ""), "text", "blank text"),
            (lambda: store.set_autopilot_policy("proj", "prod", " \n"), "text", "blank text"),
            (lambda: store.set_autopilot_policy("proj", "prod", 5), "text", "got int"),  # type: ignore[arg-type]
            (
                lambda: store.set_autopilot_policy("proj", "prod", "a: " + "x" * 1_000_000),
                "text",
                "at most 1000000 characters",
            ),
            (lambda: store.set_autopilot_policy("proj", "prod", "a\x00"), "text", "NUL"),
            (
                lambda: store.set_autopilot_policy("proj", "prod", POLICY_1, -1),
                "expected_revision",
                "between 0 and",
            ),
            (
                lambda: store.set_autopilot_policy("proj", "prod", POLICY_1, True),
                "expected_revision",
                "integer",
            ),
            (
                lambda: store.get_autopilot_policy("proj", "prod", revision=0),
                "revision",
                "between 1 and",
            ),
            (
                lambda: store.autopilot_decisions("proj", "prod", after_seq=-1),
                "after_seq",
                "between 0 and",
            ),
            (
                lambda: store.autopilot_decisions("proj", "prod", after_seq=True),
                "after_seq",
                "integer",
            ),
            (lambda: store.autopilot_decisions("proj", "prod", limit=0), "limit", "between 1"),
            (lambda: store.autopilot_decisions("proj", "prod", limit="5"), "limit", "integer"),  # type: ignore[arg-type]
            (lambda: store.latest_autopilot_decision("proj", "a b"), "name", "deployment name"),
        ]
        for call, parameter, words in calls:
            _refused(call, parameter, words)
        with pytest.raises(NotFoundError):
            store.get_autopilot_policy("proj", "prod")

    def test_unknown_deployments_are_not_found(self, store: Store) -> None:
        _setup(store)
        calls: list[Callable[[], Any]] = [
            lambda: store.set_autopilot_policy("proj", "prdo", POLICY_1),
            lambda: store.get_autopilot_policy("proj", "prdo"),
            lambda: _decide(store, 1, deployment="prdo"),
            lambda: store.autopilot_decisions("proj", "prdo"),
            lambda: store.latest_autopilot_decision("proj", "prdo"),
        ]
        for call in calls:
            with pytest.raises(NotFoundError, match="No deployment named 'prdo'.*'prod'"):
                call()
        with pytest.raises(NotFoundError, match="No project named 'nope'"):
            store.latest_autopilot_decision("nope", "prod")
        assert not [r for r in store.audit_log() if r.action.startswith("autopilot.")]

    # -- audit and persistence --------------------------------------------------------------------
    def test_autopilot_changes_are_audited(self, store: Store) -> None:
        _setup(store)
        store.set_autopilot_policy("proj", "prod", POLICY_1)
        store.set_autopilot_policy("proj", "prod", POLICY_1)  # a no-op: no record
        store.set_autopilot_policy("proj", "prod", POLICY_2)
        first = _decide(store, 1)
        _decide(store, 2, "retrain")
        records = [r for r in store.audit_log() if r.action.startswith("autopilot.")]
        assert [r.action for r in records] == [
            "autopilot.policy",
            "autopilot.policy",
            "autopilot.observe",
            "autopilot.retrain",
        ]
        assert {(r.project, r.target) for r in records} == {("proj", "deployment:prod")}
        set_first, set_second, observe, retrain = records
        assert set_first.before is None
        assert set_first.after == {"revision": 1, "text": POLICY_1}
        assert set_second.before == {"revision": 1}
        assert set_second.after == {"revision": 2, "text": POLICY_2}
        assert observe.before is None
        assert observe.after == {
            "seq": 1,
            "kind": "observe",
            "summary": "step 1: observe",
            "at_ms": 1_700_000_000_001,
        }
        assert (retrain.after or {})["summary"] == "step 2: retrain"
        assert observe.actor == first.actor
        assert store.verify_audit().ok

    def test_autopilot_persists_across_reopening(
        self, store: Store, reopen: Callable[[], Store]
    ) -> None:
        _setup(store)
        store.set_autopilot_policy("proj", "prod", POLICY_1)
        store.set_autopilot_policy("proj", "prod", POLICY_2)
        made = [_decide(store, seq) for seq in (1, 2, 3)]
        again = reopen()
        assert again.get_autopilot_policy("proj", "prod", revision=1).text == POLICY_1
        assert again.get_autopilot_policy("proj", "prod").revision == 2
        assert again.autopilot_decisions("proj", "prod") == made
        # And it goes on from there, with the old instance seeing the new decision.
        with pytest.raises(ConflictError):
            _decide(again, 3)
        fourth = _decide(again, 4)
        assert store.latest_autopilot_decision("proj", "prod") == fourth


class SqlAutopilotChecks:
    """For SQL backends: a controller whose read of the last decision is stale (another one
    committed after it) is still refused, by the primary key."""

    def test_the_primary_key_refuses_a_decision_recorded_after_a_stale_read(
        self, store: Store, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert isinstance(store, SqlAutopilot)
        _setup(store)
        first = _decide(store, 1)
        # The next read of the last seq answers as it would have before decision 1 committed.
        real = SqlAutopilot._last_seq
        reads: list[int] = []

        def stale(self: SqlAutopilot, conn: Any, deployment_id: int) -> int:
            reads.append(deployment_id)
            return 0 if len(reads) == 1 else real(self, conn, deployment_id)

        monkeypatch.setattr(SqlAutopilot, "_last_seq", stale)
        with pytest.raises(ConflictError, match="already has decision 1.*the next is 2") as info:
            _decide(store, 1, "retrain")
        assert info.value.details["expected_seq"] == 2 and len(reads) == 2
        assert store.autopilot_decisions("proj", "prod") == [first]
        assert [r.action for r in store.audit_log() if r.action.startswith("autopilot.")] == [
            "autopilot.observe"
        ]
