"""Meta-RDMs: get_meta_rdms vs a per-pair loop like the original library's.

Run with ``python benchmarks/meta.py``. Builds a synthetic first-order frame
of 4,000 RDMs of 20 entries (200 objects x 20 layers) and makes one
second-order meta-RDM per layer (20 groups of 200 entries) with
``get_meta_rdms``, and with a reference that loops over pairs of sub-RDMs,
drops rows that are entirely NaN, and calls ``np.corrcoef`` (or
``np.linalg.norm``) per pair. Prints the seconds taken by each, their ratio
(target >= 100) and the largest difference between the two results. The
reference takes minutes; ``--objects 100`` gives a quicker run.
"""

import argparse
import time

import numpy as np
import pandas as pd

from pytorch_feature_analysis import get_extreme_dissims_total, get_meta_rdms


def synthetic_frame(num_objects, num_layers, num_entries, seed=0):
    rng = np.random.default_rng(seed)
    colors = [f"{i:03d}" for i in range(num_entries)]
    rows = []
    for obj in range(num_objects):
        for layer in range(num_layers):
            matrix = rng.random((num_entries, num_entries))
            matrix = matrix + matrix.T
            np.fill_diagonal(matrix, 0.0)
            rows.append(
                {
                    "model": "net",
                    "layer": f"layer{layer:02d}",
                    "obj": f"obj{obj:03d}",
                    "dissim_metric": "corr",
                    "matrix": matrix,
                    "entry_keys": tuple((c,) for c in colors),
                    "entry_labels": tuple({"color": c} for c in colors),
                }
            )
    return pd.DataFrame(rows)


def reference_meta_rdms(rdm_df, metric):
    """One meta-RDM per layer, one dissimilarity per pair of sub-RDMs."""
    results = {}
    for layer, group in rdm_df.groupby("layer"):
        matrices = list(group["matrix"])
        k = len(matrices)
        meta = np.zeros((k, k))
        for i in range(k):
            for j in range(i + 1, k):
                a, b = matrices[i], matrices[j]
                n = a.shape[0]
                empty_rows = (np.isnan(a).sum(axis=1) == n - 1) | (np.isnan(b).sum(axis=1) == n - 1)
                keep = np.flatnonzero(~empty_rows)
                upper = np.triu_indices(len(keep), 1)
                x = a[np.ix_(keep, keep)][upper]
                y = b[np.ix_(keep, keep)][upper]
                if metric == "corr":
                    value = 1.0 - np.corrcoef(x, y)[0, 1]
                else:
                    value = np.linalg.norm(x - y)
                meta[i, j] = meta[j, i] = value
        get_extreme_dissims_total(meta, "all")
        results[layer] = meta
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--objects", type=int, default=200)
    parser.add_argument("--layers", type=int, default=20)
    parser.add_argument("--entries", type=int, default=20)
    parser.add_argument("--metric", default="corr", choices=["corr", "euclidean_distance"])
    args = parser.parse_args()

    rdm_df = synthetic_frame(args.objects, args.layers, args.entries)
    print(
        f"{len(rdm_df)} first-order RDMs of {args.entries} entries -> {args.layers} meta-RDMs "
        f"of {args.objects} entries, metric {args.metric!r}"
    )

    start = time.perf_counter()
    ours = get_meta_rdms(
        rdm_df,
        None,
        ["obj"],
        grouping_variables=["model", "layer", "dissim_metric"],
        dissim_metrics=[args.metric],
        verbose=False,
    )
    ours_seconds = time.perf_counter() - start

    start = time.perf_counter()
    reference = reference_meta_rdms(rdm_df, args.metric)
    reference_seconds = time.perf_counter() - start

    largest = max(
        float(np.max(np.abs(matrix - reference[layer])))
        for layer, matrix in zip(ours["layer"], ours["matrix"])
    )
    print(f"get_meta_rdms      {ours_seconds:9.3f} s")
    print(f"per-pair reference {reference_seconds:9.3f} s")
    print(f"ratio (reference / ours): {reference_seconds / ours_seconds:.0f}x (target >= 100x)")
    print(f"largest difference between the two: {largest:.2e}")


if __name__ == "__main__":
    main()
