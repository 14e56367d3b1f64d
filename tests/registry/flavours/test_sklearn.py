"""scikit-learn models through the conformance suite, plus skops' recorded trust and the
byte-for-byte identical files that the same fitted model gives, in any process."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse  # type: ignore[import-untyped]
from sklearn.compose import make_column_transformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder
from sklearn.svm import SVC

import loopwise as lw
from loopwise.context import Context
from loopwise.registry.flavours import get_flavour
from loopwise.registry.flavours.sklearn import FILE, ZIP_TIME, SklearnFlavour

from ..datasets import ACS_FEATURES, ACS_LABEL, acs_numeric, acs_sample
from ..flavour_checks import (
    Check,
    FlavourCase,
    assert_same_numbers,
    native_predict_proba,
    parametrize_checks,
)

ROOT = Path(__file__).resolve().parents[3]


def logistic_regression() -> LogisticRegression:
    return LogisticRegression(max_iter=1000).fit(acs_numeric(), acs_sample()[ACS_LABEL])


def gradient_boosting() -> HistGradientBoostingClassifier:
    model = HistGradientBoostingClassifier(
        max_iter=20, categorical_features="from_dtype", random_state=0
    )
    return model.fit(acs_sample()[ACS_FEATURES], acs_sample()[ACS_LABEL])


def age_regression() -> object:
    """Age from the category columns: one-hot encoding and a ridge regression."""
    features = acs_sample()[ACS_FEATURES[1:]]
    encode = make_column_transformer((OneHotEncoder(handle_unknown="ignore"), ACS_FEATURES[1:]))
    return make_pipeline(encode, Ridge()).fit(features, acs_sample()["AGEP"])


CASES = [
    FlavourCase(
        "sklearn-logreg",
        "sklearn",
        logistic_regression,
        acs_numeric,
        predict_proba=native_predict_proba,
    ),
    FlavourCase(
        "sklearn-hgb-categorical",
        "sklearn",
        gradient_boosting,
        lambda: acs_sample()[ACS_FEATURES],
        predict_proba=native_predict_proba,
    ),
    FlavourCase(
        "sklearn-ridge-pipeline", "sklearn", age_regression, lambda: acs_sample()[ACS_FEATURES[1:]]
    ),
]


@parametrize_checks(CASES)
def test_conformance(case: FlavourCase, check: Check, lw_ctx: Context) -> None:
    check(case, lw_ctx)


def test_trust_comes_from_the_loader_not_from_the_record(lw_ctx: Context, tmp_path: Path) -> None:
    case = CASES[1]
    mv = case.log()
    recorded = mv.metadata["trusted_types"]
    assert recorded, "the gradient boosting file holds types skops does not trust by default"
    folder = lw_ctx.store.artifacts.get_tree(mv.artifact_digest, tmp_path / "model")
    flavour = get_flavour("sklearn")
    X = case.X()
    # Recorded for information only: emptied or padded, the load is the same.
    for trusted in ([], ["subprocess.run", "builtins.eval"]):
        metadata = {**mv.metadata, "trusted_types": trusted}
        assert_same_numbers(flavour.load(folder, metadata).predict(X), case.model().predict(X))
        assert_same_numbers(
            lw.models.load(replace(mv, metadata=metadata)).predict(X), case.model().predict(X)
        )


# -- the same model, the same bytes ---------------------------------------------------------------


def saved(model: Any, folder: Path) -> tuple[bytes, dict[str, Any]]:
    """The model file's bytes and the metadata, as the flavour saves them into ``folder``."""
    folder.mkdir(parents=True)
    metadata = SklearnFlavour().save(model, folder)
    return (folder / FILE).read_bytes(), metadata


def schema_ids(data: bytes) -> list[int]:
    """Every node's ``__id__`` in a skops file's schema.json, in order."""
    found: list[int] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if isinstance(value.get("__loader__"), str) and "__id__" in value:
                found.append(value["__id__"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        walk(json.loads(archive.read("schema.json")))
    return found


@pytest.fixture(scope="module")
def saved_in_another_process(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The CASES' models fitted and saved by a fresh interpreter: ``<folder>/<case id>/``."""
    folder = tmp_path_factory.mktemp("another-process")
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from loopwise.registry.flavours.sklearn import SklearnFlavour\n"
        "from tests.registry.flavours.test_sklearn import CASES\n"
        "for case in CASES:\n"
        "    target = Path(sys.argv[1]) / case.id\n"
        "    target.mkdir()\n"
        "    SklearnFlavour().save(case.model(), target)\n"
    )
    # Another hash seed than this process's, so that str hashes (and set orders) differ too.
    seed = "2" if os.environ.get("PYTHONHASHSEED") == "1" else "1"
    env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script, str(folder)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_saving_a_model_twice_gives_the_same_bytes(case: FlavourCase, tmp_path: Path) -> None:
    first, metadata = saved(case.model(), tmp_path / "first")
    second, _ = saved(case.model(), tmp_path / "second")
    assert first == second

    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        infos = archive.infolist()
    assert {info.date_time for info in infos} == {ZIP_TIME}
    assert {info.external_attr >> 16 for info in infos} == {0o100644}
    assert {info.compress_type for info in infos} == {zipfile.ZIP_STORED}  # as skops writes
    # Object ids are numbered 1, 2, ... in the order schema.json mentions them, and so are the
    # members named after them.
    ids = schema_ids(first)
    assert sorted(set(ids)) == list(range(1, len(set(ids)) + 1))
    assert [info.filename for info in infos][-1] == "schema.json"
    for info in infos[:-1]:
        stem, _, suffix = info.filename.partition(".")
        assert suffix == "npy" and int(stem) in ids

    # What was rewritten loads with the trust recorded at save, and predicts exactly the same.
    loaded = SklearnFlavour().load(tmp_path / "first", metadata)
    X = case.X()
    assert_same_numbers(loaded.predict(X), case.predict(case.model(), X))
    if case.predict_proba is not None:
        assert_same_numbers(loaded.predict_proba(X), case.predict_proba(case.model(), X))


@pytest.mark.parametrize("case", CASES, ids=lambda case: case.id)
def test_another_process_saves_the_same_bytes(
    case: FlavourCase, saved_in_another_process: Path, tmp_path: Path
) -> None:
    here, _ = saved(case.model(), tmp_path / "here")
    assert (saved_in_another_process / case.id / FILE).read_bytes() == here


def test_numbers_that_equal_an_object_id_are_kept(tmp_path: Path) -> None:
    X, y = acs_numeric(), acs_sample()[ACS_LABEL]
    model = LogisticRegression(max_iter=1000).fit(X, y)
    # Values equal to ids skops will write (the arrays are alive, so their ids are the names
    # skops gives them), in a param, a dict key and a list, and bytes (a member with a random
    # name): only the ids must be renumbered.
    taken = id(model.coef_)
    model.set_params(random_state=taken)
    model.notes_ = {taken: [id(model.intercept_), "kept"], "raw": b"\x00\x01 bytes"}
    first, metadata = saved(model, tmp_path / "first")
    second, _ = saved(model, tmp_path / "second")
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        names = archive.namelist()
    assert "file-1.bin" in names
    assert not any(str(taken) in name for name in names)

    loaded = SklearnFlavour().load(tmp_path / "first", metadata)
    assert loaded.random_state == taken
    assert loaded.notes_ == model.notes_
    np.testing.assert_array_equal(loaded.coef_, model.coef_)
    assert_same_numbers(loaded.predict_proba(X), model.predict_proba(X))


def test_a_model_holding_sparse_matrices_gives_the_same_bytes(tmp_path: Path) -> None:
    X = scipy.sparse.random(60, 8, density=0.3, random_state=0, format="csr")
    y = np.arange(60) % 2
    model = SVC(kernel="linear").fit(X, y)
    assert scipy.sparse.issparse(model.support_vectors_)
    first, metadata = saved(model, tmp_path / "first")
    second, _ = saved(model, tmp_path / "second")
    assert first == second
    with zipfile.ZipFile(io.BytesIO(first)) as archive:
        assert any(name.endswith(".npz") for name in archive.namelist())
    loaded = SklearnFlavour().load(tmp_path / "first", metadata)
    assert_same_numbers(loaded.predict(X), model.predict(X))
