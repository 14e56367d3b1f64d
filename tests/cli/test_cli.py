"""The ``loopwise`` command against a real store: as a fresh process would run it (in this
process, see ``harness.py``), and as ``python -m loopwise``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

import loopwise as lw

from .harness import cli


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store with two runs, a dataset and a model with an alias."""
    from sklearn.linear_model import LogisticRegression

    path = tmp_path_factory.mktemp("cli") / "store"
    lw.init(project="cli", uri=path)
    frame = pd.DataFrame({"x": [0.0, 1.0, 2.0, 3.0], "y": [0, 0, 1, 1]})
    data = lw.log_dataset(frame, name="toy")
    for c in (0.5, 2.0):
        with lw.start_run(name=f"c={c}", capture_env=False) as run:
            run.log_params({"C": c})
            run.use(data)
            model = LogisticRegression(C=c).fit(frame[["x"]], frame["y"])
            run.log_metric("accuracy", model.score(frame[["x"]], frame["y"]) - c / 100)
            version = run.log_model(model, name="toy-model", input_example=frame[["x"]])
    lw.models.set_alias("toy-model", version.version, "production")
    lw.shutdown()
    return path


def test_help_lists_the_commands(store: Path) -> None:
    out = cli(store, "--help").stdout
    for command in ("demo", "runs", "data", "models", "db"):
        assert command in out


def test_runs_list_json_and_filter(store: Path) -> None:
    runs = json.loads(cli(store, "runs", "list", "--json").stdout)
    assert {r["name"] for r in runs} == {"c=0.5", "c=2.0"}
    best = json.loads(cli(store, "runs", "list", "--filter", "params.C = '0.5'", "--json").stdout)
    assert [r["name"] for r in best] == ["c=0.5"]
    table = cli(store, "runs", "list", "--order-by", "metrics.accuracy desc").stdout
    assert table.index("c=0.5") < table.index("c=2.0")


def test_runs_show_and_compare_accept_id_prefixes(store: Path) -> None:
    runs = json.loads(cli(store, "runs", "list", "--json").stdout)
    shown = json.loads(cli(store, "runs", "show", runs[0]["id"][:10], "--json").stdout)
    assert shown["run"]["id"] == runs[0]["id"]
    assert [d["name"] for d in shown["datasets"]] == ["toy"]
    compared = json.loads(
        cli(store, "runs", "compare", runs[0]["id"], runs[1]["id"], "--json").stdout
    )
    assert len(compared) == 2 and all("params.C" in col for col in compared.values())


def test_data_and_models(store: Path) -> None:
    datasets = json.loads(cli(store, "data", "list", "--json").stdout)
    assert [d["version"] for d in datasets] == [1]
    shown = json.loads(cli(store, "data", "show", "toy", "--json").stdout)
    assert len(shown["runs"]) == 2
    models = json.loads(cli(store, "models", "list", "--json").stdout)
    assert models[0]["aliases"] == {"production": 2}
    version = json.loads(cli(store, "models", "show", "toy-model@production", "--json").stdout)
    assert version["version"] == 2 and version["datasets"] == ["toy/1"]
    moved = json.loads(
        cli(store, "models", "alias", "toy-model", "production", "1", "--json").stdout
    )
    assert moved == {"model": "toy-model", "alias": "production", "before": 2, "after": 1}


def test_errors_are_one_clear_line_and_exit_1(store: Path) -> None:
    result = cli(store, "models", "show", "nope@production", ok=False)
    assert result.returncode == 1
    assert "No model named 'nope'. Existing models: 'toy-model'" in result.stderr
    assert "Traceback" not in result.stderr
    result = cli(store, "models", "alias", "toy-model", "production", "9", ok=False)
    assert "it has versions [1, 2]" in result.stderr
    result = cli(store, "runs", "show", "0123", "--json", ok=False)
    assert json.loads(result.stderr)["error"]["code"] == "not_found"


def test_not_a_store_and_db_upgrade(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a store")
    result = cli(tmp_path, "runs", "list", ok=False)
    assert "is not a Loopwise store" in result.stderr
    fresh = tmp_path / "fresh"
    assert "from schema (empty)" in " ".join(cli(fresh, "db", "upgrade").stdout.split())
    assert "already at schema" in " ".join(cli(fresh, "db", "upgrade").stdout.split())


def test_unknown_project_lists_the_existing_ones(store: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "loopwise", "--uri", str(store), "-p", "typo", "runs", "list"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "No project named 'typo'. Existing projects: 'cli'" in " ".join(result.stderr.split())
