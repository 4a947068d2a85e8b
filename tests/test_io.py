"""Tests for reading and writing frames (parquet, pickle, csv) and combining files."""

import json
import math
import multiprocessing
import os
import signal
import subprocess
import sys
import tempfile
import time
import zlib
from collections import OrderedDict
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis import io as pfa_io
from pytorch_feature_analysis._arrow_codec import CHECKSUM_KEY, FORMAT_VERSION
from pytorch_feature_analysis.io import (
    METADATA_KEY,
    combine_csvs,
    combine_frames,
    file_lock,
    frame_format,
    load_frame,
    save_frame,
)

POSIX_ONLY = pytest.mark.skipif(os.name == "nt", reason="POSIX signals and process ids")

# --------------------------------------------------------------------------
# Exact comparison: types element by element, not just ==
# --------------------------------------------------------------------------


def assert_same_value(expected, actual, where="value"):
    assert type(actual) is type(expected), f"{where}: {type(actual)} != {type(expected)}"
    if isinstance(expected, np.ndarray):
        assert actual.dtype == expected.dtype, f"{where}: dtype {actual.dtype}"
        assert actual.shape == expected.shape, f"{where}: shape {actual.shape}"
        if expected.dtype == object:
            for i, (e, a) in enumerate(zip(expected.ravel(), actual.ravel())):
                assert_same_value(e, a, f"{where}[{i}]")
        else:
            np.testing.assert_array_equal(actual, expected, err_msg=where)
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{where}: length"
        for i, (e, a) in enumerate(zip(expected, actual)):
            assert_same_value(e, a, f"{where}[{i}]")
    elif isinstance(expected, dict):
        assert list(actual) == list(expected), f"{where}: keys {list(actual)}"
        for key in expected:
            assert_same_value(expected[key], actual[key], f"{where}[{key!r}]")
    elif isinstance(expected, (float, np.floating)) and math.isnan(expected):
        assert math.isnan(actual), f"{where}: {actual!r} is not NaN"
    else:
        assert actual == expected, f"{where}: {actual!r} != {expected!r}"


def assert_frames_identical(expected, actual):
    expected = expected.reset_index(drop=True)
    assert isinstance(actual.index, pd.RangeIndex)
    assert list(actual.columns) == list(expected.columns)
    assert [type(c) for c in actual.columns] == [type(c) for c in expected.columns]
    for i, name in enumerate(expected.columns):
        e, a = expected.iloc[:, i], actual.iloc[:, i]
        assert a.dtype == e.dtype, f"column {name!r}: dtype {a.dtype} != {e.dtype}"
        if e.dtype == object:
            assert len(a) == len(e)
            for row, (ev, av) in enumerate(zip(e, a)):
                assert_same_value(ev, av, f"column {name!r} row {row}")
        else:
            pd.testing.assert_series_equal(a, e, check_names=False)


def object_series(values):
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return pd.Series(array, dtype=object)


def stored_description(path):
    metadata = pq.read_schema(path).metadata
    return {c["field"]: c for c in json.loads(metadata[METADATA_KEY])["columns"]}


def is_list_of(arrow_type, inner):
    return pa.types.is_list(arrow_type) and arrow_type.value_type == inner


# --------------------------------------------------------------------------
# A small first-order RDM frame and a meta frame built by hand
# --------------------------------------------------------------------------


def rdm_frame():
    matrix = np.array([[0.0, 0.4, np.nan], [0.4, 0.0, 1.2], [np.nan, 1.2, 0.0]])
    keys = (("000",), ("090",), ("180",))
    labels = ({"color": "000"}, {"color": "090"}, {"color": "180"})
    return pd.DataFrame(
        {
            "df_name": ["demo"] * 3,
            "model": ["alexnet"] * 3,
            "layer": ["conv1", "conv1", "original_rgb"],
            "layer_num": [1, 1, 0],
            "layer_label": [("conv1", 1), ("conv1", 1), ("original_rgb", 0)],
            "dissim_metric": ["corr", "corr", "euclidean_distance"],
            "activation_type": ["unit_level", "feature_means", "unit_level"],
            "matrix": [matrix, matrix * 2, matrix * 3],
            "entry_keys": [keys] * 3,
            "entry_labels": [labels] * 3,
            "kernel_set_name": ["all"] * 3,
            "kernel_inds": [(0, 1, 2), (0, 1, 2), (0, 1, 2, 3)],
            "perm": ["orig_data", 1, 2],
            "perm_scramble": [[0, 1, 2], [2, 0, 1], [1, 2, 0]],
            "dissim_rankings": [(0, 2, 1), (2, 1, 0), (1, 0, 2)],
            "obj": ["obj001", "obj001", "obj002"],
        }
    )


def meta_frame():
    frame = rdm_frame()
    frame["dissim_metric_sub"] = ["corr", "euclidean_distance", "corr"]
    frame["entry_keys_sub"] = [(("obj001", 1), ("obj002", 2))] * 3
    frame["entry_labels_sub"] = [({"obj": "obj001", "size": 1}, {"obj": "obj002", "size": 2})] * 3
    return frame


# --------------------------------------------------------------------------
# Property tests: random RDM-like frames and random nested values
# --------------------------------------------------------------------------

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)
SMALL_INT = st.integers(-(10**6), 10**6)
FLOAT = st.floats(allow_nan=True, allow_infinity=True)
PROPERTY = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@st.composite
def rdm_like_frames(draw):
    n_rows = draw(st.integers(0, 4))
    n_vars = draw(st.integers(1, 2))
    var_names = draw(st.lists(TEXT, min_size=n_vars, max_size=n_vars, unique=True))
    # per entry variable: its values are all str, all int, or a mix of both
    key_kinds = draw(st.lists(st.sampled_from(["str", "int", "mixed"]), min_size=n_vars,
                              max_size=n_vars))
    value_of = {"str": TEXT, "int": SMALL_INT, "mixed": st.one_of(TEXT, SMALL_INT)}
    extra_columns = draw(st.lists(st.sampled_from(["int", "float", "str", "bool", "mixed"]),
                                  max_size=3, unique=True))
    rows = []
    for _ in range(n_rows):
        n = draw(st.integers(1, 4))
        keys = tuple(
            tuple(draw(value_of[kind]) for kind in key_kinds) for _ in range(n)
        )
        upper = draw(st.lists(FLOAT, min_size=n * (n - 1) // 2, max_size=n * (n - 1) // 2))
        matrix = np.zeros((n, n))
        matrix[np.triu_indices(n, 1)] = upper
        matrix = matrix + matrix.T
        perm = draw(st.one_of(st.just("orig_data"), st.integers(1, 50)))
        scramble = draw(st.permutations(list(range(n))))
        row = {
            "df_name": draw(TEXT),
            "layer": draw(TEXT),
            "layer_num": draw(st.integers(0, 60)),
            "dissim_metric": draw(st.sampled_from(["corr", "euclidean_distance"])),
            "matrix": matrix,
            "entry_keys": keys,
            "entry_labels": tuple(dict(zip(var_names, key)) for key in keys),
            "kernel_inds": tuple(draw(st.lists(st.integers(0, 512), max_size=5))),
            "perm": perm,
            "perm_scramble": scramble,
            "dissim_rankings": tuple(draw(st.permutations(list(range(n))))),
            "entry_keys_sub": tuple((draw(TEXT),) for _ in range(draw(st.integers(0, 3)))),
            "dissim_metric_sub": draw(TEXT),
        }
        row["layer_label"] = (row["layer"], row["layer_num"])
        extras = {
            "int": SMALL_INT,
            "float": FLOAT,
            "str": TEXT,
            "bool": st.booleans(),
            "mixed": st.one_of(TEXT, SMALL_INT),
        }
        for kind in extra_columns:
            row[f"label_{kind}"] = draw(extras[kind])
        rows.append(row)
    columns = list(rows[0]) if rows else ["df_name", "matrix", "entry_keys", "perm"]
    frame = pd.DataFrame({c: object_series([r[c] for r in rows]) for c in columns})
    # plain columns get the dtype pandas would infer (int64, float64, str, bool)
    for c in columns:
        if c in ("df_name", "layer", "layer_num", "dissim_metric", "dissim_metric_sub") or (
            c.startswith("label_") and c != "label_mixed"
        ):
            frame[c] = pd.Series([r[c] for r in rows]) if rows else frame[c]
    return frame


def nested_values():
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        FLOAT,
        TEXT,
        st.integers(-(2**31), 2**31).map(np.int64),
        st.floats(width=32).map(np.float32),
        st.lists(FLOAT, max_size=6).map(lambda v: np.array(v, dtype=np.float64)),
        st.lists(st.integers(-5, 5), max_size=6).map(lambda v: np.array(v).reshape(-1, 1)),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=3),
            st.lists(inner, max_size=3).map(tuple),
            st.dictionaries(st.one_of(TEXT, SMALL_INT), inner, max_size=3),
        ),
        max_leaves=8,
    )


@PROPERTY
@given(rdm_like_frames())
def test_parquet_round_trip_of_rdm_like_frames_is_exact(frame):
    with tempfile.TemporaryDirectory() as folder:
        path = save_frame(frame, Path(folder) / "rdms.parquet")
        assert_frames_identical(frame, load_frame(path))


@PROPERTY
@given(st.lists(nested_values(), max_size=5))
def test_parquet_round_trip_of_arbitrary_nested_values_is_exact(values):
    frame = pd.DataFrame({"value": object_series(values), "row": np.arange(len(values))})
    with tempfile.TemporaryDirectory() as folder:
        path = save_frame(frame, Path(folder) / "values.parquet")
        assert_frames_identical(frame, load_frame(path))


@PROPERTY
@given(st.lists(nested_values(), max_size=3))
def test_pickle_round_trip_is_exact(values):
    frame = meta_frame().iloc[: len(values)].copy()
    frame["value"] = object_series(values)
    with tempfile.TemporaryDirectory() as folder:
        path = save_frame(frame, Path(folder) / "frame.pkl")
        assert_frames_identical(frame, load_frame(path, allow_pickle=True))


# --------------------------------------------------------------------------
# The stored file: natural Arrow types, readable without this library
# --------------------------------------------------------------------------


def test_rdm_frame_columns_get_natural_arrow_types(tmp_path):
    frame = meta_frame()
    path = save_frame(frame, tmp_path / "meta.parquet")
    schema = pq.read_table(path).schema
    matrix_type = schema.field("matrix").type
    assert pa.types.is_list(matrix_type) and is_list_of(matrix_type.value_type, pa.float64())
    keys_type = schema.field("entry_keys").type
    assert pa.types.is_list(keys_type) and is_list_of(keys_type.value_type, pa.string())
    assert schema.field("layer_label").type == pa.struct(
        [("field_0", pa.string()), ("field_1", pa.int64())]
    )
    assert is_list_of(schema.field("kernel_inds").type, pa.int64())
    assert is_list_of(schema.field("perm_scramble").type, pa.int64())
    assert is_list_of(schema.field("entry_labels").type, pa.struct([("color", pa.string())]))
    assert is_list_of(
        schema.field("entry_labels_sub").type,
        pa.struct([("obj", pa.string()), ("size", pa.int64())]),
    )
    assert is_list_of(
        schema.field("entry_keys_sub").type,
        pa.struct([("field_0", pa.string()), ("field_1", pa.int64())]),
    )
    assert schema.field("perm").type == pa.string()
    assert schema.field("layer_num").type == pa.int64()
    description = stored_description(path)
    assert description["perm"]["codec"] == "str_int"
    assert description["matrix"]["spec"] == {"kind": "array", "dtype": "float64", "ndim": 2}
    assert description["layer_label"]["spec"]["type"] == "tuple"
    assert description["perm_scramble"]["spec"]["type"] == "list"
    assert_frames_identical(frame, load_frame(path))


def test_duckdb_and_plain_pyarrow_read_the_file(tmp_path):
    frame = rdm_frame()
    path = save_frame(frame, tmp_path / "rdms.parquet")
    relation = duckdb.connect().sql(f"select * from '{path}'")
    types = dict(zip(relation.columns, map(str, relation.types)))
    assert types["matrix"] == "DOUBLE[][]"
    assert types["entry_keys"] == "VARCHAR[][]"
    assert types["layer_label"].startswith("STRUCT(field_0 VARCHAR, field_1 BIGINT)")
    assert types["perm"] == "VARCHAR"
    rows = relation.fetchall()
    first = dict(zip(relation.columns, rows[0]))
    assert first["entry_keys"] == [["000"], ["090"], ["180"]]
    assert first["layer_label"] == {"field_0": "conv1", "field_1": 1}
    assert [dict(zip(relation.columns, r))["perm"] for r in rows] == ["orig_data", "1", "2"]
    stored = np.array(first["matrix"], dtype=float)
    np.testing.assert_array_equal(stored, frame["matrix"][0])

    table = pq.read_table(path)
    assert table.column("kernel_inds").to_pylist()[2] == [0, 1, 2, 3]
    assert table.column("entry_labels").to_pylist()[0][1] == {"color": "090"}
    # plain pandas reads it too (without the codec, nested columns stay Arrow-shaped)
    plain = pd.read_parquet(path)
    assert plain["layer_num"].tolist() == [1, 1, 0]
    assert plain["obj"].tolist() == ["obj001", "obj001", "obj002"]


def test_column_with_types_mixed_inside_falls_back_to_json_for_that_column_only(tmp_path):
    frame = rdm_frame()
    frame["odd"] = object_series([(1, "a"), ["x"], {"k": 2**80}])
    frame["perm_like"] = object_series(["orig_data", 1, "7"])  # '7' would read back as int
    path = save_frame(frame, tmp_path / "rdms.parquet")
    description = stored_description(path)
    assert description["odd"]["codec"] == "json"
    assert description["perm_like"]["codec"] == "json"
    assert description["matrix"]["codec"] == "arrow"
    odd = pq.read_table(path).column("odd").to_pylist()
    assert json.loads(odd[0]) == {"__tuple__": [1, "a"]}
    assert_frames_identical(frame, load_frame(path))


def test_dicts_with_different_keys_are_maps_that_keep_key_order(tmp_path):
    frame = pd.DataFrame(
        {
            "entry_labels": object_series(
                [({"shape": "b", "color": "a"}, {"color": "c"}), ({"z": "1", "a": "2"},)]
            )
        }
    )
    path = save_frame(frame, tmp_path / "labels.parquet")
    stored_type = pq.read_schema(path).field("entry_labels").type
    assert pa.types.is_list(stored_type) and pa.types.is_map(stored_type.value_type)
    assert_frames_identical(frame, load_frame(path))


def test_missing_values_in_object_columns_keep_their_kind(tmp_path):
    # concatenating frames with different columns leaves NaN in object columns
    frame = pd.concat([rdm_frame(), meta_frame()], ignore_index=True)
    assert frame["entry_keys_sub"].isna().sum() == 3
    frame["with_none"] = object_series([None, (1,), (2,), None, (3,), (4,)])
    path = save_frame(frame, tmp_path / "both.parquet")
    assert stored_description(path)["entry_keys_sub"]["missing"] == "nan"
    assert_frames_identical(frame, load_frame(path))


def test_non_string_column_names_empty_frames_and_index(tmp_path):
    frame = pd.DataFrame({0: [1.5, 2.5], ("a", 1): [(1,), (2,)], "s": ["x", "y"]})
    frame.index = [10, 20]
    back = load_frame(save_frame(frame, tmp_path / "names.parquet"))
    assert list(back.columns) == [0, ("a", 1), "s"]
    assert_frames_identical(frame, back)

    empty = rdm_frame().iloc[:0]
    assert_frames_identical(empty, load_frame(save_frame(empty, tmp_path / "empty.parquet")))


def test_save_does_not_modify_the_frame(tmp_path):
    frame = meta_frame()
    frame.index = [5, 6, 7]
    copy = frame.copy(deep=True)
    save_frame(frame, tmp_path / "a.parquet")
    save_frame(frame, tmp_path / "a.p")
    assert list(frame.index) == [5, 6, 7]
    assert_frames_identical(copy, frame.reset_index(drop=True))


def test_parquet_written_elsewhere_loads_as_plain_pandas(tmp_path):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    frame.to_parquet(tmp_path / "other.parquet", index=False)
    pd.testing.assert_frame_equal(load_frame(tmp_path / "other.parquet"), frame)


# --------------------------------------------------------------------------
# Atomic writes
# --------------------------------------------------------------------------


def test_failed_write_leaves_the_old_file_intact_and_no_temporary_file(tmp_path, monkeypatch):
    path = tmp_path / "rdms.parquet"
    old = rdm_frame()
    save_frame(old, path)

    def write_half_then_fail(table, where, **kwargs):
        Path(where).write_bytes(b"PAR1 half a file")
        raise RuntimeError("disk full")

    monkeypatch.setattr(pq, "write_table", write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        save_frame(meta_frame(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["rdms.parquet"]
    monkeypatch.undo()
    assert_frames_identical(old, load_frame(path))


def test_failed_pickle_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(self, where, **kwargs):
        Path(where).write_bytes(b"junk")
        raise KeyboardInterrupt

    monkeypatch.setattr(pd.DataFrame, "to_pickle", fail)
    with pytest.raises(KeyboardInterrupt):
        save_frame(rdm_frame(), tmp_path / "rdms.p")
    assert list(tmp_path.iterdir()) == []


def test_save_creates_parent_folders_and_replaces_old_files(tmp_path):
    path = tmp_path / "deep" / "er" / "rdms.parquet"
    assert save_frame(rdm_frame(), str(path)) == path
    save_frame(meta_frame(), path)
    assert_frames_identical(meta_frame(), load_frame(path))
    assert [p.name for p in path.parent.iterdir()] == ["rdms.parquet"]


# --------------------------------------------------------------------------
# Pickle and csv
# --------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".p", ".pkl", ".pickle"])
def test_pickle_round_trip_keeps_any_object(tmp_path, suffix):
    frame = meta_frame()
    frame["ordered"] = object_series([OrderedDict(a=1)] * 3)
    path = save_frame(frame, tmp_path / f"frame{suffix}")
    assert_frames_identical(frame, load_frame(path, allow_pickle=True))
    # readable as a plain pandas pickle
    assert_frames_identical(frame, pd.read_pickle(path))


def test_csv_round_trip_of_a_flat_frame(tmp_path):
    frame = pd.DataFrame(
        {
            "model": ["alexnet", "vgg19"],
            "layer_num": [1, 45],
            "eta_squared": [0.25, np.nan],
            "significant": [True, False],
        }
    )
    path = save_frame(frame, tmp_path / "flat.csv")
    pd.testing.assert_frame_equal(load_frame(path), frame)
    pd.testing.assert_frame_equal(pd.read_csv(path), frame)


def test_csv_refuses_frames_with_arrays_or_tuples(tmp_path):
    with pytest.raises(ValueError, match=r"parquet") as error:
        save_frame(rdm_frame(), tmp_path / "rdms.csv")
    assert "'matrix'" in str(error.value) and "'layer_label'" in str(error.value)
    assert "'model'" not in str(error.value)
    assert not (tmp_path / "rdms.csv").exists()


# --------------------------------------------------------------------------
# Formats and errors
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind"),
    [("a.parquet", "parquet"), ("a.PQ", "parquet"), ("x/demo_rdm.p", "pickle"),
     ("a.pkl", "pickle"), ("a.pickle", "pickle"), ("a.csv", "csv")],
)
def test_frame_format_follows_the_extension(name, kind):
    assert frame_format(name) == kind
    assert frame_format(Path(name)) == kind


@pytest.mark.parametrize("name", ["rdms.txt", "rdms", "rdms.parquet.gz"])
def test_unknown_extensions_are_named_in_the_error(name, tmp_path):
    with pytest.raises(ValueError, match=r"\.parquet, \.pq, \.p, \.pkl, \.pickle, \.csv") as e:
        frame_format(name)
    assert repr(name) in str(e.value)
    with pytest.raises(ValueError, match=name.replace(".", r"\.")):
        save_frame(rdm_frame(), tmp_path / name)


def test_load_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing_here.parquet"):
        load_frame(tmp_path / "nothing_here.parquet")


def test_bad_inputs_get_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="pandas DataFrame; got list"):
        save_frame([1, 2], tmp_path / "a.parquet")
    with pytest.raises(ValueError, match=r"unique column names; got \['1'\]"):
        save_frame(pd.DataFrame([[1, 2]], columns=[1, "1"]), tmp_path / "a.parquet")
    with pytest.raises(TypeError, match="complex.*pickle"):
        save_frame(pd.DataFrame({"z": object_series([1j])}), tmp_path / "a.parquet")
    with pytest.raises(TypeError, match="must hold a pandas DataFrame; got Series"):
        pd.Series([1]).to_pickle(tmp_path / "s.p")
        load_frame(tmp_path / "s.p", allow_pickle=True)


# --------------------------------------------------------------------------
# combine_frames
# --------------------------------------------------------------------------


def flat(name, n):
    return pd.DataFrame({"obj": [name] * n, "value": np.arange(n, dtype=float)})


@pytest.fixture
def mixed_folder(tmp_path):
    save_frame(flat("cat", 2), tmp_path / "b_cat.parquet")
    save_frame(flat("dog", 1), tmp_path / "a_dog.p")
    save_frame(flat("cow", 3), tmp_path / "c_cow.csv")
    save_frame(flat("pig", 1), tmp_path / "d_pig.pq")
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "sub.parquet").mkdir()
    return tmp_path


def test_combine_frames_reads_every_format_in_a_folder_in_sorted_order(mixed_folder):
    combined = combine_frames(mixed_folder, allow_pickle=True)
    expected = pd.concat(
        [flat("dog", 1), flat("cat", 2), flat("cow", 3), flat("pig", 1)], ignore_index=True
    )
    pd.testing.assert_frame_equal(combined, expected)
    pd.testing.assert_frame_equal(combine_csvs(str(mixed_folder), allow_pickle=True), expected)


def test_combine_frames_with_keys_and_with_a_list(mixed_folder):
    with_keys = combine_frames(mixed_folder, keys=["cow", "dog"], allow_pickle=True)
    assert with_keys["obj"].tolist() == ["dog", "cow", "cow", "cow"]
    assert combine_frames(mixed_folder, keys="pig")["obj"].tolist() == ["pig"]
    listed = combine_frames(
        [mixed_folder / "c_cow.csv", mixed_folder / "a_dog.p"], allow_pickle=True
    )
    assert listed["obj"].tolist() == ["cow", "cow", "cow", "dog"]
    assert listed.index.equals(pd.RangeIndex(4))


def test_combine_frames_keeps_rdm_frames_exact(tmp_path):
    save_frame(rdm_frame(), tmp_path / "one.parquet")
    save_frame(meta_frame(), tmp_path / "two.p")
    combined = combine_frames(tmp_path, allow_pickle=True)
    expected = pd.concat([rdm_frame(), meta_frame()], ignore_index=True)
    assert_frames_identical(expected, combined)


def test_combine_frames_errors(mixed_folder, tmp_path):
    with pytest.raises(ValueError, match=r"no frame file.*\['horse'\]"):
        combine_frames(mixed_folder, keys=["horse"])
    with pytest.raises(ValueError, match="no frame file"):
        combine_frames(tmp_path / "sub.parquet")
    with pytest.raises(FileNotFoundError, match="missing_folder"):
        combine_frames(tmp_path / "missing_folder")
    with pytest.raises(ValueError, match="notes.txt"):
        combine_frames([mixed_folder / "notes.txt"])
    with pytest.raises(FileNotFoundError, match="gone.parquet"):
        combine_frames([tmp_path / "gone.parquet"])


def test_combine_csvs_is_the_original_name():
    assert combine_csvs is combine_frames
    assert {"combine_csvs", "combine_frames"} <= set(pfa_io.__all__)


# --------------------------------------------------------------------------
# No code from data unasked: pickles are read only with allow_pickle=True
# --------------------------------------------------------------------------


class TouchOnLoad:
    """Unpickling this creates the file ``marker``: a stand-in for any code a pickle runs."""

    def __init__(self, marker):
        self.marker = Path(marker)

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_crafted_pickle_runs_no_code_without_allow_pickle(tmp_path):
    marker = tmp_path / "code_ran"
    path = tmp_path / "results.p"
    pd.DataFrame({"x": object_series([TouchOnLoad(marker)])}).to_pickle(path)

    with pytest.raises(InvalidInputError) as error:
        load_frame(path)
    message = str(error.value)
    assert repr(str(path)) in message
    assert "can run any code" in message
    assert "allow_pickle=True" in message and ".parquet" in message
    with pytest.raises(InvalidInputError, match=r"skipped 1 pickle file.*allow_pickle=True"):
        combine_frames(tmp_path)
    with pytest.raises(InvalidInputError, match="results.p"):
        combine_frames([path])
    assert not marker.exists()

    frame = load_frame(path, allow_pickle=True)
    assert marker.exists()
    assert frame["x"].tolist() == [None]


def test_combine_frames_skips_the_pickles_of_a_folder_with_a_warning(mixed_folder):
    with pytest.warns(UserWarning, match=r"skipped 1 pickle file.*a_dog\.p.*allow_pickle=True"):
        combined = combine_frames(mixed_folder)
    expected = pd.concat([flat("cat", 2), flat("cow", 3), flat("pig", 1)], ignore_index=True)
    pd.testing.assert_frame_equal(combined, expected)


def test_allow_pickle_must_be_a_bool(tmp_path):
    path = save_frame(flat("cat", 1), tmp_path / "cat.parquet")
    with pytest.raises(InvalidInputError, match="'allow_pickle' parameter of load_frame"):
        load_frame(path, allow_pickle="yes")
    with pytest.raises(InvalidInputError, match="'allow_pickle' parameter of combine_frames"):
        combine_frames(tmp_path, allow_pickle=1)


# --------------------------------------------------------------------------
# Integrity: page checksums, the metadata checksum, the format version, None
# --------------------------------------------------------------------------


def six_by_six_rdm_frame():
    rng = np.random.default_rng(0)
    rows = []
    for number in range(4):
        upper = np.triu(rng.random((6, 6)), 1)
        rows.append(
            {
                "model": "alexnet",
                "layer": f"conv{number}",
                "layer_num": number,
                "layer_label": (f"conv{number}", number),
                "matrix": upper + upper.T,
                "entry_keys": tuple((f"{angle:03d}",) for angle in range(0, 360, 60)),
                "perm": "orig_data" if number == 0 else number,
            }
        )
    return pd.DataFrame(rows)


def column_chunks(path):
    """The byte range of each column chunk (its pages, headers included), by column."""
    metadata = pq.read_metadata(path)
    ranges = {}
    for group in range(metadata.num_row_groups):
        for column in range(metadata.num_columns):
            chunk = metadata.row_group(group).column(column)
            start = chunk.dictionary_page_offset or chunk.data_page_offset
            ranges[chunk.path_in_schema] = (start, start + chunk.total_compressed_size)
    return ranges


def read_flipped(original, flips, target, expected):
    """Read ``original`` with each (byte, bit) flipped: an error naming it or the same frame."""
    raised = 0
    for byte, bit in flips:
        damaged = bytearray(original)
        damaged[byte] ^= 1 << bit
        target.write_bytes(damaged)
        try:
            back = load_frame(target)
        except InvalidInputError as error:
            assert repr(str(target)) in str(error), (byte, bit, str(error))
            raised += 1
        else:
            assert_frames_identical(expected, back)
    return raised


def test_a_flipped_bit_in_a_data_page_is_an_error_naming_the_file(tmp_path):
    frame = six_by_six_rdm_frame()
    original = save_frame(frame, tmp_path / "rdms.parquet").read_bytes()
    chunks = column_chunks(tmp_path / "rdms.parquet")
    assert "matrix.list.element.list.element" in chunks
    rng = np.random.default_rng(1)
    flips = {
        (int(rng.integers(start, stop)), int(rng.integers(8)))
        for start, stop in chunks.values()
        for _ in range(80)
    }
    raised = read_flipped(original, sorted(flips), tmp_path / "flipped.parquet", frame)
    # flips in page statistics change nothing that is read; the rest are errors
    assert raised > 0.6 * len(flips)


def test_a_flipped_bit_in_a_page_names_the_failed_checksum(tmp_path):
    path = save_frame(six_by_six_rdm_frame(), tmp_path / "rdms.parquet")
    _, end = column_chunks(path)["matrix.list.element.list.element"]
    damaged = bytearray(path.read_bytes())
    damaged[end - 3] ^= 0b100  # inside the last page's data
    path.write_bytes(damaged)
    with pytest.raises(InvalidInputError, match=r"rdms\.parquet.*checksum") as error:
        load_frame(path)
    assert isinstance(error.value.__cause__, OSError)


def test_a_flipped_bit_in_the_footer_is_an_error_or_changes_nothing(tmp_path):
    frame = six_by_six_rdm_frame()
    original = save_frame(frame, tmp_path / "rdms.parquet").read_bytes()
    footer_start = max(stop for _, stop in column_chunks(tmp_path / "rdms.parquet").values())
    rng = np.random.default_rng(2)
    flips = {
        (int(rng.integers(footer_start, len(original) - 8)), int(rng.integers(8)))
        for _ in range(300)
    }
    read_flipped(original, sorted(flips), tmp_path / "flipped.parquet", frame)


def rewrite_metadata(path, **changes):
    """Rewrite ``path`` with the library's JSON blob changed, and its CRC-32 made to match."""
    table = pq.read_table(path)
    metadata = dict(table.schema.metadata)
    blob = json.loads(metadata[METADATA_KEY])
    blob.update(changes)
    metadata[METADATA_KEY] = json.dumps(blob).encode()
    checksum = zlib.crc32(metadata[METADATA_KEY] + b"\0" + metadata[b"pandas"])
    metadata[CHECKSUM_KEY] = str(checksum).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return metadata


def test_a_newer_format_version_is_refused_naming_both_versions(tmp_path):
    path = save_frame(rdm_frame(), tmp_path / "rdms.parquet")
    rewrite_metadata(path, format_version=FORMAT_VERSION + 1)
    with pytest.raises(InvalidInputError) as error:
        load_frame(path)
    message = str(error.value)
    assert repr(str(path)) in message
    assert f"format_version {FORMAT_VERSION + 1}" in message
    assert f"format_version {FORMAT_VERSION} and older" in message

    rewrite_metadata(path, format_version=FORMAT_VERSION)
    assert_frames_identical(rdm_frame(), load_frame(path))


def test_damaged_library_metadata_is_an_error_naming_the_file(tmp_path):
    path = save_frame(rdm_frame(), tmp_path / "rdms.parquet")
    metadata = rewrite_metadata(path, columns="not a list of columns")
    with pytest.raises(InvalidInputError, match=r"rdms\.parquet.*do not decode"):
        load_frame(path)

    table = pq.read_table(path)
    metadata[METADATA_KEY] = b'{"format_version": 1, "columns": [}'
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(InvalidInputError, match=r"rdms\.parquet.*checksum of its metadata"):
        load_frame(path)

    checksum = zlib.crc32(metadata[METADATA_KEY] + b"\0" + metadata[b"pandas"])
    metadata[CHECKSUM_KEY] = str(checksum).encode()
    pq.write_table(table.replace_schema_metadata(metadata), path)
    with pytest.raises(InvalidInputError, match=r"rdms\.parquet.*JSONDecodeError") as error:
        load_frame(path)
    assert isinstance(error.value.__cause__.__cause__, json.JSONDecodeError)


def test_rows_lost_from_the_stored_count_are_an_error(tmp_path):
    path = save_frame(rdm_frame(), tmp_path / "rdms.parquet")
    rewrite_metadata(path, rows=5)
    with pytest.raises(InvalidInputError, match=r"holds 3 rows where 5 were written"):
        load_frame(path)


def test_none_in_object_columns_survives_the_parquet_round_trip(tmp_path):
    frame = pd.DataFrame(
        {
            "with_strings": object_series(["conv1", None, "fc8", None]),
            "with_tuples": object_series([("conv1", 1), None, ("fc8", 8), None]),
            "all_none": object_series([None, None, None, None]),
            "with_matrices": object_series([np.eye(2), None, np.zeros((2, 2)), None]),
        }
    )
    back = load_frame(save_frame(frame, tmp_path / "none.parquet"))
    for name in frame.columns:
        assert [v is None for v in back[name]] == [v is None for v in frame[name]], name
    assert_frames_identical(frame, back)


# --------------------------------------------------------------------------
# Clear errors for bad files
# --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "expected", "cause"),
    [
        ("bad.parquet", b"PAR1 not really parquet PAR1", "an intact parquet file", pa.ArrowException),
        ("empty.parquet", b"", "an intact parquet file", pa.ArrowException),
        ("bad.p", b"\x80\x04garbage", "a pickled pandas DataFrame", Exception),
        ("bad.csv", b'a,b\n"unclosed', "a csv file", pd.errors.ParserError),
        ("binary.csv", b"\xff\xfe\x00\x01", "a csv file", UnicodeDecodeError),
    ],
)
def test_damaged_files_are_errors_naming_the_file(tmp_path, name, content, expected, cause):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(InvalidInputError) as error:
        load_frame(path, allow_pickle=True)
    message = str(error.value)
    assert repr(str(path)) in message and f"given to load_frame must be {expected}" in message
    assert isinstance(error.value.__cause__, cause)


def test_a_folder_or_a_missing_file_is_named(tmp_path):
    (tmp_path / "sub.parquet").mkdir()
    with pytest.raises(InvalidInputError, match=r"folder .*sub\.parquet' given to load_frame "
                       r"holds no parquet part"):
        load_frame(tmp_path / "sub.parquet")
    with pytest.raises(InvalidInputError, match=r"'path' parameter of save_frame.*not a folder"):
        save_frame(rdm_frame(), tmp_path / "sub.parquet")
    with pytest.raises(FileNotFoundError, match=r"load_frame: there is no frame file.*gone\.p"):
        load_frame(tmp_path / "gone.p")


# --------------------------------------------------------------------------
# Temporary files left by killed writers
# --------------------------------------------------------------------------


@POSIX_ONLY
def test_the_temporary_file_of_a_killed_writer_is_removed_by_the_next_write(tmp_path):
    path = tmp_path / "rdms.parquet"
    code = f"""
import os, signal
import pandas as pd, pyarrow.parquet as pq
from pytorch_feature_analysis import save_frame

def write_half_then_die(table, where, **kwargs):
    open(where, "wb").write(b"PAR1 half a file")
    os.kill(os.getpid(), signal.SIGKILL)

pq.write_table = write_half_then_die
save_frame(pd.DataFrame({{"a": [1]}}), {str(path)!r})
"""
    writer = subprocess.Popen([sys.executable, "-c", code])
    assert writer.wait(timeout=300) == -signal.SIGKILL
    (leftover,) = tmp_path.iterdir()
    assert leftover.name.startswith(".rdms.parquet.") and leftover.name.endswith(".tmp")
    assert f"-{writer.pid}." in leftover.name

    save_frame(rdm_frame(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["rdms.parquet"]
    assert_frames_identical(rdm_frame(), load_frame(path))


def temporary_name_of_this_process(tmp_path, monkeypatch):
    """The name save_frame gives its temporary file here, seen from inside the write."""
    names = []
    write_table = pq.write_table

    def record(table, where, **kwargs):
        names.append(Path(where).name)
        write_table(table, where, **kwargs)

    monkeypatch.setattr(pq, "write_table", record)
    save_frame(flat("cat", 1), tmp_path / "probe.parquet")
    monkeypatch.undo()
    return names[0]


@POSIX_ONLY
def test_cleanup_keeps_live_writers_and_other_targets(tmp_path, monkeypatch):
    probe = temporary_name_of_this_process(tmp_path, monkeypatch)
    host_pid = probe.split(".")[3]  # .probe.parquet.<host>-<pid>.<random>.tmp
    host, pid = host_pid.rsplit("-", 1)
    assert pid == str(os.getpid())
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait()
    hexa, day = "0123456789abcdef" * 2, 24 * 3600

    def temporary(name, age=0.0):
        path = tmp_path / name
        path.write_bytes(b"partial")
        os.utime(path, (time.time() - age, time.time() - age))
        return name

    kept = {
        temporary(f".rdms.parquet.{host}-{os.getpid()}.{hexa}.tmp"),  # a live writer
        temporary(f".rdms.parquet.otherhost-{finished.pid}.{hexa}.tmp"),  # can't tell: recent
        temporary(f".rdms.parquet.{hexa}.tmp"),  # older name without a pid, recent
        temporary(f".other.parquet.{host}-{finished.pid}.{hexa}.tmp"),  # another target
        temporary(".rdms.parquet.backup.tmp"),  # not a name this library writes
    }
    removed = {
        temporary(f".rdms.parquet.{host}-{finished.pid}.{hexa}.tmp"),  # its writer is gone
        temporary(f".rdms.parquet.otherhost-1.{hexa}.tmp", age=day + 60),
        temporary(f".rdms.parquet.{hexa[::-1]}.tmp", age=day + 60),
    }
    save_frame(rdm_frame(), tmp_path / "rdms.parquet")
    names = {p.name for p in tmp_path.iterdir()}
    assert kept <= names
    assert not removed & names


# --------------------------------------------------------------------------
# file_lock: read-merge-write by one process at a time
# --------------------------------------------------------------------------


def append_rows_under_lock(path, worker, rounds, start):
    start.wait()
    for number in range(rounds):
        with file_lock(path, timeout=120):
            old = load_frame(path) if path.exists() else None
            time.sleep(0.01)  # the window in which another writer would lose this row
            row = pd.DataFrame({"worker": [worker], "round": [number]})
            save_frame(pd.concat([old, row], ignore_index=True), path)


def test_file_lock_keeps_every_row_of_two_processes_merging_into_one_file(tmp_path):
    path = tmp_path / "rows.parquet"
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(target=append_rows_under_lock, args=(path, worker, 20, start))
        for worker in range(2)
    ]
    for process in workers:
        process.start()
    start.set()
    for process in workers:
        process.join(300)
    assert [process.exitcode for process in workers] == [0, 0]
    rows = load_frame(path)
    assert sorted(zip(rows["worker"], rows["round"])) == [
        (worker, number) for worker in range(2) for number in range(20)
    ]


def test_file_lock_times_out_naming_the_file_and_the_holder(tmp_path):
    path = tmp_path / "rdms.parquet"
    with file_lock(path) as locked:
        assert locked == path
        started = time.monotonic()
        with pytest.raises(TimeoutError) as error:
            with file_lock(path, timeout=0.3):
                pass
        assert time.monotonic() - started >= 0.3
    message = str(error.value)
    assert repr(str(path)) in message and f"process {os.getpid()}" in message
    with file_lock(str(path), timeout=0):  # released when the block ended
        pass


def test_file_lock_is_released_when_the_block_raises(tmp_path):
    path = tmp_path / "rdms.parquet"
    with pytest.raises(RuntimeError, match="inside"):
        with file_lock(path):
            raise RuntimeError("inside")
    with file_lock(path, timeout=0):
        pass


@POSIX_ONLY
def test_file_lock_of_a_killed_holder_is_free(tmp_path):
    path = tmp_path / "deep" / "rdms.parquet"
    code = f"""
import time
from pytorch_feature_analysis import file_lock
with file_lock({str(path)!r}):
    print("held", flush=True)
    time.sleep(300)
"""
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(TimeoutError, match=f"process {holder.pid} "):
            with file_lock(path, timeout=0):
                pass
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with file_lock(path, timeout=10):
        pass


def test_file_lock_checks_its_arguments(tmp_path):
    with pytest.raises(InvalidInputError, match=r"'path' parameter of file_lock.*not a folder"):
        file_lock(tmp_path)
    for timeout in (-1, "5", True):
        with pytest.raises(InvalidInputError, match=r"'timeout' parameter of file_lock"):
            file_lock(tmp_path / "a.parquet", timeout=timeout)
    assert "file_lock" in pfa_io.__all__


def test_combine_csvs_takes_the_original_path_keyword(tmp_path):
    pfa_io.save_frame(pd.DataFrame({"a": [1]}), tmp_path / "one.csv")
    pfa_io.save_frame(pd.DataFrame({"a": [2]}), tmp_path / "two.csv")
    assert combine_csvs(path=tmp_path)["a"].tolist() == [1, 2]
