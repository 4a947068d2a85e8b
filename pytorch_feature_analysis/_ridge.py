"""Closed-form ridge regression and univariate search, every target at once, in torch.

Ridge regression with an unpenalised intercept is solved in the space of the
images: with the training images' centred Gram matrix ``Kc = Q diag(s) Q'``
and centred targets ``Yc``, the fitted values for penalty ``a`` are
``Q diag(s / (s + a)) Q' Yc`` and a test image's prediction is the mean
training target plus ``kc' Q diag(1 / (s + a)) Q' Yc``, with ``kc`` its
centred products with the training images. One eigendecomposition per fold
serves every penalty and target; the penalty of each target is the one with
the smallest leave-one-out squared error (computed exactly from the
leverages, as scikit-learn's ``RidgeCV``). Keeping only the ``k`` largest
eigenvalues is ridge regression on the training images' first ``k``
principal components (PCA fitted on the training images alone).

The univariate search scores every unit as the single predictor of every
target (least squares with an intercept, fitted on the training images):
the Pearson r of such a prediction with the test targets is the sign of the
training covariance times the test correlation of unit and target.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

DEFAULT_ALPHAS = tuple(10.0**power for power in range(-2, 9))
# Float64 bytes of feature columns converted at once for the Gram matrix.
_CHUNK_BYTES = 2**25


def gram_matrix(features: np.ndarray, device: torch.device) -> torch.Tensor:
    """``features @ features.T`` in float64 on ``device``, a block of columns at a time."""
    num_images, num_features = features.shape
    gram = torch.zeros((num_images, num_images), dtype=torch.float64, device=device)
    step = max(1, _CHUNK_BYTES // (8 * num_images))
    for start in range(0, num_features, step):
        block = torch.from_numpy(np.ascontiguousarray(features[:, start : start + step]))
        block = block.to(device=device, dtype=torch.float64)
        gram.addmm_(block, block.T)
    return gram


def _centred(gram: torch.Tensor, train: np.ndarray, test: np.ndarray) -> tuple:
    """The training images' centred Gram matrix and the test images' centred products."""
    train_t = torch.as_tensor(train, device=gram.device)
    test_t = torch.as_tensor(test, device=gram.device)
    k_train = gram[train_t][:, train_t]
    column_means = k_train.mean(dim=0)
    total = column_means.mean()
    k_train = k_train - column_means[None, :] - column_means[:, None] + total
    k_test = gram[test_t][:, train_t]
    k_test = k_test - k_test.mean(dim=1, keepdim=True) - column_means[None, :] + total
    return k_train, k_test


def _spectrum(k_train: torch.Tensor, n_components: int | None) -> tuple:
    values, vectors = torch.linalg.eigh(k_train)
    values = values.clamp(min=0)
    if n_components is not None:
        values, vectors = values[-n_components:], vectors[:, -n_components:]
    return values, vectors


def _loo_choice(values, vectors, centred, alphas: Sequence[float]) -> torch.Tensor:
    """Per target, the index of the penalty with the smallest leave-one-out squared error."""
    projected = vectors.T @ centred
    squares = vectors.square()
    best = torch.zeros(centred.shape[1], dtype=torch.long, device=centred.device)
    best_error = torch.full((centred.shape[1],), torch.inf, dtype=torch.float64,
                            device=centred.device)
    for index, alpha in enumerate(alphas):
        shrink = values / (values + alpha)
        residuals = centred - vectors @ (shrink[:, None] * projected)
        leverage = 1.0 / len(centred) + squares @ shrink
        error = (residuals / (1.0 - leverage)[:, None]).square().sum(dim=0)
        better = error < best_error
        best[better] = index
        best_error = torch.where(better, error, best_error)
    return best


def ridge_fold(gram: torch.Tensor, targets: torch.Tensor, train: np.ndarray, test: np.ndarray,
               alphas: Sequence[float], n_components: int | None) -> tuple:
    """Test predictions ``(len(test), targets)`` and each target's penalty, for one fold."""
    k_train, k_test = _centred(gram, train, test)
    values, vectors = _spectrum(k_train, n_components)
    train_targets = targets[torch.as_tensor(train, device=targets.device)]
    means = train_targets.mean(dim=0)
    centred = train_targets - means
    best = _loo_choice(values, vectors, centred, alphas)
    projected = vectors.T @ centred
    basis = k_test @ vectors
    predictions = torch.empty((len(test), targets.shape[1]), dtype=torch.float64,
                              device=targets.device)
    for index in best.unique().tolist():
        chosen = best == index
        weights = projected[:, chosen] / (values + alphas[index])[:, None]
        predictions[:, chosen] = basis @ weights
    chosen_alphas = np.asarray(alphas, dtype=np.float64)[best.cpu().numpy()]
    return predictions + means, chosen_alphas


def _fold_sums(values: torch.Tensor, test: torch.Tensor) -> tuple:
    part = values[test]
    return part.sum(dim=0), part.square().sum(dim=0)


def _unit_scores(units: torch.Tensor, targets: torch.Tensor, folds: list) -> torch.Tensor:
    """``(folds, units, targets)``: Pearson r of each unit's univariate prediction, per fold."""
    totals = units.T @ targets
    sums_x, sums_y = units.sum(dim=0), targets.sum(dim=0)
    scores = []
    for train, test in folds:
        test_t = torch.as_tensor(test, device=units.device)
        n_test, n_train = len(test), len(train)
        x_sum, x_squares = _fold_sums(units, test_t)
        y_sum, y_squares = _fold_sums(targets, test_t)
        products = units[test_t].T @ targets[test_t]
        train_cov = (totals - products) - torch.outer(sums_x - x_sum, sums_y - y_sum) / n_train
        test_cov = products - torch.outer(x_sum, y_sum) / n_test
        spread = torch.outer(x_squares - x_sum.square() / n_test,
                             y_squares - y_sum.square() / n_test)
        score = torch.sign(train_cov) * test_cov / spread.sqrt()
        undefined = (spread <= 0) | (train_cov == 0)
        scores.append(torch.where(undefined, torch.nan, score))
    return torch.stack(scores)


def best_units(features: np.ndarray, targets: torch.Tensor, folds: list) -> tuple:
    """Per target, the unit whose univariate prediction has the best mean fold score.

    Returns the unit indices (``-1`` where no unit has a defined score) and
    their fold scores ``(targets, folds)``; units whose mean is undefined are
    passed over, and ties go to the first unit.
    """
    device = targets.device
    targets = targets - targets.mean(dim=0)
    num_targets = targets.shape[1]
    best_unit = np.full(num_targets, -1)
    best_mean = torch.full((num_targets,), -torch.inf, dtype=torch.float64, device=device)
    best_folds = torch.full((len(folds), num_targets), torch.nan, dtype=torch.float64,
                            device=device)
    step = max(1, _CHUNK_BYTES // (8 * max(len(folds), 1) * num_targets))
    columns = torch.arange(num_targets, device=device)
    for start in range(0, features.shape[1], step):
        units = torch.from_numpy(np.ascontiguousarray(features[:, start : start + step]))
        units = units.to(device=device, dtype=torch.float64)
        scores = _unit_scores(units - units.mean(dim=0), targets, folds)
        means = torch.nan_to_num(scores.mean(dim=0), nan=-torch.inf)
        chunk_best, where = means.max(dim=0)
        better = chunk_best > best_mean
        best_mean = torch.where(better, chunk_best, best_mean)
        best_folds[:, better] = scores[:, where, columns][:, better]
        improved = better.cpu().numpy()
        best_unit[improved] = start + where.cpu().numpy()[improved]
    return best_unit, best_folds.T.cpu().numpy()
