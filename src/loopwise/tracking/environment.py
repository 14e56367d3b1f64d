"""What a run ran on: Python, platform, host, installed packages, and the git state of the code."""

from __future__ import annotations

import functools
import hashlib
import platform
import socket
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["capture_environment", "git_state", "installed_packages"]


@functools.cache
def installed_packages() -> dict[str, str]:
    """Every installed distribution and its version (computed once per process)."""
    packages: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            packages[name.lower()] = dist.version
    return dict(sorted(packages.items()))


def _git(args: list[str], cwd: Path) -> str | None:
    try:
        result = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout if result.returncode == 0 else None


def git_state(path: Path | None = None) -> dict[str, Any] | None:
    """Commit, branch, dirty flag and a hash of the uncommitted diff of the repo at ``path``."""
    cwd = path or Path.cwd()
    commit = _git(["rev-parse", "HEAD"], cwd)
    if commit is None:
        return None
    status = _git(["status", "--porcelain"], cwd) or ""
    diff = _git(["diff", "HEAD"], cwd) or ""
    return {
        "commit": commit.strip(),
        "branch": (_git(["rev-parse", "--abbrev-ref", "HEAD"], cwd) or "").strip(),
        "dirty": bool(status.strip()),
        "diff_sha256": hashlib.sha256(diff.encode()).hexdigest() if diff else None,
    }


def _entry_point_dir() -> Path:
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    return Path(main).resolve().parent if main else Path.cwd()


def capture_environment() -> dict[str, Any]:
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": list(sys.argv),
        "git": git_state(_entry_point_dir()),
        "packages": installed_packages(),
    }
