"""The attribution methods: each turns a batch of images into maps, one per image and target.

Every method takes ``(model, book, label, targets, pixels, options)`` and
returns an array ``(images, targets, ...)``; :func:`attribution_maps` in
:mod:`.interpret` makes the frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._interpret_core import Target, batches, layer_output, unit_values
from ._validation import check_choice, check_int, check_number, check_random_state, fail

METHODS = ("saliency", "guided_saliency", "smooth_saliency", "occlusion", "occlusion_pixels",
           "activation")
SPATIAL_METHODS = ("activation",)
INTERPOLATIONS = ("nearest", "bilinear", "bicubic", "area")


def require_captum() -> Any:
    """The ``captum.attr`` module, or an error naming the extra that installs it."""
    try:
        import captum.attr
    except ImportError as error:
        raise ImportError(
            "Saliency maps need Captum: pip install 'pytorch_feature_analysis[interpret]'."
        ) from error
    return captum.attr


@dataclass(frozen=True)
class MapOptions:
    """The checked options of :func:`~pytorch_feature_analysis.attribution_maps`."""

    metric: str
    window: tuple
    stride: tuple
    baseline: float
    interpolation: str
    threshold: float | None
    n_samples: int
    noise_level: float
    random_state: int
    batch_size: int

    def params(self, method: str) -> dict:
        """The options that shaped a ``method``'s maps (the frame's ``params``)."""
        names = {
            "saliency": ("metric",),
            "guided_saliency": ("metric",),
            "smooth_saliency": ("metric", "n_samples", "noise_level", "random_state"),
            "occlusion": ("metric", "window", "stride", "baseline"),
            "occlusion_pixels": ("metric", "window", "stride", "baseline"),
            "activation": ("interpolation", "threshold"),
        }[method]
        return {name: getattr(self, name) for name in names}


def check_pair(value: Any, param: str) -> tuple:
    pair = (value, value) if isinstance(value, (int, np.integer)) else value
    if (not isinstance(pair, (tuple, list)) or len(pair) != 2 or not all(
            isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1
            for v in pair)):
        raise fail(param, "an int >= 1 or a pair (height, width) of them", value)
    return int(pair[0]), int(pair[1])


def map_options(metric: str, window: Any, stride: Any, baseline: Any, interpolation: Any,
                threshold: Any, n_samples: Any, noise_level: Any, random_state: Any,
                batch_size: Any) -> MapOptions:
    """Check every option once, before any forward pass."""
    return MapOptions(
        metric=metric,
        window=check_pair(window, "window"),
        stride=check_pair(stride, "stride"),
        baseline=check_number(baseline, "baseline"),
        interpolation=check_choice(interpolation, "interpolation", INTERPOLATIONS),
        threshold=check_number(threshold, "threshold", minimum=0, maximum=1, allow_none=True),
        n_samples=check_int(n_samples, "n_samples", minimum=1),
        noise_level=check_number(noise_level, "noise_level", minimum=0),
        random_state=check_random_state(random_state),
        batch_size=check_int(batch_size, "batch_size", minimum=1),
    )


def check_window(options: MapOptions, image_shape: tuple) -> None:
    """Refuse an occluder larger than the (preprocessed) image."""
    size = tuple(image_shape[-2:])
    if options.window[0] > size[0] or options.window[1] > size[1]:
        raise fail("window", f"at most the preprocessed image size {size}", options.window)


class UnitModule(nn.Module):
    """``pixels -> (n, targets)`` activations: the forward function Captum attributes."""

    def __init__(self, model: nn.Module, book: dict, label: tuple, targets: list,
                 metric: str) -> None:
        super().__init__()
        self.model = model
        self.book, self.label, self.targets, self.metric = book, label, targets, metric

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return unit_values(self.model, self.book, self.label, self.targets, self.metric, pixels)


def _per_target(attribute: Callable, targets: list, pixels: torch.Tensor) -> np.ndarray:
    """``(n, targets, C, H, W)``: ``attribute(inputs, k)`` for each target ``k``."""
    maps = [attribute(pixels.clone().requires_grad_(True), k).detach()
            for k in range(len(targets))]
    return torch.stack(maps, dim=1).cpu().numpy()


def saliency(model, book, label, targets, pixels, options: MapOptions) -> np.ndarray:
    """The gradient of each target's activation with respect to the pixels (signed)."""
    unit = UnitModule(model, book, label, targets, options.metric)
    explainer = require_captum().Saliency(unit)
    return _per_target(lambda x, k: explainer.attribute(x, target=k, abs=False), targets, pixels)


def guided_saliency(model, book, label, targets, pixels, options: MapOptions) -> np.ndarray:
    """Guided backpropagation: every ``nn.ReLU`` passes back only positive gradients."""
    unit = UnitModule(model, book, label, targets, options.metric)
    explainer = require_captum().GuidedBackprop(unit)
    return _per_target(lambda x, k: explainer.attribute(x, target=k), targets, pixels)


def smooth_saliency(model, book, label, targets, pixels, options: MapOptions,
                    first: int = 0) -> np.ndarray:
    """SmoothGrad: the mean saliency of noisy copies of each image (Captum's NoiseTunnel).

    The noise's standard deviation is ``noise_level`` times the image's range of
    values; image ``first + i`` draws its noise from seed ``random_state + first + i``.
    """
    captum = require_captum()
    unit = UnitModule(model, book, label, targets, options.metric)
    tunnel = captum.NoiseTunnel(captum.Saliency(unit))
    devices = [pixels.device] if pixels.device.type == "cuda" else []
    maps = []
    for i, image in enumerate(pixels):
        sigma = options.noise_level * float(image.max() - image.min())

        def attribute(x: torch.Tensor, k: int) -> torch.Tensor:
            with torch.random.fork_rng(devices=devices):
                torch.manual_seed(options.random_state + first + i)
                return tunnel.attribute(
                    x, nt_type="smoothgrad", nt_samples=options.n_samples, stdevs=sigma,
                    nt_samples_batch_size=options.batch_size, target=k, abs=False)

        maps.append(_per_target(attribute, targets, image[None]))
    return np.concatenate(maps)


def occlusion(model, book, label, targets, pixels, options: MapOptions) -> np.ndarray:
    """Discrepancy maps: activation of the image minus that of the image with an occluder.

    The occluder, ``window`` pixels of value ``baseline`` in the preprocessed
    image, slides from the top left with steps of ``stride``; map entry
    ``(r, c)`` is the target's drop when the occluder's top-left corner is at
    ``(r * stride[0], c * stride[1])``.
    """
    (wh, ww), (sh, sw) = options.window, options.stride
    height, width = pixels.shape[-2:]
    rows, cols = (height - wh) // sh + 1, (width - ww) // sw + 1
    corners = [(r * sh, c * sw) for r in range(rows) for c in range(cols)]
    maps = np.empty((len(pixels), len(targets), rows, cols), dtype=np.float64)
    with torch.no_grad():
        for i, image in enumerate(pixels):
            start = unit_values(model, book, label, targets, options.metric, image[None])
            drops = []
            for part in batches(len(corners), options.batch_size):
                copies = image.repeat(part.stop - part.start, 1, 1, 1)
                for copy, (y, x) in zip(copies, corners[part]):
                    copy[:, y:y + wh, x:x + ww] = options.baseline
                values = unit_values(model, book, label, targets, options.metric, copies)
                drops.append(start - values)
            maps[i] = torch.cat(drops).T.reshape(len(targets), rows, cols).cpu().numpy()
    return maps


def occlusion_pixels(model, book, label, targets, pixels, options: MapOptions) -> np.ndarray:
    """Occlusion per pixel (Captum's ``Occlusion``): the mean drop over the windows covering it.

    The occluder slides as in :func:`occlusion`, and one step further along an
    axis whose last window does not reach the edge (that window clipped at the
    edge), so every pixel is covered.
    """
    unit = UnitModule(model, book, label, targets, options.metric)
    explainer = require_captum().Occlusion(unit)
    channels = pixels.shape[1]
    with torch.no_grad():
        return _per_target(lambda x, k: explainer.attribute(
            x.detach(), sliding_window_shapes=(channels, *options.window),
            strides=(channels, *options.stride), baselines=options.baseline, target=k,
            perturbations_per_eval=options.batch_size), targets, pixels)


def activation(model, book, label, targets, pixels, options: MapOptions) -> np.ndarray:
    """Each target channel's map, resampled to the image size (values below the threshold: 0).

    With ``threshold`` ``q``, values below the ``q``-quantile of each
    resampled map are set to zero.
    """
    channels = [target.channel for target in targets]
    with torch.no_grad():
        maps = layer_output(model, book, label, pixels)[:, channels]
        corners = {} if options.interpolation in ("nearest", "area") else {"align_corners": False}
        maps = F.interpolate(maps, size=tuple(pixels.shape[-2:]), mode=options.interpolation,
                             **corners).cpu().numpy()
    return maps if options.threshold is None else threshold_maps(maps, options.threshold)


def threshold_maps(maps: np.ndarray, quantile: float) -> np.ndarray:
    """Maps ``(..., height, width)`` with values below each map's ``quantile`` set to 0."""
    flat = maps.reshape(maps.shape[:-2] + (-1,))
    cut = np.quantile(flat, quantile, axis=-1)[..., None, None]
    return np.where(maps < cut, 0.0, maps).astype(maps.dtype)


COMPUTE: dict[str, Callable] = {
    "saliency": saliency,
    "guided_saliency": guided_saliency,
    "occlusion": occlusion,
    "occlusion_pixels": occlusion_pixels,
    "activation": activation,
}


def compute_maps(method: str, model, book, label, targets: list[Target], pixels: torch.Tensor,
                 options: MapOptions, first: int) -> np.ndarray:
    """One batch of images (``first`` is the first image's position) through one method."""
    if method == "smooth_saliency":
        return smooth_saliency(model, book, label, targets, pixels, options, first)
    return COMPUTE[method](model, book, label, targets, pixels, options)
