"""get_rdms against RDMs computed independently (plain torch hooks + scipy)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from scipy.spatial.distance import pdist, squareform
from torchvision import transforms

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import rdms as rdms_module

SMALL = transforms.Compose(
    [
        transforms.Resize(64),
        transforms.CenterCrop(64),
        transforms.ToTensor(),
        transforms.Normalize(pfa.IMAGENET_MEAN, pfa.IMAGENET_STD),
    ]
)

GUIDE_COLUMNS = [
    "df_name", "model", "layer", "layer_num", "layer_label", "dissim_metric", "activation_type",
    "matrix", "entry_keys", "entry_labels", "kernel_set_name", "kernel_inds", "perm",
    "perm_scramble", "dissim_rankings",
]


@pytest.fixture(scope="module")
def alexnet():
    return pfa.prepare_model("alexnet", "random", random_state=3)


@pytest.fixture(scope="module")
def stimuli():
    return pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 90, 180, 270), size=48)


@pytest.fixture(scope="module")
def image_sets(stimuli):
    return pfa.package_image_sets(stimuli, ["color"], ["obj"])


def plain_hook_activations(model, images, transform):
    """Activations of every leaf module call, by forward order, with cloning hooks."""
    batch = torch.stack([transform(image.convert("RGB")) for image in images])
    outputs = []
    handles = [
        module.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
        for module in model.modules()
        if not list(module.children())
    ]
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return batch.numpy().astype(np.float64), [o.numpy().astype(np.float64) for o in outputs]


def reference_rdm(patterns, metric):
    if metric == "spearman":
        rho = scipy.stats.spearmanr(patterns, axis=1)[0]
        matrix = 1 - np.atleast_2d(rho)
        np.fill_diagonal(matrix, 0)
        return matrix
    name = {
        "corr": "correlation",
        "euclidean_distance": "euclidean",
        "cosine": "cosine",
        "sq_euclidean": "sqeuclidean",
        "manhattan": "cityblock",
    }[metric]
    return squareform(pdist(patterns, name))


def assert_frames_equal(left: pd.DataFrame, right: pd.DataFrame):
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        for a, b in zip(left[column], right[column]):
            if isinstance(a, np.ndarray):
                assert a.dtype == b.dtype and np.array_equal(a, b, equal_nan=True)
            else:
                assert type(a) is type(b) and a == b, (column, a, b)


def test_every_metric_and_activation_type_equals_scipy(alexnet, image_sets):
    metrics = list(pfa.METRIC_NAMES)
    image_set = image_sets[0]
    frame = pfa.get_rdms(
        [image_set], {"alexnet": alexnet}, None, dissim_metrics=metrics,
        which_layers={"alexnet": ["conv1", "relu1", "conv5", "fc1", "fc3"]},
        transform=SMALL, verbose=False,
    )
    pixels, outputs = plain_hook_activations(alexnet, list(image_set[1].values()), SMALL)
    by_label = {("original_rgb", 0): pixels}
    for label, array in zip(pfa.fetch_layers(alexnet), outputs):
        by_label[label] = array
    assert sorted(set(frame["layer_label"])) == sorted(
        [("original_rgb", 0), ("conv1", 1), ("relu1", 2), ("conv5", 11), ("fc1", 16), ("fc3", 21)]
    )
    assert len(frame) == 6 * len(metrics) * 2
    for row in frame.itertuples():
        array = by_label[row.layer_label]
        if row.activation_type == "feature_means" and array.ndim == 4:
            array = array.mean(axis=(2, 3))
        expected = reference_rdm(array.reshape(len(array), -1), row.dissim_metric)
        np.testing.assert_allclose(row.matrix, expected, rtol=1e-6, atol=1e-9)
        assert row.matrix.dtype == np.float64


def test_original_rgb_is_pixels_and_channel_means(alexnet, image_sets):
    frame = pfa.get_rdms(
        image_sets[:1], {"alexnet": alexnet}, None, which_layers={"alexnet": ["fc3"]},
        dissim_metrics=["euclidean_distance"], verbose=False,
    )
    pixels = torch.stack(
        [pfa.default_transform()(image) for image in image_sets[0][1].values()]
    ).numpy().astype(np.float64)
    rgb = frame[frame["layer"] == "original_rgb"].set_index("activation_type")["matrix"]
    np.testing.assert_allclose(rgb["unit_level"], squareform(pdist(pixels.reshape(4, -1))), rtol=1e-6)
    np.testing.assert_allclose(rgb["feature_means"], squareform(pdist(pixels.mean(axis=(2, 3)))), rtol=1e-6)
    assert frame.loc[frame["layer"] == "original_rgb", "kernel_inds"].tolist() == [(0, 1, 2)] * 2


def test_guide_example_rows_and_columns(tmp_path, alexnet):
    stimuli = pfa.make_synthetic_stimuli(num_objects=4, colors=(0, 90, 180, 270), size=32)
    image_sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    frame = pfa.get_rdms(
        image_sets, {"alexnet": alexnet}, tmp_path / "demo_rdm.parquet", "one_object_color_rdms",
        dissim_metrics=["corr", "euclidean_distance"], transform=SMALL, verbose=False,
    )
    assert frame.shape == (352, 16)
    assert list(frame.columns) == GUIDE_COLUMNS + ["obj"]
    assert frame["layer"].nunique() == 22
    first = frame.iloc[0]
    assert first["entry_keys"] == (("000",), ("090",), ("180",), ("270",))
    assert first["entry_labels"] == ({"color": "000"}, {"color": "090"}, {"color": "180"}, {"color": "270"})
    assert first["perm"] == "orig_data" and first["perm_scramble"] == [0, 1, 2, 3]
    for matrix in frame["matrix"]:
        assert matrix.shape == (4, 4)
        np.testing.assert_array_equal(matrix, matrix.T)
        np.testing.assert_array_equal(np.diag(matrix), 0)
    assert_frames_equal(pfa.load_frame(tmp_path / "demo_rdm.parquet"), frame)


def test_kernel_sets_select_channels(alexnet, image_sets):
    kernel_sets = [("all", "all"), ("some", {("alexnet", "conv2"): [5, 1, 7]})]
    frame = pfa.get_rdms(
        image_sets[:1], {"alexnet": alexnet}, None, which_layers={"alexnet": ["conv2"]},
        kernel_sets=kernel_sets, dissim_metrics=["corr"], transform=SMALL, verbose=False,
    )
    _, outputs = plain_hook_activations(alexnet, list(image_sets[0][1].values()), SMALL)
    conv2 = outputs[3]
    some = frame[(frame["layer"] == "conv2") & (frame["kernel_set_name"] == "some")]
    assert len(some) == 2 and set(some["kernel_inds"]) == {(5, 1, 7)}
    for row in some.itertuples():
        selected = conv2[:, [5, 1, 7]]
        if row.activation_type == "feature_means":
            selected = selected.mean(axis=(2, 3))
        np.testing.assert_allclose(row.matrix, reference_rdm(selected.reshape(4, -1), "corr"), rtol=1e-6)
    # layers a kernel set does not mention use every channel
    rgb = frame[(frame["layer"] == "original_rgb") & (frame["kernel_set_name"] == "some")]
    assert set(rgb["kernel_inds"]) == {(0, 1, 2)}


def test_permutations_are_recorded_seeded_and_scramble_entries(alexnet, image_sets):
    kwargs = dict(which_layers={"alexnet": ["fc3"]}, num_perms=3, transform=SMALL, verbose=False)
    frame = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, **kwargs)
    again = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, **kwargs)
    other = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, random_state=1, **kwargs)
    assert_frames_equal(frame, again)
    assert frame["perm"].tolist()[:4] == ["orig_data", 1, 2, 3]
    assert frame["perm_scramble"].tolist() != other["perm_scramble"].tolist()
    for (_, group) in frame.groupby(["layer", "activation_type"]):
        original = group[group["perm"] == "orig_data"]["matrix"].iloc[0]
        for row in group[group["perm"] != "orig_data"].itertuples():
            assert sorted(row.perm_scramble) == [0, 1, 2, 3]
            np.testing.assert_array_equal(row.matrix, original[np.ix_(row.perm_scramble, row.perm_scramble)])


def test_combinations_add_entries(alexnet, stimuli):
    images = {(s["color"],): s["path"] for s in stimuli if s["obj"] == "obj001"}
    mean_pattern = ("mean_000_180",), [("000",), ("180",)], np.mean, {"axis": 0}, False
    image_set = ({"obj": "obj001"}, images, ("color",), [mean_pattern])
    frame = pfa.get_rdms(
        [image_set], {"alexnet": alexnet}, None, which_layers={"alexnet": ["fc1"]},
        dissim_metrics=["euclidean_distance"], transform=SMALL, verbose=False,
    )
    _, outputs = plain_hook_activations(alexnet, list(images.values()), SMALL)
    fc1 = outputs[15]
    patterns = np.vstack([fc1, (fc1[0] + fc1[2]) / 2])
    row = frame[(frame["layer"] == "fc1") & (frame["activation_type"] == "unit_level")].iloc[0]
    assert row["entry_keys"][-1] == ("mean_000_180",)
    assert row["entry_labels"][-1] == {"color": "mean_000_180"}
    np.testing.assert_allclose(row["matrix"], squareform(pdist(patterns)), rtol=1e-6)


def test_user_metrics_pairwise_and_matrix(alexnet, image_sets):
    def chebyshev(x, y):
        return float(np.max(np.abs(x - y)))

    def chebyshev_matrix(patterns):
        return squareform(pdist(patterns, "chebyshev"))

    frame = pfa.get_rdms(
        image_sets[:1], {"alexnet": alexnet}, None, which_layers={"alexnet": ["fc3"]},
        dissim_metrics=[("cheb", chebyshev), ("cheb_matrix", chebyshev_matrix, "matrix")],
        transform=SMALL, verbose=False,
    )
    for (_, group) in frame.groupby(["layer", "activation_type"]):
        by_metric = group.set_index("dissim_metric")["matrix"]
        np.testing.assert_allclose(by_metric["cheb"], by_metric["cheb_matrix"], rtol=1e-12)
        assert by_metric["cheb"].max() > 0


def test_which_layers_names_labels_and_errors(alexnet, image_sets, tmp_path):
    frame = pfa.get_rdms(
        image_sets[:1], {"alexnet": alexnet}, None,
        which_layers={"alexnet": ["relu7", ("conv1", 1)]}, transform=SMALL, verbose=False,
    )
    assert frame["layer"].unique().tolist() == ["original_rgb", "conv1", "relu7"]
    with pytest.raises(ValueError, match=r"Unknown layer 'conv9'.*conv1, relu1"):
        pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, which_layers={"alexnet": ["conv9"]})
    with pytest.raises(ValueError, match="not in models_dict"):
        pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, which_layers={"vgg": ["conv1"]})


def test_bad_input_is_refused_before_work(alexnet, image_sets, tmp_path):
    models = {"alexnet": alexnet}
    images = image_sets[0][1]
    with pytest.raises(ValueError, match="at least one image set"):
        pfa.get_rdms([], models, None)
    with pytest.raises(ValueError, match="has 0 entries"):
        pfa.get_rdms([({"obj": "a"}, {}, ("color",), [])], models, None)
    with pytest.raises(ValueError, match="has 1 entry"):
        pfa.get_rdms([({"obj": "a"}, {("000",): images[("000",)]}, ("color",), [])], models, None)
    with pytest.raises(ValueError, match=r"'corr'.*euclidian"):
        pfa.get_rdms(image_sets, models, None, dissim_metrics=["euclidian"])
    missing = str(tmp_path / "missing.png")
    with pytest.raises(FileNotFoundError, match="missing.png"):
        pfa.get_rdms([({"obj": "a"}, {("x",): missing, ("y",): missing}, ("color",), [])], models, None)
    with pytest.raises(ValueError, match=r"rdms\.txt"):
        pfa.get_rdms(image_sets, models, tmp_path / "rdms.txt")
    with pytest.raises(ValueError, match="same labels"):
        pfa.get_rdms([image_sets[0], image_sets[0]], models, None)
    with pytest.raises(ValueError, match="share the entry key"):
        pfa.package_image_sets(
            [{"obj": "a", "color": "1", "path": "x.png"}, {"obj": "a", "color": "1", "path": "y.png"}],
            ["color"], ["obj"],
        )


class Interrupt(RuntimeError):
    pass


def test_resume_after_interruption_gives_the_clean_frame(alexnet, image_sets, tmp_path, monkeypatch):
    kwargs = dict(
        which_layers={"alexnet": ["conv1", "fc3"]}, dissim_metrics=["corr", "euclidean_distance"],
        num_perms=1, transform=SMALL, verbose=False,
    )
    clean = pfa.get_rdms(image_sets, {"alexnet": alexnet}, tmp_path / "clean.parquet", **kwargs)

    real = rdms_module._image_set_rdms
    calls = []
    interrupt_at = [3]

    def interrupted(**task):
        calls.append(task["image_set"][0]["obj"])
        if len(calls) == interrupt_at[0]:
            raise Interrupt("power cut")
        return real(**task)

    monkeypatch.setattr(rdms_module, "_image_set_rdms", interrupted)
    monkeypatch.setattr(rdms_module, "_CHECKPOINT_SHARE", float("inf"))  # save after each
    path = tmp_path / "resumed.parquet"
    with pytest.raises(Interrupt):
        pfa.get_rdms(image_sets, {"alexnet": alexnet}, path, **kwargs)
    saved = pfa.load_frame(path)
    assert sorted(saved["obj"].unique()) == ["obj001", "obj002"]  # finished work was kept

    calls.clear()
    interrupt_at[0] = None
    resumed = pfa.get_rdms(image_sets, {"alexnet": alexnet}, path, **kwargs)
    assert calls == ["obj003"]  # only the unfinished image set ran
    assert_frames_equal(resumed, clean)
    assert_frames_equal(pfa.load_frame(path), clean)

    # a new metric on the same file computes only the new rows
    calls.clear()
    more = pfa.get_rdms(image_sets, {"alexnet": alexnet}, path, **{**kwargs, "dissim_metrics": ["cosine"]})
    assert calls == ["obj001", "obj002", "obj003"]
    assert len(more) == len(clean) * 3 // 2
    assert_frames_equal(more[more["dissim_metric"] != "cosine"].reset_index(drop=True), clean)


def test_pickle_output_and_append_false(alexnet, image_sets, tmp_path):
    path = tmp_path / "rdms.p"
    kwargs = dict(which_layers={"alexnet": ["fc3"]}, transform=SMALL, verbose=False)
    first = pfa.get_rdms(image_sets, {"alexnet": alexnet}, path, **kwargs)
    assert_frames_equal(pd.read_pickle(path), first)
    only_one = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, path, append=False, **kwargs)
    assert set(pfa.load_frame(path, allow_pickle=True)["obj"]) == {"obj001"}
    assert len(only_one) == len(first) // 3


def test_parallel_frame_equals_serial(image_sets):
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(2),
        torch.nn.Flatten(), torch.nn.Linear(16, 5),
    ).eval()
    models = {"tiny": tiny, "tiny_again": tiny}
    kwargs = dict(num_perms=1, dissim_metrics=["corr", "manhattan"], transform=SMALL, verbose=False)
    serial = pfa.get_rdms(image_sets, models, None, **kwargs)
    parallel = pfa.get_rdms(image_sets, models, None, num_cores=2, **kwargs)
    assert_frames_equal(serial, parallel)


def test_models_dict_of_specs_and_duckdb(tmp_path, image_sets):
    duckdb = pytest.importorskip("duckdb")
    path = tmp_path / "rdms.parquet"
    frame = pfa.get_rdms(
        image_sets[:2], {"net": ("alexnet", "random")}, path, which_layers={"net": ["fc3"]},
        transform=SMALL, verbose=False,
    )
    counts = duckdb.sql(f"select obj, count(*) as n from '{path}' group by obj order by obj").fetchall()
    assert counts == [("obj001", 4), ("obj002", 4)]
    assert len(frame) == 8


def test_dissim_rankings_start_with_the_most_dissimilar_pair(alexnet, image_sets):
    frame = pfa.get_rdms(
        image_sets[:1], {"alexnet": alexnet}, None, which_layers={"alexnet": ["conv3"]},
        dissim_metrics=["euclidean_distance"], transform=SMALL, verbose=False,
    )
    for row in frame.itertuples():
        i, j = np.unravel_index(np.argmax(row.matrix), row.matrix.shape)
        assert row.dissim_rankings[:2] == (min(i, j), max(i, j))
        assert sorted(row.dissim_rankings) == [0, 1, 2, 3]


def test_which_layers_of_another_type_is_refused_by_name(alexnet, image_sets):
    with pytest.raises(pfa.InvalidInputError, match=r"'which_layers' parameter of get_rdms.*5"):
        pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, which_layers=5, verbose=False)


def test_which_layers_list_means_those_layers_of_every_model(alexnet, image_sets):
    kwargs = dict(transform=SMALL, verbose=False)
    as_list = pfa.get_rdms(image_sets[:1], {"a": alexnet, "b": alexnet}, None,
                           which_layers=["conv1"], **kwargs)
    as_dict = pfa.get_rdms(image_sets[:1], {"a": alexnet, "b": alexnet}, None,
                           which_layers={"a": ["conv1"], "b": "conv1"}, **kwargs)
    assert set(as_list["layer"]) == {"original_rgb", "conv1"}
    assert_frames_equal(as_list, as_dict)


def test_labels_that_reuse_an_rdm_column_are_refused(alexnet, image_sets):
    image_set = ({"model": "mine"},) + tuple(image_sets[0][1:])
    with pytest.raises(ValueError, match=r"'model'"):
        pfa.get_rdms([image_set], {"alexnet": alexnet}, None, verbose=False)


def test_num_perms_accepts_numpy_ints_and_refuses_bools(alexnet, image_sets):
    kwargs = dict(which_layers={"alexnet": ["fc3"]}, transform=SMALL, verbose=False)
    frame = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, num_perms=np.int64(2), **kwargs)
    assert sorted(frame["perm"].unique(), key=str) == [1, 2, "orig_data"]
    with pytest.raises(ValueError, match="num_perms.*True"):
        pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, num_perms=True, **kwargs)


def test_kernel_sets_naming_an_unknown_layer_or_model_are_refused(alexnet, image_sets):
    kwargs = dict(which_layers={"alexnet": ["fc3"]}, transform=SMALL, verbose=False)
    for key in [("alexnet", "conv9"), ("alexnett", "conv1")]:
        with pytest.raises(ValueError, match=repr(key[1]) if key[1] == "conv9" else "alexnett"):
            pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None,
                         kernel_sets=[("some", {key: [0, 1]})], **kwargs)
    # a known layer that this call does not compute is fine
    frame = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None,
                         kernel_sets=[("some", {("alexnet", "conv1"): [0, 1]})], **kwargs)
    assert set(frame["layer"]) == {"original_rgb", "fc3"}
