"""Greedy item selection: incremental vectorised search vs a one-candidate-at-a-time loop.

Run with ``python benchmarks/selection.py``. Prints, for each function, the
seconds taken by the library and by a straightforward reference loop (the
greedy rule applied to each candidate in turn, as the rule is stated), their
ratio, and whether both chose the same items.
"""

import time

import numpy as np
from scipy import stats

from pytorch_feature_analysis.selection import (
    get_dissims_that_match,
    get_extreme_dissims_total,
    get_most_uniform_dissims,
)


def _pair_values(matrix, inds):
    sub = matrix[np.ix_(inds, inds)]
    return sub[np.triu_indices(len(inds), k=1)]


def _start_pair(scores):
    scores = scores.copy()
    np.fill_diagonal(scores, np.nan)
    return [int(i) for i in np.argwhere(scores == np.nanmax(scores))[0]]


def naive_total(matrix, num_items):
    inds = _start_pair(matrix)
    for _ in range(2, num_items):
        column_sums = matrix[np.sort(inds), :].sum(axis=0)
        best, best_val = None, -np.inf
        for i in range(matrix.shape[0]):
            if i not in inds and column_sums[i] > best_val:
                best, best_val = i, column_sums[i]
        inds.append(best)
    return inds


def naive_match(matrix, target, num_items):
    inds = _start_pair(-np.abs(matrix - target))
    for _ in range(2, num_items):
        best, best_val = None, np.inf
        for i in range(matrix.shape[0]):
            if i not in inds:
                diff = abs(np.mean(_pair_values(matrix, inds + [i])) - target)
                if diff < best_val:
                    best, best_val = i, diff
        inds.append(best)
    return inds


def naive_uniform(matrix, num_items):
    inds = _start_pair(matrix)
    uniform_cdf = stats.uniform(loc=0, scale=1).cdf
    for _ in range(2, num_items):
        best, best_val = None, -1
        for i in range(matrix.shape[0]):
            if i not in inds:
                p = stats.kstest(_pair_values(matrix, inds + [i]), uniform_cdf).pvalue
                if p > best_val:
                    best, best_val = i, p
        inds.append(best)
    return inds


def _timed(func, *args):
    start = time.perf_counter()
    result = func(*args)
    return time.perf_counter() - start, result


def _random_rdm(n, rng, normal=False):
    matrix = rng.normal(size=(n, n)) if normal else rng.uniform(size=(n, n))
    matrix = (matrix + matrix.T) / 2
    np.fill_diagonal(matrix, 0)
    return matrix


def main():
    rng = np.random.default_rng(0)
    cases = [
        (
            "get_extreme_dissims_total, 50 of 1000",
            lambda m: get_extreme_dissims_total(m, 50)[1],
            lambda m: naive_total(m, 50),
            _random_rdm(1000, rng, normal=True),
        ),
        (
            "get_dissims_that_match, 20 of 300",
            lambda m: get_dissims_that_match(m, 0.55, 20)[1],
            lambda m: naive_match(m, 0.55, 20),
            _random_rdm(300, rng),
        ),
        (
            "get_most_uniform_dissims, 12 of 200",
            lambda m: get_most_uniform_dissims(m, 12)[1],
            lambda m: naive_uniform(m, 12),
            _random_rdm(200, rng),
        ),
    ]
    print(f"{'case':40s} {'ours (s)':>10s} {'naive (s)':>10s} {'ratio':>8s}  same picks")
    for name, ours, naive, matrix in cases:
        ours_s, ours_inds = _timed(ours, matrix)
        naive_s, naive_inds = _timed(naive, matrix)
        print(
            f"{name:40s} {ours_s:10.4f} {naive_s:10.4f} {naive_s / ours_s:7.0f}x"
            f"  {ours_inds == naive_inds}"
        )
    matrix = _random_rdm(1000, rng)
    ours_s, _ = _timed(lambda m: get_most_uniform_dissims(m, 50), matrix)
    print(f"{'get_most_uniform_dissims, 50 of 1000':40s} {ours_s:10.4f} {'-':>10s}")
    ours_s, _ = _timed(lambda m: get_extreme_dissims_total(m, "all"), matrix)
    print(f"{'get_extreme_dissims_total, all 1000':40s} {ours_s:10.4f} {'-':>10s}")


if __name__ == "__main__":
    main()
