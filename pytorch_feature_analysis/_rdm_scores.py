"""RDM-vs-RDM scores with missing cells, batched over resamples of conditions.

Everything here works on stacks of RDM matrices indexed by *draws*: a draw is
a vector of condition indices, the identity for a point estimate, a sample
with replacement for a bootstrap, a permutation for a permutation test. A
pair of draws of the same condition is missing (never compared with itself),
as are pairs a caller marks missing. One call scores ``B`` draws of ``M``
model RDMs against ``S`` target RDMs at once.

Whitened scores (``'corr_cov'``, ``'cosine_cov'``) follow Diedrichsen et al.
(2021) as rsatoolbox computes them: the RDM vector is extended by a zero
diagonal, double-centred by weighted least squares over the cells present
(so missing cells need no special case), optionally divided by the
conditions' noise standard deviations (``sigma_k``), and off-diagonal cells
are weighted by the square root of 2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from .dissim import _average_ranks, _kendall_tau_a, sort_rows

#: Every method the scoring functions accept.
SCORE_METHODS = ("pearson", "spearman", "kendall_tau_a", "cosine", "corr_cov", "cosine_cov")

#: Values held at once by one batch of draws (float64: 8 bytes each).
_BATCH_VALUES = 2**24


@dataclass(frozen=True)
class Pairs:
    """The cells above the diagonal of an ``n x n`` RDM."""

    first: torch.Tensor
    second: torch.Tensor
    n: int

    @classmethod
    def of(cls, n: int, device: torch.device) -> "Pairs":
        first, second = torch.triu_indices(n, n, 1, device=device)
        return cls(first, second, n)


def batch_size(rdm_count: int, n: int) -> int:
    """How many draws of ``rdm_count`` RDMs of ``n`` conditions fit one batch."""
    return max(1, _BATCH_VALUES // max(1, rdm_count * (n * (n - 1) // 2 + n)))


def gather(matrices: torch.Tensor, draws: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Upper-triangle vectors of ``matrices`` (K, n, n) under ``draws`` (B, n): (B, K, P)."""
    rows, cols = draws[:, pairs.first], draws[:, pairs.second]
    return matrices[:, rows, cols].transpose(0, 1)


def present(draws: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Pairs of two different conditions under ``draws`` (B, n): a (B, P) mask."""
    return draws[:, pairs.first] != draws[:, pairs.second]


def scores(models: torch.Tensor, targets: torch.Tensor, valid: torch.Tensor, method: str,
           draws: torch.Tensor, pairs: Pairs, sigma_k: torch.Tensor | None = None
           ) -> torch.Tensor:
    """Score (B, M, P) model vectors against (B, S, P) target vectors: (B, M, S).

    A constant vector scores NaN (for ``'cosine'``: an all-zero one); the
    vectors must hold no NaN.
    """
    if method == "kendall_tau_a":
        result = torch.stack([_kendall_tau_a(m[:, keep], t[:, keep], same=False)
                              for m, t, keep in zip(models, targets, valid)])
    elif method in ("corr_cov", "cosine_cov"):
        centre = method == "corr_cov"
        result = _products(*(_whitened(v, valid, centre, draws, pairs, sigma_k)
                             for v in (models, targets)))
    else:
        if method == "spearman":
            models, targets = _ranks(models, valid), _ranks(targets, valid)
        centre = method != "cosine"
        result = _products(_unit(models, valid, centre), _unit(targets, valid, centre))
    return result


def _products(first: torch.Tensor, second: torch.Tensor) -> torch.Tensor:
    return torch.bmm(first, second.transpose(1, 2)).clamp_(-1.0, 1.0)


def _ranks(vectors: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Average ranks among the present cells of each vector (missing cells last)."""
    filled = vectors.masked_fill(~valid[:, None], math.inf)
    return _average_ranks(filled.reshape(-1, filled.shape[2])).reshape(filled.shape).double()


def _unit(vectors: torch.Tensor, valid: torch.Tensor, centre: bool) -> torch.Tensor:
    """Present cells scaled to unit length (centred first if asked), missing cells 0.

    NaN vectors where the result is undefined: constant (centred) or all zero,
    tested exactly rather than through a rounded norm.
    """
    mask = valid[:, None].expand_as(vectors)
    low = vectors.masked_fill(~mask, math.inf).amin(dim=2)
    high = vectors.masked_fill(~mask, -math.inf).amax(dim=2)
    if centre:
        count = mask.sum(dim=2, keepdim=True)
        vectors = vectors - (vectors * mask).sum(dim=2, keepdim=True) / count
        degenerate = low == high
    else:
        degenerate = (low == 0) & (high == 0)
    vectors = vectors * mask
    unit = vectors / torch.linalg.vector_norm(vectors, dim=2, keepdim=True)
    unit[degenerate] = math.nan
    return unit


def _whitened(vectors: torch.Tensor, valid: torch.Tensor, centre: bool, draws: torch.Tensor,
              pairs: Pairs, sigma_k: torch.Tensor | None) -> torch.Tensor:
    """(B, K, P + n) unit vectors in which the cells' noise is isotropic.

    The vector, with a zero diagonal appended, loses its row and column
    effects by weighted least squares over the cells present (off-diagonal
    cells weigh 1/2, diagonal ones 1): double centring, with missing cells.
    """
    count, n = valid.shape[0], pairs.n
    weights = valid.to(vectors.dtype)
    if centre:
        total = (vectors * weights[:, None]).sum(dim=2, keepdim=True)
        vectors = vectors - total / weights.sum(dim=1)[:, None, None]
    extended = torch.cat([-0.5 * vectors * weights[:, None], vectors.new_zeros(
        (*vectors.shape[:2], n))], dim=2)
    sums = _condition_sums(extended, weights, pairs)
    normal = vectors.new_zeros((count, n, n))
    normal[:, pairs.first, pairs.second] = 0.5 * weights
    normal = normal + normal.transpose(1, 2)
    normal += torch.diag_embed(normal.sum(dim=2) + 1.0)
    effects = torch.linalg.solve(normal, sums.transpose(1, 2)).transpose(1, 2)
    fitted = torch.cat([0.5 * (effects[..., pairs.first] + effects[..., pairs.second])
                        * weights[:, None], effects], dim=2)
    residual = extended - fitted
    if sigma_k is not None:
        residual = residual / _noise_scale(sigma_k[draws], pairs)[:, None]
    residual[..., : pairs.first.numel()] *= math.sqrt(2.0)
    norm = torch.linalg.vector_norm(residual, dim=2, keepdim=True)
    unit = residual / norm
    # A constant RDM has no variance left once its row and column effects are gone.
    reference = torch.linalg.vector_norm(vectors, dim=2, keepdim=True)
    unit[(norm <= 1e-10 * reference).squeeze(2)] = math.nan
    return unit


def _condition_sums(extended: torch.Tensor, weights: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Per condition, the sum of its present off-diagonal cells and its diagonal cell."""
    count = pairs.first.numel()
    cells = extended[..., :count] * weights[:, None]
    sums = extended[..., count:].clone()
    sums.index_add_(2, pairs.first, cells)
    sums.index_add_(2, pairs.second, cells)
    return sums


def _noise_scale(sigma: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """Per drawn cell (off-diagonal, then diagonal), the product of the two noise SDs."""
    root = torch.sqrt(sigma)
    return torch.cat([root[:, pairs.first] * root[:, pairs.second], sigma], dim=1)


def pooled(vectors: np.ndarray, method: str) -> np.ndarray:
    """The RDM vector that best represents ``vectors`` (S, P) under ``method``.

    As Nili et al. (2014) and rsatoolbox: cosine methods average vectors scaled
    to unit root mean square; correlation methods average z-scored vectors
    (shifted to a minimum of 0); rank methods average ranks.
    """
    vectors = np.asarray(vectors, dtype=np.float64)
    if method in ("spearman", "kendall_tau_a"):
        return np.mean([rankdata(v) for v in vectors], axis=0)
    if method in ("cosine", "cosine_cov"):
        return np.mean(vectors / np.sqrt(np.mean(vectors**2, axis=1, keepdims=True)), axis=0)
    centred = vectors - vectors.mean(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.mean(centred / centred.std(axis=1, keepdims=True), axis=0)
    return mean - mean.min()


#: Methods scored in closed form from weighted sums (bootstrap) or once-normalised
#: vectors (permutations), without gathering each resample's RDM vectors.
FAST_METHODS = ("pearson", "spearman", "cosine")

#: Methods whose permutations reorder vectors normalised once (whitened ones
#: only without ``sigma_k``, whose weights would follow the permutation).
PERMUTED_METHODS = FAST_METHODS + ("corr_cov", "cosine_cov")


def pair_weights(draws: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """(B, P) how often each pair of two different conditions occurs among the draws' pairs.

    Drawing condition ``a`` ``k_a`` times and ``b`` ``k_b`` times gives
    ``k_a * k_b`` pairs of draws holding the dissimilarity of ``a`` and ``b``;
    pairs of draws of one condition are left out.
    """
    counts = torch.zeros(draws.shape, dtype=torch.float64, device=draws.device)
    counts.scatter_add_(1, draws, torch.ones_like(counts))
    return counts[:, pairs.first] * counts[:, pairs.second]


def weighted_scores(models: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                    method: str) -> torch.Tensor:
    """(B, M, S) scores of (M, P) against (S, P) vectors, cell ``p`` repeated ``weights[b, p]``
    times in resample ``b``: the same as scoring the resampled vectors themselves."""
    if method == "spearman":
        return _weighted_rank_scores(models, targets, weights)
    total = weights.sum(dim=1)[:, None, None]
    if method == "pearson":
        models = models - models.mean(dim=1, keepdim=True)
        targets = targets - targets.mean(dim=1, keepdim=True)
    model_sums, target_sums = weights @ models.T, weights @ targets.T
    model_squares, target_squares = weights @ (models**2).T, weights @ (targets**2).T
    products = (models[:, None, :] * targets[None]).reshape(-1, models.shape[1])
    cross = (weights @ products.T).reshape(len(weights), len(models), len(targets))
    if method == "pearson":
        cross = cross - model_sums[:, :, None] * target_sums[:, None, :] / total
        model_squares = model_squares - model_sums**2 / total[:, :, 0]
        target_squares = target_squares - target_sums**2 / total[:, :, 0]
    scale_x = models.abs().amax(dim=1) ** 2 * total[:, :, 0] * 1e-12
    scale_y = targets.abs().amax(dim=1) ** 2 * total[:, :, 0] * 1e-12
    result = cross / torch.sqrt(model_squares[:, :, None] * target_squares[:, None, :])
    result[(model_squares <= scale_x)[:, :, None].expand_as(result)] = math.nan
    result[(target_squares <= scale_y)[:, None, :].expand_as(result)] = math.nan
    return result.clamp_(-1.0, 1.0)


def _weighted_ranks(vectors: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """(B, K, P) average ranks of the cells of (K, P) vectors repeated ``weights`` (B, P)
    times, centred on the mean rank."""
    ordered, order = sort_rows(vectors)
    positions = torch.arange(vectors.shape[1], device=vectors.device).expand_as(order)
    new_run = torch.ones_like(ordered, dtype=torch.bool)
    new_run[:, 1:] = ordered[:, 1:] != ordered[:, :-1]
    start = torch.cummax(torch.where(new_run, positions, 0), dim=1).values
    last = torch.where(torch.roll(new_run, -1, dims=1), positions, vectors.shape[1] - 1)
    last[:, -1] = vectors.shape[1] - 1
    end = torch.flip(torch.cummin(torch.flip(last, [1]), dim=1).values, [1])
    count, size = weights.shape[0], order.shape
    sorted_weights = weights.index_select(1, order.reshape(-1)).view(count, *size)
    through = torch.cumsum(sorted_weights, dim=2)
    before = (through - sorted_weights).gather(2, start.expand_as(through))
    centred = (before + through.gather(2, end.expand_as(through))
               - weights.sum(dim=1)[:, None, None]) / 2
    return torch.empty_like(centred).scatter_(2, order.expand_as(centred), centred)


def _weighted_rank_scores(models: torch.Tensor, targets: torch.Tensor,
                          weights: torch.Tensor) -> torch.Tensor:
    """Spearman scores of weighted cells: Pearson of weighted average ranks."""
    model_ranks = _weighted_ranks(models, weights)
    weighted = model_ranks * weights[:, None]
    target_ranks = _weighted_ranks(targets, weights)
    cross = torch.bmm(weighted, target_ranks.transpose(1, 2))
    model_squares = (weighted * model_ranks).sum(dim=2)
    target_squares = (target_ranks**2 * weights[:, None]).sum(dim=2)
    result = cross / torch.sqrt(model_squares[:, :, None] * target_squares[:, None, :])
    result[(model_squares == 0)[:, :, None].expand_as(result)] = math.nan
    result[(target_squares == 0)[:, None, :].expand_as(result)] = math.nan
    return result.clamp_(-1.0, 1.0)


def normalised(models: torch.Tensor, targets: torch.Tensor, pairs: Pairs,
               method: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Model unit vectors (M, P), or (M, P + n) whitened, and the targets' unit vectors
    as (S, n, n) matrices: what a permutation of the targets' conditions only reorders.

    Whitening commutes with relabelling conditions (without ``sigma_k``), so the
    whitened vectors too are computed once; their diagonal cells sit on the
    matrices' diagonal.
    """
    valid = valid_all(pairs, models)
    identity = torch.arange(pairs.n, device=models.device)[None]
    if method in ("corr_cov", "cosine_cov"):
        centre = method == "corr_cov"
        unit_models, unit_targets = (
            _whitened(v[None], valid, centre, identity, pairs, None)[0] for v in (models, targets))
    else:
        if method == "spearman":
            models, targets = _ranks(models[None], valid)[0], _ranks(targets[None], valid)[0]
        centre = method != "cosine"
        unit_models = _unit(models[None], valid, centre)[0]
        unit_targets = _unit(targets[None], valid, centre)[0]
    count = pairs.first.numel()
    matrices = targets.new_zeros((len(targets), pairs.n, pairs.n))
    matrices[:, pairs.first, pairs.second] = unit_targets[:, :count]
    matrices = matrices + matrices.transpose(1, 2)
    if unit_targets.shape[1] > count:
        matrices += torch.diag_embed(unit_targets[:, count:])
    return unit_models, matrices


def permuted_scores(unit_models: torch.Tensor, target_matrices: torch.Tensor,
                    permutations: torch.Tensor, pairs: Pairs) -> torch.Tensor:
    """(B, M, S) scores with the targets' conditions permuted (B, n), from
    :func:`normalised` vectors."""
    permuted = gather(target_matrices, permutations, pairs)
    if unit_models.shape[1] > permuted.shape[2]:
        diagonal = target_matrices[:, permutations, permutations].transpose(0, 1)
        permuted = torch.cat([permuted, diagonal], dim=2)
    return torch.matmul(permuted, unit_models.T).transpose(1, 2).clamp_(-1.0, 1.0)


def valid_all(pairs: Pairs, like: torch.Tensor) -> torch.Tensor:
    """A (1, P) mask of every pair."""
    return torch.ones((1, pairs.first.numel()), dtype=torch.bool, device=like.device)
