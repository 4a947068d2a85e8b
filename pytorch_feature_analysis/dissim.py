"""Dissimilarity metrics between activation patterns, and comparisons of RDMs.

An RDM is computed in torch, on the device of the patterns matrix (one row per
stimulus, one column per unit): :class:`RDMAccumulator` sums float64 Gram
statistics over chunks of features, so no float64 copy of a whole layer is
made and only n x n matrices reach the host; several metrics asked for at once
share their work. :func:`compare_rdms` compares RDMs in torch float64 too.

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

import functools
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch

from ._validation import check_choice, check_columns, check_device, check_int, fail, problem, public

__all__ = [
    "METRIC_NAMES",
    "COMPARISON_METHODS",
    "Metric",
    "RDMAccumulator",
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

# Rows are scaled by 2**-e before squaring, with |e| at most this.
_MAX_EXPONENT = 1000

# Rows whose largest magnitude is 0 or within [2**-e, 2**e] for this e are
# squared as they are (their squares and sums neither underflow nor overflow).
_PLAIN_EXPONENT = 400

# Number of float64 values converted or held at once when working in chunks (32 MiB).
_CHUNK_VALUES = 2**22

# Number of values per array in one block of Kendall's tau-a pairs (small: kept in cache).
_TAU_BLOCK_VALUES = 2**17


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


def _resolve_one(spec: Any, param_name: str) -> Metric:
    if isinstance(spec, Metric):
        return spec
    if isinstance(spec, str):
        if spec not in METRIC_NAMES:
            raise fail(param_name, f"metric names among {METRIC_NAMES} or (name, func) pairs", spec)
        return Metric(spec)
    if _is_single_spec(spec):
        name, func = spec[0], spec[1]
        kind = spec[2] if len(spec) == 3 else "pairwise"
        if kind not in ("pairwise", "matrix"):
            raise fail(
                param_name, "(name, func, kind) triples with kind 'pairwise' or 'matrix'",
                f"kind {kind!r} for metric {name!r}", raw=True,
            )
        return Metric(name, func, kind)
    raise fail(
        param_name,
        f"metric names from {METRIC_NAMES}, (name, func) pairs or (name, func, 'matrix') triples",
        spec,
    )


def _as_called_from(func_name: str, func: Callable, *args: Any) -> Any:
    """Call ``func`` so that its errors name ``func_name`` (unless a public call is running)."""

    def call() -> Any:
        return func(*args)

    call.__name__ = func_name
    return public(call)()


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
        The parameter and function named in error messages (the public
        function the user called is named instead when there is one).

    Returns
    -------
    list of Metric
        One per specification, in order.

    Raises
    ------
    InvalidInputError
        For an unknown name, an empty list, a name given twice or a
        specification of another form.

    Examples
    --------
    >>> [m.name for m in resolve_metrics(['corr', ('l1', lambda x, y: abs(x - y).sum())])]
    ['corr', 'l1']
    """
    return _as_called_from(func_name, _resolve_specs, metrics, param_name)


def _resolve_specs(metrics: Any, param_name: str) -> list[Metric]:
    specs = [metrics] if _is_single_spec(metrics) else metrics
    try:
        specs = list(specs)
    except TypeError:
        specs = [specs]
    if not specs:
        raise fail(param_name, "at least one metric", "an empty list", raw=True)
    resolved = [_resolve_one(spec, param_name) for spec in specs]
    names = [metric.name for metric in resolved]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise fail(param_name, "each metric named once", f"{repeated} more than once", raw=True)
    return resolved


def _as_patterns(patterns: Any) -> torch.Tensor:
    """The patterns as a 2-D float32 or float64 tensor (no copy for those dtypes)."""
    if isinstance(patterns, np.ndarray):
        if not (np.issubdtype(patterns.dtype, np.number) or patterns.dtype == bool):
            raise fail("patterns", "an array of numbers", f"dtype {patterns.dtype}", raw=True)
        if np.issubdtype(patterns.dtype, np.complexfloating):
            raise fail("patterns", "an array of real numbers", f"dtype {patterns.dtype}", raw=True)
        if patterns.dtype not in (np.float32, np.float64) or min(patterns.strides, default=0) < 0:
            patterns = np.ascontiguousarray(patterns, dtype=np.float64)
        patterns = torch.from_numpy(patterns)
    elif isinstance(patterns, torch.Tensor):
        if patterns.is_complex():
            raise fail("patterns", "a tensor of real numbers", f"dtype {patterns.dtype}", raw=True)
        patterns = patterns.detach()
        if patterns.dtype not in (torch.float32, torch.float64):
            patterns = patterns.to(torch.float64)
    else:
        raise fail(
            "patterns", "a numpy array or torch tensor of shape (n_stimuli, n_features)",
            type(patterns).__name__, raw=True,
        )
    if patterns.ndim != 2 or patterns.shape[0] == 0 or patterns.shape[1] == 0:
        raise fail(
            "patterns", "a 2-D array of shape (n_stimuli, n_features) with at least one of each",
            f"shape {tuple(patterns.shape)}", raw=True,
        )
    return patterns


@dataclass
class _ChunkStats:
    """Per-row statistics of one chunk, from one ``amin`` and one ``amax`` pass.

    Attributes
    ----------
    low, high : torch.Tensor
        Each row's float64 minimum and maximum (NaN for a row holding NaN).
    peak : torch.Tensor
        Each row's largest magnitude (float64); 0 for a row that is not finite.
    finite : torch.Tensor
        Whether each row is finite.
    plain : bool
        Whether every row is finite with a peak of 0 or within
        ``[2**-_PLAIN_EXPONENT, 2**_PLAIN_EXPONENT]``: then its values, and
        their differences from a pivot, are squared and summed as they are.
    """

    low: torch.Tensor
    high: torch.Tensor
    peak: torch.Tensor
    finite: torch.Tensor
    plain: bool

    @classmethod
    def of(cls, chunk: torch.Tensor) -> "_ChunkStats":
        low = chunk.amin(dim=1).to(torch.float64)  # amin and amax apart: faster than aminmax
        high = chunk.amax(dim=1).to(torch.float64)
        finite = torch.isfinite(low) & torch.isfinite(high)
        peak = torch.where(finite, torch.maximum(low.abs(), high.abs()), 0.0)
        safe = (peak >= 2.0**-_PLAIN_EXPONENT) & (peak <= 2.0**_PLAIN_EXPONENT)
        return cls(low, high, peak, finite, bool((finite & (safe | (peak == 0))).all()))


def _mean_rows(chunk: torch.Tensor, dim: int) -> torch.Tensor:
    """Means over ``dim`` of a 2-D chunk by one matrix-vector product, as float64."""
    weights = torch.full(
        (chunk.shape[dim],), 1.0 / chunk.shape[dim], dtype=chunk.dtype, device=chunk.device
    )
    return (chunk @ weights if dim == 1 else weights @ chunk).to(torch.float64)


class _Gram:
    """A running float64 Gram matrix (and row sums), of rows rescaled by powers of two if need be.

    While every chunk is plain (see :class:`_ChunkStats`), rows are summed as
    they are. Otherwise row ``i`` is stored divided by ``2**exps[i]`` so that
    its values are below 1: tiny or huge values neither underflow nor
    overflow when squared. When a chunk raises a row's exponent, the
    statistics already summed are rescaled (exactly: by powers of two).
    ``per_row=False`` uses one exponent for all rows (distances need a common
    scale); ``sums=True`` keeps row sums too.
    """

    def __init__(self, n: int, device: torch.device, per_row: bool, sums: bool = False):
        self.gram = torch.zeros((n, n), dtype=torch.float64, device=device)
        self.sums = torch.zeros(n, dtype=torch.float64, device=device) if sums else None
        self.exps = torch.zeros(n, dtype=torch.int64, device=device)
        self.seen = torch.zeros(n, dtype=torch.bool, device=device)
        self.per_row = per_row
        self.factors: torch.Tensor | None = None  # 2**-exps, once rows are rescaled

    def prepare(self, bound: torch.Tensor, plain: bool) -> None:
        """Choose the scale of the next chunk's rows, whose magnitudes are below ``bound``."""
        bound = torch.nan_to_num(bound, nan=0.0, posinf=0.0)
        nonzero = bound > 0
        if plain and self.factors is None:
            self.seen |= nonzero
            return
        exponent = torch.frexp(bound).exponent.to(torch.int64).clamp_(-_MAX_EXPONENT, _MAX_EXPONENT)
        if not self.per_row:
            nonzero = nonzero.any().expand_as(nonzero)
            exponent = torch.where(nonzero, exponent, -_MAX_EXPONENT).amax().expand_as(exponent)
        new = torch.where(self.seen, torch.maximum(self.exps, exponent), exponent)
        new = torch.where(nonzero | self.seen, new, self.exps)
        ones = torch.ones(len(new), dtype=torch.float64, device=new.device)
        factor = torch.ldexp(ones, torch.where(self.seen, self.exps - new, 0))
        self.gram *= factor[:, None] * factor[None, :]
        if self.sums is not None:
            self.sums *= factor
        self.exps, self.seen = new, self.seen | nonzero
        self.factors = torch.ldexp(ones, -new)

    def add(self, values: torch.Tensor) -> None:
        """Add float64 rows of the next chunk (a work buffer: rescaled in place)."""
        if self.factors is not None:
            values *= self.factors[:, None]
        self.gram.addmm_(values, values.T)
        if self.sums is not None:
            ones = torch.ones(values.shape[1], dtype=values.dtype, device=values.device)
            self.sums.addmv_(values, ones)

    def scaled_rows(self, rows: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Rows ``index`` of the original rows, in float64, scaled as stored."""
        return torch.ldexp(rows[index].to(torch.float64), -self.exps[index, None])


def _unit_rows(rows: torch.Tensor) -> torch.Tensor:
    return rows / torch.linalg.vector_norm(rows, dim=1, keepdim=True)


def _both(rows: torch.Tensor) -> torch.Tensor:
    """n x n: True where both rows are flagged."""
    return rows[:, None] & rows[None, :]


class _Correlation:
    """1 - Pearson r between rows, from a Gram matrix of rows shifted by a per-row pivot.

    The pivot (each row's mean over the first chunk) removes most of a large
    offset before squaring; r does not change under a per-row shift or scale.
    """

    def __init__(self, n: int, device: torch.device):
        self.stats = _Gram(n, device, per_row=True, sums=True)
        self.pivot: torch.Tensor | None = None
        self.count = 0
        self.low = torch.full((n,), math.inf, dtype=torch.float64, device=device)
        self.high = torch.full((n,), -math.inf, dtype=torch.float64, device=device)

    def start(self, chunk: torch.Tensor, stats: _ChunkStats) -> None:
        """Prepare for the pieces of ``chunk``."""
        if self.pivot is None:
            mean = _mean_rows(chunk, dim=1)  # a sum may overflow where values do not:
            self.pivot = torch.where(torch.isfinite(mean), mean, stats.low / 2 + stats.high / 2)
        self.low = torch.minimum(self.low, stats.low)
        self.high = torch.maximum(self.high, stats.high)
        self.stats.prepare(stats.peak + self.pivot.abs(), stats.plain)
        self.count += chunk.shape[1]

    def add(self, part: torch.Tensor, buffer: torch.Tensor) -> None:
        """Add a piece of the chunk, using ``buffer`` (float64, its shape) as work space."""
        buffer.copy_(part)
        buffer -= self.pivot[:, None]
        self.stats.add(buffer)

    def finish(self, whole: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The matrix, the constant rows, and the pairs that may be identical."""
        stats = self.stats
        cov = stats.gram - torch.outer(stats.sums, stats.sums) / self.count
        spread = torch.sqrt(torch.diagonal(cov).clamp(min=0.0))
        matrix = (1.0 - cov / torch.outer(spread, spread)).clamp_(min=0.0)
        near, constant = matrix <= _REFINE_FRACTION, self.low == self.high
        if whole is not None:
            means = self.pivot + torch.ldexp(stats.sums, stats.exps) / self.count

            def unit(index: torch.Tensor) -> torch.Tensor:
                centred = whole[index].to(torch.float64) - means[index, None]
                return _unit_rows(torch.ldexp(centred, -stats.exps[index, None]))

            _refine(matrix, near, unit, 0.5, whole.shape[1])
        return matrix, constant, near | _both(constant)


class _Cosine:
    """1 - cosine similarity between rows, from one Gram matrix."""

    def __init__(self, n: int, device: torch.device):
        self.stats = _Gram(n, device, per_row=True)

    def start(self, chunk: torch.Tensor, stats: _ChunkStats) -> None:
        """Prepare for the pieces of ``chunk``."""
        self.stats.prepare(stats.peak, stats.plain)

    def add(self, part: torch.Tensor, buffer: torch.Tensor) -> None:
        """Add a piece of the chunk, using ``buffer`` (float64, its shape) as work space."""
        self.stats.add(buffer.copy_(part))

    def finish(self, whole: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        """The matrix, the all-zero rows, and the pairs that may be identical."""
        gram = self.stats.gram
        norms = torch.sqrt(torch.diagonal(gram))
        matrix = (1.0 - gram / torch.outer(norms, norms)).clamp_(min=0.0)
        near = matrix <= _REFINE_FRACTION
        if whole is not None:
            unit = lambda index: _unit_rows(self.stats.scaled_rows(whole, index))  # noqa: E731
            _refine(matrix, near, unit, 0.5, whole.shape[1])
        return matrix, ~self.stats.seen, near | _both(~self.stats.seen)


class _SquaredEuclidean:
    """Squared distances from a Gram matrix of feature columns centred over the patterns.

    Distances do not change when a feature is shifted, and every chunk holds
    all patterns, so each column is centred within its chunk (on its mean
    over the finite patterns): a large common offset never reaches the squares.
    """

    def __init__(self, n: int, device: torch.device):
        self.stats = _Gram(n, device, per_row=False)
        self.chunk_stats: _ChunkStats | None = None

    def start(self, chunk: torch.Tensor, stats: _ChunkStats) -> None:
        """Prepare for the pieces of ``chunk``."""
        self.chunk_stats = stats
        self.stats.prepare(2.0 * stats.peak.amax().expand_as(stats.peak), stats.plain)

    def add(self, part: torch.Tensor, buffer: torch.Tensor) -> None:
        """Add a piece of the chunk, using ``buffer`` (float64, its shape) as work space."""
        finite = self.chunk_stats.finite
        buffer.copy_(part)
        if self.chunk_stats.plain:
            buffer -= _mean_rows(buffer, dim=0)
        elif finite.any():
            buffer -= buffer[finite].mean(dim=0)
        self.stats.add(buffer)

    def finish(self, whole: torch.Tensor | None) -> tuple[torch.Tensor, None, torch.Tensor]:
        """The scaled squared distances, no degenerate rows, and the pairs that may be identical."""
        sq_norms = torch.diagonal(self.stats.gram)
        scale = sq_norms[:, None] + sq_norms[None, :]
        matrix = (scale - 2.0 * self.stats.gram).clamp_(min=0.0)
        near = matrix <= _REFINE_FRACTION * scale
        if whole is not None:
            scaled = lambda index: self.stats.scaled_rows(whole, index)  # noqa: E731
            _refine(matrix, near, scaled, 1.0, whole.shape[1])
        return matrix, None, near

    def unscaled(self, scaled: torch.Tensor, power: int) -> torch.Tensor:
        """Distances (power 1) or squared distances (power 2) from scaled squared ones."""
        root = torch.sqrt(scaled) if power == 1 else scaled
        return torch.ldexp(root, power * self.stats.exps[0])


class _Manhattan:
    """City-block distances, summed over chunks of features."""

    def __init__(self, n: int, device: torch.device):
        self.total = torch.zeros((n, n), dtype=torch.float64, device=device)

    def start(self, chunk: torch.Tensor, stats: _ChunkStats) -> None:
        """Nothing to prepare."""

    def add(self, part: torch.Tensor, buffer: torch.Tensor) -> None:
        """Add a piece of the chunk, using ``buffer`` (float64, its shape) as work space."""
        buffer.copy_(part)
        self.total += torch.cdist(buffer[None], buffer[None], p=1.0)[0]

    def finish(self, whole: torch.Tensor | None) -> tuple[torch.Tensor, None, torch.Tensor]:
        """The distances, no degenerate rows, and the pairs that may be identical."""
        return self.total, None, self.total == 0


def _feed(groups: list, chunk: torch.Tensor) -> None:
    """Add ``chunk`` to ``groups``, in column pieces converted into one reused float64 buffer."""
    if not chunk.shape[1]:
        return
    stats = _ChunkStats.of(chunk)
    for group in groups:
        group.start(chunk, stats)
    width = max(1, _CHUNK_VALUES // len(chunk))
    buffer = torch.empty(
        (len(chunk), min(width, chunk.shape[1])), dtype=torch.float64, device=chunk.device
    )
    for start in range(0, chunk.shape[1], width):
        part = chunk[:, start : start + width]
        for group in groups:
            group.add(part, buffer[:, : part.shape[1]])


def _above_diagonal(n: int, device: torch.device) -> torch.Tensor:
    """n x n: True above the diagonal (cheaper than ``torch.triu`` for small matrices)."""
    index = torch.arange(n, device=device)
    return index[:, None] < index[None, :]


def _upper_pairs(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row and column indices of the True entries of ``mask`` above its diagonal."""
    return torch.nonzero(mask & _above_diagonal(len(mask), mask.device), as_tuple=True)


def _refine(
    matrix: torch.Tensor, suspect: torch.Tensor, transform: Callable, factor: float, width: int
) -> None:
    """Recompute suspect pairs of the upper triangle as factor * |t(x_i) - t(x_j)|**2.

    ``transform(index)`` gives float64 rows of ``width`` features.
    """
    first, second = _upper_pairs(suspect)
    per_chunk = max(1, _CHUNK_VALUES // (2 * width))
    for start in range(0, first.numel(), per_chunk):
        rows, cols = first[start : start + per_chunk], second[start : start + per_chunk]
        diff = transform(rows) - transform(cols)
        matrix[rows, cols] = factor * torch.einsum("ij,ij->i", diff, diff)


def _equal_rows(whole: torch.Tensor, suspect: torch.Tensor) -> torch.Tensor:
    """n x n: True above the diagonal where a suspect pair's rows are equal and finite."""
    first, second = _upper_pairs(suspect)
    same = torch.zeros_like(suspect)
    per_chunk = max(1, _CHUNK_VALUES // (2 * whole.shape[1]))
    for start in range(0, first.numel(), per_chunk):
        rows, cols = first[start : start + per_chunk], second[start : start + per_chunk]
        left = whole[rows]
        equal = (left == whole[cols]).all(dim=1) & torch.isfinite(left).all(dim=1)
        same[rows[equal], cols[equal]] = True
    return same


class _Identity:
    """Classes of exactly equal, finite patterns, refined chunk by chunk."""

    def __init__(self, n: int, device: torch.device):
        self.classes = torch.zeros(n, dtype=torch.int64, device=device)
        self.finite = torch.ones(n, dtype=torch.bool, device=device)
        self.all_distinct = n == 1

    def add(self, chunk: torch.Tensor) -> None:
        """Refine the classes with the features of ``chunk``, in float64 column pieces."""
        width = max(1, _CHUNK_VALUES // len(chunk))
        for start in range(0, chunk.shape[1], width):
            self._add_rows(chunk[:, start : start + width].to(torch.float64))

    def _add_rows(self, rows: torch.Tensor) -> None:
        self.finite &= torch.isfinite(rows).all(dim=1)
        if self.all_distinct:
            return
        alone = -1 - torch.arange(len(rows), device=rows.device)  # non-finite rows match none
        labels = torch.where(self.finite, self.classes, alone).to(torch.float64)
        keys = torch.cat([labels[:, None], torch.nan_to_num(rows, 0.0, 0.0, 0.0)], dim=1)
        self.classes = torch.unique(keys, dim=0, return_inverse=True)[1]
        self.all_distinct = bool(self.classes.max() == len(rows) - 1)

    def same(self) -> torch.Tensor:
        """n x n: True where two finite patterns are identical."""
        both = self.finite[:, None] & self.finite[None, :]
        return both & (self.classes[:, None] == self.classes[None, :])


_GROUPS = {
    "corr": _Correlation,
    "cosine": _Cosine,
    "euclidean_distance": _SquaredEuclidean,
    "sq_euclidean": _SquaredEuclidean,
    "manhattan": _Manhattan,
}


def sort_rows(rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``torch.sort(rows, dim=1)`` of a 2-D tensor: the sorted rows and the order.

    On the CPU through numpy's vectorised argsort, several times faster than
    torch's there; NaN sorts last in both.
    """
    if rows.device.type != "cpu":
        return torch.sort(rows, dim=1)
    values = rows.detach().numpy()
    order = np.argsort(values, axis=1)
    return torch.from_numpy(np.take_along_axis(values, order, axis=1)), torch.from_numpy(order)


def _average_ranks(rows: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based, ties share their mean rank) within each row; NaN rows stay NaN.

    Ranks are exact in float32 below 2**23 features, so float32 rows keep float32.
    """
    n, p = rows.shape
    dtype = torch.float32 if rows.dtype == torch.float32 and p < 2**23 else torch.float64
    ranks = torch.empty((n, p), dtype=dtype, device=rows.device)
    positions = torch.arange(p, device=rows.device)
    block = max(1, _CHUNK_VALUES // p)
    for start in range(0, n, block):
        ordered, order = sort_rows(rows[start : start + block])
        new_run = torch.ones_like(ordered, dtype=torch.bool)
        new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
        ranks[start : start + block].scatter_(1, order, _sorted_ranks(new_run, positions, dtype))
    ranks[torch.isnan(rows).any(dim=1)] = math.nan
    return ranks


def _sorted_ranks(new_run: torch.Tensor, positions: torch.Tensor,
                  dtype: torch.dtype) -> torch.Tensor:
    """Average ranks of sorted rows, given where each run of equal values starts."""
    if bool(new_run.all()):
        return (positions + 1).to(dtype).expand(new_run.shape)
    p = new_run.shape[1]
    first = torch.cummax(new_run * positions, dim=1).values
    run_ends = torch.ones_like(new_run)
    run_ends[:, :-1] = new_run[:, 1:]
    last = torch.cummin((positions + p * ~run_ends).flip(1), dim=1).values.flip(1)
    return (first + last + 2).to(dtype) / 2


def _spearman_rows(rows: torch.Tensor) -> torch.Tensor:
    """Rows whose Pearson correlations are the Spearman ones of ``rows``.

    Constant rows keep their values, so that they stay constant (undefined
    correlation) and equal only to the same constant.
    """
    ranks = _average_ranks(rows)
    constant = (rows == rows[:, :1]).all(dim=1)
    ranks[constant] = rows[constant].to(ranks.dtype)
    return ranks


class RDMAccumulator:
    """Builds the RDMs of ``n`` patterns from chunks of their features (columns).

    Every built-in metric except ``'spearman'`` is computed from n x n float64
    statistics summed over chunks, on the device of the chunks: a Gram matrix
    and row sums (``'corr'``, ``'cosine'``, the Euclidean metrics), running
    per-row minima and maxima (constant and all-zero patterns) and summed
    city-block distances (``'manhattan'``). Each chunk is converted to float64
    in pieces of at most ``_CHUNK_VALUES`` values, into one buffer reused by
    every piece and metric, so no float64 copy of a whole chunk is made; only
    the finished n x n RDMs reach the host. For finite patterns whose largest
    magnitude is 0 or within ``[2**-400, 2**400]`` (every float32 pattern) a
    metric costs one conversion, one shift and one matrix product per piece;
    other patterns are first rescaled by powers of two.

    Parameters
    ----------
    n : int
        Number of patterns (rows of every chunk).
    metrics : list of Metric
        The metrics, see :func:`resolve_metrics`.
    device : torch.device or str, default 'cpu'
        Where the chunks are and the statistics are kept.

    Attributes
    ----------
    needs_whole_patterns : bool
        True when a metric (``'spearman'``, a user's pairwise or ``'matrix'``
        function) needs every feature of a pattern at once: then :meth:`add`
        must be called exactly once, with all features.

    Notes
    -----
    When :meth:`add` is called once, the accumulator keeps a reference to the
    chunk (do not change it before :meth:`finish`). It recomputes pairs that
    are close relative to their norms (1 - r, 1 - cos or the squared distance
    below 1e-6 of the squared norms) from their differences, and compares
    those pairs, and pairs of constant or all-zero patterns, value by value:
    exactly equal finite patterns give exactly 0. When a second chunk comes,
    the first one (still unchanged: it is kept until then) and every later
    chunk are sorted into classes of equal patterns instead, and refinement
    is not possible: a close pair's dissimilarity then has an absolute error
    of about 1e-16 times the squared norms (a relative error of about 1e-10
    for 1 - r = 1e-6). Identical patterns still give exactly 0, and a large
    offset common to all patterns still cancels.

    Examples
    --------
    >>> import torch
    >>> patterns = torch.tensor([[0.0, 1.0, 2.0, 3.0], [0.0, 2.0, 4.0, 7.0], [3.0, 0.0, 4.0, 1.0]])
    >>> accumulator = RDMAccumulator(3, resolve_metrics(['corr', 'sq_euclidean']))
    >>> accumulator.add(patterns[:, :2])
    >>> accumulator.add(patterns[:, 2:])
    >>> corr, sq_euclid = accumulator.finish()
    >>> float(sq_euclid[0, 1]), round(float(corr[0, 1]), 6)
    (21.0, 0.005623)
    >>> RDMAccumulator.workspace_bytes(100, ['corr', 'sq_euclidean'])
    166400
    """

    def __init__(self, n: int, metrics: list[Metric], device: torch.device | str = "cpu"):
        self.n = check_int(n, "n", minimum=1)
        self.metrics = resolve_metrics(metrics)
        self.device = torch.device(device)
        self.needs_whole_patterns = self.whole_patterns_needed(self.metrics)
        names = {m.name for m in self.metrics if m.kind == "builtin"}
        self._groups = {}
        for name in names & set(_GROUPS):
            kind = _GROUPS[name]
            self._groups.setdefault(kind, kind(self.n, self.device))
        self._identity: _Identity | None = None  # only once a second chunk is added
        self._whole: torch.Tensor | None = None
        self._calls = 0

    @staticmethod
    def whole_patterns_needed(metrics: Any) -> bool:
        """Whether ``metrics`` need every feature of a pattern at once (one :meth:`add`)."""
        return any(m.kind != "builtin" or m.name == "spearman" for m in resolve_metrics(metrics))

    @staticmethod
    def workspace_bytes(n: int, metrics: Any) -> int:
        """Bytes of the n x n float64 statistics held on the device between calls.

        :meth:`finish` briefly needs about three more n x n float64 matrices.
        """
        names = {m.name for m in resolve_metrics(metrics) if m.kind == "builtin"}
        kinds = {_GROUPS[name] for name in names & set(_GROUPS)}
        matrices = len(kinds) + ("spearman" in names)
        return 8 * n * n * matrices + 8 * 8 * n

    def add(self, chunk: torch.Tensor) -> None:
        """Add the features in ``chunk``, an (n, f) float32/float64 tensor on the device."""
        if not isinstance(chunk, torch.Tensor) or chunk.ndim != 2 or chunk.shape[0] != self.n:
            expected = f"a 2-D tensor with {self.n} rows"
            raise fail("chunk", expected, _describe_shape(chunk), raw=True)
        if self.needs_whole_patterns and self._calls:
            raise problem("RDMAccumulator.add was called twice; its metrics need whole patterns.")
        self._calls += 1
        if self._calls == 2:  # identity can no longer be decided on one kept chunk
            self._identity = _Identity(self.n, self.device)
            self._identity.add(self._whole)
        if self._identity is not None:
            self._identity.add(chunk)
        self._whole = chunk if self._calls == 1 else None
        if self._groups:
            _feed(list(self._groups.values()), chunk)

    def finish(self) -> list[np.ndarray]:
        """One float64 n x n RDM per metric, in order (conventions of :func:`compute_rdms`)."""
        if not self._calls:
            raise problem("RDMAccumulator.finish was called before any chunk was added.")
        results = {kind: group.finish(self._whole) for kind, group in self._groups.items()}
        same = self._same([suspect for _, _, suspect in results.values()])
        rdms = []
        for metric in self.metrics:
            if metric.kind != "builtin":
                rdms.append(_user_rdm(self._whole, metric))
                continue
            if metric.name == "spearman":
                rdms.append(_finalize(*self._spearman()))
                continue
            kind = _GROUPS[metric.name]
            matrix, degenerate, _ = results[kind]
            if kind is _SquaredEuclidean:
                power = 1 if metric.name == "euclidean_distance" else 2
                matrix = self._groups[kind].unscaled(matrix, power)
            rdms.append(_finalize(matrix, degenerate, same))
        return rdms

    def _same(self, suspects: list[torch.Tensor]) -> torch.Tensor | None:
        """Where patterns are identical: exactly compared among pairs every group suspects."""
        if self._identity is not None:
            return self._identity.same()
        if not suspects:
            return None
        return _equal_rows(self._whole, functools.reduce(torch.logical_and, suspects))

    def _spearman(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        ranks = _spearman_rows(self._whole)
        correlation = _Correlation(self.n, self.device)
        _feed([correlation], ranks)
        matrix, constant, suspect = correlation.finish(ranks)
        return matrix, constant, _equal_rows(ranks, suspect)


def _describe_shape(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    return type(value).__name__


def _finalize(
    matrix: torch.Tensor, degenerate: torch.Tensor | None, same: torch.Tensor
) -> np.ndarray:
    """NaN for degenerate patterns, 0 for identical ones, symmetric from the upper triangle."""
    matrix = matrix.clone()
    if degenerate is not None:
        matrix[degenerate, :] = math.nan
        matrix[:, degenerate] = math.nan
    matrix[same] = 0.0
    upper = torch.where(_above_diagonal(len(matrix), matrix.device), matrix, 0.0)
    return (upper + upper.T).cpu().numpy()


def _symmetric_from_upper(upper: np.ndarray, n: int) -> np.ndarray:
    """An exactly symmetric n x n matrix with a zero diagonal from its upper triangle."""
    rows, cols = np.triu_indices(n, 1)
    matrix = np.zeros((n, n))
    matrix[rows, cols] = upper
    matrix[cols, rows] = upper
    return matrix


def _user_rdm(whole: torch.Tensor, metric: Metric) -> np.ndarray:
    """A user's metric on the patterns as a read-only float64 numpy array."""
    patterns = whole.to("cpu", torch.float64).numpy().view()
    patterns.flags.writeable = False
    if metric.kind == "pairwise":
        return _pairwise_rdm(patterns, metric)
    return _matrix_rdm(patterns, metric)


def _as_number(value: Any, metric_name: str) -> float:
    if isinstance(value, np.ndarray) and value.size == 1 and value.ndim <= 1:
        value = value.reshape(()).item()
    if isinstance(value, (numbers.Real, np.bool_)):
        return float(value)
    raise problem(
        f"the function of metric {metric_name!r} must return one number for two "
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
        raise problem(
            f"the function of metric {metric.name!r} must return an {n} x {n} array "
            f"of numbers; got {type(result).__name__} instead."
        ) from error
    if matrix.shape != (n, n):
        raise problem(
            f"the function of metric {metric.name!r} must return an {n} x {n} array for "
            f"{n} patterns; got shape {matrix.shape} instead."
        )
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-12, equal_nan=True):
        raise problem(
            f"the function of metric {metric.name!r} must return a symmetric matrix; "
            f"got a matrix that differs from its transpose instead."
        )
    return _symmetric_from_upper(matrix[np.triu_indices(n, 1)], n)


@public
def compute_rdms(patterns: Any, metrics: Any) -> list[np.ndarray]:
    """Compute one RDM per metric from a patterns matrix.

    A thin caller of :class:`RDMAccumulator`, on the device of ``patterns``.

    Parameters
    ----------
    patterns : numpy.ndarray or torch.Tensor, shape (n_stimuli, n_features)
        One activation pattern per row (any real dtype; computed in float64).
        A user's metric function gets a read-only float64 numpy array.
    metrics : str, tuple or list
        Metric specifications, see :func:`resolve_metrics`.

    Returns
    -------
    list of numpy.ndarray
        One float64 ``n x n`` matrix per metric, in order: exactly symmetric,
        with an exactly zero diagonal, and exactly 0 for identical patterns.
        ``'corr'``, ``'spearman'`` and ``'cosine'`` are NaN for a pair with a
        constant (for ``'cosine'``: an all-zero) pattern, unless the two
        patterns are identical (then 0), as the original library's
        ``corr_dissim``. A pattern holding NaN gives NaN with every other
        pattern. A ``'matrix'`` function's result is checked for shape and
        symmetry and its diagonal set to 0.

    Examples
    --------
    >>> patterns = np.array([[0.0, 1.0, 2.0], [0.0, 2.0, 4.0], [3.0, 0.0, 4.0]])
    >>> corr, euclid = compute_rdms(patterns, ['corr', 'euclidean_distance'])
    >>> float(corr[0, 1]), round(float(euclid[0, 1]) ** 2, 9)
    (0.0, 5.0)
    """
    resolved = resolve_metrics(metrics)
    values = _as_patterns(patterns)
    accumulator = RDMAccumulator(values.shape[0], resolved, values.device)
    accumulator.add(values)
    return accumulator.finish()


@public
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
        raise fail("metric", "one metric specification", metric)
    return compute_rdms(patterns, [metric])[0]


@public
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
        raise problem(
            f"the 'x' and 'y' parameters must have the same length; got {x.size} and "
            f"{y.size} instead."
        )
    return float(compute_rdms(np.stack([x, y]), ["corr"])[0][0, 1])


def _square_matrix(matrix: Any, param_name: str) -> np.ndarray:
    array = np.asarray(matrix)
    if array.ndim != 2 or array.shape[0] != array.shape[1]:
        raise fail(param_name, "a square 2-D array", f"shape {array.shape}", raw=True)
    return array


@public
def get_upper_triang(matrix: Any) -> np.ndarray:
    """The entries above the diagonal of a square matrix, row by row, as a 1-D array.

    Examples
    --------
    >>> get_upper_triang(np.arange(9).reshape(3, 3))
    array([1, 2, 5])
    """
    array = _square_matrix(matrix, "matrix")
    return array[np.triu_indices(array.shape[0], 1)]


def _pearson_r(x: np.ndarray, y: np.ndarray) -> float:
    return float(np.corrcoef(x, y)[0, 1])


@public
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
    first = _square_matrix(m1, "m1")
    second = _square_matrix(m2, "m2")
    if first.shape != second.shape:
        raise problem(
            f"the 'm1' and 'm2' parameters must have the same shape; got {first.shape} "
            f"and {second.shape} instead."
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


def _upper_triangles(rdms: Any, param_name: str, device: torch.device) -> torch.Tensor:
    """The upper triangles of the accepted RDM containers, as a float64 (m, t) tensor."""
    if isinstance(rdms, pd.DataFrame):
        check_columns(rdms, ["matrix"], param_name)
        matrices = list(rdms["matrix"])
    elif isinstance(rdms, pd.Series):
        matrices = [rdms["matrix"]] if "matrix" in rdms.index else list(rdms)
    elif isinstance(rdms, (np.ndarray, torch.Tensor)) and rdms.ndim == 2:
        matrices = [rdms]
    elif isinstance(rdms, (np.ndarray, torch.Tensor, list, tuple)):
        matrices = list(rdms)
    else:
        raise fail(
            param_name, "an RDM, a 3-D stack, a list of RDMs or an RDM DataFrame",
            type(rdms).__name__, raw=True,
        )
    if not matrices:
        raise fail(param_name, "at least one RDM", "none", raw=True)
    arrays = [
        matrix.detach().cpu().numpy() if isinstance(matrix, torch.Tensor) else matrix
        for matrix in matrices
    ]
    arrays = [np.asarray(matrix, dtype=np.float64) for matrix in arrays]
    for array in arrays:
        if array.ndim != 2 or array.shape[0] != array.shape[1]:
            raise fail(param_name, "square 2-D RDMs", f"an array of shape {array.shape}", raw=True)
    sizes = sorted({array.shape[0] for array in arrays})
    if len(sizes) > 1:
        raise fail(param_name, "RDMs of one size", f"sizes {sizes}", raw=True)
    whole = rdms.ndim == 3 and rdms.dtype == np.float64 if isinstance(rdms, np.ndarray) else False
    stacked = rdms if whole else np.stack(arrays)
    upper = np.flatnonzero(np.triu(np.ones((sizes[0], sizes[0]), dtype=bool), 1))
    return torch.from_numpy(stacked.reshape(len(stacked), -1)[:, upper]).to(device)


def _unit_vectors(vectors: torch.Tensor, center: bool, in_place: bool = False) -> torch.Tensor:
    """Rows scaled to unit length (centred first if asked); NaN rows where undefined.

    A row is undefined when it is constant (centred) or all zero (not centred),
    tested exactly rather than through a rounded norm. With ``in_place``,
    ``vectors`` itself becomes the result.
    """
    low, high = torch.aminmax(vectors, dim=1)
    unit = vectors if in_place else vectors.clone()
    if center:
        unit -= vectors.mean(dim=1, keepdim=True)
        degenerate = low == high
    else:
        degenerate = (low == 0) & (high == 0)
    unit.div_(torch.linalg.vector_norm(unit, dim=1, keepdim=True))
    unit[degenerate] = math.nan
    return unit


def _dense_ranks(vectors: torch.Tensor) -> torch.Tensor:
    """0-based ranks within each row, equal values sharing one rank and no gaps."""
    ordered, order = sort_rows(vectors)
    steps = torch.ones_like(order)
    steps[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    return torch.empty_like(order).scatter_(1, order, torch.cumsum(steps, dim=1) - 1)


def _tied_pairs(ranks: torch.Tensor) -> torch.Tensor:
    """Per row, the number of pairs of equal values (from dense ranks)."""
    counts = torch.zeros_like(ranks).scatter_add_(1, ranks, torch.ones_like(ranks))
    return (counts * (counts - 1) // 2).sum(dim=1)


def _run_starts(values: torch.Tensor) -> torch.Tensor:
    """For each position of sorted rows, where its run of equal values starts."""
    positions = torch.arange(values.shape[1], device=values.device).expand_as(values)
    changes = torch.ones_like(values, dtype=torch.bool)
    changes[:, 1:] = values[:, 1:] != values[:, :-1]
    return torch.cummax(torch.where(changes, positions, 0), dim=1).values


def _discordant_pairs(y: torch.Tensor, fine: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Discordant and jointly tied pairs, one count per row, by an MSB-first radix partition.

    ``y`` holds dense ranks of one RDM in the order of another (sorted by its
    values); ``fine`` where each position's run of equal values of that other
    RDM starts. At each bit, within groups of equal higher bits (kept
    contiguous, in order, by stable partitions), a 1 before a 0 from an
    earlier run of the other RDM is one discordant pair: O(t log t) per row.
    """
    count, t = y.shape
    positions = torch.arange(t, device=y.device).expand(count, t)
    start = torch.zeros_like(y)
    discordant = torch.zeros(count, dtype=torch.int64, device=y.device)
    for bit_index in range(max(1, (t - 1).bit_length()) - 1, -1, -1):
        bit = (y >> bit_index) & 1
        ones_before = torch.cumsum(bit, dim=1) - bit
        group_ones = ones_before.gather(1, start)
        fine_ones = ones_before.gather(1, fine)
        discordant += ((fine_ones - group_ones) * (1 - bit)).sum(dim=1)
        zeros = t - ones_before[:, -1:] - bit[:, -1:]
        # Stable partition, zeros first (arithmetic: torch.where is slow on CPU).
        target = _choose(bit, positions - ones_before, zeros + ones_before)
        y = torch.empty_like(y).scatter_(1, target, y)
        start = torch.empty_like(y).scatter_(
            1, target, _choose(bit, start - group_ones, zeros + group_ones)
        )
        fine = torch.empty_like(y).scatter_(
            1, target, _choose(bit, fine - fine_ones, zeros + fine_ones)
        )
    return discordant, (positions - fine).sum(dim=1)


def _choose(bit: torch.Tensor, if_zero: torch.Tensor, if_one: torch.Tensor) -> torch.Tensor:
    return if_zero + bit * (if_one - if_zero)


def _kendall_tau_a(first: torch.Tensor, second: torch.Tensor, same: bool) -> torch.Tensor:
    """Kendall's tau-a between rows of ``first`` and of ``second``; NaN for constant rows.

    Per pair: the ranks of one row in the order of the other, then discordant
    and jointly tied pairs counted for blocks of pairs at once. Only pairs
    i <= j are computed when ``same``.
    """
    t = first.shape[1]
    ranks_first, ranks_second = _dense_ranks(first), _dense_ranks(second)
    order = torch.argsort(ranks_first, dim=1, stable=True)
    fine = _run_starts(ranks_first.gather(1, order))
    device = first.device
    if same:
        rows, cols = torch.triu_indices(len(first), len(first), device=device)
    else:
        grid = torch.meshgrid(
            torch.arange(len(first), device=device), torch.arange(len(second), device=device),
            indexing="ij",
        )
        rows, cols = grid[0].reshape(-1), grid[1].reshape(-1)
    block = max(1, _TAU_BLOCK_VALUES // t)
    counts = [
        _discordant_pairs(ranks_second[b].gather(1, order[a]), fine[a])
        for a, b in zip(rows.split(block), cols.split(block))
    ]
    discordant = torch.cat([pair[0] for pair in counts])
    joint = torch.cat([pair[1] for pair in counts])
    ties = _tied_pairs(ranks_first)[rows] + _tied_pairs(ranks_second)[cols]
    pairs = t * (t - 1) // 2
    tau = torch.empty((len(first), len(second)), dtype=torch.float64, device=device)
    tau[rows, cols] = (pairs - ties + joint - 2 * discordant).to(torch.float64) / pairs
    if same:
        tau[cols, rows] = tau[rows, cols]
    tau[_undefined_rows(first, ranks_first), :] = math.nan
    tau[:, _undefined_rows(second, ranks_second)] = math.nan
    return tau


def _undefined_rows(vectors: torch.Tensor, ranks: torch.Tensor) -> torch.Tensor:
    """Rows holding NaN or a single value."""
    return torch.isnan(vectors).any(dim=1) | (ranks.amax(dim=1) == 0)


def _self_products(vectors: torch.Tensor, blocks: int = 4) -> torch.Tensor:
    """``vectors @ vectors.T`` from the blocks on and above the diagonal (5/8 of the work)."""
    result = torch.empty((len(vectors), len(vectors)), dtype=vectors.dtype, device=vectors.device)
    bounds = [len(vectors) * k // blocks for k in range(blocks + 1)]
    for begin, end in zip(bounds[:-1], bounds[1:]):
        block = vectors[begin:end] @ vectors[begin:].T
        result[begin:end, begin:] = block
        result[begin:, begin:end] = block.T
    return result


@public
def compare_rdms(
    rdms: Any, other: Any = None, method: str = "pearson", device: Any = None
) -> np.ndarray:
    """Similarity between RDMs, computed on their upper triangles in torch float64.

    Pearson, Spearman and cosine are one matrix product of normalised upper
    triangles. Kendall's tau-a counts discordant pairs of entries with a
    vectorised radix partition, O(t log t) per pair of RDMs of t upper-triangle
    entries, for blocks of pairs of RDMs at once.

    Parameters
    ----------
    rdms : array_like, tensor, list of arrays, DataFrame or Series
        One RDM (2-D), a 3-D stack, a list of RDMs, an RDM DataFrame (its
        ``'matrix'`` column) or one row of such a frame.
    other : same forms as ``rdms``, optional
        RDMs to compare with; ``rdms`` with itself when omitted.
    method : {'pearson', 'spearman', 'kendall_tau_a', 'cosine'}, default 'pearson'
        Pearson correlation, Spearman correlation (average ranks for ties),
        Kendall's tau-a, or cosine similarity.
    device : str or torch.device, optional
        Where to compute ('cpu' when omitted); the result comes back as numpy.

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
    >>> compare_rdms(a, np.ones((3, 3)) - np.eye(3), method='kendall_tau_a')
    array([[nan]])
    """
    check_choice(method, "method", COMPARISON_METHODS)
    device = torch.device("cpu") if device is None else check_device(device)
    first = _upper_triangles(rdms, "rdms", device)
    second = first if other is None else _upper_triangles(other, "other", device)
    if first.shape[1] != second.shape[1]:
        raise problem(
            "the 'rdms' and 'other' parameters must hold RDMs of the same size; got "
            f"{first.shape[1]} and {second.shape[1]} upper-triangle entries instead."
        )
    if method == "kendall_tau_a":
        return _kendall_tau_a(first, second, same=other is None).cpu().numpy()
    if method == "spearman":
        first = _average_ranks(first)
        second = first if other is None else _average_ranks(second)
    # the triangles and ranks are this call's own tensors: made unit vectors in place
    unit_first = _unit_vectors(first, center=method != "cosine", in_place=True)
    if other is None:
        return _self_products(unit_first).clamp_(-1.0, 1.0).cpu().numpy()
    unit_second = _unit_vectors(second, center=method != "cosine", in_place=True)
    return (unit_first @ unit_second.T).clamp_(-1.0, 1.0).cpu().numpy()
