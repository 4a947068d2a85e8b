"""Streaming per-unit ANOVA against statsmodels, one unit at a time.

A 16 x 16 design (hue x position of a disc; two sizes per cell as
replicates) runs through AlexNet with random weights. ``unit_anova`` gives
eta squared, F and p for every unit of every layer, forward passes included;
statsmodels' ``anova_lm`` (OLS with interaction, type 2) is timed on a sample
of units, given their activations, and its per-unit time is extrapolated. A
plain streaming pass (forward passes only) shows what the ANOVA itself adds.

Run: ``python benchmarks/anova.py [--replicates 2] [--units 20] [--device cpu]``.
"""

from __future__ import annotations

import argparse
import colorsys
import time
import warnings

import numpy as np
import pandas as pd
from PIL import Image, ImageDraw
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

import pytorch_feature_analysis as pfa

NUM_LEVELS = 16


def disc_image(hue_index: int, position_index: int, replicate: int, size: int = 64) -> Image.Image:
    rgb = colorsys.hsv_to_rgb(hue_index / NUM_LEVELS, 0.85, 0.9)
    image = Image.new("RGB", (size, size), (255, 255, 255))
    row, col = divmod(position_index, 4)
    centre = ((col + 0.5) * size / 4, (row + 0.5) * size / 4)
    radius = size / 10 + 2 * replicate
    box = (centre[0] - radius, centre[1] - radius, centre[0] + radius, centre[1] + radius)
    ImageDraw.Draw(image).ellipse(box, fill=tuple(int(255 * v) for v in rgb))
    return image


def make_image_set(replicates: int) -> tuple:
    stim_dict = {
        (f"hue{h:02d}", f"pos{p:02d}"): [disc_image(h, p, r) for r in range(replicates)]
        for h in range(NUM_LEVELS)
        for p in range(NUM_LEVELS)
    }
    return ({"design": f"{NUM_LEVELS}x{NUM_LEVELS}x{replicates}"}, stim_dict, ("hue", "position"))


def statsmodels_unit(values: np.ndarray, replicates: int) -> pd.DataFrame:
    frame = pd.DataFrame(
        {
            "y": values,
            "hue": np.repeat(np.arange(NUM_LEVELS), NUM_LEVELS * replicates),
            "position": np.tile(np.repeat(np.arange(NUM_LEVELS), replicates), NUM_LEVELS),
        }
    )
    typ = 2 if replicates > 1 else 1  # type 2 needs residual degrees of freedom
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return anova_lm(ols("y ~ C(hue) * C(position)", data=frame).fit(), typ=typ)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--replicates", type=int, default=2)
    parser.add_argument("--units", type=int, default=20, help="units timed with statsmodels")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    image_set = make_image_set(args.replicates)
    model = pfa.prepare_model("alexnet", "random")
    layers = [label for label in pfa.model_layers(model)]
    num_images = NUM_LEVELS * NUM_LEVELS * args.replicates

    start = time.perf_counter()
    summary, units = pfa.unit_anova(
        image_set, ("alexnet", model), layers, batch_size=args.batch_size,
        device=args.device, verbose=False,
    )
    ours_seconds = time.perf_counter() - start
    num_units = sum(stats["eta2_var1"].size for stats in units.values())

    images = [image for cell in image_set[1].values() for image in cell]
    start = time.perf_counter()
    for _ in pfa.iter_activations(images, model, layers, batch_size=args.batch_size,
                                  device=args.device, verbose=False):
        pass
    forward_seconds = time.perf_counter() - start

    # A sample of units with variance, spread over the layers.
    rng = np.random.default_rng(0)
    flat = {label: stats["ss_total"].reshape(-1) for label, stats in units.items()}
    candidates = [(label, i) for label in flat for i in np.flatnonzero(flat[label] > 0)[:5000]]
    sample = [candidates[k] for k in rng.choice(len(candidates), args.units, replace=False)]
    sampled_layers = sorted({label for label, _ in sample}, key=layers.index)
    acts = pfa.get_activations(images, model, sampled_layers, batch_size=args.batch_size,
                               device=args.device, verbose=False)

    tables = []
    start = time.perf_counter()
    for label, unit in sample:
        values = acts[label].reshape(num_images, -1)[:, unit].astype(np.float64)
        tables.append(statsmodels_unit(values, args.replicates))
    statsmodels_seconds = time.perf_counter() - start

    effects = {"var1": "C(hue)", "var2": "C(position)", "interaction": "C(hue):C(position)"}
    eta_diff, f_rel, p_rel = 0.0, 0.0, 0.0
    for (label, unit), table in zip(sample, tables):
        total = table["sum_sq"].sum()
        for key, row in effects.items():
            stats = {name: units[label][f"{name}_{key}"].reshape(-1)[unit]
                     for name in ("eta2", "F", "p")}
            eta_diff = max(eta_diff, abs(stats["eta2"] - table.loc[row, "sum_sq"] / total))
            if args.replicates > 1 and np.isfinite(stats["F"]):
                f_rel = max(f_rel, abs(stats["F"] / table.loc[row, "F"] - 1))
                reference_p = table.loc[row, "PR(>F)"]
                if reference_p > 0:
                    p_rel = max(p_rel, abs(stats["p"] / reference_p - 1))

    ours_per_unit = ours_seconds / num_units
    statsmodels_per_unit = statsmodels_seconds / len(sample)
    print(f"design: {NUM_LEVELS} x {NUM_LEVELS} cells x {args.replicates} replicate(s) = "
          f"{num_images} images; AlexNet (random weights), {len(layers)} layers, "
          f"{num_units:,} units; device {args.device}")
    print(f"unit_anova (forward passes included): {ours_seconds:8.2f} s in all, "
          f"{ours_per_unit * 1e6:10.3f} us per unit")
    print(f"  of which forward passes alone:      {forward_seconds:8.2f} s; the ANOVA sums "
          f"{max(ours_seconds - forward_seconds, 0) / num_units * 1e6:.3f} us per unit")
    print(f"statsmodels anova_lm ({len(sample)} units):  {statsmodels_seconds:8.2f} s in all, "
          f"{statsmodels_per_unit * 1e6:10.1f} us per unit")
    every_unit_hours = statsmodels_per_unit * num_units / 3600
    print(f"speed-up per unit: {statsmodels_per_unit / ours_per_unit:,.0f}x "
          f"(statsmodels for every unit would take {every_unit_hours:,.1f} h)")
    print(f"agreement on {len(sample)} units: max |eta2 difference| = {eta_diff:.2e}; "
          f"max relative difference F = {f_rel:.2e}, p = {p_rel:.2e}")


if __name__ == "__main__":
    main()
