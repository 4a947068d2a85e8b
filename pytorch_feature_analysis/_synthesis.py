"""Activation maximisation: images that drive a unit or channel, by gradient ascent."""

from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torchvision.transforms.v2 import functional as TF
from tqdm.auto import tqdm

from ._attribution import check_pair
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
                          public)

__all__ = ["synthesize_images"]

REGULARIZATIONS = (None, "l1", "l2", "tv")
SMOOTHINGS = ("gaussian", "fourier")


def _penalty(pixels: torch.Tensor, kind: str | None) -> torch.Tensor:
    """One penalty per image: L1 norm, L2 norm or (anisotropic) total variation."""
    flat = pixels.flatten(1)
    if kind == "l1":
        return flat.abs().sum(dim=1)
    if kind == "l2":
        return flat.square().sum(dim=1).sqrt()
    if kind == "tv":
        rows = (pixels[:, :, 1:] - pixels[:, :, :-1]).abs().flatten(1).sum(dim=1)
        cols = (pixels[:, :, :, 1:] - pixels[:, :, :, :-1]).abs().flatten(1).sum(dim=1)
        return rows + cols
    return torch.zeros(len(pixels), dtype=pixels.dtype, device=pixels.device)


def _blur(pixels: torch.Tensor, sigma: float) -> torch.Tensor:
    size = 2 * int(np.ceil(3 * sigma)) + 1
    return TF.gaussian_blur(pixels, [size, size], [sigma, sigma])


def _fourier(gradient: torch.Tensor, factor: float) -> torch.Tensor:
    """Scale each spatial frequency ``f`` (cycles per image) by ``1 / max(1, |f|) ** factor``."""
    height, width = gradient.shape[-2:]
    rows = torch.fft.fftfreq(height, 1 / height, dtype=gradient.dtype, device=gradient.device)
    cols = torch.fft.fftfreq(width, 1 / width, dtype=gradient.dtype, device=gradient.device)
    radius = (rows[:, None] ** 2 + cols[None, :] ** 2).sqrt().clamp(min=1.0)
    return torch.fft.ifft2(torch.fft.fft2(gradient) / radius**factor).real


def _smooth(gradient: torch.Tensor, how: str, amount: float) -> torch.Tensor:
    return _blur(gradient, amount) if how == "gaussian" else _fourier(gradient, amount)


def _start(init_image: Any, size: tuple, transform: Any, dtype: torch.dtype,
           random_state: int) -> torch.Tensor:
    """The preprocessed start, ``(1, channels, height, width)``: the image or seeded noise."""
    if init_image is None:
        init_image = np.random.default_rng(random_state).uniform(0, 1, size=size + (3,))
    return pixels_of(image_table([init_image])[0], transform, dtype)


def _ascend(model, book, label, targets, metric, pixels, settings, progress) -> tuple:
    """Gradient ascent from ``pixels``; ``(image, history, snapshots)`` as numpy arrays."""
    pixels = pixels.clone().requires_grad_(True)
    optimizer = torch.optim.Adam([pixels], lr=settings["lr"])
    diagonal = torch.arange(len(targets), device=pixels.device)
    history, snapshots = [], []
    for step in range(settings["n_iter"] + 1):
        values = unit_values(model, book, label, targets, metric, pixels)[diagonal, diagonal]
        history.append(values.detach().cpu().numpy())
        every = settings["snapshot_every"]
        if every and step % every == 0:
            snapshots.append(pixels.detach().cpu().numpy().copy())
        if step == settings["n_iter"]:
            break
        penalty = _penalty(pixels, settings["regularization"])
        loss = settings["regularization_weight"] * penalty - values
        optimizer.zero_grad()
        loss.sum().backward()
        with torch.no_grad():
            if settings["smooth_gradient"]:
                pixels.grad.copy_(_smooth(pixels.grad, settings["smoothing"],
                                          settings["smooth_gradient"]))
            optimizer.step()
            if settings["precondition"]:
                pixels.copy_(_blur(pixels, settings["precondition"]))
        progress.update(1)
    stacked = np.stack(snapshots, axis=1) if snapshots else None
    return pixels.detach().cpu().numpy(), np.stack(history, axis=1), stacked


@public
def synthesize_images(
    models: Any,
    layers: Any,
    channels: int | Sequence[int] | None = None,
    *,
    units: int | Sequence[int] | None = None,
    position: tuple | None = None,
    metric: str = "mean",
    init_image: Any = None,
    image_size: int | tuple = 224,
    n_iter: int = 100,
    lr: float = 0.1,
    regularization: str | None = None,
    regularization_weight: float = 0.0,
    precondition: float | None = None,
    smooth_gradient: float | None = None,
    smoothing: str = "gaussian",
    snapshot_every: int | None = None,
    random_state: int = 0,
    max_memory: int | str | None = None,
    device: Any = "cpu",
    transform: Callable | None = None,
    verbose: bool = True,
) -> pd.DataFrame:
    """Images that maximise chosen channels or units, by gradient ascent on the pixels.

    Each target gets its own image; a layer's targets ascend together, in
    batches that fit ``max_memory`` (as in
    :func:`~pytorch_feature_analysis.attribution_maps`). Each step minimises
    ``regularization_weight * penalty - activation`` with Adam, optionally
    smoothing the gradient (Gaussian or Fourier) and blurring the image
    (preconditioning) with a Gaussian (DNNBrain's ``SynthesisImage``).

    Parameters
    ----------
    models, layers, channels, units, position, metric
        As :func:`~pytorch_feature_analysis.attribution_maps`.
    init_image : image, optional
        The start (any image :func:`~pytorch_feature_analysis.load_image`
        takes); default uniform noise in [0, 1], ``image_size`` pixels,
        seeded by ``random_state``. It goes through ``transform``.
    image_size : int or (height, width), default 224
        The noise's size (before ``transform``).
    n_iter : int, default 100
        Gradient steps.
    lr : float, default 0.1
        Adam's learning rate.
    regularization : {None, 'l1', 'l2', 'tv'}
        Penalty of each preprocessed image: the sum of absolute values, the
        Euclidean norm, or the total variation (sum of absolute differences of
        vertical and horizontal neighbours).
    regularization_weight : float, default 0.0
        The penalty's weight.
    precondition : float, optional
        Blur the image with a Gaussian of this sigma (pixels) after each step.
    smooth_gradient : float, optional
        Smooth the gradient before each step: the sigma (pixels) of a
        Gaussian blur, or with ``smoothing='fourier'`` the exponent ``a`` that
        scales each spatial frequency ``f`` (cycles per image) by
        ``1 / max(1, |f|) ** a``.
    smoothing : {'gaussian', 'fourier'}, default 'gaussian'
        How ``smooth_gradient`` smooths.
    snapshot_every : int, optional
        Keep the image every this many steps (step 0 is the start).
    random_state : int, default 0
        Seed of the noise.
    max_memory, device, transform, verbose
        As :func:`~pytorch_feature_analysis.attribution_maps`.

    Returns
    -------
    pandas.DataFrame
        One row per model, layer and target, with columns ``model``,
        ``layer``, ``layer_num``, ``layer_label``, ``channel``, ``position``,
        ``unit``, ``method`` (``'synthesis'``), ``params`` (dict of the
        options), ``image`` (the preprocessed image, ``(channels, height,
        width)``), ``activation_start`` and ``activation_end`` (the target's
        activation for the start and the final image), ``history`` (its
        activation before each step and at the end, ``n_iter + 1`` values) and
        ``snapshots`` (``(k, channels, height, width)`` or ``None``).

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> model = pfa.prepare_model('alexnet', 'random')
    >>> found = pfa.synthesize_images(model, 'conv2', [3], n_iter=5, image_size=64,
    ...                               transform=pfa.default_transform(64), verbose=False)
    >>> bool(found['activation_end'][0] > found['activation_start'][0])
    True
    >>> found['image'][0].shape
    (3, 64, 64)
    """
    settings = _settings(n_iter, lr, regularization, regularization_weight, precondition,
                         smooth_gradient, smoothing, snapshot_every)
    metric, size = check_metric(metric), check_pair(image_size, "image_size")
    random_state = check_random_state(random_state)
    verbose = check_bool(verbose, "verbose")
    plan = _plan(models, layers, channels, units, position, init_image, size, transform,
                 random_state, max_memory, device)
    params = {"metric": metric, "init": "noise" if init_image is None else "image",
              "random_state": random_state, **settings}
    rows = []
    with tqdm(total=len(plan) * settings["n_iter"], disable=not verbose, desc="synthesis",
              unit="step") as progress:
        for name, model, book, label, targets, start in plan:
            with on_device(model, device) as where:
                image, history, snapshots = _ascend(
                    model, book, label, targets, metric,
                    start.repeat(len(targets), 1, 1, 1).to(where), settings, progress)
            for k, target in enumerate(targets):
                rows.append({**target_columns(name, label, target), "method": "synthesis",
                             "params": params, "image": image[k],
                             "activation_start": float(history[k, 0]),
                             "activation_end": float(history[k, -1]), "history": history[k],
                             "snapshots": None if snapshots is None else snapshots[k]})
    return frame_of(rows, ("unit", "position", "snapshots"))


def _settings(n_iter, lr, regularization, regularization_weight, precondition,
              smooth_gradient, smoothing, snapshot_every) -> dict:
    """The checked options of the ascent (they also go into the frame's ``params``)."""
    return {
        "n_iter": check_int(n_iter, "n_iter", minimum=0),
        "lr": check_number(lr, "lr", minimum=0, exclusive_minimum=True,
                           what="Adam's learning rate"),
        "regularization": check_choice(regularization, "regularization", REGULARIZATIONS),
        "regularization_weight": check_number(regularization_weight, "regularization_weight",
                                              minimum=0, what="the penalty's weight"),
        "precondition": check_number(precondition, "precondition", minimum=0,
                                     exclusive_minimum=True, allow_none=True,
                                     what="a Gaussian's sigma in pixels"),
        "smooth_gradient": check_number(smooth_gradient, "smooth_gradient", minimum=0,
                                        exclusive_minimum=True, allow_none=True,
                                        what="a Gaussian's sigma or a Fourier exponent"),
        "smoothing": check_choice(smoothing, "smoothing", SMOOTHINGS),
        "snapshot_every": None if snapshot_every is None else check_int(
            snapshot_every, "snapshot_every", minimum=1),
    }


def _plan(models, layers, channels, units, position, init_image, size, transform,
          random_state, max_memory, device) -> list:
    """``[(name, model, book, label, targets, start)]``: one entry per batch of targets."""
    def start(model: torch.nn.Module) -> torch.Tensor:
        return _start(init_image, size, transform, model_dtype(model), random_state)

    return [(name, model, book, label, targets[part], pixels)
            for name, model, pixels, book, label, targets, fitted in layer_plan(
                models, layers, start, channels, units, position, None, max_memory, device)
            for part in batches(len(targets), fitted)]
