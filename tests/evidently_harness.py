"""Evidently 0.7 in its own virtual environment, for the drift agreement test and benchmark.

Evidently 0.7 does not import with pandas 3, which Loopwise's environment has, so it lives in
``.bench/evidently-venv`` (created on first use, a minute or two) and runs as a subprocess on
Parquet files: ``run_evidently`` returns its per-column verdicts as JSON. The benchmark
(``benchmarks/drift.py``) imports this module too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = [
    "EVIDENTLY_REQUIREMENTS",
    "EVIDENTLY_VENV",
    "EvidentlyUnavailableError",
    "ensure_evidently",
    "evidently_env",
    "run_evidently",
]

ROOT = Path(__file__).resolve().parents[1]
EVIDENTLY_VENV = ROOT / ".bench" / "evidently-venv"
EVIDENTLY_REQUIREMENTS = ("evidently>=0.7,<0.8", "pandas<3")
WORKER = Path(__file__).with_name("evidently_worker.py")


class EvidentlyUnavailableError(RuntimeError):
    """The Evidently environment could not be created; the message carries pip's output."""


def _python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def _version(python: Path) -> str | None:
    if not python.exists():
        return None
    done = subprocess.run(
        [str(python), "-c", "import evidently, pandas; print(evidently.__version__)"],
        capture_output=True,
        text=True,
        env=evidently_env(),
    )
    version = done.stdout.strip()
    return version if done.returncode == 0 and version.startswith("0.7.") else None


def evidently_env() -> dict[str, str]:
    """No telemetry, and nothing of Loopwise's environment leaking into Evidently's."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["DO_NOT_TRACK"] = "1"
    env["EVIDENTLY_DISABLE_TELEMETRY"] = "1"
    return env


def ensure_evidently(venv: Path = EVIDENTLY_VENV) -> tuple[Path, str]:
    """The interpreter of an environment with Evidently 0.7, and its version; installs when
    missing. Raises ``EvidentlyUnavailableError`` when that fails (no network, no wheel)."""
    python = _python(venv)
    version = _version(python)
    if version is not None:
        return python, version
    if not python.exists():
        made = subprocess.run(
            [sys.executable, "-m", "venv", str(venv)], capture_output=True, text=True
        )
        if made.returncode != 0:
            raise EvidentlyUnavailableError(f"python -m venv {venv} failed:\n{made.stderr[-2000:]}")
    pip = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         *EVIDENTLY_REQUIREMENTS],
        capture_output=True,
        text=True,
    )  # fmt: skip
    version = _version(python)
    if pip.returncode != 0 or version is None:
        raise EvidentlyUnavailableError(
            f"Could not install {' '.join(EVIDENTLY_REQUIREMENTS)} into {venv} "
            f"(pip exit {pip.returncode}); remove the folder and retry:\n{pip.stderr[-3000:]}"
        )
    return python, version


def run_evidently(
    python: Path, reference: Path, current: Path, *, timeout_s: float = 600
) -> dict[str, Any]:
    """``Report([DataDriftPreset()]).run(current, reference)`` in a fresh process: per-column
    ``{test, score, threshold, drifted}``, its drifted count, seconds and peak memory."""
    done = subprocess.run(
        [str(python), str(WORKER), str(reference), str(current)],
        capture_output=True,
        text=True,
        env=evidently_env(),
        timeout=timeout_s,
    )
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        raise RuntimeError(
            f"The Evidently worker failed (exit {done.returncode}):\n{done.stderr[-4000:]}"
        )
    result: dict[str, Any] = json.loads(lines[-1])
    return result
