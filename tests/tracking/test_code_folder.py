"""Which folder's git state a run records: the pipeline's or the script's own, else the working
directory; never the folder of the ``loopwise`` command or of Loopwise's own checkout."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

import loopwise as lw
from loopwise.context import Context
from loopwise.pipelines.loading import import_module_at
from loopwise.tracking.environment import code_folder


def _repo(folder: Path) -> str:
    """A git repository at ``folder`` with one commit; its commit id."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=folder, check=True, capture_output=True, text=True
        ).stdout.strip()

    folder.mkdir(parents=True, exist_ok=True)
    git("init", "-q")
    git("config", "user.email", "t@example.com")
    git("config", "user.name", "t")
    (folder / "README").write_text("a project of the user's\n")
    git("add", ".")
    git("commit", "-qm", "first")
    return git("rev-parse", "HEAD")


def test_a_pipeline_records_the_commit_of_the_repository_that_holds_it(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = _repo(tmp_path / "user-repo")
    flow = tmp_path / "user-repo" / "flow.py"
    flow.write_text(
        "import loopwise as lw\n\n"
        "@lw.step\ndef one() -> int:\n    return 1\n\n"
        "@lw.pipeline\ndef flow() -> None:\n    one()\n"
    )
    monkeypatch.chdir(tmp_path)  # run from outside the repository, as `loopwise pipelines run`
    module = import_module_at("flow_for_code_folder_test", str(flow))
    result = module.flow.run()
    environment = lw.get_run(result.run_id).environment
    assert environment is not None and environment["git"] is not None
    assert environment["git"]["commit"] == commit


def test_the_loopwise_command_is_not_taken_for_the_users_script(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    command = types.ModuleType("__main__")
    command.__file__ = str(Path(sys.prefix) / "bin" / "loopwise")
    monkeypatch.setitem(sys.modules, "__main__", command)
    monkeypatch.chdir(tmp_path)
    assert code_folder() == tmp_path.resolve()

    script = types.ModuleType("__main__")
    script.__file__ = str(tmp_path / "elsewhere" / "train.py")
    monkeypatch.setitem(sys.modules, "__main__", script)
    assert code_folder() == tmp_path.resolve() / "elsewhere"
    assert code_folder(tmp_path / "flows" / "flow.py") == tmp_path.resolve() / "flows"


def test_a_run_started_under_the_command_records_the_working_directorys_repository(
    ctx: Context, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = _repo(tmp_path / "user-repo")
    command = types.ModuleType("__main__")
    command.__file__ = str(Path(lw.__file__).parent / "__main__.py")  # python -m loopwise
    monkeypatch.setitem(sys.modules, "__main__", command)
    monkeypatch.chdir(tmp_path / "user-repo")
    with lw.start_run() as run:
        pass
    environment = lw.get_run(run.id).environment
    assert environment is not None and environment["git"]["commit"] == commit
