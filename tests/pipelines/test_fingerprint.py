"""Code fingerprints: which edits and upgrades change a step's digest, and which do not.

Project code is written to files under tmp_path and imported from there, as a user's would be.
"""

from __future__ import annotations

import functools
import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from loopwise.errors import InvalidArgumentError
from loopwise.pipelines.fingerprint import CodeFingerprint, explain_difference, fingerprint
from tests.pipelines.support import install_fakepkg


class Project:
    """A folder of user code on sys.path, with modules re-imported after every edit."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def write(self, relative: str, source: str) -> Path:
        path = self.root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        previous_mtime_ns = path.stat().st_mtime_ns if path.exists() else None
        path.write_text(textwrap.dedent(source))
        if previous_mtime_ns is not None:
            # File timestamps are coarse: an edit of the same size within one tick would look
            # unchanged to linecache. A user's edits are seconds apart; make this one too.
            later = previous_mtime_ns + 1_000_000_000
            os.utime(path, ns=(later, later))
        importlib.invalidate_caches()
        return path

    def load(self, name: str) -> ModuleType:
        """Import ``name`` afresh, together with every project module it imports."""
        self.forget_modules()
        return importlib.import_module(name)

    def forget_modules(self) -> None:
        for name, module in list(sys.modules.items()):
            filename = getattr(module, "__file__", None)
            if filename and Path(filename).is_relative_to(self.root):
                del sys.modules[name]

    def install_fakepkg(self, version: str) -> None:
        """A distribution 'fakepkg' installed into the project folder, as pip would lay it out."""
        install_fakepkg(self.root, version)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Project]:
    monkeypatch.syspath_prepend(str(tmp_path))
    # Bytecode caches are keyed on whole-second mtimes; edits here come faster than that.
    monkeypatch.setattr(sys, "dont_write_bytecode", True)
    folder = Project(tmp_path)
    yield folder
    folder.forget_modules()
    importlib.invalidate_caches()


STEPS = textwrap.dedent("""\
    import numpy as np

    LABELS = {"cat", "dog", "bird", "fish"}
    # a comment above everything


    def clean(rows):
        return [row for row in rows if row in LABELS]


    def unused(rows):
        return rows


    def train(rows):
        # count the clean rows
        kept = clean(rows)
        return np.asarray([len(kept)])
""")


def digest_of(project: Project, module: str, step: str) -> str:
    return fingerprint(getattr(project.load(module), step)).digest


def test_unchanged_code_has_the_same_digest_here_and_in_fresh_interpreters(
    project: Project,
) -> None:
    project.write("steps.py", STEPS)
    first = digest_of(project, "steps", "train")
    assert digest_of(project, "steps", "train") == first
    script = (
        "import steps\n"
        "from loopwise.pipelines.fingerprint import fingerprint\n"
        "print(fingerprint(steps.train).digest)\n"
    )
    # Different hash seeds order the LABELS set differently; the digest must not notice.
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed, "PYTHONDONTWRITEBYTECODE": "1"}
        result = subprocess.run(
            [sys.executable, "-c", script],
            cwd=project.root,
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.strip() == first


def test_editing_the_step_body_changes_the_digest(project: Project) -> None:
    project.write("steps.py", STEPS)
    before = digest_of(project, "steps", "train")
    project.write("steps.py", STEPS.replace("[len(kept)]", "[len(kept) + 1]"))
    assert digest_of(project, "steps", "train") != before


def test_editing_a_comment_outside_the_step_keeps_the_digest(project: Project) -> None:
    project.write("steps.py", STEPS)
    before = digest_of(project, "steps", "train")
    longer = "# a longer comment\n# over two lines, which moves the step down"
    project.write("steps.py", STEPS.replace("# a comment above everything", longer))
    assert digest_of(project, "steps", "train") == before


def test_editing_a_called_helper_changes_the_digest(project: Project) -> None:
    project.write("steps.py", STEPS)
    before = digest_of(project, "steps", "train")
    project.write("steps.py", STEPS.replace("if row in LABELS", "if row not in LABELS"))
    assert digest_of(project, "steps", "train") != before


def test_editing_a_function_the_step_does_not_call_keeps_the_digest(project: Project) -> None:
    project.write("steps.py", STEPS)
    before = digest_of(project, "steps", "train")
    project.write("steps.py", STEPS.replace("return rows\n", "return rows[::-1]\n"))
    assert digest_of(project, "steps", "train") == before


def test_editing_a_module_constant_the_step_reads_changes_the_digest(project: Project) -> None:
    project.write("steps.py", STEPS)
    before = fingerprint(project.load("steps").train)
    project.write("steps.py", STEPS.replace('"fish"', '"hamster"'))
    after = fingerprint(project.load("steps").train)
    assert after.digest != before.digest
    assert explain_difference(before.as_dict(), after.as_dict()) == [
        "the value of LABELS (steps) changed"
    ]


HELPERS = textwrap.dedent("""\
    from text_utils import normalise


    def clean(rows):
        return [normalise(row) for row in rows]


    def unrelated(rows):
        return rows
""")
TEXT_UTILS = textwrap.dedent("""\
    def normalise(row):
        return row.strip()
""")
STEP_STYLES = {
    "from-import": "from helpers import clean\n\ndef train(rows):\n    return clean(rows)\n",
    "module-import": "import helpers\n\ndef train(rows):\n    return helpers.clean(rows)\n",
    "import-in-body": "def train(rows):\n    from helpers import clean\n    return clean(rows)\n",
}


@pytest.mark.parametrize("style", sorted(STEP_STYLES))
def test_editing_a_helper_in_another_project_module_changes_the_digest(
    project: Project, style: str
) -> None:
    project.write("helpers.py", HELPERS)
    project.write("text_utils.py", TEXT_UTILS)
    project.write("steps.py", STEP_STYLES[style])
    before = digest_of(project, "steps", "train")
    project.write("helpers.py", HELPERS.replace("normalise(row) for", "normalise(row).lower() for"))
    assert digest_of(project, "steps", "train") != before


@pytest.mark.parametrize("style", ["from-import", "module-import"])
def test_editing_code_two_modules_away_changes_the_digest(project: Project, style: str) -> None:
    project.write("helpers.py", HELPERS)
    project.write("text_utils.py", TEXT_UTILS)
    project.write("steps.py", STEP_STYLES[style])
    before = digest_of(project, "steps", "train")
    project.write("text_utils.py", TEXT_UTILS.replace("row.strip()", "row.lstrip()"))
    assert digest_of(project, "steps", "train") != before


def test_from_import_of_one_helper_ignores_the_rest_of_its_module(project: Project) -> None:
    project.write("helpers.py", HELPERS)
    project.write("text_utils.py", TEXT_UTILS)
    project.write("steps.py", STEP_STYLES["from-import"])
    before = fingerprint(project.load("steps").train)
    assert set(before.sources) == {"steps:train", "helpers:clean", "text_utils:normalise"}
    project.write("helpers.py", HELPERS.replace("return rows\n", "return rows[1:]\n"))
    assert digest_of(project, "steps", "train") == before.digest


FAKEPKG_STEPS = {
    "global_module": "import fakepkg\n\ndef step(x):\n    return fakepkg.double(x)\n",
    "global_function": "from fakepkg import double\n\ndef step(x):\n    return double(x)\n",
    "body_import": "def step(x):\n    import fakepkg\n    return fakepkg.double(x)\n",
}


@pytest.mark.parametrize("module", sorted(FAKEPKG_STEPS))
def test_upgrading_a_package_the_step_uses_changes_the_digest(
    project: Project, module: str
) -> None:
    project.install_fakepkg("1.0")
    project.write(f"{module}.py", FAKEPKG_STEPS[module])
    before = fingerprint(project.load(module).step)
    assert before.packages == {"fakepkg": "1.0"}
    assert set(before.sources) == {f"{module}:step"}  # the package's code is not hashed
    project.install_fakepkg("1.1")
    importlib.invalidate_caches()  # what pip's own process boundary gives a real upgrade
    after = fingerprint(project.load(module).step)
    assert after.packages == {"fakepkg": "1.1"}
    assert after.digest != before.digest
    assert after.sources == before.sources


def test_installed_packages_are_recorded_with_versions_and_stdlib_is_ignored(
    project: Project,
) -> None:
    project.write(
        "steps.py",
        """\
        import json
        import os

        import numpy as np
        from sklearn.linear_model import LogisticRegression

        import loopwise as lw
        from loopwise.errors import InvalidArgumentError


        def train(rows):
            if not rows:
                raise InvalidArgumentError("no rows", parameter="rows")
            os.environ.get("HOME")
            json.dumps(rows)
            return LogisticRegression().fit(np.asarray(rows), [0, 1]), lw.__name__
        """,
    )
    result = fingerprint(project.load("steps").train)
    assert result.packages == {
        "loopwise": importlib.metadata.version("loopwise"),
        "numpy": importlib.metadata.version("numpy"),
        "scikit-learn": importlib.metadata.version("scikit-learn"),
    }
    assert list(result.sources) == ["steps:train"]


def test_recursive_and_mutually_recursive_functions_terminate(project: Project) -> None:
    project.write(
        "steps.py",
        """\
        def factorial(n):
            return 1 if n <= 1 else n * factorial(n - 1)


        def is_even(n):
            return True if n == 0 else is_odd(n - 1)


        def is_odd(n):
            return False if n == 0 else is_even(n - 1)


        class Node:
            def walk(self):
                return [Node(), factorial(3), is_even(4)]


        def step(n):
            return Node().walk()
        """,
    )
    result = fingerprint(project.load("steps").step)
    assert set(result.sources) == {
        "steps:step",
        "steps:Node",
        "steps:factorial",
        "steps:is_even",
        "steps:is_odd",
    }


def test_nested_functions_lambdas_and_comprehensions_are_walked(project: Project) -> None:
    source = """\
        def scale(x):
            return x * 2


        def step(rows):
            def inner(row):
                return [scale(v) for v in row]

            return list(map(lambda r: inner(r), rows))
        """
    project.write("steps.py", source)
    before = fingerprint(project.load("steps").step)
    assert "steps:scale" in before.sources
    project.write("steps.py", source.replace("x * 2", "x * 3"))
    assert digest_of(project, "steps", "step") != before.digest


def test_values_captured_by_a_closure_are_part_of_the_digest(project: Project) -> None:
    project.write(
        "steps.py",
        """\
        def make_step(alpha):
            def step(x):
                return x * alpha

            return step
        """,
    )
    steps = project.load("steps")
    small, large = fingerprint(steps.make_step(0.1)), fingerprint(steps.make_step(0.2))
    assert small.digest != large.digest
    assert fingerprint(steps.make_step(0.1)).digest == small.digest
    assert explain_difference(small.as_dict(), large.as_dict()) == [
        "the value of alpha captured by make_step.<locals>.step (steps) changed"
    ]


def test_wrappers_fingerprint_the_function_they_wrap(project: Project) -> None:
    project.write(
        "steps.py",
        """\
        def train(rows):
            return sorted(rows)
        """,
    )
    train = project.load("steps").train

    class StepLike:
        def __init__(self, fn: Callable[..., Any]) -> None:
            self.fn = fn

    @functools.wraps(train)
    def logged(*args: Any) -> Any:
        return train(*args)

    expected = fingerprint(train)
    assert fingerprint(StepLike(train)).digest == expected.digest  # type: ignore[arg-type]
    assert fingerprint(logged) == expected


def test_explain_difference_names_changed_helpers_and_package_versions(project: Project) -> None:
    project.install_fakepkg("1.0")
    project.write("helpers.py", "import fakepkg\n\ndef clean(x):\n    return fakepkg.double(x)\n")
    project.write("steps.py", STEP_STYLES["from-import"])
    old = fingerprint(project.load("steps").train).as_dict()
    assert explain_difference(old, old) == []

    project.write(
        "helpers.py",
        "import fakepkg\n\ndef strip(x):\n    return x\n\n"
        "def clean(x):\n    return strip(fakepkg.double(x))\n",
    )
    project.install_fakepkg("1.1")
    importlib.invalidate_caches()
    new = fingerprint(project.load("steps").train).as_dict()
    assert explain_difference(old, new) == [
        "the source of clean (helpers) changed",
        "helper strip (helpers) is new",
        "fakepkg 1.0 -> 1.1",
    ]
    assert explain_difference(new, old)[1] == "helper strip (helpers) is no longer used"


def test_as_dict_round_trips_and_bad_input_is_refused(project: Project) -> None:
    project.write("steps.py", STEPS)
    result = fingerprint(project.load("steps").train)
    assert CodeFingerprint.from_dict(result.as_dict()) == result
    with pytest.raises(InvalidArgumentError, match="digest"):
        CodeFingerprint.from_dict({"sources": {}})
    with pytest.raises(InvalidArgumentError, match="'packages'"):
        CodeFingerprint.from_dict({"digest": "x", "packages": {"numpy": 2}})
    with pytest.raises(InvalidArgumentError, match="function"):
        fingerprint(42)  # type: ignore[arg-type]
