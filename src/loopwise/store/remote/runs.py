"""The remote backend's projects, runs, metrics and run artifacts: ``Store`` over the REST API.

Metrics logged asynchronously go through the same durable local spool as in embedded mode,
drained by POSTs that carry the spool's progress, so a crashed client's values reach the server
exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from loopwise.store.base import MetricEntry
from loopwise.store.codec import decode, json_float
from loopwise.store.entities import ArtifactFile, Metric, Project, Run, RunStatus
from loopwise.store.remote.client import RemoteCore, segment

__all__ = ["RemoteRuns"]


def _run(d: Mapping[str, Any]) -> Run:
    return decode(Run, d)


class RemoteRuns(RemoteCore):
    # -- projects ---------------------------------------------------------------------------------
    def _get_or_create_project(self, name: str) -> Project:
        return decode(Project, self._call("POST", "/projects", {"name": name}))

    def get_project(self, name: str) -> Project:
        return decode(Project, self._call("GET", f"/projects/{segment(name)}"))

    def list_projects(self) -> list[Project]:
        return [decode(Project, p) for p in self._call("GET", "/projects")]

    # -- runs -------------------------------------------------------------------------------------
    def _create_run(
        self, project: str, name: str, tags: dict[str, str], environment: Mapping[str, Any] | None
    ) -> Run:
        body = {
            "name": name,
            "tags": tags,
            "environment": dict(environment) if environment is not None else None,
        }
        run = _run(self._call("POST", f"/projects/{segment(project)}/runs", body))
        with self._known_lock:
            self._known_runs.add(run.id)
        return run

    def get_run(self, run_id: str) -> Run:
        return _run(self._call("GET", f"/runs/{segment(run_id)}"))

    def end_run(self, run_id: str, status: RunStatus) -> Run:
        self.flush()  # the ended run shows every value logged before
        return _run(self._call("POST", f"/runs/{segment(run_id)}/end", {"status": str(status)}))

    def _set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        body = {"tags": tags}
        self._call("POST", f"/runs/{segment(run_id)}/tags", body)

    def _log_params(self, run_id: str, params: dict[str, str]) -> None:
        body = {"params": params}
        self._call("POST", f"/runs/{segment(run_id)}/params", body)

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
        return int(
            self._call("GET", f"/spools/{segment(spool_id)}", params=params)["committed_seq"]
        )

    def _forget_spool_progress(self, spool_id: str, project: str | None) -> None:
        params = None if project is None else {"project": project}
        self._call("DELETE", f"/spools/{segment(spool_id)}", params=params)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        rows = self._call("GET", f"/runs/{segment(run_id)}/metrics/history", params={"key": key})
        return [decode(Metric, r) for r in rows]

    def _search_runs(
        self, project: str, filter_string: str, order_by: Sequence[str], max_results: int
    ) -> list[Run]:
        body = {"filter": filter_string, "order_by": list(order_by), "max_results": max_results}
        return [
            _run(r) for r in self._call("POST", f"/projects/{segment(project)}/runs/search", body)
        ]

    # -- run artifacts ----------------------------------------------------------------------------
    def _record_artifacts(self, run_id: str, files: Sequence[ArtifactFile]) -> None:
        body = {
            "files": [
                {"path": f.path, "digest": f.digest, "size_bytes": f.size_bytes} for f in files
            ]
        }
        self._call("POST", f"/runs/{segment(run_id)}/artifacts", body)

    def _list_artifacts(self, run_id: str, prefix: str) -> list[ArtifactFile]:
        rows = self._call("GET", f"/runs/{segment(run_id)}/artifacts", params={"prefix": prefix})
        return [decode(ArtifactFile, r) for r in rows]
