"""What an editor scoped to one project can make the registry record, over HTTP.

The server registers only the flavours its operator accepts (pickles are refused unless
``loopwise server --accept-pickle-models``), and every id a request refers to (a version's run,
a linked dataset version) must belong to the project the request is about.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sklearn.linear_model import LogisticRegression

from loopwise.errors import InvalidArgumentError, NotFoundError, UnsafeModelError
from loopwise.registry import models
from loopwise.registry.flavours.sklearn import SklearnFlavour
from loopwise.server import create_app
from loopwise.serving.models import ServedModels
from loopwise.store import MetricEntry, Store, open_store
from loopwise.store.remote import RemoteStore

from .harness import AppTransport


class Planted:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> Any:
        return (open, (str(self.marker), "w"))


@pytest.fixture
def backend(tmp_path: Path) -> Iterator[Store]:
    """Projects alpha and beta; beta has a run with a metric and a linked dataset version."""
    store = open_store(tmp_path / "store")
    store.get_or_create_project("alpha")
    store.get_or_create_project("beta")
    run = store.create_run("beta", "beta-run")
    store.log_metrics([MetricEntry(run.id, "secret_auc", 0.97, 0, 1)])
    digest, _ = store.artifacts.put_bytes(b"beta's data")
    dataset, _ = store.create_dataset_version(
        "beta", "beta-customers", content_hash="b", artifact_digest=digest, num_rows=1, schema={}
    )
    store.link_dataset(run.id, dataset.id)
    yield store
    store.close()


def editor_of_alpha(store: Store, tmp_path: Path, **app_options: Any) -> RemoteStore:
    """The SDK's store as an editor scoped to alpha sees it, through the in-process server."""
    _, secret = store.create_token("editor", project="alpha")
    transport = AppTransport(create_app(store, **app_options))
    return RemoteStore("http://t", secret, transport=transport, spool_dir=tmp_path / "sp").open()


def raw_client(remote: RemoteStore) -> httpx.Client:
    """The remote store's own HTTP client (its token, the in-process transport)."""
    client: httpx.Client = remote._client.http
    return client


def planted_tree(remote: RemoteStore, tmp_path: Path, marker: Path) -> str:
    folder = tmp_path / "planted"
    folder.mkdir()
    (folder / "model.pkl").write_bytes(pickle.dumps(Planted(marker)))
    return remote.artifacts.put_tree(folder)


def beta_ids(store: Store) -> tuple[str, int]:
    run = store.search_runs("beta")[0]
    return run.id, store.list_dataset_versions("beta")[0].id


# -- finding 1: flavours the server accepts ------------------------------------------------------
def test_a_scoped_editor_cannot_register_a_pickle_by_default(
    backend: Store, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    remote = editor_of_alpha(backend, tmp_path)
    try:
        digest = planted_tree(remote, tmp_path, marker)
        response = raw_client(remote).post(
            "/api/v1/projects/alpha/models/churn/versions",
            json={"flavour": "python", "artifact_digest": digest},
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "unsafe_model"
        assert "--accept-pickle-models" in error["message"]
        with pytest.raises(UnsafeModelError):  # the SDK gets the same refusal
            remote.create_model_version("alpha", "churn", flavour="python", artifact_digest=digest)
    finally:
        remote.close()
    assert backend.list_models("alpha") == []
    assert not marker.exists()


def test_unknown_flavours_are_refused_by_every_backend(backend: Store, tmp_path: Path) -> None:
    remote = editor_of_alpha(backend, tmp_path, accept_pickle_models=True)
    try:
        digest = planted_tree(remote, tmp_path, tmp_path / "unused")
        response = raw_client(remote).post(
            "/api/v1/projects/alpha/models/churn/versions",
            json={"flavour": "pickle5" * 40, "artifact_digest": digest},
        )
        assert response.status_code == 400, response.text
        error = response.json()["error"]
        assert error["code"] == "invalid_argument"
        assert "'sklearn'" in error["message"] and len(error["message"]) < 500
        with pytest.raises(InvalidArgumentError, match="flavour"):
            remote.create_model_version("alpha", "churn", flavour="", artifact_digest=digest)
    finally:
        remote.close()
    with pytest.raises(InvalidArgumentError, match="flavour"):
        backend.create_model_version("alpha", "churn", flavour="torch", artifact_digest=digest)
    assert backend.list_models("alpha") == []


def test_an_accepted_pickle_still_never_runs_in_loopwise_serve_without_allow_pickle(
    backend: Store, tmp_path: Path
) -> None:
    """The reported attack: a scoped editor registers a pickle, moves ``production`` to it, and
    the inference server follows the alias."""
    marker = tmp_path / "pwned"
    models.log_model(
        LogisticRegression().fit([[0.0], [1.0]], [0, 1]), "churn", store=backend, project="alpha"
    )
    models.set_alias("churn", 1, "production", store=backend, project="alpha")
    remote = editor_of_alpha(backend, tmp_path, accept_pickle_models=True)
    try:
        digest = planted_tree(remote, tmp_path, marker)
        planted = remote.create_model_version(
            "alpha", "churn", flavour="python", artifact_digest=digest
        )
        served = ServedModels(
            ["churn@production"], store=backend, project="alpha", poll_interval_s=60
        )
        with served:
            assert served.state("churn").version == 1
            remote.set_alias("alpha", "churn", "production", planted.version)
            served.poll()  # starts the load in the background
            deadline = time.monotonic() + 60
            while served.state("churn").error is None and time.monotonic() < deadline:
                time.sleep(0.02)
            state = served.state("churn")
            assert state.version == 1 and state.ready
            assert state.error is not None and "--allow-pickle" in state.error
    finally:
        remote.close()
    assert not marker.exists()


# -- finding 7: ids that belong to another project ------------------------------------------------
def test_a_version_cannot_take_another_projects_run(backend: Store, tmp_path: Path) -> None:
    beta_run, _ = beta_ids(backend)
    remote = editor_of_alpha(backend, tmp_path)
    try:
        digest = _sklearn_tree(remote, tmp_path)
        response = raw_client(remote).post(
            "/api/v1/projects/alpha/models/churn/versions",
            json={"flavour": "sklearn", "artifact_digest": digest, "run_id": beta_run},
        )
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "not_found"
        assert "secret_auc" not in response.text and "beta-customers" not in response.text
        with pytest.raises(NotFoundError):
            remote.create_model_version(
                "alpha", "churn", flavour="sklearn", artifact_digest=digest, run_id=beta_run
            )
        own = remote.create_run("alpha", "alpha-run")
        version = remote.create_model_version(
            "alpha", "churn", flavour="sklearn", artifact_digest=digest, run_id=own.id
        )
        assert version.version == 1 and version.metrics == {}
    finally:
        remote.close()


def test_a_run_cannot_link_another_projects_dataset_version(backend: Store, tmp_path: Path) -> None:
    _, beta_dataset = beta_ids(backend)
    remote = editor_of_alpha(backend, tmp_path)
    try:
        run = remote.create_run("alpha", "alpha-run")
        response = raw_client(remote).post(
            f"/api/v1/runs/{run.id}/datasets", json={"dataset_version_id": beta_dataset}
        )
        assert response.status_code == 404, response.text
        assert "beta-customers" not in response.text
        with pytest.raises(NotFoundError):
            remote.link_dataset(run.id, beta_dataset)
        assert remote.run_datasets(run.id) == []
        version = remote.create_model_version(
            "alpha", "churn", flavour="sklearn", artifact_digest=_sklearn_tree(remote, tmp_path),
            run_id=run.id,
        )  # fmt: skip
        assert version.datasets == []
    finally:
        remote.close()
    assert backend.dataset_runs(beta_dataset) == [beta_ids(backend)[0]]  # no planted lineage
    admin_run = backend.create_run("alpha", "admin-run")
    with pytest.raises(NotFoundError):  # the store refuses it for every caller, admins too
        backend.link_dataset(admin_run.id, beta_dataset)


def _sklearn_tree(remote: RemoteStore, tmp_path: Path) -> str:
    folder = tmp_path / "sk"
    folder.mkdir()
    SklearnFlavour().save(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), folder)
    return remote.artifacts.put_tree(folder)
