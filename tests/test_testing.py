"""pfa.testing: the frame assertions catch each kind of difference; drawn frames keep the
contract and survive a parquet round trip."""

import re

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis.testing import assert_frames_identical, assert_rdm_frame, rdm_frames

CONTRACT_COLUMNS = [
    "df_name", "model", "layer", "layer_num", "layer_label", "dissim_metric", "activation_type",
    "matrix", "entry_keys", "entry_labels", "kernel_set_name", "kernel_inds", "perm",
    "perm_scramble", "dissim_rankings",
]


def rdm_frame():
    """Two first-order RDMs of three colours, written out by hand."""
    keys = (("000",), ("090",), ("180",))
    labels = tuple({"color": key[0]} for key in keys)
    first = np.array([[0.0, 1.0, 4.0], [1.0, 0.0, 2.0], [4.0, 2.0, 0.0]])
    second = np.array([[0.0, np.nan, 0.5], [np.nan, 0.0, 0.25], [0.5, 0.25, 0.0]])
    rows = [
        ["rdms", "alexnet", "conv1", 1, ("conv1", 1), "corr", "unit_level", first, keys, labels,
         "all", (0, 1, 2), "orig_data", [0, 1, 2], (0, 2, 1), "obj001"],
        ["rdms", "alexnet", "fc3", 21, ("fc3", 21), "corr", "unit_level", second, keys, labels,
         "all", (0, 1, 2), 1, [2, 0, 1], (0, 2), "obj001"],
    ]
    return pd.DataFrame(rows, columns=[*CONTRACT_COLUMNS, "obj"])


def changed(frame, column, row, value):
    out = frame.copy()
    out[column] = out[column].astype(object)
    out.at[row, column] = value
    return out


def test_a_frame_and_its_copy_are_identical_nan_included():
    frame = rdm_frame()
    assert_frames_identical(frame, frame.copy(deep=True))
    assert_frames_identical(frame, frame.assign(matrix=[m.copy() for m in frame["matrix"]]))


# Each case changes one cell of one column type; the message must name the column, the
# row, and both values with their types (inside a nested value: where).
FLIPS = [
    ("model", 0, "vgg16", "'alexnet' (str)", "'vgg16' (str)"),
    ("layer_num", 1, 22, "21 (int)", "22 (int)"),
    ("layer_label", 0, ["conv1", 1], "('conv1', 1) (tuple)", "['conv1', 1] (list)"),
    ("layer_label", 1, ("fc3", 22), "21 (int)", "22 (int)"),
    ("perm", 0, 0, "'orig_data' (str)", "0 (int)"),
    ("perm", 1, "1", "1 (int)", "'1' (str)"),
    ("perm", 1, True, "1 (int)", "True (bool)"),
    ("perm_scramble", 1, (2, 0, 1), "[2, 0, 1] (list)", "(2, 0, 1) (tuple)"),
    ("kernel_inds", 0, (0, 1, 3), "2 (int)", "3 (int)"),
    ("dissim_rankings", 1, (0, 2, 1), "(0, 2) (tuple)", "(0, 2, 1) (tuple)"),
    ("entry_keys", 0, (("000",), ("091",), ("180",)), "'090' (str)", "'091' (str)"),
    ("entry_labels", 1, ({"color": "000"}, {"color": "090"}, {"colour": "180"}),
     "{'color': '180'} (dict)", "{'colour': '180'} (dict)"),
    ("entry_labels", 0, ({"color": "000"}, {"color": "099"}, {"color": "180"}),
     "'090' (str)", "'099' (str)"),
    ("obj", 1, None, "'obj001' (str)", "None (NoneType)"),
]


@pytest.mark.parametrize("column, row, value, left, right", FLIPS)
def test_one_flipped_value_of_each_type_is_named(column, row, value, left, right):
    frame = rdm_frame().astype({column: object})
    message = (rf"^Frames differ in column '{column}', row {row} \(index label {row}\).*: "
               rf"left has {re.escape(left)}, right has {re.escape(right)}\.$")
    with pytest.raises(AssertionError, match=message):
        assert_frames_identical(frame, changed(frame, column, row, value))


def test_nested_differences_say_where():
    frame = rdm_frame()
    keys = changed(frame, "entry_keys", 0, (("000",), ("091",), ("180",)))
    with pytest.raises(AssertionError, match=r"row 0 \(index label 0\), at \[1\]\[0\]: "):
        assert_frames_identical(frame, keys)
    labels = changed(frame, "entry_labels", 0, ({"color": "000"}, {"color": "099"},
                                                 {"color": "180"}))
    with pytest.raises(AssertionError, match=r"at \[1\]\['color'\]: left has '090'"):
        assert_frames_identical(frame, labels)


def test_matrices_are_compared_as_float64_with_nan_equal_to_nan():
    frame = rdm_frame()
    flipped = frame["matrix"][0].copy()
    flipped[2, 1] = 2.5
    with pytest.raises(AssertionError, match=r"column 'matrix', row 0 .*left has an array of "
                       r"shape \(3, 3\) and dtype float64: .*2\.0.*right has .*2\.5"):
        assert_frames_identical(frame, changed(frame, "matrix", 0, flipped))
    # NaN where the other has a number, and a matrix of another shape
    filled = np.nan_to_num(frame["matrix"][1])
    with pytest.raises(AssertionError, match=r"column 'matrix', row 1 "):
        assert_frames_identical(frame, changed(frame, "matrix", 1, filled))
    with pytest.raises(AssertionError, match=r"shape \(3, 3\).*shape \(2, 2\)"):
        assert_frames_identical(frame, changed(frame, "matrix", 0, np.zeros((2, 2))))
    # equal values are equal matrices, whatever float type holds them
    as_float32 = frame["matrix"][0].astype(np.float32)
    assert_frames_identical(frame, changed(frame, "matrix", 0, as_float32))


def test_atol_allows_small_float_differences():
    frame = rdm_frame().assign(score=[0.5, np.nan])
    nudged = frame.assign(score=[0.5 + 1e-9, np.nan],
                          matrix=[m + 1e-9 for m in frame["matrix"]])
    with pytest.raises(AssertionError, match=r"column 'matrix', row 0"):
        assert_frames_identical(frame, nudged)
    with pytest.raises(AssertionError, match=r"column 'score', row 0 .*0\.5 \(float\)"):
        assert_frames_identical(frame, nudged.assign(matrix=frame["matrix"]))
    assert_frames_identical(frame, nudged, atol=1e-8)


def test_structure_differences_are_named():
    frame = rdm_frame()
    with pytest.raises(AssertionError, match=r"only left has \['obj'\], only right has \[\]"):
        assert_frames_identical(frame, frame.drop(columns="obj"))
    with pytest.raises(AssertionError, match=r"only left has \[\], only right has \['x'\]"):
        assert_frames_identical(frame, frame.assign(x=1))
    reordered = frame[[*reversed(frame.columns)]]
    with pytest.raises(AssertionError, match="order of their columns.*check_column_order=False"):
        assert_frames_identical(frame, reordered)
    assert_frames_identical(frame, reordered, check_column_order=False)
    with pytest.raises(AssertionError, match="left has 2 rows, right 1"):
        assert_frames_identical(frame, frame.iloc[:1])
    with pytest.raises(AssertionError, match=r"index: left \[0, 1\], right \[5, 6\]"):
        assert_frames_identical(frame, frame.set_axis([5, 6]))
    with pytest.raises(AssertionError, match="dtype of column 'layer_num': left int64, right object"):
        assert_frames_identical(frame, frame.astype({"layer_num": object}))


def test_numpy_scalars_count_as_the_number_they_hold():
    left = pd.DataFrame({"perm": pd.Series(["orig_data", 3], dtype=object)})
    right = pd.DataFrame({"perm": pd.Series(["orig_data", np.int64(3)], dtype=object)})
    assert_frames_identical(left, right)


def test_bad_arguments_are_invalid_input():
    frame = rdm_frame()
    with pytest.raises(InvalidInputError, match="'right' parameter of assert_frames_identical "
                       "must be a pandas DataFrame; got dict"):
        assert_frames_identical(frame, {})
    with pytest.raises(InvalidInputError, match="'atol' parameter .* a finite number >= 0; got -1"):
        assert_frames_identical(frame, frame, atol=-1)
    with pytest.raises(InvalidInputError, match="'check_column_order' parameter"):
        assert_frames_identical(frame, frame, check_column_order="no")
    with pytest.raises(InvalidInputError, match="'frame' parameter of assert_rdm_frame"):
        assert_rdm_frame([1])
    with pytest.raises(InvalidInputError, match="'max_entries' parameter of rdm_frames"):
        rdm_frames(max_entries=1)
    with pytest.raises(InvalidInputError, match="'max_rows' parameter of rdm_frames must be an "
                       "int >= 3"):
        rdm_frames(min_rows=3, max_rows=2)


# ---------------------------------------------------------------------------
# assert_rdm_frame
# ---------------------------------------------------------------------------


def test_a_frame_keeping_the_contract_passes():
    assert_rdm_frame(rdm_frame(), first_order=True)
    # a meta-style frame needs only the columns every level has
    assert_rdm_frame(rdm_frame()[["matrix", "entry_keys", "entry_labels"]])


BREAKS = [
    ("matrix", 0, np.array([[0, 1, 4], [1, 0, 2], [4, 2, 0]]), "matrix must be a float64 numpy array; got int64"),
    ("matrix", 0, [[0.0, 1.0], [1.0, 0.0]], "matrix must be a float64 numpy array; got list"),
    ("matrix", 0, np.zeros((3, 2)), r"matrix must be square; got shape \(3, 2\)"),
    ("matrix", 1, np.array([[0.0, 1.0, 0.5], [1.0, 0.0, 0.25], [0.5, 0.3, 0.0]]),
     r"matrix must be symmetric; got matrix\[1, 2\] = 0.25 but matrix\[2, 1\] = 0.3"),
    ("matrix", 1, np.array([[0.0, np.nan, 0.5], [1.0, 0.0, 0.25], [0.5, 0.25, 0.0]]),
     r"matrix must be symmetric; got matrix\[0, 1\] = nan but matrix\[1, 0\] = 1"),
    ("matrix", 0, np.array([[0.0, 1.0, 4.0], [1.0, 0.1, 2.0], [4.0, 2.0, 0.0]]),
     r"matrix must be 0 or NaN on the diagonal; got 0.1 at \[1, 1\]"),
    ("entry_keys", 0, (("000",), ("090",)), r"entry_keys must be a tuple of 3 different tuples"),
    ("entry_keys", 0, (("000",), ("000",), ("180",)), "entry_keys must be a tuple of 3 different"),
    ("entry_keys", 0, ["000", "090", "180"], "entry_keys must be a tuple of 3"),
    ("entry_labels", 1, [{"color": "000"}] * 3, r"entry_labels must be a tuple of 3 dicts"),
    ("dissim_rankings", 0, (0, 2), r"dissim_rankings must be a tuple of distinct entry positions "
     r"\(0 to 2\).*; got \(0, 2\)"),
    ("dissim_rankings", 1, (0, 0, 1), r"dissim_rankings .*; got \(0, 0, 1\)"),
    ("dissim_rankings", 1, (0, 3), r"dissim_rankings .*; got \(0, 3\)"),
    ("perm", 1, 1.0, r"perm must be 'orig_data' or an int; got 1.0"),
    ("perm", 1, True, r"perm must be 'orig_data' or an int; got True"),
    ("perm_scramble", 0, [1, 0, 2], r"perm_scramble must be a list permuting range\(3\) \(the "
     r"identity for 'orig_data'\); got \[1, 0, 2\]"),
    ("perm_scramble", 1, [0, 1], r"perm_scramble must be .*; got \[0, 1\]"),
    ("perm_scramble", 1, (2, 0, 1), r"perm_scramble must be .*; got \(2, 0, 1\)"),
    ("kernel_inds", 0, [0, 1, 2], r"kernel_inds must be a tuple of ints; got \[0, 1, 2\]"),
    ("layer_label", 1, ("fc3", 20), r"layer_label must be the tuple \(layer, layer_num\); got "
     r"\('fc3', 20\)"),
    ("layer_num", 0, "1", "layer_num must be an int; got '1'"),
    ("model", 0, 3, "model must be a str; got 3"),
]


@pytest.mark.parametrize("column, row, value, message", BREAKS)
def test_each_break_of_the_contract_is_named(column, row, value, message):
    broken = changed(rdm_frame(), column, row, value)
    with pytest.raises(AssertionError, match=rf"Row {row} \(index label {row}\) breaks the "
                       rf"RDM-frame contract: its {message}"):
        assert_rdm_frame(broken)


def test_missing_columns_are_named():
    with pytest.raises(AssertionError, match=r"lacks the RDM-frame column\(s\) \['entry_labels'\]"):
        assert_rdm_frame(rdm_frame().drop(columns="entry_labels"))
    with pytest.raises(AssertionError, match=r"column\(s\) \['perm', 'perm_scramble'\]"):
        assert_rdm_frame(rdm_frame().drop(columns=["perm", "perm_scramble"]), first_order=True)


def test_frames_from_get_rdms_and_get_meta_rdms_keep_the_contract():
    model = pfa.prepare_model("alexnet", "random", random_state=0)
    stimuli = pfa.make_synthetic_stimuli(num_objects=2, colors=(0, 90, 180), size=32)
    frame = pfa.get_rdms(
        pfa.package_image_sets(stimuli, ["color"], ["obj"]), {"alexnet": model}, None,
        which_layers={"alexnet": ["conv1"]}, dissim_metrics=["corr"], verbose=False,
    )
    assert_rdm_frame(frame, first_order=True)
    meta = pfa.get_meta_rdms(frame, None, ["obj"], dissim_metrics=["corr"], verbose=False)
    assert_rdm_frame(meta)


# ---------------------------------------------------------------------------
# The strategy: drawn frames keep the contract and survive parquet
# ---------------------------------------------------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rdm_frames(min_rows=1, max_rows=4, max_entries=6))
def test_drawn_frames_keep_the_contract(frame):
    assert list(frame.columns) == [*CONTRACT_COLUMNS, "obj"]
    assert 1 <= len(frame) <= 4 and frame.index.equals(pd.RangeIndex(len(frame)))
    assert len({keys for keys in frame["entry_keys"]}) == 1
    assert 2 <= len(frame["entry_keys"][0]) <= 6
    assert_rdm_frame(frame, first_order=True)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rdm_frames(max_rows=3))
def test_drawn_frames_round_trip_through_parquet(tmp_path_factory, frame):
    path = tmp_path_factory.mktemp("round_trip") / "rdms.parquet"
    pfa.save_frame(frame, path)
    assert_frames_identical(pfa.load_frame(path), frame)
