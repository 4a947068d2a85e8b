"""Greedy selection of RDM items: most dissimilar, matching a target, most uniform.

Each function grows a set of items one at a time, starting from the best
pair, and at every step adds the candidate that best serves its goal. The
running quantities (column sums of the chosen rows, the sum of the chosen
dissimilarities, the sorted chosen dissimilarities) are updated incrementally,
so every step scores all candidates with a few array operations.
"""

import numbers

import numpy as np
from scipy import stats

from ._validation import check_number, fail, public

__all__ = [
    "get_extreme_dissims_total",
    "get_dissims_that_match",
    "get_most_uniform_dissims",
]

# Upper bound on the size of the (candidates x chosen pairs) work arrays of
# get_most_uniform_dissims; candidates are scored in chunks below it.
_MAX_WORK_ELEMENTS = 2_000_000

# How many distinct KS statistics get their p-value computed at a time when
# looking for candidates tied with the best p-value.
_PVALUE_CHUNK = 8

# Relative error allowed in a KS p-value when deciding that larger statistics
# can no longer reach the best p-value.
_PVALUE_ROUNDING = 1e-9


def _validated_rdm(input_rdm):
    """Return ``input_rdm`` as a float64 array after checking it is square and 2-D."""
    expected = "a square 2-D numeric array"
    try:
        rdm = np.asarray(input_rdm, dtype=np.float64)
    except (TypeError, ValueError):
        raise fail("input_rdm", expected, type(input_rdm).__name__, raw=True) from None
    if rdm.ndim != 2 or rdm.shape[0] != rdm.shape[1]:
        raise fail("input_rdm", expected, f"an array of shape {rdm.shape}", raw=True)
    return rdm


def _validated_count(value, n_items, param):
    """Return the number of items to pick: ``n_items`` for 'all', else a checked int."""
    if isinstance(value, str) and value == "all":
        return n_items
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not is_int or not 2 <= value <= n_items:
        raise fail(
            param,
            f"'all' or an int between 2 and {n_items} (the number of items of "
            f"input_rdm, a {n_items} x {n_items} matrix)",
            value,
        )
    return int(value)


def _first_extreme_pair(scores, largest):
    """First off-diagonal position, in row-major order, of the best non-NaN score.

    Returns ``[row, col]`` as Python ints, or None when every off-diagonal
    score is NaN.
    """
    scores = scores.copy()
    np.fill_diagonal(scores, np.nan)
    if np.isnan(scores).all():
        return None
    best = np.nanmax(scores) if largest else np.nanmin(scores)
    flat_position = np.flatnonzero(scores == best)[0]
    return [int(i) for i in np.unravel_index(flat_position, scores.shape)]


def _trivial_selection(rdm):
    """Selection for a matrix with fewer than two items: every item."""
    return rdm.copy(), list(range(rdm.shape[0]))


@public
def get_extreme_dissims_total(input_rdm, num_items="all"):
    """Pick the items that are as dissimilar from each other as possible.

    Greedy search: start with the pair of items with the largest
    dissimilarity, then repeatedly add the item whose summed dissimilarity
    to the items chosen so far is largest.

    Parameters
    ----------
    input_rdm : array-like of shape (n, n)
        Dissimilarity matrix to draw from. NaN entries are allowed.
    num_items : int or 'all', default='all'
        How many items to pick, from 2 to n. ``'all'`` ranks every item, which
        is how ``get_rdms`` fills the ``dissim_rankings`` column.

    Returns
    -------
    output_rdm : numpy.ndarray of shape (k, k)
        The sub-matrix of the chosen items, in the order they were chosen.
    inds : list of int
        Indices of the chosen items in ``input_rdm``, in the order chosen.

    Raises
    ------
    InvalidInputError
        If ``input_rdm`` is not a square 2-D numeric array, or ``num_items`` is
        neither ``'all'`` nor an int from 2 to the number of items.

    Notes
    -----
    Ties go to the lowest index: the starting pair is the first largest
    off-diagonal entry in row-major order, and each later item is the first
    candidate with the largest sum. A candidate whose sum is NaN (it has a
    NaN dissimilarity to a chosen item) cannot be chosen; when no candidate
    has a sum above minus infinity the search stops early and fewer than
    ``num_items`` items are returned. When every off-diagonal entry is NaN
    nothing can be chosen and the selection is empty. The diagonal is never
    used for the starting pair, so an item is never chosen twice.
    A matrix with fewer than two items returns all of its items for
    ``num_items='all'``. The column sums are accumulated in the order the
    items are chosen, so sums that are equal in exact arithmetic but round
    differently in floating point can break a tie differently from sums
    taken in index order.

    Examples
    --------
    >>> import numpy as np
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> matrix = rng.normal(size=(1000, 1000))
    >>> matrix = (matrix + matrix.T) / 2
    >>> np.fill_diagonal(matrix, 0)
    >>> output_rdm, inds = pfa.get_extreme_dissims_total(matrix, 50)
    >>> output_rdm.shape, len(inds)
    ((50, 50), 50)
    >>> bool(output_rdm.mean() > 0.25)
    True
    """
    rdm = _validated_rdm(input_rdm)
    n_items = rdm.shape[0]
    if n_items < 2 and isinstance(num_items, str) and num_items == "all":
        return _trivial_selection(rdm)
    num_items = _validated_count(num_items, n_items, "num_items")

    inds = _first_extreme_pair(rdm, largest=True)
    if inds is None:
        return np.empty((0, 0)), []
    chosen = np.zeros(n_items, dtype=bool)
    chosen[inds] = True
    column_sums = rdm[inds[0]] + rdm[inds[1]]
    for _ in range(2, num_items):
        scores = np.where(chosen | np.isnan(column_sums), -np.inf, column_sums)
        best = int(np.argmax(scores))
        if scores[best] == -np.inf:
            break
        inds.append(best)
        chosen[best] = True
        column_sums += rdm[best]
    return rdm[np.ix_(inds, inds)], inds


def _mean_upper_triangle(matrix):
    """Mean of the entries above the diagonal."""
    return float(np.mean(matrix[np.triu_indices(matrix.shape[0], k=1)]))


@public
def get_dissims_that_match(input_rdm, target_val, num_items_final="all"):
    """Pick items whose mean pairwise dissimilarity is as close as possible to a target.

    Greedy search: start with the pair whose dissimilarity is closest to
    ``target_val``, then repeatedly add the item that brings the mean
    dissimilarity of the chosen items closest to ``target_val``.

    Parameters
    ----------
    input_rdm : array-like of shape (n, n)
        Dissimilarity matrix to draw from. NaN entries are allowed.
    target_val : float
        The mean dissimilarity to aim for.
    num_items_final : int or 'all', default='all'
        How many items to pick, from 2 to n.

    Returns
    -------
    output_rdm : numpy.ndarray of shape (k, k)
        The sub-matrix of the chosen items, in the order they were chosen.
    inds : list of int
        Indices of the chosen items in ``input_rdm``, in the order chosen.
    mean_dissim : float
        Mean dissimilarity above the diagonal of ``output_rdm`` (NaN when
        nothing could be chosen).

    Raises
    ------
    InvalidInputError
        If ``input_rdm`` is not a square 2-D numeric array, or ``num_items_final`` is
        neither ``'all'`` nor an int from 2 to the number of items. Also if
        ``target_val`` is not a finite number.

    Notes
    -----
    The mean of a candidate set is over the entries ``input_rdm[a, b]`` with
    ``a`` chosen before ``b``. Ties go to the lowest index: the starting pair
    is the first closest off-diagonal entry in row-major order, and each later
    item is the first candidate with the smallest distance to the target.
    A candidate with a NaN dissimilarity to a chosen item cannot be chosen;
    when no candidate has a finite distance to the target the search stops
    early. When every off-diagonal entry is NaN the selection is empty. The
    diagonal is never used for the starting pair, so an item is never chosen
    twice. Sums are accumulated in the order the items are chosen (see
    :func:`get_extreme_dissims_total` on ties after rounding).

    Examples
    --------
    >>> import numpy as np
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> matrix = rng.uniform(size=(200, 200))
    >>> matrix = (matrix + matrix.T) / 2
    >>> np.fill_diagonal(matrix, 0)
    >>> output_rdm, inds, mean_dissim = pfa.get_dissims_that_match(matrix, 0.55, 20)
    >>> len(inds), bool(abs(mean_dissim - 0.55) < 0.01)
    (20, True)
    """
    rdm = _validated_rdm(input_rdm)
    target_val = check_number(target_val, "target_val")
    n_items = rdm.shape[0]
    if n_items < 2 and isinstance(num_items_final, str) and num_items_final == "all":
        output_rdm, inds = _trivial_selection(rdm)
        return output_rdm, inds, np.nan
    num_items_final = _validated_count(num_items_final, n_items, "num_items_final")

    inds = _first_extreme_pair(np.abs(rdm - target_val), largest=False)
    if inds is None:
        return np.empty((0, 0)), [], np.nan
    chosen = np.zeros(n_items, dtype=bool)
    chosen[inds] = True
    chosen_sum = rdm[inds[0], inds[1]]
    column_sums = rdm[inds[0]] + rdm[inds[1]]
    for n_chosen in range(2, num_items_final):
        n_pairs = n_chosen * (n_chosen + 1) // 2
        distances = np.abs((chosen_sum + column_sums) / n_pairs - target_val)
        scores = np.where(chosen | np.isnan(distances), np.inf, distances)
        best = int(np.argmin(scores))
        if scores[best] == np.inf:
            break
        inds.append(best)
        chosen[best] = True
        chosen_sum += column_sums[best]
        column_sums += rdm[best]
    output_rdm = rdm[np.ix_(inds, inds)]
    return output_rdm, inds, _mean_upper_triangle(output_rdm)


def _ks_uniform_statistics(chosen_sorted, new_values):
    """Two-sided KS statistic against U(0, 1) of each sample ``chosen ∪ new_values[c]``.

    ``chosen_sorted`` holds the values shared by every sample, sorted; row
    ``c`` of ``new_values`` holds the values added for candidate ``c``. The
    merged samples are never sorted: the rank of each value in its merged
    sample is counted instead (new values go before equal chosen values),
    and the statistic is the same floating-point computation as
    :func:`scipy.stats.kstest` on the sorted sample.
    """
    n_candidates, n_new = new_values.shape
    n_chosen = chosen_sorted.size
    n_values = n_chosen + n_new
    new_sorted = np.sort(new_values, axis=1)
    n_chosen_below = np.searchsorted(chosen_sorted, new_sorted, side="left")
    new_ranks = np.arange(n_new) + n_chosen_below
    # Number of new values at or before each chosen value, per candidate.
    bins = np.arange(n_candidates)[:, None] * (n_chosen + 1) + n_chosen_below
    counts = np.bincount(bins.ravel(), minlength=n_candidates * (n_chosen + 1))
    new_before = np.cumsum(counts.reshape(n_candidates, n_chosen + 1), axis=1)
    chosen_ranks = np.arange(n_chosen) + new_before[:, :n_chosen]

    chosen_cdf = np.clip(chosen_sorted, 0.0, 1.0)
    new_cdf = np.clip(new_sorted, 0.0, 1.0)
    d_plus = np.maximum(
        ((chosen_ranks + 1) / n_values - chosen_cdf).max(axis=1),
        ((new_ranks + 1) / n_values - new_cdf).max(axis=1),
    )
    d_minus = np.maximum(
        (chosen_cdf - chosen_ranks / n_values).max(axis=1),
        (new_cdf - new_ranks / n_values).max(axis=1),
    )
    return np.where(d_plus > d_minus, d_plus, d_minus)


def _ks_pvalues(statistics, n_values):
    """Exact two-sided KS p-values, as :func:`scipy.stats.kstest` reports them."""
    return np.clip(stats.kstwo.sf(statistics, n_values), 0.0, 1.0)


def _most_uniform_candidate(candidates, statistics, n_values):
    """The lowest-index candidate with the largest KS p-value.

    The p-value never increases with the statistic, up to rounding in its
    computation, so only the smallest distinct statistics need a (costly)
    p-value: walk them upwards until the p-value falls clearly below the best
    one, then take the largest p-value seen, exactly as a per-candidate
    comparison would.
    """
    levels = np.unique(statistics)
    pvalues = _ks_pvalues(levels[:1], n_values)
    if pvalues[0] == 0.0:
        return int(candidates[0])
    for start in range(1, levels.size, _PVALUE_CHUNK):
        chunk = _ks_pvalues(levels[start : start + _PVALUE_CHUNK], n_values)
        pvalues = np.concatenate([pvalues, chunk])
        if chunk[-1] < pvalues.max() * (1 - _PVALUE_ROUNDING):
            break
    best = pvalues.max()
    return int(candidates[np.isin(statistics, levels[: pvalues.size][pvalues == best])][0])


@public
def get_most_uniform_dissims(input_rdm, num_items_final):
    """Pick items whose pairwise dissimilarities spread as uniformly as possible over [0, 1].

    Greedy search: start with the pair with the largest dissimilarity, then
    repeatedly add the item whose addition makes the chosen dissimilarities
    look most like a uniform sample on [0, 1] (largest p-value of the
    two-sided Kolmogorov-Smirnov test, :func:`scipy.stats.kstest`), giving a
    set with some very similar and some very dissimilar items.

    Parameters
    ----------
    input_rdm : array-like of shape (n, n)
        Dissimilarity matrix to draw from, ideally with values in [0, 1].
        NaN entries are allowed.
    num_items_final : int or 'all'
        How many items to pick, from 2 to n.

    Returns
    -------
    output_rdm : numpy.ndarray of shape (k, k)
        The sub-matrix of the chosen items, in the order they were chosen.
    inds : list of int
        Indices of the chosen items in ``input_rdm``, in the order chosen.

    Raises
    ------
    InvalidInputError
        If ``input_rdm`` is not a square 2-D numeric array, or ``num_items_final`` is
        neither ``'all'`` nor an int from 2 to the number of items.

    Notes
    -----
    The dissimilarities of a candidate set are the entries
    ``input_rdm[a, b]`` with ``a`` chosen before ``b``. The KS statistics of
    all candidates are computed together; since the p-value never increases
    with the statistic, p-values are only computed for the smallest
    statistics, and the result is the same as calling
    :func:`scipy.stats.kstest` for every candidate. Ties go to the lowest
    index: the starting pair is the first largest off-diagonal entry in
    row-major order, and each later item is the first candidate with the
    largest p-value. A candidate with a NaN dissimilarity to a chosen item
    cannot be chosen; when no candidate is left the search stops early.
    When every off-diagonal entry is NaN the selection is empty.

    Examples
    --------
    >>> import numpy as np
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> matrix = rng.uniform(size=(100, 100))
    >>> matrix = (matrix + matrix.T) / 2
    >>> np.fill_diagonal(matrix, 0)
    >>> output_rdm, inds = pfa.get_most_uniform_dissims(matrix, 10)
    >>> output_rdm.shape
    (10, 10)
    """
    rdm = _validated_rdm(input_rdm)
    n_items = rdm.shape[0]
    if n_items < 2 and isinstance(num_items_final, str) and num_items_final == "all":
        return _trivial_selection(rdm)
    num_items_final = _validated_count(num_items_final, n_items, "num_items_final")

    inds = _first_extreme_pair(rdm, largest=True)
    if inds is None:
        return np.empty((0, 0)), []
    chosen = np.zeros(n_items, dtype=bool)
    chosen[inds] = True
    chosen_values = np.array([rdm[inds[0], inds[1]]])
    for _ in range(2, num_items_final):
        candidates = np.flatnonzero(~chosen)
        new_values = rdm[np.ix_(inds, candidates)].T
        usable = ~np.isnan(new_values).any(axis=1)
        candidates, new_values = candidates[usable], new_values[usable]
        if candidates.size == 0:
            break
        chunk_size = max(1, _MAX_WORK_ELEMENTS // (chosen_values.size + 1))
        statistics = np.concatenate(
            [
                _ks_uniform_statistics(chosen_values, new_values[start : start + chunk_size])
                for start in range(0, candidates.size, chunk_size)
            ]
        )
        n_values = chosen_values.size + len(inds)
        best = _most_uniform_candidate(candidates, statistics, n_values)
        chosen_values = np.sort(np.concatenate([chosen_values, rdm[inds, best]]))
        inds.append(best)
        chosen[best] = True
    return rdm[np.ix_(inds, inds)], inds
