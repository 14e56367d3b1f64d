"""Loading a pipeline's file puts its folder on ``sys.path`` for that import only: the file's
own ``import helpers`` works, and nothing is left behind for later imports to pick up."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from loopwise.pipelines.loading import import_module_at


def test_the_folder_is_on_sys_path_during_the_import_only(tmp_path: Path) -> None:
    folder = tmp_path / "user_code"
    folder.mkdir()
    (folder / "helpers_for_path_test.py").write_text("VALUE = 42\n")
    (folder / "flow_for_path_test.py").write_text(
        "import helpers_for_path_test\nANSWER = helpers_for_path_test.VALUE\n"
    )
    before = list(sys.path)
    try:
        module = import_module_at("flow_for_path_test", str(folder / "flow_for_path_test.py"))
        assert module.ANSWER == 42
        assert sys.path == before
        assert str(folder) not in sys.path
    finally:
        sys.path[:] = before
        sys.modules.pop("flow_for_path_test", None)
        sys.modules.pop("helpers_for_path_test", None)


def test_sys_path_is_restored_when_the_import_fails(tmp_path: Path) -> None:
    (tmp_path / "broken_for_path_test.py").write_text("raise RuntimeError('broken')\n")
    before = list(sys.path)
    try:
        with pytest.raises(RuntimeError, match="broken"):
            import_module_at("broken_for_path_test", str(tmp_path / "broken_for_path_test.py"))
        assert sys.path == before
    finally:
        sys.path[:] = before
        sys.modules.pop("broken_for_path_test", None)
