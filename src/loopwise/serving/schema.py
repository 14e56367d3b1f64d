"""Model input on the serving hot path: each request checked alone, a batch built once.

A request's input arrives as columns (``{"AGEP": [35.0], "SCHL": ["21"], …}``, lists or NumPy
arrays) or, for a model whose signature is an array, as one array. ``InputSchema`` is compiled
once per model version from its signature:

* ``check(inputs)`` runs per request, before batching, so that one bad request never fails the
  others in its batch. A fast check of plain Python values decides most requests in a few
  microseconds; anything it cannot vouch for goes through ``registry.signature.check_input``,
  whose error names the column, what was expected and what came;
* ``frame(requests)`` joins checked requests into the one table (or array) the model is called
  with: columns in signature order, with the signature's dtypes and categories;
* ``limit`` is the most columns a request may send, checked by the parsers before they build
  anything (a 50,000-column body is refused from its header, not parsed).
"""

from __future__ import annotations

import math
import reprlib
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from loopwise.errors import InvalidArgumentError, SignatureMismatchError
from loopwise.registry.signature import check_input

__all__ = [
    "NO_SIGNATURE_LIMIT",
    "ColumnLimit",
    "InputSchema",
    "Inputs",
    "quoted",
    "rows_of",
    "shown",
]

Columns = dict[str, Any]
"""Column name -> values (a list or a 1-D NumPy array), every column the same length."""

Inputs = Columns | np.ndarray[Any, Any]
"""One request's model input: columns for a table model, an array for an array model."""


EXTRA_COLUMNS = 256
"""Columns a request may send beyond its model's signature (they are ignored)."""
MAX_COLUMNS_WITHOUT_SIGNATURE = 4096
"""Columns a request may send to a model without a signature (or one not loaded yet)."""


def shown(items: Sequence[Any], most: int = 10) -> str:
    """The first ``most`` items, quoted, and how many more: a message never lists thousands."""
    head = ", ".join(quoted(item, 40) for item in items[:most])
    more = len(items) - most
    return f"[{head}, … and {more} more]" if more > 0 else f"[{head}]"


_SHORT_REPR = reprlib.Repr()  # (keyword arguments only from Python 3.12)
_SHORT_REPR.maxlevel, _SHORT_REPR.maxstring, _SHORT_REPR.maxother = 3, 60, 60
_SHORT_REPR.maxlist = _SHORT_REPR.maxdict = _SHORT_REPR.maxtuple = 5


def quoted(value: Any, most_chars: int = 80) -> str:
    """``repr(value)`` cut short (messages quote user input): ``reprlib`` never walks all of a
    huge value, and a long string says how long it was."""
    if isinstance(value, str) and len(value) > most_chars:
        return f"{value[:most_chars]!r}… ({len(value)} characters)"
    text = _SHORT_REPR.repr(value)
    return text if len(text) <= most_chars else f"{text[:most_chars]}…"


@dataclass(frozen=True)
class ColumnLimit:
    """The most columns (keys of a record, input tensors) one request may send.

    The parsers check it as soon as they can count — a CSV body from its header line, JSON
    right after it is read — so that a wide body costs the server next to nothing.
    """

    most: int
    expected: int | None = None
    """How many columns the model's signature has; None without a signature."""

    def check(self, count: int, where: str, at_least: bool = False) -> None:
        if count <= self.most:
            return
        got = f"{count} or more" if at_least else str(count)
        if self.expected is None:
            raise InvalidArgumentError(
                f"{where} has {got} columns; the server takes at most {self.most} per request "
                "for a model without a table signature. Send fewer columns.",
                field=where,
                columns=count,
                limit=self.most,
            )
        raise SignatureMismatchError(
            f"{where} has {got} columns; the model's signature has {self.expected}, so a "
            f"request may send at most {self.most} (extra columns are ignored). Send only the "
            "signature's columns.",
            field=where,
            columns=count,
            limit=self.most,
        )


NO_SIGNATURE_LIMIT = ColumnLimit(MAX_COLUMNS_WITHOUT_SIGNATURE)


def _limit_of(inputs: Mapping[str, Any], table_width: int | None) -> ColumnLimit:
    if table_width is not None:
        return ColumnLimit(table_width + EXTRA_COLUMNS, table_width)
    shape = inputs.get("shape")
    if isinstance(shape, list) and len(shape) == 2 and type(shape[1]) is int and shape[1] > 0:
        return ColumnLimit(shape[1] + EXTRA_COLUMNS, shape[1])
    return NO_SIGNATURE_LIMIT


def rows_of(inputs: Inputs) -> int:
    if isinstance(inputs, np.ndarray):
        return int(inputs.shape[0]) if inputs.ndim else 1
    for values in inputs.values():
        return len(values)
    return 0


def _is_number(value: Any) -> bool:
    kind = type(value)
    return kind is float or kind is int or kind is bool


def _label(value: Any) -> Any:
    """A JSON number as the category label it stands for: 1 and 1.0 become "1"."""
    if type(value) is float and value.is_integer():
        return str(int(value))
    return str(value) if _is_number(value) else value


# What a column of each kind accepts on the fast path, as plain Python values from JSON.
_FLOAT, _INT, _BOOL, _TEXT, _CATEGORY = "f", "i", "b", "t", "c"


def _floats_ok(values: list[Any]) -> bool:
    for v in values:
        kind = type(v)
        if kind is not float and kind is not int and kind is not bool and v is not None:
            return False
    return True


def _ints_ok(values: list[Any]) -> bool:
    for v in values:
        kind = type(v)
        if (kind is not int and kind is not bool) and (
            kind is not float or not (math.isfinite(v) and v.is_integer())
        ):
            return False
    return True


def _bools_ok(values: list[Any]) -> bool:
    for v in values:
        kind = type(v)
        if kind is not bool and kind is not int and kind is not float:
            return False
    return True


def _texts_ok(values: list[Any]) -> bool:
    for v in values:  # noqa: SIM110 - a plain loop is the fastest check here
        if type(v) is not str and v is not None:
            return False
    return True


@dataclass(frozen=True)
class _Column:
    name: str
    dtype: str
    kind: str
    categories: frozenset[Any] | None = None
    category_dtype: pd.CategoricalDtype | None = None
    string_labels: bool = False

    def values_ok(self, values: Any) -> bool:
        if type(values) is not list:
            return isinstance(values, np.ndarray) and self._array_ok(values)
        kind = self.kind
        if kind == _FLOAT:
            return _floats_ok(values)
        if kind == _CATEGORY:
            cats = self.categories
            assert cats is not None
            labels = self.string_labels
            for v in values:
                if v is not None and v not in cats and (not labels or _label(v) not in cats):
                    return False
            return True
        if kind == _INT:
            return _ints_ok(values)
        if kind == _BOOL:
            return _bools_ok(values)
        return _texts_ok(values)

    def _array_ok(self, values: np.ndarray[Any, Any]) -> bool:
        if values.ndim != 1:
            return False
        if self.kind == _CATEGORY:
            return self.values_ok(values.tolist())
        dtype_kind = values.dtype.kind
        if self.kind in (_FLOAT, _BOOL):
            return dtype_kind in "biuf"
        if self.kind == _INT:
            return dtype_kind in "biu"
        return dtype_kind in "OSU"

    def build(self, parts: Sequence[Any]) -> Any:
        if self.category_dtype is not None:
            values: list[Any] = []
            for part in parts:
                values.extend(part.tolist() if isinstance(part, np.ndarray) else part)
            if self.string_labels:
                values = [_label(v) for v in values]
            return pd.Categorical(values, dtype=self.category_dtype)
        if all(isinstance(p, np.ndarray) for p in parts):
            joined = np.concatenate(parts) if len(parts) > 1 else parts[0]
        else:
            joined = []
            for part in parts:
                joined.extend(part.tolist() if isinstance(part, np.ndarray) else part)
        try:
            return np.asarray(joined, dtype=np.dtype(self.dtype))
        except (TypeError, ValueError):
            return np.asarray(joined, dtype=object)


def _column(spec: Mapping[str, Any]) -> _Column:
    name, dtype = str(spec["name"]), str(spec["dtype"])
    categories = spec.get("categories")
    if categories is not None:
        category_dtype = pd.CategoricalDtype(list(categories), ordered=bool(spec.get("ordered")))
        labels = bool(categories) and all(isinstance(c, str) for c in categories)
        return _Column(
            name, dtype, _CATEGORY, frozenset(categories), category_dtype, string_labels=labels
        )
    try:
        kind = np.dtype(dtype).kind
    except TypeError:
        kind = "O"
    fast = {"f": _FLOAT, "i": _INT, "u": _INT, "b": _BOOL}.get(kind, _TEXT)
    return _Column(name, dtype if kind in "biuf" else "object", fast)


class InputSchema:
    """A model version's signature compiled for the hot path."""

    def __init__(self, signature: Mapping[str, Any] | None) -> None:
        self.signature = signature
        inputs = (signature or {}).get("inputs") or {}
        self.table = inputs.get("type") == "dataframe"
        self.columns = [_column(c) for c in inputs.get("columns", [])] if self.table else []
        self.names = [c.name for c in self.columns]
        dtypes = {c.dtype for c in self.columns}
        numeric = all(c.kind in (_FLOAT, _INT) for c in self.columns)
        self.uniform = np.dtype(dtypes.pop()) if numeric and len(dtypes) == 1 else None
        self.all_floats = bool(self.columns) and all(c.kind == _FLOAT for c in self.columns)
        self.limit = _limit_of(inputs, len(self.names) if self.table else None)

    def check(self, inputs: Inputs) -> Inputs:
        """The request's input if it fits the signature; else a ``SignatureMismatchError``."""
        if not self.table:
            if not self.signature or "inputs" not in self.signature:
                return inputs  # nothing to check against: the model decides
            given = inputs if isinstance(inputs, np.ndarray) else pd.DataFrame(inputs)
            return np.asarray(check_input(self.signature, given))
        if isinstance(inputs, np.ndarray):
            table = check_input(self.signature, inputs)
            assert isinstance(table, pd.DataFrame)
            return {name: table[name].to_numpy() for name in self.names}
        if self.all_floats:  # the common case, checked inline: no call per column
            for name in self.names:
                values = inputs.get(name)
                if type(values) is not list:
                    break
                for v in values:
                    kind = type(v)
                    if kind is not float and kind is not int and v is not None and kind is not bool:
                        break
                else:
                    continue
                break
            else:
                return inputs
        for column in self.columns:
            values = inputs.get(column.name)
            if values is None or not column.values_ok(values):
                break
        else:
            return inputs
        # The slow path names exactly what is wrong (or accepts what the fast path could not
        # vouch for, e.g. an integer column sent as whole floats).
        missing = [name for name in self.names if name not in inputs]
        if missing:  # said here, with the lists cut short (a request may send many columns)
            sent = list(inputs)
            raise SignatureMismatchError(
                f"Input is missing column(s) {shown(missing)}. Expected the {len(self.names)} "
                f"columns {shown(self.names)}; got {len(sent)}: {shown(sent)}. Add the missing "
                "columns (extra ones are ignored).",
                missing=missing[:100],
                expected=self.names[:100],
                received=sent[:100],
            )
        try:
            frame = pd.DataFrame(inputs)
        except ValueError as exc:
            raise SignatureMismatchError(
                f"The input's columns cannot form a table ({exc}). Send one value per row in "
                "every column.",
            ) from exc
        checked = check_input(self.signature, frame)
        assert isinstance(checked, pd.DataFrame)
        return {name: checked[name].to_numpy() for name in self.names}

    def frame(
        self, requests: Sequence[Inputs], as_array: bool = False
    ) -> pd.DataFrame | np.ndarray[Any, Any]:
        """Checked requests joined into one model input, in signature order and dtypes.

        ``as_array``: a table whose columns share one numeric dtype comes as one C-ordered 2-D
        array instead of a DataFrame (for models known to take it, see ``accepts_arrays``).
        """
        if not self.table:
            if all(isinstance(r, np.ndarray) for r in requests):
                arrays: list[np.ndarray[Any, Any]] = list(requests)  # type: ignore[arg-type]
                return np.concatenate(arrays) if len(arrays) > 1 else arrays[0]
            return pd.concat([pd.DataFrame(r) for r in requests], ignore_index=True)
        built = [c.build([r[c.name] for r in requests]) for c in self.columns]
        if self.uniform is not None:
            # One 2-D block rather than a block per column: pandas and scikit-learn then pass
            # the table on without stitching columns together on every call.
            block = np.empty((len(built[0]), len(built)), dtype=self.uniform)
            for j, values in enumerate(built):
                block[:, j] = values
            return block if as_array else pd.DataFrame(block, columns=self.names, copy=False)
        return pd.DataFrame(dict(zip(self.names, built, strict=True)), copy=False)


_NO_NAMES_WARNING = "X does not have valid feature names"


def accepts_arrays(model: Any, schema: InputSchema) -> bool:
    """Whether ``model`` answers a plain 2-D array exactly as it answers the DataFrame.

    True only for a scikit-learn estimator fitted on exactly the signature's columns, in the
    same order, all of one numeric dtype, and whose answer to a probe row is the same either
    way (a ColumnTransformer that picks columns by name fails the probe). Skipping pandas
    halves the fixed cost of a call for such models. scikit-learn warns on each such call that
    the array has no column names; ``ignore_feature_name_warning`` silences that, process-wide
    (model processes only).
    """
    names = getattr(model, "feature_names_in_", None)
    if schema.uniform is None or names is None or list(names) != schema.names:
        return False
    probe = np.zeros((1, len(schema.names)), dtype=schema.uniform)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=_NO_NAMES_WARNING)
            as_array = np.asarray(model.predict(probe))
        as_frame = np.asarray(model.predict(pd.DataFrame(probe, columns=schema.names)))
    except Exception:
        return False
    return bool(as_array.shape == as_frame.shape and np.array_equal(as_array, as_frame))


def ignore_feature_name_warning() -> None:
    """Silence scikit-learn's warning about arrays without column names in this process."""
    warnings.filterwarnings("ignore", message=_NO_NAMES_WARNING)
