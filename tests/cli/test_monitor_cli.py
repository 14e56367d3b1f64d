"""``loopwise monitor``: outcomes from files, alerts listed and resolved (in-process)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

import loopwise as lw
from loopwise.store import open_store


@pytest.fixture
def store_uri(tmp_path: Path) -> str:
    uri = str(tmp_path / "store")
    lw.init(project="cli", uri=uri)
    lw.shutdown()
    return uri


def run(uri: str, *args: str, code: int = 0) -> str:
    from loopwise.cli import app

    result = CliRunner().invoke(app, ["--uri", uri, "--project", "cli", *args])
    assert result.exit_code == code, result.output + repr(result.exception)
    lw.shutdown()
    return result.output


def test_outcomes_from_csv_and_parquet(store_uri: str, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"request_id": ["001:0", "002:0", "003:0"], "outcome": [1, 0, 1]}).to_csv(
        csv, index=False
    )
    out = run(store_uri, "monitor", "outcomes", str(csv), "--deployment", "churn", "--json")
    assert json.loads(out) == {"new": 3, "duplicates": 0, "updated": 0, "conflicts": []}
    # Again, with one label changed: the rest are duplicates, the change a conflict.
    pd.DataFrame({"request_id": ["001:0", "002:0", "003:0"], "outcome": [1, 1, 1]}).to_csv(
        csv, index=False
    )
    text = run(store_uri, "monitor", "outcomes", str(csv), "-d", "churn")
    assert "0 new, 2 already recorded, 0 overwritten, 1 conflicting" in text
    assert "002:0" in text and "--overwrite" in text
    text = run(store_uri, "monitor", "outcomes", str(csv), "-d", "churn", "--overwrite")
    assert "1 overwritten" in text
    parquet = tmp_path / "labels.parquet"
    pd.DataFrame({"row": ["x:0"], "employed": [True], "when": [1_700_000_000_000]}).to_parquet(
        parquet
    )
    run(store_uri, "monitor", "outcomes", str(parquet), "-d", "churn", "--id-column", "row",
        "--label-column", "employed", "--time-column", "when")  # fmt: skip
    store = open_store(store_uri)
    found = store.get_outcomes("cli", "churn", ["001:0", "002:0", "x:0"])
    store.close()
    assert found["001:0"].value == 1  # the leading zeros of the id survive the CSV
    assert found["002:0"].value == 1
    assert (found["x:0"].value, found["x:0"].timestamp_ms) == (True, 1_700_000_000_000)


def test_outcome_file_errors(store_uri: str, tmp_path: Path) -> None:
    csv = tmp_path / "labels.csv"
    pd.DataFrame({"id": ["a"], "outcome": [None]}).to_csv(csv, index=False)
    for args, message in [
        ([str(tmp_path / "missing.csv")], "does not exist"),
        ([str(csv)], "no column 'request_id'"),
        ([str(csv), "--id-column", "id"], "is missing"),
        ([str(csv), "--id-column", "id", "--label-column", "nope"], "--label-column"),
    ]:
        from loopwise.cli import app

        result = CliRunner().invoke(
            app, ["--uri", store_uri, "--project", "cli", "monitor", "outcomes", *args, "-d", "d"]
        )
        lw.shutdown()
        assert result.exit_code != 0
        assert message in str(result.exception), (args, result.exception)


def test_alerts_list_and_resolve(store_uri: str) -> None:
    store = open_store(store_uri)
    first, _ = store.raise_alert(
        "cli", deployment="churn", rule="drift", severity="warning", fingerprint="drift/AGEP",
        message="AGEP drifted",
    )  # fmt: skip
    second, _ = store.raise_alert(
        "cli", deployment="upsell", rule="traffic", severity="critical", fingerprint="traffic",
        message="No requests for 1 h",
    )  # fmt: skip
    store.close()
    listed = json.loads(run(store_uri, "monitor", "alerts", "--json"))
    assert [a["id"] for a in listed] == [second.id, first.id]
    assert listed[1]["message"] == "AGEP drifted" and listed[1]["occurrences"] == 1
    only = json.loads(run(store_uri, "monitor", "alerts", "-d", "churn", "--json"))
    assert [a["id"] for a in only] == [first.id]
    table = run(store_uri, "monitor", "alerts")
    assert "2 open alert(s)" in table
    assert all(word in table for word in ("drift", "traffic", "critical", "AGEP"))
    resolved = json.loads(run(store_uri, "monitor", "resolve", str(first.id), "--json"))
    assert resolved["status"] == "resolved" and resolved["resolved_ms"] is not None
    assert "resolved" in run(store_uri, "monitor", "resolve", str(second.id))
    assert json.loads(run(store_uri, "monitor", "alerts", "--json")) == []
    both = json.loads(run(store_uri, "monitor", "alerts", "--status", "all", "--json"))
    assert len(both) == 2
    resolved_only = run(store_uri, "monitor", "alerts", "--status", "resolved", "--json")
    assert len(json.loads(resolved_only)) == 2


def test_resolve_unknown_alert(store_uri: str) -> None:
    from loopwise.cli import app
    from loopwise.errors import NotFoundError

    result = CliRunner().invoke(app, ["--uri", store_uri, "--project", "cli", "monitor",
                                      "resolve", "99"])  # fmt: skip
    assert isinstance(result.exception, NotFoundError)
    assert "no alert 99" in str(result.exception)
