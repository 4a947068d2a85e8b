"""Meta-RDMs of a dataset, one group at a time, equal to the in-memory result."""

from __future__ import annotations

import pytest

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis import _meta_dataset
from pytorch_feature_analysis.testing import assert_frames_identical
from tiny import tiny_model, to_tensor64

GROUPING = ["model", "obj", "dissim_metric", "activation_type", "perm"]
META = dict(entry_variables=["layer"], grouping_variables=GROUPING, num_perms=1,
            dissim_metrics=["corr", "euclidean_distance"], verbose=False)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A first-order dataset: 2 image sets x 2 models, a permutation, and its frame."""
    folder = tmp_path_factory.mktemp("study") / "rdms"
    stimuli = pfa.make_synthetic_stimuli(num_objects=2, colors=(0, 90, 180, 270), size=16)
    image_sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    models = {"tiny": tiny_model(), "other": pfa.prepare_model(tiny_model(), "random", 1)}
    frame = pfa.get_rdms(image_sets, models, f"{folder}/", "study", num_perms=1,
                         dissim_metrics=["corr", "euclidean_distance"], transform=to_tensor64,
                         verbose=False)
    return folder, frame


def test_out_of_core_meta_rdms_equal_the_in_memory_ones(study, tmp_path, monkeypatch):
    folder, frame = study
    expected = pfa.get_meta_rdms(frame, None, **META)
    reads = []
    real = _meta_dataset.read_dataset

    def counted(source, filters=None, columns=None, files=None):
        read = real(source, filters, columns, files)
        if columns is None:
            reads.append(len(read))
        return read

    monkeypatch.setattr(_meta_dataset, "read_dataset", counted)
    listed = []
    real_listing = _meta_dataset.part_files
    monkeypatch.setattr(_meta_dataset, "part_files",
                        lambda folder: listed.append(folder) or real_listing(folder))
    out = tmp_path / "meta"
    meta = pfa.get_meta_rdms(folder, f"{out}/", **META)
    assert_frames_identical(meta, expected)
    groups = frame.groupby(GROUPING, dropna=False).size()
    # one read per group, of exactly its RDMs (the filters are pushed down to the parts)
    assert len(groups) == 2 * 2 * 2 * 2 * 2
    assert reads[:len(groups)] == [frame["layer"].nunique()] * len(groups)
    assert listed[:1] == [folder]  # the parts are listed once, not once per group
    assert len([f for f in listed if f == folder]) == 1
    assert len(list(out.glob("part-*.parquet"))) == len(groups)
    assert pfa.get_meta_rdms(folder, f"{out}/", collect=False, **META) is None
    assert_frames_identical(pfa.load_frame(out), expected)
    to_file = pfa.get_meta_rdms(folder, tmp_path / "meta.parquet", **META)
    assert_frames_identical(pfa.load_frame(tmp_path / "meta.parquet"), expected)
    assert_frames_identical(to_file, expected)


def test_a_second_order_dataset_gives_the_third_order_frame(study, tmp_path):
    folder, frame = study
    second = pfa.get_meta_rdms(folder, f"{tmp_path}/second/", **META)
    third = dict(entry_variables=["model"], verbose=False,
                 grouping_variables=["obj", "dissim_metric", "dissim_metric_sub",
                                     "activation_type", "perm_sub"])
    expected = pfa.get_meta_rdms(second[second["perm"] == "orig_data"].drop(columns="perm"),
                                 None, **third)
    pfa.save_frame(second[second["perm"] == "orig_data"].drop(columns="perm"),
                   tmp_path / "kept" / "part-0.parquet")
    assert_frames_identical(pfa.get_meta_rdms(tmp_path / "kept", None, **third), expected)


def test_bad_dataset_arguments_are_named(study, tmp_path):
    folder, _ = study
    with pytest.raises(InvalidInputError, match=r"'out_fname'.*another folder than the dataset"):
        pfa.get_meta_rdms(folder, f"{folder}/", **META)
    with pytest.raises(InvalidInputError, match=r"'rdm_df'.*dataset folder holding parquet"):
        pfa.get_meta_rdms(tmp_path / "empty", None, **META)
    with pytest.raises(InvalidInputError, match=r"'grouping_variables'|missing|scene"):
        pfa.get_meta_rdms(folder, None, **dict(META, grouping_variables=["scene"]))
