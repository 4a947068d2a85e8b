"""Dissimilarity metrics and RDM comparisons against scipy and direct loops."""

import itertools

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy import stats
from scipy.spatial.distance import pdist, squareform

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import dissim
from pytorch_feature_analysis.dissim import resolve_metrics

SCIPY_NAMES = {
    "corr": "correlation",
    "euclidean_distance": "euclidean",
    "cosine": "cosine",
    "sq_euclidean": "sqeuclidean",
    "manhattan": "cityblock",
}


def scipy_rdm(patterns, name):
    if name == "spearman":
        rho = stats.spearmanr(patterns, axis=1)[0]
        if np.ndim(rho) == 0:  # scipy returns a scalar for two patterns
            rho = np.array([[1.0, rho], [rho, 1.0]])
        rdm = 1.0 - rho
        np.fill_diagonal(rdm, 0.0)
        return rdm
    return squareform(pdist(patterns, SCIPY_NAMES[name]))


def assert_rdm_close(actual, expected, rtol=1e-6, atol=0.0):
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)


@pytest.fixture
def random_patterns():
    return np.random.default_rng(0).normal(size=(12, 40))


@pytest.mark.parametrize("name", dissim.METRIC_NAMES)
def test_every_metric_matches_scipy_on_random_data(random_patterns, name):
    rdm = pfa.pairwise_dissimilarities(random_patterns, name)
    assert rdm.dtype == np.float64
    assert_rdm_close(rdm, scipy_rdm(random_patterns, name))


@pytest.mark.parametrize("name", dissim.METRIC_NAMES)
def test_float32_patterns_are_computed_in_float64(random_patterns, name):
    low = random_patterns.astype(np.float32)
    rdm = pfa.pairwise_dissimilarities(low, name)
    assert rdm.dtype == np.float64
    assert_rdm_close(rdm, scipy_rdm(low.astype(np.float64), name), rtol=1e-9)


def test_compute_rdms_returns_one_matrix_per_metric_in_order(random_patterns):
    names = list(dissim.METRIC_NAMES)
    rdms = pfa.compute_rdms(random_patterns, names)
    assert len(rdms) == len(names)
    for name, rdm in zip(names, rdms):
        assert_rdm_close(rdm, scipy_rdm(random_patterns, name))


@pytest.mark.parametrize("name", ["corr", "euclidean_distance", "sq_euclidean", "manhattan"])
def test_large_common_offset(name):
    rng = np.random.default_rng(1)
    patterns = 1e6 + rng.normal(size=(10, 30))
    # These metrics ignore a common offset; the subtraction below is exact.
    expected = scipy_rdm(patterns - 1e6, name)
    assert_rdm_close(pfa.pairwise_dissimilarities(patterns, name), expected, rtol=1e-6)


@pytest.mark.parametrize("name", dissim.METRIC_NAMES)
def test_near_duplicate_patterns(name):
    rng = np.random.default_rng(2)
    base = rng.normal(size=(6, 50))
    patterns = np.vstack([base, base + 1e-4 * rng.normal(size=base.shape)])
    rdm = pfa.pairwise_dissimilarities(patterns, name)
    assert_rdm_close(rdm, scipy_rdm(patterns, name), rtol=1e-6, atol=1e-15)
    near = rdm[np.arange(6), np.arange(6) + 6]
    if name == "spearman":
        same_ranks = np.all(
            stats.rankdata(base, axis=1) == stats.rankdata(patterns[6:], axis=1), axis=1
        )
        assert same_ranks.any() and np.all(near[same_ranks] == 0.0)
    else:
        assert np.all(near > 0.0)


def test_near_duplicates_with_offset_stay_accurate_for_euclidean():
    rng = np.random.default_rng(3)
    base = 1e3 + rng.normal(size=(1, 200))
    step = 1e-7 * rng.normal(size=(1, 200))
    patterns = np.vstack([base, base + step])
    exact = np.sqrt(np.sum((patterns[1] - patterns[0]) ** 2))
    rdm = pfa.pairwise_dissimilarities(patterns, "euclidean_distance")
    np.testing.assert_allclose(rdm[0, 1], exact, rtol=1e-6)


@pytest.mark.parametrize("name", ["corr", "spearman", "cosine", "euclidean_distance"])
def test_identical_patterns_give_exactly_zero(name):
    rng = np.random.default_rng(4)
    row = rng.normal(size=25) + 50.0
    patterns = np.vstack([row, rng.normal(size=25), row])
    assert pfa.pairwise_dissimilarities(patterns, name)[0, 2] == 0.0


@pytest.mark.parametrize("name", ["corr", "spearman"])
def test_constant_patterns(name):
    rng = np.random.default_rng(5)
    patterns = np.vstack(
        [np.full(8, 3.0), np.full(8, 3.0), np.full(8, 7.0), rng.normal(size=8), rng.normal(size=8)]
    )
    rdm = pfa.pairwise_dissimilarities(patterns, name)
    assert rdm[0, 1] == 0.0  # identical constant patterns
    assert np.isnan(rdm[0, 2]) and np.isnan(rdm[2, 0])  # different constants
    assert np.isnan(rdm[0, 3]) and np.isnan(rdm[3, 2])  # constant vs varying
    assert not np.isnan(rdm[3, 4])
    assert np.all(np.diag(rdm) == 0.0)
    assert_rdm_close(rdm[3:, 3:], scipy_rdm(patterns[3:], name))


def test_corr_constant_rules_match_original_corr_dissim():
    constant = np.full(5, 2.0)
    varying = np.array([1.0, 2.0, 0.0, 4.0, 3.0])
    assert pfa.corr_dissim(constant, constant) == 0.0
    assert np.isnan(pfa.corr_dissim(constant, varying))
    assert np.isnan(pfa.corr_dissim(np.zeros(5), varying))
    np.testing.assert_allclose(
        pfa.corr_dissim(varying, varying[::-1]), 1 - np.corrcoef(varying, varying[::-1])[0, 1]
    )


def test_cosine_zero_patterns():
    patterns = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [1.0, 2.0, 3.0]])
    rdm = pfa.pairwise_dissimilarities(patterns, "cosine")
    assert rdm[0, 1] == 0.0
    assert np.isnan(rdm[0, 2]) and np.isnan(rdm[2, 1])


def test_nan_in_one_pattern_leaves_other_distances_intact(random_patterns):
    patterns = random_patterns.copy()
    patterns[2, 5] = np.nan
    for name in ["euclidean_distance", "corr", "cosine"]:
        rdm = pfa.pairwise_dissimilarities(patterns, name)
        keep = np.delete(np.arange(len(patterns)), 2)
        assert np.all(np.isnan(np.delete(rdm[2], 2)))
        assert_rdm_close(rdm[np.ix_(keep, keep)], scipy_rdm(patterns[keep], name))


finite_patterns = hnp.arrays(
    np.float64,
    st.tuples(st.integers(2, 7), st.integers(2, 9)),
    elements=st.floats(-1e3, 1e3, allow_nan=False, allow_infinity=False),
)


@settings(max_examples=40, deadline=None)
@given(patterns=finite_patterns)
def test_every_metric_is_symmetric_with_zero_diagonal(patterns):
    for rdm in pfa.compute_rdms(patterns, list(dissim.METRIC_NAMES)):
        assert np.array_equal(rdm, rdm.T, equal_nan=True)
        assert np.all(np.diag(rdm) == 0.0)
        assert np.all(np.isnan(rdm) | (rdm >= 0.0))


@settings(max_examples=40, deadline=None)
@given(
    patterns=hnp.arrays(
        np.float64,
        st.tuples(st.integers(2, 6), st.integers(3, 9)),
        elements=st.floats(-10, 10, allow_nan=False, allow_infinity=False),
    ),
    row=st.integers(0, 5),
    scale=st.floats(0.01, 100.0),
    shift=st.floats(-100.0, 100.0),
)
def test_corr_is_invariant_to_scaling_and_shifting_a_pattern(patterns, row, scale, shift):
    row = row % len(patterns)
    spread = patterns.max(axis=1) - patterns.min(axis=1)
    if np.any(spread < 1e-3 * (1.0 + np.abs(patterns).max(axis=1))):
        return  # (near-)constant patterns: correlation undefined or ill-conditioned
    changed = patterns.copy()
    changed[row] = scale * changed[row] + shift
    before = pfa.pairwise_dissimilarities(patterns, "corr")
    after = pfa.pairwise_dissimilarities(changed, "corr")
    np.testing.assert_allclose(after, before, atol=1e-9)


def test_pairwise_callable_is_called_once_per_pair_and_fills_both_triangles(random_patterns):
    calls = []

    def l1(x, y):
        calls.append(1)
        return np.abs(x - y).sum()

    rdm = pfa.pairwise_dissimilarities(random_patterns, ("l1", l1))
    n = len(random_patterns)
    assert len(calls) == n * (n - 1) // 2
    assert_rdm_close(rdm, scipy_rdm(random_patterns, "manhattan"))
    assert np.array_equal(rdm, rdm.T) and np.all(np.diag(rdm) == 0.0)


def test_matrix_callable(random_patterns):
    def chebyshev(patterns):
        return squareform(pdist(patterns, "chebyshev"))

    rdm = pfa.pairwise_dissimilarities(random_patterns, ("cheb", chebyshev, "matrix"))
    assert_rdm_close(rdm, squareform(pdist(random_patterns, "chebyshev")))


def test_matrix_callable_with_wrong_shape_names_the_metric(random_patterns):
    with pytest.raises(ValueError, match="'bad'.*shape"):
        pfa.compute_rdms(random_patterns, [("bad", lambda p: np.zeros((2, 2)), "matrix")])


def test_matrix_callable_must_be_symmetric(random_patterns):
    n = len(random_patterns)
    with pytest.raises(ValueError, match="'skew'.*symmetric"):
        pfa.compute_rdms(random_patterns, [("skew", lambda p: np.triu(np.ones((n, n))), "matrix")])


def test_pairwise_callable_returning_a_non_number_names_the_metric(random_patterns):
    with pytest.raises(TypeError, match="'spearman_r'.*one number"):
        pfa.compute_rdms(random_patterns, [("spearman_r", stats.spearmanr)])


def test_callables_cannot_modify_the_patterns(random_patterns):
    def scribble(x, y):
        x[0] = 0.0
        return 1.0

    with pytest.raises(ValueError, match="read-only"):
        pfa.compute_rdms(random_patterns, [("scribble", scribble)])


def test_unknown_metric_lists_the_valid_names(random_patterns):
    with pytest.raises(ValueError, match="'corr', 'euclidean_distance'.*'pearson'"):
        pfa.compute_rdms(random_patterns, ["pearson"])


def test_duplicate_metric_names_are_rejected():
    with pytest.raises(ValueError, match="'corr'"):
        resolve_metrics(["corr", ("corr", lambda x, y: 0.0)])


def test_resolve_metrics_forms():
    func = lambda x, y: 0.0  # noqa: E731
    metrics = resolve_metrics(["corr", ("mine", func), ("whole", func, "matrix")])
    assert [(m.name, m.kind) for m in metrics] == [
        ("corr", "builtin"),
        ("mine", "pairwise"),
        ("whole", "matrix"),
    ]
    assert resolve_metrics("cosine") == [pfa.Metric("cosine")]
    with pytest.raises(ValueError, match="at least one"):
        resolve_metrics([])
    with pytest.raises(TypeError):
        resolve_metrics([3])


def test_patterns_must_be_a_2d_numpy_array():
    with pytest.raises(TypeError, match="numpy array"):
        pfa.compute_rdms([[1.0, 2.0]], ["corr"])
    with pytest.raises(ValueError, match="2-D"):
        pfa.compute_rdms(np.zeros(3), ["corr"])


def test_compute_rdms_does_not_modify_patterns(random_patterns):
    original = random_patterns.copy()
    pfa.compute_rdms(random_patterns, list(dissim.METRIC_NAMES))
    assert np.array_equal(random_patterns, original)


def test_upper_triangle_ranks_and_correlation():
    matrix = np.arange(16.0).reshape(4, 4)
    assert np.array_equal(pfa.get_upper_triang(matrix), [1, 2, 3, 6, 7, 11])
    values = np.array([[0.3, 0.1], [0.2, 0.1]])
    assert np.array_equal(pfa.get_array_ranks(values), [[3, 0], [2, 1]])
    rng = np.random.default_rng(6)
    a, b = (squareform(rng.random(10)) for _ in range(2))
    expected = stats.pearsonr(squareform(a), squareform(b))[0]
    np.testing.assert_allclose(pfa.correlate_upper_triang(a, b), expected)
    spearman = pfa.correlate_upper_triang(a, b, func=lambda x, y: stats.spearmanr(x, y)[0])
    np.testing.assert_allclose(spearman, stats.spearmanr(squareform(a), squareform(b))[0])
    with pytest.raises(ValueError, match="square"):
        pfa.get_upper_triang(np.zeros((2, 3)))


def random_rdms(count, size, seed, ties=False):
    rng = np.random.default_rng(seed)
    n_values = size * (size - 1) // 2
    values = rng.integers(0, 4, (count, n_values)) if ties else rng.random((count, n_values))
    return [squareform(v.astype(float)) for v in values]


def tau_a_loop(x, y):
    pairs = itertools.combinations(range(len(x)), 2)
    total = sum(np.sign(x[i] - x[j]) * np.sign(y[i] - y[j]) for i, j in pairs)
    return total / (len(x) * (len(x) - 1) / 2)


@pytest.mark.parametrize("ties", [False, True])
def test_compare_rdms_against_scipy_and_a_tau_a_loop(ties):
    rdms = random_rdms(4, 6, seed=7, ties=ties)
    other = random_rdms(3, 6, seed=8, ties=ties)
    upper = [squareform(m) for m in rdms]
    upper_other = [squareform(m) for m in other]
    references = {
        "pearson": lambda x, y: stats.pearsonr(x, y)[0],
        "spearman": lambda x, y: stats.spearmanr(x, y)[0],
        "kendall_tau_a": tau_a_loop,
        "cosine": lambda x, y: x @ y / np.linalg.norm(x) / np.linalg.norm(y),
    }
    for method, reference in references.items():
        expected = np.array([[reference(x, y) for y in upper_other] for x in upper])
        result = pfa.compare_rdms(rdms, other, method=method)
        assert result.shape == (4, 3)
        np.testing.assert_allclose(result, expected, rtol=1e-10, atol=1e-12)
        square = pfa.compare_rdms(rdms, method=method)
        expected_square = np.array([[reference(x, y) for y in upper] for x in upper])
        np.testing.assert_allclose(square, expected_square, rtol=1e-10, atol=1e-12)


def test_kendall_tau_a_in_chunks(monkeypatch):
    rdms = random_rdms(3, 9, seed=9, ties=True)
    expected = pfa.compare_rdms(rdms, method="kendall_tau_a")
    monkeypatch.setattr(dissim, "_TAU_BLOCK_VALUES", 40)
    np.testing.assert_allclose(pfa.compare_rdms(rdms, method="kendall_tau_a"), expected)
    upper = [squareform(m) for m in rdms]
    np.testing.assert_allclose(expected[0, 1], tau_a_loop(upper[0], upper[1]))


def test_compare_rdms_accepts_frames_rows_and_stacks():
    rdms = random_rdms(3, 5, seed=10)
    frame = pd.DataFrame({"matrix": rdms, "model": ["a", "b", "c"]})
    from_list = pfa.compare_rdms(rdms)
    np.testing.assert_allclose(pfa.compare_rdms(frame), from_list)
    np.testing.assert_allclose(pfa.compare_rdms(np.stack(rdms)), from_list)
    np.testing.assert_allclose(pfa.compare_rdms(frame.iloc[1], frame), from_list[1:2])
    np.testing.assert_allclose(pfa.compare_rdms(rdms[0], rdms[2]), from_list[0:1, 2:3])


def test_compare_rdms_errors():
    with pytest.raises(ValueError, match="one size"):
        pfa.compare_rdms(random_rdms(1, 4, 0) + random_rdms(1, 5, 0))
    with pytest.raises(ValueError, match="same size"):
        pfa.compare_rdms(random_rdms(1, 4, 0), random_rdms(1, 5, 0))
    with pytest.raises(ValueError, match="'method'.*'kendall'"):
        pfa.compare_rdms(random_rdms(2, 4, 0), method="kendall")
    with pytest.raises(pfa.InvalidInputError, match="'matrix'"):
        pfa.compare_rdms(pd.DataFrame({"rdm": random_rdms(2, 4, 0)}))


CHUNKABLE = ["corr", "euclidean_distance", "cosine", "sq_euclidean", "manhattan"]


def accumulate(patterns, names, widths, device="cpu"):
    tensor = torch.as_tensor(patterns, device=device)
    accumulator = pfa.RDMAccumulator(len(patterns), resolve_metrics(names), device)
    assert not accumulator.needs_whole_patterns
    start = 0
    for width in widths:
        accumulator.add(tensor[:, start : start + width])
        start += width
    assert start == tensor.shape[1]
    return accumulator.finish()


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_accumulator_in_chunks_equals_one_chunk_and_scipy(dtype, monkeypatch):
    rng = np.random.default_rng(11)
    patterns = (3.0 + rng.normal(size=(9, 57))).astype(dtype)
    patterns[4] = patterns[2]  # identical patterns
    whole = accumulate(patterns, CHUNKABLE, [57])
    monkeypatch.setattr(dissim, "_CHUNK_VALUES", 40)  # sub-chunks inside add() too
    chunked = accumulate(patterns, CHUNKABLE, [5, 1, 20, 31])
    for name, one, several in zip(CHUNKABLE, whole, chunked):
        np.testing.assert_allclose(several, one, rtol=1e-12, atol=1e-12)
        assert_rdm_close(several, scipy_rdm(patterns.astype(np.float64), name), atol=1e-15)
        assert several[2, 4] == 0.0 and np.array_equal(several, several.T)


def test_accumulator_in_chunks_keeps_degenerate_rules():
    patterns = np.array(
        [[2.0] * 4, [2.0] * 4, [5.0] * 4, [0.0] * 4, [1.0, 3.0, 0.0, 2.0]]
    )
    corr, cosine = accumulate(patterns, ["corr", "cosine"], [1, 3])
    assert corr[0, 1] == 0.0 and np.isnan(corr[0, 2]) and np.isnan(corr[0, 4])
    assert cosine[0, 2] == 0.0 and np.isnan(cosine[3, 4]) and np.isnan(cosine[3, 0])
    assert_rdm_close(cosine[np.ix_([0, 2, 4], [0, 2, 4])], scipy_rdm(patterns[[0, 2, 4]], "cosine"))


@pytest.mark.parametrize("scale", [1e-200, 1e200])
@pytest.mark.parametrize("name", ["corr", "euclidean_distance", "cosine", "manhattan"])
def test_tiny_and_huge_values_are_rescaled(scale, name):
    rng = np.random.default_rng(12)
    patterns = rng.normal(size=(6, 20))
    # The first chunk holds small values only: the scale found later must be applied.
    patterns[:, :4] *= 1e-3
    expected = scipy_rdm(patterns, name)
    if name in ("euclidean_distance", "manhattan"):
        expected = expected * scale
    assert_rdm_close(accumulate(patterns * scale, [name], [4, 16])[0], expected)


def test_accumulator_needs_whole_patterns_for_spearman_and_callables():
    for metrics in (["spearman"], [("l1", lambda x, y: 0.0)], ["corr", ("m", np.cov, "matrix")]):
        accumulator = pfa.RDMAccumulator(3, resolve_metrics(metrics))
        assert accumulator.needs_whole_patterns
        accumulator.add(torch.zeros(3, 2))
        with pytest.raises(pfa.InvalidInputError, match="whole patterns"):
            accumulator.add(torch.zeros(3, 2))


def test_accumulator_workspace_counts_its_matrices():
    one = 8 * 50 * 50
    base = pfa.RDMAccumulator.workspace_bytes(50, ["corr"])
    assert base >= one
    assert pfa.RDMAccumulator.workspace_bytes(50, ["euclidean_distance", "sq_euclidean"]) == base
    assert pfa.RDMAccumulator.workspace_bytes(50, ["corr", "cosine", "manhattan"]) == base + 2 * one


def test_compute_rdms_accepts_a_tensor(random_patterns):
    low = random_patterns.astype(np.float32)
    from_tensor = pfa.compute_rdms(torch.from_numpy(low), list(dissim.METRIC_NAMES))
    for name, rdm in zip(dissim.METRIC_NAMES, from_tensor):
        assert_rdm_close(rdm, scipy_rdm(low.astype(np.float64), name))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu(random_patterns):
    names = list(dissim.METRIC_NAMES)
    patterns = torch.from_numpy(random_patterns)
    on_gpu = pfa.compute_rdms(patterns.cuda(), names)
    for cpu, cuda in zip(pfa.compute_rdms(patterns, names), on_gpu):
        np.testing.assert_allclose(cuda, cpu, rtol=0, atol=1e-10)
    chunked_cpu = accumulate(random_patterns, CHUNKABLE, [7, 33])
    chunked_cuda = accumulate(random_patterns, CHUNKABLE, [7, 33], device="cuda")
    for cpu, cuda in zip(chunked_cpu, chunked_cuda):
        np.testing.assert_allclose(cuda, cpu, rtol=0, atol=1e-10)
    rdms = random_rdms(5, 8, seed=13, ties=True)
    for method in dissim.COMPARISON_METHODS:
        np.testing.assert_allclose(
            pfa.compare_rdms(rdms, method=method, device="cuda"),
            pfa.compare_rdms(rdms, method=method), rtol=0, atol=1e-10,
        )


def test_kendall_tau_a_equals_scipy_without_ties():
    rdms = random_rdms(5, 12, seed=14)
    upper = [squareform(m) for m in rdms]
    expected = [[stats.kendalltau(x, y, variant="b")[0] for y in upper] for x in upper]
    np.testing.assert_allclose(pfa.compare_rdms(rdms, method="kendall_tau_a"), expected, atol=1e-12)


@pytest.mark.parametrize("method", dissim.COMPARISON_METHODS)
def test_constant_upper_triangle_gives_nan(method):
    rdms = random_rdms(3, 6, seed=15)
    constant = squareform(np.full(15, 0.0 if method == "cosine" else 2.5))
    result = pfa.compare_rdms(rdms + [constant], method=method)
    assert np.all(np.isnan(result[3])) and np.all(np.isnan(result[:, 3]))
    assert not np.any(np.isnan(result[:3, :3]))


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall_tau_a"])
def test_compare_rdms_equals_rsatoolbox(method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    names = {"pearson": "corr", "spearman": "spearman", "kendall_tau_a": "tau-a"}
    rdms = np.stack(random_rdms(6, 9, seed=16, ties=method != "pearson"))
    other = np.stack(random_rdms(4, 9, seed=17, ties=method != "pearson"))
    expected = rsatoolbox.rdm.compare(
        rsatoolbox.rdm.RDMs(rdms), rsatoolbox.rdm.RDMs(other), method=names[method]
    )
    np.testing.assert_allclose(pfa.compare_rdms(rdms, other, method=method), expected, atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    patterns=finite_patterns,
    copies=st.lists(st.tuples(st.integers(0, 6), st.integers(0, 6)), max_size=3),
)
def test_one_chunk_and_several_agree_on_identical_and_undefined_pairs(patterns, copies):
    # One chunk: identity is decided among suspect pairs; several: by classes of rows.
    patterns = patterns.copy()
    for source, target in copies:
        patterns[target % len(patterns)] = patterns[source % len(patterns)]
    same = (patterns[:, None, :] == patterns[None, :, :]).all(axis=2)
    one = accumulate(patterns, CHUNKABLE, [patterns.shape[1]])
    several = accumulate(patterns, CHUNKABLE, [1, patterns.shape[1] - 1])
    for name, a, b in zip(CHUNKABLE, one, several):
        assert np.array_equal(np.isnan(a), np.isnan(b)), name
        assert np.all(a[same] == 0.0) and np.all(b[same] == 0.0), name


def test_one_chunk_identity_needs_equal_finite_values():
    rng = np.random.default_rng(18)
    row = rng.normal(size=30)
    nudged = row.copy()
    nudged[7] = np.nextafter(nudged[7], np.inf)
    patterns = np.vstack([row, nudged, row, np.full(30, np.inf), np.full(30, np.inf)])
    euclid, sq_euclid, manhattan = pfa.compute_rdms(
        patterns, ["euclidean_distance", "sq_euclidean", "manhattan"]
    )
    assert euclid[0, 2] == 0.0 and euclid[0, 1] > 0.0 and sq_euclid[0, 1] > 0.0
    assert manhattan[0, 1] > 0.0 and manhattan[0, 2] == 0.0
    assert np.isnan(euclid[3, 4]) and np.isnan(manhattan[3, 4])


@pytest.mark.parametrize("scale", [1e-200, 1e200])
def test_rows_of_very_different_scales_in_one_chunk(scale):
    # 'corr' and 'cosine' rescale each row apart (they do not change when a row is scaled).
    rng = np.random.default_rng(19)
    patterns = rng.normal(size=(6, 25))
    scaled = patterns.copy()
    scaled[:3] *= scale
    for name in ["corr", "cosine"]:
        assert_rdm_close(pfa.pairwise_dissimilarities(scaled, name), scipy_rdm(patterns, name))


def test_plain_chunk_then_a_huge_one():
    # The first chunk is summed as it is, then rescaled when the second one needs it.
    rng = np.random.default_rng(20)
    base = rng.normal(size=(5, 30))
    patterns = base.copy()
    patterns[:, 10:] *= 1e250
    negligible = np.hstack([np.zeros((5, 10)), base[:, 10:]])  # the first 10 features, rescaled
    for name, rdm in zip(["corr", "cosine"], accumulate(patterns, ["corr", "cosine"], [10, 20])):
        assert_rdm_close(rdm, scipy_rdm(negligible, name))


def test_float32_rows_whose_float32_sum_overflows():
    top = np.finfo(np.float32).max
    rng = np.random.default_rng(21)
    patterns = np.full((3, 1000), top, dtype=np.float32)
    patterns[:, :20] = (top * rng.uniform(-1.0, 1.0, size=(3, 20))).astype(np.float32)
    for name in ["corr", "cosine", "euclidean_distance"]:
        expected = scipy_rdm(patterns.astype(np.float64), name)
        assert_rdm_close(pfa.pairwise_dissimilarities(patterns, name), expected)
