"""The mask of one layer: which channels, rows and columns of its output to keep.

``get_rdms``' kernel sets and ``fit_encoding_models``' ``mask`` describe it the
same way, a dict ``{'channels': [...], 'rows': [...], 'cols': [...]}`` (a key
left out, or None, keeps the whole axis), and both check it here against the
layer's output shape.
"""

from __future__ import annotations

from typing import Any

from ._validation import check_indices, fail

__all__: list[str] = []

MASK_KEYS = ("channels", "rows", "cols")


def layer_mask(spec: Any, shape: tuple, param: str, where: str) -> tuple:
    """``(channels, rows, cols)`` of one layer, each a list of ints or None (the whole axis).

    ``shape`` is the layer's output shape for one image: rows and columns
    exist only for ``(channels, height, width)`` outputs; a flat output's
    entries are its channels. ``param`` and ``where`` (e.g. ``"layer
    ('conv2', 4)"``) name the parameter and the layer in messages.

    Examples
    --------
    >>> layer_mask({'channels': [2, 0], 'rows': [1]}, (3, 4, 4), 'mask', 'conv1')
    ([2, 0], [1], None)
    >>> try:
    ...     layer_mask({'rows': [1]}, (10,), 'mask', 'fc1')
    ... except ValueError as error:
    ...     print(error)  # doctest: +ELLIPSIS
    The 'mask' parameter ... must be no rows or columns for fc1, whose output (shape (10,)) ...
    """
    if not isinstance(spec, dict) or set(spec) - set(MASK_KEYS):
        unknown = [key for key in spec if key not in MASK_KEYS] if isinstance(spec, dict) else spec
        raise fail(param, f"a mask (dict) with some of the keys {MASK_KEYS} for {where}", unknown)
    kept = []
    for axis, key in enumerate(MASK_KEYS):
        given = spec.get(key)
        if given is None:
            kept.append(None)
            continue
        if axis and len(shape) != 3:
            raise fail(param, f"no rows or columns for {where}, whose output (shape {shape}) "
                       "has none", spec)
        kept.append(check_indices(given, param, shape[axis] if shape else 1, what=key[:-1],
                                  where=where))
    return tuple(kept)

