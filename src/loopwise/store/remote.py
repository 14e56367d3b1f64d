"""The remote backend: the ``Store`` interface spoken over the control plane's REST API.

``LOOPWISE_URI=http://host:port`` (and ``LOOPWISE_TOKEN``) select it. Each method is one HTTP
call; errors come back as the same exception classes the embedded store raises. Metrics logged
asynchronously go through the same durable local spool as in embedded mode, drained by POSTs
that carry the spool's progress, so a crashed client's values reach the server exactly once.
Artifact bytes stream both ways (see ``RemoteArtifactStore``).
"""

from __future__ import annotations

import functools
import hashlib
import math
import ssl
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import quote

import httpx

from loopwise.errors import (
    ArtifactCorruptedError,
    AuthenticationError,
    LoopwiseError,
    StoreError,
    error_from_dict,
)
from loopwise.store.artifacts import CHUNK_BYTES, PREFIX, ArtifactStore, check_digest, sha256_file
from loopwise.store.base import MetricEntry, Store
from loopwise.store.entities import (
    ArtifactFile,
    AuditRecord,
    AuditVerification,
    DatasetSuite,
    DatasetVersion,
    Metric,
    ModelVersion,
    PredictionSegment,
    Project,
    RegisteredModel,
    Role,
    Run,
    RunStatus,
    Token,
)
from loopwise.store.predictions import recover_predictions
from loopwise.store.remote_autopilot import RemoteAutopilot
from loopwise.store.remote_deployments import RemoteDeployments
from loopwise.store.remote_monitoring import RemoteMonitoring
from loopwise.store.spool import MetricSpool, default_spool_dir, recover_spools
from loopwise.store.validate import (
    INVALID_TOKEN,
    check_alias,
)

__all__ = ["RemoteArtifactStore", "RemoteStore", "default_spool_dir", "json_float"]

API_PREFIX = "/api/v1"
DOWNLOAD_ATTEMPTS = 5
UPLOAD_ATTEMPTS = 3
_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def json_float(value: float) -> float | str:
    """A float as JSON carries it: NaN and infinities by name (the API's convention)."""
    return value if math.isfinite(value) else _NON_FINITE[repr(value)]


def _float_in(value: Any) -> float:
    return float(value)  # "NaN", "Infinity" and "-Infinity" parse as they should


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One TLS context per process: building it (loading CA certificates) takes ~0.1 s."""
    import certifi  # deferred: only a TLS connection needs the CA bundle

    return ssl.create_default_context(cafile=certifi.where())


def _q(segment: str | int) -> str:
    """A path segment, escaped so that a name can never change the route."""
    return quote(str(segment), safe="")


class _Client:
    """One HTTP connection pool plus the rules for turning responses into results or errors."""

    def __init__(self, client: httpx.Client, url: str) -> None:
        self.http = client
        self.url = url

    def request(
        self, method: str, path: str, *, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            response = self.http.request(method, API_PREFIX + path, json=json, params=params)
        except httpx.TransportError as exc:
            raise StoreError(
                f"Cannot reach the Loopwise server at {self.url} ({type(exc).__name__}: {exc}). "
                "Check that `loopwise server` runs there and that LOOPWISE_URI is right.",
                url=self.url,
            ) from exc
        return self.result(response)

    def result(self, response: httpx.Response) -> Any:
        if response.status_code >= 400:
            raise self.error(response)
        if response.status_code == 204 or not response.content:
            return None
        return response.json()

    def error(self, response: httpx.Response) -> LoopwiseError:
        try:
            envelope = response.json()
        except ValueError:
            envelope = None
        error = error_from_dict(envelope, response.status_code)
        if isinstance(error, AuthenticationError):
            error.message += " (Set LOOPWISE_TOKEN to a token from `loopwise token create`.)"
            error.args = (error.message,)
        return error


def _run(d: Mapping[str, Any]) -> Run:
    return Run(
        id=d["id"],
        project=d["project"],
        name=d["name"],
        status=RunStatus(d["status"]),
        start_ms=d["start_ms"],
        end_ms=d["end_ms"],
        params=dict(d["params"]),
        tags=dict(d["tags"]),
        metrics={k: _float_in(v) for k, v in d["metrics"].items()},
        environment=d["environment"],
    )


def _dataset(d: Mapping[str, Any]) -> DatasetVersion:
    return DatasetVersion(**d)


def _model_version(d: Mapping[str, Any]) -> ModelVersion:
    fields = dict(d)
    fields["metrics"] = {k: _float_in(v) for k, v in d["metrics"].items()}
    return ModelVersion(**fields)


def _token(d: Mapping[str, Any]) -> Token:
    return Token(**{**d, "role": Role(d["role"])})


class RemoteArtifactStore(ArtifactStore):
    """Blobs on the control plane: uploads stream from disk, downloads stream to disk.

    A download that breaks off resumes with a ``Range`` request where it stopped; the bytes are
    hashed on arrival and handed over only if they match the digest.
    """

    def __init__(self, client: _Client) -> None:
        self.client = client

    def exists(self, digest: str) -> bool:
        check_digest(digest)
        response = self.client.http.head(f"{API_PREFIX}/blobs/{_q(digest)}")
        if response.status_code == 404:
            return False
        self.client.result(response)
        return True

    def put_file(self, path: Path) -> tuple[str, int]:
        digest = sha256_file(path)
        size = path.stat().st_size
        if self.exists(digest):
            return digest, size
        for attempt in range(1, UPLOAD_ATTEMPTS + 1):
            try:
                with path.open("rb") as f:
                    response = self.client.http.put(
                        f"{API_PREFIX}/blobs/{_q(digest)}",
                        content=_read_chunks(f),
                        headers={
                            "Content-Type": "application/octet-stream",
                            "Content-Length": str(size),
                        },
                    )
                body = self.client.result(response)
                return str(body["digest"]), int(body["size_bytes"])
            except httpx.TransportError as exc:
                if attempt == UPLOAD_ATTEMPTS:
                    raise StoreError(
                        f"Uploading {path} ({size} bytes) to {self.client.url} failed "
                        f"{UPLOAD_ATTEMPTS} times ({exc}); nothing was stored. Try again.",
                        path=str(path),
                    ) from exc
        raise AssertionError("unreachable")

    def open_verified(self, digest: str, name: str = "") -> BinaryIO:
        check_digest(digest)
        label = f"{name!r} ({digest})" if name else digest
        out = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the caller, who closes it)
        try:
            actual = self._download(digest, out)
        except BaseException:
            out.close()
            raise
        if actual != digest:
            out.close()
            raise ArtifactCorruptedError(
                f"Artifact {label} arrived corrupted: its bytes hash to {actual}, expected "
                f"{digest}. It was not loaded; try again.",
                digest=digest,
                actual=actual,
            )
        out.seek(0)
        return out

    def _download(self, digest: str, out: BinaryIO) -> str:
        """Stream the blob into ``out``, resuming after dropped connections; its digest."""
        hasher = hashlib.sha256()
        received = 0
        url = f"{API_PREFIX}/blobs/{_q(digest)}"
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            headers = {"Range": f"bytes={received}-"} if received else {}
            try:
                with self.client.http.stream("GET", url, headers=headers) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise self.client.error(response)
                    for chunk in response.iter_bytes():
                        out.write(chunk)
                        hasher.update(chunk)
                        received += len(chunk)
                return PREFIX + hasher.hexdigest()
            except httpx.TransportError as exc:
                if attempt == DOWNLOAD_ATTEMPTS:
                    raise StoreError(
                        f"Downloading {digest} from {self.client.url} broke off {attempt} times "
                        f"(last: {exc}) after {received} bytes. Try again.",
                        digest=digest,
                    ) from exc
        raise AssertionError("unreachable")


def _read_chunks(f: BinaryIO) -> Iterator[bytes]:
    while chunk := f.read(CHUNK_BYTES):
        yield chunk


class RemoteStore(RemoteMonitoring, RemoteDeployments, RemoteAutopilot, Store):
    """A ``Store`` whose every call goes to a Loopwise server over HTTP."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        spool_dir: Path | None = None,
        timeout_s: float = 60.0,
    ) -> None:
        self.uri = url.rstrip("/")
        self.token = token
        self.transport = transport
        self.spool_dir = spool_dir
        self.timeout_s = timeout_s
        self._known_runs: set[str] = set()
        self._known_lock = threading.Lock()

    def open(self) -> RemoteStore:
        """Connect, check the token, and replay the spools that crashed processes left."""
        headers = {"User-Agent": "loopwise"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        transport = self.transport or httpx.HTTPTransport(retries=3, verify=_tls_context())
        http = httpx.Client(
            base_url=self.uri,
            transport=transport,
            headers=headers,
            timeout=httpx.Timeout(self.timeout_s, connect=10.0),
        )
        self._client = _Client(http, self.uri)
        self.artifacts = RemoteArtifactStore(self._client)
        try:
            self._client.request("GET", "/whoami")
            spool_dir = self.spool_dir or default_spool_dir(self.uri)
            self._spool = MetricSpool(spool_dir, self.write_spooled_metrics, self.forget_spool)
            recover_spools(
                spool_dir, self.write_spooled_metrics, self.spool_progress, self.forget_spool
            )
            if (spool_dir / "predictions").is_dir():  # a prediction spool was used here
                recover_predictions(self)
        except BaseException:
            http.close()
            raise
        return self

    def close(self) -> None:
        self._spool.close()
        self._client.http.close()

    def flush(self) -> None:
        self._spool.flush()

    def _call(
        self, method: str, path: str, json: Any = None, params: Mapping[str, Any] | None = None
    ) -> Any:
        return self._client.request(method, path, json=json, params=params)

    # -- projects ---------------------------------------------------------------------------------
    def _get_or_create_project(self, name: str) -> Project:
        return Project(**self._call("POST", "/projects", {"name": name}))

    def get_project(self, name: str) -> Project:
        return Project(**self._call("GET", f"/projects/{_q(name)}"))

    def list_projects(self) -> list[Project]:
        return [Project(**p) for p in self._call("GET", "/projects")]

    # -- runs -------------------------------------------------------------------------------------
    def _create_run(
        self,
        project: str,
        name: str,
        tags: dict[str, str],
        environment: Mapping[str, Any] | None,
    ) -> Run:
        body = {
            "name": name,
            "tags": tags,
            "environment": dict(environment) if environment is not None else None,
        }
        run = _run(self._call("POST", f"/projects/{_q(project)}/runs", body))
        with self._known_lock:
            self._known_runs.add(run.id)
        return run

    def get_run(self, run_id: str) -> Run:
        return _run(self._call("GET", f"/runs/{_q(run_id)}"))

    def end_run(self, run_id: str, status: RunStatus) -> Run:
        self.flush()  # the ended run shows every value logged before
        return _run(self._call("POST", f"/runs/{_q(run_id)}/end", {"status": str(status)}))

    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        body = {"tags": tags}
        self._call("POST", f"/runs/{_q(run_id)}/tags", body)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        body = {"params": params}
        self._call("POST", f"/runs/{_q(run_id)}/params", body)

    # -- metrics ----------------------------------------------------------------------------------
    def _post_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str | None = None, upto_seq: int = 0
    ) -> None:
        body = {
            "entries": [
                {
                    "run_id": e.run_id,
                    "key": e.key,
                    "value": json_float(e.value),
                    "step": e.step,
                    "timestamp_ms": e.timestamp_ms,
                }
                for e in entries
            ],
            "spool_id": spool_id,
            "upto_seq": upto_seq,
        }
        self._call("POST", "/metrics", body)

    def _log_metrics(self, entries: Sequence[MetricEntry]) -> None:
        if entries:
            self._post_metrics(entries)

    def _log_metrics_async(self, entries: Sequence[MetricEntry]) -> None:
        with self._known_lock:
            unknown = {e.run_id for e in entries} - self._known_runs
        for run_id in unknown:  # refuse an unknown run now, not in the background later
            self.get_run(run_id)
            with self._known_lock:
                self._known_runs.add(run_id)
        self._spool.append(entries)

    def _write_spooled_metrics(
        self, entries: Sequence[MetricEntry], spool_id: str, upto_seq: int
    ) -> None:
        self._post_metrics(entries, spool_id, upto_seq)

    def _spool_progress(self, spool_id: str, project: str | None) -> int:
        params = None if project is None else {"project": project}
        return int(self._call("GET", f"/spools/{_q(spool_id)}", params=params)["committed_seq"])

    def _forget_spool_progress(self, spool_id: str, project: str | None) -> None:
        params = None if project is None else {"project": project}
        self._call("DELETE", f"/spools/{_q(spool_id)}", params=params)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        rows = self._call("GET", f"/runs/{_q(run_id)}/metrics/history", params={"key": key})
        return [Metric(r["key"], _float_in(r["value"]), r["step"], r["timestamp_ms"]) for r in rows]

    def search_runs(
        self,
        project: str,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 1000,
    ) -> list[Run]:
        body = {"filter": filter_string, "order_by": list(order_by), "max_results": max_results}
        return [_run(r) for r in self._call("POST", f"/projects/{_q(project)}/runs/search", body)]

    # -- run artifacts ----------------------------------------------------------------------------
    def _record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        body = {
            "files": [
                {"path": f.path, "digest": f.digest, "size_bytes": f.size_bytes} for f in files
            ]
        }
        self._call("POST", f"/runs/{_q(run_id)}/artifacts", body)

    def _list_artifacts(self, run_id: str, prefix: str) -> list[ArtifactFile]:
        rows = self._call("GET", f"/runs/{_q(run_id)}/artifacts", params={"prefix": prefix})
        return [ArtifactFile(**r) for r in rows]

    # -- datasets ---------------------------------------------------------------------------------
    def _create_dataset_version(
        self,
        project: str,
        name: str,
        *,
        content_hash: str,
        artifact_digest: str,
        num_rows: int,
        schema: Mapping[str, str],
        split: str | None,
        description: str | None,
        profile_digest: str | None,
    ) -> tuple[DatasetVersion, bool]:
        body = {
            "content_hash": content_hash,
            "artifact_digest": artifact_digest,
            "num_rows": num_rows,
            "schema": dict(schema),
            "split": split,
            "description": description,
            "profile_digest": profile_digest,
        }
        path = f"/projects/{_q(project)}/datasets/{_q(name)}/versions"
        result = self._call("POST", path, body)
        return _dataset(result["version"]), bool(result["created"])

    def get_dataset_version(
        self, project: str, name: str, version: int | None = None
    ) -> DatasetVersion:
        where = "latest" if version is None else f"versions/{_q(version)}"
        return _dataset(self._call("GET", f"/projects/{_q(project)}/datasets/{_q(name)}/{where}"))

    def list_dataset_versions(self, project: str, name: str | None = None) -> list[DatasetVersion]:
        params = {"name": name} if name is not None else None
        rows = self._call("GET", f"/projects/{_q(project)}/datasets", params=params)
        return [_dataset(r) for r in rows]

    def _set_dataset_profile(
        self, project: str, name: str, version: int, profile_digest: str
    ) -> DatasetVersion:
        body = {"profile_digest": profile_digest}
        path = f"/projects/{_q(project)}/datasets/{_q(name)}/versions/{_q(version)}/profile"
        return _dataset(self._call("PUT", path, body))

    def _suite_path(self, project: str, name: str) -> str:
        return f"/projects/{_q(project)}/datasets/{_q(name)}/suite"

    def _set_dataset_suite(
        self, project: str, name: str, suite: str, on_failure: str
    ) -> DatasetSuite:
        body = {"suite": suite, "on_failure": on_failure}
        return DatasetSuite(**self._call("PUT", self._suite_path(project, name), body))

    def _get_dataset_suite(self, project: str, name: str) -> DatasetSuite | None:
        found = self._call("GET", self._suite_path(project, name))
        return None if found is None else DatasetSuite(**found)

    def _delete_dataset_suite(self, project: str, name: str) -> None:
        self._call("DELETE", self._suite_path(project, name))

    def _link_dataset(self, run_id: str, dataset_version_id: int, role: str) -> None:
        body = {"dataset_version_id": dataset_version_id, "role": role}
        self._call("POST", f"/runs/{_q(run_id)}/datasets", body)

    def run_datasets(self, run_id: str) -> list[DatasetVersion]:
        return [_dataset(r) for r in self._call("GET", f"/runs/{_q(run_id)}/datasets")]

    def dataset_runs(self, dataset_version_id: int) -> list[str]:
        return list(self._call("GET", f"/dataset-versions/{_q(dataset_version_id)}/runs"))

    # -- registry ---------------------------------------------------------------------------------
    def _create_model_version(
        self,
        project: str,
        name: str,
        *,
        flavour: str,
        artifact_digest: str,
        run_id: str | None,
        signature: Mapping[str, Any] | None,
        metadata: Mapping[str, Any] | None,
        description: str | None,
    ) -> ModelVersion:
        if run_id is not None:
            self.flush()  # the version's metrics snapshot must include what the run just logged
        body = {
            "flavour": flavour,
            "artifact_digest": artifact_digest,
            "run_id": run_id,
            "signature": dict(signature) if signature is not None else None,
            "metadata": dict(metadata) if metadata is not None else None,
            "description": description,
        }
        path = f"/projects/{_q(project)}/models/{_q(name)}/versions"
        return _model_version(self._call("POST", path, body))

    def get_model_version(self, project: str, name: str, version: int) -> ModelVersion:
        path = f"/projects/{_q(project)}/models/{_q(name)}/versions/{_q(version)}"
        return _model_version(self._call("GET", path))

    def list_models(self, project: str) -> list[RegisteredModel]:
        return [RegisteredModel(**m) for m in self._call("GET", f"/projects/{_q(project)}/models")]

    def list_model_versions(self, project: str, name: str) -> list[ModelVersion]:
        path = f"/projects/{_q(project)}/models/{_q(name)}/versions"
        return [_model_version(v) for v in self._call("GET", path)]

    def _alias_path(self, project: str, name: str, alias: str) -> str:
        return f"/projects/{_q(project)}/models/{_q(name)}/aliases/{_q(alias)}"

    def _set_alias(self, project: str, name: str, alias: str, version: int) -> int | None:
        result = self._call("PUT", self._alias_path(project, name, alias), {"version": version})
        previous = result["previous"]
        return None if previous is None else int(previous)

    # Only set_alias checks the alias in the front door (the SQL store answers an unknown one
    # with NotFoundError); here it must also make a path segment, so these check it too.
    def delete_alias(self, project: str, name: str, alias: str) -> int:
        check_alias(alias)
        return int(self._call("DELETE", self._alias_path(project, name, alias))["version"])

    def resolve_alias(self, project: str, name: str, alias: str) -> int:
        check_alias(alias)
        return int(self._call("GET", self._alias_path(project, name, alias))["version"])

    # -- prediction log ---------------------------------------------------------------------------
    def _add_prediction_segments(
        self, segments: Sequence[PredictionSegment], spool_id: str | None, upto_seq: int
    ) -> None:
        body = {
            "segments": [
                {
                    "project": s.project,
                    "deployment": s.deployment,
                    "hour_ms": s.hour_ms,
                    "digest": s.digest,
                    "num_rows": s.num_rows,
                    "min_timestamp_ms": s.min_timestamp_ms,
                    "max_timestamp_ms": s.max_timestamp_ms,
                    "size_bytes": s.size_bytes,
                }
                for s in segments
            ],
            "spool_id": spool_id,
            "upto_seq": upto_seq,
        }
        self._call("POST", "/prediction-segments", body)

    def _list_prediction_segments(
        self, project: str, deployment: str | None, start_ms: int | None, end_ms: int | None
    ) -> list[PredictionSegment]:
        params = {"deployment": deployment, "start_ms": start_ms, "end_ms": end_ms}
        path = f"/projects/{_q(project)}/prediction-segments"
        rows = self._call("GET", path, params={k: v for k, v in params.items() if v is not None})
        return [PredictionSegment(**r) for r in rows]

    # -- access ---------------------------------------------------------------------------------
    def blob_digests(self, project: str) -> set[str]:
        raise StoreError(
            "Which blobs a project may read is decided by the server that holds them.",
        )

    # -- tokens and audit -------------------------------------------------------------------------
    def create_token(
        self, role: Role | str, project: str | None = None, name: str = ""
    ) -> tuple[Token, str]:
        body = {"role": str(role), "project": project, "name": name}
        result = self._call("POST", "/tokens", body)
        return _token(result["token"]), str(result["secret"])

    def list_tokens(self, include_revoked: bool = False) -> list[Token]:
        rows = self._call("GET", "/tokens", params={"include_revoked": include_revoked})
        return [_token(t) for t in rows]

    def revoke_token(self, token_id: str) -> Token:
        return _token(self._call("DELETE", f"/tokens/{_q(token_id)}"))

    def authenticate(self, secret: str) -> Token:
        """Ask the server whose token ``secret`` is (``GET /whoami`` with it)."""
        if not isinstance(secret, str) or not secret or not secret.isprintable():
            raise AuthenticationError(INVALID_TOKEN)
        response = self._client.http.get(
            f"{API_PREFIX}/whoami", headers={"Authorization": f"Bearer {secret}"}
        )
        if response.status_code == 401:
            raise error_from_dict(response.json(), 401)
        token = self._client.result(response)["token"]
        if token is None:
            raise AuthenticationError("The server did not identify a token.")
        return _token(token)

    def audit_log(
        self, since_ms: int | None = None, after_seq: int = 0, limit: int = 1000
    ) -> list[AuditRecord]:
        params: dict[str, Any] = {"after_seq": after_seq, "limit": limit}
        if since_ms is not None:
            params["since_ms"] = since_ms
        return [AuditRecord(**r) for r in self._call("GET", "/audit", params=params)]

    def verify_audit(self) -> AuditVerification:
        return AuditVerification(**self._call("GET", "/audit/verify"))
