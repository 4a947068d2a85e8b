"""Measured RDMs as frame rows: against scipy, through meta-RDMs, plots and files."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.stats
from scipy.spatial.distance import pdist, squareform

import pytorch_feature_analysis as pfa

STIMULI = ("cat", "dog", "car", "cup")


def pattern_sets(seed=0):
    rng = np.random.default_rng(seed)
    return [({"model": "fmri", "layer": region, "subject": subject},
             {(stimulus,): rng.normal(size=40) for stimulus in STIMULI}, ("stimulus",))
            for subject in (1, 2) for region in ("V1", "V4", "IT")]


def test_patterns_give_scipy_rdms_and_the_frame_contract():
    sets = pattern_sets()
    frame = pfa.rdms_from_patterns(sets, dissim_metrics=["corr", "euclidean_distance"])
    assert len(frame) == 6 * 2
    pfa.testing.assert_rdm_frame(frame, first_order=True)
    assert list(frame.columns) == list(pfa.RDM_COLUMNS) + ["subject"]
    assert set(frame["activation_type"]) == {"measured"}
    assert frame[frame["subject"] == 1]["layer_num"].tolist() == [1, 1, 2, 2, 3, 3]
    for row in frame.itertuples():
        labels, patterns, _ = next(s for s in sets if s[0]["layer"] == row.layer
                                   and s[0]["subject"] == row.subject)
        stacked = np.stack(list(patterns.values()))
        name = {"corr": "correlation", "euclidean_distance": "euclidean"}[row.dissim_metric]
        np.testing.assert_allclose(row.matrix, squareform(pdist(stacked, name)), rtol=1e-10)
        assert row.entry_keys == tuple((s,) for s in STIMULI)


def test_matrices_from_arrays_and_files_in_every_form(tmp_path):
    rng = np.random.default_rng(1)
    square = squareform(pdist(rng.normal(size=(4, 6))))
    np.save(tmp_path / "rdm.npy", square)
    np.savetxt(tmp_path / "rdm.csv", square, delimiter=",")
    scipy.io.savemat(tmp_path / "rdm.mat", {"rdm": square})
    condensed = squareform(square)
    forms = [square, condensed, condensed[None, :], tmp_path / "rdm.npy",
             str(tmp_path / "rdm.csv"), tmp_path / "rdm.mat"]
    sets = [({"model": "behaviour", "layer": "ratings", "form": i}, form, STIMULI, ("stimulus",))
            for i, form in enumerate(forms)]
    frame = pfa.rdms_from_matrices(sets, dissim_metric="euclidean")
    for matrix in frame["matrix"]:
        np.testing.assert_allclose(matrix, square, rtol=1e-12)
    assert set(frame["dissim_metric"]) == {"euclidean"}


def test_measured_and_model_rdms_mix_in_one_meta_rdm(alexnet, tmp_path):
    stimuli = pfa.make_synthetic_stimuli(num_objects=1, colors=(0, 90, 180, 270), size=32)
    image_sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    model = pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, which_layers=["conv1", "fc3"],
                         verbose=False)
    model = model[model["activation_type"] == "unit_level"]
    keys = model["entry_keys"].iloc[0]
    rng = np.random.default_rng(2)
    measured = pfa.rdms_from_patterns(
        [({"model": "fmri", "layer": region, "obj": "obj001"},
          {key: rng.normal(size=30) for key in keys}, ("color",)) for region in ("V1", "IT")])
    both = pd.concat([model, measured], ignore_index=True)
    meta = pfa.get_meta_rdms(both, None, ["model", "layer"], grouping_variables=["obj"],
                             verbose=False)
    assert len(meta) == 1
    entries = meta["entry_keys"][0]
    assert set(entries) >= {("fmri", "V1"), ("fmri", "IT"), ("alexnet", "conv1")}
    stack = {(row.model, row.layer): row.matrix for row in both.itertuples()}
    upper = np.triu_indices(4, 1)
    i, j = entries.index(("fmri", "V1")), entries.index(("alexnet", "conv1"))
    first, second = stack[("fmri", "V1")][upper], stack[("alexnet", "conv1")][upper]
    expected = 1 - np.corrcoef(first, second)[0, 1]
    assert meta["matrix"][0][i, j] == pytest.approx(expected, rel=1e-10)
    path = tmp_path / "both.parquet"
    pfa.save_frame(both, path)
    pfa.testing.assert_frames_identical(pfa.load_frame(path), both)
    pfa.plot_rdm(measured.iloc[:1])
    pfa.rdm_mds(measured.iloc[:1])


def test_bad_sets_are_named():
    good = pattern_sets()[0]
    with pytest.raises(pfa.InvalidInputError, match=r"pattern_sets.*'layer'"):
        pfa.rdms_from_patterns([({"model": "fmri"},) + good[1:]])
    with pytest.raises(pfa.InvalidInputError, match=r"lengths \[3, 40\]"):
        pfa.rdms_from_patterns([(good[0], {**good[1], ("cat",): np.ones(3)}, good[2])])
    with pytest.raises(pfa.InvalidInputError, match=r"at least 2 distinct entry keys"):
        pfa.rdms_from_patterns([(good[0], {("cat",): np.ones(3)}, good[2])])
    labels = {"model": "behaviour", "layer": "ratings"}
    with pytest.raises(pfa.InvalidInputError, match=r"must be 4 x 4.*\(3, 3\)"):
        pfa.rdms_from_matrices([(labels, np.zeros((3, 3)), STIMULI, ("stimulus",))])
    asymmetric = np.array([[0, 1, 2, 3], [1, 0, 1, 1], [2, 1, 0, 1], [3, 5, 1, 0]], float)
    with pytest.raises(pfa.InvalidInputError, match=r"symmetric.*\[3, 1\]"):
        pfa.rdms_from_matrices([(labels, asymmetric, STIMULI, ("stimulus",))])
    with pytest.raises(pfa.InvalidInputError, match="zero diagonal"):
        pfa.rdms_from_matrices([(labels, np.ones((4, 4)), STIMULI, ("stimulus",))])
    with pytest.raises(pfa.InvalidInputError,
                       match=r"'pattern_sets' parameter of rdms_from_patterns"):
        pfa.rdms_from_patterns(None)


def test_rsatoolbox_round_trip_is_exact_and_rsatoolbox_sees_the_same_rdms():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    frame = pfa.rdms_from_patterns(pattern_sets(), dissim_metrics=["corr"])
    frame.loc[0, "matrix"][0, 1] = frame.loc[0, "matrix"][1, 0] = np.nan
    rdms = pfa.to_rsatoolbox(frame)
    assert isinstance(rdms, rsatoolbox.rdm.RDMs)
    assert rdms.n_rdm == len(frame) and rdms.n_cond == len(STIMULI)
    assert rdms.dissimilarity_measure == "corr"
    assert rdms.rdm_descriptors["subject"] == frame["subject"].tolist()
    assert rdms.pattern_descriptors["stimulus"] == list(STIMULI)
    np.testing.assert_array_equal(rdms.get_matrices(), np.stack(frame["matrix"]))
    pfa.testing.assert_frames_identical(pfa.from_rsatoolbox(rdms), frame)
    mixed = pd.concat([frame, pfa.rdms_from_matrices(
        [({"model": "b", "layer": "r"}, np.zeros(3), ["x", "y", "z"], ("stimulus",))])])
    with pytest.raises(pfa.InvalidInputError, match="same entries"):
        pfa.to_rsatoolbox(mixed.reset_index(drop=True))


def test_rdms_made_by_rsatoolbox_become_a_frame():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(3)
    vectors = rng.random((2, 6))
    rdms = rsatoolbox.rdm.RDMs(vectors, dissimilarity_measure="euclidean",
                               rdm_descriptors={"roi": ["V1", "IT"]},
                               pattern_descriptors={"stim": list(STIMULI)})
    frame = pfa.from_rsatoolbox(rdms)
    assert frame["roi"].tolist() == ["V1", "IT"]
    assert frame["dissim_metric"].tolist() == ["euclidean"] * 2
    assert frame["entry_keys"][0] == tuple((s,) for s in STIMULI)
    assert frame["entry_labels"][0][1] == {"stim": "dog"}
    np.testing.assert_array_equal(frame["matrix"][1], squareform(vectors[1]))
    meta = pfa.get_meta_rdms(frame, None, ["roi"], grouping_variables=[], verbose=False)
    assert meta["matrix"][0].shape == (2, 2)
