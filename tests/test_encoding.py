"""Encoding models, probes, pooled activation types and HRF convolution, checked against
scikit-learn, scipy and numpy run directly."""

import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from sklearn.cross_decomposition import PLSRegression
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression, RidgeCV
from sklearn.metrics import confusion_matrix, r2_score
from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict, cross_validate
from sklearn.pipeline import make_pipeline

import pytorch_feature_analysis as pfa
from tiny import tiny_model, to_tensor64

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
