"""Real services for tests: a throwaway PostgreSQL server started from Debian's binaries.

In CI (``CI=true``) a missing service is a failure; on a developer's machine the tests that need
it are skipped with the command that installs it.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

__all__ = ["PostgresServer", "missing_service"]


def missing_service(what: str, install: str) -> None:
    """Fail in CI, skip elsewhere, always saying how to install the service."""
    message = f"{what} is not installed; install it with: {install}"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pg_bin() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


class PostgresServer:
    """A PostgreSQL cluster in a temporary folder, listening on a loopback port."""

    def __init__(self) -> None:
        self.port = 0
        self.folder: Path | None = None
        self._template = False

    def start(self) -> PostgresServer:
        bin_dir = _pg_bin()
        if bin_dir is None:
            missing_service("PostgreSQL", "apt-get install -y postgresql")
            raise AssertionError("unreachable")
        self.folder = Path(tempfile.mkdtemp(prefix="loopwise-pg-"))
        data = self.folder / "data"
        as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            shutil.chown(self.folder, "postgres")
            as_user = ["runuser", "-u", "postgres", "--"]
        self.port = _free_port()
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
        )
        subprocess.run(
            [
                *as_user,
                str(bin_dir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(self.folder / "server.log"),
                "-o",
                f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off "
                "-c max_connections=200",
                "-w",
                "start",
            ],
            check=True,
            capture_output=True,
        )
        self._as_user = as_user
        self._bin = bin_dir
        return self

    @property
    def admin_url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _execute(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(sql.encode())

    def url(self, name: str) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, migrated: bool = True) -> str:
        """A new database; returns its SQLAlchemy URL.

        ``migrated`` databases are copies of a template already at the current schema (cloning
        takes milliseconds; migrating takes about a second); otherwise the database is empty.
        """
        name = f"lw_{uuid.uuid4().hex[:12]}"
        if not migrated:
            self._execute(f'CREATE DATABASE "{name}"')
            return self.url(name)
        if not self._template:
            from loopwise.store.migrate import upgrade
            from loopwise.store.sql.core import make_engines

            self._execute('CREATE DATABASE "lw_template"')
            write, _ = make_engines(self.url("lw_template"))
            upgrade(write)
            write.dispose()
            self._template = True
        self._execute(f'CREATE DATABASE "{name}" TEMPLATE "lw_template"')
        return self.url(name)

    def stop(self) -> None:
        if self.folder is None:
            return
        subprocess.run(
            [
                *self._as_user,
                str(self._bin / "pg_ctl"),
                "-D",
                str(self.folder / "data"),
                "-m",
                "immediate",
                "stop",
            ],
            check=False,
            capture_output=True,
        )
        deadline = time.monotonic() + 10
        while (self.folder / "data" / "postmaster.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)
        self.folder = None
