"""One client of the server benchmark: a closed loop of REST calls against one tracking server.

Started 16 times by ``benchmarks/server.py``. Speaks plain HTTP with httpx (no SDK), so Loopwise
and MLflow get exactly the same client; only the routes and JSON shapes differ (``LoopwiseApi``,
``MlflowApi``). Protocol on stdio: create this client's run, print ``{"ready": …}``, wait for a
``go`` line, run for ``--duration-s``, print the result as one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from typing import Any

import httpx

LOG, GET, SEARCH = "log_metrics", "get_run", "search_runs"
# Per 10 requests: 7 batch writes, 2 reads of the client's own run, 1 search of the project.
MIX = (LOG, GET, LOG, LOG, SEARCH, LOG, LOG, GET, LOG, LOG)
SEARCH_FILTER = "metrics.m0 < 0.5"
SEARCH_MAX_RESULTS = 100
TIMEOUT_S = 120.0
EXAMPLES_KEPT = 3  # failed requests described in full, per operation


def metric_keys(width: int) -> list[str]:
    return [f"m{i}" for i in range(width)]


def now_ms() -> int:
    return int(time.time() * 1000)


class LoopwiseApi:
    """Loopwise's control plane, ``/api/v1`` (see ``src/loopwise/server/routes/runs.py``)."""

    def __init__(self, url: str, token: str, container: str) -> None:
        self.project = container
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.Client(base_url=url, headers=headers, timeout=TIMEOUT_S)

    def create_container(self) -> str:
        response = self.http.post("/api/v1/projects", json={"name": self.project})
        response.raise_for_status()
        return self.project

    def create_run(self, name: str) -> str:
        response = self.http.post(f"/api/v1/projects/{self.project}/runs", json={"name": name})
        response.raise_for_status()
        return str(response.json()["id"])

    def log_batch(self, run_id: str, step: int, values: dict[str, float]) -> httpx.Response:
        ts = now_ms()
        entries = [
            {"run_id": run_id, "key": k, "value": v, "step": step, "timestamp_ms": ts}
            for k, v in values.items()
        ]
        return self.http.post("/api/v1/metrics", json={"entries": entries})

    def get_run(self, run_id: str) -> httpx.Response:
        return self.http.get(f"/api/v1/runs/{run_id}")

    def search(self) -> httpx.Response:
        body = {"filter": SEARCH_FILTER, "max_results": SEARCH_MAX_RESULTS}
        return self.http.post(f"/api/v1/projects/{self.project}/runs/search", json=body)

    @staticmethod
    def found(response: httpx.Response) -> int:
        return len(response.json())


class MlflowApi:
    """MLflow's tracking REST API, ``/api/2.0/mlflow``."""

    def __init__(self, url: str, token: str, container: str) -> None:
        self.experiment_id = container  # an experiment name until create_container
        self.http = httpx.Client(base_url=url + "/api/2.0/mlflow", timeout=TIMEOUT_S)

    def create_container(self) -> str:
        response = self.http.post("/experiments/create", json={"name": self.experiment_id})
        response.raise_for_status()
        self.experiment_id = str(response.json()["experiment_id"])
        return self.experiment_id

    def create_run(self, name: str) -> str:
        body = {"experiment_id": self.experiment_id, "run_name": name, "start_time": now_ms()}
        response = self.http.post("/runs/create", json=body)
        response.raise_for_status()
        return str(response.json()["run"]["info"]["run_id"])

    def log_batch(self, run_id: str, step: int, values: dict[str, float]) -> httpx.Response:
        ts = now_ms()
        metrics = [{"key": k, "value": v, "timestamp": ts, "step": step} for k, v in values.items()]
        return self.http.post("/runs/log-batch", json={"run_id": run_id, "metrics": metrics})

    def get_run(self, run_id: str) -> httpx.Response:
        return self.http.get("/runs/get", params={"run_id": run_id})

    def search(self) -> httpx.Response:
        body = {
            "experiment_ids": [self.experiment_id],
            "filter": SEARCH_FILTER,
            "max_results": SEARCH_MAX_RESULTS,
        }
        return self.http.post("/runs/search", json=body)

    @staticmethod
    def found(response: httpx.Response) -> int:
        return len(response.json().get("runs", []))


APIS: dict[str, type[LoopwiseApi] | type[MlflowApi]] = {
    "loopwise": LoopwiseApi,
    "mlflow": MlflowApi,
}


def run_load(
    api: LoopwiseApi | MlflowApi, run_id: str, client: int, width: int, duration_s: float
) -> dict[str, Any]:
    """Send MIX in a loop until the deadline; a write counts as acknowledged on a 2xx only."""
    rng = random.Random(client)
    keys = metric_keys(width)
    latencies_s: dict[str, list[float]] = {LOG: [], GET: [], SEARCH: []}
    failures: dict[str, Counter[str]] = {LOG: Counter(), GET: Counter(), SEARCH: Counter()}
    examples: list[dict[str, Any]] = []
    acked_values = 0
    step = 0
    turn = client  # clients start at different places in MIX, so searches do not line up
    started = time.perf_counter()
    deadline = started + duration_s
    while time.perf_counter() < deadline:
        op = MIX[turn % len(MIX)]
        turn += 1
        payload: Any = None
        t0 = time.perf_counter()
        try:
            if op == LOG:
                payload = {k: rng.random() for k in keys}
                step += 1  # never reused, so every value is distinct for both systems
                response = api.log_batch(run_id, step, payload)
            elif op == GET:
                response = api.get_run(run_id)
            else:
                response = api.search()
        except httpx.HTTPError as exc:
            failures[op][type(exc).__name__] += 1
            if len(examples) < EXAMPLES_KEPT:
                examples.append({"op": op, "error": f"{type(exc).__name__}: {exc}"})
            continue
        finally:
            elapsed_s = time.perf_counter() - t0
        if response.is_success:
            latencies_s[op].append(elapsed_s)
            if op == LOG:
                acked_values += width
        else:
            failures[op][str(response.status_code)] += 1
            if len(examples) < EXAMPLES_KEPT:
                examples.append(
                    {
                        "op": op,
                        "request": f"{response.request.method} {response.request.url}",
                        "payload": payload,
                        "status": response.status_code,
                        "body": response.text[:500],
                    }
                )
    return {
        "client": client,
        "run_id": run_id,
        "elapsed_s": time.perf_counter() - started,
        "acked_values": acked_values,
        "latencies_s": latencies_s,
        "failures": {op: dict(c) for op, c in failures.items()},
        "examples": examples,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--system", choices=sorted(APIS), required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--token", default="")
    parser.add_argument("--container", required=True, help="project name or experiment id")
    parser.add_argument("--client", type=int, required=True)
    parser.add_argument("--width", type=int, default=10, help="values per log_metrics request")
    parser.add_argument("--duration-s", type=float, required=True)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    api = APIS[args.system](args.url, args.token, args.container)
    run_id = api.create_run(f"client-{args.client}")  # also opens the keep-alive connection
    print(json.dumps({"ready": True, "run_id": run_id}), flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    result = run_load(api, run_id, args.client, args.width, args.duration_s)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
