"""Plots of activations in time: 5-D arrays ``(entries, channels, time, height, width)``.

They take what :func:`~pytorch_feature_analysis.get_activations` gives for a
layer with a time axis (a video model's 3-D convolutions),
:func:`~pytorch_feature_analysis.run_in_chunks`' arrays, or a batch of
preprocessed videos, as Convis's ``plot_5d_matshow`` and ``plot_5d_time``,
and return the :class:`matplotlib.figure.Figure`.
"""

from __future__ import annotations

from typing import Any, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from ._validation import check_indices, check_int, check_number, fail, public

__all__ = ["plot_5d_matshow", "plot_5d_time"]


def _five_d(activations: Any, entry: Any) -> np.ndarray:
    """One entry's ``(channels, time, height, width)`` array, float64."""
    array = activations
    if hasattr(array, "detach"):  # a torch tensor
        array = array.detach().cpu().numpy()
    array = np.asarray(array)
    if array.ndim != 5:
        raise fail("activations", "a 5-D array (entries, channels, time, height, width)",
                   f"shape {array.shape}", raw=True)
    entry = check_int(entry, "entry", minimum=0, maximum=array.shape[0] - 1)
    return array[entry].astype(np.float64)


def _indices(chosen: Sequence[int] | None, size: int, most: int, param: str) -> list[int]:
    """The chosen positions (default: up to ``most`` spread evenly over ``size``)."""
    if chosen is None:
        return sorted({int(round(i)) for i in np.linspace(0, size - 1, min(size, most))})
    return check_indices(chosen, param, size, single=True)


@public
def plot_5d_matshow(
    activations: Any,
    entry: int = 0,
    channels: Sequence[int] | None = None,
    times: Sequence[int] | None = None,
    *,
    cmap: str = "viridis",
    cell_size: float = 1.2,
) -> Figure:
    """A grid of spatial maps: one row per channel, one column per time step.

    Every map of the grid shares one colour scale (the colour bar on the
    right), so maps can be compared across channels and time.

    Parameters
    ----------
    activations : numpy.ndarray or torch.Tensor
        ``(entries, channels, time, height, width)``.
    entry : int, default 0
        Which entry (image set entry, batch item) to show.
    channels, times : sequence of int, optional
        Which channels (rows) and time steps (columns); default up to 8
        channels and 12 time steps, spread evenly.
    cmap : str, default 'viridis'
    cell_size : float, default 1.2
        Inches per map.

    Returns
    -------
    matplotlib.figure.Figure
        Its first ``len(channels) * len(times)`` axes hold the maps, row by
        row; the last holds the colour bar.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_5d_matshow(np.random.default_rng(0).random((1, 3, 4, 5, 5)))
    >>> len(fig.axes)  # 3 channels x 4 time steps, and the colour bar
    13
    """
    array = _five_d(activations, entry)
    rows = _indices(channels, array.shape[0], 8, "channels")
    columns = _indices(times, array.shape[1], 12, "times")
    shown = array[np.ix_(rows, columns)]
    low, high = float(np.nanmin(shown)), float(np.nanmax(shown))
    fig, axes = plt.subplots(len(rows), len(columns), squeeze=False, layout="constrained",
                             figsize=(cell_size * len(columns) + 1, cell_size * len(rows)))
    for r, channel in enumerate(rows):
        for c, step in enumerate(columns):
            ax = axes[r, c]
            image = ax.imshow(array[channel, step], cmap=cmap, vmin=low, vmax=high)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(f"t={step}", fontsize="small")
            if c == 0:
                ax.set_ylabel(f"ch {channel}", fontsize="small")
    fig.colorbar(image, ax=axes, shrink=0.8)
    return fig


@public
def plot_5d_time(
    activations: Any,
    entry: int = 0,
    *,
    num_examples: int = 5,
    fps: float | None = None,
    random_state: int = 0,
    ax: Any = None,
) -> Figure:
    """Time courses: the mean, minimum and maximum over all units, and example units.

    Parameters
    ----------
    activations : numpy.ndarray or torch.Tensor
        ``(entries, channels, time, height, width)``.
    entry : int, default 0
        Which entry to show.
    num_examples : int, default 5
        Example units (channel, row, column), drawn without replacement,
        seeded by ``random_state``, as thin lines.
    fps : float, optional
        Frames per second of the time axis: the x axis in seconds.
    random_state : int, default 0
        Seed of the example units.
    ax : matplotlib.axes.Axes, optional
        Draw here; default a new figure.

    Returns
    -------
    matplotlib.figure.Figure
        Its axes' lines are labelled ``'mean'``, ``'min'``, ``'max'`` and
        ``'unit (channel, row, column)'`` for each example.

    Examples
    --------
    >>> import numpy as np
    >>> fig = plot_5d_time(np.random.default_rng(0).random((1, 2, 6, 3, 3)), num_examples=2)
    >>> [line.get_label() for line in fig.axes[0].lines][:3]
    ['mean', 'min', 'max']
    """
    array = _five_d(activations, entry)
    num_examples = check_int(num_examples, "num_examples", minimum=0)
    random_state = check_int(random_state, "random_state", minimum=0)
    fps = check_number(fps, "fps", minimum=0, exclusive_minimum=True, allow_none=True)
    units = np.moveaxis(array, 1, 0).reshape(array.shape[1], -1)  # (time, units)
    x = np.arange(array.shape[1]) / (fps or 1)
    fig = plt.figure(layout="constrained") if ax is None else ax.figure
    ax = fig.add_subplot() if ax is None else ax
    ax.plot(x, units.mean(axis=1), color="black", linewidth=2, label="mean")
    ax.plot(x, units.min(axis=1), color="tab:blue", linestyle="--", label="min")
    ax.plot(x, units.max(axis=1), color="tab:red", linestyle="--", label="max")
    rng = np.random.default_rng(random_state)
    picked = rng.choice(units.shape[1], size=min(num_examples, units.shape[1]), replace=False)
    for flat in picked:
        where = np.unravel_index(flat, (array.shape[0],) + array.shape[2:])
        ax.plot(x, units[:, flat], linewidth=0.8, alpha=0.7,
                label=f"unit {tuple(int(i) for i in where)}")
    ax.set_xlabel("time (s)" if fps else "time step")
    ax.set_ylabel("activation")
    ax.legend(fontsize="small")
    return fig
