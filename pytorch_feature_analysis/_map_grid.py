"""A grid of maps, each drawn over its image: the picture of an ``interpret`` frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ._validation import check_columns, fail, public
from .plotting import _panel_grid, _varying_columns
from .stimuli import load_image

__all__ = ["plot_map_grid"]

_EXTENT = (0.0, 1.0, 1.0, 0.0)  # image and map fill the same square, whatever their sizes


def _heat(values: np.ndarray) -> np.ndarray:
    """A 2-D map: saliency ``(channels, height, width)`` is the largest magnitude over channels."""
    values = np.asarray(values, dtype=float)
    return np.abs(values).max(axis=0) if values.ndim == 3 else values


def _rgb(values: np.ndarray) -> np.ndarray:
    """An image ``(3, h, w)`` or ``(h, w, 3)`` rescaled to [0, 1] for display."""
    values = np.asarray(values, dtype=float)
    if values.ndim == 3 and values.shape[0] == 3 and values.shape[-1] != 3:
        values = values.transpose(1, 2, 0)
    low, high = np.nanmin(values), np.nanmax(values)
    return (values - low) / (high - low) if high > low else np.zeros_like(values)


def _background(images: Any, key: Any) -> np.ndarray:
    try:
        return np.asarray(load_image(images[key]))
    except (KeyError, IndexError, TypeError) as error:
        raise fail("images", f"the images the frame was made from (no image for key {key!r})",
                   type(images).__name__, raw=True) from error


def _title_columns(frame: pd.DataFrame) -> list:
    """The varying columns that name a panel: strings, ints and tuples (no arrays, no numbers)."""
    return [c for c in _varying_columns(frame)
            if c not in ("layer_num", "layer_label", "parts_kept") and all(
                isinstance(v, (str, tuple, int, np.integer)) and not isinstance(v, bool)
                for v in frame[c])]


@public
def plot_map_grid(
    frame: pd.DataFrame,
    images: Any = None,
    *,
    column: str = "map",
    col: str | list | None = None,
    col_wrap: int | None = None,
    alpha: float = 0.6,
    cmap: str = "jet",
    height: float = 2.5,
) -> Any:
    """Draw each row's map (or image) in a grid, over the image it was made from.

    Parameters
    ----------
    frame : pandas.DataFrame
        A frame of :func:`attribution_maps`, :func:`empirical_receptive_fields`,
        :func:`synthesize_images` or the minimal-image functions; one panel per
        row, in row order.
    images : sequence or dict, optional
        The images given to the function that made ``frame``; each panel
        shows the one under its ``image_key`` beneath the map.
    column : str, default 'map'
        The column drawn. Two-dimensional arrays are drawn as heat maps
        (``(channels, height, width)`` saliency as its largest magnitude over
        channels); with ``column='image'``, images are drawn in colour,
        rescaled to [0, 1].
    col : str or list of str, optional
        Column(s) whose values title the panels; default the columns whose
        values differ between rows.
    col_wrap : int, optional
        Panels per grid row (default a near-square grid).
    alpha : float, default 0.6
        Opacity of a map over its image.
    cmap : str, default 'jet'
        Colour map of the heat maps.
    height : float, default 2.5
        Height (and width) of each panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        One axes per row of ``frame``.

    Examples
    --------
    >>> import numpy as np, pytorch_feature_analysis as pfa
    >>> model = pfa.prepare_model('alexnet', 'random')
    >>> images = [np.random.default_rng(i).uniform(size=(32, 32, 3)) for i in range(2)]
    >>> maps = pfa.attribution_maps(images, model, 'conv1', [0, 1], methods='activation',
    ...                             transform=pfa.default_transform(64), verbose=False)
    >>> fig = pfa.plot_map_grid(maps, images, col=['image_key', 'channel'])
    >>> len(fig.axes), fig.axes[1].get_title()
    (4, '1, 0')
    """
    check_columns(frame, [column], "frame")
    if frame.empty:
        raise fail("frame", "a frame with at least one row", "0 rows", raw=True)
    titles = _title_columns(frame) if col is None else (
        [col] if isinstance(col, str) else list(col))
    check_columns(frame, titles, "frame")
    if images is not None:
        check_columns(frame, ["image_key"], "frame")
    fig, axes = _panel_grid(len(frame), col_wrap, height)
    for ax, (_, row) in zip(axes, frame.iterrows()):
        under = _background(images, row["image_key"]) if images is not None else None
        if under is not None:
            ax.imshow(under, extent=_EXTENT)
        if column == "image":
            ax.imshow(_rgb(row[column]), extent=_EXTENT)
        else:
            ax.imshow(_heat(row[column]), extent=_EXTENT, cmap=cmap,
                      alpha=alpha if under is not None else 1.0, interpolation="nearest")
        ax.set_title(", ".join(str(row[c]) for c in titles), fontsize=8)
        ax.set_axis_off()
    return fig
