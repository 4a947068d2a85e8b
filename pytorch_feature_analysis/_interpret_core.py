"""What the ``interpret`` functions share: images, models, targets, a forward pass with gradients.

A *target* is what a map or a synthesis is about: one channel of a layer
(summarised over space by a metric, or read at one spatial position), or one
unit given by its flat index into the layer's output. Layers are addressed by
the library's labels (``'conv5'`` or ``('conv5', 11)``), every call of a
module that runs several times included; the forward pass stops right after
the chosen call, and the hook that catches it is the one
:mod:`pytorch_feature_analysis.activations` uses.
"""

from __future__ import annotations

import contextlib
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from ._plan import default_budget, format_bytes
from ._validation import (
    check_choice,
    check_device,
    check_indices,
    check_int,
    check_sequence,
    fail,
    parse_memory,
)
from .activations import LayerCapture, model_layers, resolve_layers
from .stimuli import preprocess_images

METRICS = ("mean", "max")


@dataclass(frozen=True)
class Target:
    """One channel of a layer, at one ``position`` ``(y, x)`` or (``None``) over all of space."""

    channel: int
    position: tuple | None = None
    unit: int | None = None


# ---------------------------------------------------------------------------
# Images and models
# ---------------------------------------------------------------------------


def image_table(images: Any) -> tuple[list, list, list]:
    """``(images, keys, labels)`` from images in any form the ``interpret`` functions take.

    A sequence of images is keyed by position; a dict by its keys. Image dicts
    (as :func:`~pytorch_feature_analysis.make_synthetic_stimuli` makes) hold
    the image under ``'path'`` and labels under their other keys. Image sets
    (as :func:`~pytorch_feature_analysis.package_image_sets` makes) key each
    image by its entry key and label it with the set's labels and entry
    variables.
    """
    expected = ("a sequence of images, a dict {key: image}, a list of dicts with a 'path' key "
                "or a list of image sets")
    if isinstance(images, dict):
        if not images:
            raise fail("images", expected, images)
        return list(images.values()), list(images), [{} for _ in images]
    items = check_sequence(images, "images", expected)
    if all(isinstance(item, dict) for item in items):
        if not all("path" in item for item in items):
            raise fail("images", expected, next(i for i in items if "path" not in i))
        labels = [{k: v for k, v in item.items() if k != "path"} for item in items]
        return [item["path"] for item in items], list(range(len(items))), labels
    if all(_is_image_set(item) for item in items):
        rows = [(image, key, {**dict(labels), **dict(zip(variables, key))})
                for labels, entries, variables, *_ in items for key, image in entries.items()]
        pictures, keys, labels = (list(column) for column in zip(*rows))
        return pictures, keys, labels
    return items, list(range(len(items))), [{} for _ in items]


def _is_image_set(item: Any) -> bool:
    return (isinstance(item, tuple) and len(item) == 4 and isinstance(item[0], dict)
            and isinstance(item[1], dict) and bool(item[1]))


def model_table(models: Any) -> "OrderedDict[str, nn.Module]":
    """``{name: model}`` from one model (named ``'model'``) or a dict of models."""
    if isinstance(models, nn.Module):
        return OrderedDict(model=models)
    if not isinstance(models, dict) or not models or not all(
        isinstance(m, nn.Module) for m in models.values()
    ):
        raise fail("models", "a torch.nn.Module or a non-empty dict {name: torch.nn.Module}",
                   models)
    return OrderedDict((str(name), model) for name, model in models.items())


def pixels_of(images: Sequence, transform: Any, dtype: torch.dtype) -> torch.Tensor:
    """The preprocessed images, as one CPU tensor of the model's floating dtype."""
    return preprocess_images(images, transform).to(dtype)


def model_dtype(model: nn.Module) -> torch.dtype:
    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def layer_labels(model: nn.Module, name: str, layers: Any, example: torch.Tensor) -> tuple:
    """``(book, labels)``: the model's layer book for inputs like ``example``; the chosen labels."""
    book = model_layers(model, example[:1], original_rgb=False)
    if layers is None or (isinstance(layers, str) and layers == "all"):
        raise fail("layers", "a layer name, a label such as ('conv1', 1), or a list of them",
                   layers)
    return book, resolve_layers(book, layers, name)


@contextlib.contextmanager
def on_device(model: nn.Module, device: Any) -> Iterator[torch.device]:
    """Move ``model`` to ``device`` for the block and back afterwards; full float32 inside."""
    from .activations import full_float32

    device = check_device(device)
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    model.to(device)
    try:
        with full_float32(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*(required_grads|backward hooks).*")
            yield device
    finally:
        model.to(home)


# ---------------------------------------------------------------------------
# Targets
# ---------------------------------------------------------------------------


def _where(label: tuple, name: str) -> str:
    return f"layer {label!r} of model {name!r}"


def resolve_targets(
    shape: tuple, label: tuple, name: str, channels: Any, units: Any, position: Any
) -> list[Target]:
    """The targets ``channels`` (at ``position``) or ``units`` of a layer of output ``shape``."""
    where = _where(label, name)
    if (channels is None) == (units is None):
        raise fail("channels", "given when units is None, and None when units are given",
                   f"channels={channels!r}, units={units!r}", raw=True)
    if units is not None:
        size = int(np.prod(shape))
        flat = check_indices(units, "units", size, what="unit", where=where, single=True)
        return [Target(int(i[0]), tuple(int(v) for v in i[1:]) or None, unit)
                for unit, i in zip(flat, (np.unravel_index(u, shape) for u in flat))]
    chosen = check_indices(channels, "channels", shape[0], what="channel", where=where,
                           single=True)
    if position is None:
        return [Target(channel) for channel in chosen]
    spatial = tuple(shape[1:])
    if len(spatial) != 2:
        raise fail("position", f"None: {where} has no spatial maps (output shape {shape})",
                   position)
    if not in_map(position, spatial):
        raise fail("position", f"a pair (y, x) within the {spatial} maps of {where}", position)
    flat = [int(np.ravel_multi_index((c, *position), shape)) for c in chosen]
    return [Target(c, tuple(int(p) for p in position), u) for c, u in zip(chosen, flat)]


def in_map(position: Any, spatial: tuple) -> bool:
    """Whether ``position`` is a pair of ints ``(y, x)`` within maps of size ``spatial``."""
    return isinstance(position, (tuple, list)) and len(position) == 2 and all(
        isinstance(p, (int, np.integer)) and 0 <= p < n for p, n in zip(position, spatial))


def needs_maps(shape: tuple, label: tuple, name: str, method: str) -> None:
    """Refuse a layer whose output has no spatial maps (``(channels, height, width)``)."""
    if len(shape) != 3:
        raise fail("layers", f"layers with spatial maps for {method!r} ({_where(label, name)} "
                   f"has output shape {shape})", label)


def check_metric(metric: Any) -> str:
    return check_choice(metric, "metric", METRICS)


# ---------------------------------------------------------------------------
# The forward pass
# ---------------------------------------------------------------------------


class _Reached(Exception):
    """Raised by the hook once the chosen layer has run: the rest of the pass is skipped."""


def layer_output(model: nn.Module, book: dict, label: tuple, pixels: torch.Tensor) -> torch.Tensor:
    """The output of layer ``label`` for ``pixels``, differentiable, as a copy.

    The copy keeps the value the layer returned even when a later in-place
    operation (``ReLU(inplace=True)``) rewrites the layer's output tensor.
    """
    found: list[torch.Tensor] = []

    def sink(_label: tuple, output: torch.Tensor) -> None:
        found.append(output.clone())
        raise _Reached

    with LayerCapture(model, book, [label], sink):
        try:
            model(pixels)
        except _Reached:
            pass
    return found[0]


def target_values(output: torch.Tensor, targets: Sequence[Target], metric: str) -> torch.Tensor:
    """``(n, len(targets))``: each target's activation for each image."""
    columns = []
    for target in targets:
        part = output[:, target.channel]
        if target.position is not None:
            part = part[(slice(None), *target.position)]
        elif part.ndim > 1:
            part = part.flatten(1)
            part = part.mean(dim=1) if metric == "mean" else part.amax(dim=1)
        columns.append(part)
    return torch.stack(columns, dim=1)


def unit_values(model: nn.Module, book: dict, label: tuple, targets: Sequence[Target],
                metric: str, pixels: torch.Tensor) -> torch.Tensor:
    """``(n, len(targets))`` activations of the targets for ``pixels`` (with gradients)."""
    return target_values(layer_output(model, book, label, pixels), targets, metric)


def fitted_batch_size(book: dict, label: tuple, example: torch.Tensor, batch_size: int,
                      max_memory: Any, device: Any) -> int:
    """``batch_size``, lowered so one batch's pass up to ``label`` and back fits the budget.

    One image needs its input and every layer output up to ``label``, twice
    (values and gradients). The budget is ``max_memory``, or a safe share of
    the memory free on ``device`` (as every extraction of the library).
    """
    labels = list(book)
    sizes = [int(np.prod(book[each].shape)) for each in labels[: labels.index(label) + 1]]
    per_image = 2 * example.element_size() * (example[0].numel() + sum(sizes))
    budget = (default_budget(check_device(device)) if max_memory is None
              else parse_memory(max_memory))
    if per_image > budget:
        raise fail("max_memory", f"at least {format_bytes(per_image)}, what one image needs "
                   f"for a pass up to layer {label!r} and back", max_memory)
    return max(1, min(batch_size, budget // per_image))


def layer_plan(models: Any, layers: Any, example: Callable, channels: Any, units: Any,
               position: Any, batch_size: int | None, max_memory: Any, device: Any,
               check_layer: Callable | None = None) -> list[tuple]:
    """``[(name, model, pixels, book, label, targets, fitted)]`` per model and chosen layer.

    Everything is checked up front, before any pass that computes results.
    ``example(model)`` gives the model's preprocessed ``pixels`` that trace its
    layers; ``check_layer(shape, label, name)``, if given, vets each layer's
    output shape before its targets are resolved. ``fitted`` is
    ``batch_size`` (default: the layer's number of targets) lowered so that a
    batch fits ``max_memory`` (:func:`fitted_batch_size`).
    """
    plan = []
    for name, model in model_table(models).items():
        pixels = example(model)
        book, chosen = layer_labels(model, name, layers, pixels)
        for label in chosen:
            shape = tuple(book[label].shape)
            if check_layer is not None:
                check_layer(shape, label, name)
            targets = resolve_targets(shape, label, name, channels, units, position)
            wanted = len(targets) if batch_size is None else batch_size
            fitted = fitted_batch_size(book, label, pixels, wanted, max_memory, device)
            plan.append((name, model, pixels, book, label, targets, fitted))
    return plan


def batches(count: int, batch_size: int) -> Iterator[slice]:
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    for start in range(0, count, batch_size):
        yield slice(start, min(start + batch_size, count))


def layer_columns(name: str, label: tuple) -> dict:
    """The frame columns naming a model and layer."""
    return {"model": name, "layer": label[0], "layer_num": label[1], "layer_label": label}


def target_columns(name: str, label: tuple, target: Target) -> dict:
    """The frame columns naming a model, layer and target."""
    return {**layer_columns(name, label), "channel": target.channel,
            "position": target.position, "unit": target.unit}


def frame_of(rows: list[dict], objects: tuple) -> pd.DataFrame:
    """The frame of ``rows``, with the ``objects`` columns kept as Python objects (or None)."""
    frame = pd.DataFrame(rows)
    for column in objects:
        frame[column] = pd.Series([row[column] for row in rows], dtype=object)
    return frame
