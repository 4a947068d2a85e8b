"""Minimal images: the fewest parts of an image (parcels or components) that drive a unit.

Both functions follow DNNBrain's ``MinimalParcelImage`` and
``MinimalComponentImage``: the image is split into parts, each part alone is
shown to the network, the parts are sorted by the target's activation
(highest first), and the image made of the first ``k`` parts is shown for
every ``k``; the criterion picks ``k``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._interpret_core import (
    batches,
    check_metric,
    frame_of,
    image_table,
    layer_plan,
    model_dtype,
    on_device,
    pixels_of,
    target_columns,
    unit_values,
)
from ._validation import (check_bool, check_choice, check_int, check_number, check_random_state,
                          fail, public)
from .stimuli import load_image

__all__ = ["minimal_parcel_images", "minimal_component_images"]

PARCELLATIONS = ("slic", "felzenszwalb", "quickshift")
DECOMPOSITIONS = ("pca", "ica")


def _require_skimage() -> Any:
    try:
        import skimage.segmentation
    except ImportError as error:
        raise ImportError(
            "Minimal parcel images need scikit-image: "
            "pip install 'pytorch_feature_analysis[interpret]'."
        ) from error
    return skimage.segmentation


@dataclass
class Parts:
    """An image split into ``count`` parts; ``combine(indices)`` draws the chosen ones."""

    count: int
    combine: Callable[[Sequence[int]], np.ndarray]


def parcels(image: np.ndarray, method: str, options: dict) -> Parts:
    """Parcels of a segmentation: the chosen ones keep their pixels, the rest is black."""
    segmentation = _require_skimage()
    segment = {"slic": segmentation.slic, "felzenszwalb": segmentation.felzenszwalb,
               "quickshift": segmentation.quickshift}[method]
    try:
        labels = segment(image, **options)
    except TypeError as error:
        raise fail("parcel_options", f"options of skimage.segmentation.{method}",
                   options) from error
    names = np.unique(labels)
    return Parts(len(names), lambda kept: image * np.isin(labels, names[list(kept)])[..., None])


def components(image: np.ndarray, method: str, n_components: int | None,
               random_state: int) -> Parts:
    """Components of the image's rows (``height`` samples of ``width * 3`` values).

    The chosen components are added to the mean row and the result clipped to [0, 1].
    """
    from sklearn.decomposition import PCA, FastICA

    rows = image.reshape(image.shape[0], -1)
    most = min(rows.shape)
    count = most if n_components is None else n_components
    if count > most:
        raise fail("n_components", f"at most {most} (the image's height and width x 3)",
                   n_components)
    if method == "pca":
        model = PCA(count, random_state=random_state).fit(rows)
        scores, basis = model.transform(rows), model.components_
    else:
        model = FastICA(count, random_state=random_state, max_iter=1000,
                        whiten="unit-variance").fit(rows)
        scores, basis = model.transform(rows), model.mixing_.T
    mean = model.mean_

    def combine(kept: Sequence[int]) -> np.ndarray:
        kept = list(kept)
        drawn = mean + scores[:, kept] @ basis[kept]
        return np.clip(drawn, 0.0, 1.0).reshape(image.shape)

    return Parts(count, combine)


def _criterion(value: Any) -> str | float:
    if isinstance(value, str) and value == "max":
        return value
    return check_number(value, "criterion", minimum=0, maximum=1, exclusive_minimum=True,
                        what="a fraction, or 'max'")


def _activations(pictures: list, model, book, label, targets, metric, transform, batch_size,
                 device) -> np.ndarray:
    """``(len(pictures), len(targets))`` activations, in batches, without gradients."""
    dtype = model_dtype(model)
    values = []
    with torch.no_grad():
        for part in batches(len(pictures), batch_size):
            pixels = pixels_of(pictures[part], transform, dtype).to(device)
            values.append(unit_values(model, book, label, targets, metric, pixels).cpu())
    return torch.cat(values).double().numpy()


def _choose(curve: np.ndarray, full: float, criterion: str | float) -> int:
    """How many parts to keep: where the curve peaks, or first reaches ``criterion * full``."""
    if criterion == "max":
        return int(np.argmax(curve)) + 1
    reached = np.nonzero(curve >= criterion * full)[0]
    return int(reached[0]) + 1 if len(reached) else len(curve)


def _search(parts: Parts, alone: np.ndarray, full: float, evaluate: Callable, k: int,
            criterion: str | float) -> dict:
    """The minimal image of target ``k``, given its activation to each part ``alone``."""
    order = [int(i) for i in np.argsort(-alone, kind="stable")]
    drawn = [parts.combine(order[:n]) for n in range(1, parts.count + 1)]
    curve = evaluate(drawn)[:, k]
    keep = _choose(curve, full, criterion)
    return {"image": drawn[keep - 1], "parts_kept": tuple(order[:keep]),
            "n_parts": parts.count, "activation": float(curve[keep - 1]),
            "activation_full": full, "activations": curve}


def minimal_images(images, models, layers, channels, units, position, metric, split: Callable,
                   method: str, params: dict, criterion, batch_size, max_memory, device,
                   transform, verbose) -> pd.DataFrame:
    """The frame of minimal images; ``split(image)`` gives each image's :class:`Parts`."""
    pictures, keys, labels = image_table(images)
    metric, criterion = check_metric(metric), _criterion(criterion)
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    verbose = check_bool(verbose, "verbose")
    arrays = [np.asarray(load_image(picture), dtype=np.float64) / 255.0 for picture in pictures]
    plan = layer_plan(models, layers,
                      lambda model: pixels_of(pictures[:1], transform, model_dtype(model)),
                      channels, units, position, batch_size, max_memory, device)
    split_images = [split(array) for array in arrays]
    rows, params = [], {**params, "metric": metric, "criterion": criterion}
    with tqdm(total=len(plan) * len(arrays), disable=not verbose, desc=method,
              unit="image") as progress:
        for name, model, _, book, label, targets, fitted in plan:
            with on_device(model, device) as where:
                def evaluate(drawn: list) -> np.ndarray:
                    return _activations(drawn, model, book, label, targets, metric, transform,
                                        fitted, where)

                for key, label_values, array, parts in zip(keys, labels, arrays, split_images):
                    alone = evaluate([parts.combine([i]) for i in range(parts.count)])
                    full = evaluate([array])[0]
                    for k, target in enumerate(targets):
                        found = _search(parts, alone[:, k], float(full[k]), evaluate, k,
                                        criterion)
                        rows.append({**target_columns(name, label, target), "image_key": key,
                                     **label_values, "method": method, "params": params,
                                     **found})
                    progress.update(1)
    return frame_of(rows, ("unit", "position", "image_key"))


@public
def minimal_parcel_images(
    images: Any,
    models: Any,
    layers: Any,
    channels: int | Sequence[int] | None = None,
    *,
    units: int | Sequence[int] | None = None,
    position: tuple | None = None,
    metric: str = "mean",
    parcellation: str = "slic",
    parcel_options: dict | None = None,
    criterion: str | float = "max",
    batch_size: int = 32,
    max_memory: int | str | None = None,
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """The fewest parcels of each image that drive a target most (DNNBrain's MinimalParcelImage).

    Each image (pixels in [0, 1]) is segmented by scikit-image; a parcel
    alone is the image with every other pixel black. Parcels are sorted by
    the target's activation to them alone (highest first) and the images of
    the first ``k`` parcels are shown for every ``k``.

    Parameters
    ----------
    images, models, layers, channels, units, position, metric
        As :func:`~pytorch_feature_analysis.attribution_maps`.
    parcellation : {'slic', 'felzenszwalb', 'quickshift'}, default 'slic'
        The ``skimage.segmentation`` function.
    parcel_options : dict, optional
        Its keyword arguments (e.g. ``{'n_segments': 50, 'compactness': 10}``).
    criterion : 'max' or float in (0, 1], default 'max'
        ``'max'``: keep the ``k`` whose image drives the target most (the
        smallest such ``k``); a fraction ``f``: the smallest ``k`` whose image
        drives it to at least ``f`` times its activation to the whole image
        (every parcel, if none does).
    batch_size, max_memory, device, transform, verbose
        As :func:`~pytorch_feature_analysis.attribution_maps`.

    Returns
    -------
    pandas.DataFrame
        One row per model, layer, target and image, with columns ``model``,
        ``layer``, ``layer_num``, ``layer_label``, ``channel``, ``position``,
        ``unit``, ``image_key``, one column per image label, ``method``
        (``'minimal_parcels'``), ``params``, ``image`` (the minimal image,
        ``(height, width, 3)`` in [0, 1]), ``parts_kept`` (the parcels kept,
        best first), ``n_parts``, ``activation`` (to the minimal image),
        ``activation_full`` (to the whole image) and ``activations`` (to the
        first ``k`` parcels, for ``k = 1 .. n_parts``).

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(1, colors=(0,), size=32)
    >>> found = pfa.minimal_parcel_images(
    ...     stimuli, pfa.prepare_model('alexnet', 'random'), 'conv2', [3],
    ...     parcel_options={'n_segments': 8}, transform=pfa.default_transform(64),
    ...     verbose=False)
    >>> row = found.iloc[0]
    >>> bool(row['activation'] == row['activations'].max()), row['image'].shape
    (True, (32, 32, 3))
    """
    parcellation = check_choice(parcellation, "parcellation", PARCELLATIONS)
    options = dict(parcel_options or {})
    if parcellation == "slic":
        options.setdefault("start_label", 0)
    return minimal_images(
        images, models, layers, channels, units, position, metric,
        lambda array: parcels(array, parcellation, options), "minimal_parcels",
        {"parcellation": parcellation, "parcel_options": dict(parcel_options or {})},
        criterion, batch_size, max_memory, device, transform, verbose)


@public
def minimal_component_images(
    images: Any,
    models: Any,
    layers: Any,
    channels: int | Sequence[int] | None = None,
    *,
    units: int | Sequence[int] | None = None,
    position: tuple | None = None,
    metric: str = "mean",
    decomposition: str = "pca",
    n_components: int | None = None,
    criterion: str | float = "max",
    random_state: int = 0,
    batch_size: int = 32,
    max_memory: int | str | None = None,
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """The fewest image components that drive a target most (DNNBrain's MinimalComponentImage).

    Each image's rows (``height`` samples of ``width x 3`` pixel values in
    [0, 1]) are decomposed by PCA or ICA (scikit-learn); an image of chosen
    components is the mean row plus their contributions, clipped to [0, 1].
    Components are sorted by the target's activation to the image of each
    alone (highest first), and the images of the first ``k`` are shown for
    every ``k``.

    Parameters
    ----------
    images, models, layers, channels, units, position, metric
        As :func:`~pytorch_feature_analysis.attribution_maps`.
    decomposition : {'pca', 'ica'}, default 'pca'
    n_components : int, optional
        Components per image; default as many as the image allows.
    criterion : 'max' or float in (0, 1], default 'max'
        As :func:`minimal_parcel_images` (all components, if no ``k`` reaches
        the fraction: the clipped reconstruction may fall short of the image).
    random_state : int, default 0
        Seed of the decomposition.
    batch_size, max_memory, device, transform, verbose
        As :func:`~pytorch_feature_analysis.attribution_maps`.

    Returns
    -------
    pandas.DataFrame
        As :func:`minimal_parcel_images`, with ``method``
        ``'minimal_components'`` and components in ``parts_kept``.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(1, colors=(0,), size=16)
    >>> found = pfa.minimal_component_images(
    ...     stimuli[:1], pfa.prepare_model('alexnet', 'random'), 'conv1', [0], n_components=4,
    ...     transform=pfa.default_transform(64), verbose=False)
    >>> int(found['n_parts'][0]), len(found['activations'][0])
    (4, 4)
    """
    decomposition = check_choice(decomposition, "decomposition", DECOMPOSITIONS)
    if n_components is not None:
        n_components = check_int(n_components, "n_components", minimum=1)
    random_state = check_random_state(random_state)
    return minimal_images(
        images, models, layers, channels, units, position, metric,
        lambda array: components(array, decomposition, n_components, random_state),
        "minimal_components",
        {"decomposition": decomposition, "n_components": n_components,
         "random_state": random_state},
        criterion, batch_size, max_memory, device, transform, verbose)
