"""Outcomes and alerts on every ``Store`` backend: the same behaviour, the same refusals.

A backend's test class mixes ``MonitoringConformance`` in beside ``StoreConformance`` and
provides the same ``store`` fixture (a fresh, empty store).
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any

import numpy as np
import pytest

from loopwise.errors import InvalidArgumentError, NotFoundError
from loopwise.store import Outcome, OutcomeReceipt, Store
from loopwise.store.checks import MAX_DETAILS_CHARS

T0_MS = 1_700_000_000_000


def _project(store: Store, name: str = "proj") -> str:
    store.get_or_create_project(name)
    return name


def _raise(store: Store, fingerprint: str = "drift/churn/AGEP", **changes: Any) -> Any:
    fields: dict[str, Any] = {
        "deployment": "churn",
        "rule": "drift",
        "severity": "warning",
        "fingerprint": fingerprint,
        "message": "AGEP drifted (PSI 0.31 > 0.2)",
        "details": {"column": "AGEP", "psi": 0.31, "bins": [1, 2, 3]},
        "window_start_ms": T0_MS,
        "window_end_ms": T0_MS + 3_600_000,
    }
    fields.update(changes)
    return store.raise_alert("proj", **fields)


class MonitoringConformance:
    # -- outcomes -------------------------------------------------------------------------------
    def test_outcomes_are_recorded_once_and_read_back(self, store: Store) -> None:
        _project(store)
        before = int(time.time() * 1000)
        receipt = store.record_outcomes(
            "proj",
            "churn",
            [
                Outcome("r1:0", 1),
                Outcome("r1:1", "employed", timestamp_ms=T0_MS),
                ("r2:0", True),
                ("r3:0", 0.25, T0_MS + 5),
            ],
        )
        assert receipt == OutcomeReceipt(new=4, duplicates=0, updated=0, conflicts=[])
        found = store.get_outcomes("proj", "churn", ["r1:0", "r1:1", "r2:0", "r3:0", "nope"])
        assert sorted(found) == ["r1:0", "r1:1", "r2:0", "r3:0"]
        assert [found[k].value for k in sorted(found)] == [1, "employed", True, 0.25]
        assert type(found["r1:0"].value) is int and type(found["r2:0"].value) is bool
        assert found["r1:1"].timestamp_ms == T0_MS
        assert found["r3:0"].timestamp_ms == T0_MS + 5
        now = int(time.time() * 1000)
        assert found["r1:0"].timestamp_ms is not None
        assert before <= found["r1:0"].timestamp_ms <= now  # no timestamp: when received
        assert all(before <= o.received_ms <= now for o in found.values())

    def test_duplicates_are_no_ops_and_conflicts_are_reported(self, store: Store) -> None:
        _project(store)
        store.record_outcomes("proj", "churn", [("a", 1), ("b", "x"), ("c", 2.5)])
        before = store.get_outcomes("proj", "churn", ["a", "b", "c"])
        # 1.0 is the same value as 1; an id twice with the same value in one batch is a repeat.
        again = store.record_outcomes(
            "proj", "churn", [("a", 1.0), ("b", "y"), ("c", 2.5), ("d", 0), ("d", 0)]
        )
        assert again == OutcomeReceipt(new=1, duplicates=3, updated=0, conflicts=["b"])
        after = store.get_outcomes("proj", "churn", ["a", "b", "c"])
        assert after == before  # nothing changed, not even received_ms

    def test_overwrite_replaces_only_conflicts(self, store: Store) -> None:
        _project(store)
        store.record_outcomes("proj", "churn", [("a", 1), ("b", 0)])
        old = store.get_outcomes("proj", "churn", ["a", "b"])
        time.sleep(0.002)
        receipt = store.record_outcomes(
            "proj", "churn", [("a", 1), ("b", 1, T0_MS), ("c", 1)], overwrite=True
        )
        assert receipt == OutcomeReceipt(new=1, duplicates=1, updated=1, conflicts=[])
        new = store.get_outcomes("proj", "churn", ["a", "b", "c"])
        assert new["a"] == old["a"]
        assert (new["b"].value, new["b"].timestamp_ms) == (1, T0_MS)
        assert new["b"].received_ms > old["b"].received_ms

    def test_outcomes_batch_equals_loop(self, store: Store) -> None:
        _project(store)
        outcomes = [(f"r{i}:0", i % 3 == 0, T0_MS + i) for i in range(50)]
        store.record_outcomes("proj", "batch", outcomes)
        for outcome in outcomes:
            store.record_outcomes("proj", "loop", [outcome])
        ids = [o[0] for o in outcomes]

        def values(deployment: str) -> dict[str, Any]:
            found = store.get_outcomes("proj", deployment, ids)
            return {k: (o.value, o.timestamp_ms) for k, o in found.items()}

        assert values("batch") == values("loop")
        assert len(values("batch")) == 50

    def test_outcomes_are_kept_per_deployment_and_project(self, store: Store) -> None:
        _project(store)
        _project(store, "other")
        store.record_outcomes("proj", "churn", [("r1", 1)])
        store.record_outcomes("proj", "upsell", [("r1", 0)])
        store.record_outcomes("other", "churn", [("r1", "x")])
        assert store.get_outcomes("proj", "churn", ["r1"])["r1"].value == 1
        assert store.get_outcomes("proj", "upsell", ["r1"])["r1"].value == 0
        assert store.get_outcomes("other", "churn", ["r1"])["r1"].value == "x"
        assert store.get_outcomes("proj", "nothing", ["r1"]) == {}

    def test_numpy_values_and_large_batches(self, store: Store) -> None:
        _project(store)
        n = 12_000  # more than one statement, one IN-query and one REST call hold
        labels = np.arange(n) % 2
        ids = [f"req-{i}:0" for i in range(n)]
        receipt = store.record_outcomes("proj", "churn", list(zip(ids, labels, strict=True)))
        assert (receipt.new, receipt.duplicates) == (n, 0)
        found = store.get_outcomes("proj", "churn", [*ids, *ids[:10]])
        assert len(found) == n
        assert [found[i].value for i in ids] == labels.tolist()
        again = store.record_outcomes("proj", "churn", [(ids[0], np.float64(0.0)), (ids[1], 7)])
        assert again == OutcomeReceipt(new=0, duplicates=1, conflicts=[ids[1]])

    @pytest.mark.parametrize(
        ("outcome", "match"),
        [
            (("r", math.nan), "finite number"),
            (("r", math.inf), "finite number"),
            (("r", np.float32("nan")), "finite number"),
            (("r", None), "a number, a string or a bool"),
            (("r", [1, 2]), "a number, a string or a bool"),
            (("r", {"a": 1}), "a number, a string or a bool"),
            (("", 1), "1-256 characters"),
            (("x" * 257, 1), "1-256 characters"),
            ((17, 1), "1-256 characters"),
            (("r", "x" * 1001), "at most 1000"),
            (("r", "a\x00b"), "NUL"),
            (("r", 1, -5), "timestamp_ms >= 0"),
            (("r", 1, 1.5), "timestamp_ms as an integer"),
            (("r",), "Outcome"),
            ("r", "Outcome"),
        ],
    )
    def test_bad_outcomes_are_refused_whole(self, store: Store, outcome: Any, match: str) -> None:
        _project(store)
        with pytest.raises(InvalidArgumentError, match=match):
            store.record_outcomes("proj", "churn", [("good", 1), outcome])
        assert store.get_outcomes("proj", "churn", ["good"]) == {}

    def test_bad_outcome_arguments(self, store: Store) -> None:
        _project(store)
        with pytest.raises(InvalidArgumentError, match="different outcomes"):
            store.record_outcomes("proj", "churn", [("a", 1), ("a", 2)])
        with pytest.raises(InvalidArgumentError, match="deployment name"):
            store.record_outcomes("proj", "bad name", [("a", 1)])
        with pytest.raises(InvalidArgumentError, match="overwrite"):
            store.record_outcomes("proj", "churn", [("a", 1)], overwrite="yes")  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="list"):
            store.record_outcomes("proj", "churn", {"a": 1})  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="list of strings"):
            store.get_outcomes("proj", "churn", "a")
        with pytest.raises(InvalidArgumentError, match="1-256"):
            store.get_outcomes("proj", "churn", ["a", ""])
        with pytest.raises(NotFoundError):
            store.record_outcomes("missing", "churn", [("a", 1)])
        with pytest.raises(NotFoundError):
            store.get_outcomes("missing", "churn", ["a"])
        assert store.record_outcomes("proj", "churn", []) == OutcomeReceipt(0, 0)
        assert store.get_outcomes("proj", "churn", []) == {}

    def test_recording_outcomes_is_audited_when_it_changes_something(self, store: Store) -> None:
        _project(store)
        store.record_outcomes("proj", "churn", [("a", 1)])
        store.record_outcomes("proj", "churn", [("a", 1)])  # a no-op: no record
        store.record_outcomes("proj", "churn", [("a", 0)], overwrite=True)
        records = [r for r in store.audit_log() if r.action == "outcomes.record"]
        assert [(r.after or {}).get("new") for r in records] == [1, 0]
        assert (records[1].after or {})["updated_ids"] == ["a"]
        assert records[0].target == "deployment:proj/churn"

    # -- alerts ---------------------------------------------------------------------------------
    def test_alert_is_raised_then_deduplicated(self, store: Store) -> None:
        _project(store)
        alert, created = _raise(store)
        assert created
        assert (alert.project, alert.deployment, alert.rule, alert.severity) == (
            "proj",
            "churn",
            "drift",
            "warning",
        )
        assert (alert.status, alert.occurrences, alert.resolved_ms) == ("open", 1, None)
        assert alert.details == {"column": "AGEP", "psi": 0.31, "bins": [1, 2, 3]}
        assert alert.first_seen_ms == alert.last_seen_ms
        assert (alert.window_start_ms, alert.window_end_ms) == (T0_MS, T0_MS + 3_600_000)
        time.sleep(0.002)
        again, created = _raise(
            store,
            severity="critical",
            message="AGEP drifted more",
            details={"psi": 0.5},
            window_start_ms=T0_MS + 3_600_000,
            window_end_ms=T0_MS + 7_200_000,
        )
        assert not created
        assert again.id == alert.id and again.occurrences == 2
        assert again.first_seen_ms == alert.first_seen_ms < again.last_seen_ms
        assert (again.severity, again.message, again.details) == (
            "critical",
            "AGEP drifted more",
            {"psi": 0.5},
        )
        assert again.window_start_ms == T0_MS + 3_600_000
        assert store.get_alert("proj", alert.id) == again
        other, created = _raise(store, fingerprint="drift/churn/SCHL")
        assert created and other.id != alert.id
        assert len(store.list_alerts("proj")) == 2

    def test_a_repeat_that_changes_severity_or_message_is_audited(self, store: Store) -> None:
        _project(store)
        alert, _ = _raise(store, severity="critical", message="AGEP drifted a lot")
        _raise(store, severity="critical", message="AGEP drifted a lot", details={"psi": 0.4})
        again, created = _raise(store, severity="info", message="all is well")
        assert not created and again.id == alert.id and again.occurrences == 3
        records = [r for r in store.audit_log() if r.action.startswith("alert.")]
        # The plain repeat only counts; the one that rewrote what people read is on record.
        assert [(r.action, r.target, r.before, r.after) for r in records] == [
            ("alert.open", f"alert:{alert.id}", None, records[0].after),
            (
                "alert.update",
                f"alert:{alert.id}",
                {"severity": "critical", "message": "AGEP drifted a lot"},
                {"severity": "info", "message": "all is well", "occurrences": 3},
            ),
        ]

    def test_resolve_then_raise_opens_a_new_alert(self, store: Store) -> None:
        _project(store)
        alert, _ = _raise(store)
        resolved = store.resolve_alert("proj", alert.id)
        assert resolved.status == "resolved" and resolved.resolved_ms is not None
        assert resolved.occurrences == alert.occurrences
        assert store.resolve_alert("proj", alert.id) == resolved  # twice: no change
        fresh, created = _raise(store)
        assert created and fresh.id != alert.id and fresh.occurrences == 1
        assert store.get_alert("proj", alert.id).status == "resolved"
        actions = [r.action for r in store.audit_log() if r.action.startswith("alert.")]
        assert actions == ["alert.open", "alert.resolve", "alert.open"]

    def test_list_alerts_filters_and_orders(self, store: Store) -> None:
        _project(store)
        first, _ = _raise(store, fingerprint="a")
        time.sleep(0.002)
        second, _ = _raise(store, fingerprint="b", deployment="upsell")
        time.sleep(0.002)
        third, _ = _raise(store, fingerprint="c", deployment=None, rule="traffic")
        store.resolve_alert("proj", second.id)
        assert [a.id for a in store.list_alerts("proj")] == [third.id, second.id, first.id]
        assert [a.id for a in store.list_alerts("proj", status="open")] == [third.id, first.id]
        assert [a.id for a in store.list_alerts("proj", status="resolved")] == [second.id]
        assert [a.id for a in store.list_alerts("proj", deployment="upsell")] == [second.id]
        assert store.get_alert("proj", third.id).deployment is None
        assert [a.id for a in store.list_alerts("proj", limit=1)] == [third.id]
        since = store.get_alert("proj", second.id).last_seen_ms
        assert [a.id for a in store.list_alerts("proj", since_ms=since)] == [third.id, second.id]
        _raise(store, fingerprint="a")  # a repeat moves it to the front
        assert store.list_alerts("proj")[0].id == first.id

    def test_alerts_belong_to_their_project(self, store: Store) -> None:
        _project(store)
        _project(store, "other")
        alert, _ = _raise(store)
        assert store.list_alerts("other") == []
        with pytest.raises(NotFoundError, match="no alert"):
            store.get_alert("other", alert.id)
        with pytest.raises(NotFoundError, match="no alert"):
            store.resolve_alert("other", alert.id)
        with pytest.raises(NotFoundError, match="no alert"):
            store.get_alert("proj", alert.id + 100)
        with pytest.raises(NotFoundError):
            store.list_alerts("missing")
        # The same fingerprint in another project is another alert.
        _, created = store.raise_alert(
            "other", deployment=None, rule="drift", severity="info", fingerprint=alert.fingerprint,
            message="m",
        )  # fmt: skip
        assert created

    @pytest.mark.parametrize(
        ("changes", "match"),
        [
            ({"severity": "fatal"}, "severity"),
            ({"fingerprint": ""}, "fingerprint"),
            ({"fingerprint": "x" * 501}, "fingerprint"),
            ({"rule": ""}, "rule"),
            ({"message": " "}, "message"),
            ({"deployment": "no spaces"}, "deployment name"),
            ({"details": {"psi": math.nan}}, "finite"),
            ({"details": {"when": object()}}, "JSON values"),
            ({"details": ["not", "a", "dict"]}, "dict"),
            ({"details": {"big": "x" * MAX_DETAILS_CHARS}}, "at most"),
            ({"window_start_ms": T0_MS + 1, "window_end_ms": T0_MS}, "start_ms <= end_ms"),
            ({"window_start_ms": -1}, "start_ms"),
        ],
    )
    def test_bad_alerts_are_refused(
        self, store: Store, changes: dict[str, Any], match: str
    ) -> None:
        _project(store)
        with pytest.raises(InvalidArgumentError, match=match):
            _raise(store, **changes)
        assert store.list_alerts("proj") == []

    def test_bad_alert_queries_are_refused(self, store: Store) -> None:
        _project(store)
        bad_queries: list[tuple[dict[str, Any], str]] = [
            ({"status": "closed"}, "status"),
            ({"limit": 0}, "limit"),
            ({"limit": 10_001}, "limit"),
            ({"since_ms": -1}, "start_ms"),
            ({"deployment": "a b"}, "deployment"),
        ]
        for kwargs, match in bad_queries:
            with pytest.raises(InvalidArgumentError, match=match):
                store.list_alerts("proj", **kwargs)
        for bad in (0, -1, "1", True):
            with pytest.raises(InvalidArgumentError, match="alert_id"):
                store.get_alert("proj", bad)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="alert_id"):
                store.resolve_alert("proj", bad)  # type: ignore[arg-type]

    def test_concurrent_raises_make_one_alert(self, store: Store) -> None:
        _project(store)
        threads, repeats = 6, 5
        created: list[bool] = []
        errors: list[BaseException] = []
        start = threading.Barrier(threads)

        def work() -> None:
            try:
                start.wait()
                for _ in range(repeats):
                    created.append(_raise(store, fingerprint="hot")[1])
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        workers = [threading.Thread(target=work) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
        assert errors == []
        alerts = store.list_alerts("proj")
        assert len(alerts) == 1
        assert alerts[0].occurrences == threads * repeats
        assert created.count(True) == 1
