"""The user guide's walkthrough, end to end, with the guide's row and column counts."""

from __future__ import annotations

import numpy as np
import pytest
from torchvision import transforms

import pytorch_feature_analysis as pfa

SMALL = transforms.Compose(
    [
        transforms.Resize(64),
        transforms.CenterCrop(64),
        transforms.ToTensor(),
        transforms.Normalize(pfa.IMAGENET_MEAN, pfa.IMAGENET_STD),
    ]
)
OBJECTS = ["obj001", "obj002", "obj003", "obj004"]
COLORS = ["000", "090", "180", "270"]


@pytest.fixture(scope="module")
def stimuli():
    return pfa.make_synthetic_stimuli(num_objects=4, colors=(0, 90, 180, 270), size=48)


@pytest.fixture(scope="module")
def rdm_df(stimuli, tmp_path_factory):
    models = pfa.prepare_models({"alexnet": ("alexnet", "random")})
    image_sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    out = tmp_path_factory.mktemp("analysis") / "demo_rdm.parquet"
    return pfa.get_rdms(
        image_sets, models, out, "one_object_color_rdms",
        dissim_metrics=["corr", "euclidean_distance"], transform=SMALL, verbose=False,
    )


@pytest.fixture(scope="module")
def meta_rdm(rdm_df, tmp_path_factory):
    return pfa.get_meta_rdms(
        rdm_df, tmp_path_factory.mktemp("meta") / "demo_meta.parquet",
        dissim_metrics=["corr", "euclidean_distance"], entry_variables=["obj"],
        grouping_variables=["model", "layer", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_meta_rdm", verbose=False,
    )


def upper(matrix):
    return matrix[np.triu_indices(len(matrix), 1)]


def test_first_order_frame(rdm_df):
    assert rdm_df.shape == (352, 16)


def test_second_order_matches_numpy(rdm_df, meta_rdm):
    assert meta_rdm.shape == (176, 14)
    assert list(meta_rdm.columns) == [
        "activation_type", "df_name", "dissim_metric", "dissim_metric_sub", "dissim_rankings",
        "entry_keys", "entry_keys_sub", "entry_labels", "entry_labels_sub", "entry_var_subset",
        "layer", "matrix", "model", "perm",
    ]
    row = pfa.df_filter(meta_rdm, [("layer", "conv2"), ("activation_type", "unit_level"),
                                   ("dissim_metric", "corr"), ("dissim_metric_sub", "euclidean_distance")])
    assert len(row) == 1
    row = row.iloc[0]
    assert row["entry_keys"] == tuple((obj,) for obj in OBJECTS)
    assert row["entry_keys_sub"] == tuple((color,) for color in COLORS)
    subs = pfa.df_filter(rdm_df, [("layer", "conv2"), ("activation_type", "unit_level"),
                                  ("dissim_metric", "euclidean_distance")])
    vectors = [upper(subs[subs["obj"] == obj]["matrix"].iloc[0]) for obj in OBJECTS]
    expected = 1 - np.corrcoef(np.array(vectors))
    np.fill_diagonal(expected, 0)
    np.testing.assert_allclose(row["matrix"], expected, rtol=1e-9, atol=1e-12)


def test_objects_and_layers_then_third_order(rdm_df, tmp_path):
    by_layer = pfa.get_meta_rdms(
        rdm_df, tmp_path / "meta_layers.parquet", dissim_metrics=["corr", "euclidean_distance"],
        entry_variables=["obj", "layer"], grouping_variables=["model", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_meta_rdm", verbose=False,
    )
    assert len(by_layer) == 8
    assert all(matrix.shape == (88, 88) for matrix in by_layer["matrix"])
    third = pfa.get_meta_rdms(
        by_layer, tmp_path / "meta_meta.parquet", dissim_metrics=["corr", "euclidean_distance"],
        entry_variables=["activation_type"], grouping_variables=["model", "dissim_metric", "dissim_metric_sub"],
        df_name="color_space_across_objects_meta_rdm", verbose=False,
    )
    assert len(third) == 8 and "dissim_metric_sub_sub" in third.columns
    row = pfa.df_filter(third, [("dissim_metric", "euclidean_distance"), ("dissim_metric_sub", "corr"),
                                ("dissim_metric_sub_sub", "corr")]).iloc[0]
    subs = pfa.df_filter(by_layer, [("dissim_metric", "corr"), ("dissim_metric_sub", "corr")])
    vectors = {row_.activation_type: upper(row_.matrix) for row_ in subs.itertuples()}
    expected = np.linalg.norm(vectors["feature_means"] - vectors["unit_level"])
    assert row["entry_keys"] == (("feature_means",), ("unit_level",))
    assert row["matrix"][0, 1] == pytest.approx(expected, rel=1e-9)

    # the guide's trajectory plot: every object through every layer, pictures at fc3
    layers = list(rdm_df["layer"].unique())
    trajectories = [([(obj, layer) for layer in layers], {"linewidth": 1, "c": "black"}) for obj in OBJECTS]
    pictures = {(obj, "fc3"): pfa.make_synthetic_stimuli(4, colors=(0,), size=16)[i]["path"]
                for i, obj in enumerate(OBJECTS)}
    to_plot = pfa.df_subset(by_layer, [("model", "alexnet"), ("activation_type", "unit_level"),
                                       ("dissim_metric", "corr"), ("dissim_metric_sub", "corr")])
    result = pfa.rdm_mds(to_plot, line_trajectories=trajectories, cond_pics=pictures, show=False,
                         return_result=True)
    assert result.coords.shape == (88, 2)
    assert len(result.ax.lines) >= len(OBJECTS)


def test_mds_of_one_rdm_with_pictures(rdm_df, stimuli):
    to_plot = pfa.df_filter(rdm_df, [("model", "alexnet"), ("layer", "conv1"), ("activation_type", "unit_level"),
                                     ("obj", "obj001"), ("dissim_metric", "corr")])
    pictures = {(s["color"],): s["path"] for s in stimuli if s["obj"] == "obj001"}
    stress = pfa.rdm_mds(to_plot, cond_pics=pictures, show=False)
    assert isinstance(stress, float) and stress >= 0


def test_extreme_dissims_of_the_guide():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(1000, 1000))
    matrix = (matrix + matrix.T) / 2
    np.fill_diagonal(matrix, 0)
    output_rdm, inds = pfa.get_extreme_dissims_total(matrix, 50)
    assert abs(matrix.mean()) < 0.01
    assert output_rdm.mean() > 0.25
    assert len(set(inds)) == 50
    np.testing.assert_array_equal(output_rdm, matrix[np.ix_(inds, inds)])

