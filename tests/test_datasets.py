"""Datasets of parquet parts: reading with filters, condensed storage, foreign parts."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow.dataset as ds
import pytest

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis.testing import assert_frames_identical


def rdm(n, seed):
    """A symmetric matrix with a zero diagonal and one undefined pair."""
    upper = np.random.default_rng(seed).random((n, n))
    matrix = np.triu(upper, 1) + np.triu(upper, 1).T
    matrix[0, n - 1] = matrix[n - 1, 0] = np.nan
    return matrix


def study_frame(model, seed, num_perms=0):
    """An RDM-like frame: two layers x (orig_data + permutations), two objects."""
    rows = []
    for obj in ["cat", "dog"]:
        for layer, num in [("conv1", 1), ("fc1", 2)]:
            for perm in ["orig_data", *range(1, num_perms + 1)]:
                seed += 1
                rows.append({"df_name": "study", "model": model, "layer": layer,
                             "layer_num": num, "layer_label": (layer, num), "perm": perm,
                             "matrix": rdm(4, seed), "entry_keys": (("a",), ("b",), ("c",), ("d",)),
                             "obj": obj})
    return pd.DataFrame(rows)


@pytest.fixture()
def dataset(tmp_path):
    """Parts of two models in hive-style folders; the second model's parts hold permutations."""
    folder = tmp_path / "study"
    frames = {"alexnet": study_frame("alexnet", 0), "vgg/11": study_frame("vgg/11", 50, 1)}
    for name, frame in frames.items():
        for obj, part in frame.groupby("obj"):
            path = folder / f"model={name.replace('/', '%2F')}" / f"part-{obj}.parquet"
            pfa.save_frame(part.reset_index(drop=True), path)
    return folder, pd.concat(list(frames.values()), ignore_index=True)


def test_a_dataset_reads_back_whole_with_types(dataset):
    folder, frame = dataset
    back = pfa.load_frame(folder)
    key = ["model", "obj", "layer", "perm"]
    order = back.assign(perm=back["perm"].astype(str)).sort_values(key).index
    expected = frame.assign(perm=frame["perm"].astype(str)).sort_values(key).index
    assert_frames_identical(back.loc[order].reset_index(drop=True),
                            frame.loc[expected].reset_index(drop=True))
    assert back["perm"].map(type).value_counts().to_dict() == {str: 8, int: 4}


def test_filters_and_columns_read_only_what_is_asked(dataset):
    folder, frame = dataset
    back = pfa.load_frame(folder, filters=[("layer", "==", "conv1"), ("obj", "in", ["dog"])],
                          columns=["model", "layer_label", "matrix", "perm"])
    expected = frame[(frame["layer"] == "conv1") & (frame["obj"] == "dog")]
    assert list(back.columns) == ["model", "layer_label", "matrix", "perm"]
    assert sorted(map(str, back["perm"])) == sorted(map(str, expected["perm"]))
    assert set(back["layer_label"]) == {("conv1", 1)}
    for model, perm, matrix in back[["model", "perm", "matrix"]].itertuples(index=False):
        same = expected[(expected["model"] == model) & (expected["perm"] == perm)]
        np.testing.assert_array_equal(matrix, same["matrix"].iloc[0])
    either = pfa.load_frame(folder, filters=[[("model", "==", "vgg/11"), ("perm", "==", "1")],
                                             [("layer", "==", "fc1")]])
    wanted = (frame["model"] == "vgg/11") & (frame["perm"] == 1) | (frame["layer"] == "fc1")
    assert len(either) == wanted.sum() == 8


@pytest.mark.filterwarnings("ignore:The inplace keyword:Warning")  # inside dask.dataframe
def test_other_readers_see_the_same_rows(dataset):
    folder, frame = dataset
    counted = duckdb.sql(
        f"SELECT model, count(*) FROM read_parquet('{folder}/**/*.parquet') GROUP BY model "
        "ORDER BY model").fetchall()
    assert counted == [("alexnet", 4), ("vgg/11", 8)]
    hive = ds.dataset(folder, format="parquet", partitioning="hive")
    table = hive.to_table(filter=ds.field("layer") == "fc1")
    assert table.num_rows == (frame["layer"] == "fc1").sum()
    assert sorted(set(table.column("model").to_pylist())) == ["alexnet", "vgg/11"]
    dd = pytest.importorskip("dask.dataframe")
    assert sorted(dd.read_parquet(folder)["obj"].compute()) == sorted(frame["obj"])
    pl = pytest.importorskip("polars")
    lazy = pl.scan_parquet(f"{folder}/**/*.parquet", hive_partitioning=True)
    fc1 = lazy.filter(pl.col("layer") == "fc1").select("model", "obj", "perm", "matrix").collect()
    assert len(fc1) == (frame["layer"] == "fc1").sum()
    for model, obj, perm, matrix in fc1.iter_rows():
        same = frame[(frame["layer"] == "fc1") & (frame["model"] == model) & (frame["obj"] == obj)
                     & (frame["perm"].astype(str) == perm)]
        np.testing.assert_array_equal(np.array(matrix), same["matrix"].iloc[0])


def test_combine_frames_reads_datasets_and_files(dataset, tmp_path):
    folder, frame = dataset
    single = pfa.save_frame(frame.iloc[:2], tmp_path / "single.parquet")
    combined = pfa.combine_frames([folder, single])
    assert len(combined) == len(frame) + 2
    assert_frames_identical(pfa.combine_frames(folder), pfa.load_frame(folder))


def test_a_part_of_another_study_is_named(dataset):
    folder, frame = dataset
    other = frame.iloc[:1].drop(columns="obj").assign(scene="beach")
    pfa.save_frame(other, folder / "model=alexnet" / "part-zzz.parquet")
    with pytest.raises(InvalidInputError, match=r"part-zzz\.parquet' belongs to another study.*"
                       r"extra columns \['scene'\] and lacks \['obj'\]"):
        pfa.load_frame(folder)


def test_bad_filters_and_columns_are_named(dataset, tmp_path):
    folder, _ = dataset
    with pytest.raises(InvalidInputError, match=r"'filters'.*\['colour'\]"):
        pfa.load_frame(folder, filters=[("colour", "==", "red")])
    with pytest.raises(InvalidInputError, match=r"'filters'.*list of \(column, op, value\)"):
        pfa.load_frame(folder, filters="layer == conv1")
    with pytest.raises(InvalidInputError, match=r"'columns'.*\['colour'\]"):
        pfa.load_frame(folder, columns=["colour"])
    csv = pfa.save_frame(pd.DataFrame({"a": [1]}), tmp_path / "flat.csv")
    with pytest.raises(InvalidInputError, match=r"'path'.*parquet file or dataset folder"):
        pfa.load_frame(csv, columns=["a"])


def test_condensed_float32_reads_back_within_rounding_and_is_flagged(tmp_path):
    frame = study_frame("alexnet", 0, num_perms=1)
    full = pfa.save_frame(frame, tmp_path / "full.parquet")
    small = pfa.save_frame(frame, tmp_path / "small.parquet", matrix_storage="condensed_float32")
    back = pfa.load_frame(small)
    assert back.attrs["pytorch_feature_analysis.matrix_storage"] == {"matrix": "condensed_float32"}
    assert "pytorch_feature_analysis.matrix_storage" not in pfa.load_frame(full).attrs
    for original, read in zip(frame["matrix"], back["matrix"]):
        assert read.dtype == np.float64 and read.shape == original.shape
        np.testing.assert_array_equal(read, original.astype(np.float32).astype(np.float64))
        np.testing.assert_allclose(read, original, rtol=2.0**-24, atol=0)
    assert_frames_identical(back.drop(columns="matrix"), frame.drop(columns="matrix"))
    # saved again without the option, the frame is stored whole and no longer flagged
    again = pfa.load_frame(pfa.save_frame(back, tmp_path / "again.parquet"))
    assert "pytorch_feature_analysis.matrix_storage" not in again.attrs


def test_condensed_storage_refuses_what_it_cannot_rebuild(tmp_path):
    frame = study_frame("alexnet", 0)
    skewed = frame.copy()
    skewed.at[1, "matrix"] = skewed.at[1, "matrix"] + np.eye(4)
    with pytest.raises(InvalidInputError, match=r"symmetric square matrices.*row 1"):
        pfa.save_frame(skewed, tmp_path / "x.parquet", matrix_storage="condensed_float32")
    with pytest.raises(InvalidInputError, match=r"'matrix_storage'.*parquet"):
        pfa.save_frame(frame, tmp_path / "x.p", matrix_storage="condensed_float32")
    with pytest.raises(InvalidInputError, match=r"'matrix_storage'.*'float64'"):
        pfa.save_frame(frame, tmp_path / "x.parquet", matrix_storage="float16")
