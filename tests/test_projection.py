"""Sparse random projections ('srp_<k>'): the matrix, its use in RDMs and in mapping."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

import pytorch_feature_analysis as pfa
from tiny import smallest_budget, tiny_model, to_tensor64

MODEL = tiny_model()
RNG = np.random.default_rng(0)
IMAGES = [RNG.uniform(0, 1, size=(16, 16, 3)) for _ in range(6)]
IMAGE_SET = [({"set": "a"}, {(str(k),): image for k, image in enumerate(IMAGES)}, ("key",), [])]


def test_the_matrix_is_sparse_seeded_and_keeps_squared_norms():
    matrix = pfa.sparse_random_projection(4000, 300, random_state=1, layer_label=("conv1", 1))
    assert scipy.sparse.issparse(matrix) and matrix.shape == (4000, 300)
    values = np.unique(matrix.data)
    np.testing.assert_allclose(np.abs(values), np.sqrt(np.sqrt(4000) / 300))
    assert matrix.nnz == pytest.approx(4000 * 300 / np.sqrt(4000), rel=0.05)
    again = pfa.sparse_random_projection(4000, 300, random_state=1, layer_label=("conv1", 1))
    assert (matrix != again).nnz == 0
    other = pfa.sparse_random_projection(4000, 300, random_state=2, layer_label=("conv1", 1))
    assert (matrix != other).nnz > 0
    x = RNG.normal(size=(20, 4000))
    ratio = np.linalg.norm(x @ matrix, axis=1) ** 2 / np.linalg.norm(x, axis=1) ** 2
    assert np.all(np.abs(ratio - 1) < 0.35) and abs(ratio.mean() - 1) < 0.1


def test_every_entry_is_non_zero_on_its_own_with_probability_one_over_sqrt_f():
    from scipy.stats import chisquare

    from pytorch_feature_analysis._projection import _entries

    features, dims = 400, 5000  # p = 1 / 20
    rows, cols, values = _entries(features, dims, seed=11)
    assert np.all(np.diff(rows * dims + cols) > 0)  # distinct entries, in row-major order
    assert set(np.abs(values)) == {np.sqrt(20 / dims)} and 0.45 < (values > 0).mean() < 0.55
    per_column = np.bincount(cols, minlength=dims)  # Binomial(400, 1/20): mean 20, var 19
    assert abs(per_column.mean() - 20) < 0.2 and abs(per_column.var() - 19) < 1.5
    assert chisquare(np.bincount(rows, minlength=features)).pvalue > 1e-3  # rows uniform
    gaps = np.diff(rows * dims + cols)  # geometric: P(gap = g) = p (1 - p) ** (g - 1)
    observed = np.bincount(np.minimum(gaps, 40), minlength=41)[1:]
    expected = 0.05 * 0.95 ** np.arange(39)
    expected = np.append(expected, 1 - expected.sum()) * len(gaps)
    assert chisquare(observed, expected).pvalue > 1e-3


def test_projected_rdms_equal_scipy_on_projected_hooked_activations_also_from_slices():
    kwargs = dict(which_layers=["conv2", "fc1"], transform=to_tensor64, batch_size=2,
                  activation_types=["unit_level", "srp_40"], verbose=False, random_state=3)
    acts = pfa.get_activations(IMAGES, MODEL, ["original_rgb", "conv2", "fc1"],
                               transform=to_tensor64, verbose=False)
    planned = {k: v for k, v in kwargs.items() if k not in ("verbose", "random_state")}
    high = smallest_budget(IMAGE_SET, {"tiny": MODEL}, **planned)
    plan = pfa.plan_rdms(IMAGE_SET, {"tiny": MODEL}, max_memory=high + 50, **planned)
    assert plan.loc[0, "sliced_layers"] >= 1 and plan.loc[0, "passes"] > 1
    for max_memory in (None, high + 50):
        frame = pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, max_memory=max_memory, **kwargs)
        projected = frame[frame["activation_type"] == "srp_40"]
        assert sorted(projected["layer"]) == ["conv2", "fc1", "original_rgb"]
        for row in projected.itertuples():
            patterns = pfa.activation_patterns(acts[row.layer_label], "srp_40", random_state=3,
                                               layer_label=row.layer_label)
            units = acts[row.layer_label].reshape(6, -1).astype(np.float64)
            matrix = pfa.sparse_random_projection(units.shape[1], 40, 3, row.layer_label)
            np.testing.assert_allclose(patterns, units @ matrix, rtol=1e-12)
            np.testing.assert_allclose(row.matrix, squareform(pdist(patterns, "correlation")),
                                       atol=1e-6)


def test_the_projection_approximates_the_unit_level_rdm():
    frame = pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, which_layers=["conv1"],
                         transform=to_tensor64, verbose=False,
                         dissim_metrics=["euclidean_distance"],
                         activation_types=["unit_level", "srp_2000"])
    conv1 = frame[frame["layer"] == "conv1"].set_index("activation_type")["matrix"]
    upper = np.triu_indices(6, 1)
    exact, approximate = conv1["unit_level"][upper], conv1["srp_2000"][upper]
    assert np.max(np.abs(approximate / exact - 1)) < 0.15
    assert not np.allclose(approximate, exact, rtol=1e-3)


def test_bad_projection_requests_are_named():
    with pytest.raises(pfa.InvalidInputError, match=r"'activation_types'.*'srp_<k>'"):
        pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, activation_types=["srp_0"])
    kernel_sets = [("all", "all"), ("some", {("tiny", "conv1"): [0, 1]})]
    with pytest.raises(pfa.InvalidInputError, match=r"kernel sets other than 'all'"):
        pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, activation_types=["srp_8"],
                     kernel_sets=kernel_sets)
    with pytest.raises(pfa.InvalidInputError, match=r"'activation_type' parameter.*'srp_<k>'"):
        pfa.activation_patterns(np.ones((2, 3)), "srp")


def test_encoding_models_on_projections_equal_sklearn_on_the_projected_features():
    images = [RNG.uniform(0, 1, size=(16, 16, 3)) for _ in range(20)]
    keys = [f"im{i:02d}" for i in range(20)]
    acts = pfa.get_activations(images, MODEL, ["conv2"], transform=to_tensor64, verbose=False)
    label, units = next(iter(acts.items()))
    x = pfa.activation_patterns(units, "srp_30", random_state=4, layer_label=label)
    rng = np.random.default_rng(1)
    responses = pd.DataFrame(x @ rng.normal(size=(30, 2)) + rng.normal(size=(20, 2)),
                             index=keys, columns=["v0", "v1"])
    alphas = (0.1, 10.0, 1000.0)
    result = pfa.fit_encoding_models(dict(zip(keys, images)), {"tiny": MODEL}, responses,
                                     ["conv2"], cv=4, alphas=alphas, random_state=4,
                                     activation_type="srp_30", transform=to_tensor64,
                                     verbose=False)
    assert set(result["activation_type"]) == {"srp_30"}
    folds = list(KFold(4, shuffle=True, random_state=4).split(x))
    predicted = cross_val_predict(RidgeCV(alphas=alphas, alpha_per_target=True), x,
                                  responses.to_numpy(), cv=folds)
    for t, row in enumerate(result.itertuples()):
        expected = [pearsonr(predicted[test, t], responses.to_numpy()[test, t])[0]
                    for _, test in folds]
        np.testing.assert_allclose(row.fold_scores, expected, rtol=1e-6, atol=1e-9)
    with pytest.raises(pfa.InvalidInputError, match=r"'activation_type'.*mode='uv'"):
        pfa.fit_encoding_models(dict(zip(keys, images)), {"tiny": MODEL}, responses, ["conv2"],
                                cv=4, mode="uv", activation_type="srp_30",
                                transform=to_tensor64, verbose=False)
