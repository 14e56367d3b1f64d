"""The examples in the README and docs/ run, and the CLI reference matches ``--help``."""

from __future__ import annotations

import ast
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import loopwise as lw
from loopwise.cli import app as cli_app

from .docs_commands import command_lines, problems

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.MULTILINE | re.DOTALL)


def _pages_with_code() -> list[Path]:
    return [page for page in PAGES if BLOCK.search(page.read_text())]


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_python_examples_run(page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem}"}
    for number, code in enumerate(BLOCK.findall(page.read_text()), start=1):
        exec(compile(code, f"{page.name} (python block {number})", "exec"), namespace)
    lw.shutdown()


def test_cli_reference_is_generated_from_help(tmp_path: Path) -> None:
    out = tmp_path / "cli.md"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "typer",
            "loopwise.cli",
            "utils",
            "docs",
            "--name",
            "loopwise",
            "--output",
            str(out),
        ],
        check=True,
        capture_output=True,
    )
    assert out.read_text() == (ROOT / "docs" / "cli.md").read_text(), (
        "docs/cli.md is stale: regenerate it with `make docs`"
    )


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_every_command_the_docs_name_exists(page: Path) -> None:
    found = [p for line in command_lines(page.read_text()) for p in problems(line)]
    assert not found, "\n".join(found)


def test_the_command_check_catches_what_the_docs_got_wrong() -> None:
    assert problems("loopwise data lineage") != []
    assert problems("loopwise -p demo runs list --filter 'x' --no-such-flag") != []
    assert problems("loopwise -p demo runs list --filter 'metrics.a > 1' --json") == []
    assert list(command_lines("see `loopwise data lineage` here")) == ["loopwise data lineage"]


@pytest.mark.parametrize("page", _pages_with_code(), ids=lambda p: p.name)
def test_each_python_block_imports_the_modules_it_uses(page: Path) -> None:
    """A block copied on its own must not fail with NameError for a module an earlier block
    imported (names an earlier block computed are the page's story; modules are not)."""
    modules = {"lw", "np", "pd", "pa", "pl", "httpx", "asyncio", "json", "os", "time", "yaml"}
    missing = []
    for number, code in enumerate(BLOCK.findall(page.read_text()), start=1):
        tree = ast.parse(code)
        bound = {
            alias.asname or alias.name.split(".")[0]
            for node in ast.walk(tree)
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        }
        used = {
            node.id
            for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)
        }
        missing += [f"block {number}: {name}" for name in sorted((used & modules) - bound)]
    assert not missing, f"{page.name} uses modules it does not import: {missing}"


def test_the_readmes_shell_commands_find_what_its_python_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "Then, from the shell": each command of the README's first shell block after its
    Python block, in the same folder, answers with what the Python block made."""
    monkeypatch.chdir(tmp_path)
    text = (ROOT / "README.md").read_text()
    namespace: dict[str, object] = {"__name__": "docs_readme"}
    exec(compile(BLOCK.findall(text)[0], "README.md (python block 1)", "exec"), namespace)
    lw.shutdown()
    shell = text.split("Then, from the shell:", 1)[1]
    commands = list(command_lines(shell.split("\n## ", 1)[0]))
    assert commands and all(line.startswith("loopwise -p readme") for line in commands)
    for line in commands:
        result = CliRunner().invoke(cli_app, shlex.split(line, comments=True)[1:])
        assert result.exit_code == 0, f"{line}: {result.output}"
        assert result.output.strip(), line
    found = CliRunner().invoke(cli_app, [*shlex.split(commands[0])[1:], "--json"])
    assert [run["name"] for run in json.loads(found.output)] == ["tree"]
