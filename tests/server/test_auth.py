"""Every route of the OpenAPI spec, called with every kind of token.

The expected permission of each route is written down here, independently of the app, and the
test fails if the spec gains a route this table does not decide on.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from loopwise.server import create_app
from loopwise.store import MetricEntry, Store, TrafficPlan, open_store

from .harness import AppTransport

BLOB = b"project A's secret bytes"
BLOB_DIGEST = "sha256:" + hashlib.sha256(BLOB).hexdigest()
B_BLOB = b"project B's secret bytes"
B_BLOB_DIGEST = "sha256:" + hashlib.sha256(B_BLOB).hexdigest()
POLICY = "label: employed\nretrain:\n  pipeline: train.py:training\n"

# (method, path) -> permission; "project" says the route touches one project's data.
EXPECTED: dict[tuple[str, str], str] = {
    ("GET", "/health"): "public",
    ("GET", "/api/v1/projects"): "read",
    ("POST", "/api/v1/projects"): "write",
    ("GET", "/api/v1/projects/{project}"): "read",
    ("POST", "/api/v1/projects/{project}/runs"): "write",
    ("POST", "/api/v1/projects/{project}/runs/search"): "read",
    ("GET", "/api/v1/runs/{run_id}"): "read",
    ("POST", "/api/v1/runs/{run_id}/end"): "write",
    ("POST", "/api/v1/runs/{run_id}/tags"): "write",
    ("POST", "/api/v1/runs/{run_id}/params"): "write",
    ("POST", "/api/v1/metrics"): "write",
    ("GET", "/api/v1/runs/{run_id}/metrics/history"): "read",
    ("GET", "/api/v1/spools/{spool_id}"): "write",
    ("DELETE", "/api/v1/spools/{spool_id}"): "write",
    ("POST", "/api/v1/runs/{run_id}/artifacts"): "write",
    ("GET", "/api/v1/runs/{run_id}/artifacts"): "read",
    ("POST", "/api/v1/projects/{project}/datasets/{name}/versions"): "write",
    ("GET", "/api/v1/projects/{project}/datasets"): "read",
    ("GET", "/api/v1/projects/{project}/datasets/{name}/latest"): "read",
    ("GET", "/api/v1/projects/{project}/datasets/{name}/versions/{version}"): "read",
    ("PUT", "/api/v1/projects/{project}/datasets/{name}/versions/{version}/profile"): "write",
    ("GET", "/api/v1/projects/{project}/datasets/{name}/suite"): "read",
    ("PUT", "/api/v1/projects/{project}/datasets/{name}/suite"): "write",
    ("DELETE", "/api/v1/projects/{project}/datasets/{name}/suite"): "write",
    ("POST", "/api/v1/runs/{run_id}/datasets"): "write",
    ("GET", "/api/v1/runs/{run_id}/datasets"): "read",
    ("GET", "/api/v1/dataset-versions/{dataset_version_id}/runs"): "read",
    ("POST", "/api/v1/projects/{project}/models/{name}/versions"): "write",
    ("GET", "/api/v1/projects/{project}/models"): "read",
    ("GET", "/api/v1/projects/{project}/models/{name}/versions"): "read",
    ("GET", "/api/v1/projects/{project}/models/{name}/versions/{version}"): "read",
    ("GET", "/api/v1/projects/{project}/models/{name}/aliases/{alias}"): "read",
    ("PUT", "/api/v1/projects/{project}/models/{name}/aliases/{alias}"): "write",
    ("DELETE", "/api/v1/projects/{project}/models/{name}/aliases/{alias}"): "write",
    ("POST", "/api/v1/prediction-segments"): "write",
    ("GET", "/api/v1/projects/{project}/prediction-segments"): "read",
    ("POST", "/api/v1/projects/{project}/deployments"): "write",
    ("GET", "/api/v1/projects/{project}/deployments"): "read",
    ("GET", "/api/v1/projects/{project}/deployments/{deployment}"): "read",
    ("PUT", "/api/v1/projects/{project}/deployments/{deployment}/plan"): "write",
    ("GET", "/api/v1/projects/{project}/deployments/{deployment}/history"): "read",
    ("POST", "/api/v1/projects/{project}/deployments/{deployment}/rollback"): "write",
    ("PUT", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/policy"): "write",
    ("GET", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/policy"): "read",
    ("POST", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/decisions"): "write",
    ("GET", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/decisions"): "read",
    ("GET", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/decisions/latest"): (
        "read"
    ),
    ("POST", "/api/v1/projects/{project}/deployments/{deployment}/outcomes"): "write",
    ("POST", "/api/v1/projects/{project}/deployments/{deployment}/outcomes/query"): "read",
    ("POST", "/api/v1/projects/{project}/alerts"): "write",
    ("GET", "/api/v1/projects/{project}/alerts"): "read",
    ("GET", "/api/v1/projects/{project}/alerts/{alert_id}"): "read",
    ("POST", "/api/v1/projects/{project}/alerts/{alert_id}/resolve"): "write",
    ("PUT", "/api/v1/blobs/{digest}"): "write",
    ("HEAD", "/api/v1/blobs/{digest}"): "read",
    ("GET", "/api/v1/blobs/{digest}"): "read",
    ("GET", "/api/v1/whoami"): "read",
    ("POST", "/api/v1/tokens"): "admin",
    ("GET", "/api/v1/tokens"): "admin",
    ("DELETE", "/api/v1/tokens/{token_id}"): "admin",
    ("GET", "/api/v1/audit"): "admin",
    ("GET", "/api/v1/audit/verify"): "admin",
}
# Routes that name no project: a project-scoped token is judged by its role alone.
GLOBAL = {
    ("GET", "/health"),
    ("GET", "/api/v1/projects"),
    ("GET", "/api/v1/spools/{spool_id}"),
    ("DELETE", "/api/v1/spools/{spool_id}"),
    ("GET", "/api/v1/whoami"),
    ("POST", "/api/v1/tokens"),
    ("GET", "/api/v1/tokens"),
    ("DELETE", "/api/v1/tokens/{token_id}"),
    ("GET", "/api/v1/audit"),
    ("GET", "/api/v1/audit/verify"),
    ("GET", "/api/v1/dataset-versions/{dataset_version_id}/runs"),
    ("PUT", "/api/v1/blobs/{digest}"),  # storing bytes one has is harmless; reading is checked
}
GRANTS = {
    "admin": {"public", "read", "write", "admin"},
    "editor": {"public", "read", "write"},
    "viewer": {"public", "read"},
}


@dataclass
class World:
    """Two projects with a run, a dataset, a model with an alias and a blob each."""

    store: Store
    ids: dict[str, dict[str, Any]]
    secrets: dict[str, str]


def _populate(store: Store, project: str, blob: bytes) -> dict[str, Any]:
    store.get_or_create_project(project)
    run = store.create_run(project, "run")
    store.log_metrics([MetricEntry(run.id, "auc", 0.9, 0, 1)])
    digest, size = store.artifacts.put_bytes(blob)
    from loopwise.store import ArtifactFile

    store.record_artifacts(run.id, [ArtifactFile("secret.bin", digest, size)])
    dataset, _ = store.create_dataset_version(
        project, "data", content_hash="h" + project, artifact_digest=digest, num_rows=1, schema={}
    )
    store.link_dataset(run.id, dataset.id)
    store.create_model_version(project, "model", flavour="python", artifact_digest=digest)
    store.set_alias(project, "model", "prod", 1)
    store.create_model_version(project, "model", flavour="python", artifact_digest=digest)
    store.create_deployment(project, "d", "model", TrafficPlan({1: 100}), "first")
    store.set_autopilot_policy(project, "d", POLICY)
    store.record_autopilot_decision(project, "d", 1, "observe", "watching", {}, {}, 0)
    alert, _ = store.raise_alert(
        project, deployment="d", rule="drift", severity="info", fingerprint="f", message="m"
    )
    return {
        "project": project,
        "alert_id": alert.id,
        "run_id": run.id,
        "dataset_version_id": dataset.id,
        "digest": digest,
    }


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = open_store(tmp_path / "store")
    ids = {"A": _populate(store, "A", BLOB), "B": _populate(store, "B", B_BLOB)}
    secrets = {}
    for role in ("admin", "editor", "viewer"):
        secrets[role] = store.create_token(role, name=role)[1]
        secrets[f"{role}@A"] = store.create_token(role, project="A", name=f"{role}-a")[1]
    revoked, secrets["revoked"] = store.create_token("admin", name="revoked")
    store.revoke_token(revoked.id)
    yield World(store, ids, secrets)
    store.close()


def _request(world: World, method: str, path: str, target: str) -> tuple[str, dict[str, Any]]:
    """A concrete, valid request for a route, aimed at project ``target``'s objects."""
    ids = world.ids[target]
    victim = world.store.create_token("viewer", name="victim")[0].id
    values = {
        "project": target,
        "run_id": ids["run_id"],
        "name": "model" if "/models/" in path else "data",
        "version": "1",
        "alias": "prod",
        "digest": ids["digest"],
        "spool_id": "spool-1",
        "token_id": victim,
        "dataset_version_id": str(ids["dataset_version_id"]),
        "deployment": "d",
        "alert_id": str(ids["alert_id"]),
    }
    url = re.sub(r"\{(\w+)\}", lambda m: str(values[m[1]]), path)
    body: dict[str, Any] = {}
    run_id = ids["run_id"]
    bodies: dict[tuple[str, str], Any] = {
        ("POST", "/api/v1/projects"): {"json": {"name": target}},
        ("POST", "/api/v1/projects/{project}/runs"): {"json": {"name": "new"}},
        ("POST", "/api/v1/projects/{project}/runs/search"): {"json": {}},
        ("POST", "/api/v1/runs/{run_id}/end"): {"json": {"status": "FINISHED"}},
        ("POST", "/api/v1/runs/{run_id}/tags"): {"json": {"tags": {"t": "v"}}},
        ("POST", "/api/v1/runs/{run_id}/params"): {"json": {"params": {"p": "1"}}},
        ("POST", "/api/v1/metrics"): {
            "json": {"entries": [{"run_id": run_id, "key": "m", "value": 1, "timestamp_ms": 1}]}
        },
        ("GET", "/api/v1/runs/{run_id}/metrics/history"): {"params": {"key": "auc"}},
        ("POST", "/api/v1/runs/{run_id}/artifacts"): {
            "json": {"files": [{"path": "x", "digest": ids["digest"], "size_bytes": 1}]}
        },
        ("POST", "/api/v1/projects/{project}/datasets/{name}/versions"): {
            "json": {
                "content_hash": "new",
                "artifact_digest": ids["digest"],
                "num_rows": 1,
                "schema": {},
            }
        },
        ("POST", "/api/v1/runs/{run_id}/datasets"): {
            "json": {"dataset_version_id": ids["dataset_version_id"]}
        },
        ("PUT", "/api/v1/projects/{project}/datasets/{name}/versions/{version}/profile"): {
            "json": {"profile_digest": ids["digest"]}
        },
        ("PUT", "/api/v1/projects/{project}/datasets/{name}/suite"): {
            "json": {"suite": "expectations: []\n", "on_failure": "warn"}
        },
        ("POST", "/api/v1/projects/{project}/models/{name}/versions"): {
            "json": {"flavour": "python", "artifact_digest": ids["digest"]}
        },
        ("PUT", "/api/v1/projects/{project}/models/{name}/aliases/{alias}"): {
            "json": {"version": 1}
        },
        ("POST", "/api/v1/prediction-segments"): {
            "json": {
                "segments": [
                    {
                        "project": target,
                        "deployment": "d",
                        "hour_ms": 1_699_999_200_000,
                        "digest": ids["digest"],
                        "num_rows": 1,
                        "min_timestamp_ms": 1_700_000_000_000,
                        "max_timestamp_ms": 1_700_000_000_000,
                        "size_bytes": 1,
                    }
                ]
            }
        },
        ("GET", "/api/v1/projects/{project}/prediction-segments"): {
            "params": {"deployment": "d", "start_ms": 0}
        },
        ("POST", "/api/v1/projects/{project}/deployments"): {
            "json": {"name": "new", "model": "model", "plan": {"shares": {"1": 100}}}
        },
        ("PUT", "/api/v1/projects/{project}/deployments/{deployment}/plan"): {
            "json": {"plan": {"shares": {"1": 50, "2": 50}}, "reason": "canary"}
        },
        ("POST", "/api/v1/projects/{project}/deployments/{deployment}/rollback"): {
            "json": {"reason": "back"}
        },
        ("PUT", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/policy"): {
            "json": {"text": POLICY + "# changed\n"}
        },
        ("POST", "/api/v1/projects/{project}/deployments/{deployment}/autopilot/decisions"): {
            "json": {  # what a person records (other kinds need an admin for all projects)
                "seq": 2,
                "kind": "resume",
                "summary": "looked",
                "state": {},
                "evidence": {"reason": "looked"},
                "at_ms": 1,
            }
        },
        ("POST", "/api/v1/projects/{project}/deployments/{deployment}/outcomes"): {
            "json": {"outcomes": [{"request_id": "r:0", "value": 1}]}
        },
        ("POST", "/api/v1/projects/{project}/deployments/{deployment}/outcomes/query"): {
            "json": {"request_ids": ["r:0"]}
        },
        ("POST", "/api/v1/projects/{project}/alerts"): {
            "json": {"rule": "drift", "severity": "info", "fingerprint": "f", "message": "m"}
        },
        ("PUT", "/api/v1/blobs/{digest}"): {"content": BLOB if target == "A" else B_BLOB},
        ("POST", "/api/v1/tokens"): {"json": {"role": "viewer", "name": "new"}},
    }
    body = bodies.get((method, path), {})
    return url, body


def test_the_table_covers_every_route(world: World) -> None:
    spec = create_app(world.store).openapi()
    routes = {(m.upper(), p): op for p, ops in spec["paths"].items() for m, op in ops.items()}
    assert set(routes) == set(EXPECTED)
    for route, op in routes.items():
        if EXPECTED[route] != "public":
            assert op["x-loopwise-permission"] == EXPECTED[route], route


@pytest.mark.parametrize(
    "who",
    ["none", "garbage", "revoked", "admin", "editor", "viewer", "admin@A", "editor@A", "viewer@A"],
)
def test_every_route_with_every_token(world: World, who: str) -> None:
    transport = AppTransport(create_app(world.store))
    headers = {}
    if who == "garbage":
        headers["Authorization"] = "Bearer lw_nothing_here"
    elif who != "none":
        headers["Authorization"] = f"Bearer {world.secrets[who]}"
    role, _, scope = who.partition("@")
    checked = 0
    with httpx.Client(transport=transport, base_url="http://test", headers=headers) as client:
        for (method, path), needed in EXPECTED.items():
            for target in ("A", "B"):
                url, body = _request(world, method, path, target)
                response = client.request(method, url, **body)
                where = f"{who}: {method} {url} -> {response.status_code} {response.text[:300]}"
                assert response.status_code < 500, where
                checked += 1
                if needed == "public":
                    assert response.status_code == 200, where
                    continue
                if role in ("none", "garbage", "revoked"):
                    assert response.status_code == 401, where
                    if method != "HEAD":
                        assert response.json()["error"]["code"] == "unauthenticated", where
                    continue
                allowed = needed in GRANTS[role]
                if scope and needed == "admin":
                    allowed = False  # admin routes span every project
                if scope and (method, path) not in GLOBAL and target != scope:
                    allowed = False
                if allowed:
                    assert response.status_code not in (401, 403), where
                elif method == "HEAD" and "/blobs/" in path:
                    assert response.status_code == 404, where  # another project's: absent
                else:
                    assert response.status_code == 403, where
                    if method != "HEAD":
                        assert response.json()["error"]["code"] == "permission_denied", where
    assert checked == 2 * len(EXPECTED)


def test_a_scoped_token_lists_only_its_project(world: World) -> None:
    transport = AppTransport(create_app(world.store))
    headers = {"Authorization": f"Bearer {world.secrets['viewer@A']}"}
    with httpx.Client(transport=transport, base_url="http://test", headers=headers) as client:
        assert [p["name"] for p in client.get("/api/v1/projects").json()] == ["A"]
        runs_of_b_data = client.get(
            f"/api/v1/dataset-versions/{world.ids['B']['dataset_version_id']}/runs"
        )
        assert runs_of_b_data.json() == []


def test_no_auth_makes_every_caller_an_admin(world: World) -> None:
    transport = AppTransport(create_app(world.store, auth=False))
    with httpx.Client(transport=transport, base_url="http://localhost") as client:
        assert client.get("/api/v1/tokens").status_code == 200
        assert client.get("/api/v1/whoami").json()["role"] == "admin"
