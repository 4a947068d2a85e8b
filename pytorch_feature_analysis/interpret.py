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

from typing import Any, Callable, Sequence

import pandas as pd
from tqdm.auto import tqdm

from ._attribution import METHODS, SPATIAL_METHODS, check_window, compute_maps, map_options
from ._interpret_core import (
    batches,
    check_metric,
    image_table,
    layer_labels,
    model_dtype,
    model_table,
    needs_maps,
    on_device,
    pixels_of,
    resolve_targets,
    target_columns,
)
from ._validation import check_bool, check_sequence, fail, public

__all__ = ["attribution_maps"]


def _check_methods(methods: Any) -> list[str]:
    methods = [methods] if isinstance(methods, str) else check_sequence(
        methods, "methods", f"a method or a list of methods from {METHODS}")
    for method in methods:
        if method not in METHODS:
            raise fail("methods", f"methods from {METHODS}", method)
    return list(dict.fromkeys(methods))


def _plan(models: dict, layers: Any, pictures: list, transform: Any, channels: Any,
          units: Any, position: Any, methods: list, options: Any) -> list:
    """``[(name, model, pixels, book, label, targets)]``, every input checked up front."""
    plan = []
    for name, model in models.items():
        pixels = pixels_of(pictures, transform, model_dtype(model))
        if "occlusion" in methods:
            check_window(options, pixels.shape)
        book, chosen = layer_labels(model, name, layers, pixels)
        for label in chosen:
            shape = tuple(book[label].shape)
            for method in set(methods) & set(SPATIAL_METHODS):
                needs_maps(shape, label, name, method)
            targets = resolve_targets(shape, label, name, channels, units, position)
            plan.append((name, model, pixels, book, label, targets))
    return plan


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
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Maps of what drives chosen units, for images x models x layers x targets x methods.

    Parameters
    ----------
    images : sequence, dict or list of dict
        Images (file paths, PIL images or arrays, see
        :func:`~pytorch_feature_analysis.load_image`), keyed by position; a
        dict ``{key: image}``; or image dicts (as
        :func:`~pytorch_feature_analysis.make_synthetic_stimuli` makes) with
        the image under ``'path'`` and labels under the other keys.
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
        maps of a sliding occluder, as DNNBrain) and ``'activation'`` (the
        channel's map resampled to the image size; needs spatial maps).
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
        saliency methods, ``(rows, cols)`` of occluder positions for
        ``'occlusion'`` and ``(height, width)`` for ``'activation'``.

    Raises
    ------
    InvalidInputError
        A channel or unit out of range (the message gives the layer's count),
        a layer without spatial maps for ``'activation'`` or ``position``, an
        occluder larger than the image, an unknown method or layer.

    Notes
    -----
    Forward passes run in full float32 and stop right after the target
    layer. Memory is one batch of the model's activations up to that layer,
    plus its gradients for the saliency methods.

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
    plan = _plan(model_table(models), layers, pictures, transform, channels, units, position,
                 methods, options)
    rows = []
    with tqdm(total=len(plan) * len(methods) * len(pictures), disable=not verbose,
              desc="attribution maps", unit="image") as progress:
        for name, model, pixels, book, label, targets in plan:
            with on_device(model, device) as where:
                for method in methods:
                    for part in batches(len(pictures), batch_size):
                        maps = compute_maps(method, model, book, label, targets,
                                            pixels[part].to(where), options, part.start)
                        rows += _rows(name, label, targets, method, options, maps,
                                      keys[part], labels[part])
                        progress.update(part.stop - part.start)
    return _frame(rows)


def _rows(name, label, targets, method, options, maps, keys, labels) -> list[dict]:
    params = options.params(method)
    return [
        {**target_columns(name, label, target), "image_key": key, **label_values,
         "method": method, "params": params, "map": maps[i, k]}
        for k, target in enumerate(targets)
        for i, (key, label_values) in enumerate(zip(keys, labels))
    ]


def _frame(rows: list[dict]) -> pd.DataFrame:
    """The frame of ``rows``, with ``unit`` and ``position`` kept as objects (ints or None)."""
    frame = pd.DataFrame(rows)
    for column in ("unit", "position", "image_key"):
        frame[column] = pd.Series([row[column] for row in rows], dtype=object)
    return frame
