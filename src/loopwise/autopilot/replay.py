"""Backtesting a policy: serve historical rows through a deployment's traffic plan, as its
inference servers would, and log them, so that the autopilot can be run over past data.

``Replayer.serve`` answers each row with the version its plan assigns (``assign`` on the
request id), computes the plan's shadow versions' answers too (logged with ``shadow=True``),
logs the predictions with the given timestamps, and returns the live answers (which version
gave each is then in ``Replayer.versions_``); the caller logs the outcomes (``log_outcomes``) and ticks the controller (``run_once``) with the
replay's clock. The demo (``loopwise.examples.demo_autopilot``) and the tests use it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

import loopwise as lw
from loopwise.context import current
from loopwise.deployments import assign
from loopwise.store import Deployment
from loopwise.store.predictions import PredictionRecord, write_predictions

__all__ = ["Replayer"]


def _jsonable(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as the prediction log keeps them: categories as their text, numbers as numbers."""
    coded = frame.astype(
        {c: str for c in frame.columns if isinstance(frame[c].dtype, pd.CategoricalDtype)}
    )
    return [{str(k): v for k, v in row.items()} for row in coded.to_dict("records")]


class Replayer:
    """Serves rows through deployment ``deployment`` (see the module docstring).

    ``prepare`` turns the rows as logged into what the model takes (e.g. types); default: as
    they are. Loaded versions are kept between calls. ``allow_pickle``: load pickled versions
    (they run code on load; off by default, as in ``lw.models.load``).

    ``versions_``: after each ``serve``, the version that gave each row's live answer, in row
    order (what a backtest needs to say which model served what).
    """

    versions_: np.ndarray[Any, np.dtype[np.int64]]

    def __init__(
        self,
        deployment: str,
        *,
        prepare: Callable[[pd.DataFrame], pd.DataFrame] | None = None,
        latency_ms: float = 1.0,
        allow_pickle: bool = False,
    ) -> None:
        self.deployment = deployment
        self.allow_pickle = allow_pickle
        self.prepare = prepare or (lambda frame: frame)
        self.latency_ms = latency_ms
        self.models: dict[int, Any] = {}
        self.versions_ = np.zeros(0, dtype=np.int64)

    def _model(self, name: str, version: int) -> Any:
        if version not in self.models:
            self.models[version] = lw.models.load(
                f"{name}/{version}", allow_pickle=self.allow_pickle
            )
        return self.models[version]

    def _shadow_records(
        self,
        deployment: Deployment,
        typed: pd.DataFrame,
        request_ids: Sequence[str],
        rows: list[dict[str, Any]],
        stamps: np.ndarray[Any, Any],
    ) -> list[PredictionRecord]:
        """What each shadow version of the plan answers, logged beside the live answers."""
        ctx = current()
        records = []
        for version in deployment.plan.shadow:
            model = self._model(deployment.model, version)
            answers = model.predict(typed)
            proba = model.predict_proba(typed) if hasattr(model, "predict_proba") else None
            for i, request_id in enumerate(request_ids):
                probabilities = None if proba is None else [float(x) for x in proba[i]]
                records.append(
                    self._record(
                        ctx.project,
                        deployment.model,
                        version,
                        request_id,
                        int(stamps[i]),
                        rows[i],
                        answers[i],
                        probabilities,
                        shadow=True,
                    )
                )
        return records

    def _record(
        self,
        project: str,
        model: str,
        version: int,
        request_id: str,
        timestamp_ms: int,
        row: dict[str, Any],
        answer: Any,
        probabilities: list[float] | None,
        shadow: bool = False,
    ) -> PredictionRecord:
        """One logged answer, as the server would log it."""
        outputs: dict[str, Any] = {
            "predict": answer.item() if isinstance(answer, np.generic) else answer
        }
        if probabilities is not None:
            outputs["predict_proba"] = probabilities
        return PredictionRecord(
            project=project,
            deployment=self.deployment,
            request_id=str(request_id),
            model=model,
            version=version,
            timestamp_ms=timestamp_ms,
            latency_ms=self.latency_ms,
            inputs=row,
            outputs=outputs,
            shadow=shadow,
        )

    def serve(
        self,
        inputs: pd.DataFrame,
        request_ids: Sequence[str],
        timestamps_ms: Sequence[int] | np.ndarray[Any, Any],
    ) -> np.ndarray[Any, Any]:
        """Answer and log ``inputs`` (one row per request); the answers, in row order. Which
        version gave each is left in ``versions_``."""
        ctx = current()
        stamps = np.asarray(timestamps_ms, dtype=np.int64)
        deployment = lw.deployments.get(self.deployment)
        versions = np.asarray([assign(deployment, key) for key in request_ids], dtype=np.int64)
        typed = self.prepare(inputs)
        answers: np.ndarray[Any, Any] = np.empty(len(inputs), dtype=object)
        probabilities: list[list[float] | None] = [None] * len(inputs)
        for version in np.unique(versions):
            chosen = versions == version
            model = self._model(deployment.model, int(version))
            rows = typed[chosen]
            answers[chosen] = list(model.predict(rows))
            if hasattr(model, "predict_proba"):
                proba = model.predict_proba(rows)
                for at, p in zip(np.flatnonzero(chosen).tolist(), proba, strict=True):
                    probabilities[at] = [float(x) for x in p]
        rows_json = _jsonable(inputs)
        records = self._shadow_records(deployment, typed, request_ids, rows_json, stamps)
        for i, (request_id, row) in enumerate(zip(request_ids, rows_json, strict=True)):
            records.append(
                self._record(
                    ctx.project,
                    deployment.model,
                    int(versions[i]),
                    request_id,
                    int(stamps[i]),
                    row,
                    answers[i],
                    probabilities[i],
                )
            )
        write_predictions(ctx.store, records)
        self.versions_ = versions
        return answers
