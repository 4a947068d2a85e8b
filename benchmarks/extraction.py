"""Activation extraction: get_activations (every layer) vs a bare forward pass.

Run with ``python benchmarks/extraction.py``. For AlexNet and ResNet-50 with
random weights, on 64 synthetic 224 x 224 images (PIL images in memory), it
times, each the best of three interleaved repeats:

* ``preprocess``: :func:`preprocess_images` on every batch (resizing,
  cropping, normalising), on its own;
* ``bare``: that preprocessing plus a batched forward pass with no hooks on the
  same batches (same ``batch_size``), under ``torch.inference_mode``;
* ``ours``: :func:`get_activations` with every layer: it preprocesses, traces
  the model (one forward pass of one image), runs the same batches with a hook
  per layer and stores a float32 copy of every layer's output;
* ``ours, book given``: the same with ``layer_book`` passed, as
  :func:`get_rdms` does for every image set after the first, so no tracing.

It prints images per second (wall clock) and CPU seconds of each, and the
ratio to ``bare`` of both (target <= 1.1). On a machine shared with other
work the wall clock varies from run to run; the CPU-time ratio is steadier.
The ``stored MB`` column is the size of the returned activations: writing
them into fresh memory is the unavoidable cost of keeping every layer.
"""

import argparse
import time

import torch

from pytorch_feature_analysis import (
    get_activations,
    make_synthetic_stimuli,
    model_layers,
    prepare_model,
    preprocess_images,
)


def timed(function):
    """Wall-clock and CPU seconds of one call; the result (possibly GBs) is dropped at once."""
    wall, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - wall, time.process_time() - cpu


def preprocess_all(images, batch_size):
    return [
        preprocess_images(images[start:start + batch_size])
        for start in range(0, len(images), batch_size)
    ]


def bare_forward(model, batches):
    with torch.inference_mode():
        for batch in batches:
            model(batch)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=["alexnet", "resnet50"])
    args = parser.parse_args()

    stimuli = make_synthetic_stimuli(num_objects=8, colors=range(0, 360, 45), size=224)
    images = [stimulus["path"] for stimulus in stimuli][: args.num_images]
    n = len(images)
    print(
        f"{n} images of 224 x 224, batch_size {args.batch_size}, best of {args.repeats}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads"
    )
    header = (
        f"{'model':<9} {'layers':>6} {'stored MB':>9}  {'run':<22} {'img/s':>7} "
        f"{'cpu s':>7} {'/bare wall':>10} {'/bare cpu':>9}"
    )
    print()
    print(header)
    print("-" * len(header))
    for name in args.models:
        model = prepare_model(name, "random", random_state=0)
        book = model_layers(model)
        batches = preprocess_all(images, args.batch_size)
        bare_forward(model, batches[:1])  # warm-up
        one_image = get_activations(images[:1], model, verbose=False, layer_book=book)
        stored_mb = sum(array.nbytes for array in one_image.values()) * n / 1e6
        del one_image

        runs = {
            "preprocess": lambda: preprocess_all(images, args.batch_size),
            "forward": lambda: bare_forward(model, batches),
            "ours": lambda: get_activations(
                images, model, batch_size=args.batch_size, verbose=False
            ),
            "ours, book given": lambda: get_activations(
                images, model, batch_size=args.batch_size, verbose=False, layer_book=book
            ),
        }
        times = {key: [] for key in runs}
        for _ in range(args.repeats):  # interleaved, so that load on the machine hits all alike
            for key, run in runs.items():
                times[key].append(timed(run))
        best = {key: tuple(min(column) for column in zip(*values)) for key, values in times.items()}
        best["bare"] = tuple(p + f for p, f in zip(best["preprocess"], best["forward"]))

        for row, key in enumerate(["preprocess", "bare", "ours", "ours, book given"]):
            wall, cpu = best[key]
            bare_wall, bare_cpu = best["bare"]
            first = (
                f"{name:<9} {len(book):>6} {stored_mb:>9.0f}" if row == 0 else " " * 26
            )
            print(
                f"{first}  {key:<22} {n / wall:>7.1f} {cpu:>7.2f} {wall / bare_wall:>10.2f} "
                f"{cpu / bare_cpu:>9.2f}"
            )
        print()


if __name__ == "__main__":
    main()
