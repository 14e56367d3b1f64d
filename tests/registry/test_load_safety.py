"""What a stored version may make the loader do: nothing but read its own verified files.

A version record is written by whoever holds an editor token; the process that loads it (a
user's script, ``loopwise serve``, the autopilot) decides alone whether pickles run and which
types skops may build.
"""

from __future__ import annotations

import pickle
import subprocess
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import (
    GradientBoostingClassifier,
    HistGradientBoostingClassifier,
    RandomForestClassifier,
)
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler

import loopwise as lw
from loopwise.context import Context
from loopwise.errors import UnsafeModelError
from loopwise.registry.flavours import get_flavour
from loopwise.registry.flavours.sklearn import trusted_by_default

from .datasets import ACS_FEATURES, ACS_LABEL, acs_numeric, acs_sample


class Threshold:
    def predict(self, X: Any) -> np.ndarray:
        return (np.asarray(X)[:, 0] > 40).astype(np.int64)


class Planted:
    """What an attacker pickles: unpickling it creates ``marker`` (a stand-in for any code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


def plant_pickle(ctx: Context, marker: Path, name: str = "planted") -> lw.ModelVersion:
    """A ``python`` version whose file runs code, registered as any editor could."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "model.pkl").write_bytes(pickle.dumps(Planted(marker)))
        digest = ctx.store.artifacts.put_tree(Path(tmp))
    return ctx.store.create_model_version(
        ctx.project, name, flavour="python", artifact_digest=digest, metadata={"file": "model.pkl"}
    )


# -- pickle -------------------------------------------------------------------------------------


def test_a_pickle_loads_only_when_the_loader_allows_it(lw_ctx: Context) -> None:
    with lw.start_run(name="r") as run:
        run.log_model(Threshold(), name="rule", allow_pickle=True)
    with pytest.raises(UnsafeModelError, match="allow_pickle=True") as info:
        lw.models.load("rule")
    assert "--allow-pickle" in info.value.message  # names the serving flag too
    assert info.value.details["flavour"] == "python"
    loaded = lw.models.load("rule", allow_pickle=True)
    np.testing.assert_array_equal(loaded.predict(acs_numeric()), Threshold().predict(acs_numeric()))


def test_a_planted_pickle_never_runs_without_the_loaders_opt_in(
    lw_ctx: Context, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    version = plant_pickle(lw_ctx, marker)
    lw.models.set_alias("planted", version.version, "production")
    with pytest.raises(UnsafeModelError):
        lw.models.load("planted@production")
    folder = lw_ctx.store.artifacts.get_tree(version.artifact_digest, tmp_path / "tree")
    with pytest.raises(UnsafeModelError):  # the flavour itself refuses, whoever calls it
        get_flavour("python").load(folder, version.metadata)
    assert not marker.exists()


# -- skops trusted types ------------------------------------------------------------------------


def shell_transformer() -> Any:
    """A fitted pipeline whose transformer calls ``subprocess.run`` on its input."""
    X = acs_numeric()
    pipeline = make_pipeline(FunctionTransformer(np.log1p), LogisticRegression(max_iter=200))
    pipeline.fit(X, acs_sample()[ACS_LABEL])
    pipeline.steps[0][1].func = subprocess.run
    return pipeline


def test_the_version_record_cannot_widen_skops_trust(lw_ctx: Context) -> None:
    version = lw.models.log_model(shell_transformer(), "shell")
    assert "subprocess.run" in version.metadata["trusted_types"]  # recorded, for information
    with pytest.raises(UnsafeModelError, match="subprocess.run") as info:
        lw.models.load("shell")
    assert info.value.details["untrusted_types"] == ["subprocess.run"]
    assert "trusted_types" in info.value.message and "--trust-type" in info.value.message
    widened = replace(version, metadata={**version.metadata, "trusted_types": ["subprocess.run"]})
    with pytest.raises(UnsafeModelError):
        lw.models.load(widened)
    # The one who loads may extend trust, knowingly.
    loaded = lw.models.load("shell", trusted_types=["subprocess.run"])
    assert loaded.model.steps[0][1].func is subprocess.run


@pytest.mark.parametrize(
    "name",
    ["sklearn.utils._testing.assert_run_python_script_without_output", "numpy.load", "os.system"],
)
def test_functions_are_not_trusted_for_their_package(name: str) -> None:
    assert not trusted_by_default(name)


@pytest.mark.parametrize(
    "name",
    [
        "sklearn.tree._tree.Tree",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.utils.validation.check_array",
        "functools.partial",
        "numpy.dtype",
    ],
)
def test_what_scikit_learn_models_need_is_trusted(name: str) -> None:
    assert trusted_by_default(name)


def test_a_class_imported_into_a_trusted_package_is_not_trusted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sklearn.tree

    monkeypatch.setattr(sklearn.tree, "Popen", subprocess.Popen, raising=False)
    assert not trusted_by_default("sklearn.tree.Popen")


def models_of_the_repo() -> list[tuple[str, Any, pd.DataFrame | np.ndarray[Any, Any]]]:
    features = acs_sample()[ACS_FEATURES]
    numeric = acs_numeric()
    label = acs_sample()[ACS_LABEL]
    categorical = [c for c in ACS_FEATURES if c != "AGEP"]
    encode = ColumnTransformer(
        [("num", StandardScaler(), ["AGEP"]), ("cat", OneHotEncoder(handle_unknown="ignore"), categorical)]
    )  # fmt: skip
    hgb = HistGradientBoostingClassifier(max_iter=5, categorical_features="from_dtype")
    return [
        ("hgb", hgb.fit(features, label), features),
        ("pipeline", make_pipeline(encode, LogisticRegression()).fit(features, label), features),
        ("forest", RandomForestClassifier(n_estimators=3).fit(numeric, label), numeric),
        ("boosting", GradientBoostingClassifier(n_estimators=3).fit(numeric, label), numeric),
    ]


def test_the_repos_models_load_on_the_built_in_trust_alone(lw_ctx: Context) -> None:
    for name, model, X in models_of_the_repo():
        version = lw.models.log_model(model, name)
        emptied = replace(version, metadata={**version.metadata, "trusted_types": []})
        loaded = lw.models.load(emptied)
        np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
