"""Tests for the generic frame helpers, on the original library's documented examples."""

import statistics

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis.frames import (
    df_agg,
    df_filter,
    df_filtsort,
    df_inds2cols,
    df_pivot,
    df_subset,
)


def people():
    """The frame of the original df_agg example."""
    return pd.DataFrame.from_dict(
        {
            "city": ["New York"] * 4 + ["Boston"] * 4,
            "gender": ["Male", "Male", "Female", "Female"] * 2,
            "height": [70, 72, 66, 65, 69, 73, 64, 63],
            "income": [50000, 100000, 80000, 150000, 120000, 90000, 70000, 110000],
        }
    )


def people_three_cities():
    """The frame of the original df_subset example."""
    return pd.DataFrame.from_dict(
        {
            "city": ["New York", "New York", "Seattle", "Seattle", "Seattle",
                     "Boston", "Boston", "Boston"],
            "gender": ["Male", "Male", "Female", "Female", "Male", "Male", "Female", "Female"],
            "height": [70, 72, 66, 65, 69, 73, 64, 63],
            "income": [50000, 100000, 80000, 150000, 120000, 90000, 70000, 110000],
        }
    )  # fmt: skip


def people_nine():
    """The frame of the original df_filtsort and df_pivot examples."""
    return pd.DataFrame.from_dict(
        {
            "city": ["New York"] * 3 + ["Seattle"] * 3 + ["Boston"] * 3,
            "gender": ["Male", "Male", "Female", "Female", "Female", "Male", "Male",
                       "Female", "Female"],
            "height": [70, 72, 65, 66, 65, 69, 73, 64, 63],
            "income": [50000, 100000, 120000, 80000, 150000, 120000, 90000, 70000, 110000],
        }
    )  # fmt: skip


def rdm_rows():
    return pd.DataFrame(
        {
            "layer_label": [("conv1", 1), ("relu1", 2), ("conv1", 1), ("fc3", 45)],
            "perm": ["orig_data", 1, 2, "orig_data"],
            "entry_labels": [({"color": "000"},), ({"color": "000"},), ({"color": "090"},),
                             ({"color": "000"},)],
            "matrix": [np.eye(2), np.zeros((2, 2)), np.eye(2), np.ones((3, 3))],
            "obj": ["obj001", "obj001", "obj002", "obj002"],
        }
    )  # fmt: skip


# --------------------------------------------------------------------------
# df_subset / df_filter
# --------------------------------------------------------------------------


def test_df_subset_reproduces_the_original_example():
    df = people_three_cities()
    before = df.copy()
    result = df_subset(df, [("city", ["New York", "Seattle"]), ("gender", "Male")])
    expected = pd.DataFrame(
        {
            "city": ["New York", "New York", "Seattle"],
            "gender": ["Male", "Male", "Male"],
            "height": [70, 72, 69],
            "income": [50000, 100000, 120000],
        },
        index=[0, 1, 4],
    )
    pd.testing.assert_frame_equal(result, expected)
    pd.testing.assert_frame_equal(df, before)
    assert df_filter is df_subset


def test_a_tuple_is_one_value_and_a_list_is_several():
    df = rdm_rows()
    assert df_subset(df, [("layer_label", ("conv1", 1))]).index.tolist() == [0, 2]
    both = df_subset(df, [("layer_label", [("conv1", 1), ("fc3", 45)])])
    assert both.index.tolist() == [0, 2, 3]
    # a list value that is a layer name and a number matches neither tuple
    assert df_subset(df, [("layer_label", ["conv1", 1])]).empty


def test_subset_on_mixed_dict_and_array_columns():
    df = rdm_rows()
    assert df_subset(df, [("perm", "orig_data")]).index.tolist() == [0, 3]
    assert df_subset(df, [("perm", [1, 2])]).index.tolist() == [1, 2]
    assert df_subset(df, [("entry_labels", ({"color": "000"},))]).index.tolist() == [0, 1, 3]
    assert df_subset(df, [("matrix", np.eye(2))]).index.tolist() == [0, 2]
    single_pair = df_subset(df, ("obj", "obj002"))
    assert single_pair.index.tolist() == [2, 3]
    # values of another type never match and never raise
    assert df_subset(df, [("obj", 5), ("perm", "orig_data")]).empty


def test_unique_values_and_numpy_scalars_select_rows():
    df = rdm_rows()
    # .unique() gives an array (or a pandas array for text): several values, like a list
    layers = df["layer_label"].map(lambda label: label[1])
    df = df.assign(layer_num=layers, obj_text=df["obj"].astype("str"))
    expected = [i for i, n in enumerate(layers) if n in (1, 45)]
    assert df_subset(df, [("layer_num", np.array([1, 45]))]).index.tolist() == expected
    assert df_subset(df, [("layer_num", pd.Index([1, 45]))]).index.tolist() == expected
    assert df_subset(df, [("obj_text", df["obj_text"].unique())]).index.tolist() == [0, 1, 2, 3]
    # numpy scalars, 0-d arrays included, are one value
    assert df_subset(df, [("layer_num", np.int64(1))]).index.tolist() == [0, 2]
    assert df_subset(df, [("layer_num", np.array(1))]).index.tolist() == [0, 2]


def test_subset_returns_a_new_frame():
    df = rdm_rows()
    result = df_subset(df, [("obj", "obj001")])
    result.loc[0, "obj"] = "changed"
    assert df.loc[0, "obj"] == "obj001"


def test_subset_missing_column_is_named_with_the_available_ones():
    with pytest.raises(InvalidInputError,
                       match=r"'df' parameter of df_subset .*column\(s\) \['colour'\]") as error:
        df_subset(people(), [("colour", "red"), ("city", "Boston")])
    assert "['city', 'gender', 'height', 'income']" in str(error.value)
    assert df_filter(people(), [("city", "Boston")]).index.tolist() == [4, 5, 6, 7]


def test_subset_list_must_hold_pairs():
    with pytest.raises(InvalidInputError, match="list of \\(column, value\\) pairs; got"):
        df_subset(people(), ["city"])
    with pytest.raises(InvalidInputError, match="pandas DataFrame; got dict"):
        df_subset({"city": []}, [("city", "Boston")])


# --------------------------------------------------------------------------
# df_filtsort
# --------------------------------------------------------------------------


def test_df_filtsort_reproduces_the_original_example():
    df = people_nine()
    before = df.copy()
    result = df_filtsort(df, [("city", ["Seattle", "New York"]), ("gender", ["Female", "Male"])])
    expected = pd.DataFrame(
        {
            "city": ["Seattle", "Seattle", "Seattle", "New York", "New York", "New York"],
            "gender": ["Female", "Female", "Male", "Female", "Male", "Male"],
            "height": [66, 65, 69, 65, 70, 72],
            "income": [80000, 150000, 120000, 120000, 50000, 100000],
        },
        index=[3, 4, 5, 2, 0, 1],
    )
    pd.testing.assert_frame_equal(result, expected)
    pd.testing.assert_frame_equal(df, before)


def test_filtsort_single_pair_and_tuple_values():
    df = people_nine()
    result = df_filtsort(df, ("gender", ["Male"]))
    assert result.index.tolist() == [0, 1, 5, 6]
    rdms = rdm_rows()
    ordered = df_filtsort(rdms, [("layer_label", [("fc3", 45), ("conv1", 1)])])
    assert ordered.index.tolist() == [3, 0, 2]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.sampled_from("abc")), max_size=12),
    st.lists(st.integers(0, 5), max_size=6),
    st.lists(st.sampled_from("abcd"), max_size=4),
)
def test_filtsort_matches_a_stable_sort_by_listed_position(rows, numbers, letters):
    df = pd.DataFrame(rows, columns=["number", "letter"])
    result = df_filtsort(df, [("number", numbers), ("letter", letters)])
    kept = [
        (numbers.index(n), letters.index(c), i)
        for i, (n, c) in enumerate(rows)
        if n in numbers and c in letters
    ]
    assert result.index.tolist() == [i for *_, i in sorted(kept)]


def test_filtsort_errors_name_the_problem():
    with pytest.raises(InvalidInputError, match=r"'df' parameter of df_filtsort .*\['town'\]"):
        df_filtsort(people(), [("town", ["Boston"])])
    with pytest.raises(InvalidInputError, match="list of values; got 'Boston' for column 'city'"):
        df_filtsort(people(), [("city", "Boston")])


# --------------------------------------------------------------------------
# df_agg
# --------------------------------------------------------------------------


def test_df_agg_reproduces_the_original_example():
    df = people()
    before = df.copy()
    result = df_agg(df, ["city", "gender"], ["height", "income"], [np.mean, np.std])
    assert list(result.columns) == [
        "city", "gender", "height_mean", "height_std", "income_mean", "income_std",
    ]  # fmt: skip
    assert result["city"].tolist() == ["Boston", "Boston", "New York", "New York"]
    assert result["gender"].tolist() == ["Female", "Male", "Female", "Male"]
    # the printed output of the original docstring
    np.testing.assert_allclose(result["height_mean"], [63.5, 71.0, 65.5, 71.0])
    np.testing.assert_allclose(result["height_std"], [0.707107, 2.828427, 0.707107, 1.414214],
                               rtol=1e-6)
    np.testing.assert_allclose(result["income_mean"], [90000, 105000, 115000, 75000])
    np.testing.assert_allclose(
        result["income_std"], [28284.271247, 21213.203436, 49497.474683, 35355.339059], rtol=1e-9
    )
    # and the sample standard deviation computed independently
    for _, row in result.iterrows():
        group = df[(df.city == row.city) & (df.gender == row.gender)]
        assert row.income_std == pytest.approx(statistics.stdev(group.income))
    assert result.index.equals(pd.RangeIndex(4))
    pd.testing.assert_frame_equal(df, before)


def test_df_agg_rem_options_and_function_forms():
    df = people()
    explicit = df_agg(df, ["city", "gender"], ["height", "income"], ["mean", "max"])
    pd.testing.assert_frame_equal(df_agg(df, ["city", "gender"], "rem", ["mean", "max"]), explicit)
    pd.testing.assert_frame_equal(df_agg(df, "rem", ["height", "income"], ["mean", "max"]),
                                  explicit)
    assert explicit["height_max"].tolist() == [64, 73, 66, 72]

    single = df_agg(df, "city", ["height"], np.median)
    assert list(single.columns) == ["city", "height"]
    assert single["height"].tolist() == [66.5, 68.0]

    named = df_agg(df, ["city"], ["height"], [lambda x: x.max() - x.min()])
    assert list(named.columns) == ["city", "height_<lambda>"]
    assert named["height_<lambda>"].tolist() == [10, 7]


def test_df_agg_errors():
    with pytest.raises(InvalidInputError, match=r"'df' parameter of df_agg.*\['weight'\]"):
        df_agg(people(), ["city"], ["weight"], [np.mean])
    with pytest.raises(InvalidInputError, match=r"'df' parameter of df_agg.*\['town'\]"):
        df_agg(people(), ["town"], "rem", [np.mean])
    with pytest.raises(InvalidInputError, match="must not both be 'rem'"):
        df_agg(people(), "rem", "rem", [np.mean])


# --------------------------------------------------------------------------
# df_pivot
# --------------------------------------------------------------------------


def test_df_pivot_reproduces_the_original_example():
    df = people_nine()
    before = df.copy()
    result = df_pivot(df, ["city"], ["gender"], ["height", "income"])
    expected = pd.DataFrame(
        {
            "city": ["Boston", "New York", "Seattle"],
            "Female_height": [63.5, 65.0, 65.5],
            "Male_height": [73.0, 71.0, 69.0],
            "Female_income": [90000.0, 120000.0, 115000.0],
            "Male_income": [90000.0, 75000.0, 120000.0],
        }
    )
    pd.testing.assert_frame_equal(result, expected)
    pd.testing.assert_frame_equal(df, before)


def test_df_pivot_single_value_several_vars_and_aggfunc():
    df = people_nine()
    single = df_pivot(df, "city", "gender", "height")
    assert list(single.columns) == ["city", "Female", "Male"]
    assert single["Male"].tolist() == [73.0, 71.0, 69.0]

    df["age"] = ["old", "young"] * 4 + ["old"]
    wide = df_pivot(df, ["city"], ["gender", "age"], ["height"], aggfunc=np.max)
    expected_max = df.groupby(["city", "gender", "age"])["height"].max()
    assert wide.loc[wide.city == "Seattle", "Female_old"].item() == expected_max[
        ("Seattle", "Female", "old")
    ]
    assert "Male_young" in wide.columns and "Female_height" not in wide.columns


def test_df_pivot_missing_columns():
    with pytest.raises(InvalidInputError, match=r"'df' parameter of df_pivot.*\['weight'\]"):
        df_pivot(people(), ["city"], ["gender"], ["weight"])


def test_df_inds2cols_refuses_what_is_no_frame():
    with pytest.raises(InvalidInputError, match="'df' parameter of df_inds2cols must be a pandas "
                       "DataFrame or Series; got list instead"):
        df_inds2cols([1, 2])


# --------------------------------------------------------------------------
# df_inds2cols
# --------------------------------------------------------------------------


def test_df_inds2cols_moves_every_index_level_to_leading_columns():
    grouped = people().groupby(["city", "gender"])[["height", "income"]].mean()
    before = grouped.copy()
    result = df_inds2cols(grouped)
    assert list(result.columns) == ["city", "gender", "height", "income"]
    assert result.index.equals(pd.RangeIndex(4))
    assert result["city"].tolist() == ["Boston", "Boston", "New York", "New York"]
    assert result["height"].tolist() == [63.5, 71.0, 65.5, 71.0]
    pd.testing.assert_frame_equal(grouped, before)

    series = people().groupby("city")["height"].max()
    assert df_inds2cols(series).to_dict("list") == {"city": ["Boston", "New York"],
                                                    "height": [73, 72]}
    plain = df_inds2cols(pd.DataFrame({"a": [1, 2]}, index=[5, 6]))
    assert plain.to_dict("list") == {"index": [5, 6], "a": [1, 2]}
