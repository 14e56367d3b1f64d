"""Where step executions run: in this process, in worker processes, or on Ray.

Every executor takes the same picklable ``StepTask`` and answers with a
``concurrent.futures.Future`` of a ``StepOutcome``, so the scheduler does not care which one
it talks to. Workers read their inputs from the store and write their outputs to it; nothing
but references crosses a process boundary.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.context
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from multiprocessing import popen_spawn_posix, spawn
from typing import Any, Protocol

from loopwise.errors import InvalidArgumentError, require_extra
from loopwise.pipelines.execute import StepOutcome, StepTask, execute_step

__all__ = [
    "EXECUTORS",
    "Executor",
    "InlineExecutor",
    "LocalExecutor",
    "RayExecutor",
    "make_executor",
]


class Executor(Protocol):
    name: str

    def submit(self, task: StepTask) -> Future[StepOutcome]: ...

    def close(self, cancel: bool = False) -> None: ...


class InlineExecutor:
    """One step at a time in this process: for debugging, and the sequential baseline."""

    name = "inline"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = 1

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        future: Future[StepOutcome] = Future()
        future.set_result(execute_step(task))
        return future

    def close(self, cancel: bool = False) -> None:
        pass


# -- worker processes that do not re-run the user's script ------------------------------------
#
# multiprocessing's spawn re-imports the parent's __main__ in every child, which re-runs a script
# that calls pipeline.run() at top level without an `if __name__ == "__main__"` guard. Workers
# find each step by its module and file (loading.import_module_at), so they never need __main__:
# these classes launch spawn children without it.

_launching = threading.Lock()


def _without_main(original: Callable[[str], dict[str, Any]]) -> Callable[[str], dict[str, Any]]:
    def preparation_data(name: str) -> dict[str, Any]:
        data = original(name)
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
        return data

    return preparation_data


class _Popen(popen_spawn_posix.Popen):
    def _launch(self, process_obj: Any) -> None:
        with _launching:
            original = spawn.get_preparation_data
            spawn.get_preparation_data = _without_main(original)  # type: ignore[assignment]
            try:
                super()._launch(process_obj)  # type: ignore[misc]
            finally:
                spawn.get_preparation_data = original


class _WorkerProcess(multiprocessing.context.SpawnProcess):
    @staticmethod
    def _Popen(process_obj: Any) -> Any:
        return _Popen(process_obj)


class _WorkerContext(multiprocessing.context.SpawnContext):
    Process = _WorkerProcess


class LocalExecutor:
    """Independent steps side by side in worker processes (started with ``spawn``)."""

    name = "local"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool: ProcessPoolExecutor | None = None

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        if self._pool is None:
            # spawn, not fork: a forked child would inherit the parent's store connections,
            # threads and locks mid-use.
            self._pool = ProcessPoolExecutor(max_workers=self.workers, mp_context=_WorkerContext())
        return self._pool.submit(execute_step, task)

    def close(self, cancel: bool = False) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=cancel)
            self._pool = None


class RayExecutor:
    """Steps as Ray tasks: on the cluster at ``RAY_ADDRESS``, or a local Ray started here.

    A local instance gets ``workers`` CPUs (all of them by default); each step asks for one.
    """

    name = "ray"

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers
        self._remote: Any = None
        self._started_here = False

    def submit(self, task: StepTask) -> Future[StepOutcome]:
        ray = require_extra("ray", "ray")
        if self._remote is None:
            if not ray.is_initialized():
                address = os.environ.get("RAY_ADDRESS")
                ray.init(
                    address=address,
                    num_cpus=None if address else self.workers,
                    include_dashboard=False,
                    log_to_driver=True,
                    configure_logging=False,
                )
                self._started_here = True
            self._remote = ray.remote(num_cpus=1, max_retries=0)(execute_step)
        future: Future[StepOutcome] = self._remote.remote(task).future()
        return future

    def close(self, cancel: bool = False) -> None:
        if self._started_here:
            ray = require_extra("ray", "ray")
            ray.shutdown()
            self._started_here = False
        self._remote = None


EXECUTORS: dict[str, type[InlineExecutor] | type[LocalExecutor] | type[RayExecutor]] = {
    "local": LocalExecutor,
    "inline": InlineExecutor,
    "ray": RayExecutor,
}


def make_executor(name: str, workers: int | None = None) -> Executor:
    if workers is not None and (not isinstance(workers, int) or workers < 1):
        raise InvalidArgumentError(
            f"Expected workers to be a positive number, got {workers!r}.", parameter="workers"
        )
    cls = EXECUTORS.get(name)
    if cls is None:
        raise InvalidArgumentError(
            f"Unknown executor {name!r}. Expected one of {sorted(EXECUTORS)}: 'local' runs "
            "independent steps in parallel processes, 'ray' on Ray, 'inline' one by one here.",
            parameter="executor",
        )
    return cls(workers)
