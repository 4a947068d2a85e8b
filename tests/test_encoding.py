"""Encoding models, probes, pooled activation types and HRF convolution, checked against
scikit-learn, scipy and numpy run directly."""

import warnings

import numpy as np
import pandas as pd
import torch
import pytest
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.metrics import confusion_matrix, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_validate
from sklearn.pipeline import make_pipeline

import pytorch_feature_analysis as pfa
from tiny import smallest_budget, tiny_model, to_tensor64

MODEL = tiny_model()
N_IMAGES = 24
ALPHAS = (0.01, 1.0, 100.0, 1e4, 1e6)


def images(count=N_IMAGES):
    rng = np.random.default_rng(3)
    return [rng.uniform(0, 1, size=(16, 16, 3)) for _ in range(count)]


IMAGES = images()
KEYS = [f"im{i:02d}" for i in range(N_IMAGES)]


def features(layer, dtype=np.float64):
    """The layer's units as the library hands them to estimators (float32), or in float64."""
    acts = pfa.get_activations(IMAGES, MODEL, [layer], transform=to_tensor64, verbose=False)
    return next(iter(acts.values())).reshape(N_IMAGES, -1).astype(dtype)


def voxels(layer="fc1", count=3, noise=0.5):
    """Simulated responses: linear functions of a layer's units plus noise."""
    rng = np.random.default_rng(7)
    x = features(layer)
    values = x @ rng.normal(size=(x.shape[1], count)) + noise * rng.normal(size=(N_IMAGES, count))
    return pd.DataFrame(values, index=KEYS, columns=[f"v{i}" for i in range(count)])


def fit(responses, layers, **kwargs):
    return pfa.fit_encoding_models(dict(zip(KEYS, IMAGES)), {"tiny": MODEL}, responses, layers,
                                   transform=to_tensor64, verbose=False, **kwargs)


def fold_pearson(truth, predictions, folds):
    return [stats.pearsonr(predictions[test], truth[test])[0] for _train, test in folds]


def kfold(cv=4, seed=0):
    return list(KFold(cv, shuffle=True, random_state=seed).split(np.zeros(N_IMAGES)))


def test_default_ridge_equals_sklearn_ridgecv_on_the_same_folds():
    responses = voxels()
    result = fit(responses, ["conv2", "fc1"], cv=4, alphas=ALPHAS, random_state=5)
    folds = kfold(seed=5)
    assert list(result["layer"]) == ["conv2"] * 3 + ["fc1"] * 3
    assert list(result["target"]) == ["v0", "v1", "v2"] * 2
    for layer in ("conv2", "fc1"):
        x, rows = features(layer), result[result["layer"] == layer]
        ridge = RidgeCV(alphas=ALPHAS, alpha_per_target=True)
        predicted = cross_val_predict(ridge, x, responses.to_numpy(), cv=folds)
        fitted = cross_validate(ridge, x, responses.to_numpy(), cv=folds, return_estimator=True)
        for t, row in enumerate(rows.itertuples()):
            expected = fold_pearson(responses.to_numpy()[:, t], predicted[:, t], folds)
            np.testing.assert_allclose(row.fold_scores, expected, rtol=1e-7, atol=1e-9)
            assert row.score == pytest.approx(np.mean(expected), rel=1e-7)
            assert row.alphas == tuple(est.alpha_[t] for est in fitted["estimator"])
    assert result["score"].iloc[3:].mean() > result["score"].iloc[:3].mean()


def test_the_default_ridge_builds_a_layer_from_channel_slices_under_a_tight_budget():
    responses = voxels("conv1", count=2)
    whole = fit(responses, ["conv1"], cv=4, alphas=ALPHAS)
    image_set = [({"set": "a"}, {(key,): image for key, image in zip(KEYS, IMAGES)}, ("key",),
                  [])]
    planned = dict(which_layers=["conv1"], dissim_metrics=["euclidean_distance"],
                   activation_types=["unit_level"], transform=to_tensor64)
    tight = smallest_budget(image_set, {"tiny": MODEL}, **planned) + 50
    assert pfa.plan_rdms(image_set, {"tiny": MODEL}, max_memory=tight, **planned)[
        "sliced_layers"][0] >= 1  # conv1 (and the pixels) built from channel slices
    sliced = fit(responses, ["conv1"], cv=4, alphas=ALPHAS, max_memory=tight)
    for got, expected in zip(sliced.itertuples(), whole.itertuples()):
        np.testing.assert_allclose(got.fold_scores, expected.fold_scores, rtol=1e-9)
        assert got.alphas == expected.alphas


def test_any_estimator_and_scorer_equal_sklearn_run_directly():
    responses = voxels("conv2", count=2)
    folds = kfold()
    x = features("conv2", np.float32)
    for estimator in (make_pipeline(PCA(3), LinearRegression()), PLSRegression(2)):
        result = fit(responses, ["conv2"], cv=4, estimator=estimator, scoring="r2")
        predicted = cross_val_predict(estimator, x, responses.to_numpy(), cv=folds)
        for t, row in enumerate(result.itertuples()):
            expected = [r2_score(responses.to_numpy()[test, t], predicted[test, t])
                        for _train, test in folds]
            np.testing.assert_allclose(row.fold_scores, expected, rtol=1e-6, atol=1e-9)
        assert "alphas" not in result


def test_pca_is_fitted_on_the_training_images_of_each_fold_only():
    responses = voxels("conv2", count=2, noise=5.0)
    folds = kfold()
    x, y = features("conv2"), responses.to_numpy()
    result = fit(responses, ["conv2"], cv=4, alphas=ALPHAS, n_components=3)
    within = cross_val_predict(make_pipeline(PCA(3), RidgeCV(alphas=ALPHAS,
                                                             alpha_per_target=True)),
                               x, y, cv=folds)
    leaked = cross_val_predict(RidgeCV(alphas=ALPHAS, alpha_per_target=True),
                               PCA(3).fit_transform(x), y, cv=folds)
    for t, row in enumerate(result.itertuples()):
        np.testing.assert_allclose(row.fold_scores, fold_pearson(y[:, t], within[:, t], folds),
                                   rtol=1e-6, atol=1e-9)
        assert not np.allclose(row.fold_scores, fold_pearson(y[:, t], leaked[:, t], folds),
                               atol=1e-3)


def test_univariate_mode_finds_the_unit_a_brute_force_search_finds():
    responses = voxels("conv2", count=3, noise=2.0)
    result = fit(responses, ["conv2"], cv=3, mode="uv")
    folds = kfold(3)
    x, y = features("conv2"), responses.to_numpy()
    for t, row in enumerate(result.itertuples()):
        best, best_scores = -np.inf, None
        for unit in range(x.shape[1]):
            if np.ptp(x[:, unit]) == 0:
                continue
            predicted = cross_val_predict(LinearRegression(), x[:, [unit]], y[:, t], cv=folds)
            with warnings.catch_warnings():  # constant within a fold: r is undefined (NaN)
                warnings.simplefilter("ignore")
                scores = fold_pearson(y[:, t], predicted, folds)
            if np.mean(scores) > best:
                best, best_unit, best_scores = np.mean(scores), unit, scores
        assert row.unit == best_unit
        assert (row.channel, row.row, row.col) == np.unravel_index(best_unit, (5, 6, 6))
        np.testing.assert_allclose(row.fold_scores, best_scores, rtol=1e-9)


def test_returned_models_make_the_same_predictions():
    responses = voxels("fc1", count=2)
    result = fit(responses, ["fc1"], cv=3, alphas=ALPHAS, return_models=True)
    x, y = features("fc1", np.float32), responses.to_numpy()
    folds = kfold(3)
    predicted = np.empty_like(y)
    for (train, test), model, alphas in zip(folds, result.loc[0, "models"],
                                            zip(*result["alphas"])):
        np.testing.assert_array_equal(model.alpha, alphas)
        predicted[test] = model.predict(x[test].astype(np.float64))
    for t, row in enumerate(result.itertuples()):
        np.testing.assert_allclose(row.fold_scores, fold_pearson(y[:, t], predicted[:, t], folds),
                                   rtol=1e-6)
    assert "models" not in fit(responses, ["fc1"], cv=3)


def test_classification_probes_equal_sklearn_with_stratified_folds():
    x = features("fc1", np.float32)
    labels = np.where(x[:, 0] > np.median(x[:, 0]), "high", "low")
    shapes = np.array(["a", "b", "c"] * 8)
    behaviour = pd.DataFrame({"size": labels, "shape": shapes}, index=KEYS)
    result = fit(behaviour, ["fc1"], cv=4, task="classification", random_state=2)
    for column, row in zip(behaviour, result.itertuples()):
        truth = behaviour[column].to_numpy()
        folds = list(StratifiedKFold(4, shuffle=True, random_state=2).split(x, truth))
        predicted = cross_val_predict(LogisticRegression(max_iter=1000), x, truth, cv=folds)
        expected = [np.mean(predicted[test] == truth[test]) for _train, test in folds]
        assert row.target == column
        np.testing.assert_allclose(row.fold_scores, expected)
        assert row.classes == tuple(sorted(set(truth)))
        np.testing.assert_array_equal(
            row.confusion, confusion_matrix(truth, predicted, labels=list(row.classes)))
    assert result.loc[0, "score"] > result.loc[1, "score"]


def test_pooled_activation_types_equal_numpy():
    rng = np.random.default_rng(0)
    acts = rng.normal(size=(3, 4, 5, 6)).astype(np.float32)
    flat = acts.reshape(3, 4, -1).astype(np.float64)
    expected = {"max_pool": flat.max(axis=2), "median_pool": np.median(flat, axis=2),
                "l1_pool": np.abs(flat).sum(axis=2), "l2_pool": np.sqrt((flat ** 2).sum(axis=2)),
                "feature_means": flat.mean(axis=2)}
    for how, values in expected.items():
        np.testing.assert_allclose(pfa.pool_channels(acts, how).numpy(), values, rtol=1e-12)
        np.testing.assert_allclose(pfa.activation_patterns(acts, how), values, rtol=1e-6, atol=1e-7)
    odd = acts[:, :, :, :5]
    np.testing.assert_allclose(pfa.pool_channels(odd, "median_pool").numpy(),
                               np.median(odd.reshape(3, 4, -1), axis=2), rtol=1e-7)
    masked = pfa.activation_patterns(acts, "l2_pool", kernel_inds=[3, 1], positions=([0, 4], None))
    np.testing.assert_allclose(
        masked, np.sqrt((acts[:, [3, 1]][:, :, [0, 4]].astype(np.float64) ** 2).sum(axis=(2, 3))),
        rtol=1e-6)
    with pytest.raises(pfa.InvalidInputError, match="'activation_type'.*'sum_pool'"):
        pfa.activation_patterns(acts, "sum_pool")


def test_pooled_features_feed_the_encoding_models():
    responses = voxels("conv2", count=2)
    result = fit(responses, ["conv2"], cv=4, alphas=ALPHAS, activation_type="max_pool")
    captured = []  # the float64 model's conv2 outputs, hooked independently
    handle = MODEL[3].register_forward_hook(lambda module, inputs, out: captured.append(out))
    with torch.no_grad():
        MODEL(pfa.preprocess_images(IMAGES, to_tensor64))
    handle.remove()
    pooled = captured[0].numpy().reshape(N_IMAGES, 5, -1).max(axis=2)
    folds = kfold()
    predicted = cross_val_predict(RidgeCV(alphas=ALPHAS, alpha_per_target=True), pooled,
                                  responses.to_numpy(), cv=folds)
    for t, row in enumerate(result.itertuples()):
        assert row.activation_type == "max_pool"
        np.testing.assert_allclose(
            row.fold_scores, fold_pearson(responses.to_numpy()[:, t], predicted[:, t], folds),
            rtol=1e-6)


def direct_hrf_design(values, onsets, durations, n_volumes, tr, oversampling):
    """Each volume as a sum over events and time bins of value x the double gamma (SPM)."""
    step = tr / oversampling
    times = np.arange(0, 32 + step / 2, step)
    shape = stats.gamma.pdf(times, 6) - stats.gamma.pdf(times, 16) / 6
    shape = shape / shape.sum()
    design = np.zeros((n_volumes, values.shape[1]))
    for volume in range(n_volumes):
        for value, onset, duration in zip(values, onsets, durations):
            first = round(onset / step)
            for bin_ in range(first, max(first + 1, round((onset + duration) / step))):
                lag = volume * oversampling - bin_
                if 0 <= lag < len(shape) and bin_ < n_volumes * oversampling:
                    design[volume] += value * shape[lag]
    return design


def test_convolve_hrf_equals_a_direct_sum_with_spms_double_gamma():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(6, 3))
    onsets, durations = [0.0, 3.5, 9.0, 20.25, 31.0, 70.0], [1.0, 0.0, 4.0, 2.0, 0.5, 3.0]
    design = pfa.convolve_hrf(values, onsets, durations, n_volumes=30, tr=2.0, oversampling=8)
    np.testing.assert_allclose(design, direct_hrf_design(values, onsets, durations, 30, 2.0, 8),
                               atol=1e-12)
    frame = pd.DataFrame(values, columns=["a", "b", "c"])
    as_frame = pfa.convolve_hrf(frame, onsets, durations, 30, 2.0, oversampling=8)
    assert list(as_frame.columns) == ["a", "b", "c"]
    np.testing.assert_array_equal(as_frame.to_numpy(), design)
    impulse = pfa.convolve_hrf([1.0], [0.0], [0.0], n_volumes=20, tr=1.0, oversampling=1)
    assert int(np.argmax(impulse)) == 5  # SPM's canonical response peaks at 5 s
    with pytest.raises(pfa.InvalidInputError, match="'onsets' parameter of convolve_hrf"):
        pfa.convolve_hrf(values, onsets[:2], durations, 30, 2.0)


def counting_model():
    model = tiny_model()
    model.calls = 0

    def count(*_args):
        model.calls += 1

    model.register_forward_pre_hook(count)
    return model


def with_gap():
    responses = voxels()
    responses.loc["im02", ["v0", "v2"]] = np.nan
    return responses


@pytest.mark.parametrize("change, message", [
    (lambda: dict(responses=voxels().rename(index={"im03": "other"})),
     r"no row for the images \['im03'\].*unknown keys \['other'\]"),
    (lambda: dict(responses=with_gap()), r"missing values in the columns \['v0', 'v2'\]"),
    (lambda: dict(cv=30), r"'cv' parameter.*at most the number of images \(24\)"),
    (lambda: dict(estimator=PCA(2)), "'estimator' parameter.*fit and predict"),
    (lambda: dict(activation_type="mean_pool"), "'activation_type' parameter.*'mean_pool'"),
    (lambda: dict(mode="uv", estimator=LinearRegression()), "'estimator'.*mode='uv'"),
    (lambda: dict(scoring="no_such_scorer"), "'scoring' parameter"),
    (lambda: dict(mode="both"), "'mode' parameter"),
    (lambda: dict(alphas=[1.0, -1.0]), "'alphas' parameter"),
    (lambda: dict(n_components=100), "'n_components' parameter"),
])
def test_bad_input_is_named_before_any_forward_pass(change, message):
    model = counting_model()
    args = dict(images=dict(zip(KEYS, IMAGES)), models_dict={"tiny": model},
                responses=voxels(), which_layers=["fc1"], transform=to_tensor64, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=message):
        pfa.fit_encoding_models(**{**args, **change()})
    assert model.calls == 0


def test_a_list_of_images_is_keyed_by_position_and_inputs_are_not_changed():
    responses = voxels().reset_index(drop=True)
    copy = responses.copy()
    result = pfa.fit_encoding_models(IMAGES, {"tiny": MODEL}, responses, "fc1", cv=3,
                                     transform=to_tensor64, verbose=False)
    keyed = fit(voxels(), ["fc1"], cv=3)
    pd.testing.assert_series_equal(result["score"], keyed["score"])
    pd.testing.assert_frame_equal(responses, copy)


def pooled_numpy(acts, how):
    flat = acts.reshape(len(acts), acts.shape[1], -1).astype(np.float64)
    return {"max_pool": lambda: flat.max(axis=2), "median_pool": lambda: np.median(flat, axis=2),
            "l1_pool": lambda: np.abs(flat).sum(axis=2),
            "l2_pool": lambda: np.sqrt((flat ** 2).sum(axis=2))}[how]()


def test_get_rdms_makes_rdms_of_pooled_activations_also_from_channel_slices():
    image_set = [({"set": "a"}, {(key,): image for key, image in zip(KEYS[:6], IMAGES[:6])},
                  ("key",), [])]
    kinds = ["unit_level", "max_pool", "median_pool", "l1_pool", "l2_pool"]
    kwargs = dict(which_layers=["conv2"], transform=to_tensor64, batch_size=1,
                  activation_types=kinds)
    high = smallest_budget(image_set, {"tiny": MODEL}, **kwargs)
    plan = pfa.plan_rdms(image_set, {"tiny": MODEL}, max_memory=high + 50, **kwargs)
    assert plan.loc[0, "sliced_layers"] == 1 and plan.loc[0, "passes"] > 1
    acts = pfa.get_activations(IMAGES[:6], MODEL, ["conv2"], transform=to_tensor64,
                               verbose=False)[("conv2", 4)]
    for budget in (None, high + 50):
        frame = pfa.get_rdms(image_set, {"tiny": MODEL}, None, max_memory=budget,
                             verbose=False, **kwargs)
        conv2 = frame[frame["layer"] == "conv2"]
        assert list(conv2["activation_type"]) == kinds
        for row in conv2.itertuples():
            patterns = (acts.reshape(6, -1) if row.activation_type == "unit_level"
                        else pooled_numpy(acts, row.activation_type))
            np.testing.assert_allclose(row.matrix, 1 - np.corrcoef(patterns), atol=1e-6)
    with pytest.raises(pfa.InvalidInputError, match="'activation_types' parameter of get_rdms"):
        pfa.get_rdms(image_set, {"tiny": MODEL}, None, activation_types=["sum_pool"])


def test_time_resolved_rdms_pool_each_time_step_over_space():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv3d(3, 4, 3, padding=1), torch.nn.ReLU()).eval()
    clips = {(str(d),): pfa.moving_grating(4, 16, 16, spatial_frequency=1.0, direction=d)
             for d in (0, 90, 180, 270)}
    transform = pfa.video_transform("r3d_18", num_frames=4, crop_size=16, resize_size=16)
    frame = pfa.get_rdms([({"obj": "g"}, clips, ("direction",), [])], {"tiny3d": model}, None,
                         which_layers=["conv1"], transform=transform, verbose=False,
                         time_resolved=True, activation_types=["l1_pool", "median_pool"])
    with torch.no_grad():
        acts = model[0](torch.stack([transform(clip) for clip in clips.values()])).numpy()
    rows = frame[frame["layer_num"] == 1]
    assert len(rows) == 2 * acts.shape[2]
    for row in rows.itertuples():
        patterns = pooled_numpy(acts[:, :, row.time], row.activation_type)
        np.testing.assert_allclose(row.matrix, 1 - np.corrcoef(patterns), rtol=1e-4, atol=1e-6)


def test_a_mask_keeps_channels_rows_and_columns_and_locations_stay_in_the_whole_layer():
    responses = voxels("conv2", count=2, noise=2.0)
    mask = {"conv2": {"channels": [1, 3, 4], "rows": [0, 2, 5]}}
    uv = fit(responses, ["conv2"], cv=3, mode="uv", mask=mask)
    mv = fit(responses, ["conv2"], cv=3, alphas=ALPHAS, mask=mask)
    acts = features("conv2").reshape(N_IMAGES, 5, 6, 6)[:, [1, 3, 4]][:, :, [0, 2, 5]]
    x, y, folds = acts.reshape(N_IMAGES, -1), responses.to_numpy(), kfold(3)
    predicted = cross_val_predict(RidgeCV(alphas=ALPHAS, alpha_per_target=True), x, y, cv=folds)
    for t in range(2):
        np.testing.assert_allclose(mv.loc[t, "fold_scores"],
                                   fold_pearson(y[:, t], predicted[:, t], folds), rtol=1e-6)
        means = []
        for unit in range(x.shape[1]):
            guess = cross_val_predict(LinearRegression(), x[:, [unit]], y[:, t], cv=folds)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                means.append(np.mean(fold_pearson(y[:, t], guess, folds)))
        best = int(np.nanargmax(means))
        channel, row, col = np.unravel_index(best, (3, 3, 6))
        assert uv.loc[t, "unit"] == best
        assert (uv.loc[t, "channel"], uv.loc[t, "row"], uv.loc[t, "col"]) == (
            [1, 3, 4][channel], [0, 2, 5][row], col)
    for bad, message in (({"conv9": {}}, "keys naming chosen layers"),
                         ({"fc1": {"rows": [0]}}, r"no rows or columns for layer \('fc1', 7\)"),
                         ({"conv2": {"channels": [5]}},
                          r"channel indices \(ints\) in 0\.\.4 for layer \('conv2', 4\)")):
        with pytest.raises(pfa.InvalidInputError, match=f"'mask' parameter.*{message}"):
            fit(responses, ["conv2", "fc1"], cv=3, mask=bad)


@pytest.mark.parametrize("iter_axis", ["channel", "position"])
def test_iterating_over_channels_or_positions_fits_one_model_per_part(iter_axis):
    responses = voxels("conv2", count=2)
    result = fit(responses, ["conv2"], cv=4, alphas=ALPHAS, random_state=5,
                 mask={"conv2": {"channels": [0, 2], "rows": [1, 3], "cols": [0, 4]}},
                 iter_axis=iter_axis)
    acts = pfa.get_activations(IMAGES, MODEL, ["conv2"], transform=to_tensor64,
                               verbose=False)[("conv2", 4)].astype(np.float64)
    parts = ([({"channel": c}, acts[:, c][:, [1, 3]][:, :, [0, 4]]) for c in (0, 2)]
             if iter_axis == "channel" else
             [({"row": r, "col": c}, acts[:, [0, 2], r, c]) for r in (1, 3) for c in (0, 4)])
    assert len(result) == len(parts) * 2
    folds = kfold(seed=5)
    for position, (where, x) in enumerate(parts):
        predicted = cross_val_predict(RidgeCV(alphas=ALPHAS, alpha_per_target=True),
                                      x.reshape(N_IMAGES, -1), responses.to_numpy(), cv=folds)
        for t in range(2):
            row = result.iloc[2 * position + t]
            assert {key: row[key] for key in where} == where and row["target"] == f"v{t}"
            expected = fold_pearson(responses.to_numpy()[:, t], predicted[:, t], folds)
            np.testing.assert_allclose(row["fold_scores"], expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(pfa.InvalidInputError, match=r"'iter_axis'.*without rows and columns"):
        fit(responses, ["fc1"], cv=4, iter_axis=iter_axis)
    with pytest.raises(pfa.InvalidInputError, match=r"'iter_axis'.*mode='mv'"):
        fit(responses, ["conv2"], cv=4, iter_axis=iter_axis, mode="uv")


def test_design_models_on_time_series_equal_sklearn_with_contiguous_folds():
    rng = np.random.default_rng(9)
    features = rng.normal(size=(30, 4))
    design = pfa.convolve_hrf(features, onsets=np.arange(30) * 8.0, durations=[2.0] * 30,
                              n_volumes=120, tr=2.0)
    signal = design @ np.array([1.0, 0.0, -1.0, 0.5])
    responses = pd.DataFrame({"fit": signal + 0.05 * rng.normal(size=120),
                              "noise": rng.normal(size=120)})
    result = pfa.fit_design_models(design, responses, cv=5, alphas=ALPHAS)
    folds = list(KFold(5).split(design))
    assert [test[0] for _, test in folds] == [0, 24, 48, 72, 96]  # contiguous blocks
    predicted = cross_val_predict(RidgeCV(alphas=ALPHAS, alpha_per_target=True), design,
                                  responses.to_numpy(), cv=folds)
    for t, row in enumerate(result.itertuples()):
        expected = fold_pearson(responses.to_numpy()[:, t], predicted[:, t], folds)
        np.testing.assert_allclose(row.fold_scores, expected, rtol=1e-6, atol=1e-9)
    assert result["score"][0] > 0.9 and abs(result["score"][1]) < 0.3
    shuffled = pfa.fit_design_models(design, responses, cv=5, alphas=ALPHAS, shuffle=True,
                                     random_state=1, estimator=LinearRegression())
    folds = list(KFold(5, shuffle=True, random_state=1).split(design))
    predicted = cross_val_predict(LinearRegression(), design, responses.to_numpy(), cv=folds)
    np.testing.assert_allclose(
        shuffled["fold_scores"][0], fold_pearson(responses.to_numpy()[:, 0], predicted[:, 0],
                                                 folds), rtol=1e-7)
    with pytest.raises(pfa.InvalidInputError, match=r"'design' parameter.*120 rows"):
        pfa.fit_design_models(design[:100], responses)
    with pytest.raises(pfa.InvalidInputError, match=r"'responses' parameter.*without NaN"):
        pfa.fit_design_models(design, responses.replace(responses.iloc[5, 1], np.nan))
