"""Scores against targets with inference: compare_to_targets vs rsatoolbox, side by side.

Run with ``python benchmarks/scores.py`` (needs ``pip install rsatoolbox``).
Simulates ``--models`` model RDMs and ``--subjects`` subject RDMs of
``--conditions`` conditions and times ``compare_to_targets(...,
bootstrap=B, bootstrap_over='both')`` for each method, then rsatoolbox's
``eval_bootstrap`` (fixed models, resampling subjects and patterns) on the
same data for ``--rsatoolbox-samples`` resamples, extrapolated per resample
to ``B`` (marked ``(est.)``). Also times ``permutations=B`` and the noise
ceiling alone.
"""

import argparse
import time

import numpy as np
import pandas as pd
from scipy.spatial.distance import pdist, squareform

import pytorch_feature_analysis as pfa

RSATOOLBOX_NAMES = {"pearson": "corr", "spearman": "spearman", "cosine": "cosine",
                    "corr_cov": "corr_cov", "kendall_tau_a": "tau-a"}


def frames(models, subjects, conditions, seed=0):
    rng = np.random.default_rng(seed)
    truth = rng.normal(size=(conditions, 50))
    keys = tuple((f"c{k}",) for k in range(conditions))
    labels = tuple({"condition": key[0]} for key in keys)

    def rows(count, source, noise):
        return [{"model": source, "layer": f"{source}{k}", "subject": k,
                 "matrix": squareform(pdist(truth + noise * rng.normal(size=truth.shape))),
                 "entry_keys": keys, "entry_labels": labels} for k in range(count)]

    model = pd.DataFrame(rows(models, "net", 2.0)).drop(columns="subject")
    target = pd.DataFrame(rows(subjects, "fmri", 1.0)).assign(layer="IT")
    return model, target


def timed(func):
    start = time.perf_counter()
    result = func()
    return time.perf_counter() - start, result


def rsatoolbox_seconds(model, target, method, samples):
    import rsatoolbox

    upper = np.triu_indices(len(model["entry_keys"][0]), 1)
    conditions = len(model["entry_keys"][0])
    data = rsatoolbox.rdm.RDMs(np.stack([m[upper] for m in target["matrix"]]),
                               pattern_descriptors={"index": list(range(conditions))})
    fixed = [rsatoolbox.model.ModelFixed(f"m{k}", m[upper]) for k, m in enumerate(model["matrix"])]
    seconds, _ = timed(lambda: rsatoolbox.inference.eval_bootstrap(
        fixed, data, method=RSATOOLBOX_NAMES[method], N=samples))
    return seconds / samples


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--subjects", type=int, default=10)
    parser.add_argument("--conditions", type=int, default=100)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--rsatoolbox-samples", type=int, default=20)
    parser.add_argument("--methods", nargs="+", default=list(RSATOOLBOX_NAMES))
    args = parser.parse_args()
    model, target = frames(args.models, args.subjects, args.conditions)
    print(f"{args.models} model RDMs x {args.subjects} subjects x {args.conditions} "
          f"conditions, {args.bootstrap} resamples")
    print(f"{'method':<14}{'bootstrap s':>12}{'perms s':>10}{'ceiling s':>11}"
          f"{'rsatoolbox s (est.)':>22}{'ratio':>8}")
    for method in args.methods:
        boot, _ = timed(lambda: pfa.compare_to_targets(
            model, target, method, bootstrap=args.bootstrap, bootstrap_over="both"))
        perms, _ = timed(lambda: pfa.compare_to_targets(
            model, target, method, permutations=args.bootstrap))
        ceiling, _ = timed(lambda: pfa.noise_ceiling(target, method))
        try:
            theirs = rsatoolbox_seconds(model, target, method, args.rsatoolbox_samples)
            theirs *= args.bootstrap
            shown = f"{theirs:>22.1f}{theirs / boot:>8.1f}"
        except ImportError:
            shown = f"{'(not installed)':>22}"
        except Exception as error:  # rsatoolbox's own failures are figures too
            shown = f"  (rsatoolbox failed: {type(error).__name__})"
        print(f"{method:<14}{boot:>12.2f}{perms:>10.2f}{ceiling:>11.3f}{shown}")


if __name__ == "__main__":
    main()
