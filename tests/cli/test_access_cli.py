"""``loopwise token`` and ``loopwise audit``, run as a fresh process would run them (in this
process, see ``harness.py``) against a real store."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from loopwise.errors import AuthenticationError
from loopwise.store import open_store

from .harness import CliResult
from .harness import cli as run_cli

SECRET = re.compile(r"lw_[0-9a-f]{12}_[A-Za-z0-9_\-]{43}")
DIGEST = "sha256:" + "ab" * 32


def cli(store: Path, *args: str, ok: bool = True) -> CliResult:
    return run_cli(store, *args, ok=ok, project=None)


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """A store whose audit log has 5 records: a project, two model versions, an alias moved."""
    path = tmp_path / "store"
    store = open_store(path)
    store.get_or_create_project("cli")
    for _ in range(2):
        store.create_model_version("cli", "clf", flavour="sklearn", artifact_digest=DIGEST)
    store.set_alias("cli", "clf", "production", 1)
    store.set_alias("cli", "clf", "production", 2)
    store.close()
    return path


def test_token_lifecycle(store: Path) -> None:
    created = cli(store, "token", "create", "--role", "editor", "--project", "cli", "--name", "ci")
    [secret] = SECRET.findall(created.stdout)
    assert "will not be shown again" in created.stderr
    as_json = json.loads(cli(store, "token", "create", "--role", "viewer", "--json").stdout)
    assert SECRET.fullmatch(as_json["secret"]) and as_json["token"]["role"] == "viewer"

    listed = json.loads(cli(store, "token", "list", "--json").stdout)
    assert [(t["name"], t["role"], t["project"]) for t in listed] == [
        ("ci", "editor", "cli"),
        (as_json["token"]["id"], "viewer", None),
    ]
    table = cli(store, "token", "list").stdout
    assert "ci" in table and "editor" in table and secret not in table

    ci_id = listed[0]["id"]
    revoked = json.loads(cli(store, "token", "revoke", ci_id, "--json").stdout)
    assert revoked["revoked_ms"] is not None
    assert [t["id"] for t in json.loads(cli(store, "token", "list", "--json").stdout)] == [
        as_json["token"]["id"]
    ]
    everything = json.loads(cli(store, "token", "list", "--all", "--json").stdout)
    assert [t["id"] for t in everything] == [ci_id, as_json["token"]["id"]]

    opened = open_store(store)
    try:
        with pytest.raises(AuthenticationError):
            opened.authenticate(secret)
        assert opened.authenticate(as_json["secret"]).role == "viewer"
    finally:
        opened.close()


def test_token_errors(store: Path) -> None:
    bad_role = cli(store, "token", "create", "--role", "owner", ok=False)
    assert bad_role.returncode == 2 and "admin" in bad_role.stderr
    unknown = cli(store, "token", "create", "--role", "viewer", "--project", "nope", ok=False)
    assert "'nope'" in unknown.stderr and "'cli'" in unknown.stderr
    missing = cli(store, "token", "revoke", "tok_000000000000", "--json", ok=False)
    assert json.loads(missing.stderr)["error"]["code"] == "not_found"


def test_audit_log(store: Path) -> None:
    records = json.loads(cli(store, "audit", "log", "--json").stdout)
    assert [r["action"] for r in records] == [
        "project.create",
        "model_version.create",
        "model_version.create",
        "alias.set",
        "alias.set",
    ]
    assert (records[-1]["before"], records[-1]["after"]) == ({"version": 1}, {"version": 2})
    table = cli(store, "audit", "log").stdout
    assert "model:clf@production" in table and "version: 1 → 2" in table
    page = cli(store, "audit", "log", "--limit", "2").stdout
    assert "More records follow: --after 2" in page
    rest = json.loads(cli(store, "audit", "log", "--after", "2", "--json").stdout)
    assert [r["seq"] for r in rest] == [3, 4, 5]
    assert len(json.loads(cli(store, "audit", "log", "--since", "1h", "--json").stdout)) == 5
    assert json.loads(cli(store, "audit", "log", "--since", "2999-01-01", "--json").stdout) == []
    bad = cli(store, "audit", "log", "--since", "last tuesday", ok=False)
    assert "30m, 1h, 7d" in bad.stderr


def test_audit_verify(store: Path) -> None:
    intact = cli(store, "audit", "verify").stdout
    match = re.search(r"chain intact: 5 records, head ([0-9a-f]{64})", intact)
    assert match, intact
    head = match.group(1)
    anchored = cli(store, "audit", "verify", "--anchor", head).stdout
    assert "anchored at record 5" in anchored

    db = sqlite3.connect(store / "loopwise.db")
    try:
        with db:
            db.execute("UPDATE audit_log SET after = '{\"version\": 1}' WHERE seq = 5")
    finally:
        db.close()
    broken = cli(store, "audit", "verify", ok=False)
    assert broken.returncode == 1
    assert "record 5 was edited: its content no longer matches its hash" in broken.stderr
    result = json.loads(cli(store, "audit", "verify", "--json", ok=False).stdout)
    assert (result["ok"], result["broken_seq"], result["records"]) == (False, 5, 4)


def test_a_rewritten_log_fails_its_anchor(store: Path) -> None:
    head = json.loads(cli(store, "audit", "verify", "--json").stdout)["head_hash"]
    other = store.parent / "other"
    opened = open_store(other)
    opened.get_or_create_project("cli")
    opened.close()
    result = cli(other, "audit", "verify", "--anchor", head, ok=False)
    assert "is not in the log" in result.stderr


def test_a_missing_store_is_not_created(tmp_path: Path) -> None:
    result = cli(tmp_path / "nowhere", "audit", "verify", ok=False)
    assert "There is no Loopwise store" in result.stderr
    assert not (tmp_path / "nowhere").exists()


def test_audit_log_lists_a_record_edited_into_unreadable_json(store: Path) -> None:
    db = sqlite3.connect(store / "loopwise.db")
    try:
        with db:
            db.execute("UPDATE audit_log SET after = '{\"version\": NaN' WHERE seq = 5")
            db.execute("UPDATE audit_log SET before = '[' || '[' || ? WHERE seq = 4", ("x" * 600,))
    finally:
        db.close()
    records = json.loads(cli(store, "audit", "log", "--json").stdout)
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    edited = records[4]["after"]
    assert edited["unreadable"] is True and edited["stored_text"] == '{"version": NaN'
    assert records[4]["before"] == {"version": 1}
    assert len(records[3]["before"]["stored_text"]) == 501  # cut, with "…"
    table = cli(store, "audit", "log").stdout
    assert "version: 1 → UNREADABLE (" in table and '{"version": NaN' in table
    assert "alias.set" in table and "model:clf@production" in table
