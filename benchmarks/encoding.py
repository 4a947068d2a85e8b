"""Encoding models at scale: many images, AlexNet's largest layers, thousands of voxels.

Random textures run through AlexNet with random weights (seeded) at 224 x 224;
simulated voxels (linear functions of each image's mean colour and contrast,
plus noise -- the timing does not depend on what they are) are fitted from
each of AlexNet's 8 largest layers by ``fit_encoding_models``: 10-fold
cross-validation, closed-form ridge, every voxel at once, each voxel's penalty
chosen by leave-one-out error among 11 penalties. Reported: the whole call
(forward passes included), the forward passes alone (``get_activations`` of
the same layers), and scikit-learn's ``RidgeCV(alphas, alpha_per_target=True)``
run by ``cross_val_predict`` on the same folds for one layer and a subset of
the voxels, with the ratio to the library's fitting time on the same data.

Run: ``python benchmarks/encoding.py [--images 1000] [--voxels 5000] [--cv 10]
[--device cpu] [--sklearn-layer conv4] [--sklearn-voxels 500]``.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
import pandas as pd
from scipy import ndimage
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import KFold, cross_val_predict

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis._ridge import DEFAULT_ALPHAS


def textures(count: int, size: int = 224, seed: int = 0) -> list[np.ndarray]:
    """Smooth random colour textures, uint8 ``size x size x 3``."""
    rng = np.random.default_rng(seed)
    images = []
    for sigma in rng.uniform(0.5, 4, count):
        noise = rng.uniform(size=(size // 4, size // 4, 3))
        smooth = ndimage.gaussian_filter(noise, sigma=(sigma, sigma, 0))
        smooth = (smooth - smooth.min()) / (np.ptp(smooth) + 1e-12)
        images.append((np.kron(smooth, np.ones((4, 4, 1))) * 255).astype(np.uint8))
    return images


def simulated_voxels(images: list, count: int, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stats = np.array([[*image.reshape(-1, 3).mean(0), image.std()] for image in images])
    stats = (stats - stats.mean(0)) / stats.std(0)
    signal = stats @ rng.normal(size=(stats.shape[1], count))
    values = signal + rng.normal(size=signal.shape) * signal.std(0)
    return pd.DataFrame(values, columns=[f"v{i:05d}" for i in range(count)])


def largest_layers(model, count: int = 8) -> list[tuple]:
    book = pfa.model_layers(model, original_rgb=False)
    sizes = {label: math.prod(call.shape) for label, call in book.items()}
    chosen = sorted(sizes, key=sizes.get, reverse=True)[:count]
    return [label for label in book if label in chosen], sizes


def compare_with_sklearn(images: list, model, voxels: pd.DataFrame, layers: list,
                         args: argparse.Namespace) -> None:
    """One layer, a subset of voxels: the library's ridge against scikit-learn's RidgeCV."""
    label = next(label for label in layers if label[0] == args.sklearn_layer)
    start = time.perf_counter()
    ours = pfa.fit_encoding_models(images, {"alexnet": model}, voxels, [label], cv=args.cv,
                                   device=args.device, verbose=False)
    ours_time = time.perf_counter() - start
    start = time.perf_counter()
    features = pfa.activation_patterns(
        pfa.get_activations(images, model, [label], device=args.device, verbose=False)[label])
    extraction = time.perf_counter() - start
    folds = list(KFold(args.cv, shuffle=True, random_state=0).split(features))
    start = time.perf_counter()
    predicted = cross_val_predict(RidgeCV(alphas=DEFAULT_ALPHAS, alpha_per_target=True),
                                  features, voxels.to_numpy(), cv=folds)
    theirs = time.perf_counter() - start
    truth = voxels.to_numpy()
    same = all(
        np.allclose(row.fold_scores, [np.corrcoef(predicted[test, t], truth[test, t])[0, 1]
                                      for _train, test in folds], atol=1e-6)
        for t, row in enumerate(ours.itertuples()))
    print(f"{label[0]}, {voxels.shape[1]} voxels: fit_encoding_models {ours_time:.1f} s "
          f"(forward pass {extraction:.1f} s included); scikit-learn RidgeCV"
          f"(alpha_per_target=True) by cross_val_predict {theirs:.1f} s (activations given): "
          f"{theirs / max(ours_time - extraction, 1e-9):.1f}x the library's fitting time; "
          f"same fold scores: {same}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--voxels", type=int, default=5000)
    parser.add_argument("--cv", type=int, default=10)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--sklearn-layer", default="conv4")
    parser.add_argument("--sklearn-voxels", type=int, default=500)
    args = parser.parse_args()

    images = textures(args.images)
    voxels = simulated_voxels(images, args.voxels)
    model = pfa.prepare_model("alexnet", "random")
    layers, sizes = largest_layers(model)
    print(f"{args.images} images x {args.voxels} voxels, {args.cv}-fold ridge "
          f"({len(DEFAULT_ALPHAS)} penalties), device {args.device}")
    print("layers:", ", ".join(f"{name} ({sizes[(name, number)]:,} units)"
                               for name, number in layers))

    start = time.perf_counter()
    pfa.get_activations(images, model, layers, device=args.device, verbose=False)
    extraction = time.perf_counter() - start
    start = time.perf_counter()
    scores = pfa.fit_encoding_models(images, {"alexnet": model}, voxels, layers, cv=args.cv,
                                     device=args.device, verbose=False)
    total = time.perf_counter() - start
    fits = total - extraction
    print(f"fit_encoding_models: {total:.1f} s in all; forward passes alone {extraction:.1f} s; "
          f"so about {fits:.1f} s of fitting ({fits / len(layers):.1f} s per layer, "
          f"{1e3 * fits / (len(layers) * args.voxels):.2f} ms per layer x voxel)")
    print(scores.groupby("layer", sort=False)["score"].mean().round(3).to_string())

    compare_with_sklearn(images, model, voxels.iloc[:, : args.sklearn_voxels], layers, args)


if __name__ == "__main__":
    main()
