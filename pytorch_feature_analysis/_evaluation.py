"""Model RDMs against groups of target RDMs: matching, point scores and resamples.

An :class:`Evaluation` holds the model RDMs that share one list of entries
and one target group (the target RDMs of one region or measure, one per
subject), both reordered to the entries they share. Its methods return
scores for draws of conditions and subjects; the public functions of
:mod:`~pytorch_feature_analysis.scores` turn them into frames.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import pandas as pd
import torch

from . import _rdm_scores
from ._contract import DERIVED_COLUMNS, PER_RDM_COLUMNS, stable_seed
from ._validation import fail, problem


@dataclass(frozen=True)
class Options:
    """How to score: the comparison method, its noise model, the device."""

    method: str
    sigma_k: Any = None
    device: torch.device = torch.device("cpu")


def described_columns(frame: pd.DataFrame, leave_out: Any = None) -> list[str]:
    """Columns that say which RDM a row is (not its content)."""
    content = set(PER_RDM_COLUMNS) | set(DERIVED_COLUMNS) | {leave_out}
    return [column for column in frame.columns if column not in content
            and not column.startswith("entry_labels") and not column.startswith("entry_keys")]


def target_groups(target_df: pd.DataFrame, subject_column: str | None
                  ) -> list[tuple[dict, pd.DataFrame]]:
    """Target rows grouped by everything that describes them but the subject.

    Without a subject column every row is a group of its own.
    """
    columns = described_columns(target_df, subject_column)
    groups: dict[Any, list] = {}
    for position in range(len(target_df)):
        row = target_df.iloc[position]
        key = (position if subject_column is None
               else tuple(_hashable(row[c]) for c in columns))
        groups.setdefault(key, []).append(position)
    return [(dict(zip(columns, (target_df.iloc[rows[0]][c] for c in columns))),
             target_df.iloc[rows]) for rows in groups.values()]


def _hashable(value: Any) -> Any:
    return repr(value) if isinstance(value, (list, dict, np.ndarray)) else value


@dataclass
class Evaluation:
    """Model RDMs (M) of one entry list against one target group (S subjects)."""

    models: pd.DataFrame
    target: dict
    entries: list
    dropped: tuple
    model_matrices: torch.Tensor
    target_matrices: torch.Tensor
    seed: int

    @property
    def subjects(self) -> int:
        return self.target_matrices.shape[0]

    def point(self, options: Options) -> torch.Tensor:
        """(M, S) scores of every model RDM against every subject's RDM."""
        identity = torch.arange(len(self.entries), device=options.device)[None]
        return next(self._gathered(options, identity, identity))[0]

    def resampled(self, options: Options, draws: torch.Tensor) -> Iterator[torch.Tensor]:
        """(B, M, S) scores for batches of bootstrap draws of conditions (B, n)."""
        if options.method not in _rdm_scores.FAST_METHODS:
            yield from self._gathered(options, draws, draws)
            return
        models, targets = self._vectors()
        for batch in draws.split(self.step):
            weights = _rdm_scores.pair_weights(batch, self.pairs)
            yield self._checked(_rdm_scores.weighted_scores(
                models, targets, weights, options.method))

    def permuted(self, options: Options, permutations: torch.Tensor) -> Iterator[torch.Tensor]:
        """(B, M, S) scores with the targets' conditions permuted (B, n)."""
        if options.method not in _rdm_scores.PERMUTED_METHODS or (
                options.sigma_k is not None and options.method not in _rdm_scores.FAST_METHODS):
            identity = torch.arange(len(self.entries), device=options.device)[None]
            yield from self._gathered(options, identity, permutations)
            return
        unit_models, target_matrices = _rdm_scores.normalised(
            *self._vectors(), self.pairs, options.method)
        for batch in permutations.split(self.step):
            yield self._checked(_rdm_scores.permuted_scores(
                unit_models, target_matrices, batch, self.pairs))

    def _gathered(self, options: Options, model_draws: torch.Tensor,
                  target_draws: torch.Tensor) -> Iterator[torch.Tensor]:
        """Scores of each draw's RDM vectors, gathered batch by batch."""
        pairs = self.pairs
        sigma = condition_variances(options.sigma_k, self.entries, options.device)
        models = torch.nan_to_num(self.model_matrices)
        count = max(len(model_draws), len(target_draws))
        for start in range(0, count, self.step):
            mine = _batch(model_draws, start, self.step, count)
            theirs = _batch(target_draws, start, self.step, count)
            valid = _rdm_scores.present(mine, pairs) & _rdm_scores.present(theirs, pairs)
            yield self._checked(_rdm_scores.scores(
                _rdm_scores.gather(models, mine, pairs),
                _rdm_scores.gather(self.target_matrices, theirs, pairs),
                valid, options.method, theirs, pairs, sigma))

    @functools.cached_property
    def pairs(self) -> _rdm_scores.Pairs:
        return _rdm_scores.Pairs.of(len(self.entries), self.model_matrices.device)

    @functools.cached_property
    def step(self) -> int:
        """Draws per batch."""
        return _rdm_scores.batch_size(len(self.models) + self.subjects, len(self.entries))

    @functools.cached_property
    def broken(self) -> torch.Tensor:
        """Model RDMs that hold an undefined (NaN) dissimilarity."""
        return torch.isnan(self.model_matrices).flatten(1).any(dim=1)

    def _vectors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The upper triangles of the model and target RDMs."""
        return (torch.nan_to_num(self.model_matrices)[:, self.pairs.first, self.pairs.second],
                self.target_matrices[:, self.pairs.first, self.pairs.second])

    def _checked(self, scores: torch.Tensor) -> torch.Tensor:
        """``scores`` with NaN for model RDMs that hold an undefined dissimilarity."""
        scores[:, self.broken] = math.nan
        return scores


def _batch(draws: torch.Tensor, start: int, size: int, count: int) -> torch.Tensor:
    """Draws ``start`` to ``start + size`` of ``count`` (one draw stands for all)."""
    if len(draws) == 1:
        return draws.expand(min(size, count - start), -1)
    return draws[start: start + size]


def condition_variances(sigma_k: Any, entries: list, device: torch.device) -> torch.Tensor | None:
    """Per-condition noise variances in the order of ``entries``."""
    if sigma_k is None:
        return None
    if isinstance(sigma_k, (dict, pd.Series)):
        missing = [key for key in entries if key not in sigma_k and key[0] not in sigma_k]
        if missing:
            raise fail("sigma_k", "a variance for every compared entry",
                       f"none for {missing}", raw=True)
        values = [sigma_k[key] if key in sigma_k else sigma_k[key[0]] for key in entries]
    else:
        values = np.asarray(sigma_k, dtype=np.float64)
        if values.shape != (len(entries),):
            raise fail("sigma_k", f"a 1-D array of {len(entries)} variances (one per compared "
                       "entry) or a mapping from entry key to variance",
                       f"shape {values.shape}", raw=True)
    values = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(values) & (values > 0)):
        raise fail("sigma_k", "positive, finite variances", values)
    return torch.as_tensor(values, device=device)


def evaluations(rdm_df: pd.DataFrame, target_df: pd.DataFrame, subject_column: str | None,
                on_missing: str, random_state: int, device: torch.device) -> list[Evaluation]:
    """Every (model entry list, target group) pair, both sides on their shared entries."""
    result = []
    groups = target_groups(target_df, subject_column)
    for keys, models in rdm_df.groupby(rdm_df["entry_keys"].map(tuple), sort=False):
        for target, rows in groups:
            entries, dropped, matrices = aligned_targets(rows, list(keys), on_missing)
            index = [list(keys).index(key) for key in entries]
            model_matrices = np.stack([np.asarray(m, dtype=np.float64)[np.ix_(index, index)]
                                       for m in models["matrix"]])
            result.append(Evaluation(
                models, target, entries, dropped,
                torch.as_tensor(model_matrices, device=device),
                torch.as_tensor(matrices, device=device),
                stable_seed(random_state, tuple(sorted(map(repr, target.items()))))))
    return result


def aligned_targets(rows: pd.DataFrame, keys: list,
                    on_missing: str) -> tuple[list, tuple, np.ndarray]:
    """The entries the models and every target row share, and the targets reordered to them."""
    row_keys = [[tuple(key) for key in row_entries] for row_entries in rows["entry_keys"]]
    for position, these in zip(rows.index, row_keys):
        missing = [key for key in keys if key not in these]
        extra = [key for key in these if key not in keys]
        if (missing or extra) and on_missing == "error":
            raise problem(f"target row {position!r} must have the model RDMs' entries: it lacks "
                          f"{missing} and has {extra} besides; pass on_missing='intersect' to "
                          "compare on the entries both have.")
    entries = [key for key in keys if all(key in these for these in row_keys)]
    if len(entries) < 3:
        raise problem(f"target rows {list(rows.index)} share {len(entries)} entries with the "
                      "model RDMs; a comparison needs at least 3.")
    matrices = []
    for position, these, matrix in zip(rows.index, row_keys, rows["matrix"]):
        order = [these.index(key) for key in entries]
        matrices.append(_checked_target(matrix, position, these)[np.ix_(order, order)])
    dropped = tuple(key for key in keys if key not in entries)
    return entries, dropped, np.stack(matrices)


def _checked_target(matrix: Any, position: Any, keys: list) -> np.ndarray:
    """A target matrix as float64, refused unless square, symmetric and defined."""
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.shape != (len(keys), len(keys)):
        raise problem(f"target row {position!r} must hold a {len(keys)} x {len(keys)} matrix "
                      f"(one row per entry key); got shape {matrix.shape} instead.")
    if not np.allclose(matrix, matrix.T, equal_nan=True):
        raise problem(f"target row {position!r} must hold a symmetric matrix; it differs "
                      f"from its transpose by up to {np.nanmax(np.abs(matrix - matrix.T)):.3g}.")
    undefined = np.argwhere(np.isnan(np.triu(matrix, 1)))
    if len(undefined):
        first, second = undefined[0]
        raise problem(f"target row {position!r} has {len(undefined)} undefined (NaN) "
                      f"dissimilarities, e.g. between {keys[first]} and {keys[second]}; "
                      "a target must be complete on the compared entries (drop those "
                      "conditions first).")
    return matrix
