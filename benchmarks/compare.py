"""RDM comparisons: compare_rdms vs rsatoolbox.rdm.compare, side by side.

Run with ``python benchmarks/compare.py`` (needs ``pip install rsatoolbox``).
For each size (number of RDMs x entries per RDM) and method (Pearson,
Spearman, Kendall's tau-a), times every pair of RDMs compared with
``compare_rdms(rdms, method=...)`` and with ``rsatoolbox.rdm.compare(rdms,
rdms, method=...)``, prints the seconds (best of 3 runs each), the ratio
(rsatoolbox / ours) and the largest difference between the two results.

Comparisons whose pairs exceed ``--max-pairs`` (the default keeps Kendall's
tau-a at 2,000 RDMs of 100 entries to minutes) are timed on the first
rows only, ``compare_rdms(rdms[:k], rdms)`` and ``compare(rdms[:k], rdms)``,
and extrapolated per pair to all pairs; such lines are marked ``(est.)``.
``compare_rdms`` computes only the pairs i <= j when comparing RDMs with
themselves, so its estimate counts m(m+1)/2 pairs, rsatoolbox's m^2.
"""

import argparse
import time

import numpy as np
import torch
from scipy.spatial.distance import squareform

from pytorch_feature_analysis import compare_rdms

METHODS = {"pearson": "corr", "spearman": "spearman", "kendall_tau_a": "tau-a"}


def random_rdms(count, entries, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.random((count, entries * (entries - 1) // 2))
    return np.stack([squareform(row) for row in values])


REPEATS = 3


def timed(func):
    """The best of :data:`REPEATS` runs (the machine may be shared) and the result."""
    best = float("inf")
    for _ in range(REPEATS):
        start = time.perf_counter()
        result = func()
        best = min(best, time.perf_counter() - start)
    return best, result


def compare_once(rdms, method, max_pairs, rsatoolbox):
    """Seconds for ours and rsatoolbox's (both for all pairs), whether estimated, max difference."""
    count = len(rdms)
    theirs = rsatoolbox.rdm.RDMs(rdms)
    rows = count if count * count <= max_pairs else max(1, max_pairs // count)
    if rows == count:
        ours_s, ours = timed(lambda: compare_rdms(rdms, method=method))
        their_s, reference = timed(lambda: rsatoolbox.rdm.compare(theirs, theirs, METHODS[method]))
        return ours_s, their_s, False, np.nanmax(np.abs(ours - reference))
    subset = rsatoolbox.rdm.RDMs(rdms[:rows])
    ours_s, ours = timed(lambda: compare_rdms(rdms[:rows], rdms, method=method))
    their_s, reference = timed(lambda: rsatoolbox.rdm.compare(subset, theirs, METHODS[method]))
    per_pair_ours, per_pair_theirs = ours_s / (rows * count), their_s / (rows * count)
    estimate_ours = per_pair_ours * count * (count + 1) / 2
    return estimate_ours, per_pair_theirs * count * count, True, np.nanmax(np.abs(ours - reference))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="120x20,120x100,2000x100",
                        help="comma-separated COUNTxENTRIES (default: %(default)s)")
    parser.add_argument("--max-pairs", type=int, default=10_000,
                        help="pairs timed before extrapolating (default: %(default)s)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    args = parser.parse_args()
    import rsatoolbox

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch threads: {torch.get_num_threads()}")
    compare_rdms(random_rdms(3, 5), method="kendall_tau_a")  # warm up
    print(f"{'RDMs x entries':>15} {'method':>14} {'ours s':>10} {'rsatoolbox s':>13} "
          f"{'ratio':>8} {'max diff':>9}")
    for size in args.sizes.split(","):
        count, entries = (int(part) for part in size.split("x"))
        rdms = random_rdms(count, entries)
        for method in METHODS:
            pairs = args.max_pairs if method == "kendall_tau_a" else 10**12
            ours, theirs, estimated, diff = compare_once(rdms, method, pairs, rsatoolbox)
            mark = " (est.)" if estimated else ""
            print(f"{size:>15} {method:>14} {ours:10.3f} {theirs:13.3f} "
                  f"{theirs / ours:8.1f} {diff:9.1e}{mark}", flush=True)


if __name__ == "__main__":
    main()
