"""One batch's model call: join the requests' rows, call the model once, hand each its rows.

``Batch`` is built on the server's side from the queued payloads ``(checked_by_version, inputs,
wanted)``: it re-checks any request checked against another version (a hot swap happened while
it queued), joins the rest into one model input and, after the call, slices each request's
rows out of the outputs. The call itself — ``compute`` — runs in a batch thread or in the
model's process (``workers.py``); only the joined input and the outputs cross to that process.

If the joint call fails, each request is computed alone, so that one request's rows fail only
that request; its error names the model's complaint.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from loopwise.errors import InvalidArgumentError, LoopwiseError
from loopwise.registry import LoadedModel
from loopwise.serving.schema import Inputs, InputSchema, rows_of

__all__ = ["Batch", "Outputs", "compute", "model_error", "predict_batch"]

Outputs = dict[str, np.ndarray[Any, Any]]
"""Output name (``predict``, ``predict_proba``) -> values, one row per input row."""


def compute(model: LoadedModel, X: Any, wanted: frozenset[str] | set[str]) -> Outputs:
    """The model's outputs for one joined input (already in signature order and dtypes)."""
    raw = model.model
    results: Outputs = {}
    if "predict" in wanted:
        results["predict"] = np.asarray(raw.predict(X))
    if "predict_proba" in wanted and hasattr(model, "predict_proba"):
        results["predict_proba"] = np.asarray(raw.predict_proba(X))
    return results


def model_error(exc: BaseException) -> LoopwiseError:
    """What a request is told when the model refused its rows."""
    if isinstance(exc, LoopwiseError):
        return exc
    return InvalidArgumentError(
        f"The model could not predict these rows ({type(exc).__name__}: {exc}). Check the "
        "values against the model's signature (GET /v2/models/NAME).",
        error=type(exc).__name__,
    )


class Batch:
    """The queued payloads of one batch, joined for one model version."""

    def __init__(
        self, schema: InputSchema, version: int, payloads: Sequence[Any], as_array: bool
    ) -> None:
        self.schema, self.version, self.as_array = schema, version, as_array
        self.wanted: set[str] = set()
        self.inputs: list[Inputs] = []
        self.failed: dict[int, BaseException] = {}
        self.wants: list[frozenset[str]] = []
        self.meta: list[Any] = []
        for i, (checked_by, request_inputs, wanted, *meta) in enumerate(payloads):
            self.meta.append(meta[0] if meta else None)
            if checked_by != version:  # checked against another version: check again
                try:
                    request_inputs = schema.check(request_inputs)
                except LoopwiseError as exc:
                    self.failed[i] = exc
            self.inputs.append(request_inputs)
            self.wants.append(wanted)
            self.wanted |= wanted
        self.live = [i for i in range(len(payloads)) if i not in self.failed]

    def joined(self) -> Any:
        """The model input for every live request."""
        return self.schema.frame([self.inputs[i] for i in self.live], self.as_array)

    def alone(self, i: int) -> Any:
        """The model input for request ``i`` by itself."""
        return self.schema.frame([self.inputs[i]], self.as_array)

    def log_rows(self, indices: Sequence[int]) -> list[tuple[Any, int]] | None:
        """``(meta, rows)`` of requests ``indices`` in joined order, for a model process that
        logs them; None when the requests carry no log metadata."""
        if any(self.meta[i] is None for i in indices):
            return None
        return [(self.meta[i], rows_of(self.inputs[i])) for i in indices]

    def split(self, outputs: Outputs, *receipt: Any) -> list[Any]:
        """Each request's ``(version, outputs)``, or its error; ``(version, outputs, receipt)``
        when the rows went to a model process's prediction log (``workers.Receipt``)."""
        answers: list[Any] = []
        start = 0
        for i, wanted in enumerate(self.wants):
            if i in self.failed:
                answers.append(self.failed[i])
                continue
            end = start + rows_of(self.inputs[i])
            rows = {k: v[start:end] for k, v in outputs.items() if k in wanted}
            answers.append((self.version, rows, *receipt))
            start = end
        return answers


def predict_batch(
    model: LoadedModel, schema: InputSchema, payloads: Sequence[Any], as_array: bool = False
) -> list[Any]:
    """A whole batch in this thread: one call, or one per request if the joint call fails."""
    batch = Batch(schema, model.version.version, payloads, as_array)
    if not batch.live:
        return batch.split({})
    try:
        return batch.split(compute(model, batch.joined(), batch.wanted))
    except Exception as exc:
        if len(batch.live) == 1:
            batch.failed[batch.live[0]] = model_error(exc)
            return batch.split({})
    answers: list[Any] = []
    for i in range(len(payloads)):
        if i in batch.failed:
            answers.append(batch.failed[i])
            continue
        try:
            answers.append((batch.version, compute(model, batch.alone(i), batch.wants[i])))
        except Exception as alone:
            answers.append(model_error(alone))
    return answers
