"""Helpers for the pipeline tests: reading step runs and lineage back from the store, and
running a pipeline script in a fresh Python process."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from sqlalchemy import select

import loopwise as lw
from loopwise.context import current
from loopwise.store import Run
from loopwise.store.sql.schema import RUN_DATASETS


def step_runs(node: str | None = None) -> list[Run]:
    """Step runs in the current project, oldest first (optionally of one node)."""
    query = "tags.`loopwise.kind` = 'step'"
    if node is not None:
        query += f" and tags.`loopwise.node` = '{node}'"
    return sorted(lw.search_runs(query), key=lambda r: r.start_ms)


def dataset_roles(run_id: str) -> set[tuple[str, str]]:
    """``(dataset name, role)`` for each dataset version linked to a run."""
    store: Any = current().store
    store.flush()
    names = {v.id: v.name for v in store.run_datasets(run_id)}
    with store.read_engine.connect() as conn:
        links = conn.execute(
            select(RUN_DATASETS.c.dataset_version_id, RUN_DATASETS.c.role).where(
                RUN_DATASETS.c.run_id == run_id
            )
        ).all()
    return {(names[version_id], role) for version_id, role in links}


def run_script(folder: Path, source: str, *extra_path: Path) -> Any:
    """Run ``source`` as ``folder/script.py`` in a fresh interpreter; returns the JSON it prints
    on its last line. Nothing is cached from an earlier run: no bytecode, no imported modules."""
    script = folder / "script.py"
    script.write_text(textwrap.dedent(source))
    env = {
        **os.environ,
        "PYTHONDONTWRITEBYTECODE": "1",
        "PYTHONPATH": os.pathsep.join(str(p) for p in (folder, *extra_path)),
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def install_fakepkg(root: Path, version: str) -> None:
    """A distribution 'fakepkg' at ``version`` in ``root``, laid out as pip would (a package
    folder and its .dist-info), replacing any earlier version there."""
    for old in root.glob("fakepkg-*.dist-info"):
        old.rename(root / f"fakepkg-{version}.dist-info")
    info = root / f"fakepkg-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: fakepkg\nVersion: {version}\n")
    (info / "top_level.txt").write_text("fakepkg\n")
    package = root / "fakepkg"
    package.mkdir(exist_ok=True)
    (package / "__init__.py").write_text("def double(x):\n    return 2 * x\n")
    importlib.invalidate_caches()
