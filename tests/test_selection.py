"""Greedy item selection checked against straightforward re-implementations."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis.selection import (
    get_dissims_that_match,
    get_extreme_dissims_total,
    get_most_uniform_dissims,
)

# ---------------------------------------------------------------------------
# Slow references: one candidate at a time, as the greedy rules are stated.
# The starting pair is searched off the diagonal; a search with no usable
# candidate stops.
# ---------------------------------------------------------------------------


def _off_diagonal(matrix):
    out = matrix.astype(float).copy()
    np.fill_diagonal(out, np.nan)
    return out


def _pair_values(matrix, inds):
    sub = matrix[np.ix_(inds, inds)]
    return sub[np.triu_indices(len(inds), k=1)]


def reference_total(matrix, num_items):
    scores = _off_diagonal(matrix)
    inds = [int(i) for i in np.argwhere(scores == np.nanmax(scores))[0]]
    for _ in range(2, num_items):
        column_sums = matrix[np.sort(inds), :].sum(axis=0)
        best, best_val = None, -np.inf
        for i in range(matrix.shape[0]):
            if i not in inds and column_sums[i] > best_val:
                best, best_val = i, column_sums[i]
        if best is None:
            break
        inds.append(best)
    return inds


def reference_match(matrix, target, num_items):
    scores = np.abs(_off_diagonal(matrix) - target)
    inds = [int(i) for i in np.argwhere(scores == np.nanmin(scores))[0]]
    for _ in range(2, num_items):
        best, best_val = None, np.inf
        for i in range(matrix.shape[0]):
            if i in inds:
                continue
            diff = abs(np.mean(_pair_values(matrix, inds + [i])) - target)
            if diff < best_val:
                best, best_val = i, diff
        if best is None:
            break
        inds.append(best)
    return inds


def reference_uniform(matrix, num_items):
    scores = _off_diagonal(matrix)
    inds = [int(i) for i in np.argwhere(scores == np.nanmax(scores))[0]]
    uniform_cdf = stats.uniform(loc=0, scale=1).cdf
    for _ in range(2, num_items):
        best, best_val = None, -1
        for i in range(matrix.shape[0]):
            if i in inds:
                continue
            p = stats.kstest(_pair_values(matrix, inds + [i]), uniform_cdf).pvalue
            if p > best_val:
                best, best_val = i, p
        if best is None:
            break
        inds.append(best)
    return inds


def _symmetric(rng, n, scale=1.0, integers=None, nan_fraction=0.0):
    if integers is None:
        matrix = rng.uniform(size=(n, n)) * scale
    else:
        matrix = rng.integers(0, integers, size=(n, n)).astype(float)
    matrix = np.triu(matrix, 1)
    matrix = matrix + matrix.T
    if nan_fraction:
        mask = np.triu(rng.uniform(size=(n, n)) < nan_fraction, 1)
        matrix[mask | mask.T] = np.nan
    np.fill_diagonal(matrix, 0)
    return matrix


MATRIX_CASES = {
    "continuous": dict(n=30),
    "ties": dict(n=25, integers=3),
    "nan": dict(n=25, nan_fraction=0.15),
    "nan_and_ties": dict(n=20, integers=4, nan_fraction=0.3),
    "beyond_unit_range": dict(n=25, scale=4.0),
}


@pytest.fixture(params=list(MATRIX_CASES), ids=list(MATRIX_CASES))
def matrix(request):
    rng = np.random.default_rng(sum(map(ord, request.param)))
    return _symmetric(rng, **MATRIX_CASES[request.param])


# ---------------------------------------------------------------------------
# Same picks as the references
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("num_items", [2, 7, "all"])
def test_extreme_dissims_total_matches_reference(matrix, num_items):
    count = matrix.shape[0] if num_items == "all" else num_items
    output_rdm, inds = get_extreme_dissims_total(matrix, num_items)
    assert inds == reference_total(matrix, count)
    assert all(type(i) is int for i in inds)
    np.testing.assert_array_equal(output_rdm, matrix[np.ix_(inds, inds)])


@pytest.mark.parametrize("target", [0.0, 0.45, 2.0])
def test_dissims_that_match_matches_reference(matrix, target):
    output_rdm, inds, mean_dissim = get_dissims_that_match(matrix, target, 10)
    assert inds == reference_match(matrix, target, 10)
    np.testing.assert_array_equal(output_rdm, matrix[np.ix_(inds, inds)])
    assert mean_dissim == pytest.approx(np.mean(_pair_values(matrix, inds)))


def test_most_uniform_dissims_matches_reference(matrix):
    output_rdm, inds = get_most_uniform_dissims(matrix, 9)
    assert inds == reference_uniform(matrix, 9)
    np.testing.assert_array_equal(output_rdm, matrix[np.ix_(inds, inds)])


def test_asymmetric_matrix_uses_entries_in_choice_order():
    rng = np.random.default_rng(3)
    matrix = rng.uniform(size=(15, 15))
    np.fill_diagonal(matrix, 0)
    assert get_extreme_dissims_total(matrix, 8)[1] == reference_total(matrix, 8)
    assert get_dissims_that_match(matrix, 0.3, 8)[1] == reference_match(matrix, 0.3, 8)
    assert get_most_uniform_dissims(matrix, 8)[1] == reference_uniform(matrix, 8)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(3, 9),
    levels=st.integers(2, 5),
    nan_fraction=st.sampled_from([0.0, 0.2, 0.5]),
)
def test_picks_match_references_on_tied_small_matrices(seed, n, levels, nan_fraction):
    # Quarters are exact in floating point, so tied sums are exactly equal.
    rng = np.random.default_rng(seed)
    matrix = _symmetric(rng, n, integers=levels, nan_fraction=nan_fraction) / 4
    if np.isnan(_off_diagonal(matrix)).all():
        return
    assert get_extreme_dissims_total(matrix)[1] == reference_total(matrix, n)
    assert get_dissims_that_match(matrix, 0.5)[1] == reference_match(matrix, 0.5, n)
    assert get_most_uniform_dissims(matrix, "all")[1] == reference_uniform(matrix, n)


# ---------------------------------------------------------------------------
# Behaviour
# ---------------------------------------------------------------------------


def test_guide_example_raises_mean_dissimilarity():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(1000, 1000))
    matrix = (matrix + matrix.T) / 2
    np.fill_diagonal(matrix, 0)
    output_rdm, inds = get_extreme_dissims_total(matrix, 50)
    assert abs(matrix.mean()) < 0.01
    assert output_rdm.mean() > 0.25
    assert len(set(inds)) == 50


def test_starting_pair_is_first_maximum_in_row_major_order():
    matrix = np.array(
        [[0.0, 1.0, 5.0, 2.0], [1.0, 0.0, 3.0, 5.0], [5.0, 3.0, 0.0, 4.0], [2.0, 5.0, 4.0, 0.0]]
    )
    inds = get_extreme_dissims_total(matrix, 2)[1]
    assert inds == [int(i) for i in np.argwhere(matrix == matrix.max())[0]] == [0, 2]


def test_match_reaches_target_on_large_matrix():
    rng = np.random.default_rng(1)
    matrix = _symmetric(rng, 300)
    _, inds, mean_dissim = get_dissims_that_match(matrix, 0.6, 30)
    assert len(set(inds)) == 30
    assert abs(mean_dissim - 0.6) < 0.005


def test_uniform_selection_is_more_uniform_than_the_first_items():
    rng = np.random.default_rng(2)
    matrix = _symmetric(rng, 120) ** 2  # skewed towards 0
    _, inds = get_most_uniform_dissims(matrix, 15)
    uniform_cdf = stats.uniform(loc=0, scale=1).cdf
    chosen_p = stats.kstest(_pair_values(matrix, inds), uniform_cdf).pvalue
    first_p = stats.kstest(_pair_values(matrix, list(range(15))), uniform_cdf).pvalue
    assert chosen_p > first_p


def test_search_stops_when_remaining_items_are_nan():
    matrix = _symmetric(np.random.default_rng(4), 6)
    matrix[4, :4] = matrix[:4, 4] = np.nan
    matrix[5, :4] = matrix[:4, 5] = np.nan
    matrix[4, 5] = matrix[5, 4] = np.nan
    expected = reference_total(matrix, 6)
    assert sorted(expected) == [0, 1, 2, 3]
    assert get_extreme_dissims_total(matrix)[1] == expected
    assert get_dissims_that_match(matrix, 0.5)[1] == reference_match(matrix, 0.5, 6)
    assert get_most_uniform_dissims(matrix, 6)[1] == reference_uniform(matrix, 6)


def test_all_nan_matrix_gives_empty_selection():
    matrix = np.full((4, 4), np.nan)
    output_rdm, inds = get_extreme_dissims_total(matrix)
    assert inds == [] and output_rdm.shape == (0, 0)
    output_rdm, inds, mean_dissim = get_dissims_that_match(matrix, 0.5)
    assert inds == [] and np.isnan(mean_dissim)
    assert get_most_uniform_dissims(matrix, 3)[1] == []


def test_single_item_matrix_with_all():
    output_rdm, inds = get_extreme_dissims_total(np.zeros((1, 1)))
    assert inds == [0] and output_rdm.shape == (1, 1)


def test_inputs_are_not_modified():
    matrix = _symmetric(np.random.default_rng(5), 12, nan_fraction=0.1)
    before = matrix.copy()
    get_extreme_dissims_total(matrix, 5)
    get_dissims_that_match(matrix, 0.4, 5)
    get_most_uniform_dissims(matrix, 5)
    np.testing.assert_array_equal(matrix, before)


@pytest.mark.parametrize(
    "bad_rdm, message",
    [
        (np.zeros((3, 4)), r"shape \(3, 4\)"),
        (np.zeros((2, 2, 2)), r"shape \(2, 2, 2\)"),
        (np.zeros(5), r"shape \(5,\)"),
        ([["a", "b"], ["c", "d"]], "numeric array; got list"),
    ],
)
def test_bad_matrix_is_rejected(bad_rdm, message):
    for select in (get_extreme_dissims_total, get_most_uniform_dissims):
        with pytest.raises(InvalidInputError,
                           match=rf"'input_rdm' parameter of {select.__name__} must be .*{message}"):
            select(bad_rdm, 2)
    with pytest.raises(InvalidInputError, match=message):
        get_dissims_that_match(bad_rdm, 0.5, 2)


@pytest.mark.parametrize("bad_count", [0, 1, 6, "most", 2.0, True])
def test_bad_item_count_is_rejected(bad_count):
    matrix = _symmetric(np.random.default_rng(6), 5)
    with pytest.raises(InvalidInputError, match="'num_items' parameter of get_extreme_dissims_total"):
        get_extreme_dissims_total(matrix, bad_count)
    with pytest.raises(InvalidInputError, match="'num_items_final' parameter of get_dissims_that"):
        get_dissims_that_match(matrix, 0.5, bad_count)
    with pytest.raises(InvalidInputError, match=r"between 2 and 5 .*got"):
        get_most_uniform_dissims(matrix, bad_count)


def test_a_count_beyond_the_matrix_names_the_count_and_the_matrix_size():
    matrix = _symmetric(np.random.default_rng(8), 4)
    both = r"between 2 and 4 \(the number of items of input_rdm, a 4 x 4 matrix\); got 9 instead"
    with pytest.raises(InvalidInputError, match=both):
        get_extreme_dissims_total(matrix, 9)
    with pytest.raises(InvalidInputError, match=both):
        get_most_uniform_dissims(matrix, 9)


@pytest.mark.parametrize("bad_target", [np.nan, "0.5", None, np.inf])
def test_bad_target_is_rejected(bad_target):
    matrix = _symmetric(np.random.default_rng(7), 5)
    with pytest.raises(InvalidInputError, match="'target_val' parameter of get_dissims_that_match"
                       " must be a finite number"):
        get_dissims_that_match(matrix, bad_target, 3)
