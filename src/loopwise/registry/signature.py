"""Model signatures: the input and output schema, inferred from an example, checked on predict."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from loopwise.errors import InvalidArgumentError, SignatureMismatchError

__all__ = ["as_frame_or_array", "check_input", "infer_signature", "schema_of"]

NUMERIC_KINDS = "biuf"


def _kind_name(dtype: Any) -> str:
    return str(dtype)


def _column_schema(name: Any, dtype: Any) -> dict[str, Any]:
    column: dict[str, Any] = {"name": str(name), "dtype": _kind_name(dtype)}
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories.tolist()
        # Only plain labels can be stored (as JSON) and matched against JSON input later.
        if all(isinstance(c, (str, int, float)) for c in categories):
            column["categories"] = categories
            if dtype.ordered:
                column["ordered"] = True
    return column


def schema_of(value: Any) -> dict[str, Any]:
    """The schema of a DataFrame (columns, dtypes and categories) or an array (dtype and shape)."""
    if isinstance(value, pd.DataFrame):
        return {
            "type": "dataframe",
            "columns": [_column_schema(c, t) for c, t in value.dtypes.items()],
        }
    if isinstance(value, pd.Series):
        return {"type": "ndarray", "dtype": _kind_name(value.dtype), "shape": [-1]}
    array = np.asarray(value)
    return {"type": "ndarray", "dtype": _kind_name(array.dtype), "shape": [-1, *array.shape[1:]]}


def infer_signature(input_example: Any, output_example: Any = None) -> dict[str, Any]:
    signature: dict[str, Any] = {"inputs": schema_of(as_frame_or_array(input_example))}
    if output_example is not None:
        signature["outputs"] = schema_of(output_example)
    return signature


def as_frame_or_array(data: Any) -> pd.DataFrame | np.ndarray[Any, Any]:
    """Model input as a DataFrame (records and column dicts become one) or a NumPy array."""
    if isinstance(data, (pd.DataFrame, np.ndarray)):
        return data
    if isinstance(data, Mapping):
        return pd.DataFrame(data)
    if (
        isinstance(data, Sequence)
        and not isinstance(data, (str, bytes))
        and data
        and isinstance(data[0], Mapping)
    ):
        return pd.DataFrame(list(data))
    try:
        return np.asarray(data)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"Expected model input as a DataFrame, an array, or a list of records; got "
            f"{type(data).__name__} ({exc}).",
            parameter="X",
        ) from exc


def _compatible(expected: str, received: np.dtype[Any] | Any, column: pd.Series | None) -> bool:
    try:
        want = np.dtype(expected)
    except TypeError:
        want = None
    got_kind = getattr(received, "kind", "O")
    if want is None or want.kind not in NUMERIC_KINDS:
        # Strings, categories and objects: accept any non-numeric column.
        return got_kind not in NUMERIC_KINDS or expected == str(received)
    if got_kind not in NUMERIC_KINDS:
        return False
    if want.kind in "iub" and got_kind == "f" and column is not None:
        values = column.to_numpy()
        return bool(np.all(np.isfinite(values)) and np.all(values == np.round(values)))
    return True


def _as_labels(column: pd.Series) -> pd.Series:
    """Numbers as the string labels they stand for: 1 and 1.0 become "1" (JSON sends numbers)."""

    def label(value: Any) -> Any:
        if pd.isna(value) or isinstance(value, str):
            return value
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        return str(value)

    return column.astype(object).map(label)


def _as_categorical(name: str, column: pd.Series, spec: Mapping[str, Any]) -> pd.Series:
    """``column`` with exactly the categories (and their order) the model was trained with."""
    categories = list(spec["categories"])
    dtype = pd.CategoricalDtype(categories, ordered=bool(spec.get("ordered", False)))
    if (
        isinstance(column.dtype, pd.CategoricalDtype)
        and column.dtype.ordered == dtype.ordered
        and column.dtype.categories.equals(dtype.categories)
    ):
        return column
    if isinstance(column.dtype, pd.CategoricalDtype):
        column = column.astype(object)
    unknown_mask = column.notna() & ~column.isin(categories)
    if unknown_mask.any() and categories and all(isinstance(c, str) for c in categories):
        column = _as_labels(column)
        unknown_mask = column.notna() & ~column.isin(categories)
    if unknown_mask.any():
        unknown = pd.unique(column[unknown_mask].to_numpy()).tolist()
        shown = ", ".join(repr(v) for v in unknown[:5]) + (" …" if len(unknown) > 5 else "")
        known = ", ".join(repr(c) for c in categories[:20]) + (" …" if len(categories) > 20 else "")
        raise SignatureMismatchError(
            f"Column {name!r} has values the model was not trained with: {shown}. Expected one of "
            f"its categories ({known}) or a missing value. Map unknown values to a known category "
            "or to None.",
            column=name,
            unknown=unknown[:20],
            expected=categories[:100],
        )
    return column.astype(dtype)


def check_input(
    signature: Mapping[str, Any] | None, data: Any
) -> pd.DataFrame | np.ndarray[Any, Any]:
    """Coerce ``data`` to what the model expects, or say exactly what does not match."""
    frame = as_frame_or_array(data)
    if not signature or "inputs" not in signature:
        return frame
    inputs = signature["inputs"]
    if inputs["type"] == "dataframe":
        columns: list[Mapping[str, Any]] = inputs["columns"]
        expected = [(c["name"], c["dtype"]) for c in columns]
        if isinstance(frame, np.ndarray):
            if frame.ndim != 2 or frame.shape[1] != len(expected):
                raise SignatureMismatchError(
                    f"Expected a table with the {len(expected)} columns {[n for n, _ in expected]}; "
                    f"got an array of shape {frame.shape}. Pass a DataFrame with those columns.",
                    expected=[n for n, _ in expected],
                    received=list(frame.shape),
                )
            frame = pd.DataFrame(frame, columns=[n for n, _ in expected])
        missing = [n for n, _ in expected if n not in frame.columns]
        if missing:
            raise SignatureMismatchError(
                f"Input is missing column(s) {missing}. Expected columns {[n for n, _ in expected]}; "
                f"got {[str(c) for c in frame.columns]}. Add the missing columns (extra ones are ignored).",
                missing=missing,
                expected=[n for n, _ in expected],
                received=[str(c) for c in frame.columns],
            )
        categorical = {str(c["name"]): c for c in columns if "categories" in c}
        wrong = [
            (name, dtype, str(frame[name].dtype))
            for name, dtype in expected
            if name not in categorical and not _compatible(dtype, frame[name].dtype, frame[name])
        ]
        if wrong:
            details = ", ".join(f"{n!r}: expected {e}, got {g}" for n, e, g in wrong)
            raise SignatureMismatchError(
                f"Input column types do not match the model's signature ({details}). Convert those "
                "columns, e.g. df[col] = df[col].astype(expected).",
                columns={n: {"expected": e, "received": g} for n, e, g in wrong},
            )
        frame = frame[[n for n, _ in expected]]
        if categorical:
            given = {n: frame[n] for n in categorical}
            coerced = {n: _as_categorical(n, given[n], categorical[n]) for n in categorical}
            changed = {n: c for n, c in coerced.items() if c is not given[n]}
            if changed:
                frame = frame.assign(**changed)
        return frame
    array = np.asarray(frame)
    shape = inputs.get("shape", [-1])
    if array.ndim != len(shape) or any(
        want not in (-1, got) for want, got in zip(shape, array.shape, strict=False)
    ):
        raise SignatureMismatchError(
            f"Expected an array of shape {['n' if s == -1 else s for s in shape]}, got {list(array.shape)}.",
            expected=shape,
            received=list(array.shape),
        )
    if not _compatible(inputs["dtype"], array.dtype, None):
        raise SignatureMismatchError(
            f"Expected an array of {inputs['dtype']}, got {array.dtype}. Convert it with .astype(...).",
            expected=inputs["dtype"],
            received=str(array.dtype),
        )
    return array
