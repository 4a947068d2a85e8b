"""Seeded sparse random projections of a layer's units (activation types ``'srp_<k>'``).

A layer of ``F`` units is mapped to ``k`` dimensions by a sparse matrix whose
entries are ``+-sqrt(s / k)`` with probability ``1 / (2 s)`` each and 0
otherwise, ``s = sqrt(F)`` (Li, Hastie and Church, 2006; scikit-learn's
``SparseRandomProjection`` with ``density='auto'``): distances and inner
products are kept in expectation, so the RDMs are approximations of the
unit-level ones whose error shrinks as ``1 / sqrt(k)``. The activation type
names the dimension, so a projected row is never mistaken for an exact one.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np
import scipy.sparse
import torch

from ._contract import stable_seed

_NAME = re.compile(r"^srp_([1-9][0-9]*)$")


def projection_dims(activation_type: str) -> int | None:
    """``k`` of an activation type ``'srp_<k>'``; None for other types."""
    match = _NAME.match(activation_type) if isinstance(activation_type, str) else None
    return int(match.group(1)) if match else None


def layer_seed(random_state: int, label: tuple, n_features: int, dims: int) -> int:
    """The seed of one layer's projection: the same in every process and call."""
    return stable_seed(random_state, ("srp", tuple(label), n_features, dims))


def _entries(n_features: int, dims: int, seed: int) -> tuple[np.ndarray, ...]:
    """Rows, columns and values of the non-zero entries, in row-major order.

    Every entry is non-zero with probability ``1 / s`` on its own, so the gaps
    between the non-zero positions of the flattened matrix are geometric: the
    positions are drawn as their cumulative sums, without a loop over columns.
    """
    rng = np.random.default_rng(seed)
    density = 1 / math.sqrt(n_features)
    positions = _success_positions(rng, n_features * dims, density)
    rows, cols = np.divmod(positions, dims)
    values = np.where(rng.random(len(positions)) < 0.5, -1.0, 1.0) / math.sqrt(density * dims)
    return rows, cols, values


def _success_positions(rng: np.random.Generator, size: int, p: float) -> np.ndarray:
    """The positions of the successes of ``size`` Bernoulli(``p``) trials, in order."""
    expected = size * p
    batch = int(expected + 8 * math.sqrt(expected) + 64)  # rarely too few: then draw on
    found, last = [], -1
    while last < size:
        positions = last + np.cumsum(rng.geometric(p, size=batch))
        found.append(positions[positions < size])
        last = int(positions[-1])
    return np.concatenate(found)


class Projection:
    """One layer's seeded ``(n_features, dims)`` projection, one compressed row per unit.

    :meth:`rows` gives the rows of a slice of units (a pass over some
    channels) in the form :func:`project` applies on the device: a scipy
    CSR matrix on the CPU (scipy's sparse products are many times faster
    than torch's there), a sparse torch tensor elsewhere.
    """

    def __init__(self, n_features: int, dims: int, seed: int):
        rows, self.cols, self.values = _entries(n_features, dims, seed)
        self.row_starts = np.searchsorted(rows, np.arange(n_features + 1))
        self.shape = (n_features, dims)

    def rows(self, start: int, stop: int, device: torch.device) -> Any:
        """Rows ``start:stop``, ready for :func:`project` on ``device``."""
        first, last = self.row_starts[start], self.row_starts[stop]
        starts = self.row_starts[start : stop + 1] - first
        cols, values = self.cols[first:last], self.values[first:last]
        if device.type == "cpu":
            return scipy.sparse.csr_matrix((values, cols, starts),
                                           shape=(stop - start, self.shape[1]))
        units = np.repeat(np.arange(stop - start), np.diff(starts))
        index = torch.as_tensor(np.stack([cols, units]))
        shape = (self.shape[1], stop - start)
        return torch.sparse_coo_tensor(index, torch.as_tensor(values), shape,
                                       check_invariants=True).coalesce().to(device)


def project(values: torch.Tensor, rows: Any) -> torch.Tensor:
    """Float64 ``(n, dims)`` projections of ``(n, ...)`` values by :meth:`Projection.rows`."""
    flat = values.reshape(len(values), -1).to(torch.float64)
    if isinstance(rows, torch.Tensor):
        return torch.sparse.mm(rows, flat.T).T
    return torch.from_numpy(np.ascontiguousarray((rows.T @ flat.numpy().T).T))
