"""Assertions and hypothesis strategies for RDM frames, to use in your own tests.

As :mod:`xarray.testing` does for its objects: :func:`assert_frames_identical`
compares two frames value by value with their Python types (the comparison a
frame saved and loaded back must pass), :func:`assert_rdm_frame` checks that a
frame keeps the RDM-frame contract, and :func:`rdm_frames` draws RDM-like
frames for property-based tests (it needs `hypothesis
<https://hypothesis.readthedocs.io>`_, imported only when it is called).

These names live in ``pfa.testing`` only, not in the top-level namespace.

Examples
--------
>>> import numpy as np, pandas as pd
>>> import pytorch_feature_analysis as pfa
>>> left = pd.DataFrame({'perm': ['orig_data', 1], 'matrix': [np.zeros((2, 2))] * 2})
>>> right = left.assign(perm=['orig_data', '1'])
>>> pfa.testing.assert_frames_identical(left, right)
Traceback (most recent call last):
...
AssertionError: Frames differ in column 'perm', row 1 (index label 1): left has 1 (int), right has '1' (str).
"""

import math
import numbers

import numpy as np
import pandas as pd

from ._contract import RDM_COLUMNS, REQUIRED_COLUMNS, dissim_rankings
from ._validation import check_bool, check_int, check_number, describe, fail, public

__all__ = ["assert_frames_identical", "assert_rdm_frame", "rdm_frames"]

# Contract columns that hold text.
_TEXT_COLUMNS = ("df_name", "model", "layer", "dissim_metric", "activation_type", "kernel_set_name")

# Relative tolerance of the symmetry check of assert_rdm_frame.
_SYMMETRY_RTOL = 1e-9


# ---------------------------------------------------------------------------
# assert_frames_identical
# ---------------------------------------------------------------------------


@public
def assert_frames_identical(left, right, *, check_column_order=True, atol=0.0):
    """Assert that two frames hold the same values, with the same Python types.

    Stricter than :func:`pandas.testing.assert_frame_equal` where RDM frames
    need it, and looser where they do not: cells are compared one by one, so
    tuples must stay tuples (not lists), ``perm`` keeps ``'orig_data'`` apart
    from ints, dicts are compared key by key, and matrices are equal as
    float64 arrays of one shape, NaN equal to NaN. numpy scalars count as the
    Python number they hold.

    Parameters
    ----------
    left, right : pandas.DataFrame
        The frames to compare (not modified).
    check_column_order : bool, default True
        Whether the columns must come in the same order (they must always be
        the same columns).
    atol : float, default 0.0
        Absolute tolerance for floats and the cells of arrays; ``0.0`` asks for
        equal values.

    Raises
    ------
    AssertionError
        At the first difference, naming it: the columns, the number of rows,
        the index, a column's dtype, or a cell (its column, row and index
        label, both values and their types, and where inside a nested value
        they differ).
    InvalidInputError
        If ``left`` or ``right`` is not a DataFrame or ``atol`` is not a
        number >= 0.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> frame = pd.DataFrame({'layer_label': [('conv1', 1)],
    ...                       'matrix': [np.array([[0.0, np.nan], [np.nan, 0.0]])]})
    >>> pfa.testing.assert_frames_identical(frame, frame.copy())
    >>> pfa.testing.assert_frames_identical(frame, frame.assign(layer_label=[['conv1', 1]]))
    Traceback (most recent call last):
    ...
    AssertionError: Frames differ in column 'layer_label', row 0 (index label 0): left has ('conv1', 1) (tuple), right has ['conv1', 1] (list).
    """
    _check_frame(left, "left")
    _check_frame(right, "right")
    check_column_order = check_bool(check_column_order, "check_column_order")
    atol = check_number(atol, "atol", minimum=0)
    _compare_columns(left, right, check_column_order)
    if len(left) != len(right):
        raise AssertionError(
            f"Frames differ in length: left has {len(left)} rows, right {len(right)}."
        )
    if not left.index.equals(right.index):
        raise AssertionError(
            f"Frames differ in their index: left {describe(list(left.index))}, "
            f"right {describe(list(right.index))}."
        )
    for column in left.columns:
        for row, (label, a, b) in enumerate(zip(left.index, left[column], right[column])):
            path = _first_difference(a, b, atol)
            if path is not None:
                raise AssertionError(_cell_message(column, row, label, a, b, path))
        if left[column].dtype != right[column].dtype:
            raise AssertionError(
                f"Frames differ in the dtype of column {column!r}: left {left[column].dtype}, "
                f"right {right[column].dtype}."
            )


def _check_frame(frame, param):
    if not isinstance(frame, pd.DataFrame):
        raise fail(param, "a pandas DataFrame", type(frame).__name__, raw=True)


def _compare_columns(left, right, check_column_order):
    only_left = [c for c in left.columns if c not in right.columns]
    only_right = [c for c in right.columns if c not in left.columns]
    if only_left or only_right:
        raise AssertionError(
            f"Frames differ in their columns: only left has {only_left}, only right has "
            f"{only_right}."
        )
    if check_column_order and list(left.columns) != list(right.columns):
        raise AssertionError(
            f"Frames differ in the order of their columns: left {list(left.columns)}, "
            f"right {list(right.columns)} (pass check_column_order=False to ignore it)."
        )


def _plain(value):
    """A numpy scalar as the Python value it holds; anything else unchanged."""
    return value.item() if isinstance(value, np.generic) else value


def _first_difference(a, b, atol, path=()):
    """The path (``()`` for the values themselves) to where ``a`` and ``b`` differ, or None."""
    a, b = _plain(a), _plain(b)
    if a is b:
        return None
    if type(a) is not type(b):
        return path
    if isinstance(a, np.ndarray):
        return None if _arrays_equal(a, b, atol) else path
    if isinstance(a, (tuple, list)):
        if len(a) != len(b):
            return path
        inner = (_first_difference(x, y, atol, (*path, i)) for i, (x, y) in enumerate(zip(a, b)))
        return next((where for where in inner if where is not None), None)
    if isinstance(a, dict):
        if a.keys() != b.keys():
            return path
        inner = (_first_difference(a[key], b[key], atol, (*path, key)) for key in a)
        return next((where for where in inner if where is not None), None)
    if isinstance(a, float):
        same = (math.isnan(a) and math.isnan(b)) or a == b or abs(a - b) <= atol
        return None if same else path
    return None if _equal(a, b) else path


def _equal(a, b):
    try:
        return bool(a == b)
    except (TypeError, ValueError):
        return False


def _arrays_equal(a, b, atol):
    """Equal shapes and values as float64 (NaN equal to NaN); other arrays element-wise."""
    if a.shape != b.shape:
        return False
    try:
        x, y = a.astype(np.float64), b.astype(np.float64)
    except (TypeError, ValueError):
        return a.dtype == b.dtype and bool(np.array_equal(a, b))
    with np.errstate(invalid="ignore"):
        close = (x == y) | (np.abs(x - y) <= atol) | (np.isnan(x) & np.isnan(y))
    return bool(close.all())


def _cell_message(column, row, label, a, b, path):
    inside = f", at {''.join(f'[{step!r}]' for step in path)}" if path else ""
    return (
        f"Frames differ in column {column!r}, row {row} (index label {label!r}){inside}: "
        f"left has {_shown(_at(a, path))}, right has {_shown(_at(b, path))}."
    )


def _at(value, path):
    """The part of a nested ``value`` that ``path`` leads to."""
    for step in path:
        value = _plain(value)[step]
    return value


def _shown(value):
    """``value`` with its type; an array with its shape and dtype."""
    if isinstance(value, np.ndarray):
        values = describe(value.tolist(), width=200)
        return f"an array of shape {value.shape} and dtype {value.dtype}: {values}"
    return f"{describe(_plain(value), width=200)} ({type(_plain(value)).__name__})"


# ---------------------------------------------------------------------------
# assert_rdm_frame
# ---------------------------------------------------------------------------


@public
def assert_rdm_frame(frame, *, first_order=False):
    """Assert that a frame keeps the RDM-frame contract.

    Checks the columns every frame of RDMs has (``matrix``, ``entry_keys``,
    ``entry_labels``; with ``first_order=True`` every column of a frame from
    ``get_rdms``) and, row by row, the contract's types:

    - ``matrix``: a float64 ``numpy.ndarray``, square, symmetric (to a
      relative 1e-9, NaN where its mirror is NaN), its diagonal 0 or NaN;
    - ``entry_keys``: a tuple of tuples, one per matrix row, all different;
      ``entry_labels``: a tuple of dicts, one per matrix row;
    - where present: ``dissim_rankings`` a tuple of distinct entry positions
      (every entry unless the matrix holds NaN, where the greedy order
      stops); ``perm`` ``'orig_data'`` or an int; ``perm_scramble`` a list
      that permutes the entries (the identity for ``'orig_data'``);
      ``kernel_inds`` a tuple of ints; ``layer_label`` the tuple
      ``(layer, layer_num)``; ``layer_num`` an int; the text columns
      (``model``, ``layer``, ...) str.

    Parameters
    ----------
    frame : pandas.DataFrame
        The frame to check (not modified).
    first_order : bool, default False
        Require every column of a first-order frame (the design's table).

    Raises
    ------
    AssertionError
        At the first break of the contract: a missing column, or the row,
        column and value that break it.
    InvalidInputError
        If ``frame`` is not a DataFrame.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> frame = pd.DataFrame({'matrix': [np.array([[0.0, 1.0], [2.0, 0.0]])],
    ...                       'entry_keys': [(('a',), ('b',))],
    ...                       'entry_labels': [({'v': 'a'}, {'v': 'b'})]})
    >>> pfa.testing.assert_rdm_frame(frame)
    Traceback (most recent call last):
    ...
    AssertionError: Row 0 (index label 0) breaks the RDM-frame contract: its matrix must be symmetric; got matrix[0, 1] = 1 but matrix[1, 0] = 2.
    """
    _check_frame(frame, "frame")
    first_order = check_bool(first_order, "first_order")
    required = RDM_COLUMNS if first_order else REQUIRED_COLUMNS
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise AssertionError(
            f"The frame lacks the RDM-frame column(s) {missing}; it has {list(frame.columns)}."
        )
    for row, (label, cells) in enumerate(frame.iterrows()):
        problem = _matrix_problem(cells["matrix"]) or _row_problem(cells)
        if problem:
            raise AssertionError(
                f"Row {row} (index label {label!r}) breaks the RDM-frame contract: {problem}."
            )


def _matrix_problem(matrix):
    """What is wrong with a ``matrix`` cell, or None."""
    if not isinstance(matrix, np.ndarray) or matrix.dtype != np.float64:
        got = type(matrix).__name__ if not isinstance(matrix, np.ndarray) else matrix.dtype
        return f"its matrix must be a float64 numpy array; got {got}"
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        return f"its matrix must be square; got shape {matrix.shape}"
    mirrored = np.isclose(matrix, matrix.T, rtol=_SYMMETRY_RTOL, atol=0.0, equal_nan=True)
    if not mirrored.all():
        i, j = np.argwhere(~mirrored)[0]
        return (
            f"its matrix must be symmetric; got matrix[{i}, {j}] = {matrix[i, j]:.6g} but "
            f"matrix[{j}, {i}] = {matrix[j, i]:.6g}"
        )
    diagonal = np.diagonal(matrix)
    bad = np.flatnonzero(~((diagonal == 0) | np.isnan(diagonal)))
    if bad.size:
        i = bad[0]
        return f"its matrix must be 0 or NaN on the diagonal; got {diagonal[i]:.6g} at [{i}, {i}]"
    return None


def _row_problem(cells):
    """What is wrong with the other contract columns of a row, or None."""
    n = cells["matrix"].shape[0]
    checks = [
        ("entry_keys", lambda v: _is_tuple_of(v, tuple) and len(v) == n and _distinct(v),
         f"a tuple of {n} different tuples (one per matrix row)"),
        ("entry_labels", lambda v: _is_tuple_of(v, dict) and len(v) == n,
         f"a tuple of {n} dicts (one per matrix row)"),
        ("dissim_rankings", lambda v: _is_ranking(v, cells["matrix"]),
         f"a tuple of distinct entry positions (0 to {n - 1}), all of them unless the "
         "matrix holds NaN"),
        ("perm", lambda v: (isinstance(v, str) and v == "orig_data") or _is_int(v),
         "'orig_data' or an int"),
        ("perm_scramble", lambda v: _is_scramble(v, n, cells.get("perm")),
         f"a list permuting range({n}) (the identity for 'orig_data')"),
        ("kernel_inds", lambda v: _is_tuple_of(v, int), "a tuple of ints"),
        ("layer_num", _is_int, "an int"),
        ("layer_label", lambda v: _is_layer_label(v, cells), "the tuple (layer, layer_num)"),
        *[(column, lambda v: isinstance(v, str), "a str") for column in _TEXT_COLUMNS],
    ]
    for column, holds, expected in checks:
        if column in cells.index and not holds(cells[column]):
            return f"its {column} must be {expected}; got {describe(cells[column])}"
    return None


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _distinct(values):
    try:
        return len(set(values)) == len(values)
    except TypeError:
        return False


def _is_tuple_of(value, kind):
    check = _is_int if kind is int else (lambda item: isinstance(item, kind))
    return isinstance(value, tuple) and all(check(item) for item in value)


def _is_ranking(value, matrix):
    n = matrix.shape[0]
    if not _is_tuple_of(value, int) or not _distinct(value):
        return False
    complete = len(value) == n or np.isnan(matrix).any()
    return complete and all(0 <= i < n for i in value)


def _is_scramble(value, n, perm):
    if not isinstance(value, list) or not all(_is_int(i) for i in value):
        return False
    if sorted(value) != list(range(n)):
        return False
    return perm != "orig_data" or value == list(range(n))


def _is_layer_label(value, cells):
    expected = tuple(cells[c] for c in ("layer", "layer_num") if c in cells.index)
    return isinstance(value, tuple) and len(value) == 2 and (len(expected) < 2 or value == expected)


# ---------------------------------------------------------------------------
# rdm_frames
# ---------------------------------------------------------------------------


@public
def rdm_frames(min_rows=1, max_rows=4, max_entries=5):
    """A hypothesis strategy drawing first-order RDM frames.

    Every frame has the contract's first-order columns (in the design's
    order) and one image-set label column, ``obj``; its rows share one set of
    2 to ``max_entries`` entries (keys of one or two entry variables). Each
    row draws its own metadata (text, including non-ASCII, for the text
    columns), a symmetric float64 matrix with a zero diagonal whose other
    cells are non-negative floats or, now and then, NaN in mirrored pairs,
    ``perm`` as ``'orig_data'`` (identity ``perm_scramble``) or an int
    (a drawn permutation), and the ``dissim_rankings`` that ``get_rdms``
    would store. Frames drawn pass :func:`assert_rdm_frame` with
    ``first_order=True``.

    Parameters
    ----------
    min_rows, max_rows : int, default 1 and 4
        Bounds on the number of rows (RDMs).
    max_entries : int, default 5
        The most entries an RDM may have (at least 2).

    Returns
    -------
    hypothesis.strategies.SearchStrategy
        Draws :class:`pandas.DataFrame` objects with a ``RangeIndex``.

    Raises
    ------
    InvalidInputError
        If a bound is not an int, ``min_rows`` < 0, ``max_rows`` <
        ``min_rows`` or ``max_entries`` < 2.
    ModuleNotFoundError
        If hypothesis is not installed.

    Examples
    --------
    >>> from hypothesis import given, settings
    >>> import pytorch_feature_analysis as pfa
    >>> @settings(max_examples=5, deadline=None)
    ... @given(pfa.testing.rdm_frames(max_rows=3))
    ... def test_frames_keep_the_contract(frame):
    ...     pfa.testing.assert_rdm_frame(frame, first_order=True)
    >>> test_frames_keep_the_contract()
    """
    from hypothesis import strategies as st

    min_rows = check_int(min_rows, "min_rows", minimum=0)
    max_rows = check_int(max_rows, "max_rows", minimum=max(min_rows, 1))
    max_entries = check_int(max_entries, "max_entries", minimum=2)

    @st.composite
    def frames(draw):
        entry_keys, entry_labels = draw(_entries(st, max_entries))
        n_rows = draw(st.integers(min_rows, max_rows))
        rows = [draw(_row(st, entry_keys, entry_labels)) for _ in range(n_rows)]
        return pd.DataFrame(rows, columns=[*RDM_COLUMNS, "obj"])

    return frames()


def _names(st):
    """Text for names: any characters but surrogates, 1 to 8 of them."""
    return st.text(st.characters(codec="utf-8"), min_size=1, max_size=8)


def _entries(st, max_entries):
    """Shared ``(entry_keys, entry_labels)`` of 2 to ``max_entries`` entries."""

    @st.composite
    def entries(draw):
        variables = draw(st.lists(_names(st), min_size=1, max_size=2, unique=True))
        keys = draw(st.lists(
            st.tuples(*[_names(st) for _ in variables]), min_size=2, max_size=max_entries,
            unique=True,
        ))
        return tuple(keys), tuple(dict(zip(variables, key)) for key in keys)

    return entries()


def _matrix(st, n):
    """A symmetric float64 matrix with a zero diagonal; other cells >= 0 or NaN."""
    value = st.floats(0.0, 1e6, allow_nan=False, allow_subnormal=False)
    cell = st.tuples(value, st.integers(0, 7)).map(lambda drawn: drawn[0] if drawn[1] else math.nan)
    upper = st.lists(cell, min_size=n * (n - 1) // 2, max_size=n * (n - 1) // 2)

    def build(values):
        matrix = np.zeros((n, n), dtype=np.float64)
        matrix[np.triu_indices(n, k=1)] = values
        return matrix + matrix.T

    return upper.map(build)


def _row(st, entry_keys, entry_labels):
    """One row of a first-order frame over the given entries."""
    n = len(entry_keys)

    @st.composite
    def row(draw):
        layer, layer_num = draw(_names(st)), draw(st.integers(0, 60))
        matrix = draw(_matrix(st, n))
        perm = draw(st.one_of(st.just("orig_data"), st.integers(1, 1000)))
        scramble = list(range(n)) if perm == "orig_data" else draw(st.permutations(range(n)))
        return {
            "df_name": draw(_names(st)),
            "model": draw(st.one_of(st.sampled_from(["alexnet", "vgg16", "cornet_s"]), _names(st))),
            "layer": layer,
            "layer_num": layer_num,
            "layer_label": (layer, layer_num),
            "dissim_metric": draw(st.sampled_from(["corr", "euclidean_distance", "cosine"])),
            "activation_type": draw(st.sampled_from(["unit_level", "feature_means"])),
            "matrix": matrix,
            "entry_keys": entry_keys,
            "entry_labels": entry_labels,
            "kernel_set_name": draw(st.one_of(st.just("all"), _names(st))),
            "kernel_inds": tuple(draw(st.lists(st.integers(0, 511), max_size=4))),
            "perm": perm,
            "perm_scramble": [int(i) for i in scramble],
            "dissim_rankings": dissim_rankings(matrix),
            "obj": draw(_names(st)),
        }

    return row()
