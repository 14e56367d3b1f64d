"""Fixtures shared by the whole suite: every test gets its own store folder.

Also the tiers: a test that starts another process or service (a server, the CLI, PostgreSQL,
Ray, a browser, Prometheus, wrk) is marked ``e2e`` here, found by what its code and its
fixtures' code reach; ``make test-fast`` runs the rest (``-m "not slow and not e2e"``).
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from types import CodeType, FunctionType, ModuleType

import pytest

import loopwise as lw
from loopwise.context import Context

from .services import PostgresServer

PROCESS_MODULES = frozenset({"subprocess", "multiprocessing", "ray"})
"""Test code that touches one of these modules (or reaches test code that does) starts a process."""


@pytest.fixture(autouse=True)
def _isolated_store(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """No test ever writes to ./.loopwise: LOOPWISE_URI points at a fresh folder."""
    monkeypatch.setenv("LOOPWISE_URI", str(tmp_path_factory.mktemp("default-store") / "store"))
    monkeypatch.delenv("LOOPWISE_PROJECT", raising=False)
    yield
    lw.shutdown()


@pytest.fixture
def ctx(tmp_path: Path) -> Iterator[Context]:
    """An initialised SDK context on a fresh store, project 'test'."""
    context = lw.init(project="test", uri=tmp_path / "store")
    yield context
    lw.shutdown()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (Debian's package; `.ci/run` installs it)."""
    server = PostgresServer().start()
    yield server
    server.stop()


class ProcessReach:
    """Whether test code reaches a process-starting module, through the functions, classes and
    fixtures of this ``tests`` package that it names. The library's code is not followed, but a
    library name whose module imports one (``serving.workers.ModelProcess``) counts.

    A static over-approximation: naming ``subprocess`` counts even where it is only a value.
    """

    def __init__(self) -> None:
        self._known: dict[int, bool] = {}
        self.fixtures: Callable[[str], Sequence[object]] = lambda name: ()
        """The fixture functions a name stands for, where the test being looked at is."""

    def any(self, roots: Iterable[object], owner: type | None = None) -> bool:
        seen: set[int] = set()
        stack = [(root, owner) for root in roots]
        while stack:
            obj, cls = stack.pop()
            key = id(obj)
            if key in seen or self._known.get(key) is False:
                continue
            seen.add(key)
            if _is_process_module(obj) or _from_process_starting_module(obj):
                return True
            stack.extend(_named_by(obj, cls))
            stack.extend((fixture, None) for fixture in self._requested_by(obj))
        for key in seen:  # nothing reachable from them starts a process
            self._known[key] = False
        return False

    def _requested_by(self, obj: object) -> Iterator[object]:
        """The fixtures a fixture asks for by name: ``request.getfixturevalue("postgres")``."""
        if not isinstance(obj, FunctionType) or not _ours(obj):
            return
        for code in _codes(obj.__code__):
            if "getfixturevalue" in code.co_names:
                for const in code.co_consts:
                    if isinstance(const, str):
                        yield from self.fixtures(const)


def _is_process_module(obj: object) -> bool:
    return isinstance(obj, ModuleType) and obj.__name__.split(".")[0] in PROCESS_MODULES


def _from_process_starting_module(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    if not isinstance(module, str) or not module.startswith("loopwise."):
        return False
    namespace = vars(sys.modules[module]) if module in sys.modules else {}
    return any(_is_process_module(value) for value in namespace.values())


def _ours(obj: object) -> bool:
    module = getattr(obj, "__module__", None)
    return isinstance(module, str) and (module == "tests" or module.startswith("tests."))


def _codes(code: CodeType) -> Iterator[CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, CodeType):
            yield from _codes(const)


def _named_by(obj: object, cls: type | None) -> Iterator[tuple[object, type | None]]:
    """What ``obj`` (a function or class of this package) names: globals, closures, methods."""
    if isinstance(obj, staticmethod | classmethod):
        obj = obj.__func__
    if isinstance(obj, property):
        yield from ((part, cls) for part in (obj.fget, obj.fset) if part is not None)
        return
    if not _ours(obj):
        return
    if isinstance(obj, type):
        for base in obj.__mro__:
            if _ours(base):
                yield from ((member, obj) for member in vars(base).values())
        return
    if not callable(obj):
        return
    inner = getattr(getattr(obj, "hypothesis", None), "inner_test", None)
    function = inspect.unwrap(inner if inner is not None else obj)
    if not isinstance(function, FunctionType):
        return
    names = {name for code in _codes(function.__code__) for name in code.co_names}
    for name in names:
        if name in function.__globals__:
            yield function.__globals__[name], cls
        if cls is not None and name in dir(cls):
            yield inspect.getattr_static(cls, name), cls
    for cell in function.__closure__ or ():
        try:
            yield cell.cell_contents, cls
        except ValueError:  # an empty cell
            continue


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``e2e`` each test whose code or fixtures reach a process-starting module."""
    reach = ProcessReach()
    for item in items:
        if not isinstance(item, pytest.Function) or item.get_closest_marker("e2e"):
            continue
        fixtures = [
            definition.func
            for definitions in item._fixtureinfo.name2fixturedefs.values()
            for definition in definitions
        ]
        reach.fixtures = _fixture_lookup(item)
        if reach.any([item.function], item.cls) or reach.any(fixtures):
            item.add_marker(pytest.mark.e2e)
    _slow_files_first(items)


def _slow_files_first(items: list[pytest.Item]) -> None:
    """Run the longest files first: those with a ``slow`` test, longest estimate first (the
    marker's ``seconds=``, an ordering hint only), then those that start processes, then the
    rest. ``make test`` runs pytest-xdist with ``--dist loadfile --no-loadscope-reorder``, which
    hands files out in this order, so the long ones start at once and the short ones fill the
    gaps instead of one worker running a long file alone at the end."""

    def weight(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        if slow is not None:
            return 1_000.0 + float(slow.kwargs.get("seconds", 0))
        return float(bool(item.get_closest_marker("e2e")))

    per_file: dict[str, float] = {}
    for item in items:
        file = item.nodeid.split("::", 1)[0]
        per_file[file] = max(per_file.get(file, 0.0), weight(item))
    items.sort(key=lambda item: -per_file[item.nodeid.split("::", 1)[0]])


def _fixture_lookup(item: pytest.Function) -> Callable[[str], Sequence[object]]:
    manager = item.session._fixturemanager

    def functions(name: str) -> Sequence[object]:
        return [definition.func for definition in manager.getfixturedefs(name, item) or ()]

    return functions
