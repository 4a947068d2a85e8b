"""Plots of RDMs: MDS plots of one RDM, heatmaps of one RDM or a grid of many.

Every function takes rows of an RDM frame (the output of ``get_rdms`` or
``get_meta_rdms``) and uses their ``matrix`` and ``entry_keys`` columns, so
plotting options are given per entry with the entries' own keys. Figures are
ordinary matplotlib objects: they work headless (Agg) and in notebooks.
"""

import inspect
import math
import os
from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from PIL import Image
from sklearn.manifold import MDS

__all__ = [
    "MDSResult",
    "rdm_mds",
    "my_mds",
    "alphatize_image",
    "plot_rdm",
    "plot_rdm_grid",
]

# Columns that hold an RDM's content, or repeat other columns, rather than
# describe how the RDM differs from others.
_NON_DESCRIPTIVE_COLUMNS = (
    "matrix", "entry_keys", "entry_labels", "dissim_rankings", "perm_scramble", "layer_label",
)


@dataclass(frozen=True)
class MDSResult:
    """What :func:`rdm_mds` drew, returned with ``return_result=True``.

    Attributes
    ----------
    stress : float
        Raw stress of the MDS solution (as ``sklearn.manifold.MDS.stress_``).
    coords : numpy.ndarray of shape (n_entries, dims)
        Plotted position of each entry, rows in ``entry_keys`` order. The MDS
        embedding is shifted and scaled by one common factor so that all
        coordinates span [0, 1]; distances keep their proportions.
    fig : matplotlib.figure.Figure
        The figure.
    ax : matplotlib.axes.Axes
        The axes the points were drawn in (3-D axes when ``dims=3``).
    """

    stress: float
    coords: np.ndarray
    fig: Figure
    ax: object


# ---------------------------------------------------------------------------
# Reading one RDM from a frame
# ---------------------------------------------------------------------------


def _varying_columns(frame):
    """Metadata columns whose values differ across the rows of ``frame``."""
    return [
        col
        for col in frame.columns
        if col not in _NON_DESCRIPTIVE_COLUMNS and len(set(map(repr, frame[col]))) > 1
    ]


def _single_rdm(rdm_df, func_name):
    """Return ``(matrix, entry_keys, row)`` of the one RDM in ``rdm_df``."""
    if isinstance(rdm_df, pd.DataFrame):
        if len(rdm_df) != 1:
            differing = _varying_columns(rdm_df)
            hint = f" (the rows differ in {', '.join(differing)})" if differing else ""
            raise ValueError(
                f"The 'rdm_df' parameter of {func_name} must hold exactly one RDM "
                f"(one row); got {len(rdm_df)} rows instead{hint}. Select one "
                "row first, e.g. pfa.df_filter(rdm_df, [('layer', 'conv1')])."
            )
        row = rdm_df.iloc[0]
    elif isinstance(rdm_df, pd.Series):
        row = rdm_df
    else:
        raise TypeError(
            f"The 'rdm_df' parameter of {func_name} must be a one-row DataFrame "
            f"or a Series (one row of an RDM frame); got {type(rdm_df).__name__} "
            "instead."
        )
    missing = [col for col in ("matrix", "entry_keys") if col not in row.index]
    if missing:
        raise ValueError(
            f"The 'rdm_df' parameter of {func_name} is missing the column(s) "
            f"{', '.join(map(repr, missing))}; an RDM frame from get_rdms or "
            "get_meta_rdms has them."
        )
    matrix = np.asarray(row["matrix"], dtype=np.float64)
    entry_keys = tuple(tuple(key) for key in row["entry_keys"])
    if matrix.ndim != 2 or matrix.shape != (len(entry_keys), len(entry_keys)):
        raise ValueError(
            f"The 'matrix' of the RDM passed to {func_name} must be square with "
            f"one row per entry key ({len(entry_keys)}); got shape {matrix.shape} "
            "instead."
        )
    return matrix, entry_keys, row


def _entry_text(key):
    """Readable text for an entry key: its values joined by ', '."""
    return ", ".join(map(str, key))


class _EntryIndex:
    """Look up entries of an RDM by key, with errors that list valid keys."""

    def __init__(self, entry_keys, func_name):
        self.entry_keys = entry_keys
        self.func_name = func_name
        self._positions = {key: i for i, key in enumerate(entry_keys)}

    def __call__(self, key, param_name):
        """Position of ``key``; a plain value stands for a one-variable key."""
        if isinstance(key, list):
            key = tuple(key)
        if not isinstance(key, tuple):
            key = (key,)
        try:
            return self._positions[key]
        except (KeyError, TypeError):
            examples = ", ".join(map(repr, self.entry_keys[:4]))
            more = ", ..." if len(self.entry_keys) > 4 else ""
            raise ValueError(
                f"The '{param_name}' parameter of {self.func_name} must only use "
                f"entry keys of the RDM, such as {examples}{more} "
                f"({len(self.entry_keys)} entries in all); got {key!r} instead."
            ) from None

    def positions(self, mapping, param_name):
        """``{position: value}`` for a ``{entry key: value}`` mapping."""
        if not isinstance(mapping, dict):
            raise TypeError(
                f"The '{param_name}' parameter of {self.func_name} must be a dict "
                f"keyed by entry keys; got {type(mapping).__name__} instead."
            )
        return {self(key, param_name): value for key, value in mapping.items()}


# ---------------------------------------------------------------------------
# MDS
# ---------------------------------------------------------------------------


def _mds_estimator(dims, random_state, mds_opts):
    """A metric MDS on precomputed dissimilarities, for any supported scikit-learn."""
    params = dict(
        n_components=dims,
        n_init=4,
        max_iter=3000,
        eps=1e-9,
        n_jobs=1,
        random_state=random_state,
        normalized_stress=False,
    )
    if "metric_mds" in inspect.signature(MDS).parameters:
        params.update(metric="precomputed", metric_mds=True, init="random")
    else:
        params.update(dissimilarity="precomputed", metric=True)
    params.update(mds_opts)
    return MDS(**params)


def _check_no_nan(matrix, entry_keys, func_name):
    rows, cols = np.nonzero(np.triu(np.isnan(matrix) | np.isnan(matrix.T)))
    if rows.size:
        pairs = ", ".join(
            f"{entry_keys[i]!r}-{entry_keys[j]!r}" for i, j in zip(rows[:5], cols[:5])
        )
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        raise ValueError(
            f"The 'matrix' of the RDM passed to {func_name} must not contain NaN "
            f"(MDS needs every dissimilarity); got NaN for {pairs}{more} instead. "
            "Drop those entries first with pfa.subset_rdm_df."
        )


def _rescaled(embedding):
    """Shift and scale all coordinates together so that they span [0, 1]."""
    low, high = embedding.min(), embedding.max()
    if high == low:
        return np.full_like(embedding, 0.5)
    return (embedding - low) / (high - low)


def alphatize_image(im, alpha_target=(255, 255, 255), alpha_range=5):
    """Make the pixels of an image that are close to one colour transparent.

    A pixel becomes fully transparent white ``(255, 255, 255, 0)`` when each
    of its R, G and B values is less than ``alpha_range`` away from the
    matching value of ``alpha_target``. Used by :func:`rdm_mds` to drop the
    white background of stimulus pictures.

    Parameters
    ----------
    im : PIL.Image.Image
        The image (any mode).
    alpha_target : tuple of 3 int, default=(255, 255, 255)
        RGB colour to make transparent.
    alpha_range : float, default=5
        How far (strictly less than) each channel may be from ``alpha_target``.

    Returns
    -------
    PIL.Image.Image
        A new RGBA image; ``im`` is unchanged.

    Examples
    --------
    >>> from PIL import Image
    >>> import pytorch_feature_analysis as pfa
    >>> im = Image.new('RGB', (4, 4), (250, 252, 255))
    >>> pfa.alphatize_image(im, alpha_range=10).getpixel((0, 0))
    (255, 255, 255, 0)
    """
    target = np.asarray(alpha_target, dtype=np.int16)
    if target.shape != (3,):
        raise ValueError(
            "The 'alpha_target' parameter of alphatize_image must be an RGB "
            f"triplet; got {alpha_target!r} instead."
        )
    pixels = np.array(im.convert("RGBA"))
    near = (np.abs(pixels[..., :3].astype(np.int16) - target) < alpha_range).all(axis=-1)
    pixels[near] = (255, 255, 255, 0)
    return Image.fromarray(pixels)


def _load_picture(pic, func_name):
    """A PIL image from a PIL image or a path."""
    if isinstance(pic, Image.Image):
        return pic
    if isinstance(pic, (str, os.PathLike)):
        with Image.open(pic) as opened:
            return opened.convert("RGBA")
    raise TypeError(
        f"The values of the 'cond_pics' parameter of {func_name} must be PIL "
        f"images or image paths; got {type(pic).__name__} instead."
    )


def _picture_zoom(fig, ax, picture_size, pic_size):
    """OffsetImage zoom that makes the picture's longer side ``pic_size`` data units."""
    position = ax.get_position()
    x_span = abs(np.diff(ax.get_xlim())[0])
    y_span = abs(np.diff(ax.get_ylim())[0])
    points_per_unit = min(
        fig.get_figwidth() * position.width / x_span,
        fig.get_figheight() * position.height / y_span,
    ) * 72
    return pic_size * points_per_unit / max(picture_size)


def _trajectories(line_trajectories, lookup):
    """``[(positions, line kwargs)]`` from ``[(entry keys, kwargs)]`` (kwargs optional)."""
    parsed = []
    for trajectory in line_trajectories:
        if (
            isinstance(trajectory, (tuple, list))
            and len(trajectory) == 2
            and isinstance(trajectory[1], dict)
        ):
            keys, line_opts = trajectory
        else:
            keys, line_opts = trajectory, {}
        parsed.append(([lookup(key, "line_trajectories") for key in keys], line_opts))
    return parsed


def _dot_options(plot_opts, other_dot_opts, cond_colors, lookup, n_entries, func_name):
    """Keyword arguments for the scatter call, with per-entry options as lists."""
    dot_opts = dict(plot_opts)
    if cond_colors:
        colors = ["black"] * n_entries
        for position, color in lookup.positions(cond_colors, "cond_colors").items():
            colors[position] = color
        dot_opts["c"] = colors
    for option, per_entry in other_dot_opts.items():
        values = lookup.positions(per_entry, "other_dot_opts")
        missing = [lookup.entry_keys[i] for i in range(n_entries) if i not in values]
        if missing:
            raise ValueError(
                f"The 'other_dot_opts' parameter of {func_name} must give option "
                f"{option!r} a value for every entry; got none for "
                f"{', '.join(map(repr, missing[:5]))} instead."
            )
        dot_opts[option] = [values[i] for i in range(n_entries)]
    return dot_opts


def rdm_mds(
    rdm_df,
    dims=2,
    plot_opts=None,
    other_dot_opts=None,
    plot_limits=(-0.1, 1.1),
    cond_labels=None,
    label_offset=0.02,
    label_opts=None,
    plot_dots=True,
    cond_colors=None,
    cond_pics=None,
    pic_size=0.1,
    alphatize_pics=True,
    add_pic_border=False,
    alpha_target=(255, 255, 255),
    alpha_range=35,
    pic_offset=(0, 0),
    line_trajectories=None,
    show_stress=True,
    plot_style="classic",
    fig_title=None,
    fig_size=7,
    show=True,
    save_opts=None,
    *,
    random_state=0,
    mds_opts=None,
    return_result=False,
    verbose=False,
):
    """MDS plot of one RDM, with per-entry dots, labels, pictures and trajectories.

    The RDM's dissimilarities are embedded in 2 or 3 dimensions with metric
    MDS (:class:`sklearn.manifold.MDS` on the precomputed matrix) and every
    entry is drawn at its position. Options are given per entry as dicts keyed
    by the entries' keys from the ``entry_keys`` column, e.g. ``('000',)`` or
    ``('obj001', 'conv1')``; for one-variable keys the plain value
    (``'000'``) works too. A key that is not an entry of the RDM is an error.

    Parameters
    ----------
    rdm_df : pandas.DataFrame or pandas.Series
        Exactly one RDM: a one-row RDM frame or one row of it. Uses the
        ``matrix`` and ``entry_keys`` columns. The matrix must not contain
        NaN: drop the undefined entries first (``pfa.subset_rdm_df``).
    dims : {2, 3}, default=2
        Number of MDS dimensions. Pictures are only drawn in 2-D.
    plot_opts : dict, optional
        Keyword arguments for the ``scatter`` call, the same for every dot
        (e.g. ``{'s': 50}``).
    other_dot_opts : dict, optional
        Per-entry scatter options: ``{option: {entry key: value}}`` with a
        value for every entry, e.g. ``{'s': {('cat',): 20, ('dog',): 80}}``.
    plot_limits : (float, float) or None, default=(-0.1, 1.1)
        Limits of every axis. The coordinates span [0, 1], so this sets the
        margins. None lets matplotlib choose.
    cond_labels : dict, optional
        Text labels, ``{entry key: text}``, for some or all entries.
    label_offset : float, default=0.02
        Distance of a label from its dot (in 2-D up and to the left).
    label_opts : dict, optional
        Keyword arguments for the labels (``ax.annotate``, or ``ax.text`` in
        3-D), e.g. ``{'fontsize': 12}``.
    plot_dots : bool, default=True
        Whether to draw the dots (e.g. False when showing pictures instead).
    cond_colors : dict, optional
        Dot colours, ``{entry key: colour}``; unlisted entries are black.
    cond_pics : dict, optional
        Pictures, ``{entry key: PIL image or image path}``, drawn centred on
        the entries as :class:`matplotlib.offsetbox.AnnotationBbox` artists.
    pic_size : float, default=0.1
        Length of a picture's longer side, in data units (the coordinates span
        1); the aspect ratio is kept.
    alphatize_pics : bool, default=True
        Make the pixels near ``alpha_target`` transparent (see
        :func:`alphatize_image`).
    add_pic_border : bool, default=False
        Draw a black frame around every picture.
    alpha_target : tuple of 3 int, default=(255, 255, 255)
        RGB colour made transparent when ``alphatize_pics`` is True.
    alpha_range : float, default=35
        How far each channel may be from ``alpha_target`` to be made
        transparent.
    pic_offset : (float, float), default=(0, 0)
        Shift of each picture from its entry's position, in data units.
    line_trajectories : list, optional
        Lines connecting entries: a list of ``(entry keys, line options)``
        pairs, where the keys are connected in the order listed and the
        options go to ``ax.plot`` (e.g. ``{'linewidth': 1, 'c': 'black'}``).
        A bare list of keys is also accepted.
    show_stress : bool, default=True
        Put the stress of the MDS solution in the title.
    plot_style : str, default='classic'
        Matplotlib style used for this figure only.
    fig_title : str, optional
        Title of the plot.
    fig_size : float or (float, float), default=7
        Figure size in inches (one number gives a square figure).
    show : bool, default=True
        Call :func:`matplotlib.pyplot.show` at the end.
    save_opts : dict or path, optional
        Keyword arguments for :meth:`matplotlib.figure.Figure.savefig`, at
        least the file name, e.g. ``{'fname': 'mds.pdf', 'dpi': 300}``; a
        plain path is short for ``{'fname': path}``.
    random_state : int, numpy.random.RandomState or None, default=0
        Seed of the MDS initialisations; the default makes plots reproducible.
    mds_opts : dict, optional
        Keyword arguments for :class:`sklearn.manifold.MDS` that replace the
        defaults (``n_init=4, max_iter=3000, eps=1e-9``, metric MDS, raw
        stress), e.g. ``{'n_init': 8}``.
    return_result : bool, default=False
        Return an :class:`MDSResult` (stress, plotted coordinates, figure and
        axes) instead of the stress alone.
    verbose : bool, default=False
        Print ``Stress = ...``.

    Returns
    -------
    float or MDSResult
        The raw stress of the MDS solution; with ``return_result=True`` an
        :class:`MDSResult` whose ``coords`` (rows in ``entry_keys`` order) are
        the plotted positions. Otherwise the figure is ``plt.gcf()`` right
        after the call.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> points = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    >>> matrix = np.linalg.norm(points[:, None] - points[None], axis=-1)
    >>> keys = (('000',), ('090',), ('180',), ('270',))
    >>> rdm = pd.DataFrame({'matrix': [matrix], 'entry_keys': [keys]})
    >>> result = pfa.rdm_mds(rdm, cond_labels={'000': 'zero'}, show=False,
    ...                      return_result=True)
    >>> result.coords.shape, bool(result.stress < 1e-3)
    ((4, 2), True)
    """
    func_name = "rdm_mds"
    matrix, entry_keys, _ = _single_rdm(rdm_df, func_name)
    if dims not in (2, 3):
        raise ValueError(
            f"The 'dims' parameter of {func_name} must be 2 or 3; got {dims!r} instead."
        )
    if len(entry_keys) < 2:
        raise ValueError(
            f"The 'rdm_df' parameter of {func_name} must hold an RDM with at "
            f"least 2 entries; got {len(entry_keys)} instead."
        )
    cond_pics = cond_pics or {}
    if dims == 3 and cond_pics:
        raise ValueError(
            f"The 'cond_pics' parameter of {func_name} must be empty when "
            f"dims=3 (pictures are drawn in 2-D only); got {len(cond_pics)} "
            "pictures instead."
        )
    _check_no_nan(matrix, entry_keys, func_name)
    lookup = _EntryIndex(entry_keys, func_name)
    dot_opts = _dot_options(
        plot_opts or {}, other_dot_opts or {}, cond_colors or {}, lookup,
        len(entry_keys), func_name,
    )
    labels = lookup.positions(cond_labels or {}, "cond_labels")
    pictures = {
        position: _load_picture(pic, func_name)
        for position, pic in lookup.positions(cond_pics, "cond_pics").items()
    }
    trajectories = _trajectories(line_trajectories or [], lookup)
    if isinstance(save_opts, (str, os.PathLike)):
        save_opts = {"fname": save_opts}

    mds = _mds_estimator(dims, random_state, mds_opts or {})
    coords = _rescaled(mds.fit(matrix).embedding_)
    stress = float(mds.stress_)

    size = (fig_size, fig_size) if np.isscalar(fig_size) else tuple(fig_size)
    with plt.style.context(plot_style):
        fig = plt.figure(figsize=size)
        ax = fig.add_subplot(projection="3d" if dims == 3 else None)
        if plot_limits is not None:
            for set_limits in (ax.set_xlim, ax.set_ylim) + ((ax.set_zlim,) if dims == 3 else ()):
                set_limits(*plot_limits)
        for positions, line_opts in trajectories:
            ax.plot(*coords[positions].T, **{"linestyle": "-", "zorder": 1, **line_opts})
        if plot_dots:
            ax.scatter(*coords.T, **{"zorder": 2, **dot_opts})
        for position, picture in pictures.items():
            if alphatize_pics:
                picture = alphatize_image(picture, alpha_target, alpha_range)
            zoom = _picture_zoom(fig, ax, picture.size, pic_size)
            image = OffsetImage(np.asarray(picture.convert("RGBA")), zoom=zoom)
            xy = (coords[position, 0] + pic_offset[0], coords[position, 1] + pic_offset[1])
            box = AnnotationBbox(
                image, xy, frameon=add_pic_border, pad=0,
                bboxprops={"edgecolor": "black", "linewidth": 1.5},
            )
            box.set_zorder(3)
            ax.add_artist(box)
        for position, text in labels.items():
            if dims == 2:
                xy = (coords[position, 0] - label_offset, coords[position, 1] + label_offset)
                ax.annotate(text, xy, **{"zorder": 4, **(label_opts or {})})
            else:
                ax.text(*(coords[position] + label_offset), text, **(label_opts or {}))
        title = fig_title or ""
        if show_stress:
            title = f"{title}\nstress = {stress:.4g}" if title else f"stress = {stress:.4g}"
        ax.set_title(title)
        if save_opts is not None:
            fig.savefig(**save_opts)
    if verbose:
        print(f"Stress = {stress}")
    if show:
        plt.show()
    if return_result:
        return MDSResult(stress=stress, coords=coords, fig=fig, ax=ax)
    return stress


my_mds = rdm_mds


# ---------------------------------------------------------------------------
# Heatmaps
# ---------------------------------------------------------------------------


def _order_positions(order, entry_keys, row, func_name):
    """Entry positions to show, in order."""
    if order is None:
        return list(range(len(entry_keys)))
    if isinstance(order, str) and order == "dissim_rankings":
        if "dissim_rankings" not in row.index:
            raise ValueError(
                f"The 'order' parameter of {func_name} is 'dissim_rankings' but the "
                "RDM has no 'dissim_rankings' column."
            )
        ranked = [int(i) for i in row["dissim_rankings"]]
        return ranked + [i for i in range(len(entry_keys)) if i not in set(ranked)]
    lookup = _EntryIndex(entry_keys, func_name)
    positions = [lookup(key, "order") for key in order]
    if len(set(positions)) != len(positions):
        raise ValueError(
            f"The 'order' parameter of {func_name} must list each entry at most "
            f"once; got {list(order)!r} instead."
        )
    return positions


def _draw_rdm(ax, matrix, entry_keys, positions, labels, **imshow_opts):
    """Draw the reordered matrix in ``ax``; return the image artist."""
    image = ax.imshow(matrix[np.ix_(positions, positions)], interpolation="nearest", **imshow_opts)
    if labels:
        texts = [_entry_text(entry_keys[i]) for i in positions]
        ticks = np.arange(len(positions))
        ax.set_xticks(ticks, texts, rotation=90)
        ax.set_yticks(ticks, texts)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


def plot_rdm(
    rdm_df,
    ax=None,
    cmap="viridis",
    order=None,
    vmin=None,
    vmax=None,
    colorbar=True,
    labels=True,
    title=None,
):
    """Heatmap of one RDM, with its entries on both axes and a colour bar.

    Parameters
    ----------
    rdm_df : pandas.DataFrame or pandas.Series
        Exactly one RDM: a one-row RDM frame or one row of it (``matrix`` and
        ``entry_keys`` columns). NaN cells are left blank.
    ax : matplotlib.axes.Axes, optional
        Axes to draw in; a new figure is made when omitted.
    cmap : str or matplotlib colormap, default='viridis'
        Colour map.
    order : None, 'dissim_rankings' or list of entry keys, optional
        Order of the entries: as stored (None), the greedy most-dissimilar
        order of the ``dissim_rankings`` column, or the listed entries only,
        in the listed order.
    vmin, vmax : float, optional
        Ends of the colour scale (default: the matrix's range).
    colorbar : bool, default=True
        Draw a colour bar, labelled with ``dissim_metric`` when present.
    labels : bool, default=True
        Label the ticks with the entry keys (values joined by ', ', e.g.
        ``'obj001, conv1'``).
    title : str, optional
        Title of the axes.

    Returns
    -------
    matplotlib.axes.Axes
        The axes drawn in (its figure is ``ax.figure``), as seaborn's
        axes-level functions do.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> matrix = np.array([[0., 1., 2.], [1., 0., 3.], [2., 3., 0.]])
    >>> rdm = pd.DataFrame({'matrix': [matrix],
    ...                     'entry_keys': [(('a',), ('b',), ('c',))]})
    >>> ax = pfa.plot_rdm(rdm, order=['c', 'a', 'b'])
    >>> [tick.get_text() for tick in ax.get_xticklabels()]
    ['c', 'a', 'b']
    """
    func_name = "plot_rdm"
    matrix, entry_keys, row = _single_rdm(rdm_df, func_name)
    positions = _order_positions(order, entry_keys, row, func_name)
    if ax is None:
        _, ax = plt.subplots(layout="constrained")
    image = _draw_rdm(ax, matrix, entry_keys, positions, labels, cmap=cmap, vmin=vmin, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=row.get("dissim_metric", None))
    if title is not None:
        ax.set_title(title)
    return ax


def plot_rdm_grid(
    rdm_df,
    col=None,
    col_wrap=None,
    cmap="viridis",
    order=None,
    vmin=None,
    vmax=None,
    labels=True,
    height=3.0,
):
    """Heatmaps of many RDMs in a grid, on one shared colour scale.

    Parameters
    ----------
    rdm_df : pandas.DataFrame
        RDM frame; one panel per row, in row order.
    col : str or list of str, optional
        Column(s) whose values title the panels (e.g. ``'layer'``). By
        default, the metadata columns whose values differ across the rows.
    col_wrap : int, optional
        Panels per grid row (default: a near-square grid).
    cmap : str or matplotlib colormap, default='viridis'
        Colour map.
    order : None, 'dissim_rankings' or list of entry keys, optional
        Order of the entries in every panel, as in :func:`plot_rdm`.
    vmin, vmax : float, optional
        Ends of the shared colour scale (default: the range over all RDMs).
    labels : bool, default=True
        Label the ticks with the entry keys.
    height : float, default=3.0
        Height (and width) of each panel, in inches.

    Returns
    -------
    matplotlib.figure.Figure
        The figure: one axes per RDM (``fig.axes`` in row order, unused grid
        cells removed) and one colour bar, labelled with ``dissim_metric``
        when all rows share it.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> keys = (('a',), ('b',))
    >>> frame = pd.DataFrame({
    ...     'layer': ['conv1', 'conv2', 'fc1'],
    ...     'matrix': [np.array([[0., d], [d, 0.]]) for d in (1., 2., 3.)],
    ...     'entry_keys': [keys] * 3})
    >>> fig = pfa.plot_rdm_grid(frame, col='layer')
    >>> [ax.get_title() for ax in fig.axes[:3]]
    ['conv1', 'conv2', 'fc1']
    """
    func_name = "plot_rdm_grid"
    if not isinstance(rdm_df, pd.DataFrame) or len(rdm_df) == 0:
        got = f"{len(rdm_df)} rows" if isinstance(rdm_df, pd.DataFrame) else type(rdm_df).__name__
        raise ValueError(
            f"The 'rdm_df' parameter of {func_name} must be an RDM frame with at "
            f"least one row; got {got} instead."
        )
    if col is None:
        title_cols = _varying_columns(rdm_df)
    else:
        title_cols = [col] if isinstance(col, str) else list(col)
    missing = [c for c in title_cols if c not in rdm_df.columns]
    if missing:
        raise ValueError(
            f"The 'col' parameter of {func_name} names column(s) missing from "
            f"rdm_df: {', '.join(map(repr, missing))}."
        )
    rdms = [_single_rdm(row, func_name) for _, row in rdm_df.iterrows()]
    all_values = np.concatenate([matrix.ravel() for matrix, _, _ in rdms])
    if vmin is None:
        vmin = np.nanmin(all_values) if np.isfinite(all_values).any() else 0.0
    if vmax is None:
        vmax = np.nanmax(all_values) if np.isfinite(all_values).any() else 1.0

    n_panels = len(rdms)
    n_cols = col_wrap or math.ceil(math.sqrt(n_panels))
    n_rows = math.ceil(n_panels / n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(height * n_cols + 1.0, height * n_rows),
        squeeze=False, layout="constrained",
    )
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    axes = axes[:n_panels]
    for ax, (matrix, entry_keys, row) in zip(axes, rdms):
        positions = _order_positions(order, entry_keys, row, func_name)
        image = _draw_rdm(
            ax, matrix, entry_keys, positions, labels, cmap=cmap, vmin=vmin, vmax=vmax
        )
        ax.set_title(", ".join(str(row[c]) for c in title_cols))
    metrics = set(rdm_df["dissim_metric"]) if "dissim_metric" in rdm_df.columns else set()
    fig.colorbar(image, ax=list(axes), label=metrics.pop() if len(metrics) == 1 else None)
    return fig
