"""Plots of RDMs (MDS plots of one RDM, heatmaps of one RDM or a grid of many) and of scores.

Every function takes rows of an RDM frame (the output of ``get_rdms`` or
``get_meta_rdms``) and uses their ``matrix`` and ``entry_keys`` columns, so
plotting options are given per entry with the entries' own keys. Figures are
ordinary matplotlib objects: they work headless (Agg) and in notebooks.
"""

import inspect
import math
import numbers
import os
from dataclasses import dataclass
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.offsetbox import AnnotationBbox, OffsetImage
from PIL import Image
from sklearn.manifold import MDS

from ._contract import DERIVED_COLUMNS, PER_RDM_COLUMNS, SUB
from ._validation import check_columns, check_int, fail, public

__all__ = [
    "MDSResult",
    "rdm_mds",
    "my_mds",
    "alphatize_image",
    "plot_rdm",
    "plot_rdm_grid",
    "plot_score_profile",
]

# The columns every plot reads from an RDM frame.
_PLOTTED_COLUMNS = ("matrix", "entry_keys")

# How far from symmetric a matrix given to MDS may be (numpy.isclose's defaults):
# the rounding of float32 arithmetic passes, a real asymmetry does not.
_SYMMETRY_RTOL = 1e-5
_SYMMETRY_ATOL = 1e-8


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


class _RDM(NamedTuple):
    """One RDM read from a frame: float64 matrix, entry keys and the whole row."""

    matrix: np.ndarray
    entry_keys: tuple
    row: pd.Series


def _describes_condition(column):
    """Whether ``column`` tells RDMs apart (not their content, not a repeat), at any level."""
    base = column
    while isinstance(base, str) and base.endswith(SUB):
        base = base[: -len(SUB)]
    return base not in PER_RDM_COLUMNS + DERIVED_COLUMNS


def _varying_columns(frame):
    """Metadata columns whose values differ across the rows of ``frame``."""
    return [
        col
        for col in frame.columns
        if _describes_condition(col) and len(set(map(repr, frame[col]))) > 1
    ]


def _read_rdm(rdm_df, needed=(), where=""):
    """The one RDM of a one-row frame (or one row of a frame), checked.

    Every plot reads its RDMs through here: ``needed`` names further columns
    the plot uses, ``where`` says which row of a larger frame this is.
    """
    frame = rdm_df.to_frame().T if isinstance(rdm_df, pd.Series) else rdm_df
    if not isinstance(frame, pd.DataFrame):
        expected = "a one-row RDM frame or one row of it (a Series)"
        raise fail("rdm_df", expected, type(rdm_df).__name__, raw=True)
    check_columns(frame, [*_PLOTTED_COLUMNS, *needed], "rdm_df")
    if len(frame) != 1:
        raise _not_one_rdm(frame)
    row = frame.iloc[0]
    entry_keys = tuple(tuple(key) for key in row["entry_keys"])
    try:
        matrix = np.asarray(row["matrix"], dtype=np.float64)
    except (TypeError, ValueError):
        got = f"a matrix of {type(row['matrix']).__name__}{where}"
        raise fail("rdm_df", "an RDM whose matrix is numeric", got, raw=True) from None
    n = len(entry_keys)
    if matrix.shape != (n, n):
        expected = f"an RDM whose matrix is square with one row per entry key ({n})"
        raise fail("rdm_df", expected, f"a matrix of shape {matrix.shape}{where}", raw=True)
    _check_defined(matrix, where)
    return _RDM(matrix, entry_keys, row)


def _not_one_rdm(frame):
    """The error for a frame that holds no RDM or several."""
    differing = _varying_columns(frame)
    column, value = "layer", "conv1"
    if differing and len(frame):
        column, value = differing[0], frame[differing[0]].iloc[0]
        value = value.item() if isinstance(value, np.generic) else value
    got = f"{len(frame)} rows" + (f" (they differ in {', '.join(differing)})" if differing else "")
    expected = (
        f"exactly one RDM (one row: select it first, e.g. with "
        f"pfa.df_filter(rdm_df, [({column!r}, {value!r})]))"
    )
    return fail("rdm_df", expected, got, raw=True)


def _check_defined(matrix, where):
    """Refuse a matrix with no finite dissimilarity: there is nothing to draw."""
    n = matrix.shape[0]
    values = matrix[~np.eye(n, dtype=bool)] if n > 1 else matrix.ravel()
    if values.size and not np.isfinite(values).any():
        kind = "NaN" if np.isnan(values).all() else "NaN or infinite"
        raise fail(
            "rdm_df",
            "an RDM with at least one defined (finite) dissimilarity",
            f"a {n} x {n} matrix whose dissimilarities are all {kind}{where}",
            raw=True,
        )


def _entry_text(key):
    """Readable text for an entry key: its values joined by ', '."""
    return ", ".join(map(str, key))


class _EntryIndex:
    """Look up entries of an RDM by key, with errors that list valid keys."""

    def __init__(self, entry_keys):
        self.entry_keys = entry_keys
        self._positions = {key: i for i, key in enumerate(entry_keys)}

    def __call__(self, key, param):
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
            expected = (
                f"made of entry keys of the RDM, such as {examples}{more} "
                f"({len(self.entry_keys)} entries in all)"
            )
            raise fail(param, expected, key) from None

    def positions(self, mapping, param):
        """``{position: value}`` for a ``{entry key: value}`` mapping."""
        if not isinstance(mapping, dict):
            raise fail(param, "a dict keyed by entry keys", type(mapping).__name__, raw=True)
        return {self(key, param): value for key, value in mapping.items()}


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


def _check_mds_input(rdm, dims, cond_pics):
    """Refuse what MDS cannot embed: wrong ``dims``, too few entries, pictures in 3-D."""
    if isinstance(dims, bool) or not isinstance(dims, numbers.Integral) or dims not in (2, 3):
        raise fail("dims", "2 or 3", dims)
    n = len(rdm.entry_keys)
    if n < 2:
        raise fail("rdm_df", "an RDM with at least 2 entries", f"{n} entries", raw=True)
    if dims == 3 and cond_pics:
        expected = "empty when dims=3 (pictures are drawn in 2-D only)"
        raise fail("cond_pics", expected, f"{len(cond_pics)} pictures", raw=True)
    _check_distances(rdm.matrix, rdm.entry_keys)


def _pair_text(entry_keys, i, j):
    return f"{entry_keys[i]!r}-{entry_keys[j]!r}"


def _check_distances(matrix, entry_keys):
    """MDS embeds dissimilarities as distances: all defined, non-negative, symmetric."""
    rows, cols = np.nonzero(np.triu(~np.isfinite(matrix) | ~np.isfinite(matrix.T)))
    if rows.size:
        pairs = ", ".join(_pair_text(entry_keys, i, j) for i, j in zip(rows[:5], cols[:5]))
        more = f" and {rows.size - 5} more" if rows.size > 5 else ""
        kind = "NaN or inf" if np.isinf(matrix).any() else "NaN"
        expected = (
            "an RDM without NaN or infinite values (MDS needs every dissimilarity; drop "
            "those entries first with pfa.subset_rdm_df)"
        )
        raise fail("rdm_df", expected, f"{kind} for {pairs}{more}", raw=True)
    i, j = np.unravel_index(np.argmin(matrix), matrix.shape)
    if matrix[i, j] < 0:
        got = f"a smallest value of {matrix[i, j]:.6g} (for {_pair_text(entry_keys, i, j)})"
        expected = "an RDM of non-negative dissimilarities (MDS embeds them as distances)"
        raise fail("rdm_df", expected, got, raw=True)
    asymmetry = np.abs(matrix - matrix.T) - _SYMMETRY_RTOL * np.abs(matrix.T) - _SYMMETRY_ATOL
    i, j = np.unravel_index(np.argmax(asymmetry), matrix.shape)
    if asymmetry[i, j] > 0:
        got = (
            f"matrix[{i}, {j}] = {matrix[i, j]:.6g} but matrix[{j}, {i}] = "
            f"{matrix[j, i]:.6g} (for {_pair_text(entry_keys, i, j)})"
        )
        expected = "an RDM with a symmetric matrix (the dissimilarity of a to b is that of b to a)"
        raise fail("rdm_df", expected, got, raw=True)


def _rescaled(embedding):
    """Shift and scale all coordinates together so that they span [0, 1]."""
    low, high = embedding.min(), embedding.max()
    if high == low:
        return np.full_like(embedding, 0.5)
    return (embedding - low) / (high - low)


@public
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

    Raises
    ------
    InvalidInputError
        If ``im`` is not a PIL image or ``alpha_target`` not an RGB triplet.

    Examples
    --------
    >>> from PIL import Image
    >>> import pytorch_feature_analysis as pfa
    >>> im = Image.new('RGB', (4, 4), (250, 252, 255))
    >>> pfa.alphatize_image(im, alpha_range=10).getpixel((0, 0))
    (255, 255, 255, 0)
    """
    try:
        target = np.asarray(alpha_target, dtype=np.int16)
    except (TypeError, ValueError):
        target = None
    if target is None or target.shape != (3,):
        raise fail("alpha_target", "an RGB triplet such as (255, 255, 255)", alpha_target)
    if not isinstance(im, Image.Image):
        raise fail("im", "a PIL image", type(im).__name__, raw=True)
    pixels = np.array(im.convert("RGBA"))
    near = (np.abs(pixels[..., :3].astype(np.int16) - target) < alpha_range).all(axis=-1)
    pixels[near] = (255, 255, 255, 0)
    return Image.fromarray(pixels)


def _load_picture(pic, alphatize, alpha_target, alpha_range):
    """An RGBA PIL image from a PIL image or a path, made transparent if asked."""
    if isinstance(pic, (str, os.PathLike)):
        with Image.open(pic) as opened:
            pic = opened.convert("RGBA")
    if not isinstance(pic, Image.Image):
        expected = "a dict whose values are PIL images or image paths"
        raise fail("cond_pics", expected, f"a {type(pic).__name__} value", raw=True)
    return alphatize_image(pic, alpha_target, alpha_range) if alphatize else pic.convert("RGBA")


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


def _dot_options(plot_opts, other_dot_opts, cond_colors, lookup):
    """Keyword arguments for the scatter call, with per-entry options as lists."""
    n_entries = len(lookup.entry_keys)
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
            raise fail(
                "other_dot_opts",
                "{option: {entry key: value}} with a value for every entry",
                f"no {option!r} value for {', '.join(map(repr, missing[:5]))}",
                raw=True,
            )
        dot_opts[option] = [values[i] for i in range(n_entries)]
    return dot_opts


@dataclass(frozen=True)
class _Marks:
    """What :func:`rdm_mds` draws at the entries, resolved to entry positions."""

    dots: dict | None  # scatter options; None draws no dots
    labels: dict  # {position: text}
    label_offset: float
    label_opts: dict
    pictures: dict  # {position: RGBA PIL image}
    pic_size: float
    pic_offset: tuple
    pic_border: bool
    trajectories: list  # [(positions, line options)]


def _entry_marks(
    entry_keys, *, plot_dots, plot_opts, other_dot_opts, cond_colors, cond_labels,
    label_offset, label_opts, cond_pics, pic_size, pic_offset, add_pic_border,
    alphatize_pics, alpha_target, alpha_range, line_trajectories,
):
    """The :class:`_Marks` for :func:`rdm_mds`'s options, checked against the entry keys."""
    lookup = _EntryIndex(entry_keys)
    dots = _dot_options(plot_opts or {}, other_dot_opts or {}, cond_colors or {}, lookup)
    pictures = {
        position: _load_picture(pic, alphatize_pics, alpha_target, alpha_range)
        for position, pic in lookup.positions(cond_pics or {}, "cond_pics").items()
    }
    return _Marks(
        dots=dots if plot_dots else None,
        labels=lookup.positions(cond_labels or {}, "cond_labels"),
        label_offset=label_offset,
        label_opts=label_opts or {},
        pictures=pictures,
        pic_size=pic_size,
        pic_offset=tuple(pic_offset),
        pic_border=add_pic_border,
        trajectories=_trajectories(line_trajectories or [], lookup),
    )


def _embed(matrix, dims, random_state, mds_opts):
    """Plotted coordinates (rescaled to [0, 1]) and raw stress of the MDS solution."""
    mds = _mds_estimator(dims, random_state, mds_opts)
    coords = _rescaled(mds.fit(matrix).embedding_)
    return coords, float(mds.stress_)


def _mds_title(fig_title, stress, show_stress):
    title = fig_title or ""
    if show_stress:
        return f"{title}\nstress = {stress:.4g}" if title else f"stress = {stress:.4g}"
    return title


def _draw_pictures(fig, ax, coords, marks):
    for position, picture in marks.pictures.items():
        zoom = _picture_zoom(fig, ax, picture.size, marks.pic_size)
        image = OffsetImage(np.asarray(picture), zoom=zoom)
        x, y = coords[position, 0], coords[position, 1]
        xy = (x + marks.pic_offset[0], y + marks.pic_offset[1])
        box = AnnotationBbox(
            image, xy, frameon=marks.pic_border, pad=0,
            bboxprops={"edgecolor": "black", "linewidth": 1.5},
        )
        box.set_zorder(3)
        ax.add_artist(box)


def _draw_labels(ax, coords, marks, dims):
    offset = marks.label_offset
    for position, text in marks.labels.items():
        if dims == 2:
            xy = (coords[position, 0] - offset, coords[position, 1] + offset)
            ax.annotate(text, xy, **{"zorder": 4, **marks.label_opts})
        else:
            ax.text(*(coords[position] + offset), text, **marks.label_opts)


def _mds_figure(coords, marks, dims, fig_size, plot_style, plot_limits, title, save_opts):
    """Draw the embedded entries in a new figure (saved if asked); return it and its axes."""
    size = (fig_size, fig_size) if np.isscalar(fig_size) else tuple(fig_size)
    with plt.style.context(plot_style):
        fig = plt.figure(figsize=size)
        ax = fig.add_subplot(projection="3d" if dims == 3 else None)
        if plot_limits is not None:
            for set_limits in (ax.set_xlim, ax.set_ylim) + ((ax.set_zlim,) if dims == 3 else ()):
                set_limits(*plot_limits)
        for positions, line_opts in marks.trajectories:
            ax.plot(*coords[positions].T, **{"linestyle": "-", "zorder": 1, **line_opts})
        if marks.dots is not None:
            ax.scatter(*coords.T, **{"zorder": 2, **marks.dots})
        _draw_pictures(fig, ax, coords, marks)
        _draw_labels(ax, coords, marks, dims)
        ax.set_title(title)
        if save_opts is not None:
            fig.savefig(**save_opts)
    return fig, ax


@public
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
        ``matrix`` and ``entry_keys`` columns. MDS embeds the dissimilarities
        as distances, so the matrix must be symmetric, non-negative and
        without NaN: drop the undefined entries first
        (``pfa.subset_rdm_df``).
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

    Raises
    ------
    InvalidInputError
        If ``rdm_df`` holds no RDM or several, lacks ``matrix`` or
        ``entry_keys``, or its matrix is not square with one row per entry,
        has fewer than 2 entries, holds NaN or infinite values (the message
        names the pairs), negative values (it names the smallest) or is not
        symmetric (it names the most asymmetric pair); if an option uses a key
        that is not an entry of the RDM; if ``dims`` is not 2 or 3, or
        pictures are asked for in 3-D.

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
    rdm = _read_rdm(rdm_df)
    _check_mds_input(rdm, dims, cond_pics)
    marks = _entry_marks(
        rdm.entry_keys, plot_dots=plot_dots, plot_opts=plot_opts,
        other_dot_opts=other_dot_opts, cond_colors=cond_colors, cond_labels=cond_labels,
        label_offset=label_offset, label_opts=label_opts, cond_pics=cond_pics,
        pic_size=pic_size, pic_offset=pic_offset, add_pic_border=add_pic_border,
        alphatize_pics=alphatize_pics, alpha_target=alpha_target, alpha_range=alpha_range,
        line_trajectories=line_trajectories,
    )
    if isinstance(save_opts, (str, os.PathLike)):
        save_opts = {"fname": save_opts}
    coords, stress = _embed(rdm.matrix, int(dims), random_state, mds_opts or {})
    fig, ax = _mds_figure(
        coords, marks, dims, fig_size, plot_style, plot_limits,
        _mds_title(fig_title, stress, show_stress), save_opts,
    )
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


def _order_columns(order):
    """The columns an ``order`` option reads besides the matrix and entry keys."""
    return ("dissim_rankings",) if isinstance(order, str) and order == "dissim_rankings" else ()


def _order_positions(order, rdm):
    """Entry positions to show, in order."""
    n = len(rdm.entry_keys)
    if order is None:
        return list(range(n))
    if isinstance(order, str) and order == "dissim_rankings":
        ranked = [int(i) for i in rdm.row["dissim_rankings"]]
        if any(not 0 <= i < n for i in ranked) or len(set(ranked)) != len(ranked):
            expected = f"an RDM whose dissim_rankings are distinct entry positions (0 to {n - 1})"
            raise fail("rdm_df", expected, tuple(ranked))
        return ranked + [i for i in range(n) if i not in set(ranked)]
    if isinstance(order, str):
        raise fail("order", "None, 'dissim_rankings' or a list of entry keys", order)
    lookup = _EntryIndex(rdm.entry_keys)
    positions = [lookup(key, "order") for key in order]
    if len(set(positions)) != len(positions):
        raise fail("order", "a list naming each entry at most once", list(order))
    return positions


def _draw_rdm(ax, rdm, positions, labels, **imshow_opts):
    """Draw the reordered matrix in ``ax``; return the image artist."""
    image = ax.imshow(
        rdm.matrix[np.ix_(positions, positions)], interpolation="nearest", **imshow_opts
    )
    if labels:
        texts = [_entry_text(rdm.entry_keys[i]) for i in positions]
        ticks = np.arange(len(positions))
        ax.set_xticks(ticks, texts, rotation=90)
        ax.set_yticks(ticks, texts)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    return image


@public
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
        ``entry_keys`` columns). NaN cells are left blank; a matrix of NaN
        only is refused.
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

    Raises
    ------
    InvalidInputError
        If ``rdm_df`` holds no RDM or several, lacks a column it needs, or
        its matrix is not square with one row per entry or has no defined
        (finite) dissimilarity; if ``order`` names a key that is not an
        entry, or an entry twice.

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
    rdm = _read_rdm(rdm_df, needed=_order_columns(order))
    positions = _order_positions(order, rdm)
    if ax is None:
        _, ax = plt.subplots(layout="constrained")
    image = _draw_rdm(ax, rdm, positions, labels, cmap=cmap, vmin=vmin, vmax=vmax)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=rdm.row.get("dissim_metric", None))
    if title is not None:
        ax.set_title(title)
    return ax


@public
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

    Raises
    ------
    InvalidInputError
        If ``rdm_df`` is empty or lacks a column it needs (``col`` included),
        or a row's matrix is not square with one row per entry or has no
        defined (finite) dissimilarity (the message names the row).

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
    needed = [*_PLOTTED_COLUMNS, *_order_columns(order)]
    check_columns(rdm_df, needed, "rdm_df")
    if rdm_df.empty:
        raise fail("rdm_df", "an RDM frame with at least one row", "0 rows", raw=True)
    title_cols = _varying_columns(rdm_df) if col is None else _as_columns(col)
    check_columns(rdm_df, title_cols, "rdm_df")
    rdms = [
        _read_rdm(rdm_df.iloc[[i]], needed, where=f" in row {label!r}")
        for i, label in enumerate(rdm_df.index)
    ]
    finite = np.concatenate([rdm.matrix[np.isfinite(rdm.matrix)] for rdm in rdms])
    vmin = finite.min() if vmin is None else vmin
    vmax = finite.max() if vmax is None else vmax
    fig, axes = _panel_grid(len(rdms), col_wrap, height)
    for ax, rdm in zip(axes, rdms):
        positions = _order_positions(order, rdm)
        image = _draw_rdm(ax, rdm, positions, labels, cmap=cmap, vmin=vmin, vmax=vmax)
        ax.set_title(", ".join(str(rdm.row[c]) for c in title_cols))
    metrics = set(rdm_df["dissim_metric"]) if "dissim_metric" in rdm_df.columns else set()
    fig.colorbar(image, ax=list(axes), label=metrics.pop() if len(metrics) == 1 else None)
    return fig


def _as_columns(col):
    return [col] if isinstance(col, str) else list(col)


def _panel_grid(n_panels, col_wrap, height):
    """A figure with ``n_panels`` axes in rows of ``col_wrap`` (unused cells removed)."""
    n_cols = math.ceil(math.sqrt(n_panels)) if col_wrap is None else check_int(
        col_wrap, "col_wrap", minimum=1
    )
    n_rows = math.ceil(n_panels / n_cols)
    fig, axes = plt.subplots(
        n_rows, n_cols, figsize=(height * n_cols + 1.0, height * n_rows),
        squeeze=False, layout="constrained",
    )
    axes = axes.ravel()
    for ax in axes[n_panels:]:
        ax.remove()
    return fig, axes[:n_panels]


def _profile_axis(scores, x):
    """The x column of a score profile: as given, else the target's time, else layer_num."""
    if x is None:
        x = "target_time" if "target_time" in scores.columns else "layer_num"
    check_columns(scores, [x, "score"], "scores")
    return x


def _profile_lines(scores, x, hue):
    """One sorted frame per line; two rows at one x of one line are an error."""
    lines = [(None, scores)] if hue is None else list(scores.groupby(hue, sort=False))
    for name, line in lines:
        repeated = line[x].duplicated()
        if repeated.any():
            varying = [c for c in _varying_columns(line) if c not in (x, "score")]
            raise fail("scores", f"one row per {x!r} for each line (filter the frame, or "
                       "pass hue= a column that tells the rows apart)",
                       f"{int(repeated.sum())} repeated {x!r} values in line {name!r}; "
                       f"columns that vary: {varying}", raw=True)
    return [(name, line.sort_values(x)) for name, line in lines]


def _draw_ceiling(ax, scores, x):
    """The noise-ceiling band (per x where it varies, e.g. over time)."""
    if not {"noise_ceiling_lower", "noise_ceiling_upper"} <= set(scores.columns):
        return
    ceiling = scores.groupby(x)[["noise_ceiling_lower", "noise_ceiling_upper"]].first()
    if ceiling.isna().all().all():
        return
    if len(ceiling.drop_duplicates()) == 1:
        lower, upper = ceiling.iloc[0]
        ax.axhspan(lower, upper, color="0.85", zorder=0, label="noise ceiling")
    else:
        ax.fill_between(ceiling.index, ceiling["noise_ceiling_lower"],
                        ceiling["noise_ceiling_upper"], color="0.85", zorder=0,
                        label="noise ceiling")


def _line_band(line):
    """The uncertainty band of a line: bootstrap CI, else the SEM over subjects."""
    if {"score_ci_low", "score_ci_high"} <= set(line.columns):
        return line["score_ci_low"], line["score_ci_high"]
    if "score_sem" in line.columns:
        return line["score"] - line["score_sem"], line["score"] + line["score_sem"]
    return None


@public
def plot_score_profile(scores, x=None, hue="model", alpha=0.05, ax=None):
    """Score against layer (or time): a line per model, uncertainty and noise-ceiling bands.

    Parameters
    ----------
    scores : pandas.DataFrame
        Rows of :func:`~pytorch_feature_analysis.compare_to_targets` for one
        target (or one line per ``hue`` value).
    x : str, optional
        The column along the x axis: ``'target_time'`` when the targets have a
        ``time`` label (e.g. MEG), else ``'layer_num'`` (ticks labelled with
        the layer names).
    hue : str or None, default 'model'
        The column that gives one line per value (e.g. ``'target_layer'`` to
        draw several regions against time); None for one line.
    alpha : float, default 0.05
        Rows with ``p_value < alpha`` (when the frame has permutation p
        values) get a mark under their line.
    ax : matplotlib.axes.Axes, optional
        Where to draw (a new figure when omitted).

    Returns
    -------
    matplotlib.axes.Axes
        The bands are the bootstrap interval (``score_ci_low`` to
        ``score_ci_high``) when present, else the mean's standard error over
        subjects; the grey band is the noise ceiling.

    Examples
    --------
    >>> import pandas as pd
    >>> scores = pd.DataFrame({'model': 'net', 'layer': ['conv1', 'fc1'],
    ...                        'layer_num': [1, 2], 'score': [0.2, 0.5],
    ...                        'noise_ceiling_lower': 0.6, 'noise_ceiling_upper': 0.7})
    >>> ax = plot_score_profile(scores)
    >>> [label.get_text() for label in ax.get_xticklabels()]
    ['conv1', 'fc1']
    """
    x = _profile_axis(scores, x)
    if hue is not None:
        check_columns(scores, [hue], "scores")
    lines = _profile_lines(scores, x, hue)
    ax = plt.subplots(figsize=(6, 4))[1] if ax is None else ax
    _draw_ceiling(ax, scores, x)
    bottom = min(0.0, float(np.nanmin(scores["score"])))
    for step, (name, line) in enumerate(lines):
        drawn = ax.plot(line[x], line["score"], marker="o", label=name)[0]
        band = _line_band(line)
        if band is not None:
            ax.fill_between(line[x], *band, color=drawn.get_color(), alpha=0.2)
        if "p_value" in line.columns:
            marked = line[line["p_value"] < alpha]
            ax.plot(marked[x], [bottom - 0.04 * (step + 1)] * len(marked), linestyle="none",
                    marker="*", color=drawn.get_color())
    if x == "layer_num" and "layer" in scores.columns:
        ticks = scores.drop_duplicates("layer_num").sort_values("layer_num")
        ax.set_xticks(ticks["layer_num"], ticks["layer"], rotation=45, ha="right")
    ax.set_xlabel("time" if x == "target_time" else ("layer" if x == "layer_num" else x))
    ax.set_ylabel(f"score ({scores['method'].iloc[0]})" if "method" in scores else "score")
    if hue is not None or "noise_ceiling_lower" in scores.columns:
        ax.legend(frameon=False, fontsize="small")
    return ax
