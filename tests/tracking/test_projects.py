"""Projects from the SDK: listing with counts, creating with "was it new", and the project the
command line means when it names none (``loopwise.context.init_existing``)."""

from __future__ import annotations

from pathlib import Path

import pytest

import loopwise as lw
from loopwise.context import (
    LAST_PROJECT_FILE,
    init_existing,
    opened,
    remember_project,
    remembered_project,
)
from loopwise.errors import NotFoundError
from loopwise.store import open_store
from loopwise.tracking.projects import create_project, list_projects


@pytest.fixture(autouse=True)
def _no_project_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOOPWISE_PROJECT", raising=False)


def test_create_says_whether_new_and_list_counts(tmp_path: Path) -> None:
    store = open_store(tmp_path / "store")
    try:
        first = create_project("a", store)
        again = create_project("a", store)
        assert (first.created, again.created) == (True, False)
        assert again.project == first.project
        summary = list_projects(store)
        assert [(p.name, p.models, p.deployments) for p in summary] == [("a", 0, 0)]
    finally:
        store.close()


def test_unnamed_choice_only_then_remembered_then_default(tmp_path: Path) -> None:
    uri = tmp_path / "store"
    assert init_existing(uri=uri, create=True).project == "default"  # an empty store
    lw.shutdown()
    lw.init(project="b", uri=uri)
    lw.shutdown()
    # Two projects, none named before: 'default'.
    assert init_existing(uri=uri).project == "default"
    assert init_existing("b", uri).project == "b"
    assert remembered_project(uri) == "b"
    assert (uri / LAST_PROJECT_FILE).read_text().strip() == "b"
    lw.shutdown()
    assert init_existing(uri=uri).project == "b"
    lw.shutdown()
    remember_project(uri, "gone")  # a name the store no longer has: not chosen
    assert init_existing(uri=uri).project == "default"
    lw.shutdown()


def test_unknown_project_is_refused_not_created(tmp_path: Path) -> None:
    uri = tmp_path / "store"
    lw.init(project="a", uri=uri)
    lw.shutdown()
    with pytest.raises(NotFoundError, match="No project named 'typo'. Existing projects: 'a'"):
        init_existing("typo", uri)
    assert opened() is None  # nothing left open, nothing remembered
    assert remembered_project(uri) is None


def test_servers_and_database_urls_remember_nothing(tmp_path: Path) -> None:
    remember_project("http://localhost:1", "a")
    assert remembered_project("http://localhost:1") is None
    assert remembered_project(f"sqlite:///{tmp_path}/x.db") is None
