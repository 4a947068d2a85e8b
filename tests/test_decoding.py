"""Pairwise decoding checked against direct scikit-learn computations."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.linear_model import RidgeClassifier
from sklearn.model_selection import LeaveOneGroupOut, LeaveOneOut, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis.decoding import run_2way_svm_analysis
from tiny import tiny_model, to_tensor64

COLOURS = ("red", "green", "blue")
SHAPES = ("disc", "bar", "ring")
BACKGROUNDS = ("light", "dark")
LAYERS = [("conv1", 1), ("fc1", 7)]


def make_image_list(replicates=1, seed=0):
    """Noisy images whose colour and shape leave weak traces, so accuracies vary."""
    rng = np.random.default_rng(seed)
    colour_shift = rng.uniform(-0.06, 0.06, size=(len(COLOURS), 3))
    shape_pattern = rng.uniform(-0.06, 0.06, size=(len(SHAPES), 16, 16, 3))
    image_list = []
    for background, base in zip(BACKGROUNDS, (0.6, 0.4)):
        for (c, colour), (s, shape) in itertools.product(enumerate(COLOURS), enumerate(SHAPES)):
            for _ in range(replicates):
                noise = rng.normal(0, 0.12, size=(16, 16, 3))
                pixels = np.clip(base + colour_shift[c] + shape_pattern[s] + noise, 0, 1)
                image_list.append(
                    {"colour": colour, "shape": shape, "background": background, "path": pixels}
                )
    return image_list


def run(image_list, **kwargs):
    options = dict(
        var1="colour", var2="shape", grouping_vars=["background"],
        models_dict={"tiny": tiny_model()}, which_layers={"tiny": ["conv1", ("fc1", 7)]},
        analysis_name="test", save_path=None, transform=to_tensor64, batch_size=5, verbose=False,
    )
    options.update(kwargs)
    return run_2way_svm_analysis(image_list, **options)


def group_features(image_list, background, activation_type="unit_level"):
    members = [image for image in image_list if image["background"] == background]
    acts = pfa.get_activations([image["path"] for image in members], tiny_model(),
                               ["conv1", "fc1"], transform=to_tensor64, verbose=False)
    features = {label: pfa.activation_patterns(acts[label], activation_type) for label in LAYERS}
    return members, features


def pair_data(members, features, decoded, bins):
    """The two levels' images in image_list order, labels, and position within level."""
    firsts = [k for k, image in enumerate(members) if image[decoded] == bins[0]]
    seconds = [k for k, image in enumerate(members) if image[decoded] == bins[1]]
    x = features[firsts + seconds]
    y = np.repeat([0, 1], [len(firsts), len(seconds)])
    position = np.concatenate([np.arange(len(firsts)), np.arange(len(seconds))])
    return x, y, position, [members[k] for k in firsts + seconds]


def rows_of(frame, **where):
    mask = np.ones(len(frame), dtype=bool)
    for column, value in where.items():
        mask &= frame[column].map(lambda v, value=value: v == value).to_numpy()
    return frame[mask]


@pytest.fixture(scope="module")
def image_list():
    return make_image_list()


@pytest.fixture(scope="module")
def result(image_list):
    return run(image_list)


def test_columns_and_rows(result):
    assert list(result.columns) == [
        "analysis_name", "model", "layer_label", "layer", "layer_num", "activation_type",
        "decoded_variable", "other_variable", "background", "decoding_type", "bin1", "bin2",
        "train_level", "test_level", "acc",
    ]
    # 2 groups x 2 layers x 2 variables x 3 pairs x (1 within + 3 x 2 cross)
    assert len(result) == 2 * 2 * 2 * 3 * 7
    within = result[result["decoding_type"] == "within"]
    assert within["train_level"].isna().all() and within["test_level"].isna().all()
    assert set(result["layer_label"]) == set(LAYERS)
    assert (result["layer"] == result["layer_label"].str[0]).all()
    assert (result["layer_num"] == result["layer_label"].str[1]).all()
    assert set(zip(result["decoded_variable"], result["other_variable"])) == {
        ("colour", "shape"), ("shape", "colour")
    }
    first = result.iloc[0]
    assert (first["background"], first["layer_label"], first["decoded_variable"],
            first["bin1"], first["bin2"]) == ("light", ("conv1", 1), "colour", "red", "green")
    assert result["acc"].between(0, 1).all()
    assert result["acc"].nunique() > 3  # the images are noisy enough to make errors


def test_within_accuracy_equals_leave_one_pair_out_cross_val_score(image_list, result):
    for background in BACKGROUNDS:
        members, features = group_features(image_list, background)
        for label, decoded in itertools.product(LAYERS, ("colour", "shape")):
            levels = COLOURS if decoded == "colour" else SHAPES
            for bins in itertools.combinations(levels, 2):
                x, y, position, _ = pair_data(members, features[label], decoded, bins)
                expected = cross_val_score(
                    SVC(kernel="linear", C=1), x, y, groups=position, cv=LeaveOneGroupOut()
                ).mean()
                row = rows_of(result, background=background, layer_label=label,
                              decoded_variable=decoded, decoding_type="within",
                              bin1=bins[0], bin2=bins[1])
                assert len(row) == 1
                assert row["acc"].iloc[0] == pytest.approx(expected, abs=1e-12)


def test_default_folds_hold_out_the_kth_image_of_each_level(image_list, result):
    """The original library's scheme, written out for one pair."""
    members, features = group_features(image_list, "dark")
    x, y, position, _ = pair_data(members, features[("fc1", 7)], "shape", ("disc", "ring"))
    correct = []
    for k in range(3):
        clf = SVC(kernel="linear", C=1).fit(x[position != k], y[position != k])
        correct.extend(clf.predict(x[position == k]) == y[position == k])
    row = rows_of(result, background="dark", layer_label=("fc1", 7), decoded_variable="shape",
                  decoding_type="within", bin1="disc", bin2="ring")
    assert row["acc"].iloc[0] == pytest.approx(np.mean(correct), abs=1e-12)


def test_cross_decoding_equals_direct_fit_and_score(image_list, result):
    for background in BACKGROUNDS:
        members, features = group_features(image_list, background)
        for label in LAYERS:
            for decoded, other, levels, other_levels in (
                ("colour", "shape", COLOURS, SHAPES), ("shape", "colour", SHAPES, COLOURS)
            ):
                for bins in itertools.combinations(levels, 2):
                    x, y, _, images = pair_data(members, features[label], decoded, bins)
                    other_values = np.array([image[other] for image in images])
                    for train, test in itertools.permutations(other_levels, 2):
                        fitted = SVC(kernel="linear", C=1).fit(x[other_values == train],
                                                               y[other_values == train])
                        expected = fitted.score(x[other_values == test], y[other_values == test])
                        row = rows_of(result, background=background, layer_label=label,
                                      decoded_variable=decoded, decoding_type="cross",
                                      bin1=bins[0], bin2=bins[1], train_level=train,
                                      test_level=test)
                        assert len(row) == 1
                        assert row["acc"].iloc[0] == pytest.approx(expected, abs=1e-12)


def test_custom_estimator_and_leave_one_out(image_list):
    estimator = make_pipeline(StandardScaler(), RidgeClassifier(alpha=2.0))
    replicated = make_image_list(replicates=2, seed=1)
    frame = run(replicated, estimator=estimator, cv=LeaveOneOut(), cross_decoding=False,
                which_layers={"tiny": ["fc1"]}, activation_type="feature_means")
    assert set(frame["decoding_type"]) == {"within"}
    assert (frame["activation_type"] == "feature_means").all()
    members, features = group_features(replicated, "light", activation_type="feature_means")
    for bins in itertools.combinations(COLOURS, 2):
        x, y, _, _ = pair_data(members, features[("fc1", 7)], "colour", bins)
        assert len(x) == 12  # 3 shapes x 2 replicates per colour
        expected = cross_val_score(estimator, x, y, cv=LeaveOneOut()).mean()
        row = rows_of(frame, background="light", decoded_variable="colour",
                      bin1=bins[0], bin2=bins[1])
        assert row["acc"].iloc[0] == pytest.approx(expected, abs=1e-12)


def test_two_cores_give_the_same_frame(image_list, result):
    parallel = run(image_list, num_cores=2, which_layers={"tiny": ["fc1"]})
    expected = result[result["layer"] == "fc1"].reset_index(drop=True)
    pd.testing.assert_frame_equal(parallel, expected)


def test_models_given_as_specs_are_prepared(image_list):
    frame = run(image_list[:9], grouping_vars=[], models_dict={"net": (tiny_model(), "trained")},
                which_layers={"net": ["fc1"]}, cross_decoding=False)
    assert "background" not in frame.columns
    assert len(frame) == 2 * 3 and (frame["model"] == "net").all()


def test_saved_as_parquet_and_csv_and_appended(tmp_path, image_list, result):
    fc1 = {"which_layers": {"tiny": ["fc1"]}, "cross_decoding": False}
    expected = result[(result["layer"] == "fc1") & (result["decoding_type"] == "within")]
    expected = expected.reset_index(drop=True)
    parquet = tmp_path / "svm.parquet"
    pd.testing.assert_frame_equal(run(image_list, save_path=parquet, **fc1), expected)
    pd.testing.assert_frame_equal(pfa.load_frame(parquet), expected)
    run(image_list, save_path=parquet, **fc1)  # appended, as the original library did
    pd.testing.assert_frame_equal(
        pfa.load_frame(parquet), pd.concat([expected, expected], ignore_index=True)
    )
    run(image_list, save_path=parquet, append=False, **fc1)
    pd.testing.assert_frame_equal(pfa.load_frame(parquet), expected)
    csv = tmp_path / "svm.csv"
    run(image_list, save_path=csv, **fc1)
    loaded = pd.read_csv(csv)
    assert loaded["layer_label"].tolist() == [str(label) for label in expected["layer_label"]]
    np.testing.assert_allclose(loaded["acc"], expected["acc"])


def test_errors_name_the_problem(image_list):
    unbalanced = [image for image in image_list
                  if not (image["colour"] == "blue" and image["shape"] == "ring")]
    cell = r"balanced crossed design.*0 image\(s\) for \('blue', 'ring'\)"
    with pytest.raises(ValueError, match=cell):
        run(unbalanced)
    lacking = [dict(image) for image in image_list]
    del lacking[4]["shape"]
    with pytest.raises(ValueError, match=r"Image 4 of image_list .* lacks \['shape'\]"):
        run(lacking)
    with pytest.raises(ValueError, match="Unknown layer 'conv7' of model 'tiny'"):
        run(image_list, which_layers={"tiny": ["conv7"]})
    with pytest.raises(ValueError, match=r"'which_layers' parameter .* got \['alexnet'\]"):
        run(image_list, which_layers={"alexnet": ["conv1"]})
    with pytest.raises(ValueError, match="'estimator' parameter"):
        run(image_list, estimator="svm")
    with pytest.raises(ValueError, match="'grouping_vars' parameter"):
        run(image_list, grouping_vars=["colour"])
    with pytest.raises(ValueError, match="ending in one of"):
        run(image_list, save_path="results.xlsx")


def test_a_tight_budget_extracts_layers_in_several_passes_with_the_same_result(image_list, result,
                                                                               monkeypatch):
    from pytorch_feature_analysis import decoding

    passes = []
    real = decoding.get_activations

    def spy(images, model, layers, **kwargs):
        passes.append(list(layers))
        return real(images, model, layers, **kwargs)

    monkeypatch.setattr(decoding, "get_activations", spy)
    # One batch of 5 images: 4 x 5 x 1024 units x 4 bytes = 81,920 bytes; conv1 of a group
    # (9 images x 1024 units, held twice, float32) 73,728 bytes, fc1 504: room for one only.
    bounded = run(image_list, max_memory=81_920 + 73_728 + 200)
    assert [len(layers) for layers in passes] == [1, 1, 1, 1]  # 2 groups x 2 passes
    pd.testing.assert_frame_equal(bounded, result)
    with pytest.raises(pfa.InvalidInputError, match="'max_memory' parameter of run_2way_svm"):
        run(image_list, max_memory=1000)


def test_appending_with_other_weights_replaces_that_models_rows(tmp_path, image_list):
    path = tmp_path / "svm.parquet"
    fc1 = {"which_layers": {"tiny": ["fc1"]}, "cross_decoding": False, "save_path": path}
    first = run(image_list, **fc1)
    other = tiny_model()
    with torch.no_grad():
        other[-1].weight.mul_(-1.0)
    with pytest.raises(pfa.InvalidInputError, match="weights"):
        run(image_list, models_dict={"tiny": other}, on_change="error", **fc1)
    assert len(pfa.load_frame(path)) == len(first)
    second = run(image_list, models_dict={"tiny": other}, **fc1)
    pd.testing.assert_frame_equal(pfa.load_frame(path), second)  # the old rows were replaced
    run(image_list, models_dict={"tiny": other}, **fc1)  # same weights: appended, as before
    assert len(pfa.load_frame(path)) == 2 * len(first)
