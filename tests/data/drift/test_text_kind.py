"""Kinds on data nobody tuned for: text columns (Evidently's rule and its classifier test),
integer and boolean types Evidently leaves out, and columns with no value at all."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loopwise.data.drift import drift, prediction_drift
from loopwise.data.drift.columns import column_kind
from loopwise.data.drift.stattests import TEXT_TESTS, get_stat_test
from loopwise.data.kinds import ColumnKind
from loopwise.errors import InvalidArgumentError

WORDS_BEFORE = ["delivery", "late", "refund", "parcel", "courier", "damaged", "address", "tracking"]
WORDS_AFTER = ["password", "login", "account", "locked", "reset", "email", "verify", "browser"]


def _sentences(words: list[str], rows: int, seed: int) -> list[str]:
    """Short complaints made of a few words each, most of them distinct (free text)."""
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(words, 5)) + f" ticket {i}" for i in range(rows)]


def _people(rows: int, start: int, seed: int) -> pd.DataFrame:
    """A passenger list: a numeric column drawn alike on both sides, and names and tickets
    that are all distinct (ID-like), different on each side."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "fare": rng.gamma(2.0, 10.0, rows),
            "name": [f"Passenger {start + i}, Mr. Person" for i in range(rows)],
            "ticket": [f"A/{start + i:06d}" for i in range(rows)],
        }
    )


def test_strings_mostly_distinct_are_text_as_evidently_infers() -> None:
    assert column_kind(pa.chunked_array([["a", "b", "c", None]])) is ColumnKind.TEXT
    # Exactly half distinct is not more than half: categories (Evidently: nunique > count * 0.5).
    assert column_kind(pa.chunked_array([["a", "a", "b", "b"]])) is ColumnKind.CATEGORICAL
    # Nulls do not count as values: 2 distinct of 3 valid.
    assert column_kind(pa.chunked_array([["a", "a", "b", None, None, None]])) is ColumnKind.TEXT
    # A pandas category stays categories however many values it has.
    unique = pa.chunked_array([pa.array(["a", "b", "c"]).dictionary_encode()])
    assert column_kind(unique) is ColumnKind.CATEGORICAL
    assert ColumnKind("text") is ColumnKind.TEXT
    assert [k.value for k in ColumnKind][:2] == ["numeric", "categorical"]  # stored strings


def test_id_like_columns_no_longer_flip_the_verdict() -> None:
    """Names and tickets unique on each side: counted as categories every value is new and
    they drift; tested as text, the words tell the sides apart no better than chance."""
    report = drift(_people(3000, 0, seed=1), _people(3000, 10_000, seed=2))
    for name in ("name", "ticket"):
        column = report.columns[name]
        assert (column.kind, column.test) == ("text", "text_auc")
        assert not column.drifted, column
        assert column.statistic < 0.55
    assert not report.drifted and report.drifted_columns == []


def test_text_that_changed_topic_drifts() -> None:
    before = pd.DataFrame({"complaint": _sentences(WORDS_BEFORE, 2000, seed=1)})
    after = pd.DataFrame({"complaint": _sentences(WORDS_AFTER, 2000, seed=2)})
    column = drift(before, after).columns["complaint"]
    assert (column.kind, column.test, column.threshold) == ("text", "text_auc", 0.55)
    assert column.drifted and column.statistic > 0.95 and column.score == column.statistic


def test_small_text_samples_use_the_classifier_p_value() -> None:
    """Up to 1,000 reference rows, Evidently compares the AUC with what guessing scores."""
    same = drift(
        pd.DataFrame({"complaint": _sentences(WORDS_BEFORE, 400, seed=1)}),
        pd.DataFrame({"complaint": _sentences(WORDS_BEFORE, 400, seed=2)}),
    ).columns["complaint"]
    moved = drift(
        pd.DataFrame({"complaint": _sentences(WORDS_BEFORE, 400, seed=1)}),
        pd.DataFrame({"complaint": _sentences(WORDS_AFTER, 400, seed=2)}),
    ).columns["complaint"]
    assert same.test == moved.test == "text_auc_p"
    assert same.p_value is not None and moved.p_value is not None
    assert not same.drifted and same.p_value > 0.05
    assert moved.drifted and moved.p_value < 1e-6


def test_text_can_be_counted_on_request_but_not_measured() -> None:
    reference, current = _people(300, 0, seed=1), _people(300, 300, seed=2)
    counted = drift(reference, current, columns=["name"], tests={"name": "jensenshannon"})
    assert counted.columns["name"].kind == "text" and counted.columns["name"].drifted
    with pytest.raises(InvalidArgumentError, match="does not apply to text columns"):
        drift(reference, current, columns=["name"], tests={"name": "ks"})
    with pytest.raises(InvalidArgumentError, match="does not apply to categorical"):
        get_stat_test("text_auc", "categorical")
    assert set(TEXT_TESTS) == {"text_auc", "text_auc_p"}


def test_words_that_no_classifier_can_use_score_a_guess() -> None:
    """One-letter values leave TF-IDF no word at all: the AUC is that of guessing, 0.5."""
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    reference = pd.DataFrame({"code": [f"{a}" for a in letters] * 2})
    current = pd.DataFrame({"code": [f"{a}" for a in letters[::-1]] + ["z"] * 10})
    column = drift(reference, current, tests={"code": "text_auc"}).columns["code"]
    assert column.statistic == 0.5 and not column.drifted


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (pd.Series(np.arange(50) % 7, dtype="uint8"), "categorical"),
        (pd.Series(np.arange(50), dtype="uint8"), "numeric"),
        (pd.Series([*range(49), None], dtype="Int64"), "numeric"),
        (pd.Series([True, False, None] * 10, dtype=object), "categorical"),
        (pd.Series([True, False, None] * 10, dtype="boolean"), "categorical"),
    ],
    ids=["uint8-few", "uint8-many", "Int64", "bool-with-nulls", "boolean"],
)
def test_types_evidently_leaves_out_are_compared_on_purpose(values: pd.Series, kind: str) -> None:
    """Evidently 0.7 gives these no type (its rules look at dtype names: 'uint8', 'Int64' and
    object columns of booleans match none) and leaves them out; Loopwise compares them by the
    same rules as their plain cousins (docs/drift.md, "Where kinds differ from Evidently")."""
    frame = pd.DataFrame({"x": values})
    report = drift(frame, frame.copy())
    assert report.columns["x"].kind == kind and not report.columns["x"].drifted
    assert report.skipped == {}


def test_a_column_of_none_has_no_valid_values_it_did_not_change_type() -> None:
    reference = pd.DataFrame({"x": ["a", "b"] * 50, "y": np.arange(100.0)})
    current = pd.DataFrame({"x": [None] * 100, "y": np.arange(100.0)})
    for report in (drift(reference, current), drift(reference, current, columns=["x"])):
        column = report.columns["x"]
        assert column.note == "no valid values in current (all null)", column.note
        assert column.drifted and column.kind == "categorical"
        assert (column.reference_rows, column.current_dropped) == (100, 100)
    backwards = drift(current, reference).columns["x"]
    assert backwards.note == "no valid values in reference (all null)"
    both = drift(current, current.copy(), columns=["x"]).columns["x"]
    assert both.note == "no valid values on either side" and not both.drifted


def test_text_columns_tested_at_once_leak_no_warning() -> None:
    """Evidently's 50 iterations rarely converge; the warning is expected and silenced, also
    when drift's threads fit two text columns at the same time (filters are process-wide)."""
    rng = np.random.default_rng(0)
    words = np.array(WORDS_BEFORE + WORDS_AFTER)

    def side(seed: int, shares: np.ndarray) -> pd.DataFrame:
        rng = np.random.default_rng(seed)
        texts = [" ".join(rng.choice(words, 5, p=shares)) + f" n{i}" for i in range(600)]
        return pd.DataFrame({"a": texts, "b": texts[::-1], "c": rng.permutation(texts)})

    even = np.ones(len(words)) / len(words)
    tilted = rng.dirichlet(np.ones(len(words)))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for seed in range(3):
            drift(side(seed, even), side(seed + 10, tilted))
    assert [str(w.message) for w in caught] == []


def test_string_labels_are_categories_however_many_differ() -> None:
    """A small window may see each label once: predictions are labels, never text."""
    moved = prediction_drift(["yes", "no"] * 100, ["yes", "no", "maybe"])
    assert (moved.kind, moved.test) == ("categorical", "chisquare")
    assert moved.drifted and moved.note == "current has values the reference never had"
