"""Training-serving skew: the inputs a model version served, against its training data's profile.

The training data is not read again: its profile (``loopwise.data.profiles``) holds a quantile
sketch per numeric column and the frequent categories per categorical one. The served inputs
are profiled the same way, and each side becomes a ``Sample`` for the drift tests — a numeric
column as its quantile function sampled at ``QUANTILE_POINTS`` ranks (so the Wasserstein
distance is the area between the two quantile functions, as for raw data), a categorical one as
its category counts. Distances only: p-values would be meaningless on sketch summaries.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from loopwise.data.drift.stattests import Sample, get_stat_test
from loopwise.data.profiles import ColumnProfile, Profile, profile
from loopwise.errors import InvalidArgumentError

__all__ = ["QUANTILE_POINTS", "ColumnSkew", "SkewReport", "skew"]

QUANTILE_POINTS = 1000
OTHER = "(other)"  # categories beyond those the training profile's sketch kept
TESTS = {"numeric": "wasserstein", "categorical": "jensenshannon"}


@dataclass(frozen=True)
class ColumnSkew:
    """One feature: how far its served values are from its training values."""

    column: str
    kind: str
    test: str
    statistic: float
    threshold: float
    skewed: bool
    training_rows: int
    served_rows: int
    note: str | None = None


@dataclass(frozen=True)
class SkewReport:
    columns: dict[str, ColumnSkew]

    @property
    def skewed_columns(self) -> list[str]:
        return [name for name, c in self.columns.items() if c.skewed]

    def to_frame(self) -> pd.DataFrame:
        fields = list(ColumnSkew.__dataclass_fields__)
        return pd.DataFrame([asdict(c) for c in self.columns.values()], columns=fields)


def _numeric_sample(column: ColumnProfile) -> Sample:
    ranks = (np.arange(QUANTILE_POINTS) + 0.5) / QUANTILE_POINTS
    values = np.array([column.quantile(float(r)) for r in ranks], dtype=np.float64)
    return Sample("numeric", values=np.maximum.accumulate(values), presorted=True)


def _categorical_sample(column: ColumnProfile) -> Sample:
    top = column.top(k=10_000)  # every category the sketch kept
    keys = [value for value, _ in top]
    counts = [count for _, count in top]
    rest = column.values - sum(counts)
    if rest > 0:
        keys.append(OTHER)
        counts.append(rest)
    return Sample(
        "categorical", keys=np.array(keys, dtype=object), counts=np.array(counts, dtype=np.int64)
    )


def _sample(column: ColumnProfile) -> Sample:
    return _numeric_sample(column) if column.kind == "numeric" else _categorical_sample(column)


def _unmeasured(
    name: str, trained: ColumnProfile, served: ColumnProfile | None, note: str
) -> ColumnSkew:
    test = TESTS[trained.kind]
    return ColumnSkew(
        name,
        trained.kind,
        test,
        math.nan,
        get_stat_test(test).default_threshold,
        True,
        trained.values,
        0 if served is None else served.values,
        note,
    )


def _column_skew(
    name: str,
    trained: ColumnProfile,
    served: ColumnProfile | None,
    threshold: float | None,
    values: pd.Series | None,
) -> ColumnSkew:
    """``values``: the served values themselves, when at hand: exact (and deterministic) where
    a sketch of them would only approximate."""
    if served is None or served.values == 0:
        return _unmeasured(name, trained, served, "no served values (missing or all null)")
    if served.kind != trained.kind:
        return _unmeasured(
            name,
            trained,
            served,
            f"type changed: trained on {trained.kind} values ({trained.dtype}), served "
            f"{served.kind} values ({served.dtype})",
        )
    test = get_stat_test(TESTS[trained.kind])
    limit = test.default_threshold if threshold is None else threshold
    if values is None:
        current = _sample(served)
    elif trained.kind == "numeric":
        current = Sample.of(values.to_numpy(dtype=np.float64, na_value=np.nan))
    else:
        current = Sample.of(values.dropna().astype(str).to_numpy(dtype=object), "categorical")
    statistic, _ = test.compute(_sample(trained), current)
    note = None
    if trained.kind == "categorical":
        known = {value for value, _ in trained.top(k=10_000)}
        unseen = [(v, n) for v, n in served.top(k=10_000) if v not in known]
        if unseen:
            share = sum(n for _, n in unseen) / served.values
            shown = ", ".join(repr(v) for v, _ in unseen[:5])
            note = f"{share:.1%} of served values never seen in training: {shown}"
    return ColumnSkew(
        name,
        trained.kind,
        test.name,
        float(statistic),
        limit,
        test.is_drift(statistic, None, limit),
        trained.values,
        served.values,
        note,
    )


def skew(
    training: Profile,
    served: pd.DataFrame | Profile,
    *,
    columns: list[str] | None = None,
    prefix: str = "input.",
    thresholds: dict[str, float] | None = None,
) -> SkewReport:
    """Compare served inputs with the training profile, feature by feature.

    ``served``: the served rows (e.g. ``read_predictions``, whose inputs are ``input.<name>``
    columns: ``prefix`` is stripped) or their ``Profile``. ``columns``: the features to check
    (default: every column of the training profile that the served side has or should have —
    all of them when the served side names none of them). A feature the served side lacks, one
    whose type changed, or one with no served values is reported as skewed, with a note.
    """
    if not isinstance(training, Profile):
        raise InvalidArgumentError(
            f"training: expected a Profile (e.g. dataset_profile('acs-ma/1')), got "
            f"{type(training).__name__}.",
            parameter="training",
        )
    raw: pd.DataFrame | None = None
    if isinstance(served, pd.DataFrame):
        renamed = {c: c[len(prefix) :] for c in served.columns if prefix and c.startswith(prefix)}
        frame = served.rename(columns=renamed)[list(renamed.values())] if renamed else served
        wanted = [c for c in (columns or list(training.columns)) if c in frame.columns]
        if frame.empty or not wanted:
            raise InvalidArgumentError(
                f"served: expected rows with some of the training columns "
                f"{list(training.columns)[:10]}; got {len(frame)} rows with columns "
                f"{list(served.columns)[:10]}.",
                parameter="served",
            )
        raw = frame
        served = profile(frame, columns=wanted)
    if not isinstance(served, Profile):
        raise InvalidArgumentError(
            f"served: expected a DataFrame of served rows or a Profile, got "
            f"{type(served).__name__}.",
            parameter="served",
        )
    names = columns if columns is not None else list(training.columns)
    unknown = [c for c in names if c not in training.columns]
    if unknown:
        raise InvalidArgumentError(
            f"columns: {unknown[:10]} are not in the training profile; it has "
            f"{list(training.columns)[:20]}.",
            parameter="columns",
        )
    limits = dict(thresholds or {})
    result = {
        name: _column_skew(
            name,
            training.columns[name],
            served.columns.get(name),
            limits.get(name),
            None if raw is None or name not in raw.columns else raw[name],
        )
        for name in names
    }
    return SkewReport(result)
