"""Signatures: what is recorded from an input example, and how inputs are checked against it."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pandas as pd
import pytest

from loopwise.errors import SignatureMismatchError
from loopwise.registry.signature import check_input, infer_signature

from .datasets import ACS_FEATURES, acs_sample


@pytest.fixture
def signature() -> dict[str, Any]:
    example = pd.DataFrame({"age": [30.0, 41.5], "children": [0, 2], "city": ["Boston", "Lowell"]})
    return infer_signature(example, np.array([0, 1]))


# -- inference ----------------------------------------------------------------------------------


def test_frame_signature_records_columns_in_order(signature: dict[str, Any]) -> None:
    assert signature["inputs"]["type"] == "dataframe"
    assert [(c["name"], c["dtype"]) for c in signature["inputs"]["columns"]] == [
        ("age", "float64"),
        ("children", "int64"),
        ("city", str(pd.Series(["a"]).dtype)),
    ]
    assert signature["outputs"] == {"type": "ndarray", "dtype": "int64", "shape": [-1]}


def test_array_signature_records_dtype_and_shape_without_batch() -> None:
    assert infer_signature(np.zeros((5, 3, 2), dtype=np.float32))["inputs"] == {
        "type": "ndarray",
        "dtype": "float32",
        "shape": [-1, 3, 2],
    }


def test_category_columns_record_their_categories() -> None:
    columns = infer_signature(acs_sample()[ACS_FEATURES].head())["inputs"]["columns"]
    by_name = {c["name"]: c for c in columns}
    assert "categories" not in by_name["AGEP"]
    for name in ACS_FEATURES[1:]:
        assert by_name[name]["dtype"] == "category"
        assert by_name[name]["categories"] == acs_sample()[name].cat.categories.tolist()
    assert by_name["SEX"]["categories"] == ["1", "2"]
    assert "ordered" not in by_name["SEX"]


def test_ordered_categories_are_recorded_as_ordered() -> None:
    size = pd.Categorical(["S", "L"], categories=["S", "M", "L"], ordered=True)
    (column,) = infer_signature(pd.DataFrame({"size": size}))["inputs"]["columns"]
    assert column == {
        "name": "size",
        "dtype": "category",
        "categories": ["S", "M", "L"],
        "ordered": True,
    }


def test_categories_that_are_not_plain_labels_are_not_recorded() -> None:
    days = pd.Categorical(pd.to_datetime(["2024-01-01", "2024-01-02"]))
    (column,) = infer_signature(pd.DataFrame({"day": days}))["inputs"]["columns"]
    assert column == {"name": "day", "dtype": "category"}


# -- checking frames ----------------------------------------------------------------------------


def test_no_signature_passes_input_through() -> None:
    frame = pd.DataFrame({"a": [1]})
    assert check_input(None, frame) is frame


def test_missing_column_is_named(signature: dict[str, Any]) -> None:
    with pytest.raises(SignatureMismatchError, match=r"missing column\(s\) \['city'\]") as info:
        check_input(signature, pd.DataFrame({"age": [1.0], "children": [1]}))
    assert info.value.details["missing"] == ["city"]


def test_wrong_type_is_named_with_expected_and_received(signature: dict[str, Any]) -> None:
    frame = pd.DataFrame({"age": ["thirty"], "children": [1], "city": ["Boston"]})
    with pytest.raises(SignatureMismatchError, match="'age': expected float64") as info:
        check_input(signature, frame)
    assert set(info.value.details["columns"]) == {"age"}


def test_extra_columns_are_dropped_and_the_rest_reordered(signature: dict[str, Any]) -> None:
    frame = pd.DataFrame({"city": ["Boston"], "extra": [1], "children": [1], "age": [3.0]})
    checked = cast(pd.DataFrame, check_input(signature, frame))
    assert list(checked.columns) == ["age", "children", "city"]


def test_ints_are_accepted_for_floats(signature: dict[str, Any]) -> None:
    checked = check_input(signature, pd.DataFrame({"age": [30], "children": [1], "city": ["B"]}))
    assert checked["age"].tolist() == [30]


def test_integral_floats_are_accepted_for_ints(signature: dict[str, Any]) -> None:
    check_input(signature, pd.DataFrame({"age": [3.0], "children": [2.0], "city": ["B"]}))


@pytest.mark.parametrize("children", [1.5, np.nan, np.inf])
def test_non_integral_floats_are_refused_for_ints(
    signature: dict[str, Any], children: float
) -> None:
    frame = pd.DataFrame({"age": [3.0], "children": [children], "city": ["B"]})
    with pytest.raises(SignatureMismatchError, match="'children': expected int64"):
        check_input(signature, frame)


def test_records_and_column_dicts_become_frames(signature: dict[str, Any]) -> None:
    records = [
        {"age": 30.0, "children": 1, "city": "Boston"},
        {"city": "Lowell", "age": 2, "children": 0},
    ]
    columns = {"age": [30.0, 2.0], "children": [1, 0], "city": ["Boston", "Lowell"]}
    for data in (records, columns):
        checked = check_input(signature, data)
        assert isinstance(checked, pd.DataFrame)
        assert checked["city"].tolist() == ["Boston", "Lowell"]


def test_array_for_a_frame_signature_needs_one_column_per_input() -> None:
    signature = infer_signature(pd.DataFrame({"age": [30.0], "children": [1]}))
    checked = cast(pd.DataFrame, check_input(signature, np.array([[30.0, 1.0], [41.0, 2.0]])))
    assert list(checked.columns) == ["age", "children"]
    with pytest.raises(SignatureMismatchError, match="2 columns"):
        check_input(signature, np.zeros((2, 3)))


# -- checking arrays ----------------------------------------------------------------------------


def test_array_shape_is_checked_except_the_batch_dimension() -> None:
    signature = infer_signature(np.zeros((5, 3)))
    assert check_input(signature, np.ones((7, 3))).shape == (7, 3)
    assert check_input(signature, [[1, 2, 3]]).shape == (1, 3)
    with pytest.raises(SignatureMismatchError, match=r"shape \['n', 3\], got \[2, 4\]"):
        check_input(signature, np.ones((2, 4)))
    with pytest.raises(SignatureMismatchError, match=r"got \[3\]"):
        check_input(signature, np.ones(3))


def test_array_dtype_is_checked() -> None:
    signature = infer_signature(np.zeros((5, 2)))
    with pytest.raises(SignatureMismatchError, match="Expected an array of float64"):
        check_input(signature, np.array([["a", "b"]]))


# -- categories ---------------------------------------------------------------------------------


@pytest.fixture
def acs_signature() -> dict[str, Any]:
    return infer_signature(acs_sample()[ACS_FEATURES].head())


def test_strings_from_json_become_the_recorded_categories(acs_signature: dict[str, Any]) -> None:
    original = acs_sample()[ACS_FEATURES].head(50)
    records = original.to_dict(orient="records")
    checked = cast(pd.DataFrame, check_input(acs_signature, records))
    for name in ACS_FEATURES[1:]:
        assert checked[name].dtype == original[name].dtype
        assert checked[name].cat.categories.tolist() == original[name].cat.categories.tolist()
        np.testing.assert_array_equal(checked[name].cat.codes, original[name].cat.codes)


def test_numbers_become_the_string_categories_they_stand_for(acs_signature: dict[str, Any]) -> None:
    record = acs_sample()[ACS_FEATURES].head(1).to_dict(orient="records")[0]
    checked = check_input(acs_signature, [{**record, "SEX": 2, "MAR": 5.0}])
    assert checked["SEX"].tolist() == ["2"]
    assert checked["MAR"].tolist() == ["5"]


def test_categories_in_another_order_are_recoded(acs_signature: dict[str, Any]) -> None:
    original = acs_sample()[ACS_FEATURES].head(50)
    shuffled = original.assign(
        SCHL=original["SCHL"].cat.reorder_categories(original["SCHL"].cat.categories[::-1])
    )
    checked = cast(pd.DataFrame, check_input(acs_signature, shuffled))
    assert checked["SCHL"].cat.categories.tolist() == original["SCHL"].cat.categories.tolist()
    np.testing.assert_array_equal(checked["SCHL"].cat.codes, original["SCHL"].cat.codes)


def test_matching_category_columns_are_left_alone(acs_signature: dict[str, Any]) -> None:
    original = acs_sample()[ACS_FEATURES].head(50)
    checked = cast(pd.DataFrame, check_input(acs_signature, original))
    pd.testing.assert_frame_equal(checked, original)


def test_missing_values_stay_missing(acs_signature: dict[str, Any]) -> None:
    records = acs_sample()[ACS_FEATURES].head(3).to_dict(orient="records")
    records[0]["SEX"] = None
    records[1]["SEX"] = float("nan")
    checked = cast(pd.DataFrame, check_input(acs_signature, records))
    assert checked["SEX"].isna().tolist() == [True, True, False]
    assert checked["SEX"].dtype == acs_sample()["SEX"].dtype


def test_unknown_categories_are_refused_naming_column_and_values(
    acs_signature: dict[str, Any],
) -> None:
    records = acs_sample()[ACS_FEATURES].head(8).to_dict(orient="records")
    for i, record in enumerate(records):
        record["SCHL"] = f"grade-{i}"
    with pytest.raises(SignatureMismatchError, match=r"Column 'SCHL'") as info:
        check_input(acs_signature, records)
    message = info.value.message
    assert "'grade-0'" in message and "'grade-4'" in message and "'grade-5'" not in message
    assert "…" in message
    assert info.value.details["column"] == "SCHL"
    assert info.value.details["unknown"] == [f"grade-{i}" for i in range(8)]


def test_numeric_categories_accept_numbers() -> None:
    signature = infer_signature(pd.DataFrame({"level": pd.Categorical([1, 2, 3])}))
    checked = check_input(signature, [{"level": 3}, {"level": 1.0}])
    assert checked["level"].tolist() == [3, 1]
    with pytest.raises(SignatureMismatchError, match=r"'level'.*7"):
        check_input(signature, [{"level": 7}])


def test_ordered_categories_stay_ordered() -> None:
    size = pd.Categorical(["S", "L"], categories=["S", "M", "L"], ordered=True)
    signature = infer_signature(pd.DataFrame({"size": size}))
    checked = cast(pd.DataFrame, check_input(signature, {"size": ["L", "M"]}))
    assert checked["size"].cat.ordered
    assert (checked["size"] > "S").all()


def test_signature_without_categories_keeps_the_old_check() -> None:
    signature = {"inputs": {"type": "dataframe", "columns": [{"name": "c", "dtype": "category"}]}}
    assert check_input(signature, {"c": ["anything"]})["c"].tolist() == ["anything"]
    with pytest.raises(SignatureMismatchError):
        check_input(signature, {"c": [1.5]})
