"""Schema versions: create, check and upgrade the metadata database with Alembic.

Revision ids are zero-padded sequence numbers (``0001``, ``0002`` …), so the head is known from
the file names without importing Alembic on every start.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine, inspect, text

from loopwise.errors import NotAStoreError, SchemaTooNewError, SchemaTooOldError
from loopwise.version import loopwise_version as _installed_version

__all__ = [
    "HEAD",
    "KNOWN_REVISIONS",
    "check_schema",
    "current_revision",
    "loopwise_version",
    "upgrade",
]

MIGRATIONS = Path(__file__).parent / "migrations"
KNOWN_REVISIONS = sorted(
    p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py")
)
HEAD = KNOWN_REVISIONS[-1]


def loopwise_version() -> str:
    """This Loopwise's version (``loopwise.__version__``, read from the installed metadata)."""
    return _installed_version()


def current_revision(engine: Engine) -> str | None:
    """The schema revision of the database, or None when it has no Loopwise tables."""
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def check_schema(engine: Engine, uri: str) -> None:
    """Refuse a database whose schema this Loopwise does not speak, saying what to do."""
    revision = current_revision(engine)
    if revision == HEAD:
        return
    if revision is None:
        raise NotAStoreError(
            f"The database at {uri} has no Loopwise tables. Create them with: "
            f"loopwise --uri {uri} db upgrade",
            uri=uri,
        )
    if revision in KNOWN_REVISIONS:
        raise SchemaTooOldError(
            f"The store at {uri} has schema {revision}; this Loopwise needs {HEAD}. "
            f"Back it up, then upgrade it with: loopwise --uri {uri} db upgrade",
            revision=revision,
            head=HEAD,
        )
    needs = "a newer version"
    with engine.connect() as conn:
        if inspect(conn).has_table("loopwise_meta"):
            row = conn.execute(
                text("SELECT value FROM loopwise_meta WHERE key = 'written_by_loopwise'")
            ).scalar()
            if row:
                needs = f"loopwise>={row}"
    raise SchemaTooNewError(
        f"The store at {uri} has schema {revision!r}, which is newer than this Loopwise "
        f"({loopwise_version()}, schema {HEAD}) understands. Install {needs}: "
        f"pip install --upgrade '{needs if needs.startswith('loopwise') else 'loopwise'}'",
        revision=revision,
        head=HEAD,
    )


def upgrade(engine: Engine) -> tuple[str | None, str]:
    """Run every pending migration; returns ``(revision before, revision after)``."""
    from alembic import command
    from alembic.config import Config

    before = current_revision(engine)
    if before == HEAD:
        return before, HEAD
    if before is not None and before not in KNOWN_REVISIONS:
        check_schema(engine, str(engine.url))  # raises SchemaTooNewError
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        conn.execute(text("DELETE FROM loopwise_meta WHERE key = 'written_by_loopwise'"))
        conn.execute(
            text("INSERT INTO loopwise_meta (key, value) VALUES ('written_by_loopwise', :v)"),
            {"v": loopwise_version()},
        )
    return before, HEAD
