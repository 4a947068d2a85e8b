"""What a unit sees: attribution maps, receptive fields, synthesis and minimal images.

Once an RSA or an encoding model points at a layer, these functions show what
its units respond to (the algorithms of DNNBrain's ``dnn.algo``). Targets are
addressed by the library's layer labels -- a name such as ``'conv5'`` or a
label such as ``('conv5', 11)``, every call of a module that runs several
times included -- and a *target* is a channel (summarised over space by
``metric``, ``'mean'`` or ``'max'``, or read at one ``position``) or a unit
given by its flat index into the layer's output.

Results are tidy frames, one map per row, with the map as a numpy array in the
``map`` column: filter them with :func:`~pytorch_feature_analysis.df_filter`,
store them with :func:`~pytorch_feature_analysis.save_frame` and draw them
with :func:`plot_map_grid`.

Saliency methods use Captum (``pip install 'pytorch_feature_analysis[interpret]'``),
minimal parcel images scikit-image.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._attribution import (
    METHODS,
    SPATIAL_METHODS,
    check_pair,
    check_window,
    compute_maps,
    map_options,
    threshold_maps,
)
from ._interpret_core import (
    batches,
    check_metric,
    frame_of,
    image_table,
    in_map,
    layer_columns,
    layer_labels,
    layer_plan,
    model_dtype,
    model_table,
    needs_maps,
    on_device,
    pixels_of,
    target_columns,
)
from ._map_grid import plot_map_grid
from ._minimal import minimal_component_images, minimal_parcel_images
from ._receptive_field import crop, layer_geometry
from ._synthesis import synthesize_images
from ._validation import check_bool, check_choice, check_sequence, fail, public
from .activations import get_activations

__all__ = [
    "attribution_maps",
    "receptive_fields",
    "empirical_receptive_fields",
    "synthesize_images",
    "minimal_parcel_images",
    "minimal_component_images",
    "plot_map_grid",
]


def _check_methods(methods: Any) -> list[str]:
    methods = [methods] if isinstance(methods, str) else check_sequence(
        methods, "methods", f"a method or a list of methods from {METHODS}")
    for method in methods:
        if method not in METHODS:
            raise fail("methods", f"methods from {METHODS}", method)
    return list(dict.fromkeys(methods))


def _plan(models: Any, layers: Any, pictures: list, transform: Any, channels: Any,
          units: Any, position: Any, methods: list, options: Any, max_memory: Any,
          device: Any) -> list:
    """``[(name, model, pixels, book, label, targets, options)]``, all checked up front.

    Each layer's options carry the batch size that fits the memory budget.
    """
    def example(model: torch.nn.Module) -> torch.Tensor:
        pixels = pixels_of(pictures, transform, model_dtype(model))
        if {"occlusion", "occlusion_pixels"} & set(methods):
            check_window(options, pixels.shape)
        return pixels

    def check_layer(shape: tuple, label: tuple, name: str) -> None:
        for method in set(methods) & set(SPATIAL_METHODS):
            needs_maps(shape, label, name, method)

    return [(*entry, replace(options, batch_size=fitted)) for *entry, fitted in layer_plan(
        models, layers, example, channels, units, position, options.batch_size, max_memory,
        device, check_layer)]


@public
def attribution_maps(
    images: Any,
    models: Any,
    layers: Any,
    channels: int | Sequence[int] | None = None,
    *,
    units: int | Sequence[int] | None = None,
    position: tuple | None = None,
    methods: str | Sequence[str] = "saliency",
    metric: str = "mean",
    window: int | tuple = (11, 11),
    stride: int | tuple = (2, 2),
    baseline: float = 0.0,
    interpolation: str = "bicubic",
    threshold: float | None = None,
    n_samples: int = 16,
    noise_level: float = 0.1,
    random_state: int = 0,
    batch_size: int = 32,
    max_memory: int | str | None = None,
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Maps of what drives chosen units, for images x models x layers x targets x methods.

    Parameters
    ----------
    images : sequence, dict, list of dict or list of image sets
        Images (file paths, PIL images or arrays, see
        :func:`~pytorch_feature_analysis.load_image`), keyed by position; a
        dict ``{key: image}``; image dicts (as
        :func:`~pytorch_feature_analysis.make_synthetic_stimuli` makes) with
        the image under ``'path'`` and labels under the other keys; or image
        sets (as :func:`~pytorch_feature_analysis.package_image_sets` makes),
        keyed by entry key and labelled by the set's labels and entry
        variables (combination entries left out).
    models : torch.nn.Module or dict
        One model (named ``'model'``) or ``{name: model}``.
    layers : str, tuple or list
        Layer names (``'conv5'``) or labels (``('conv5', 11)``).
    channels : int or sequence of int, optional
        Target channels (for a layer without spatial maps, its units).
    units : int or sequence of int, optional
        Instead of ``channels``: flat indices into the layer's output
        (``numpy.unravel_index`` over its shape gives channel and position).
    position : tuple (y, x), optional
        Read each channel at this position of its map instead of summarising it.
    methods : str or sequence of str, default 'saliency'
        ``'saliency'`` (the gradient of the target's activation with respect to
        the preprocessed pixels, signed; Captum's ``Saliency``),
        ``'guided_saliency'`` (guided backpropagation through every
        ``nn.ReLU``; Captum's ``GuidedBackprop``), ``'smooth_saliency'``
        (SmoothGrad; Captum's ``NoiseTunnel``), ``'occlusion'`` (discrepancy
        maps of a sliding occluder, one value per occluder position, as
        DNNBrain), ``'occlusion_pixels'`` (the drops averaged per pixel over
        the windows covering it, with one more window, clipped, where the
        steps stop short of an edge; Captum's ``Occlusion``) and
        ``'activation'`` (the channel's map resampled to the image size;
        needs spatial maps).
    metric : {'mean', 'max'}, default 'mean'
        How a channel's map is summarised into its activation.
    window, stride : int or (height, width), default (11, 11) and (2, 2)
        The occluder's size and step, in preprocessed pixels.
    baseline : float, default 0.0
        The occluder's value in the preprocessed image (0 is the mean colour
        under ImageNet normalisation).
    interpolation : {'nearest', 'bilinear', 'bicubic', 'area'}, default 'bicubic'
        How activation maps are resampled.
    threshold : float in [0, 1], optional
        Activation maps: values below this quantile of each map are set to 0.
    n_samples : int, default 16
        Noisy copies per image for ``'smooth_saliency'``.
    noise_level : float, default 0.1
        The noise's standard deviation as a fraction of each image's range.
    random_state : int, default 0
        Seed of the noise (image ``i`` uses ``random_state + i``).
    batch_size : int, default 32
        Images (or occluded copies, or noisy copies) per forward pass.
    max_memory : int or str, optional
        Bytes (or a size such as ``'4GB'``) one batch may use: batches are
        made smaller to fit (see Notes). Default: half of the memory free on
        ``device``.
    device : {'cpu', 'cuda'} or torch.device, default 'cpu'
        Where the passes run (the model is moved there and back).
    transform : callable, optional
        Preprocessing; default :func:`~pytorch_feature_analysis.default_transform`.
    verbose : bool, default True
        Show a progress bar.

    Returns
    -------
    pandas.DataFrame
        One row per model, layer, target, image and method, with columns
        ``model``, ``layer``, ``layer_num``, ``layer_label``, ``channel``,
        ``position`` (``(y, x)`` or ``None``), ``unit`` (flat index or ``None``),
        ``image_key``, one column per image label, ``method``, ``params``
        (dict of the options that shaped the map) and ``map``: a numpy array,
        ``(channels, height, width)`` of the preprocessed image for the
        saliency methods and ``'occlusion_pixels'``, ``(rows, cols)`` of
        occluder positions for ``'occlusion'`` and ``(height, width)`` for
        ``'activation'``.

    Raises
    ------
    InvalidInputError
        A channel or unit out of range (the message gives the layer's count),
        a layer without spatial maps for ``'activation'`` or ``position``, an
        occluder larger than the image, an unknown method or layer.

    Notes
    -----
    Forward passes run in full float32 and stop right after the target
    layer. Memory is one batch of the model's activations up to that layer
    and their gradients: per image, twice the input and every layer output
    up to the target; the batch size is lowered until a batch fits
    ``max_memory``. The preprocessed images of a call are held at once
    (a 224 x 224 RGB image is 0.6 MB in float32). Activation maps show the
    whole channel, also for a ``position`` or a unit.

    Examples
    --------
    >>> import numpy as np, pytorch_feature_analysis as pfa
    >>> model = pfa.prepare_model('alexnet', 'random')
    >>> images = [np.random.default_rng(0).uniform(size=(32, 32, 3))]
    >>> maps = pfa.attribution_maps(images, model, 'conv2', [0, 5],
    ...                             methods=['saliency', 'activation'],
    ...                             transform=pfa.default_transform(64), verbose=False)
    >>> maps[['layer_label', 'channel', 'method']].values.tolist()[:3]
    [[('conv2', 4), 0, 'saliency'], [('conv2', 4), 5, 'saliency'], [('conv2', 4), 0, 'activation']]
    >>> maps['map'][0].shape, maps['map'][2].shape
    ((3, 64, 64), (64, 64))
    """
    pictures, keys, labels = image_table(images)
    methods = _check_methods(methods)
    options = map_options(check_metric(metric), window, stride, baseline, interpolation,
                          threshold, n_samples, noise_level, random_state, batch_size)
    verbose = check_bool(verbose, "verbose")
    plan = _plan(models, layers, pictures, transform, channels, units, position,
                 methods, options, max_memory, device)
    rows = []
    with tqdm(total=len(plan) * len(methods) * len(pictures), disable=not verbose,
              desc="attribution maps", unit="image") as progress:
        for name, model, pixels, book, label, targets, fitted in plan:
            with on_device(model, device) as where:
                for method in methods:
                    for part in batches(len(pictures), fitted.batch_size):
                        maps = compute_maps(method, model, book, label, targets,
                                            pixels[part].to(where), fitted, part.start)
                        rows += _rows(name, label, targets, method, options, maps,
                                      keys[part], labels[part])
                        progress.update(part.stop - part.start)
    return frame_of(rows, ("unit", "position", "image_key"))


def _rows(name, label, targets, method, options, maps, keys, labels) -> list[dict]:
    params = options.params(method)
    return [
        {**target_columns(name, label, target), "image_key": key, **label_values,
         "method": method, "params": params, "map": maps[i, k]}
        for k, target in enumerate(targets)
        for i, (key, label_values) in enumerate(zip(keys, labels))
    ]


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------


def _positions(positions: Any, spatial: tuple, label: tuple, name: str) -> list:
    if positions is None:
        return [None]
    single = isinstance(positions, tuple) and len(positions) == 2 and all(
        isinstance(p, (int, np.integer)) for p in positions)
    chosen = [positions] if single else check_sequence(
        positions, "positions", "a pair (y, x) or a list of pairs")
    for position in chosen:
        if not in_map(position, spatial):
            raise fail("positions", f"pairs (y, x) within the {spatial} maps of layer "
                       f"{label!r} of model {name!r}", position)
    return [tuple(int(p) for p in position) for position in chosen]


@public
def receptive_fields(models: Any, layers: Any, positions: Any = None, *,
                     image_size: int | tuple = 224) -> pd.DataFrame:
    """The theoretical receptive field of units, from the geometry of the layers below them.

    Sizes grow through each convolution and pooling layer by
    ``dilation * (kernel - 1)`` times the current stride in pixels, strides
    multiply, and padding shifts the field's first pixel (pointwise layers,
    normalisation and dropout change nothing).

    Parameters
    ----------
    models : torch.nn.Module or dict
        One model (named ``'model'``) or ``{name: model}``; the layers up to
        each target must form a chain (each taking the previous one's output).
    layers : str, tuple or list
        Layer names or labels, of layers with spatial maps.
    positions : tuple (y, x) or list of them, optional
        Units whose input region is wanted; default none (geometry only).
    image_size : int or (height, width), default 224
        The preprocessed image size (it sets the map sizes and the clipping).

    Returns
    -------
    pandas.DataFrame
        One row per model, layer and position, with columns ``model``,
        ``layer``, ``layer_num``, ``layer_label``, ``size`` (field height and
        width in pixels), ``stride`` (pixels between neighbouring units),
        ``offset`` (first pixel row and column of unit ``(0, 0)``'s field,
        negative where it begins in the padding), ``map_size`` (the layer's
        map height and width), ``position`` (``(y, x)`` or ``None``) and
        ``region`` (``((top, bottom), (left, right))``, end-exclusive, clipped
        to the image; ``None`` without a position).

    Raises
    ------
    InvalidInputError
        A layer without spatial maps, a position outside the map, or layers
        that are no chain of convolutions, pools and pointwise layers.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> alexnet = pfa.prepare_model('alexnet', 'random')
    >>> fields = pfa.receptive_fields(alexnet, ['conv1', 'conv2', 'conv5'], (2, 3))
    >>> fields[['layer', 'size', 'stride', 'offset']].values.tolist()
    ... # doctest: +NORMALIZE_WHITESPACE
    [['conv1', (11, 11), (4, 4), (-2, -2)], ['conv2', (51, 51), (8, 8), (-18, -18)],
     ['conv5', (163, 163), (16, 16), (-66, -66)]]
    >>> fields['region'].tolist()
    [((6, 17), (10, 21)), ((0, 49), (6, 57)), ((0, 129), (0, 145))]
    """
    size = check_pair(image_size, "image_size")
    rows = []
    for name, model in model_table(models).items():
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        example = torch.zeros((1, 3) + size, dtype=model_dtype(model), device=device)
        book, chosen = layer_labels(model, name, layers, example)
        for label in chosen:
            shape = tuple(book[label].shape)
            needs_maps(shape, label, name, "receptive_fields")
            chosen_positions = _positions(positions, shape[1:], label, name)
            with on_device(model, device):
                geometry = layer_geometry(model, book, label, example, name)
            for position in chosen_positions:
                rows.append({
                    **layer_columns(name, label), "size": geometry.size,
                    "stride": geometry.jump, "offset": geometry.offset, "map_size": shape[1:],
                    "position": position,
                    "region": None if position is None else geometry.region(position, size),
                })
    return frame_of(rows, ("position", "region"))


ENGINES = ("activation", "occlusion")


def _engine_maps(pictures: list, models: Any, layers: Any, channels: Any, method: str,
                 threshold: float | None, options: dict) -> pd.DataFrame:
    """Each image's thresholded map of each channel, in image coordinates, image order."""
    if method == "activation":
        return attribution_maps(pictures, models, layers, channels, methods="activation",
                                threshold=threshold, **options)
    maps = attribution_maps(pictures, models, layers, channels, methods="occlusion_pixels",
                            threshold=threshold, **options)  # the threshold checked there
    maps["map"] = [threshold_maps(m[0], threshold) if threshold is not None else m[0]
                   for m in maps["map"]]
    return maps


@public
def empirical_receptive_fields(
    images: Any,
    models: Any,
    layers: Any,
    channels: int | Sequence[int],
    *,
    method: str = "activation",
    threshold: float | None = 0.5,
    interpolation: str = "bicubic",
    metric: str = "mean",
    window: int | tuple = (11, 11),
    stride: int | tuple = (2, 2),
    baseline: float = 0.0,
    batch_size: int = 32,
    max_memory: int | str | None = None,
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """The empirical receptive field of channels: what their top unit covers, over many images.

    For each image, a map of the channel in image coordinates is
    thresholded: its activation map (:func:`attribution_maps` with
    ``'activation'``) or its occlusion map (``'occlusion_pixels'``; the
    drop of the channel's ``metric`` when the occluder covers each pixel). The
    window of the theoretical receptive field (:func:`receptive_fields`) of
    the channel's most active unit is cut from it, and the windows are
    averaged over the images (DNNBrain's ``EmpiricalReceptiveField``).

    Parameters
    ----------
    images, models, layers, channels
        As :func:`attribution_maps`; the layers need spatial maps and a chain
        below them (see :func:`receptive_fields`).
    method : {'activation', 'occlusion'}, default 'activation'
        The map: upsampled activation, or occlusion per pixel.
    threshold : float in [0, 1] or None, default 0.5
        Values of each map below this quantile are set to 0.
    interpolation : {'nearest', 'bilinear', 'bicubic', 'area'}, default 'bicubic'
        Resampling of activation maps.
    metric, window, stride, baseline
        The occluder, for ``'occlusion'`` (see :func:`attribution_maps`).
    batch_size, max_memory, device, transform, verbose
        As :func:`attribution_maps`.

    Returns
    -------
    pandas.DataFrame
        One row per model, layer and channel, with columns ``model``,
        ``layer``, ``layer_num``, ``layer_label``, ``channel``, ``method``,
        ``params`` (the options of the maps and ``threshold``), ``n_images``
        and ``map``: the mean window, of the theoretical field's size, ``NaN``
        where it lies outside every image (pixels outside an image are left
        out of its mean).

    Examples
    --------
    >>> import numpy as np, pytorch_feature_analysis as pfa
    >>> alexnet = pfa.prepare_model('alexnet', 'random')
    >>> images = [np.random.default_rng(i).uniform(size=(32, 32, 3)) for i in range(3)]
    >>> field = pfa.empirical_receptive_fields(images, alexnet, 'conv2', [1], verbose=False,
    ...                                        transform=pfa.default_transform(64))
    >>> field['map'][0].shape, int(field['n_images'][0])
    ((51, 51), 3)
    """
    pictures = image_table(images)[0]
    method = check_choice(method, "method", ENGINES)
    options = dict(batch_size=batch_size, max_memory=max_memory, device=device,
                   transform=transform, verbose=verbose)
    options.update(dict(interpolation=interpolation) if method == "activation" else dict(
        metric=metric, window=window, stride=stride, baseline=baseline))
    maps = _engine_maps(pictures, models, layers, channels, method, threshold, options)
    rows = []
    for name, model in model_table(models).items():
        pixels = pixels_of(pictures[:1], transform, model_dtype(model))
        book, chosen = layer_labels(model, name, layers, pixels)
        layer_maps = get_activations(pictures, model, chosen, batch_size=batch_size,
                                     device=device, transform=transform, original_rgb=False,
                                     verbose=False, layer_book=book)
        for label in chosen:
            with on_device(model, device) as where:
                geometry = layer_geometry(model, book, label, pixels.to(where), name)
            for channel, part in maps[(maps["model"] == name)
                                      & (maps["layer_label"] == label)].groupby("channel"):
                windows = [crop(image_map, geometry, np.unravel_index(
                    np.argmax(layer_maps[label][i, channel]), layer_maps[label].shape[2:]))
                    for i, image_map in enumerate(part["map"])]
                rows.append({
                    **layer_columns(name, label), "channel": int(channel), "method": method,
                    "params": {**part["params"].iloc[0], "threshold": threshold},
                    "n_images": len(windows), "map": _nanmean(np.stack(windows)),
                })
    return pd.DataFrame(rows)


def _nanmean(windows: np.ndarray) -> np.ndarray:
    """The mean over the first axis, leaving out NaN (NaN where every value is NaN)."""
    counts = np.sum(~np.isnan(windows), axis=0)
    sums = np.nansum(windows, axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
