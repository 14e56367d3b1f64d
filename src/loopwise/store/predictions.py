"""The prediction log: every prediction a server answers, kept once, as Parquet by deployment and hour.

An inference server appends a ``PredictionRecord`` per prediction to its ``PredictionSpool``
and acknowledges the request after ``await spool.durable(seq)``. The spool drains into the
store in the background: Parquet blobs grouped by (project, deployment, hour), indexed by the
store in the same transaction that records how far the spool got, so a replay after a crash
writes each record once. ``read_predictions`` reads a deployment's log back as a DataFrame.
See docs/predictions.md.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from loopwise.errors import InvalidArgumentError
from loopwise.store.base import Store
from loopwise.store.checks import check_name, check_time_range
from loopwise.store.durable_spool import Durability, DurableSpool, recover_durable_spools
from loopwise.store.entities import PredictionSegment
from loopwise.store.prediction_segments import (
    COLUMNS,
    INPUT_PREFIX,
    OUTPUT_PREFIX,
    read_segment,
    write_segments,
)
from loopwise.store.spool import default_spool_dir

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "COLUMNS",
    "PredictionRecord",
    "PredictionSpool",
    "decode_record",
    "default_directory",
    "encode_batch",
    "read_predictions",
    "recover_predictions",
    "write_predictions",
]

SPOOL_PREFIX = "predictions-"
MAX_REQUEST_ID_CHARS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class PredictionRecord:
    """One prediction: who asked, which model answered, what went in and came out, how fast."""

    project: str
    deployment: str
    """What served it: the deployment's name, or the served model's name (``loopwise serve REF``)."""
    request_id: str
    model: str
    version: int
    timestamp_ms: int
    """When the request arrived (milliseconds since the epoch, UTC); picks the hour."""
    latency_ms: float
    inputs: Mapping[str, Any]
    """One row: feature name to a JSON value (a number, NaN included, a string, a bool, None,
    or a list of them)."""
    outputs: Mapping[str, Any]
    """E.g. ``{"predict": 1, "predict_proba": [0.2, 0.8]}``."""
    shadow: bool = False
    """A shadow version's answer to a copy of the request (never returned to the client); the
    live answer has the same ``request_id``."""


# -- encoding (on the server's event loop: kept cheap) -------------------------------------------
def _jsonable(value: Any) -> Any:
    """NumPy scalars and arrays, which models return, as the Python values they hold."""
    tolist = getattr(value, "tolist", None)
    if tolist is not None and type(value).__module__ == "numpy":
        return tolist()
    raise TypeError(f"{type(value).__name__} is not a JSON value")


_encode_json = json.JSONEncoder(
    ensure_ascii=False, check_circular=False, separators=(",", ":"), default=_jsonable
).encode
_valid_names: set[str] = set()

_fast_json: Callable[[Any], bytes] | None
try:  # the server's extra: JSON five times faster, for rows without NaN or infinities
    from orjson import dumps as _fast_json
except ImportError:  # pragma: no cover - the store alone does not need it
    _fast_json = None


_PLAIN = (int, str, bool, type(None))


def _finite(values: dict[str, Any]) -> bool:
    """Every value is a plain scalar, or a list of them, and no float is NaN or infinite:
    orjson would write those as null, where the log keeps NaN. Anything else (nested lists or
    dicts, NumPy values) is left to the standard encoder."""
    for value in values.values():
        kind = type(value)
        if kind is float:
            if value - value != 0.0:  # NaN or ±inf
                return False
        elif kind is list:
            for item in value:
                if type(item) is float:
                    if item - item != 0.0:
                        return False
                elif type(item) not in _PLAIN:
                    return False
        elif kind not in _PLAIN:
            return False
    return True


def _bad(record: PredictionRecord, parameter: str, message: str) -> InvalidArgumentError:
    request = getattr(record, "request_id", "?")
    return InvalidArgumentError(
        f"Prediction {request!r}: {message}", parameter=parameter, request_id=repr(request)[:200]
    )


def _name(record: PredictionRecord, value: object, what: str) -> str:
    if type(value) is str and value in _valid_names:
        return value
    try:
        name = check_name(value, what)
    except InvalidArgumentError as exc:
        raise _bad(record, what, exc.message) from None
    if len(_valid_names) < 10_000:
        _valid_names.add(name)
    return name


def _integer(record: PredictionRecord, value: object, parameter: str, low: int) -> int:
    if type(value) is not int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise _bad(record, parameter, f"expected an integer {parameter}, got {value!r}.")
        value = int(value)
    if not low <= value < 2**63:
        raise _bad(record, parameter, f"expected {parameter} >= {low}, got {value}.")
    return value


def _mapping(record: PredictionRecord, value: object, parameter: str) -> dict[str, Any]:
    if type(value) is not dict:
        if not isinstance(value, Mapping):
            raise _bad(
                record,
                parameter,
                f"expected {parameter} as a dict of name to value, got {type(value).__name__}.",
            )
        value = dict(value)
    for key in value:
        if type(key) is not str or not key:
            raise _bad(
                record, parameter, f"expected non-empty string names in {parameter}, got {key!r}."
            )
    return value


def _encode(record: PredictionRecord) -> bytes:
    """A checked record as JSON bytes; raises InvalidArgumentError naming what is wrong."""
    if type(record) is not PredictionRecord:
        raise InvalidArgumentError(
            f"Expected PredictionRecord objects, got {type(record).__name__}. Build one with "
            "PredictionRecord(project=..., deployment=..., request_id=..., ...).",
            parameter="records",
        )
    request_id = record.request_id
    if type(request_id) is not str or not 0 < len(request_id) <= MAX_REQUEST_ID_CHARS:
        raise _bad(
            record,
            "request_id",
            f"expected a request_id of 1-{MAX_REQUEST_ID_CHARS} characters, got {request_id!r}.",
        )
    latency_ms = record.latency_ms
    if type(latency_ms) is not float:
        if isinstance(latency_ms, bool) or not isinstance(latency_ms, numbers.Real):
            raise _bad(record, "latency_ms", f"expected a number latency_ms, got {latency_ms!r}.")
        latency_ms = float(latency_ms)
    if not 0 <= latency_ms < math.inf:
        raise _bad(record, "latency_ms", f"expected a finite latency_ms >= 0, got {latency_ms}.")
    shadow = record.shadow
    if type(shadow) is not bool:
        raise _bad(record, "shadow", f"expected shadow True or False, got {shadow!r}.")
    # Keys as prediction_segments reads them; "input" and "output" become column prefixes.
    fields = {
        "project": _name(record, record.project, "project"),
        "deployment": _name(record, record.deployment, "deployment"),
        "request_id": request_id,
        "model": _name(record, record.model, "model"),
        "version": _integer(record, record.version, "version", 1),
        "timestamp_ms": _integer(record, record.timestamp_ms, "timestamp_ms", 0),
        "latency_ms": latency_ms,
        "input": _mapping(record, record.inputs, "inputs"),
        "output": _mapping(record, record.outputs, "outputs"),
        "shadow": shadow,
    }
    try:
        return _encode_json(fields).encode()
    except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
        raise _unencodable(record) from None


Row = tuple[str, int, float, dict[str, Any], dict[str, Any]]
"""``(request_id, timestamp_ms, latency_ms, inputs, outputs)`` of one record of a batch."""


def encode_batch(shared: PredictionRecord, rows: Sequence[Row]) -> list[bytes]:
    """Records that take project, deployment, model, version and shadow from ``shared`` and the
    rest from ``rows``, encoded byte for byte as ``PredictionSpool.append`` encodes them, and
    checked the same way — the shared fields once (a model process logs whole batches).

    A row that fails the quick checks is built as a ``PredictionRecord`` and encoded the usual
    way, so its error is the one ``append`` raises.
    """
    _encode(shared)  # checks the shared fields
    project, deployment, model = shared.project, shared.deployment, shared.model
    version, shadow = int(shared.version), shared.shadow
    payloads = []
    for row in rows:
        request_id, timestamp_ms, latency_ms, inputs, outputs = row
        if (
            type(request_id) is str
            and 0 < len(request_id) <= MAX_REQUEST_ID_CHARS
            and type(timestamp_ms) is int
            and 0 <= timestamp_ms < 2**63
            and type(latency_ms) is float
            and 0 <= latency_ms < math.inf
            and type(inputs) is dict
            and type(outputs) is dict
            and all(type(k) is str and k for k in inputs)
            and all(type(k) is str and k for k in outputs)
        ):
            fields = {
                "project": project,
                "deployment": deployment,
                "request_id": request_id,
                "model": model,
                "version": version,
                "timestamp_ms": timestamp_ms,
                "latency_ms": latency_ms,
                "input": inputs,
                "output": outputs,
                "shadow": shadow,
            }
            try:
                if _fast_json is not None and _finite(inputs) and _finite(outputs):
                    payloads.append(_fast_json(fields))
                else:
                    payloads.append(_encode_json(fields).encode())
                continue
            except (TypeError, ValueError, RecursionError, UnicodeEncodeError):
                pass  # the slow path names the value
        payloads.append(
            _encode(
                PredictionRecord(
                    project=project,
                    deployment=deployment,
                    request_id=request_id,
                    model=model,
                    version=version,
                    timestamp_ms=timestamp_ms,
                    latency_ms=latency_ms,
                    inputs=inputs,
                    outputs=outputs,
                    shadow=shadow,
                )
            )
        )
    return payloads


def _unencodable(record: PredictionRecord) -> InvalidArgumentError:
    """Say which value could not be logged (the slow path, taken only on failure)."""
    hint = (
        "Expected JSON values: numbers (NaN included), strings without lone surrogates, bools, "
        "None, and lists of them; convert it, e.g. with float(...), str(...) or .tolist()."
    )
    try:
        _encode_json(record.request_id).encode()
    except UnicodeEncodeError as exc:
        return _bad(record, "request_id", f"request_id cannot be logged ({exc}). {hint}")
    for parameter in ("inputs", "outputs"):
        for name, value in getattr(record, parameter).items():
            try:
                _encode_json([name, value]).encode()
            except (TypeError, ValueError, RecursionError, UnicodeEncodeError) as exc:
                return _bad(
                    record, parameter, f"{parameter}[{name!r}] cannot be logged ({exc}). {hint}"
                )
    return _bad(record, "inputs", f"the record cannot be encoded as JSON. {hint}")


def decode_record(payload: bytes | memoryview) -> PredictionRecord:
    """A spooled record as it was appended (for tools that read spool files)."""
    fields = json.loads(bytes(payload))
    return PredictionRecord(
        project=fields["project"],
        deployment=fields["deployment"],
        request_id=fields["request_id"],
        model=fields["model"],
        version=fields["version"],
        timestamp_ms=fields["timestamp_ms"],
        latency_ms=fields["latency_ms"],
        inputs=fields["input"],
        outputs=fields["output"],
        shadow=fields.get("shadow", False),  # spooled before shadow rows existed
    )


# -- the spool ------------------------------------------------------------------------------------
class PredictionSpool(DurableSpool):
    """This process's durable spool of predictions, drained into ``store`` in the background.

    ``durability="fsync"`` (default): a record is durable once ``fdatasync`` covered it; it
    survives a killed process, an OS crash and power loss. One fsync serves every request
    waiting at that moment; ``fsync_window_ms > 0`` allows at most one fsync per window, so
    more requests share each (a request then waits up to the window plus one fsync).
    ``durability="write"``: a record is durable once written to the file (the kernel has it):
    it survives the process being killed but not an OS crash or power loss, and costs no fsync.

    ``open()`` first replays the spools that dead processes left in ``directory`` (by default
    ``predictions/`` in the store's spool folder, which opening the store replays too).
    """

    RECORDS = "predictions"

    def __init__(
        self,
        store: Store,
        *,
        directory: Path | None = None,
        durability: Durability = "fsync",
        fsync_window_ms: float = 0.0,
        drain_interval_s: float = 2.0,
        max_file_bytes: int = 64 * 2**20,
    ) -> None:
        super().__init__(
            directory or default_directory(store),
            self._write_batch,
            store.forget_spool,
            durability=durability,
            fsync_window_ms=fsync_window_ms,
            drain_interval_s=drain_interval_s,
            max_file_bytes=max_file_bytes,
            spool_prefix=SPOOL_PREFIX,
        )
        self.store = store

    def _write_batch(self, payloads: Sequence[bytes], spool_id: str, upto_seq: int) -> None:
        write_segments(self.store, payloads, spool_id, upto_seq)

    def open(self) -> PredictionSpool:
        """Replay spools that dead processes left here, then start this process's spool."""
        self._check_options()
        recover_predictions(self.store, self.directory)
        super().open()
        return self

    def append(self, records: Sequence[PredictionRecord]) -> int:
        """Spool ``records`` (all checked first: all or none); returns the last one's sequence number.

        Acknowledge them after ``await spool.durable(seq)`` (or ``spool.wait_durable(seq)``).
        """
        if not isinstance(records, Sequence):
            raise InvalidArgumentError(
                f"Expected a list of PredictionRecord, got {type(records).__name__}. Pass one "
                "record as [record].",
                parameter="records",
            )
        return self.append_payloads([_encode(r) for r in records])

    def append_batch(self, shared: PredictionRecord, rows: Sequence[Row]) -> int:
        """``append`` for records that share all but their ``Row`` fields (see
        ``encode_batch``): the same records, checked and encoded with less work per row."""
        return self.append_payloads(encode_batch(shared, rows))


def default_directory(store: Store) -> Path:
    """Where a store's prediction spools live: ``predictions/`` in its spool folder."""
    return (store.spool_dir or default_spool_dir(store.uri)) / "predictions"


def recover_predictions(store: Store, directory: Path | None = None) -> int:
    """Write the spools that dead processes left into ``store``; returns records replayed.

    A spool the store refuses (e.g. records of a project that does not exist) is logged and
    kept for the next open; it does not stop this one.
    """

    def write(payloads: Sequence[bytes], spool_id: str, upto_seq: int) -> None:
        write_segments(store, payloads, spool_id, upto_seq)

    return recover_durable_spools(
        directory or default_directory(store),
        write,
        store.spool_progress,
        store.forget_spool,
        keep_refused=True,
    )


# -- without a spool, and reading -----------------------------------------------------------------
def write_predictions(store: Store, records: Sequence[PredictionRecord]) -> list[PredictionSegment]:
    """Write records now, without a spool (e.g. batch scoring); returns the new segments.

    One Parquet segment per (project, deployment, hour), all indexed in one transaction.
    """
    if not isinstance(records, Sequence):
        raise InvalidArgumentError(
            f"Expected a list of PredictionRecord, got {type(records).__name__}.",
            parameter="records",
        )
    payloads = [_encode(r) for r in records]  # the spool's encoding: both store the same values
    return write_segments(store, payloads) if payloads else []


def read_predictions(
    store: Store,
    project: str,
    deployment: str,
    start_ms: int | None = None,
    end_ms: int | None = None,
) -> pd.DataFrame:
    """A deployment's predictions with ``start_ms <= timestamp_ms < end_ms``, oldest first.

    Columns: ``COLUMNS`` (request_id, deployment, model, version, timestamp_ms, latency_ms,
    shadow), then ``input.<feature>`` for each input and ``output.<name>`` for each output, in
    the order they were first logged. ``shadow`` is True for a shadow version's rows (the live
    row has the same request_id); monitoring reads only the others. Records still in a live
    server's spool are not included until it drains them (every ``drain_interval_s``).
    """
    import pandas as pd  # deferred: pandas takes ~0.4 s to import; only reading needs it

    check_name(deployment, "deployment")
    start, end = check_time_range(start_ms, end_ms)
    frames: list[pd.DataFrame] = []
    names: dict[str, None] = dict.fromkeys(COLUMNS)
    for segment in store.list_prediction_segments(project, deployment, start, end):
        frame, columns = read_segment(store, segment, start, end)
        if "shadow" not in frame.columns:  # written before shadow rows existed: all live
            frame["shadow"] = False
        names.update(dict.fromkeys(columns))
        # A column with no value in this segment must not decide the combined column's type.
        frames.append(frame.dropna(axis="columns", how="all"))
    inputs = [n for n in names if n.startswith(INPUT_PREFIX)]
    outputs = [n for n in names if n.startswith(OUTPUT_PREFIX)]
    if not frames:
        empty = pd.DataFrame(
            {
                "request_id": pd.Series(dtype="str"),
                "deployment": pd.Series(dtype="str"),
                "model": pd.Series(dtype="str"),
                "version": pd.Series(dtype="int64"),
                "timestamp_ms": pd.Series(dtype="int64"),
                "latency_ms": pd.Series(dtype="float64"),
                "shadow": pd.Series(dtype="bool"),
            }
        )
        return empty
    combined = pd.concat(frames, ignore_index=True, sort=False)
    combined = combined.reindex(columns=[*COLUMNS, *inputs, *outputs])
    result: pd.DataFrame = combined.sort_values("timestamp_ms", kind="stable", ignore_index=True)
    return result
