"""What only the operator of the process that runs the autopilot decides: which retraining
pipelines it may import and run, and whether it may load pickled models.

A policy is anyone's with write access to the project; it names a pipeline, but naming is not
allowing. The operator lists what may run (``--autopilot-pipelines`` of ``loopwise server``,
``--allow-pipelines`` of ``loopwise autopilot run-once``, or ``LOOPWISE_AUTOPILOT_PIPELINES``),
comma-separated, each entry one of:

* ``package.module`` or ``package.module:*``: any pipeline of that module;
  ``package.module:name``: that one;
* ``/path/to/folder/`` (or any existing folder): any ``.py`` file inside it, at any depth;
* ``/path/to/file.py``, ``/path/to/file.py:*`` or ``/path/to/file.py:name``.

Paths are resolved (symbolic links followed) against the working folder. With no entry, no
pipeline runs: the autopilot escalates instead, naming the setting.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from loopwise.errors import PermissionDeniedError

__all__ = [
    "ALLOW_PICKLE_ENV",
    "PIPELINES_ENV",
    "OperatorSettings",
    "check_pipeline_allowed",
    "pipeline_allowed",
]

PIPELINES_ENV = "LOOPWISE_AUTOPILOT_PIPELINES"
ALLOW_PICKLE_ENV = "LOOPWISE_AUTOPILOT_ALLOW_PICKLE"


@dataclass(frozen=True)
class OperatorSettings:
    """The operator's settings for the autopilot of this process (see the module docstring)."""

    pipelines: tuple[str, ...] = ()
    """The retraining pipelines it may run (entries as in the module docstring)."""
    allow_pickle: bool = False
    """Whether the gates may load model versions stored as pickle (code runs on load)."""

    @classmethod
    def from_env(cls) -> OperatorSettings:
        """``LOOPWISE_AUTOPILOT_PIPELINES`` (comma-separated) and
        ``LOOPWISE_AUTOPILOT_ALLOW_PICKLE`` (``1``/``true``/``yes``)."""
        return cls(
            pipelines=split_entries(os.environ.get(PIPELINES_ENV, "")),
            allow_pickle=os.environ.get(ALLOW_PICKLE_ENV, "").strip().lower()
            in ("1", "true", "yes"),
        )


def split_entries(text: str | Iterable[str]) -> tuple[str, ...]:
    """Comma-separated entries (or several such texts) as a tuple, blanks dropped."""
    texts = [text] if isinstance(text, str) else list(text)
    return tuple(e.strip() for t in texts for e in t.split(",") if e.strip())


def _is_path(location: str) -> bool:
    # The rule of loopwise.pipelines.refs.load_pipeline: a file when it says so or exists.
    return location.endswith(".py") or Path(location).exists()


def _inside(file: Path, folder: Path) -> bool:
    return file == folder or folder in file.parents


def _matches(location: str, name: str, entry: str) -> bool:
    entry_location, entry_name = entry, "*"
    head, colon, tail = entry.rpartition(":")
    if colon and head and (tail == "*" or tail.replace(".", "").replace("_", "").isalnum()):
        entry_location, entry_name = head, tail
    if entry_name not in ("*", name):
        return False
    if not _is_path(location):
        return not _is_path(entry_location) and entry_location == location
    file = Path(location).resolve()
    allowed = Path(entry_location).resolve()
    if entry_location.endswith(("/", os.sep)) or allowed.is_dir():
        return entry_name == "*" and file.suffix == ".py" and _inside(file, allowed)
    return file == allowed


def pipeline_allowed(ref: str, allowed: Sequence[str]) -> bool:
    """Whether pipeline ``ref`` (``file.py:name`` or ``package.module:name``) is among the
    ``allowed`` entries (see the module docstring)."""
    location, colon, name = ref.rpartition(":")
    if not colon or not location:
        return False
    return any(_matches(location, name, entry) for entry in allowed)


def check_pipeline_allowed(ref: str, settings: OperatorSettings) -> None:
    """PermissionDeniedError unless the operator allows pipeline ``ref``."""
    if pipeline_allowed(ref, settings.pipelines):
        return
    shown = ref if len(ref) <= 200 else ref[:200] + "…"
    raise PermissionDeniedError(
        f"retrain.pipeline {shown!r} is not among the pipelines the operator of this autopilot "
        f"allows ({', '.join(settings.pipelines[:5]) or 'none'}), so it was not imported. A "
        f"policy names a pipeline; only the operator allows one: list it (or its module or "
        f"folder) in --autopilot-pipelines (loopwise server), --allow-pipelines (loopwise "
        f"autopilot run-once) or {PIPELINES_ENV}.",
        parameter="retrain.pipeline",
    )
