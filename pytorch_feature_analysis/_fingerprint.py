"""Fingerprints of what made a result: weights, preprocessing, images, seeds, version.

A resumed run compares the fingerprint stored with the rows on file with the
fingerprint of the work it is asked to do, and recomputes (or refuses) where
they differ, naming what changed.
"""

from __future__ import annotations

import hashlib
import inspect
import os
import weakref
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import nn

_HASH_BYTES = 8


def _digest(*parts: bytes) -> str:
    hasher = hashlib.blake2b(digest_size=_HASH_BYTES)
    for part in parts:
        hasher.update(part)
    return hasher.hexdigest()


# Fingerprints of models already hashed, while no tensor of theirs has changed.
_WEIGHTS: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def weights_fingerprint(model: nn.Module) -> str:
    """A hash of every parameter and buffer of ``model`` (names, shapes, dtypes, values).

    The hash is kept with the model while every tensor stays the same object
    at the same version (torch counts in-place changes), so asking again is free.

    Examples
    --------
    >>> a, b = nn.Linear(2, 2), nn.Linear(2, 2)
    >>> same, other = weights_fingerprint(a), weights_fingerprint(b)
    >>> weights_fingerprint(a) == same, same == other
    (True, False)
    >>> before = weights_fingerprint(a)
    >>> with torch.no_grad():
    ...     _ = a.weight.mul_(2)
    >>> weights_fingerprint(a) == before
    False
    """
    state = model.state_dict(keep_vars=True)
    key = tuple((name, id(t), t._version, tuple(t.shape), t.dtype) for name, t in state.items())
    cached = _WEIGHTS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    hasher = hashlib.blake2b(digest_size=_HASH_BYTES)
    for name, tensor in state.items():
        values = tensor.detach().to("cpu").contiguous().reshape(-1)
        hasher.update(f"{name}:{tuple(tensor.shape)}:{values.dtype}".encode())
        if values.numel():  # hashed through the buffer protocol, without a copy
            hasher.update(values.view(torch.uint8).numpy())
    _WEIGHTS[model] = (key, hasher.hexdigest())
    return _WEIGHTS[model][1]


def callable_fingerprint(func: Callable | None) -> str:
    """A stable description of a transform or metric function.

    Objects with an informative ``repr`` (torchvision transforms) are
    described by it; functions by their qualified name and source (or
    bytecode), so the same code gives the same fingerprint in every session.

    Examples
    --------
    >>> callable_fingerprint(None)
    'default'
    >>> callable_fingerprint(lambda x: x) == callable_fingerprint(lambda x: x)
    True
    """
    if func is None:
        return "default"
    if inspect.isfunction(func) or inspect.ismethod(func):
        try:
            code = inspect.getsource(func).encode()
        except (OSError, TypeError):
            code = func.__code__.co_code + repr(func.__code__.co_consts).encode()
        return f"{func.__qualname__}:{_digest(code)}"
    text = repr(func)
    if " at 0x" in text:  # a default repr says nothing stable
        return f"{type(func).__qualname__}:{_digest(repr(sorted(vars(func).items())).encode())}"
    return _digest(text.encode())


def image_fingerprint(image: Any) -> str:
    """A file's path, size and modification time, or an in-memory image's content hash."""
    if isinstance(image, (str, os.PathLike)):
        path = os.path.abspath(os.fspath(image))
        status = os.stat(path)
        return f"{path}:{status.st_size}:{status.st_mtime_ns}"
    if isinstance(image, Image.Image):
        return _digest(f"{image.mode}{image.size}".encode(), image.tobytes())
    array = np.ascontiguousarray(image)
    return _digest(f"{array.dtype}{array.shape}".encode(), array.tobytes())


def images_fingerprint(images: Any) -> str:
    """One hash over the images of a set, in order."""
    return _digest("\n".join(image_fingerprint(image) for image in images).encode())


def describe_changes(stored: dict, current: dict) -> list[str]:
    """The names of the parts that differ (``'weights'``, ``'images'``, ...).

    Examples
    --------
    >>> describe_changes({'weights': 'a', 'images': 'b'}, {'weights': 'a', 'images': 'c'})
    ['images']
    """
    return [part for part in current if stored.get(part) != current[part]]
