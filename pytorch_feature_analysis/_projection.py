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

import functools
import math
import re

import numpy as np
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


@functools.lru_cache(maxsize=16)
def _entries(n_features: int, dims: int, seed: int) -> tuple[np.ndarray, ...]:
    """Rows, columns and values of the non-zero entries, column by column."""
    rng = np.random.default_rng(seed)
    density = 1 / math.sqrt(n_features)
    counts = rng.binomial(n_features, density, size=dims)
    rows = np.concatenate([rng.choice(n_features, size=c, replace=False) for c in counts])
    cols = np.repeat(np.arange(dims), counts)
    values = np.where(rng.random(len(rows)) < 0.5, -1.0, 1.0) / math.sqrt(density * dims)
    return rows, cols, values


def projection_matrix(n_features: int, dims: int, seed: int) -> torch.Tensor:
    """The ``(n_features, dims)`` projection as a sparse float64 COO tensor."""
    rows, cols, values = _entries(n_features, dims, seed)
    index = torch.as_tensor(np.stack([rows, cols]))
    return torch.sparse_coo_tensor(index, torch.as_tensor(values), (n_features, dims),
                                   check_invariants=True).coalesce()


def projection_rows(matrix: torch.Tensor, start: int, stop: int,
                    device: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` of ``matrix``, transposed: a sparse ``(dims, stop - start)`` tensor."""
    rows, cols = matrix.indices()
    keep = (rows >= start) & (rows < stop)
    index = torch.stack([cols[keep], rows[keep] - start])
    shape = (matrix.shape[1], stop - start)
    return torch.sparse_coo_tensor(index, matrix.values()[keep], shape,
                                   check_invariants=True).coalesce().to(device)


def project(values: torch.Tensor, transposed: torch.Tensor) -> torch.Tensor:
    """Float64 ``(n, dims)`` projections of ``(n, ...)`` values by a transposed projection."""
    flat = values.reshape(len(values), -1).to(torch.float64)
    return torch.sparse.mm(transposed, flat.T).T
