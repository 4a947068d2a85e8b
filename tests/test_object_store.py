"""Frames and datasets at fsspec URLs: an in-process object store (memory://) and file:// URLs."""

from __future__ import annotations

import importlib.util
import sys
import uuid

import fsspec
import numpy as np
import pandas as pd
import pytest

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis import rdms as rdms_module
from pytorch_feature_analysis.testing import assert_frames_identical
from tiny import tiny_model, to_tensor64

KWARGS = dict(rdm_name="study", num_perms=1, dissim_metrics=["corr", "euclidean_distance"],
              transform=to_tensor64, verbose=False)
META = dict(entry_variables=["layer"], num_perms=1, dissim_metrics=["corr"], verbose=False,
            grouping_variables=["model", "obj", "dissim_metric", "activation_type", "perm"])
MEMORY = fsspec.filesystem("memory")


@pytest.fixture()
def store():
    """A fresh folder URL of fsspec's in-process object store, emptied afterwards."""
    root = f"/pfa-{uuid.uuid4().hex}"
    yield f"memory://{root}/"
    if MEMORY.exists(root):
        MEMORY.rm(root, recursive=True)


@pytest.fixture(scope="module")
def image_sets():
    stimuli = pfa.make_synthetic_stimuli(num_objects=2, colors=(0, 90, 180, 270), size=16)
    return pfa.package_image_sets(stimuli, ["color"], ["obj"])


def models():
    return {"tiny": tiny_model(), "other": pfa.prepare_model(tiny_model(), "random", 1)}


@pytest.fixture(scope="module")
def local_study(image_sets, tmp_path_factory):
    """The study computed into a local dataset folder: (folder, frame)."""
    folder = tmp_path_factory.mktemp("local") / "study"
    return folder, pfa.get_rdms(image_sets, models(), f"{folder}/", **KWARGS)


def stored_parts(url):
    """``{path below url: bytes}`` of every object under ``url``."""
    root = url.removeprefix("memory://").rstrip("/") + "/"
    return {path[len(root):]: MEMORY.cat_file(path) for path in MEMORY.find(root)}


def counted_puts(monkeypatch):
    """The paths the memory file system stores objects at, one entry per upload."""
    puts = []
    real = type(MEMORY).pipe_file

    def pipe_file(self, path, value, *args, **kwargs):
        puts.append(path)
        return real(self, path, value, *args, **kwargs)

    real_open = type(MEMORY)._open

    def whole_writes_only(self, path, mode="rb", *args, **kwargs):
        if mode != "rb" and kwargs.get("data") is None:
            pytest.fail(f"{path} opened to be written in pieces ({mode!r})")
        return real_open(self, path, mode, *args, **kwargs)

    monkeypatch.setattr(type(MEMORY), "pipe_file", pipe_file)
    monkeypatch.setattr(type(MEMORY), "_open", whole_writes_only)
    for method in ("mv", "rename", "copy"):  # an object store has no rename
        monkeypatch.setattr(type(MEMORY), method, lambda *a, _m=method, **k: pytest.fail(_m))
    return puts


def test_a_study_in_an_object_store_equals_the_local_one(image_sets, local_study, store,
                                                         monkeypatch):
    folder, expected = local_study
    puts = counted_puts(monkeypatch)
    frame = pfa.get_rdms(image_sets, models(), store, **KWARGS)
    assert_frames_identical(frame, expected)
    parts = stored_parts(store)
    local = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))
    assert sorted(parts) == local and len(local) == 4  # 2 image sets x 2 models
    # each part is one upload of the whole object, the same bytes as the local part
    assert sorted(p.rsplit("/", 2)[-2] + "/" + p.rsplit("/", 1)[-1] for p in puts) == local
    assert all(parts[name] == (folder / name).read_bytes() for name in local)
    monkeypatch.undo()
    assert_frames_identical(pfa.get_rdms(image_sets, models(), store, **KWARGS), expected)


def test_resume_in_an_object_store_writes_only_the_missing_part(image_sets, local_study, store,
                                                                monkeypatch):
    _, expected = local_study
    pfa.get_rdms(image_sets, models(), store, collect=False, **KWARGS)
    before = stored_parts(store)
    lost = sorted(before)[1]
    MEMORY.rm_file(store.removeprefix("memory://") + lost)
    tasks, real = [], rdms_module._image_set_rdms
    monkeypatch.setattr(rdms_module, "_image_set_rdms",
                        lambda **task: tasks.append(task["model_name"]) or real(**task))
    puts = counted_puts(monkeypatch)
    frame = pfa.get_rdms(image_sets, models(), store, **KWARGS)
    assert tasks == [lost.split("/")[0].removeprefix("model=")]
    assert [path.endswith(lost) for path in puts] == [True]
    assert stored_parts(store) == before
    assert_frames_identical(frame, expected)


def test_a_write_killed_midway_leaves_nothing_in_the_store(store, monkeypatch):
    real = pfa.io.pq.write_table

    def killed(table, where, **kwargs):
        real(table, where, **kwargs)
        where.truncate(50)
        raise KeyboardInterrupt

    monkeypatch.setattr(pfa.io.pq, "write_table", killed)
    with pytest.raises(KeyboardInterrupt):
        pfa.save_frame(pd.DataFrame({"a": [1, 2]}), f"{store}model=m/part-0.parquet")
    assert stored_parts(store) == {}


def frame_of_types():
    """Tuples, dicts, RDM matrices and a perm column of text and ints."""
    upper = np.triu(np.random.default_rng(0).random((4, 3, 3)), 1)
    return pd.DataFrame({
        "layer": ["conv1", "conv1", "fc1", "fc1"], "obj": ["cat", "dog", "cat", "dog"],
        "perm": ["orig_data", 1, "orig_data", 2],
        "layer_label": [("conv1", 1)] * 2 + [("fc1", 2)] * 2,
        "entry_labels": [({"color": "red"},)] * 4, "matrix": list(upper + upper.transpose(0, 2, 1)),
    })


def test_one_file_round_trips_in_an_object_store(store):
    frame = frame_of_types()
    for name in ["rdms.parquet", "rdms.p"]:
        written = pfa.save_frame(frame, store + name)
        assert written == store + name
        assert_frames_identical(pfa.load_frame(written, allow_pickle=True), frame)
    flat = frame[["layer", "obj"]]
    assert_frames_identical(pfa.load_frame(pfa.save_frame(flat, store + "flat.csv")), flat)
    assert sorted(stored_parts(store)) == ["flat.csv", "rdms.p", "rdms.parquet"]
    small = pfa.save_frame(frame, store + "small.parquet", matrix_storage="condensed_float32")
    np.testing.assert_allclose(np.stack(pfa.load_frame(small)["matrix"]),
                               np.stack(frame["matrix"]), rtol=2**-24)


def test_filters_and_columns_on_an_object_store_dataset(store):
    frame = frame_of_types()
    for model, part in frame.assign(model=["a", "b", "b", "a"]).groupby("model"):
        pfa.save_frame(part.reset_index(drop=True), f"{store}model={model}/part-0.parquet")
    pfa.save_frame(frame, f"{store}_hidden/part-x.parquet")  # not a part
    with_models = frame.assign(model=["a", "b", "b", "a"])
    back = pfa.load_frame(store, filters=[("layer", "==", "fc1"), ("model", "in", ["a", "b"])],
                          columns=["obj", "matrix", "perm"])
    wanted = with_models[with_models["layer"] == "fc1"][["obj", "matrix", "perm"]]
    assert_frames_identical(back.sort_values("obj", ignore_index=True),
                            wanted.sort_values("obj", ignore_index=True))
    whole = pfa.load_frame(store)
    assert len(whole) == 4 and set(whole["model"]) == {"a", "b"}
    texts = pfa.load_frame(store, filters=[("perm", "==", "orig_data")], columns=["layer"])
    assert sorted(texts["layer"]) == sorted(frame[frame["perm"] == "orig_data"]["layer"])
    combined = pfa.combine_frames([store, pfa.save_frame(frame, store + "_one.parquet")])
    assert len(combined) == 8 and combined["model"].isna().sum() == 4


def test_meta_rdms_from_and_to_an_object_store(image_sets, local_study, store):
    _, frame = local_study
    expected = pfa.get_meta_rdms(frame, None, **META)
    pfa.get_rdms(image_sets, models(), store + "first/", collect=False, **KWARGS)
    meta = pfa.get_meta_rdms(store + "first/", store + "meta/", **META)
    assert_frames_identical(meta, expected)
    groups = frame.groupby(META["grouping_variables"], dropna=False).ngroups
    assert sorted(stored_parts(store + "meta/")) == [f"part-{g:09d}.parquet" for g in range(groups)]
    assert_frames_identical(pfa.load_frame(store + "meta/"), expected)
    to_file = pfa.get_meta_rdms(store + "first/", store + "meta.parquet", **META)
    assert_frames_identical(pfa.load_frame(store + "meta.parquet"), to_file)
    with pytest.raises(InvalidInputError, match=r"'out_fname'.*another folder than the dataset"):
        pfa.get_meta_rdms(store + "first", store + "first/", **META)


def test_file_urls_are_local_paths(image_sets, local_study, tmp_path):
    _, expected = local_study
    url = (tmp_path / "study").as_uri() + "/"
    assert_frames_identical(pfa.get_rdms(image_sets, models(), url, **KWARGS), expected)
    assert len(list((tmp_path / "study").rglob("model=*/part-*.parquet"))) == 4
    assert_frames_identical(pfa.load_frame(url, filters=[("model", "==", "tiny")]),
                            pfa.load_frame(tmp_path / "study", filters=[("model", "==", "tiny")]))
    written = pfa.save_frame(frame_of_types(), (tmp_path / "one.parquet").as_uri())
    assert written == tmp_path / "one.parquet" and written.is_file()


def test_bad_urls_are_named(image_sets, store):
    frame = frame_of_types()
    for call in [lambda: pfa.load_frame("nosuch://bucket/study/"),
                 lambda: pfa.save_frame(frame, "nosuch://bucket/rdms.parquet"),
                 lambda: pfa.combine_frames(["nosuch://bucket/rdms.parquet"]),
                 lambda: pfa.get_meta_rdms("nosuch://bucket/study/", None, **META),
                 lambda: pfa.get_rdms(image_sets, models(), "nosuch://bucket/study/", **KWARGS)]:
        with pytest.raises(InvalidInputError, match=r"'nosuch://bucket/.*protocol that fsspec"):
            call()
    with pytest.raises(InvalidInputError, match=r"'out_fname'.*URL of a dataset folder"):
        pfa.get_rdms(image_sets, models(), store + "rdms.parquet", **KWARGS)
    with pytest.raises(InvalidInputError, match=r"'path'.*local file path"):
        pfa.file_lock(store + "rdms.parquet")
    with pytest.raises(InvalidInputError, match=r"holds no parquet part"):
        pfa.load_frame(pfa.save_frame(frame[["obj"]], store + "csv/notes.csv")[:-9])
    if importlib.util.find_spec("s3fs") is None:
        with pytest.raises(InvalidInputError, match=r"'s3://bucket/rdms.parquet'.*s3fs"):
            pfa.save_frame(frame, "s3://bucket/rdms.parquet")


def test_urls_without_fsspec_name_the_extra_and_local_paths_need_none(tmp_path, monkeypatch):
    for name in ("fsspec", "fsspec.core", "fsspec.implementations.local"):
        monkeypatch.setitem(sys.modules, name, None)  # import fails as if not installed
    frame = frame_of_types()
    assert_frames_identical(pfa.load_frame(pfa.save_frame(frame, tmp_path / "a.parquet")), frame)
    pfa.save_frame(frame, tmp_path / "study" / "model=a" / "part-0.parquet")
    assert_frames_identical(pfa.load_frame(f"{tmp_path}/study/", columns=list(frame.columns)),
                            frame)
    with pytest.raises(InvalidInputError,
                       match=r"'memory://study/'.*needs fsspec.*pytorch_feature_analysis\[dask\]"):
        pfa.load_frame("memory://study/")


@pytest.mark.filterwarnings("ignore:.*tasks have been successfully executed:UserWarning")
@pytest.mark.filterwarnings("ignore:.*still being processed by the workers:UserWarning")
def test_parts_other_processes_cannot_see_are_an_error(image_sets, store):
    # each joblib process has its own memory:// store: the caller sees none of their parts
    with pytest.raises(InvalidInputError, match=r"the part 'memory://.*/model=.*/part-.*"
                                                r"not in the dataset .*shared"):
        pfa.get_rdms(image_sets, models(), store, num_cores=2, **KWARGS)
