"""The autopilot tests run their retraining pipeline (``synthetic_pipeline.py``) as an operator
would allow it: this folder is named in LOOPWISE_AUTOPILOT_PIPELINES."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _allowed_pipelines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LOOPWISE_AUTOPILOT_PIPELINES", f"{Path(__file__).parent}/")
