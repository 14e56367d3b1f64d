"""The queue in front of one served model, or of one version of a deployment.

``ModelQueue`` holds what computes a served name's requests: its ``Batcher``, its model process
(with ``processes=True``), its response cache and the input schema of the version it last
saw. The app has one per served model and, for a deployment, one per version and role (live
or shadow) of the plan in force. What a queue needs from the server that owns it comes in a
``QueueContext``, so that this module does not depend on the app.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from loopwise.errors import LoopwiseError, UnavailableError
from loopwise.registry import LoadedModel
from loopwise.serving.batching import Batcher, BatchPolicy
from loopwise.serving.cache import ResponseCache
from loopwise.serving.compute import Batch, predict_batch
from loopwise.serving.models import ServedModels
from loopwise.serving.schema import InputSchema
from loopwise.serving.workers import LogTarget, ModelProcess
from loopwise.store.predictions import PredictionSpool

if TYPE_CHECKING:  # an app made without metrics never loads prometheus_client
    from loopwise.serving.metrics import ServingMetrics

__all__ = ["ModelQueue", "QueueContext", "limit_threads"]


def limit_threads(threads: int) -> None:
    """Give this thread's OpenMP and BLAS pools ``threads`` threads (threadpoolctl, which comes
    with scikit-learn; without it there is nothing to limit)."""
    try:  # optional: threadpoolctl comes with scikit-learn, not with loopwise
        from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - scikit-learn is not installed
        return
    threadpool_limits(limits=threads)  # kept for the thread's life: never restored


@dataclass(frozen=True)
class QueueContext:
    """What a ``ModelQueue`` takes from the server that owns it, the same for all its queues.

    ``models``: where a queue's batch finds its served version; ``metrics``: batch and queue
    metrics (None: none kept); ``processes``: each queue computes in its own model process,
    with ``model_threads`` OpenMP/BLAS threads (as the batch thread does without one);
    ``prediction_log`` and ``project``: where a model process logs the rows it computes.
    """

    models: ServedModels
    metrics: ServingMetrics | None = None
    processes: bool = False
    model_threads: int = 1
    prediction_log: PredictionSpool | None = None
    project: str = ""

    def log_target(self, name: str, shadow: bool = False) -> LogTarget | None:
        """Where model ``name``'s process logs its rows (None without a prediction log); for a
        deployment's lane, ``name`` is the deployment's and ``shadow`` says its role."""
        spool = self.prediction_log
        if spool is None:
            return None
        return LogTarget(
            uri=spool.store.uri,
            token=getattr(spool.store, "token", None),
            project=self.project,
            deployment=name,
            spool_dir=str(spool.directory),
            durability=spool.durability,
            fsync_window_ms=spool.fsync_window_ms,
            shadow=shadow,
        )


class ModelQueue:
    """One served name's queue: its batcher, its model process and the input schema of the
    version last seen.

    A deployment has one per version and role, live or shadow (a *lane*, see
    ``deployments.py``): ``key`` is then the version's name in ``ServedModels``, ``label`` the
    deployment's model (for metrics and the prediction log's ``model``) and ``name`` the
    deployment's (the log's ``deployment``). For a served model all three are its name.
    """

    def __init__(
        self,
        name: str,
        context: QueueContext,
        policy: BatchPolicy,
        cache: ResponseCache | None,
        *,
        key: str | None = None,
        label: str | None = None,
        version: int = 0,
        shadow: bool = False,
    ) -> None:
        self.name = name
        self.key = key or name
        self.label = label or name
        self.version = version  # a lane's version (0 for a served model)
        self.shadow = shadow
        self.active = 0  # a lane's requests in progress (counted on the deployment path only)
        self.queued = 0
        self.context = context
        self.cache = cache
        self.schema: InputSchema | None = None
        self.schema_version: int | None = None
        queue = f"{self.label}/{version}" if key else name  # how errors name the queue
        self.worker = (
            ModelProcess(queue, context.model_threads, context.log_target(name, shadow))
            if context.processes
            else None
        )
        metrics = context.metrics
        label = self.label
        # Computing in the server's process: the batch thread's own OpenMP/BLAS pools get
        # context.model_threads threads, as a model process's do; idle OpenMP threads spinning on
        # both cores would take the event loop's CPU.
        self.executor = (
            ThreadPoolExecutor(
                1,
                thread_name_prefix=f"batch-{queue}",
                initializer=limit_threads,
                initargs=(context.model_threads,),
            )
            if self.worker is None
            else None
        )
        self.batcher = Batcher(
            queue,
            self.run_batch if self.worker is None else self.run_batch_in_process,
            policy,
            executor=self.executor,
            on_batch=(lambda rows, s: metrics.batch(label, str(self.schema_version), rows, s))
            if metrics is not None
            else None,
            on_queue=self.queue_changed if metrics is not None else None,
        )

    def queue_changed(self, rows: int) -> None:
        assert self.context.metrics is not None
        self.context.metrics.queue_change(self.label, rows - self.queued)
        self.queued = rows

    async def prepare(self, model: LoadedModel) -> None:
        """Start the model process (if any) with ``model`` before requests arrive."""
        if self.worker is not None:
            await self.worker.prepare(model)

    async def stop(self) -> None:
        """Stop an idle lane without blocking the event loop."""
        self.batcher.close()
        if self.executor is not None:
            await asyncio.to_thread(self.executor.shutdown, wait=True)
        if self.worker is not None:
            await self.worker.stop()

    def close(self) -> None:
        self.batcher.close()
        if self.executor is not None:
            self.executor.shutdown(wait=True)
        if self.worker is not None:
            self.worker.close()

    def schema_for(self, model: LoadedModel) -> InputSchema:
        version = model.version.version
        if self.schema is None or self.schema_version != version:
            self.schema = InputSchema(model.signature)
            self.schema_version = version
        return self.schema

    def run_batch(self, payloads: Sequence[Any]) -> list[Any]:
        """In the batch thread: the served version computes the batch."""
        model = self.context.models.get(self.key)
        return predict_batch(model, self.schema_for(model), payloads)

    async def run_batch_in_process(self, payloads: Sequence[Any]) -> list[Any]:
        """On the event loop: join the batch here, compute it in the model's process."""
        worker = self.worker
        assert worker is not None
        model = self.context.models.current(self.key)
        if model is None:
            model = await asyncio.to_thread(self.context.models.get, self.key)
        as_array = await worker.load(model)
        batch = Batch(self.schema_for(model), model.version.version, payloads, as_array)
        if not batch.live:
            return batch.split({})
        try:
            outputs, receipt = await worker.compute(
                batch.joined(), batch.wanted, batch.log_rows(batch.live)
            )
            return batch.split(outputs, receipt)
        except UnavailableError:
            raise  # the process died: the whole batch is told to retry
        except LoopwiseError as exc:
            if len(batch.live) == 1:
                batch.failed[batch.live[0]] = exc
                return batch.split({})
        answers: list[Any] = []
        for i, wanted in enumerate(batch.wants):
            if i in batch.failed:
                answers.append(batch.failed[i])
                continue
            try:
                alone, receipt = await worker.compute(batch.alone(i), wanted, batch.log_rows([i]))
                answers.append((batch.version, alone, receipt))
            except UnavailableError:
                raise
            except LoopwiseError as alone:
                answers.append(alone)
        return answers
