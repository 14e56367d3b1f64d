"""Text columns agree with Evidently 0.7: the same kind, the same test and the same AUC, on
both sides of its 1,000-row switch (it runs in its own environment: see evidently_harness)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from loopwise.data.drift import drift

from ...evidently_harness import EvidentlyUnavailableError, ensure_evidently, evidently_env
from ...services import missing_service

# Evidently's report on pairs of Parquet files (one import for all): for each pair, a JSON line
# of column -> [method, score].
EVIDENTLY_TEXT = """\
import json, sys
import pandas as pd
from evidently import Report
from evidently.presets import DataDriftPreset
for reference_path, current_path in zip(sys.argv[1::2], sys.argv[2::2]):
    reference, current = pd.read_parquet(reference_path), pd.read_parquet(current_path)
    result = Report([DataDriftPreset()]).run(current, reference).dict()
    print(json.dumps({
        m["config"]["column"]: [m["config"]["method"], float(m["value"])]
        for m in result["metrics"] if m["config"]["type"].endswith("ValueDrift")
    }))
"""
METHODS = {"Absolute text content drift": "text_auc", "Percentile text content drift": "text_auc_p"}
# Enough words that each is in fewer than half the rows (TF-IDF drops the others, max_df=0.5).
WORDS = np.array(
    [f"{stem}{n}" for stem in ("parcel", "refund", "login", "reset") for n in range(6)]
)


def _side(rows: int, tilted: bool, seed: int) -> pd.DataFrame:
    """Complaints of three words each (the current side favours the first half of the words),
    unique names and tickets, and a fare."""
    rng = np.random.default_rng(seed)
    weights = np.r_[np.full(12, 3.0 if tilted else 1.0), np.ones(12)]
    shares = weights / weights.sum()
    return pd.DataFrame(
        {
            "complaint": [" ".join(rng.choice(WORDS, 3, p=shares)) for _ in range(rows)],
            "name": [f"Mr. P{seed}x{i} Smith" for i in range(rows)],
            "ticket": [f"A/{seed}{i:06d}" for i in range(rows)],
            "fare": rng.gamma(2.0, 10.0, rows),
        }
    )


@pytest.mark.slow(seconds=30)  # starts Evidently in its own environment
def test_text_columns_agree_with_evidently(tmp_path: Path) -> None:
    try:
        python = ensure_evidently()[0]
    except EvidentlyUnavailableError as exc:
        missing_service("Evidently 0.7 (in .bench/evidently-venv)", f"make test; {exc}")
    pairs = []
    for rows in (600, 1500):  # Evidently's percentile test up to 1,000 reference rows, AUC above
        pair = (tmp_path / f"reference{rows}.parquet", tmp_path / f"current{rows}.parquet")
        _side(rows, tilted=False, seed=1).to_parquet(pair[0])
        _side(rows, tilted=True, seed=2).to_parquet(pair[1])
        pairs.append(pair)
    done = subprocess.run(
        [str(python), "-c", EVIDENTLY_TEXT, *(str(p) for pair in pairs for p in pair)],
        capture_output=True,
        text=True,
        env=evidently_env(),
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()[-len(pairs) :]
    for pair, line in zip(pairs, lines, strict=True):
        theirs, ours = json.loads(line), drift(*pair)
        for column in ("complaint", "name", "ticket"):
            method, score = theirs[column]
            mine = ours.columns[column]
            assert (mine.kind, mine.test) == ("text", METHODS[method]), pair
            assert mine.statistic == pytest.approx(score, abs=1e-12), (pair, column)
        assert ours.columns["complaint"].drifted, pair  # the topic moved
        assert not ours.columns["ticket"].drifted, pair  # unique ids do not
