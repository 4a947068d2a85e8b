"""The RDM-frame contract: columns, ``_sub`` naming, rows, stacks and permutations.

Every module that makes or reads RDM frames takes these from here, so the
frame means the same thing everywhere (see the design document's table).
"""

from __future__ import annotations

import hashlib
from typing import Any, Sequence

import numpy as np

from ._validation import check_columns, fail
from .selection import get_extreme_dissims_total

__all__ = ["RDM_COLUMNS"]

#: The columns of a first-order RDM frame, in order (label columns follow).
RDM_COLUMNS = (
    "df_name",
    "model",
    "layer",
    "layer_num",
    "layer_label",
    "dissim_metric",
    "activation_type",
    "matrix",
    "entry_keys",
    "entry_labels",
    "kernel_set_name",
    "kernel_inds",
    "perm",
    "perm_scramble",
    "dissim_rankings",
)

#: The columns (besides the image-set labels) that identify a first-order RDM.
IDENTITY_COLUMNS = (
    "model", "layer", "layer_num", "activation_type", "kernel_set_name", "dissim_metric", "perm",
)

#: Columns that hold an RDM's own content rather than describe a condition.
PER_RDM_COLUMNS = (
    "matrix", "entry_keys", "entry_labels", "dissim_rankings", "perm_scramble", "kernel_inds",
)

#: Columns every frame of RDMs has, at any order.
REQUIRED_COLUMNS = ("matrix", "entry_keys", "entry_labels")

#: Columns that repeat other columns (never needed to tell RDMs apart).
DERIVED_COLUMNS = ("layer_label",)

#: The optional columns of time-resolved RDMs (``get_rdms(..., time_resolved=True)``):
#: ``time``, the layer's time step (int, part of a row's identity), and ``time_s``,
#: the step's start in seconds (only when the frame rate is known).
TIME_COLUMNS = ("time", "time_s")

#: Columns that are a function of another column: ``{column: the column it follows}``.
#: Where the column followed is an entry variable of a meta-RDM, they are no grouping
#: variable either.
FOLLOWING_COLUMNS = {"time_s": "time"}

# A column whose name contains one of these describes the level below once the
# frame becomes the input of a meta-RDM, and takes a '_sub' suffix.
_LEVEL_MARKERS = (
    "perm", "df_name", "dissim_metric", "entry_keys_sub", "entry_labels_sub", "entry_var_subset",
)

SUB = "_sub"


def level_down_name(column: str) -> str:
    """The name of ``column`` once its frame is the level below a meta-RDM.

    Examples
    --------
    >>> [level_down_name(name) for name in ('dissim_metric', 'dissim_metric_sub', 'obj')]
    ['dissim_metric_sub', 'dissim_metric_sub_sub', 'obj']
    """
    if any(marker in column for marker in _LEVEL_MARKERS):
        return column + SUB
    return column


def stable_seed(random_state: int, identity: Any) -> int:
    """A 64-bit seed from ``random_state`` and an identity, the same in any process.

    Seeding each permutation by what it permutes (not by how many came before)
    keeps it the same when other RDMs or groups are filtered out, computed in
    parallel or resumed.

    Examples
    --------
    >>> stable_seed(0, ('alexnet', 'conv1', 1)) == stable_seed(0, ('alexnet', 'conv1', 1))
    True
    """
    digest = hashlib.sha256(repr((random_state, identity)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def permutation(n: int, random_state: int, identity: Any) -> list[int]:
    """The seeded scramble of ``n`` entries for the RDM (or group) ``identity``.

    Examples
    --------
    >>> sorted(permutation(4, 0, ('group', 1)))
    [0, 1, 2, 3]
    """
    rng = np.random.default_rng(stable_seed(random_state, identity))
    return [int(i) for i in rng.permutation(n)]


def dissim_rankings(matrix: np.ndarray) -> tuple[int, ...]:
    """The entries in the greedy most-mutually-dissimilar order.

    Examples
    --------
    >>> dissim_rankings(np.array([[0, 1, 5], [1, 0, 2], [5, 2, 0]]))
    (0, 2, 1)
    """
    return tuple(int(i) for i in get_extreme_dissims_total(matrix, "all")[1])


def rdm_cells(matrix: Any) -> dict:
    """The per-RDM columns computed from a matrix: float64 ``matrix`` and ``dissim_rankings``."""
    values = np.array(matrix, dtype=np.float64)
    return {"matrix": values, "dissim_rankings": dissim_rankings(values)}


def scrambled(matrix: np.ndarray, scramble: Sequence[int]) -> np.ndarray:
    """``matrix`` with entry ``i`` holding what entry ``scramble[i]`` held."""
    index = np.asarray(scramble, dtype=np.intp)
    return matrix[np.ix_(index, index)]


def check_rdm_frame(frame: Any, param: str = "rdm_df",
                    needed: Sequence[str] = REQUIRED_COLUMNS) -> None:
    """A non-empty frame of RDMs holding the columns ``needed``; errors name what is missing."""
    check_columns(frame, list(dict.fromkeys(needed)), param)
    if frame.empty:
        raise fail(param, "a frame holding at least one RDM", "an empty frame", raw=True)
