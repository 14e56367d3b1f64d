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

__all__ = ["capture_environment", "code_folder", "git_state", "installed_packages"]


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


def code_folder(code_file: str | Path | None = None) -> Path:
    """The folder whose git state describes the code of a run: that of ``code_file`` (a
    pipeline's file) when given, else that of the script Python was started with, else the
    working directory. A ``__main__`` that is not the user's code (the ``loopwise`` command in
    a virtualenv's ``bin``, ``python -m loopwise``, pytest, anything installed under
    ``sys.prefix``) does not count: its folder is Loopwise's checkout or the virtualenv, not
    the folder the user works in."""
    if code_file is not None:
        return Path(code_file).resolve().parent
    main = getattr(sys.modules.get("__main__"), "__file__", None)
    if main and not _installed(Path(main).resolve()):
        return Path(main).resolve().parent
    return Path.cwd()


def _installed(file: Path) -> bool:
    """Is ``file`` part of an installed tool rather than the user's script?"""
    roots = {Path(sys.prefix).resolve(), Path(sys.base_prefix).resolve(), _PACKAGE_ROOT}
    return any(file.is_relative_to(root) for root in roots)


_PACKAGE_ROOT = Path(__file__).resolve().parent.parent  # the ``loopwise`` package


def capture_environment(code_file: str | Path | None = None) -> dict[str, Any]:
    """Python, platform, host, argv, installed packages, and the git state of the folder that
    holds the code (``code_folder``: ``code_file``'s, the script's, or the working directory)."""
    return {
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "host": socket.gethostname(),
        "argv": list(sys.argv),
        "git": git_state(code_folder(code_file)),
        "packages": installed_packages(),
    }
