"""The behaviour every ``Store`` backend must have, written against the abstract interface only.

A backend's test module subclasses ``StoreConformance`` and overrides the ``store`` fixture with
a fresh, empty store of its kind; a backend is done when this suite passes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from loopwise.errors import ConflictError, InvalidArgumentError, NotFoundError
from loopwise.store import ArtifactFile, DatasetVersion, MetricEntry, Run, RunStatus, Store

T0_MS = 1_700_000_000_000
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
LOG_MODES = ("sync", "async")


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _log(store: Store, entries: Sequence[MetricEntry], mode: str) -> None:
    """Log through one of the two write paths, so each behaviour is checked on both."""
    if mode == "sync":
        store.log_metrics(entries)
    else:
        for entry in entries:
            store.log_metric_async(entry)
        store.flush()


def _names(runs: Sequence[Run]) -> list[str]:
    return [run.name for run in runs]


class StoreConformance:
    """Generic checks of the ``Store`` interface; subclasses provide the ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        raise NotImplementedError("A backend's test class must override the `store` fixture.")

    @pytest.fixture
    def run_id(self, store: Store) -> str:
        store.get_or_create_project("proj")
        return store.create_run("proj", "run").id

    # -- projects -------------------------------------------------------------------------------
    def test_get_or_create_project_is_idempotent(self, store: Store) -> None:
        first = store.get_or_create_project("alpha")
        again = store.get_or_create_project("alpha")
        assert again.id == first.id
        assert first.name == "alpha"
        assert store.get_project("alpha") == first
        assert [p.name for p in store.list_projects()] == ["alpha"]

    def test_projects_are_distinct(self, store: Store) -> None:
        a = store.get_or_create_project("alpha")
        b = store.get_or_create_project("beta")
        assert a.id != b.id
        assert {p.name for p in store.list_projects()} == {"alpha", "beta"}

    def test_get_unknown_project_lists_existing_names(self, store: Store) -> None:
        store.get_or_create_project("alpha")
        store.get_or_create_project("beta")
        with pytest.raises(NotFoundError) as info:
            store.get_project("gamma")
        message = str(info.value)
        assert "'gamma'" in message
        assert "'alpha'" in message and "'beta'" in message

    def test_get_project_in_empty_store_says_none_exist(self, store: Store) -> None:
        with pytest.raises(NotFoundError, match="'gamma'"):
            store.get_project("gamma")

    @pytest.mark.parametrize("name", ["", "has space", "slash/name", 7])
    def test_invalid_project_name_is_rejected(self, store: Store, name: object) -> None:
        with pytest.raises(InvalidArgumentError):
            store.get_or_create_project(name)  # type: ignore[arg-type]
        assert store.list_projects() == []

    # -- runs -----------------------------------------------------------------------------------
    def test_create_and_get_run(self, store: Store) -> None:
        store.get_or_create_project("proj")
        before_ms = int(time.time() * 1000)
        run = store.create_run(
            "proj", "first", tags={"team": "core"}, environment={"python": "3.11"}
        )
        after_ms = int(time.time() * 1000)
        assert run.project == "proj"
        assert run.name == "first"
        assert run.status is RunStatus.RUNNING
        assert before_ms - 1000 <= run.start_ms <= after_ms + 1000
        assert run.end_ms is None
        assert run.tags == {"team": "core"}
        assert run.environment == {"python": "3.11"}
        assert run.params == {}
        assert run.metrics == {}
        assert store.get_run(run.id) == run

    def test_runs_get_unique_ids(self, store: Store) -> None:
        store.get_or_create_project("proj")
        ids = {store.create_run("proj", "same-name").id for _ in range(3)}
        assert len(ids) == 3

    def test_create_run_in_unknown_project(self, store: Store) -> None:
        store.get_or_create_project("proj")
        with pytest.raises(NotFoundError, match="'nope'"):
            store.create_run("nope", "run")

    @pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
    def test_end_run_records_status_and_end_time(
        self, store: Store, run_id: str, status: RunStatus
    ) -> None:
        ended = store.end_run(run_id, status)
        assert ended.status is status
        assert ended.end_ms is not None and ended.end_ms >= ended.start_ms
        assert store.get_run(run_id) == ended

    def test_end_run_with_unknown_status(self, store: Store, run_id: str) -> None:
        with pytest.raises(InvalidArgumentError, match="DONE"):
            store.end_run(run_id, "DONE")  # type: ignore[arg-type]
        assert store.get_run(run_id).status is RunStatus.RUNNING

    def test_end_run_makes_async_metrics_visible(self, store: Store, run_id: str) -> None:
        store.log_metric_async(MetricEntry(run_id, "loss", 0.25, 0, T0_MS))
        ended = store.end_run(run_id, RunStatus.FINISHED)
        assert ended.metrics == {"loss": 0.25}

    def test_unknown_run_id_is_not_found(self, store: Store) -> None:
        store.get_or_create_project("proj")
        missing = "0" * 32
        with pytest.raises(NotFoundError, match=missing):
            store.get_run(missing)
        with pytest.raises(NotFoundError):
            store.end_run(missing, RunStatus.FINISHED)
        with pytest.raises(NotFoundError):
            store.set_tags(missing, {"a": "b"})
        with pytest.raises(NotFoundError):
            store.log_params(missing, {"a": "b"})

    def test_set_tags_adds_and_overwrites(self, store: Store) -> None:
        store.get_or_create_project("proj")
        run = store.create_run("proj", "run", tags={"team": "core", "stage": "dev"})
        store.set_tags(run.id, {"stage": "prod", "owner": "ana"})
        assert store.get_run(run.id).tags == {"team": "core", "stage": "prod", "owner": "ana"}

    def test_params_are_stored_as_strings(self, store: Store, run_id: str) -> None:
        store.log_params(run_id, {"lr": 0.1, "depth": 6, "model": "hgb"})  # type: ignore[dict-item]
        assert store.get_run(run_id).params == {"lr": "0.1", "depth": "6", "model": "hgb"}

    def test_params_are_write_once(self, store: Store, run_id: str) -> None:
        store.log_params(run_id, {"lr": "0.1", "depth": "6"})
        store.log_params(run_id, {"lr": "0.1"})  # the same value again is fine
        with pytest.raises(ConflictError) as info:
            store.log_params(run_id, {"lr": "0.2"})
        assert "'lr'" in str(info.value)
        assert "0.1" in str(info.value) and "0.2" in str(info.value)
        assert store.get_run(run_id).params == {"lr": "0.1", "depth": "6"}

    def test_conflicting_params_write_nothing(self, store: Store, run_id: str) -> None:
        store.log_params(run_id, {"lr": "0.1"})
        with pytest.raises(ConflictError):
            store.log_params(run_id, {"fresh": "x", "lr": "0.2"})
        assert store.get_run(run_id).params == {"lr": "0.1"}

    @pytest.mark.parametrize("key", ["", "bad\nkey", "x" * 251, 3])
    def test_invalid_param_or_tag_key(self, store: Store, run_id: str, key: object) -> None:
        with pytest.raises(InvalidArgumentError):
            store.log_params(run_id, {key: "v"})  # type: ignore[dict-item]
        with pytest.raises(InvalidArgumentError):
            store.set_tags(run_id, {key: "v"})  # type: ignore[dict-item]
        run = store.get_run(run_id)
        assert run.params == {} and run.tags == {}

    # -- metrics --------------------------------------------------------------------------------
    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_metric_round_trip(self, store: Store, run_id: str, mode: str) -> None:
        entries = [MetricEntry(run_id, "loss", 1.0 / (i + 1), i, T0_MS + i) for i in range(50)]
        _log(store, entries, mode)
        history = store.get_metric_history(run_id, "loss")
        assert [(m.key, m.value, m.step, m.timestamp_ms) for m in history] == [
            (e.key, e.value, e.step, e.timestamp_ms) for e in entries
        ]
        assert store.get_run(run_id).metrics == {"loss": 1.0 / 50}

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_non_finite_values_round_trip_exactly(
        self, store: Store, run_id: str, mode: str
    ) -> None:
        values = {
            "nan": math.nan,
            "pinf": math.inf,
            "ninf": -math.inf,
            "tiny": 5e-324,
            "big": 1.7e308,
        }
        _log(store, [MetricEntry(run_id, k, v, 0, T0_MS) for k, v in values.items()], mode)
        latest = store.get_run(run_id).metrics
        assert set(latest) == set(values)
        assert math.isnan(latest["nan"])
        assert latest["pinf"] == math.inf
        assert latest["ninf"] == -math.inf
        assert latest["tiny"] == 5e-324
        assert latest["big"] == 1.7e308
        assert math.isnan(store.get_metric_history(run_id, "nan")[0].value)
        assert store.get_metric_history(run_id, "pinf")[0].value == math.inf
        assert store.get_metric_history(run_id, "ninf")[0].value == -math.inf

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_numpy_numbers_are_accepted(self, store: Store, run_id: str, mode: str) -> None:
        entries = [
            MetricEntry(run_id, "f32", np.float32(0.5), 0, T0_MS),  # type: ignore[arg-type]
            MetricEntry(run_id, "i64", np.int64(3), 0, T0_MS),  # type: ignore[arg-type]
        ]
        _log(store, entries, mode)
        assert store.get_run(run_id).metrics == {"f32": 0.5, "i64": 3.0}

    @pytest.mark.parametrize("mode", LOG_MODES)
    @pytest.mark.parametrize("value", ["0.5", True, None, [1.0], b"1"])
    def test_non_numeric_values_are_rejected(
        self, store: Store, run_id: str, mode: str, value: object
    ) -> None:
        good = MetricEntry(run_id, "ok", 1.0, 0, T0_MS)
        bad = MetricEntry(run_id, "val_loss", value, 0, T0_MS)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="'val_loss'"):
            if mode == "sync":
                store.log_metrics([good, bad])
            else:
                store.log_metric_async(bad)
        store.flush()
        assert store.get_metric_history(run_id, "val_loss") == []
        # A rejected batch writes nothing, not even its valid entries.
        assert store.get_metric_history(run_id, "ok") == []

    @pytest.mark.parametrize("mode", LOG_MODES)
    @pytest.mark.parametrize("step", [-1, 1.5, "3", True])
    def test_invalid_step_is_rejected(
        self, store: Store, run_id: str, mode: str, step: object
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="'loss'"):
            _log(store, [MetricEntry(run_id, "loss", 1.0, step, T0_MS)], mode)  # type: ignore[arg-type]
        assert store.get_metric_history(run_id, "loss") == []

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_metrics_for_unknown_run(self, store: Store, run_id: str, mode: str) -> None:
        missing = "f" * 32
        with pytest.raises(NotFoundError, match=missing):
            _log(store, [MetricEntry(missing, "loss", 1.0, 0, T0_MS)], mode)
        with pytest.raises(NotFoundError):
            store.get_metric_history(missing, "loss")

    # -- spool progress -------------------------------------------------------------------------
    def test_an_empty_batch_cannot_move_a_spools_progress(self, store: Store, run_id: str) -> None:
        with pytest.raises(InvalidArgumentError, match="empty batch cannot move"):
            store.write_spooled_metrics([], "spool-a", 10**12)
        assert store.spool_progress("spool-a") == 0
        store.write_spooled_metrics([MetricEntry(run_id, "m", 1.0, 0, T0_MS)], "spool-a", 1)
        with pytest.raises(InvalidArgumentError, match="empty batch cannot move"):
            store.write_spooled_metrics([], "spool-a", 10**12)
        store.write_spooled_metrics([], "spool-a", 1)  # already there: a replay, no change
        assert store.spool_progress("spool-a") == 1

    def test_a_spools_progress_moves_by_at_most_its_records(
        self, store: Store, run_id: str
    ) -> None:
        entries = [MetricEntry(run_id, "m", float(i), i, T0_MS) for i in range(3)]
        store.write_spooled_metrics(entries[:2], "spool-b", 2)
        with pytest.raises(InvalidArgumentError, match=r"at most 3 .* got 1000000000000"):
            store.write_spooled_metrics(entries[2:], "spool-b", 10**12)
        assert store.spool_progress("spool-b") == 2
        assert len(store.get_metric_history(run_id, "m")) == 2  # the refused batch wrote nothing
        store.write_spooled_metrics(entries[2:], "spool-b", 3)
        assert store.spool_progress("spool-b") == 3
        assert len(store.get_metric_history(run_id, "m")) == 3

    def test_a_spool_belongs_to_the_project_of_its_records(self, store: Store, run_id: str) -> None:
        store.get_or_create_project("other")
        store.write_spooled_metrics([MetricEntry(run_id, "m", 1.0, 0, T0_MS)], "spool-c", 1)
        assert store.spool_progress("spool-c", project="proj") == 1
        assert store.spool_progress("spool-new", project="other") == 0  # none yet: not secret
        with pytest.raises(NotFoundError, match="'other' has no spool 'spool-c'"):
            store.spool_progress("spool-c", project="other")
        with pytest.raises(NotFoundError, match="'other' has no spool 'spool-c'"):
            store.forget_spool("spool-c", project="other")
        assert store.spool_progress("spool-c") == 1  # still there
        # Records of a second project make it a spool of several: only all-project callers.
        elsewhere = store.create_run("other", "run").id
        store.write_spooled_metrics([MetricEntry(elsewhere, "m", 1.0, 0, T0_MS)], "spool-c", 2)
        with pytest.raises(NotFoundError):
            store.spool_progress("spool-c", project="proj")
        store.forget_spool("spool-c")
        assert store.spool_progress("spool-c") == 0

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_latest_metric_is_highest_step_then_latest_timestamp(
        self, store: Store, run_id: str, mode: str
    ) -> None:
        def latest() -> float:
            return store.get_run(run_id).metrics["acc"]

        _log(store, [MetricEntry(run_id, "acc", 5.0, 5, T0_MS)], mode)
        _log(store, [MetricEntry(run_id, "acc", 3.0, 3, T0_MS + 100)], mode)  # later but lower step
        assert latest() == 5.0
        _log(store, [MetricEntry(run_id, "acc", 7.0, 5, T0_MS + 200)], mode)  # same step, later
        assert latest() == 7.0
        _log(store, [MetricEntry(run_id, "acc", 9.0, 5, T0_MS + 50)], mode)  # same step, earlier
        assert latest() == 7.0
        _log(store, [MetricEntry(run_id, "acc", 1.0, 6, T0_MS)], mode)  # higher step, earliest
        assert latest() == 1.0

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_latest_metric_within_one_batch(self, store: Store, run_id: str, mode: str) -> None:
        entries = [
            MetricEntry(run_id, "acc", 5.0, 5, T0_MS),
            MetricEntry(run_id, "acc", 3.0, 3, T0_MS + 100),
            MetricEntry(run_id, "acc", 7.0, 5, T0_MS + 200),
            MetricEntry(run_id, "acc", 9.0, 5, T0_MS + 50),
        ]
        _log(store, entries, mode)
        assert store.get_run(run_id).metrics == {"acc": 7.0}

    @pytest.mark.parametrize("mode", LOG_MODES)
    def test_metric_history_is_ordered_by_step_then_timestamp(
        self, store: Store, run_id: str, mode: str
    ) -> None:
        entries = [
            MetricEntry(run_id, "loss", 3.0, 3, T0_MS),
            MetricEntry(run_id, "loss", 1.2, 1, T0_MS + 20),
            MetricEntry(run_id, "loss", 2.0, 2, T0_MS),
            MetricEntry(run_id, "loss", 1.1, 1, T0_MS + 10),
        ]
        _log(store, entries, mode)
        history = store.get_metric_history(run_id, "loss")
        assert [(m.step, m.timestamp_ms, m.value) for m in history] == [
            (1, T0_MS + 10, 1.1),
            (1, T0_MS + 20, 1.2),
            (2, T0_MS, 2.0),
            (3, T0_MS, 3.0),
        ]

    def test_metrics_are_kept_per_run_and_key(self, store: Store) -> None:
        store.get_or_create_project("proj")
        a = store.create_run("proj", "a").id
        b = store.create_run("proj", "b").id
        store.log_metrics(
            [MetricEntry(a, "loss", 1.0, 0, T0_MS), MetricEntry(b, "loss", 2.0, 0, T0_MS)]
        )
        store.log_metric_async(MetricEntry(a, "acc", 0.5, 0, T0_MS))
        store.flush()
        assert store.get_run(a).metrics == {"loss": 1.0, "acc": 0.5}
        assert store.get_run(b).metrics == {"loss": 2.0}
        assert [m.value for m in store.get_metric_history(b, "loss")] == [2.0]
        assert store.get_metric_history(b, "acc") == []

    def test_batch_equals_loop(self, store: Store) -> None:
        store.get_or_create_project("proj")
        batch_run = store.create_run("proj", "batch").id
        loop_run = store.create_run("proj", "loop").id
        values = [(0.9, 2, 5), (0.4, 1, 9), (0.7, 2, 1), (math.inf, 0, 3)]
        store.log_metrics([MetricEntry(batch_run, "m", v, s, T0_MS + t) for v, s, t in values])
        for v, s, t in values:
            store.log_metrics([MetricEntry(loop_run, "m", v, s, T0_MS + t)])
        assert store.get_metric_history(batch_run, "m") == store.get_metric_history(loop_run, "m")
        assert store.get_run(batch_run).metrics == store.get_run(loop_run).metrics == {"m": 0.9}

    # -- search ---------------------------------------------------------------------------------
    @pytest.fixture
    def searchable(self, store: Store) -> dict[str, str]:
        """Four runs: alpha, beta and gamma with values, Delta with none; name -> run id."""
        store.get_or_create_project("search")
        store.get_or_create_project("other")
        ids: dict[str, str] = {}
        specs = [
            (
                "alpha",
                {"model": "hgb", "depth": "6"},
                {"team": "Core", "tier": "gold"},
                {"auc": 0.9, "loss": 0.2},
            ),
            (
                "beta",
                {"model": "lr", "depth": "3"},
                {"team": "core", "tier": "bronze"},
                {"auc": 0.7, "loss": 0.5},
            ),
            ("gamma", {"model": "hgb"}, {"team": "ml", "tier": "silver"}, {"auc": 0.8}),
            ("Delta", {}, {}, {}),
        ]
        for name, params, tags, metrics in specs:
            run_id = store.create_run("search", name, tags=tags).id
            if params:
                store.log_params(run_id, params)
            store.log_metrics([MetricEntry(run_id, k, v, 0, T0_MS) for k, v in metrics.items()])
            ids[name] = run_id
        store.log_metrics(
            [
                MetricEntry(ids["alpha"], "val auc", 0.6, 0, T0_MS),
                MetricEntry(ids["alpha"], "score", 1.0, 0, T0_MS),
                MetricEntry(ids["beta"], "score", math.nan, 0, T0_MS),
            ]
        )
        store.end_run(ids["alpha"], RunStatus.FINISHED)
        store.end_run(ids["beta"], RunStatus.FAILED)
        # A run in another project matches most filters and must never be returned.
        other = store.create_run("other", "alpha", tags={"team": "core"})
        store.log_params(other.id, {"model": "hgb"})
        store.log_metrics([MetricEntry(other.id, "auc", 0.99, 0, T0_MS)])
        return ids

    @pytest.mark.parametrize(
        ("filter_string", "expected"),
        [
            ("", {"alpha", "beta", "gamma", "Delta"}),
            ("metrics.auc > 0.75", {"alpha", "gamma"}),
            ("metrics.auc >= 0.8", {"alpha", "gamma"}),
            ("metrics.auc < 0.8", {"beta"}),
            ("metrics.auc <= 0.8", {"beta", "gamma"}),
            ("metrics.auc = 0.7", {"beta"}),
            ("metrics.auc != 0.7", {"alpha", "gamma"}),
            ("metric.loss < 1e0", {"alpha", "beta"}),
            ("metrics.`val auc` > 0.5", {"alpha"}),
            ("metrics.score > -inf", {"alpha"}),
            ("params.model = 'hgb'", {"alpha", "gamma"}),
            ('params.model = "lr"', {"beta"}),
            ("params.model != 'hgb'", {"beta"}),
            ("params.depth >= '6'", {"alpha"}),
            ("params.depth < '6'", {"beta"}),
            ("params.depth > '3'", {"alpha"}),
            ("params.depth <= '3'", {"beta"}),
            ("params.depth = 6", {"alpha"}),
            ("params.model like 'h%'", {"alpha", "gamma"}),
            ("params.model like 'H%'", set()),
            ("params.model ilike 'H%'", {"alpha", "gamma"}),
            ("params.model like 'l_'", {"beta"}),
            ("tags.team = 'core'", {"beta"}),
            ("tags.team != 'ml'", {"alpha", "beta"}),
            ("tags.team like 'c%'", {"beta"}),
            ("tags.team ilike 'c%'", {"alpha", "beta"}),
            ("tag.team LIKE '%or%'", {"alpha", "beta"}),
            ("tags.team > 'd'", {"gamma"}),
            ("tags.tier >= 'gold'", {"alpha", "gamma"}),
            ("tags.tier <= 'gold'", {"alpha", "beta"}),
            ("tags.tier < 'c'", {"beta"}),
            ("status = 'FINISHED'", {"alpha"}),
            ("attributes.status != 'RUNNING'", {"alpha", "beta"}),
            ("attr.status = 'FAILED'", {"beta"}),
            ("name = 'gamma'", {"gamma"}),
            ("name like '%a'", {"alpha", "beta", "gamma", "Delta"}),
            ("name like 'D%'", {"Delta"}),
            ("name like 'd%'", set()),
            ("name ilike 'd%'", {"Delta"}),
            ("start_time >= 0", {"alpha", "beta", "gamma", "Delta"}),
            ("start_time < 0", set()),
            ("end_time > 0", {"alpha", "beta"}),
            ("metrics.auc > 0.75 and params.model = 'hgb' and tags.team = 'ml'", {"gamma"}),
            ("metrics.auc > 0.75 AND status = 'RUNNING'", {"gamma"}),
        ],
    )
    def test_search_filters(
        self, store: Store, searchable: dict[str, str], filter_string: str, expected: set[str]
    ) -> None:
        runs = store.search_runs("search", filter_string)
        assert set(_names(runs)) == expected
        assert len(runs) == len(expected)
        assert all(run.project == "search" for run in runs)

    def test_search_by_id_and_returns_full_runs(
        self, store: Store, searchable: dict[str, str]
    ) -> None:
        [run] = store.search_runs("search", f"id = '{searchable['alpha']}'")
        # Listings leave the (large) environment out; everything else is the full run.
        full = store.get_run(searchable["alpha"])
        assert run.environment is None and full.environment is not None
        assert run == dataclasses.replace(full, environment=None)
        assert run.params == {"model": "hgb", "depth": "6"}
        assert run.metrics["auc"] == 0.9

    @pytest.mark.parametrize(
        ("order_by", "expected_head", "expected_tail"),
        [
            (["metrics.auc desc"], ["alpha", "gamma", "beta"], {"Delta"}),
            (["metrics.auc asc"], ["beta", "gamma", "alpha"], {"Delta"}),
            (["metrics.auc"], ["beta", "gamma", "alpha"], {"Delta"}),
            (["metrics.loss DESC"], ["beta", "alpha"], {"gamma", "Delta"}),
            (["metrics.loss asc"], ["alpha", "beta"], {"gamma", "Delta"}),
            (["params.model asc", "metrics.auc desc"], ["alpha", "gamma", "beta"], {"Delta"}),
            (["params.model desc", "metrics.auc asc"], ["beta", "gamma", "alpha"], {"Delta"}),
            (["tags.tier desc"], ["gamma", "alpha", "beta"], {"Delta"}),
            (["tags.tier asc"], ["beta", "alpha", "gamma"], {"Delta"}),
        ],
    )
    def test_search_order_puts_missing_values_last(
        self,
        store: Store,
        searchable: dict[str, str],
        order_by: list[str],
        expected_head: list[str],
        expected_tail: set[str],
    ) -> None:
        names = _names(store.search_runs("search", order_by=order_by))
        assert names[: len(expected_head)] == expected_head
        assert set(names[len(expected_head) :]) == expected_tail

    def test_search_order_by_attributes(self, store: Store, searchable: dict[str, str]) -> None:
        lower = "name != 'Delta'"
        assert _names(store.search_runs("search", lower, ["name"])) == ["alpha", "beta", "gamma"]
        assert _names(store.search_runs("search", lower, ["name desc"])) == [
            "gamma",
            "beta",
            "alpha",
        ]
        by_start = store.search_runs("search", order_by=["start_time asc"])
        assert [r.start_ms for r in by_start] == sorted(r.start_ms for r in by_start)
        assert len(by_start) == 4

    def test_search_max_results(self, store: Store, searchable: dict[str, str]) -> None:
        top = store.search_runs("search", order_by=["metrics.auc desc"], max_results=2)
        assert _names(top) == ["alpha", "gamma"]
        assert len(store.search_runs("search", max_results=1)) == 1
        with pytest.raises(InvalidArgumentError, match="max_results"):
            store.search_runs("search", max_results=0)

    @pytest.mark.parametrize(
        ("filter_string", "fragment"),
        [
            ("metrics.auc >", "metrics.auc"),
            ("metrics.auc > 'high'", "'auc'"),
            ("metrics.auc like 0.5", "like"),
            ("foo.auc > 1", "'foo'"),
            ("bogus = 'x'", "'bogus'"),
            ("metrics.auc > 0.5 or params.model = 'hgb'", "'or'"),
            ("metrics.auc > 0.5 and", "'and'"),
            ("params.model = 'unterminated", "position"),
            ("metrics.auc >> 1", "metrics.auc >> 1"),
        ],
    )
    def test_bad_filter_is_explained(
        self, store: Store, searchable: dict[str, str], filter_string: str, fragment: str
    ) -> None:
        with pytest.raises(InvalidArgumentError) as info:
            store.search_runs("search", filter_string)
        message = str(info.value)
        assert fragment in message
        assert "e.g." in message  # shows a correct filter to copy

    @pytest.mark.parametrize("order_by", [["foo.bar desc"], ["bogus"], ["metrics.auc sideways"]])
    def test_bad_order_by_is_rejected(
        self, store: Store, searchable: dict[str, str], order_by: list[str]
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="order"):
            store.search_runs("search", order_by=order_by)

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (" and ".join(["name = 'x'"] * 2000), "more than the 10000 a filter may have"),
            (" and ".join(["id = 1"] * 150), "150 clauses, more than the 100"),
            ("metrics.auc > nan", "'auc' > nan compares with NaN"),
            ("metrics.auc <= nan", "'auc' <= nan compares with NaN"),
        ],
    )
    def test_search_refuses_what_it_cannot_answer(
        self, store: Store, searchable: dict[str, str], text: str, message: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match=message) as info:
            store.search_runs("search", text)
        assert len(str(info.value)) < 1000  # the filter is not quoted whole

    def test_search_unknown_project(self, store: Store, searchable: dict[str, str]) -> None:
        with pytest.raises(NotFoundError, match="'search'"):
            store.search_runs("serch")

    # -- run artifacts --------------------------------------------------------------------------
    @pytest.fixture
    def folder(self, tmp_path: Path) -> Path:
        root = tmp_path / "outputs"
        (root / "sub").mkdir(parents=True)
        (root / "a.txt").write_bytes(b"alpha\n")
        (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 10)
        (root / "sub" / "empty").write_bytes(b"")
        return root

    def test_log_file_artifact(self, store: Store, run_id: str, tmp_path: Path) -> None:
        data = b"weights" * 1000
        path = tmp_path / "model.bin"
        path.write_bytes(data)
        logged = store.log_artifact(run_id, path)
        expected = [ArtifactFile(path="model.bin", digest=_digest(data), size_bytes=len(data))]
        assert logged == expected
        assert store.list_artifacts(run_id) == expected

    def test_log_folder_artifact_under_nested_prefix(
        self, store: Store, run_id: str, folder: Path
    ) -> None:
        logged = store.log_artifact(run_id, folder, "reports/v1")
        assert [a.path for a in logged] == [
            "reports/v1/a.txt",
            "reports/v1/sub/b.bin",
            "reports/v1/sub/empty",
        ]
        by_path = {a.path: a for a in store.list_artifacts(run_id)}
        assert by_path["reports/v1/a.txt"].digest == _digest(b"alpha\n")
        assert by_path["reports/v1/sub/b.bin"].size_bytes == 2560
        assert by_path["reports/v1/sub/empty"].size_bytes == 0

    def test_artifact_paths_are_normalised(self, store: Store, run_id: str, folder: Path) -> None:
        logged = store.log_artifact(run_id, folder / "a.txt", "./x//y/")
        assert [a.path for a in logged] == ["x/y/a.txt"]

    def test_list_artifacts_by_prefix(self, store: Store, run_id: str, folder: Path) -> None:
        store.log_artifact(run_id, folder, "reports")
        store.log_artifact(run_id, folder / "a.txt", "reportsx")
        store.log_artifact(run_id, folder / "a.txt")

        def listed(prefix: str) -> list[str]:
            return [a.path for a in store.list_artifacts(run_id, prefix)]

        assert listed("") == [
            "a.txt",
            "reports/a.txt",
            "reports/sub/b.bin",
            "reports/sub/empty",
            "reportsx/a.txt",
        ]
        assert listed("reports") == ["reports/a.txt", "reports/sub/b.bin", "reports/sub/empty"]
        assert listed("reports/sub") == ["reports/sub/b.bin", "reports/sub/empty"]
        assert listed("reports/sub/b.bin") == ["reports/sub/b.bin"]
        assert listed("report") == []  # a prefix matches whole path segments only
        assert listed("rep%") == []

    def test_download_file_artifact(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path
    ) -> None:
        store.log_artifact(run_id, folder, "reports")
        out = store.download_artifacts(run_id, "reports/sub/b.bin", tmp_path / "dl")
        assert out == tmp_path / "dl" / "b.bin"
        assert out.read_bytes() == (folder / "sub" / "b.bin").read_bytes()

    def test_download_folder_artifact(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path
    ) -> None:
        store.log_artifact(run_id, folder, "reports/v1")
        out = store.download_artifacts(run_id, "reports/v1", tmp_path / "dl")
        assert out == tmp_path / "dl" / "v1"
        got = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
        assert got == ["a.txt", "sub/b.bin", "sub/empty"]
        for rel in got:
            assert (out / rel).read_bytes() == (folder / rel).read_bytes()

    def test_download_whole_tree(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path
    ) -> None:
        store.log_artifact(run_id, folder)
        out = store.download_artifacts(run_id, "", tmp_path / "dl")
        assert out == tmp_path / "dl"
        assert (out / "sub" / "b.bin").read_bytes() == (folder / "sub" / "b.bin").read_bytes()
        assert (out / "a.txt").read_bytes() == b"alpha\n"

    def test_relogging_a_path_replaces_it(self, store: Store, run_id: str, tmp_path: Path) -> None:
        path = tmp_path / "model.txt"
        path.write_bytes(b"v1")
        store.log_artifact(run_id, path)
        path.write_bytes(b"version two")
        store.log_artifact(run_id, path)
        assert store.list_artifacts(run_id) == [
            ArtifactFile(path="model.txt", digest=_digest(b"version two"), size_bytes=11)
        ]
        out = store.download_artifacts(run_id, "model.txt", tmp_path / "dl")
        assert out.read_bytes() == b"version two"

    @pytest.mark.parametrize("bad", ["../escape", "a/../../b", "/etc", "a\\..\\..\\b"])
    def test_escaping_artifact_paths_are_rejected(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path, bad: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="relative artifact path"):
            store.log_artifact(run_id, folder / "a.txt", bad)
        assert store.list_artifacts(run_id) == []
        with pytest.raises(InvalidArgumentError):
            store.list_artifacts(run_id, bad)
        with pytest.raises(InvalidArgumentError):
            store.download_artifacts(run_id, bad, tmp_path / "dl")
        assert not (tmp_path / "dl").exists()

    def test_a_folder_with_a_link_out_of_it_is_refused(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path
    ) -> None:
        secret = tmp_path / "secret.key"
        secret.write_bytes(b"private")
        (folder / "sub" / "key").symlink_to(secret)
        with pytest.raises(InvalidArgumentError, match=r"'sub/key' is a symbolic link leading out"):
            store.log_artifact(run_id, folder)
        assert store.list_artifacts(run_id) == []
        assert not store.artifacts.exists(_digest(b"private"))
        # A link that stays inside the folder is followed; one named on its own is logged.
        (folder / "sub" / "key").unlink()
        (folder / "again.txt").symlink_to(folder / "a.txt")
        logged = {a.path: a.digest for a in store.log_artifact(run_id, folder)}
        assert logged["again.txt"] == logged["a.txt"]
        [named] = store.log_artifact(run_id, folder / "again.txt", "named")
        assert named.path == "named/again.txt"

    @pytest.mark.parametrize("bad", ["C:/Windows/system.ini", "c:x", "d:\\x", "a\\b"])
    def test_drive_letters_and_backslashes_are_refused(
        self, store: Store, run_id: str, folder: Path, bad: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="drive letters .* are not allowed"):
            store.log_artifact(run_id, folder / "a.txt", bad)
        [file] = store.log_artifact(run_id, folder / "a.txt")
        with pytest.raises(InvalidArgumentError, match="drive letters"):
            store.record_artifacts(run_id, [dataclasses.replace(file, path=bad)])
        assert [a.path for a in store.list_artifacts(run_id)] == ["a.txt"]

    def test_download_missing_artifact(
        self, store: Store, run_id: str, folder: Path, tmp_path: Path
    ) -> None:
        store.log_artifact(run_id, folder / "a.txt")
        with pytest.raises(NotFoundError) as info:
            store.download_artifacts(run_id, "nope.txt", tmp_path / "dl")
        assert "nope.txt" in str(info.value) and "a.txt" in str(info.value)

    def test_artifacts_of_unknown_run_or_missing_file(
        self, store: Store, run_id: str, tmp_path: Path
    ) -> None:
        path = tmp_path / "x.txt"
        path.write_bytes(b"x")
        with pytest.raises(NotFoundError):
            store.log_artifact("e" * 32, path)
        with pytest.raises(NotFoundError):
            store.list_artifacts("e" * 32)
        with pytest.raises(InvalidArgumentError, match="does not exist"):
            store.log_artifact(run_id, tmp_path / "missing.txt")

    # -- datasets -------------------------------------------------------------------------------
    def _dataset(
        self, store: Store, name: str = "acs", content_hash: str = "h1", project: str = "proj"
    ) -> tuple[DatasetVersion, bool]:
        store.get_or_create_project(project)
        return store.create_dataset_version(
            project,
            name,
            content_hash=content_hash,
            artifact_digest=DIGEST,
            num_rows=100,
            schema={"zeta": "int64", "alpha": "string", "mid": "double"},
            split="train",
            description="census extract",
        )

    def test_create_dataset_version(self, store: Store) -> None:
        version, created = self._dataset(store)
        assert created is True
        assert (version.project, version.name, version.version) == ("proj", "acs", 1)
        assert version.content_hash == "h1"
        assert version.artifact_digest == DIGEST
        assert version.num_rows == 100
        assert list(version.schema.items()) == [
            ("zeta", "int64"),
            ("alpha", "string"),
            ("mid", "double"),
        ]
        assert version.split == "train"
        assert version.description == "census extract"
        assert version.ref == "acs/1"
        assert store.get_dataset_version("proj", "acs", 1) == version

    def test_same_content_gives_the_same_version(self, store: Store) -> None:
        first, _ = self._dataset(store)
        again, created = self._dataset(store)
        assert created is False
        assert again == first
        assert len(store.list_dataset_versions("proj", "acs")) == 1

    def test_dataset_versions_increment(self, store: Store) -> None:
        v1, _ = self._dataset(store, content_hash="h1")
        v2, created2 = self._dataset(store, content_hash="h2")
        v3, created3 = self._dataset(store, content_hash="h3")
        assert (v1.version, v2.version, v3.version) == (1, 2, 3)
        assert created2 and created3
        assert len({v1.id, v2.id, v3.id}) == 3
        assert self._dataset(store, content_hash="h2") == (v2, False)
        assert store.get_dataset_version("proj", "acs") == v3  # latest
        assert store.get_dataset_version("proj", "acs", 2) == v2
        assert [v.version for v in store.list_dataset_versions("proj", "acs")] == [1, 2, 3]

    def test_dataset_versions_are_per_name_and_project(self, store: Store) -> None:
        self._dataset(store, name="acs", content_hash="h1")
        self._dataset(store, name="acs", content_hash="h2")
        other, _ = self._dataset(store, name="iris", content_hash="h1")
        elsewhere, created = self._dataset(store, name="acs", content_hash="h1", project="proj2")
        assert other.version == 1
        assert (elsewhere.version, created, elsewhere.project) == (1, True, "proj2")
        listed = [(v.name, v.version) for v in store.list_dataset_versions("proj")]
        assert listed == [("acs", 1), ("acs", 2), ("iris", 1)]
        assert [v.version for v in store.list_dataset_versions("proj2")] == [1]

    def test_unknown_dataset_lists_names(self, store: Store) -> None:
        self._dataset(store, name="acs")
        self._dataset(store, name="iris")
        for version in (None, 1):
            with pytest.raises(NotFoundError) as info:
                store.get_dataset_version("proj", "acsx", version)
            message = str(info.value)
            assert "'acsx'" in message and "'acs'" in message and "'iris'" in message

    def test_unknown_dataset_version_lists_versions(self, store: Store) -> None:
        self._dataset(store, content_hash="h1")
        self._dataset(store, content_hash="h2")
        with pytest.raises(NotFoundError) as info:
            store.get_dataset_version("proj", "acs", 7)
        message = str(info.value)
        assert "7" in message and "[1, 2]" in message

    def test_dataset_lineage(self, store: Store) -> None:
        v1, _ = self._dataset(store, content_hash="h1")
        v2, _ = self._dataset(store, content_hash="h2")
        a = store.create_run("proj", "a").id
        b = store.create_run("proj", "b").id
        store.link_dataset(a, v1.id)
        store.link_dataset(a, v1.id)  # linking twice is harmless
        store.link_dataset(b, v1.id, role="eval")
        store.link_dataset(b, v2.id)
        assert store.run_datasets(a) == [v1]
        assert sorted(d.ref for d in store.run_datasets(b)) == ["acs/1", "acs/2"]
        assert store.dataset_runs(v1.id) == sorted([a, b])
        assert store.dataset_runs(v2.id) == [b]
        unused, _ = self._dataset(store, content_hash="h3")
        assert store.dataset_runs(unused.id) == []
        assert store.run_datasets(store.create_run("proj", "c").id) == []

    def test_link_unknown_dataset_or_run(self, store: Store) -> None:
        v1, _ = self._dataset(store)
        run = store.create_run("proj", "a").id
        with pytest.raises(NotFoundError):
            store.link_dataset(run, v1.id + 1000)
        with pytest.raises(NotFoundError):
            store.link_dataset("d" * 32, v1.id)
        assert store.run_datasets(run) == []
        assert store.dataset_runs(v1.id) == []

    # -- registry -------------------------------------------------------------------------------
    def _register(self, store: Store, name: str = "clf", run_id: str | None = None) -> int:
        store.get_or_create_project("proj")
        return store.create_model_version(
            "proj", name, flavour="sklearn", artifact_digest=DIGEST, run_id=run_id
        ).version

    def test_model_versions_are_numbered(self, store: Store) -> None:
        assert [self._register(store) for _ in range(3)] == [1, 2, 3]
        assert self._register(store, name="other") == 1
        assert [v.version for v in store.list_model_versions("proj", "clf")] == [1, 2, 3]

    def test_model_version_fields(self, store: Store) -> None:
        store.get_or_create_project("proj")
        created = store.create_model_version(
            "proj",
            "clf",
            flavour="sklearn",
            artifact_digest=OTHER_DIGEST,
            signature={"inputs": [{"name": "x", "type": "double"}]},
            metadata={"sklearn_version": "1.5"},
            description="first try",
        )
        assert (created.project, created.name, created.version, created.ref) == (
            "proj",
            "clf",
            1,
            "clf/1",
        )
        assert created.flavour == "sklearn"
        assert created.artifact_digest == OTHER_DIGEST
        assert created.signature == {"inputs": [{"name": "x", "type": "double"}]}
        assert created.metadata == {"sklearn_version": "1.5"}
        assert created.description == "first try"
        assert (created.run_id, created.metrics, created.datasets, created.aliases) == (
            None,
            {},
            [],
            [],
        )
        assert store.get_model_version("proj", "clf", 1) == created

    def test_model_version_snapshots_run_metrics_and_datasets(self, store: Store) -> None:
        train, _ = self._dataset(store, name="train")
        test, _ = self._dataset(store, name="test")
        run = store.create_run("proj", "fit").id
        store.link_dataset(run, train.id)
        store.link_dataset(run, test.id, role="eval")
        store.log_metrics(
            [MetricEntry(run, "auc", 0.8, 0, T0_MS), MetricEntry(run, "auc", 0.85, 1, T0_MS)]
        )
        store.log_metric_async(MetricEntry(run, "loss", 0.3, 0, T0_MS))  # not flushed yet
        version = store.create_model_version(
            "proj", "clf", flavour="sklearn", artifact_digest=DIGEST, run_id=run
        )
        assert version.run_id == run
        assert version.metrics == {"auc": 0.85, "loss": 0.3}
        assert sorted(version.datasets) == ["test/1", "train/1"]
        # A snapshot: later metrics of the run do not change the registered version.
        store.log_metrics([MetricEntry(run, "auc", 0.99, 2, T0_MS)])
        assert store.get_model_version("proj", "clf", 1).metrics == {"auc": 0.85, "loss": 0.3}

    def test_model_version_snapshots_non_finite_metrics(self, store: Store, run_id: str) -> None:
        values = {"nan": math.nan, "pinf": math.inf, "ninf": -math.inf, "auc": 0.5}
        store.log_metrics([MetricEntry(run_id, k, v, 0, T0_MS) for k, v in values.items()])
        store.create_model_version(
            "proj", "clf", flavour="sklearn", artifact_digest=DIGEST, run_id=run_id
        )
        snapshot = store.get_model_version("proj", "clf", 1).metrics
        assert set(snapshot) == set(values)
        assert math.isnan(snapshot["nan"])
        assert (snapshot["pinf"], snapshot["ninf"], snapshot["auc"]) == (math.inf, -math.inf, 0.5)

    def test_model_version_for_unknown_run(self, store: Store) -> None:
        store.get_or_create_project("proj")
        with pytest.raises(NotFoundError):
            store.create_model_version(
                "proj", "clf", flavour="sklearn", artifact_digest=DIGEST, run_id="a" * 32
            )

    def test_list_models(self, store: Store) -> None:
        self._register(store, "clf")
        self._register(store, "clf")
        self._register(store, "reg")
        store.set_alias("proj", "clf", "production", 1)
        models = {m.name: m for m in store.list_models("proj")}
        assert set(models) == {"clf", "reg"}
        assert models["clf"].latest_version == 2
        assert models["clf"].aliases == {"production": 1}
        assert models["reg"].latest_version == 1
        assert models["reg"].aliases == {}
        store.get_or_create_project("empty")
        assert store.list_models("empty") == []

    def test_unknown_model_lists_names(self, store: Store) -> None:
        self._register(store, "clf")
        self._register(store, "reg")
        with pytest.raises(NotFoundError) as info:
            store.get_model_version("proj", "clff", 1)
        assert (
            "'clff'" in str(info.value)
            and "'clf'" in str(info.value)
            and "'reg'" in str(info.value)
        )
        with pytest.raises(NotFoundError):
            store.list_model_versions("proj", "clff")
        with pytest.raises(NotFoundError, match=r"\[1\]"):
            store.get_model_version("proj", "clf", 2)

    def test_set_alias_moves_and_returns_previous(self, store: Store) -> None:
        for _ in range(3):
            self._register(store)
        assert store.set_alias("proj", "clf", "production", 1) is None
        assert store.resolve_alias("proj", "clf", "production") == 1
        assert store.set_alias("proj", "clf", "production", 3) == 1
        assert store.resolve_alias("proj", "clf", "production") == 3
        assert store.set_alias("proj", "clf", "production", 3) == 3
        store.set_alias("proj", "clf", "candidate", 3)
        assert store.get_model_version("proj", "clf", 1).aliases == []
        assert store.get_model_version("proj", "clf", 3).aliases == ["candidate", "production"]
        by_version = {v.version: v.aliases for v in store.list_model_versions("proj", "clf")}
        assert by_version == {1: [], 2: [], 3: ["candidate", "production"]}

    def test_aliases_are_per_model(self, store: Store) -> None:
        self._register(store, "clf")
        self._register(store, "clf")
        self._register(store, "reg")
        store.set_alias("proj", "clf", "production", 2)
        store.set_alias("proj", "reg", "production", 1)
        assert store.resolve_alias("proj", "clf", "production") == 2
        assert store.resolve_alias("proj", "reg", "production") == 1

    def test_delete_alias(self, store: Store) -> None:
        self._register(store)
        self._register(store)
        store.set_alias("proj", "clf", "production", 2)
        store.set_alias("proj", "clf", "staging", 1)
        assert store.delete_alias("proj", "clf", "production") == 2
        with pytest.raises(NotFoundError):
            store.resolve_alias("proj", "clf", "production")
        assert store.resolve_alias("proj", "clf", "staging") == 1
        with pytest.raises(NotFoundError, match="'staging'"):
            store.delete_alias("proj", "clf", "production")

    def test_unknown_alias_lists_existing(self, store: Store) -> None:
        self._register(store)
        store.set_alias("proj", "clf", "production", 1)
        store.set_alias("proj", "clf", "staging", 1)
        with pytest.raises(NotFoundError) as info:
            store.resolve_alias("proj", "clf", "prod")
        message = str(info.value)
        assert "'prod'" in message and "'production'" in message and "'staging'" in message

    def test_alias_on_missing_version(self, store: Store) -> None:
        self._register(store)
        store.set_alias("proj", "clf", "production", 1)
        with pytest.raises(NotFoundError, match=r"\[1\]"):
            store.set_alias("proj", "clf", "production", 5)
        assert store.resolve_alias("proj", "clf", "production") == 1
        with pytest.raises(NotFoundError, match="'nope'"):
            store.set_alias("proj", "nope", "production", 1)

    @pytest.mark.parametrize("alias", ["3", "007", "", "two words"])
    def test_invalid_alias(self, store: Store, alias: str) -> None:
        self._register(store)
        with pytest.raises(InvalidArgumentError):
            store.set_alias("proj", "clf", alias, 1)
        assert store.list_models("proj")[0].aliases == {}
