"""Receptive fields: the theoretical one from layer geometry, the empirical one from images.

The geometry follows the layers of one forward pass in order, so it needs the
layers up to the target to form a chain -- each layer's input the previous
layer's output, as in AlexNet's or VGG's ``features``. A branch or a functional
step between modules (a residual sum, ``torch.flatten``) breaks the chain, and
the error names where.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from ._validation import problem
from .models import index_nested

POINTWISE = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.ELU, nn.SELU, nn.CELU, nn.GELU, nn.SiLU,
    nn.Mish, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Sigmoid, nn.Tanh, nn.Softplus,
    nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm, nn.LocalResponseNorm, nn.Identity,
    nn.Dropout, nn.Dropout2d, nn.AlphaDropout,
)
POOLS = (nn.MaxPool2d, nn.AvgPool2d)
ADAPTIVE = (nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)


@dataclass(frozen=True)
class Geometry:
    """Per axis (height, width): RF ``size``, ``jump`` (stride in pixels) and ``offset``.

    Unit ``y`` of a map sees input rows ``offset + y * jump`` to
    ``offset + y * jump + size - 1`` (before clipping to the image).
    """

    size: tuple = (1, 1)
    jump: tuple = (1, 1)
    offset: tuple = (0, 0)

    def then(self, kernel: tuple, stride: tuple, padding: tuple, dilation: tuple) -> "Geometry":
        span = tuple(d * (k - 1) for k, d in zip(kernel, dilation))
        return Geometry(
            size=tuple(s + e * j for s, e, j in zip(self.size, span, self.jump)),
            jump=tuple(j * s for j, s in zip(self.jump, stride)),
            offset=tuple(o - p * j for o, p, j in zip(self.offset, padding, self.jump)),
        )

    def region(self, position: tuple, image_size: tuple) -> tuple:
        """``((top, bottom), (left, right))``, end-exclusive, clipped to the image."""
        return tuple(
            (max(0, o + p * j), min(n, o + p * j + s))
            for o, p, j, s, n in zip(self.offset, position, self.jump, self.size, image_size)
        )


def _pair(value: Any) -> tuple:
    return tuple(value) if isinstance(value, (tuple, list)) else (value, value)


def _layer_step(module: nn.Module, in_shape: tuple, out_shape: tuple) -> tuple | None:
    """``(kernel, stride, padding, dilation)`` of ``module``; ``None`` for a pointwise one."""
    if isinstance(module, nn.Conv2d):
        kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
        padding = module.padding
        if padding == "same":
            padding = tuple(d * (k - 1) // 2 for k, d in zip(kernel, dilation))
        elif padding == "valid":
            padding = (0, 0)
        return kernel, _pair(module.stride), _pair(padding), dilation
    if isinstance(module, POOLS):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride) if module.stride else kernel
        dilation = _pair(getattr(module, "dilation", 1))
        return kernel, stride, _pair(module.padding), dilation
    if isinstance(module, POINTWISE + ADAPTIVE) and in_shape[-2:] == out_shape[-2:]:
        return None
    raise problem(f"the receptive field cannot be computed through {type(module).__name__} "
                  f"(input {tuple(in_shape)}, output {tuple(out_shape)}): only convolutions, "
                  "max and average pooling and pointwise layers are supported")


def _calls_up_to(model: nn.Module, book: dict, label: tuple, example: torch.Tensor) -> list:
    """``[(label, module, input, output)]`` of the layers up to ``label``, in forward order.

    Inputs and outputs are ``(tensor, version)``: the tensor's version counter
    when the call began and ended, so that an in-place change between two
    layers (a residual ``out += identity``) is seen.
    """
    labels = list(book)[: list(book).index(label) + 1]
    wanted = {}
    for each in labels:
        module = index_nested(model, book[each].address)
        wanted.setdefault(id(module), (module, {}))[1][book[each].call] = each
    calls, seen, given = [], {}, {}

    def before(module, inputs):
        first = inputs[0] if inputs and isinstance(inputs[0], torch.Tensor) else None
        given[id(module)] = None if first is None else (first, first._version)

    def after(module, _inputs, output):
        count = seen.get(id(module), 0)
        seen[id(module)] = count + 1
        each = wanted[id(module)][1].get(count)
        if each is not None and given[id(module)] is not None:
            calls.append((each, module, given[id(module)], (output, output._version)))

    modules = [module for module, _ in wanted.values()]
    handles = [module.register_forward_pre_hook(before) for module in modules]
    handles += [module.register_forward_hook(after) for module in modules]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return sorted(calls, key=lambda call: labels.index(call[0]))


def _same(given: tuple, previous: tuple) -> bool:
    (a, version_a), (b, version_b) = given, previous
    same_tensor = a is b or (a.data_ptr() == b.data_ptr() and a.shape == b.shape)
    return same_tensor and version_a == version_b


def layer_geometry(model: nn.Module, book: dict, label: tuple, example: torch.Tensor,
                   name: str) -> Geometry:
    """The receptive-field geometry of layer ``label`` for inputs shaped like ``example``."""
    geometry, previous = Geometry(), (example, example._version)
    for each, module, given, output in _calls_up_to(model, book, label, example):
        if not _same(given, previous):
            raise problem(
                f"layer {each!r} of model {name!r} does not take the previous layer's output "
                "(a branch, or a functional step between modules), so its receptive field "
                "cannot be read from the layer geometry"
            )
        step = _layer_step(module, tuple(given[0].shape), tuple(output[0].shape))
        if step is not None:
            geometry = geometry.then(*step)
        previous = output
    return geometry


def crop(image_map: np.ndarray, geometry: Geometry, position: tuple) -> np.ndarray:
    """The ``geometry.size`` window of a unit's receptive field; NaN outside the image."""
    window = np.full(geometry.size, np.nan)
    starts = [o + p * j for o, p, j in zip(geometry.offset, position, geometry.jump)]
    rows, cols = image_map.shape
    top, left = max(starts[0], 0), max(starts[1], 0)
    bottom = min(starts[0] + geometry.size[0], rows)
    right = min(starts[1] + geometry.size[1], cols)
    window[top - starts[0]:bottom - starts[0], left - starts[1]:right - starts[1]] = (
        image_map[top:bottom, left:right])
    return window
