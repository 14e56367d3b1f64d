"""The models an inference server serves: loaded, warmed, swapped when an alias moves, evicted.

``ServedModels(["employment@production"], store=store, project="p")`` holds one slot per ref;
``deployments=["employment-prod"]`` names deployments to serve too, whose versions the app
adds and releases as their plans change (``add_version``, ``release``; see ``deployments.py``).
``current(name)`` is the hot path (called on the event loop for every request): a dict lookup and
an attribute read, no lock and no store access. Loads, warm-ups and alias polling run in threads;
a new version takes over with a single attribute assignment once it has answered a warm-up
request, so requests in flight finish on the version they started with.

Model sizes are *estimates*: the bytes of the model's files as the registry's manifest lists
them, known before the model is loaded (so room is made first). Files are close to the in-memory
size for scikit-learn (skops stores NumPy arrays uncompressed) and booster formats; treat the
memory budget as approximate.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

from loopwise.errors import (
    InvalidArgumentError,
    LoopwiseError,
    NotFoundError,
    UnavailableError,
    not_found,
)
from loopwise.registry import models as registry
from loopwise.registry.models import LoadedModel, parse_ref
from loopwise.store import ModelVersion, Store
from loopwise.store.checks import check_name

__all__ = ["ModelEvent", "ModelState", "ServedModels", "warm_up", "warm_up_input"]

log = logging.getLogger(__name__)

MAX_RETRY_BACKOFF_S = 300.0
"""Longest wait between two attempts to load a version that failed (doubling from the poll
interval), so that a broken version or an unreachable store is not hammered."""

EventKind = Literal["loaded", "swapped", "evicted", "load_failed"]


@dataclass(frozen=True)
class ModelEvent:
    """Something that happened to a served model, for metrics and logs."""

    kind: EventKind
    name: str
    version: int | None
    seconds: float | None = None
    """Load plus warm-up time (``loaded``, ``swapped``)."""
    nbytes: int | None = None
    error: str | None = None
    previous_version: int | None = None
    """The version that served before a ``swapped``."""
    deployment: str | None = None
    """The deployment this version was loaded for (``name`` is then its model)."""


@dataclass(frozen=True)
class ModelState:
    """What the server reports about one served model."""

    name: str
    ref: str
    version: int | None
    """The version serving now, else the one that will load on demand (None if not resolved)."""
    ready: bool
    """It can answer requests: loaded and warmed, or evicted and reloaded on the next request."""
    loaded: bool
    """In memory now."""
    load_seconds: float | None
    """Load plus warm-up time of the latest successful load."""
    nbytes: int | None
    """Estimated memory (the size of its files); None for models handed over already loaded."""
    last_used: float | None
    """Wall-clock time (seconds since the epoch) of the last request, or of the load."""
    error: str | None
    """Why the latest load or alias lookup failed, until one succeeds."""


class _Slot:
    """One served model: configuration, the ready model, and load bookkeeping."""

    def __init__(
        self,
        name: str,
        ref: str,
        version: int | None,
        alias: str | None,
        model: str | None = None,
        deployment: str | None = None,
    ) -> None:
        self.name = name
        self.ref = ref
        self.model_name = model or name  # the registered model (name is the slot's key)
        self.deployment = deployment
        self.released = False
        self.pinned = version
        self.alias = alias
        self.moves = version is None  # alias and latest refs follow the registry
        self.target: int | None = version
        self.model: LoadedModel | None = None  # swapped by one assignment; read without a lock
        self.last_used: float | None = None  # time.monotonic()
        self.nbytes: int | None = None
        self.load_seconds: float | None = None
        self.ready = False
        self.evicted = False
        self.loading: Future[LoadedModel] | None = None
        self.reserved_nbytes = 0
        self.in_use = 0
        self.error: str | None = None
        self.failure: LoopwiseError | None = None
        self.failures = 0
        self.retry_at = 0.0

    def charge(self) -> int:
        """Bytes this slot holds or is about to hold."""
        loaded = (self.nbytes or 0) if self.model is not None else 0
        return max(loaded, self.reserved_nbytes)


class ServedModels:
    """The served models of one inference server, by name."""

    def __init__(
        self,
        refs: Sequence[str],
        *,
        deployments: Sequence[str] = (),
        store: Store,
        project: str,
        poll_interval_s: float = 5.0,
        memory_budget_bytes: int | None = None,
        warm_up: bool = True,
        on_event: Callable[[ModelEvent], None] | None = None,
        allow_pickle: bool = False,
        trusted_types: Sequence[str] = (),
    ) -> None:
        self._configure(
            refs, store, project, poll_interval_s, memory_budget_bytes, warm_up, on_event
        )
        self.deployments: tuple[str, ...] = self._deployment_names(deployments)
        # The operator's choices, never a version's: see ``registry.models.load``.
        self.allow_pickle = allow_pickle
        self.trusted_types: tuple[str, ...] = tuple(trusted_types)

    def _deployment_names(self, deployments: Sequence[str]) -> tuple[str, ...]:
        if isinstance(deployments, str):
            raise InvalidArgumentError(
                f"Expected deployments as a list of names, got the string {deployments!r}; "
                f"pass [{deployments!r}].",
                parameter="deployments",
            )
        names: list[str] = []
        for name in deployments:
            name = check_name(name, "deployment")
            if name in names or name in self._slots:
                raise InvalidArgumentError(
                    f"{name!r} is named twice (as a deployment, or as a deployment and a "
                    "model); each name serves one thing.",
                    parameter="deployments",
                )
            names.append(name)
        return tuple(names)

    def _configure(
        self,
        refs: Sequence[str],
        store: Store | None,
        project: str,
        poll_interval_s: float,
        memory_budget_bytes: int | None,
        warm_up: bool,
        on_event: Callable[[ModelEvent], None] | None,
    ) -> None:
        self.store = store
        self.project = project
        self.poll_interval_s = poll_interval_s
        self.memory_budget_bytes = memory_budget_bytes
        self.warm_up = warm_up
        self.on_event = on_event
        self.allow_pickle = False
        self.trusted_types = ()
        self._slots: dict[str, _Slot] = {}
        for ref in refs:
            name, version, alias = parse_ref(ref)
            if name in self._slots:
                raise InvalidArgumentError(
                    f"Model {name!r} is named twice ({self._slots[name].ref!r} and {ref!r}); "
                    "serve one version of each model.",
                    parameter="refs",
                )
            self._slots[name] = _Slot(name, ref, version, alias)
        self.names: tuple[str, ...] = tuple(self._slots)
        self.deployments = ()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._closed = False

    @classmethod
    def fixed(cls, models: Mapping[str, LoadedModel]) -> ServedModels:
        """Models already loaded (and trusted to be warm): no store, no polling, no eviction."""
        served = cls.__new__(cls)
        served._configure([], None, "", 5.0, None, False, None)
        now = time.monotonic()
        for name, model in models.items():
            slot = _Slot(name, model.version.ref, model.version.version, None)
            slot.moves = False
            slot.model, slot.ready, slot.last_used = model, True, now
            served._slots[name] = slot
        served.names = tuple(served._slots)
        return served

    # -- the hot path ------------------------------------------------------------------------------
    def _slot(self, name: str) -> _Slot:
        try:
            return self._slots[name]
        except KeyError:
            raise not_found("served model", name, self._slots) from None

    def current(self, name: str) -> LoadedModel | None:
        """The ready model now, or None while it is evicted or not loaded; never blocks."""
        slot = self._slot(name)
        model = slot.model
        if model is not None:
            slot.last_used = time.monotonic()
        return model

    def get(self, name: str) -> LoadedModel:
        """The ready model, loading and warming it first if needed (call from a worker thread).

        Concurrent callers share one load. A failed load raises UnavailableError (HTTP 503, its
        cause in ``details``); it is retried only after a back-off, and until then this raises at
        once, with ``retry_after_s`` saying when trying again makes sense.
        """
        model = self.current(name)
        if model is not None:
            return model
        slot = self._slot(name)
        with self._lock:
            if slot.model is not None:
                slot.last_used = time.monotonic()
                return slot.model
            future = slot.loading
            if future is None:
                if self._closed:
                    raise UnavailableError(
                        f"The server is shutting down: model {slot.ref!r} can no longer load.",
                        reason="closed",
                        model=slot.model_name,
                    )
                wait_s = slot.retry_at - time.monotonic()
                if slot.failure is not None and wait_s > 0:
                    raise _unavailable(slot, slot.failure, wait_s)
                future = slot.loading = Future()
                owner = True
            else:
                owner = False
        if owner:
            self._load(slot, slot.target, future)
        try:
            return future.result()
        except LoopwiseError as exc:
            if isinstance(exc, UnavailableError):
                raise
            raise _unavailable(slot, exc, slot.retry_at - time.monotonic()) from exc

    @contextmanager
    def using(self, name: str) -> Iterator[LoadedModel]:
        """``get(name)``, and keep it from being evicted until the block ends."""
        slot = self._slot(name)
        with self._lock:
            slot.in_use += 1
        try:
            yield self.get(name)
        finally:
            with self._lock:
                slot.in_use -= 1

    # -- state -------------------------------------------------------------------------------------
    def state(self, name: str) -> ModelState:
        slot = self._slot(name)
        model = slot.model
        last_used = slot.last_used
        return ModelState(
            name=slot.name,
            ref=slot.ref,
            version=model.version.version if model is not None else slot.target,
            ready=slot.ready,
            loaded=model is not None,
            load_seconds=slot.load_seconds,
            nbytes=slot.nbytes,
            last_used=None if last_used is None else time.time() - (time.monotonic() - last_used),
            error=slot.error,
        )

    def ready(self, name: str | None = None) -> bool:
        """Whether ``name`` (or every served model ref) can answer requests."""
        if name is not None:
            return self._slot(name).ready
        return all(self._slots[n].ready for n in self.names)

    # -- the versions of deployments ---------------------------------------------------------------
    @staticmethod
    def version_key(deployment: str, model: str, version: int) -> str:
        """The name a deployment's version is held under (never a model's name: it has a /)."""
        return f"{deployment}/{model}/{version}"

    def add_version(self, deployment: str, model: str, version: int) -> Future[LoadedModel]:
        """Hold version ``version`` of ``model`` for ``deployment`` (under ``version_key``).

        Returns a future that resolves once it is loaded and warm (at once if it is); a load that
        failed is retried only after its back-off, and until then the future fails at once.
        """
        key = self.version_key(deployment, model, version)
        done: Future[LoadedModel] = Future()
        with self._lock:
            slot = self._slots.get(key)
            if slot is None:
                slot = _Slot(key, f"{model}/{version}", version, None, model, deployment)
                self._slots[key] = slot
            if slot.model is not None:
                done.set_result(slot.model)
                return done
            if slot.loading is not None:
                return slot.loading
            wait_s = slot.retry_at - time.monotonic()
            if slot.failure is not None and wait_s > 0:
                done.set_exception(_unavailable(slot, slot.failure, wait_s))
                return done
            future = self._submit(slot, version)
        if future is None:
            done.set_exception(
                UnavailableError(
                    f"The server is shutting down: model {slot.ref!r} can no longer load.",
                    reason="closed",
                    model=slot.model_name,
                )
            )
            return done
        return future

    def release(self, deployment: str, model: str, version: int) -> None:
        """Stop holding a deployment's version: its memory is free once no request uses it."""
        with self._lock:
            slot = self._slots.pop(self.version_key(deployment, model, version), None)
            if slot is not None:
                slot.released = True
                slot.model, slot.reserved_nbytes = None, 0

    # -- lifecycle ---------------------------------------------------------------------------------
    def start(self) -> None:
        """Load and warm every model, then follow alias moves in a background thread.

        Failures do not raise: they show in ``state(name).error`` and are retried by the poller.
        With a memory budget, models load one after another so that eviction stays in order.
        """
        if self.store is None or self._poller is not None:
            return
        with self._lock:
            futures = [self._submit(slot, slot.pinned) for slot in self._slots.values()]
        # Failures are recorded in each slot (and retried by the poller), not raised here.
        wait([f for f in futures if f is not None])
        self._poller = threading.Thread(target=self._poll_loop, name="loopwise-alias-poll")
        self._poller.daemon = True
        self._poller.start()

    def close(self) -> None:
        """Stop polling and wait for loads in progress; the loaded models stay usable."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        self._stop.set()
        if self._poller is not None:
            self._poller.join()
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> ServedModels:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- polling -----------------------------------------------------------------------------------
    def _poll_loop(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                self.poll()
            except Exception:  # never let the poller die; each slot records its own errors
                log.exception("Polling the registry for alias moves failed")

    def poll(self) -> None:
        """Re-resolve alias and latest refs once; start loading versions that changed.

        Loads run in the background; the old version serves until the new one is warm.
        """
        for slot in list(self._slots.values()):  # a deployment's versions come and go meanwhile
            if self._stop.is_set() or self.store is None:
                return
            if slot.loading is not None or time.monotonic() < slot.retry_at:
                continue
            version = slot.pinned
            if slot.moves:
                try:
                    version = self._resolve(slot)
                except Exception as exc:
                    self._failed(slot, None, exc)
                    continue
            model = slot.model
            if model is not None and model.version.version == version:
                if slot.error is not None:  # e.g. the store is reachable again
                    with self._lock:
                        slot.error, slot.failure, slot.failures, slot.retry_at = None, None, 0, 0.0
                continue
            with self._lock:
                if slot.evicted and slot.model is None:
                    slot.target = version  # cold: the next request loads the new version
                    continue
                self._submit(slot, version)

    def _resolve(self, slot: _Slot) -> int:
        assert self.store is not None
        if slot.alias is not None:
            return self.store.resolve_alias(self.project, slot.model_name, slot.alias)
        versions = self.store.list_model_versions(self.project, slot.model_name)
        if not versions:
            raise NotFoundError(
                f"Model {slot.model_name!r} has no versions in project {self.project!r}. Register one "
                "with run.log_model(model, name=...).",
                kind="model",
                wanted=slot.model_name,
            )
        return versions[-1].version

    # -- loading -----------------------------------------------------------------------------------
    def _submit(self, slot: _Slot, version: int | None) -> Future[LoadedModel] | None:
        """Start a background load unless one runs already (call with the lock held)."""
        if slot.loading is not None or self._closed or slot.released:
            return None
        if self._executor is None:  # threads start as loads need them (a deployment adds some)
            workers = 1 if self.memory_budget_bytes is not None else 8
            self._executor = ThreadPoolExecutor(workers, thread_name_prefix="loopwise-load")
        future: Future[LoadedModel] = Future()
        slot.loading = future
        task = self._executor.submit(self._load, slot, version, future)
        task.add_done_callback(
            lambda task: self._cancelled(slot, future) if task.cancelled() else None
        )
        return future

    def _cancelled(self, slot: _Slot, future: Future[LoadedModel]) -> None:
        """A queued load that ``close()`` cancelled: tell whoever waits on it."""
        with self._lock:
            if slot.loading is future:
                slot.loading = None
        future.set_exception(
            UnavailableError(
                f"The server shut down before model {slot.ref!r} loaded.",
                reason="closed",
                model=slot.model_name,
            )
        )

    def _load(self, slot: _Slot, version: int | None, future: Future[LoadedModel]) -> None:
        """Load, warm and install one version; the outcome goes to ``future`` (never raises)."""
        assert self.store is not None
        try:
            if version is None:
                version = self._resolve(slot)
            entity = self.store.get_model_version(self.project, slot.model_name, version)
            nbytes = self._estimate_nbytes(entity)
            self._make_room(slot, nbytes)
            started = time.perf_counter()
            model = registry.load(
                entity,
                store=self.store,
                project=self.project,
                allow_pickle=self.allow_pickle,
                trusted_types=self.trusted_types,
            )
            if self.warm_up:
                warm_up(model, self._reference_signature(slot))
            seconds = time.perf_counter() - started
        except BaseException as exc:
            future.set_exception(self._failed(slot, version, exc, loading=True))
            if not isinstance(exc, Exception):
                raise
            return
        with self._lock:
            if slot.released:  # a deployment no longer needs it: nothing to install
                slot.loading = None
                future.set_result(model)
                return
            previous = slot.model
            slot.model = model  # the swap: the next current() returns the new version
            slot.last_used = time.monotonic()
            slot.target, slot.nbytes, slot.load_seconds = version, nbytes, seconds
            slot.ready, slot.evicted, slot.reserved_nbytes = True, False, 0
            slot.error, slot.failure, slot.failures, slot.retry_at = None, None, 0, 0.0
            slot.loading = None
        future.set_result(model)
        if previous is not None and previous.version.version != version:
            log.info("Swapped %s: version %s -> %s", slot.ref, previous.version.version, version)
            self._emit(
                ModelEvent(
                    "swapped",
                    slot.model_name,
                    version,
                    seconds,
                    nbytes,
                    previous_version=previous.version.version,
                    deployment=slot.deployment,
                )
            )
        else:
            log.info("Loaded %s (version %s) in %.3f s", slot.ref, version, seconds)
            self._emit(
                ModelEvent(
                    "loaded", slot.model_name, version, seconds, nbytes, deployment=slot.deployment
                )
            )

    def _reference_signature(self, slot: _Slot) -> Mapping[str, Any] | None:
        """What a version without an input signature is warmed with: the signature of the
        version it replaces, else of another version its deployment holds (the requests it
        will get look like theirs)."""
        current = slot.model
        if current is not None and _has_inputs(current.signature):
            return current.signature
        if slot.deployment is None:
            return None
        for other in list(self._slots.values()):
            model = other.model
            same_deployment = other is not slot and other.deployment == slot.deployment
            if same_deployment and model is not None and _has_inputs(model.signature):
                return model.signature
        return None

    def _failed(
        self, slot: _Slot, version: int | None, exc: BaseException, *, loading: bool = False
    ) -> LoopwiseError:
        """Record a failed load (``loading``) or alias lookup; the version serving keeps serving."""
        if isinstance(exc, LoopwiseError):
            error = exc
        else:
            error = LoopwiseError(
                f"Model {slot.ref!r} (version {version}) could not be loaded and warmed: "
                f"{type(exc).__name__}: {exc}",
                model=slot.model_name,
                version=version,
            )
        message = f"{type(error).__name__}: {error.message}" if error is exc else error.message
        with self._lock:
            slot.failures += 1
            backoff_s = self.poll_interval_s * 2 ** (slot.failures - 1)
            slot.retry_at = time.monotonic() + min(backoff_s, MAX_RETRY_BACKOFF_S)
            slot.error, slot.failure = message, error
            if slot.model is None:
                slot.ready = False
            if version is not None and slot.target is None:
                slot.target = version
            if loading:
                slot.loading, slot.reserved_nbytes = None, 0
        log.warning("Model %s (version %s): %s", slot.ref, version, message)
        self._emit(
            ModelEvent(
                "load_failed", slot.model_name, version, error=message, deployment=slot.deployment
            )
        )
        return error

    def _estimate_nbytes(self, entity: ModelVersion) -> int:
        assert self.store is not None
        manifest = self.store.artifacts.read_manifest(
            entity.artifact_digest, name=f"model {entity.ref}"
        )
        return sum(size for _, size in manifest.values())

    def _make_room(self, slot: _Slot, nbytes: int) -> None:
        """Reserve ``nbytes`` for ``slot``, evicting the least recently used idle models."""
        if self.memory_budget_bytes is None:
            return
        events = []
        with self._lock:
            slot.reserved_nbytes = nbytes
            used = sum(s.charge() for s in self._slots.values() if s is not slot) + nbytes
            idle = [
                s
                for s in self._slots.values()
                if s is not slot and s.model is not None and s.in_use == 0 and s.loading is None
            ]
            idle.sort(key=lambda s: s.last_used or 0.0)
            for victim in idle:
                if used <= self.memory_budget_bytes:
                    break
                evicted, victim.model, victim.evicted = victim.model, None, True
                used -= victim.nbytes or 0
                assert evicted is not None
                events.append(
                    ModelEvent(
                        "evicted",
                        victim.model_name,
                        evicted.version.version,
                        None,
                        victim.nbytes,
                        deployment=victim.deployment,
                    )
                )
        if used > self.memory_budget_bytes:
            log.warning(
                "Loading %s needs about %d bytes; with the models in use the total is %d bytes, "
                "over the memory budget of %d bytes.",
                slot.ref,
                nbytes,
                used,
                self.memory_budget_bytes,
            )
        for event in events:
            log.info("Evicted %s (version %s) to make room", event.name, event.version)
            self._emit(event)

    def _emit(self, event: ModelEvent) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:
            log.exception("The on_event callback failed on %s", event)


def _unavailable(slot: _Slot, cause: LoopwiseError, retry_after_s: float) -> UnavailableError:
    return UnavailableError(
        f"Model {slot.ref!r} is not available: its last load failed ({cause.message}). It is "
        f"tried again in {max(retry_after_s, 0.0):.1f} s.",
        retry_after_s=round(max(retry_after_s, 0.0), 3),
        reason="model_unavailable",
        model=slot.model_name,
        cause=cause.code,
    )


# -- warm-up ---------------------------------------------------------------------------------------
def warm_up_input(signature: Mapping[str, Any] | None, rows: int = 1) -> tuple[Any, bool]:
    """A request built from a signature, and whether any of its values had to be guessed.

    Numbers are 0, categorical columns take their first category, dates the epoch; values for
    free-text columns (strings without recorded categories) are guessed as ``""``.
    Returns ``(None, False)`` when there is no input signature.
    """
    if not signature or "inputs" not in signature:
        return None, False
    inputs = signature["inputs"]
    if inputs.get("type") == "dataframe":
        columns: dict[str, pd.Series] = {}
        guessed = False
        for spec in inputs["columns"]:
            column, column_guessed = _warm_column(spec, rows)
            columns[str(spec["name"])] = column
            guessed = guessed or column_guessed
        return pd.DataFrame(columns), guessed
    shape = [rows, *(1 if d == -1 else int(d) for d in inputs.get("shape", [-1])[1:])]
    dtype = np.dtype(inputs.get("dtype", "float64"))
    return np.zeros(shape, dtype=dtype), dtype.kind not in "biufc"


def _warm_column(spec: Mapping[str, Any], rows: int) -> tuple[pd.Series, bool]:
    categories = spec.get("categories")
    if categories:
        return pd.Series([categories[0]] * rows, dtype=object), False
    try:
        dtype = pd.api.types.pandas_dtype(spec["dtype"])
    except TypeError:
        return pd.Series([""] * rows, dtype=object), True
    value: Any
    if dtype.kind == "b":
        value = False
    elif dtype.kind in "iufc":
        value = 0
    elif dtype.kind == "M":
        value = pd.Timestamp(0)
    elif dtype.kind == "m":
        value = pd.Timedelta(0)
    else:
        return pd.Series([""] * rows, dtype=object).astype(dtype), True
    try:
        return pd.Series([value] * rows).astype(dtype), False
    except (TypeError, ValueError):
        return pd.Series([value] * rows), False


def _has_inputs(signature: Mapping[str, Any] | None) -> bool:
    return signature is not None and "inputs" in signature


def warm_up(model: LoadedModel, reference: Mapping[str, Any] | None = None) -> None:
    """Answer one request built from the model's signature (``predict`` and ``predict_proba``).

    A model without an input signature is asked with one built from ``reference`` (the
    signature of the version it replaces), so it cannot take over unless it answers what that
    version answered; with neither it serves unwarmed, and a warning says so.

    A failure raises, so the model never reports ready, unless the request had to guess values
    for free-text columns: then the failure may be the guess, and it is only logged.
    """
    own = _has_inputs(model.signature)
    X, guessed = warm_up_input(model.signature if own else reference)
    if X is None:
        log.warning(
            "Model %s has no input signature and replaces no version that has one: it loaded "
            "but answered no warm-up request. Register it with input_example=... so that it "
            "is checked before it serves.",
            model.version.ref,
        )
        return
    source = "its signature" if own else "the signature of a version serving already"
    try:
        model.predict(X)
        if hasattr(model, "predict_proba"):
            model.predict_proba(X)
    except Exception as exc:
        if not guessed:
            raise LoopwiseError(
                f"Model {model.version.ref} failed its warm-up request (one row built from "
                f"{source}: numbers 0, first categories): {type(exc).__name__}: {exc}. Check "
                "that the model predicts on the data described by that signature.",
                model=model.version.name,
                version=model.version.version,
            ) from exc
        log.warning(
            "Model %s failed a warm-up request with guessed text values (%s: %s); it serves "
            "without warm-up.",
            model.version.ref,
            type(exc).__name__,
            exc,
        )
