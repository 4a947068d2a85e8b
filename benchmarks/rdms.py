"""get_rdms against a naive per-pair reference and the batched limit.

Cases (AlexNet, random weights, every layer, 'corr' and 'euclidean_distance',
both activation types):

(a) the user guide's example: 4 image sets x 4 images;
(b) one image set of 100 images;
(c) one image set of 1,000 images (ours and the limit only; peak memory).

* ours  -- ``pfa.get_rdms`` (no file written; the parquet write is timed apart);
* naive -- as the original library: one image at a time through hooks, then a
  Python loop over pairs of images per layer, metric and activation type, with
  its kernel selection, copies and ``corr_dissim``.
  For (b) it runs on a sample of pairs and is extrapolated, unless ``--full``;
* limit -- a bare batched forward pass without hooks plus one matrix product
  per RDM (activations captured separately, not timed).

Run: ``python benchmarks/rdms.py [--full] [--skip-large]``.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import pytorch_feature_analysis as pfa

METRICS = ["corr", "euclidean_distance"]


def stimuli(num_objects: int, num_colors: int) -> list[dict]:
    colors = np.linspace(0, 360, num_colors, endpoint=False).astype(int)
    return pfa.make_synthetic_stimuli(num_objects=num_objects, colors=colors, size=224)


def run_ours(image_sets, model) -> tuple[float, object]:
    start = time.perf_counter()
    frame = pfa.get_rdms(image_sets, {"alexnet": model}, None, "bench", dissim_metrics=METRICS, verbose=False)
    return time.perf_counter() - start, frame


def gram_rdms(patterns: np.ndarray) -> list[np.ndarray]:
    """One matrix product per RDM: 1 - r from centred rows, distances from a Gram."""
    x = patterns.astype(np.float64)
    centred = x - x.mean(axis=1, keepdims=True)
    centred /= np.linalg.norm(centred, axis=1, keepdims=True)
    corr = 1 - centred @ centred.T
    y = x - x.mean(axis=0)
    gram = y @ y.T
    sq = np.diag(gram)
    euclid = np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * gram, 0))
    return [corr, euclid]


def run_limit(images, model, batch_size=32) -> float:
    """Bare batched forward (timed) + one matrix product per RDM (timed)."""
    activations = pfa.get_activations(images, model, verbose=False, batch_size=batch_size)
    start = time.perf_counter()
    pixels = pfa.preprocess_images(images)
    with torch.inference_mode():
        for begin in range(0, len(images), batch_size):
            model(pixels[begin:begin + batch_size])
    forward = time.perf_counter() - start
    start = time.perf_counter()
    for values in activations.values():
        for activation_type in pfa.ACTIVATION_TYPES:
            gram_rdms(pfa.activation_patterns(values, activation_type))
    return forward + time.perf_counter() - start


def naive_corr(x, y):
    """The original library's corr_dissim."""
    if np.max(np.abs(x - y)) == 0:
        return 0.0
    if np.sum(np.abs(x)) == 0 or np.sum(np.abs(y)) == 0:
        return np.nan
    return 1 - np.corrcoef(x, y)[0, 1]


def run_naive(images, model, pair_fraction: float = 1.0, seed: int = 0) -> float:
    """The original's algorithm; with pair_fraction < 1, extrapolated from a sample."""
    book = pfa.fetch_layers(model)
    modules = [pfa.index_nested(model._modules, address) for address in book.values()]
    start = time.perf_counter()
    per_image = []
    for image in images:
        stored = []
        handles = [m.register_forward_hook(lambda m, i, o: stored.append(o.detach().numpy().copy())) for m in modules]
        pixels = pfa.preprocess_images([image])
        with torch.no_grad():
            model(pixels)
        for handle in handles:
            handle.remove()
        layers = [pixels.numpy()[0]] + [s[0] for s in stored]
        per_image.append(
            [(layer, layer.reshape(layer.shape[0], -1).mean(axis=1) if layer.ndim == 3 else layer) for layer in layers]
        )
    extraction = time.perf_counter() - start
    n = len(images)
    pairs = [(i, j) for i in range(n) for j in range(i, n)]
    rng = np.random.default_rng(seed)
    if pair_fraction < 1:
        sample = rng.choice(len(pairs), max(1, int(len(pairs) * pair_fraction)), replace=False)
        pairs = [pairs[k] for k in sample]
    funcs = [naive_corr, lambda x, y: np.linalg.norm(x - y)]
    start = time.perf_counter()
    for layer_index in range(len(per_image[0])):
        for func in funcs:
            for type_index in (0, 1):
                kernel_inds = list(range(per_image[0][layer_index][type_index].shape[0]))
                for i, j in pairs:
                    x = per_image[i][layer_index][type_index][kernel_inds, ...].flatten().astype(float)
                    y = per_image[j][layer_index][type_index][kernel_inds, ...].flatten().astype(float)
                    func(x, y)
    loops = (time.perf_counter() - start) / (pair_fraction if pair_fraction < 1 else 1)
    return extraction + loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--full", action="store_true", help="run the naive reference on every pair of (b)")
    parser.add_argument("--skip-large", action="store_true", help="skip case (c), 1,000 images")
    args = parser.parse_args()
    torch.manual_seed(0)
    model = pfa.prepare_model("alexnet", "random")
    print(f"torch threads: {torch.get_num_threads()}")
    print(f"{'case':<28}{'ours s':>10}{'limit s':>10}{'naive s':>12}{'ours/limit':>12}{'naive/ours':>12}")

    guide = pfa.package_image_sets(stimuli(4, 4), ["color"], ["obj"])
    guide_images = [image for image_set in guide for image in image_set[1].values()]
    ours, frame = run_ours(guide, model)
    limit = run_limit(guide_images, model, batch_size=4)
    naive = run_naive(guide_images[:4], model) * 4
    print(f"{'(a) guide 4 sets x 4':<28}{ours:>10.2f}{limit:>10.2f}{naive:>12.1f}{ours / limit:>12.2f}{naive / ours:>12.0f}")
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        pfa.save_frame(frame, Path(folder) / "rdms.parquet")
        print(f"    parquet write of its {len(frame)} rows: {time.perf_counter() - start:.2f} s")

    hundred = pfa.package_image_sets(stimuli(4, 25), ["obj", "color"], [])
    images = list(hundred[0][1].values())
    ours, frame = run_ours(hundred, model)
    limit = run_limit(images, model)
    fraction = 1.0 if args.full else 0.02
    naive = run_naive(images, model, pair_fraction=fraction)
    note = "" if args.full else "  (naive extrapolated from 2% of pairs)"
    print(f"{'(b) one set of 100':<28}{ours:>10.2f}{limit:>10.2f}{naive:>12.1f}{ours / limit:>12.2f}{naive / ours:>12.0f}{note}")

    if not args.skip_large:
        thousand = pfa.package_image_sets(stimuli(8, 125), ["obj", "color"], [])
        images = list(thousand[0][1].values())
        ours, frame = run_ours(thousand, model)
        del frame
        limit = run_limit(images, model)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
        print(f"{'(c) one set of 1,000':<28}{ours:>10.2f}{limit:>10.2f}{'-':>12}{ours / limit:>12.2f}{'-':>12}")
        print(f"    peak memory of this process: {peak:.1f} GiB")


if __name__ == "__main__":
    main()
