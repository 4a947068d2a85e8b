"""Dissimilarity metrics between activation patterns, and comparisons of RDMs.

An RDM is computed from a patterns matrix (one row per stimulus, one column per
unit) with a single matrix product: every built-in metric is derived from one
Gram matrix, and several metrics asked for at once share their work.

Built-in metrics (:data:`METRIC_NAMES`):

* ``'corr'``: 1 - Pearson correlation;
* ``'euclidean_distance'``: Euclidean distance;
* ``'cosine'``: 1 - cosine similarity;
* ``'spearman'``: 1 - Spearman correlation (average ranks for ties);
* ``'sq_euclidean'``: squared Euclidean distance;
* ``'manhattan'``: city-block distance.

A metric may also be given as ``(name, func)``, where ``func(x, y)`` takes two
1-D patterns and returns a number (called once per pair of stimuli), or as
``(name, func, 'matrix')``, where ``func(patterns)`` returns the whole
``n x n`` matrix at once.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
from scipy import stats
from scipy.spatial import distance

__all__ = [
    "METRIC_NAMES",
    "COMPARISON_METHODS",
    "Metric",
    "resolve_metrics",
    "compute_rdms",
    "pairwise_dissimilarities",
    "corr_dissim",
    "get_upper_triang",
    "correlate_upper_triang",
    "get_array_ranks",
    "compare_rdms",
]

METRIC_NAMES = ("corr", "euclidean_distance", "cosine", "spearman", "sq_euclidean", "manhattan")
COMPARISON_METHODS = ("pearson", "spearman", "kendall_tau_a", "cosine")

_METRIC_KINDS = ("builtin", "pairwise", "matrix")

# Pairs whose squared distance from the Gram matrix is below this fraction of
# their squared norms are recomputed from their difference (cancellation).
_REFINE_FRACTION = 1e-6

# Row norms below this may have lost precision to underflow when squared.
_SMALLEST_SAFE_NORM = 1e-150

# Number of float64 values held at once when working in chunks (32 MiB).
_CHUNK_VALUES = 2**22


@dataclass(frozen=True)
class Metric:
    """A dissimilarity metric, ready for :func:`compute_rdms`.

    Attributes
    ----------
    name : str
        The name stored in the ``dissim_metric`` column.
    func : callable or None
        The user's function; ``None`` for a built-in metric.
    kind : {'builtin', 'pairwise', 'matrix'}
        How ``func`` is called: on two 1-D patterns (``'pairwise'``) or on the
        whole ``(n, p)`` patterns matrix (``'matrix'``).
    """

    name: str
    func: Callable | None = None
    kind: str = "builtin"


def _is_single_spec(spec: Any) -> bool:
    if isinstance(spec, (str, Metric)):
        return True
    return (
        isinstance(spec, tuple)
        and len(spec) in (2, 3)
        and isinstance(spec[0], str)
        and callable(spec[1])
    )


def _resolve_one(spec: Any, param_name: str, func_name: str) -> Metric:
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec not in METRIC_NAMES:
            raise ValueError(
                f"The {param_name!r} parameter of {func_name} must name metrics among "
                f"{METRIC_NAMES} or give (name, func) pairs; got {spec!r} instead."
            )
        return Metric(spec)
    if _is_single_spec(spec):
        name, func = spec[0], spec[1]
        kind = spec[2] if len(spec) == 3 else "pairwise"
        if kind not in ("pairwise", "matrix"):
            raise ValueError(
                f"The {param_name!r} parameter of {func_name} takes (name, func, kind) "
                f"triples with kind 'pairwise' or 'matrix'; got kind {kind!r} for "
                f"metric {name!r} instead."
            )
        return Metric(name, func, kind)
    raise TypeError(
        f"The {param_name!r} parameter of {func_name} must hold metric names from "
        f"{METRIC_NAMES}, (name, func) pairs or (name, func, 'matrix') triples; "
        f"got {spec!r} instead."
    )


def resolve_metrics(
    metrics: Any, *, param_name: str = "metrics", func_name: str = "resolve_metrics"
) -> list[Metric]:
    """Check metric specifications and turn them into :class:`Metric` objects.

    Parameters
    ----------
    metrics : str, tuple or list
        One specification or a list of them. A specification is a name from
        :data:`METRIC_NAMES`, a ``(name, func)`` pair where ``func(x, y)``
        returns the dissimilarity of two 1-D patterns, or a
        ``(name, func, 'matrix')`` triple where ``func(patterns)`` returns the
        ``n x n`` matrix for an ``(n, p)`` patterns matrix.
    param_name, func_name : str, optional
        The parameter and function named in error messages.

    Returns
    -------
    list of Metric
        One per specification, in order.

    Raises
    ------
    ValueError
        For an unknown name, an empty list or a name given twice.
    TypeError
        For a specification of another form.

    Examples
    --------
    >>> [m.name for m in resolve_metrics(['corr', ('l1', lambda x, y: abs(x - y).sum())])]
    ['corr', 'l1']
    """
    specs = [metrics] if _is_single_spec(metrics) else metrics
    try:
        specs = list(specs)
    except TypeError:
        specs = [specs]
    if not specs:
        raise ValueError(
            f"The {param_name!r} parameter of {func_name} must hold at least one "
            f"metric; got an empty list instead."
        )
    resolved = [_resolve_one(spec, param_name, func_name) for spec in specs]
    names = [metric.name for metric in resolved]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(
            f"The {param_name!r} parameter of {func_name} must name each metric once; "
            f"got {repeated} more than once instead."
        )
    return resolved


def _as_patterns(patterns: Any, func_name: str) -> np.ndarray:
    if not isinstance(patterns, np.ndarray):
        raise TypeError(
            f"The 'patterns' parameter of {func_name} must be a numpy array of shape "
            f"(n_stimuli, n_features); got {type(patterns).__name__} instead."
        )
    if patterns.ndim != 2 or patterns.shape[1] == 0:
        raise ValueError(
            f"The 'patterns' parameter of {func_name} must be a 2-D array of shape "
            f"(n_stimuli, n_features) with at least one feature; got shape "
            f"{patterns.shape} instead."
        )
    if not (np.issubdtype(patterns.dtype, np.number) or patterns.dtype == bool):
        raise TypeError(
            f"The 'patterns' parameter of {func_name} must hold numbers; got dtype "
            f"{patterns.dtype} instead."
        )
    if np.issubdtype(patterns.dtype, np.complexfloating):
        raise TypeError(
            f"The 'patterns' parameter of {func_name} must hold real numbers; got "
            f"dtype {patterns.dtype} instead."
        )
    return np.asarray(patterns, dtype=np.float64)


def _symmetric_from_upper(upper: np.ndarray, n: int) -> np.ndarray:
    """An exactly symmetric n x n matrix with a zero diagonal from its upper triangle."""
    rows, cols = np.triu_indices(n, 1)
    matrix = np.zeros((n, n))
    matrix[rows, cols] = upper
    matrix[cols, rows] = upper
    return matrix


def _squared_distances(rows: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances between rows, from one Gram matrix.

    Pairs that are close relative to their norms lose precision in the Gram
    formula; they are recomputed from their differences, in chunks.
    """
    n, p = rows.shape
    sq_norms = np.einsum("ij,ij->i", rows, rows)
    gram = np.dot(rows, rows.T)
    first, second = np.triu_indices(n, 1)
    scale = sq_norms[first] + sq_norms[second]
    upper = scale - 2.0 * gram[first, second]
    del gram
    suspect = np.flatnonzero(upper <= _REFINE_FRACTION * scale)
    chunk = max(1, _CHUNK_VALUES // p)
    for start in range(0, suspect.size, chunk):
        pairs = suspect[start : start + chunk]
        diff = rows[first[pairs]] - rows[second[pairs]]
        upper[pairs] = np.einsum("ij,ij->i", diff, diff)
    np.maximum(upper, 0.0, out=upper)
    return _symmetric_from_upper(upper, n)


def _constant_rows(patterns: np.ndarray) -> np.ndarray:
    return np.all(patterns == patterns[:, :1], axis=1)


def _mark_degenerate(
    matrix: np.ndarray, degenerate: np.ndarray, identity_values: np.ndarray
) -> np.ndarray:
    """Set NaN for pairs involving a degenerate pattern, 0 for identical ones."""
    if degenerate.any():
        matrix[degenerate, :] = np.nan
        matrix[:, degenerate] = np.nan
        index = np.flatnonzero(degenerate)
        values = identity_values[index]
        same = values[:, None] == values[None, :]
        matrix[np.ix_(index, index)] = np.where(same, 0.0, np.nan)
        np.fill_diagonal(matrix, 0.0)
    return matrix


def _normalize_rows(rows: np.ndarray, degenerate: np.ndarray) -> np.ndarray:
    """Scale each row of a fresh array to unit length in place; degenerate rows become 0.

    Rows are first divided by their largest magnitude, so that tiny or huge
    values neither underflow nor overflow when squared.
    """
    norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    safe = np.isfinite(norms) & (norms > _SMALLEST_SAFE_NORM)
    if not np.all(safe | degenerate):  # squares would under- or overflow: rescale first
        largest = np.maximum(rows.max(axis=1), -rows.min(axis=1))
        largest[degenerate | (largest == 0)] = np.inf
        rows /= largest[:, None]
        norms = np.sqrt(np.einsum("ij,ij->i", rows, rows))
    norms[degenerate | (norms == 0)] = np.inf
    rows /= norms[:, None]
    return rows


def _correlation_distances(rows: np.ndarray, identity_values: np.ndarray) -> np.ndarray:
    """1 - Pearson r between rows, as half the squared distance of z-scored rows."""
    constant = _constant_rows(rows)
    unit = _normalize_rows(rows - rows.mean(axis=1, keepdims=True), constant)
    matrix = 0.5 * _squared_distances(unit)
    return _mark_degenerate(matrix, constant, identity_values)


def _cosine_distances(patterns: np.ndarray) -> np.ndarray:
    zero = ~np.any(patterns, axis=1)
    unit = _normalize_rows(patterns.copy(), zero)
    matrix = 0.5 * _squared_distances(unit)
    return _mark_degenerate(matrix, zero, np.zeros(len(patterns)))


def _centered_squared_distances(patterns: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances after removing the mean pattern (same distances)."""
    shift = patterns.mean(axis=0)
    if not np.all(np.isfinite(shift)):  # rare: average the finite patterns only
        finite = np.all(np.isfinite(patterns), axis=1)
        shift = patterns[finite].mean(axis=0) if finite.any() else np.zeros(patterns.shape[1])
    return _squared_distances(patterns - shift)


class _SharedWork:
    """Builds built-in RDMs for one patterns matrix, computing shared parts once."""

    def __init__(self, patterns: np.ndarray):
        self.patterns = patterns
        self._sq_distances: np.ndarray | None = None

    def squared_distances(self) -> np.ndarray:
        if self._sq_distances is None:
            self._sq_distances = _centered_squared_distances(self.patterns)
        return self._sq_distances

    def builtin(self, name: str) -> np.ndarray:
        patterns = self.patterns
        if name == "corr":
            return _correlation_distances(patterns, patterns[:, 0])
        if name == "spearman":
            ranks = stats.rankdata(patterns, axis=1)
            return _correlation_distances(ranks, patterns[:, 0])
        if name == "cosine":
            return _cosine_distances(patterns)
        if name == "euclidean_distance":
            return np.sqrt(self.squared_distances())
        if name == "sq_euclidean":
            return self.squared_distances().copy()
        if name == "manhattan":
            return distance.squareform(distance.pdist(patterns, "cityblock"))
        raise ValueError(f"Unknown built-in metric {name!r}; expected one of {METRIC_NAMES}.")


def _as_number(value: Any, metric_name: str) -> float:
    if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
        value = value.reshape(()).item()
    if isinstance(value, (numbers.Real, np.bool_)):
        return float(value)
    raise TypeError(
        f"The function of metric {metric_name!r} must return one number for two "
        f"patterns; got {type(value).__name__} ({value!r:.80}) instead."
    )


def _pairwise_rdm(patterns: np.ndarray, metric: Metric) -> np.ndarray:
    n = len(patterns)
    upper = np.empty(n * (n - 1) // 2)
    for k, (i, j) in enumerate(zip(*np.triu_indices(n, 1))):
        upper[k] = _as_number(metric.func(patterns[i], patterns[j]), metric.name)
    return _symmetric_from_upper(upper, n)


def _matrix_rdm(patterns: np.ndarray, metric: Metric) -> np.ndarray:
    n = len(patterns)
    result = metric.func(patterns)
    try:
        matrix = np.asarray(result, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"The function of metric {metric.name!r} must return an {n} x {n} array "
            f"of numbers; got {type(result).__name__} instead."
        ) from error
    if matrix.shape != (n, n):
        raise ValueError(
            f"The function of metric {metric.name!r} must return an {n} x {n} array for "
            f"{n} patterns; got shape {matrix.shape} instead."
        )
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-12, equal_nan=True):
        raise ValueError(
            f"The function of metric {metric.name!r} must return a symmetric matrix; "
            f"got a matrix that differs from its transpose instead."
        )
    return _symmetric_from_upper(matrix[np.triu_indices(n, 1)], n)


def compute_rdms(patterns: np.ndarray, metrics: Any) -> list[np.ndarray]:
    """Compute one RDM per metric from a patterns matrix.

    Parameters
    ----------
    patterns : numpy.ndarray, shape (n_stimuli, n_features)
        One activation pattern per row (any real dtype; computed in float64).
    metrics : str, tuple or list
        Metric specifications, see :func:`resolve_metrics`.

    Returns
    -------
    list of numpy.ndarray
        One float64 ``n x n`` matrix per metric, in order: exactly symmetric,
        with an exactly zero diagonal. ``'corr'``, ``'spearman'`` and
        ``'cosine'`` are NaN for a pair with a constant (for ``'cosine'``: an
        all-zero) pattern, unless the two patterns are identical (then 0), as
        the original library's ``corr_dissim``. A ``'matrix'`` function's
        result is checked for shape and symmetry and its diagonal set to 0.

    Examples
    --------
    >>> patterns = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [3.0, 0.0, 4.0]])
    >>> corr, euclid = compute_rdms(patterns, ['corr', 'euclidean_distance'])
    >>> float(corr[0, 1]), round(float(euclid[0, 1]) ** 2, 9)
    (0.0, 5.0)
    """
    resolved = resolve_metrics(metrics, param_name="metrics", func_name="compute_rdms")
    values = _as_patterns(patterns, "compute_rdms")
    readonly = values.view()
    readonly.flags.writeable = False
    shared = _SharedWork(readonly)
    rdms = []
    for metric in resolved:
        if metric.kind == "builtin":
            rdms.append(shared.builtin(metric.name))
        elif metric.kind == "pairwise":
            rdms.append(_pairwise_rdm(readonly, metric))
        else:
            rdms.append(_matrix_rdm(readonly, metric))
    return rdms


def pairwise_dissimilarities(patterns: np.ndarray, metric: Any = "corr") -> np.ndarray:
    """Compute the RDM of a patterns matrix for one metric.

    Parameters
    ----------
    patterns : numpy.ndarray, shape (n_stimuli, n_features)
        One activation pattern per row.
    metric : str or tuple, default 'corr'
        One metric specification, see :func:`resolve_metrics`.

    Returns
    -------
    numpy.ndarray
        The float64 ``n x n`` RDM (see :func:`compute_rdms`).

    Examples
    --------
    >>> pairwise_dissimilarities(np.array([[0.0, 0.0], [3.0, 4.0]]), 'euclidean_distance')
    array([[0., 5.],
           [5., 0.]])
    """
    if not _is_single_spec(metric):
        raise TypeError(
            f"The 'metric' parameter of pairwise_dissimilarities must be one metric "
            f"specification; got {metric!r} instead."
        )
    return compute_rdms(patterns, [metric])[0]


def corr_dissim(x: Any, y: Any) -> float:
    """1 - Pearson correlation of two patterns.

    0 for identical patterns (constant ones included), NaN when one pattern is
    constant and the other differs from it.

    Examples
    --------
    >>> round(corr_dissim(np.array([1.0, 2.0, 3.0]), np.array([3.0, 2.0, 1.0])), 9)
    2.0
    """
    x = np.ravel(np.asarray(x, dtype=np.float64))
    y = np.ravel(np.asarray(y, dtype=np.float64))
    if x.shape != y.shape:
        raise ValueError(
            f"The 'x' and 'y' parameters of corr_dissim must have the same length; got "
            f"{x.size} and {y.size} instead."
        )
    return float(compute_rdms(np.stack([x, y]), ["corr"])[0][0, 1])


def _square_matrix(matrix: Any, param_name: str, func_name: str) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise ValueError(
            f"The {param_name!r} parameter of {func_name} must be a square 2-D array; "
            f"got shape {array.shape} instead."
        )
    return array


def get_upper_triang(matrix: Any) -> np.ndarray:
    """The entries above the diagonal of a square matrix, row by row, as a 1-D array.

    Examples
    --------
    >>> get_upper_triang(np.arange(9).reshape(3, 3))
    array([1, 2, 5])
    """
    array = _square_matrix(matrix, "matrix", "get_upper_triang")
    return array[np.triu_indices(array.shape[0], 1)]


def _pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


def correlate_upper_triang(m1: Any, m2: Any, func: Callable = _pearson_r) -> Any:
    """Correlate the upper triangles of two matrices.

    Parameters
    ----------
    m1, m2 : array_like
        Square matrices of the same size.
    func : callable, default Pearson correlation
        ``func(x, y)`` applied to the two upper triangles (e.g. a Spearman
        correlation).

    Returns
    -------
    Whatever ``func`` returns; a float for the default.

    Examples
    --------
    >>> m = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]])
    >>> correlate_upper_triang(m, 2 * m)
    1.0
    """
    first = _square_matrix(m1, "m1", "correlate_upper_triang")
    second = _square_matrix(m2, "m2", "correlate_upper_triang")
    if first.shape != second.shape:
        raise ValueError(
            f"The 'm1' and 'm2' parameters of correlate_upper_triang must have the same "
            f"shape; got {first.shape} and {second.shape} instead."
        )
    return func(get_upper_triang(first), get_upper_triang(second))


def get_array_ranks(array: Any) -> np.ndarray:
    """Replace each element by its rank (0 for the smallest) over the whole array.

    Ties are ranked in order of position (a stable sort).

    Examples
    --------
    >>> get_array_ranks(np.array([[30, 10], [20, 40]]))
    array([[2, 0],
           [1, 3]])
    """
    values = np.asarray(array)
    order = values.ravel().argsort(kind="stable")
    return order.argsort(kind="stable").reshape(values.shape)


def _rdm_stack(rdms: Any, param_name: str) -> np.ndarray:
    """Turn the accepted RDM containers into a float64 (m, n, n) stack."""
    if isinstance(rdms, pd.DataFrame):
        if "matrix" not in rdms.columns:
            raise KeyError(
                f"The {param_name!r} parameter of compare_rdms must have a 'matrix' "
                f"column; got columns {list(rdms.columns)} instead."
            )
        matrices = list(rdms["matrix"])
    elif isinstance(rdms, pd.Series):
        matrices = [rdms["matrix"]] if "matrix" in rdms.index else list(rdms)
    elif isinstance(rdms, np.ndarray) and rdms.ndim == 2:
        matrices = [rdms]
    elif isinstance(rdms, (np.ndarray, list, tuple)):
        matrices = list(rdms)
    else:
        raise TypeError(
            f"The {param_name!r} parameter of compare_rdms must be an RDM, a 3-D stack, "
            f"a list of RDMs or an RDM DataFrame; got {type(rdms).__name__} instead."
        )
    if not matrices:
        raise ValueError(
            f"The {param_name!r} parameter of compare_rdms must hold at least one RDM; "
            f"got none instead."
        )
    arrays = [np.asarray(matrix, dtype=np.float64) for matrix in matrices]
    for array in arrays:
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise ValueError(
                f"The {param_name!r} parameter of compare_rdms must hold square 2-D "
                f"RDMs; got an array of shape {array.shape} instead."
            )
    sizes = sorted({array.shape[0] for array in arrays})
    if len(sizes) > 1:
        raise ValueError(
            f"The {param_name!r} parameter of compare_rdms must hold RDMs of one size; "
            f"got sizes {sizes} instead."
        )
    return np.stack(arrays)


def _normalized_rows(vectors: np.ndarray, center: bool) -> np.ndarray:
    if center:
        vectors = vectors - vectors.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def _pair_signs(vectors: np.ndarray, start: int, stop: int) -> np.ndarray:
    """sign(v[a] - v[b]) for a in [start, stop) and b > a (0 elsewhere), one row per vector."""
    positions = np.arange(vectors.shape[1])
    later = positions[None, :] > np.arange(start, stop)[:, None]
    diff = np.sign(vectors[:, start:stop, None] - vectors[:, None, :])
    return np.where(later, diff, 0.0).reshape(len(vectors), -1)


def _kendall_tau_a(first: np.ndarray, second: np.ndarray, same: bool) -> np.ndarray:
    """Kendall's tau-a between rows: sign-difference vectors and matrix products."""
    t = first.shape[1]
    block = max(1, _CHUNK_VALUES // ((len(first) + len(second)) * t))
    total = np.zeros((len(first), len(second)))
    for start in range(0, t - 1, block):
        stop = min(start + block, t - 1)
        signs_first = _pair_signs(first, start, stop)
        signs_second = signs_first if same else _pair_signs(second, start, stop)
        total += signs_first @ signs_second.T
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / (t * (t - 1) / 2)


def compare_rdms(rdms: Any, other: Any = None, method: str = "pearson") -> np.ndarray:
    """Similarity between RDMs, computed on their upper triangles.

    Parameters
    ----------
    rdms : array_like, list of arrays, DataFrame or Series
        One RDM (2-D), a 3-D stack, a list of RDMs, an RDM DataFrame (its
        ``'matrix'`` column) or one row of such a frame.
    other : same forms as ``rdms``, optional
        RDMs to compare with; ``rdms`` with itself when omitted.
    method : {'pearson', 'spearman', 'kendall_tau_a', 'cosine'}, default 'pearson'
        Pearson correlation, Spearman correlation (average ranks for ties),
        Kendall's tau-a, or cosine similarity.

    Returns
    -------
    numpy.ndarray, shape (m, k)
        Entry ``[i, j]`` compares RDM ``i`` of ``rdms`` with RDM ``j`` of
        ``other`` (``m x m`` when ``other`` is omitted). NaN where an upper
        triangle holds NaN or is constant (for ``'cosine'``: all zero).

    Examples
    --------
    >>> a = np.array([[0, 1, 2], [1, 0, 3], [2, 3, 0]])
    >>> compare_rdms([a, 2 * a + 1], method='spearman')
    array([[1., 1.],
           [1., 1.]])
    """
    if method not in COMPARISON_METHODS:
        raise ValueError(
            f"The 'method' parameter of compare_rdms must be one of {COMPARISON_METHODS}; "
            f"got {method!r} instead."
        )
    first_stack = _rdm_stack(rdms, "rdms")
    second_stack = first_stack if other is None else _rdm_stack(other, "other")
    n, n_other = first_stack.shape[1], second_stack.shape[1]
    if n != n_other:
        raise ValueError(
            f"The 'rdms' and 'other' parameters of compare_rdms must hold RDMs of the "
            f"same size; got {n} x {n} and {n_other} x {n_other} instead."
        )
    rows, cols = np.triu_indices(n, 1)
    first = first_stack[:, rows, cols]
    second = first if other is None else second_stack[:, rows, cols]
    if method == "kendall_tau_a":
        return _kendall_tau_a(first, second, same=other is None)
    if method == "spearman":
        first = stats.rankdata(first, axis=1)
        second = first if other is None else stats.rankdata(second, axis=1)
    unit_first = _normalized_rows(first, center=method != "cosine")
    unit_second = (
        unit_first if other is None else _normalized_rows(second, center=method != "cosine")
    )
    return np.clip(unit_first @ unit_second.T, -1.0, 1.0)
