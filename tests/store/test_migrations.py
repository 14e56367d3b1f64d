"""The schema: models and migrations agree, and a store of another schema is refused helpfully."""

from __future__ import annotations

import gc
import itertools
import os
import shlex
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from loopwise.errors import SchemaTooNewError, SchemaTooOldError
from loopwise.store import migrate, open_store, upgrade_store
from loopwise.store.sql.core import make_engines
from loopwise.store.sql.schema import Base


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[tuple[Engine, Engine]]:
    write_engine, read_engine = make_engines(f"sqlite:///{tmp_path / 'db.sqlite'}")
    yield write_engine, read_engine
    write_engine.dispose()
    read_engine.dispose()


def _script_directory() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    return ScriptDirectory.from_config(config)


def _set_meta(db: Path, revision: str, written_by: str | None = None) -> None:
    conn = sqlite3.connect(db)
    try:
        with conn:
            conn.execute("UPDATE alembic_version SET version_num = ?", (revision,))
            if written_by is not None:
                conn.execute(
                    "UPDATE loopwise_meta SET value = ? WHERE key = 'written_by_loopwise'",
                    (written_by,),
                )
    finally:
        conn.close()


def _revision(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("SELECT version_num FROM alembic_version").fetchone()[0])
    finally:
        conn.close()


def test_models_and_migrations_agree(engines: tuple[Engine, Engine]) -> None:
    write_engine, read_engine = engines
    assert migrate.upgrade(write_engine) == (None, migrate.HEAD)
    with read_engine.connect() as conn:
        differences = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert differences == []


def test_upgrade_records_the_writer(engines: tuple[Engine, Engine]) -> None:
    write_engine, read_engine = engines
    migrate.upgrade(write_engine)
    assert migrate.current_revision(read_engine) == migrate.HEAD
    assert migrate.upgrade(write_engine) == (migrate.HEAD, migrate.HEAD)


def test_head_is_alembics_head() -> None:
    scripts = _script_directory()
    assert scripts.get_heads() == [migrate.HEAD]
    revisions = sorted(script.revision for script in scripts.walk_revisions())
    assert revisions == migrate.KNOWN_REVISIONS
    # Zero-padded sequence numbers, each revising the one before it.
    assert scripts.get_revision(revisions[0]).down_revision is None
    for previous, current in itertools.pairwise(revisions):
        assert scripts.get_revision(current).down_revision == previous
        assert int(current) == int(previous) + 1


def test_store_of_a_newer_loopwise_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    open_store(folder).close()
    db = folder / "loopwise.db"
    _set_meta(db, "9999", written_by="9.9.0")
    with pytest.raises(SchemaTooNewError) as info:
        open_store(folder)
    message = str(info.value)
    assert "loopwise>=9.9.0" in message
    assert "'9999'" in message
    with pytest.raises(SchemaTooNewError, match="loopwise>=9.9.0"):
        upgrade_store(folder)
    assert _revision(db) == "9999"  # refused, not rewritten


def test_store_of_a_newer_loopwise_without_a_version_note(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    open_store(folder).close()
    conn = sqlite3.connect(folder / "loopwise.db")
    try:
        with conn:
            conn.execute("UPDATE alembic_version SET version_num = '9999'")
            conn.execute("DELETE FROM loopwise_meta")
    finally:
        conn.close()
    with pytest.raises(SchemaTooNewError, match="pip install --upgrade 'loopwise'"):
        open_store(folder)


def test_store_of_an_older_loopwise_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "store"
    open_store(folder).close()
    # Pretend this Loopwise has a newer migration than the store.
    newer = f"{int(migrate.HEAD) + 1:04d}"
    monkeypatch.setattr(migrate, "KNOWN_REVISIONS", [*migrate.KNOWN_REVISIONS, newer])
    monkeypatch.setattr(migrate, "HEAD", newer)
    with pytest.raises(SchemaTooOldError) as info:
        open_store(folder)
    message = str(info.value)
    assert str(folder) in message
    assert newer in message
    # The command the message suggests is one the CLI accepts.
    from typer.testing import CliRunner

    from loopwise.cli import app

    command = message.split("upgrade it with: ")[1]
    monkeypatch.undo()
    result = CliRunner().invoke(app, shlex.split(command)[1:])
    assert command.startswith("loopwise ") and result.exit_code == 0, result.output


def _open_files(path: Path) -> list[str]:
    fd_dir = Path("/proc/self/fd")
    targets = []
    for fd in os.listdir(fd_dir):
        try:
            targets.append(os.readlink(fd_dir / fd))
        except OSError:
            continue
    return [t for t in targets if t.startswith(str(path))]


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc to list open files")
def test_refused_store_leaves_no_open_files(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    open_store(folder).close()
    _set_meta(folder / "loopwise.db", "9999", written_by="9.9.0")
    gc.disable()  # garbage collection must not be what closes the connections
    try:
        with pytest.raises(SchemaTooNewError):
            open_store(folder)
        assert _open_files(folder) == []
    finally:
        gc.enable()


def test_upgrade_store_on_a_new_folder_is_idempotent(tmp_path: Path) -> None:
    folder = tmp_path / "store"
    assert upgrade_store(folder) == (None, migrate.HEAD)
    assert upgrade_store(folder) == (migrate.HEAD, migrate.HEAD)
    assert _revision(folder / "loopwise.db") == migrate.HEAD
    store = open_store(folder)
    try:
        store.get_or_create_project("proj")
        assert [p.name for p in store.list_projects()] == ["proj"]
    finally:
        store.close()
    assert upgrade_store(folder) == (migrate.HEAD, migrate.HEAD)


def test_empty_database_opened_without_create_is_not_a_store(tmp_path: Path) -> None:
    from loopwise.errors import NotAStoreError
    from loopwise.store.artifacts import LocalArtifactStore
    from loopwise.store.sql import SqlStore

    store = SqlStore(
        f"sqlite:///{tmp_path / 'empty.db'}", LocalArtifactStore(tmp_path / "a"), tmp_path / "s"
    )
    with pytest.raises(NotAStoreError, match=r"loopwise --uri .* db upgrade"):
        store.open(create=False)


def test_upgrading_a_0001_store_starts_an_empty_audit_log(tmp_path: Path) -> None:
    from alembic import command
    from sqlalchemy import text

    folder = tmp_path / "store"
    folder.mkdir()
    write_engine, _ = make_engines(f"sqlite:///{folder / 'loopwise.db'}")
    config = Config()
    config.set_main_option("script_location", str(migrate.MIGRATIONS))
    with write_engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "0001")
        conn.execute(text("INSERT INTO projects (name, created_ms) VALUES ('old', 0)"))
        conn.execute(
            text("INSERT INTO loopwise_meta (key, value) VALUES ('written_by_loopwise', '0.1')")
        )
    write_engine.dispose()
    assert upgrade_store(folder) == ("0001", migrate.HEAD)
    store = open_store(folder)
    try:
        assert store.verify_audit().records == 0 and store.verify_audit().ok
        store.get_or_create_project("new")
        assert [(r.seq, r.action, r.project) for r in store.audit_log()] == [
            (1, "project.create", "new")
        ]
        assert store.verify_audit().ok
    finally:
        store.close()
