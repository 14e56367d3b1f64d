"""The conformance suite every model flavour passes (like scikit-learn's ``estimator_checks``).

A flavour module's tests describe a few fitted models as ``FlavourCase``s and run every check on
each::

    @parametrize_checks(CASES)
    def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
        check(case, lw_ctx)

A flavour is done when these pass, not when it imports.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import ArtifactCorruptedError, UnsafeModelError
from loopwise.registry.flavours import get_flavour
from loopwise.registry.signature import infer_signature, schema_of
from loopwise.store.artifacts import LocalArtifactStore

__all__ = ["CHECKS", "Check", "FlavourCase", "parametrize_checks"]

LOOP_ROWS = 20
"""Rows predicted one at a time in the batch-equals-loop check (each is a full predict call)."""
EXAMPLE_ROWS = 5


def native_predict(model: Any, X: Any) -> Any:
    return model.predict(X)


def native_predict_proba(model: Any, X: Any) -> Any:
    return model.predict_proba(X)


@dataclass
class FlavourCase:
    """One fitted model of a flavour, the data it predicts on, and how it predicts natively."""

    id: str
    flavour: str
    """The flavour the registry must pick for the model (and record on the version)."""
    make_model: Callable[[], Any]
    """Returns the fitted model; called once per case, the result is reused by every check."""
    make_X: Callable[[], Any]
    predict: Callable[[Any, Any], Any] = native_predict
    """How the original model predicts; a loaded model must give exactly this."""
    predict_proba: Callable[[Any, Any], Any] | None = None
    """How the original gives probabilities; None means a loaded model must not offer them."""
    log_kwargs: Mapping[str, Any] = field(default_factory=dict)
    load_kwargs: Mapping[str, Any] = field(default_factory=dict)
    """What the one who loads passes to ``lw.models.load`` (``allow_pickle=True`` for pickles)."""
    _cache: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def model(self) -> Any:
        if "model" not in self._cache:
            self._cache["model"] = self.make_model()
        return self._cache["model"]

    def X(self) -> Any:
        if "X" not in self._cache:
            self._cache["X"] = self.make_X()
        return self._cache["X"]

    def log(self, **overrides: Any) -> lw.ModelVersion:
        kwargs = {"input_example": rows(self.X(), slice(0, EXAMPLE_ROWS)), **self.log_kwargs}
        with lw.start_run(name=f"check-{self.id}") as run:
            return run.log_model(self.model(), name=self.id, **{**kwargs, **overrides})

    def load(self, ref: str | lw.ModelVersion) -> Any:
        return lw.models.load(ref, **self.load_kwargs)


Check = Callable[[FlavourCase, Context], None]


def rows(X: Any, index: slice | list[int]) -> Any:
    """Rows of a DataFrame or an array, keeping the type (and dtypes) of ``X``."""
    if isinstance(X, pd.DataFrame):
        return X.iloc[index]
    return np.asarray(X)[index]


def as_records(X: Any) -> Any:
    """``X`` as it arrives in a JSON request: a list of records or a nested list."""
    if isinstance(X, pd.DataFrame):
        return X.to_dict(orient="records")
    return np.asarray(X).tolist()


def assert_same_numbers(actual: Any, expected: Any, *, exact: bool = True) -> None:
    """Equal arrays of one dtype; with ``exact=False``, floats may differ in their last bits."""
    actual, expected = np.asarray(actual), np.asarray(expected)
    assert (actual.shape, actual.dtype) == (expected.shape, expected.dtype)
    if exact or actual.dtype.kind != "f":
        np.testing.assert_array_equal(actual, expected)
        return
    single = np.float32 in (actual.dtype, expected.dtype)
    np.testing.assert_allclose(
        actual, expected, rtol=1e-5 if single else 1e-9, atol=1e-6 if single else 1e-12
    )


# -- the checks ---------------------------------------------------------------------------------


def check_detected_flavour(case: FlavourCase, ctx: Context) -> None:
    """The registry picks the case's flavour and records it on the version."""
    mv = case.log()
    assert mv.flavour == case.flavour
    assert lw.models.get(mv.ref).flavour == case.flavour


def check_round_trip(case: FlavourCase, ctx: Context) -> None:
    """Log then load gives exactly the original's predictions (and probabilities, if any)."""
    mv = case.log()
    loaded = case.load(mv.ref)
    X = case.X()
    assert_same_numbers(loaded.predict(X), case.predict(case.model(), X))
    if case.predict_proba is None:
        assert not hasattr(loaded, "predict_proba"), "only classifiers may offer predict_proba"
    else:
        assert isinstance(loaded, lw.models.LoadedClassifier)
        assert_same_numbers(loaded.predict_proba(X), case.predict_proba(case.model(), X))


def check_batch_equals_loop(case: FlavourCase, ctx: Context) -> None:
    """Predicting n rows at once equals predicting each row alone and concatenating."""
    loaded = case.load(case.log().ref)
    X = rows(case.X(), slice(0, LOOP_ROWS))
    methods = ["predict"] + (["predict_proba"] if case.predict_proba is not None else [])
    for method in methods:
        batch = np.asarray(getattr(loaded, method)(X))
        loop = np.concatenate(
            [np.asarray(getattr(loaded, method)(rows(X, [i]))) for i in range(LOOP_ROWS)]
        )
        # Linear algebra sums in a different order for one row than for many (BLAS blocking),
        # so floats may differ in their last bits; labels may not.
        assert_same_numbers(loop, batch, exact=False)


def check_records_input(case: FlavourCase, ctx: Context) -> None:
    """JSON-shaped input (records, nested lists) predicts the same as the typed original."""
    loaded = case.load(case.log().ref)
    X = rows(case.X(), slice(0, LOOP_ROWS))
    assert_same_numbers(loaded.predict(as_records(X)), loaded.predict(X))


def check_signature_recorded(case: FlavourCase, ctx: Context) -> None:
    """The version records the input schema of the example and the schema of the output."""
    mv = case.log()
    example = rows(case.X(), slice(0, EXAMPLE_ROWS))
    assert mv.signature is not None
    assert mv.signature["inputs"] == infer_signature(example)["inputs"]
    output = np.asarray(case.predict(case.model(), example))
    assert mv.signature["outputs"] == schema_of(output)
    assert lw.models.get(mv.ref).signature == mv.signature
    assert case.load(mv.ref).signature == mv.signature


def check_corrupted_blob_refused(case: FlavourCase, ctx: Context) -> None:
    """Any of the model's files changed on disk: load refuses it, naming the corruption."""
    mv = case.log()
    artifacts = ctx.store.artifacts
    assert isinstance(artifacts, LocalArtifactStore)
    manifest = artifacts.read_manifest(mv.artifact_digest)
    assert manifest, "a model version has at least one file"
    for file_name, (digest, size_bytes) in manifest.items():
        blob = artifacts._blob_path(digest)
        original = blob.read_bytes()
        assert len(original) == size_bytes
        changed = bytearray(original)
        changed[len(changed) // 2] ^= 0xFF
        blob.write_bytes(bytes(changed))
        with pytest.raises(ArtifactCorruptedError, match="corrupted") as info:
            case.load(mv.ref)
        assert file_name in info.value.message
        blob.write_bytes(original)
    case.load(mv.ref).predict(rows(case.X(), slice(0, EXAMPLE_ROWS)))


def check_file_outside_the_tree_is_refused(case: FlavourCase, ctx: Context) -> None:
    """``metadata.file`` names one of the version's verified files, never a file elsewhere.

    The file outside is a working copy of the model's own, so only the refusal stops it loading.
    """
    mv = case.log()
    name = str(mv.metadata["file"])
    outside = Path(tempfile.gettempdir()) / f"loopwise-outside-{uuid.uuid4().hex}"
    try:
        ctx.store.artifacts.get_tree(mv.artifact_digest, outside)
        escapes = [
            str(outside / name),  # absolute
            f"../{outside.name}/{name}",  # beside the folder the loader verified into
            f"sub/../../{outside.name}/{name}",
        ]
        flavour = get_flavour(mv.flavour)
        with tempfile.TemporaryDirectory() as tmp:
            folder = ctx.store.artifacts.get_tree(mv.artifact_digest, Path(tmp) / "tree")
            flavour.load(folder, mv.metadata, **case.load_kwargs)  # as stored: loads
            for escape in escapes:
                metadata = {**mv.metadata, "file": escape}
                with pytest.raises(UnsafeModelError, match="outside"):
                    flavour.load(folder, metadata, **case.load_kwargs)
                with pytest.raises(UnsafeModelError, match="outside"):
                    case.load(replace(mv, metadata=metadata))
    finally:
        shutil.rmtree(outside, ignore_errors=True)


CHECKS: list[Check] = [
    check_detected_flavour,
    check_round_trip,
    check_batch_equals_loop,
    check_records_input,
    check_signature_recorded,
    check_corrupted_blob_refused,
    check_file_outside_the_tree_is_refused,
]


def parametrize_checks(cases: list[FlavourCase]) -> pytest.MarkDecorator:
    """Parametrise a test over every (case, check) pair, with readable ids."""
    return pytest.mark.parametrize(
        ("case", "check"),
        [
            pytest.param(case, check, id=f"{case.id}-{check.__name__.removeprefix('check_')}")
            for case in cases
            for check in CHECKS
        ],
    )
