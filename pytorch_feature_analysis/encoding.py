"""Encoding models and behaviour probes: layer activations mapped onto measurements.

An encoding model predicts each target -- a voxel's, electrode's or neuron's
response to an image -- from a layer's activations; a probe predicts a
behavioural measure (a rating, a category) from them. Each is fitted and
scored with K-fold cross-validation, every layer of every model from the
shared extraction plan, and the scores come back as a tidy frame, one row per
model, layer and target, beside the RDM frame. :func:`convolve_hrf` turns
event-related features into the design of an encoding model of fMRI time
series.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from scipy import signal, stats
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin, clone
from sklearn.decomposition import PCA
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.metrics import confusion_matrix, get_scorer
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from tqdm.auto import tqdm

from . import _ridge
from ._masks import layer_mask
from ._plan import check_extraction, plan_analysis, whole_layer_passes
from ._projection import projection_dims
from ._validation import (check_bool, check_choice, check_device, check_int, check_number,
                          check_random_state, fail, public)
from .activations import ACTIVATION_TYPES, POOLING_TYPES, activation_patterns, get_activations
from .rdms import layer_squared_distances
from .stimuli import check_images_exist

__all__ = ["fit_encoding_models", "fit_design_models", "convolve_hrf", "spm_hrf"]

MAPPING_TYPES = ACTIVATION_TYPES + POOLING_TYPES
# Copies of a layer's float32 activations held while it is fitted (features, float64 blocks).
_LAYER_COPIES = 3


class _Predictions(BaseEstimator):
    """Predictions made already, handed to a scikit-learn scorer as an estimator's."""

    def __init__(self, predictions: Any = None) -> None:
        self.predictions = predictions

    def fit(self, features: Any, target: Any) -> "_Predictions":
        return self

    def predict(self, features: Any) -> Any:
        return self.predictions


class _Regression(RegressorMixin, _Predictions):
    pass


class _Classification(ClassifierMixin, _Predictions):
    pass


def _check_images(images: Any) -> tuple[list, list]:
    """``(keys, images)``: a dict's keys, or positions ``0 .. n - 1`` of a sequence."""
    if isinstance(images, dict):
        keys, values = list(images), list(images.values())
    elif isinstance(images, (list, tuple)):
        keys, values = list(range(len(images))), list(images)
    else:
        raise fail("images", "a dict {key: image} or a list of images", images)
    if not values:
        raise fail("images", "a non-empty dict or list of images", images)
    check_images_exist(values)
    return keys, values


def _check_responses(responses: Any, keys: list, task: str) -> pd.DataFrame:
    """The responses, one row per image in the order of ``keys``, checked."""
    if isinstance(responses, pd.Series):
        responses = responses.to_frame()
    if not isinstance(responses, pd.DataFrame) or responses.shape[1] == 0:
        raise fail("responses", "a DataFrame with one row per image and one column per target",
                   responses)
    if responses.index.has_duplicates:
        twice = sorted(set(responses.index[responses.index.duplicated()]), key=str)
        raise fail("responses", "one row per image key", f"the keys {twice} twice", raw=True)
    missing = [key for key in keys if key not in responses.index]
    wanted = set(keys)
    extra = [key for key in responses.index if key not in wanted]
    if missing or extra:
        raise fail("responses", "indexed by the keys of images (dict keys or list positions)",
                   f"no row for the images {missing[:10]} and rows for the unknown keys "
                   f"{extra[:10]}", raw=True)
    responses = responses.loc[keys]
    empty = [column for column in responses if responses[column].isna().any()]
    if empty:
        raise fail("responses", "free of missing values (NaN)",
                   f"missing values in the columns {empty[:10]}", raw=True)
    if task == "regression":
        text = [c for c in responses if not pd.api.types.is_numeric_dtype(responses[c])]
        if text:
            raise fail("responses", "numeric columns for task='regression'",
                       f"the non-numeric columns {text[:10]}", raw=True)
    return responses


def _check_estimator(estimator: Any, mode: str, task: str) -> Any:
    if estimator is None:
        return LogisticRegression(max_iter=1000) if task == "classification" else None
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise fail("estimator", "None or a scikit-learn estimator with fit and predict",
                   estimator)
    if mode == "uv":
        raise fail("estimator", "None with mode='uv' (univariate least squares)", estimator)
    return estimator


def _check_scoring(scoring: Any, mode: str, task: str) -> Callable | None:
    """``None`` (Pearson r, or accuracy for classification), else a scorer checked on toy data."""
    if scoring is None:
        return None
    if mode == "uv":
        raise fail("scoring", "None with mode='uv' (Pearson r)", scoring)
    try:
        scorer = get_scorer(scoring) if isinstance(scoring, str) else scoring
        toy = np.array([0.0, 1.0, 0.0, 1.0])
        fake = _Classification(toy) if task == "classification" else _Regression(toy)
        if task == "classification":
            fake.classes_ = np.array([0.0, 1.0])
        float(scorer(fake, np.zeros((4, 1)), toy))
    except (ValueError, TypeError, AttributeError) as error:
        raise fail("scoring", "None or a scikit-learn scorer (name or callable) computed from "
                   f"predictions ({error})", scoring) from None
    return scorer


def _check_cv(cv: Any, num_images: int) -> int:
    cv = check_int(cv, "cv", minimum=2)
    if cv > num_images:
        raise fail("cv", f"at most the number of images ({num_images})", cv)
    return cv


def _folds(responses: pd.DataFrame, settings: dict) -> dict:
    """``{target: [(train, test), ...]}``; one KFold split shared by every regression target."""
    cv, seed = settings["cv"], settings["random_state"]
    if settings["task"] == "regression":
        shared = list(KFold(cv, shuffle=True, random_state=seed).split(responses))
        return {column: shared for column in responses}
    folds = {}
    for column in responses:
        counts = responses[column].value_counts()
        if counts.min() < cv:
            raise fail("responses", f"at least cv={cv} images of every class for "
                       "task='classification'", f"{counts.min()} of class "
                       f"{counts.idxmin()!r} in column {column!r}", raw=True)
        splitter = StratifiedKFold(cv, shuffle=True, random_state=seed)
        folds[column] = list(splitter.split(responses, responses[column]))
    return folds


def _check_settings(args: dict, num_images: int) -> dict:
    task = check_choice(args["task"], "task", ("regression", "classification"))
    mode = check_choice(args["mode"], "mode", ("mv", "uv"))
    if mode == "uv" and task == "classification":
        raise fail("mode", "'mv' for task='classification'", mode)
    if projection_dims(args["activation_type"]) is None:
        check_choice(args["activation_type"], "activation_type", MAPPING_TYPES)
    elif mode == "uv":
        raise fail("activation_type", "not a projection with mode='uv' (a projected "
                   "dimension is no unit of the layer)", args["activation_type"])
    cv = _check_cv(args["cv"], num_images)
    components = args["n_components"]
    if components is not None:
        components = check_int(components, "n_components", minimum=1,
                               maximum=num_images - -(-num_images // cv))
    alphas = _check_alphas(args["alphas"])
    return dict(task=task, mode=mode, cv=cv, n_components=components, alphas=alphas,
                estimator=_check_estimator(args["estimator"], mode, task),
                scorer=_check_scoring(args["scoring"], mode, task),
                activation_type=args["activation_type"],
                random_state=check_random_state(args["random_state"]),
                return_models=check_bool(args["return_models"], "return_models"),
                iter_axis=_checked_iter_axis(args["iter_axis"], mode, args["activation_type"]))


def _checked_iter_axis(iter_axis: Any, mode: str, activation_type: str) -> str | None:
    check_choice(iter_axis, "iter_axis", (None, "channel", "position"))
    if iter_axis is not None and (mode != "mv" or activation_type != "unit_level"):
        raise fail("iter_axis", "None unless mode='mv' and activation_type='unit_level'",
                   iter_axis)
    return iter_axis


def _check_iter_axis(settings: dict, plan: Any) -> None:
    """Every chosen layer has channels, rows and columns to iterate over."""
    if settings["iter_axis"] is None:
        return
    for model_plan in plan.models.values():
        flat = [label for label in model_plan.layers if len(model_plan.shape(label)) != 3]
        if flat:
            raise fail("iter_axis", f"None for layers without rows and columns ({flat} of "
                       f"model {model_plan.name!r})", settings["iter_axis"])


def _check_alphas(alphas: Any) -> tuple:
    if alphas is None:
        return _ridge.DEFAULT_ALPHAS
    try:
        values = np.asarray(alphas, dtype=np.float64)
    except (TypeError, ValueError):
        values = np.array([np.nan])
    if values.ndim != 1 or not len(values) or not np.all(np.isfinite(values) & (values > 0)):
        raise fail("alphas", "None or a sequence of positive penalties", alphas)
    return tuple(values.tolist())


def _pearson(truth: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Column-wise Pearson r (NaN where a column is constant)."""
    truth = truth - truth.mean(axis=0)
    predictions = predictions - predictions.mean(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (truth * predictions).sum(axis=0) / np.sqrt(
            (truth * truth).sum(axis=0) * (predictions * predictions).sum(axis=0))


def _scores(truth: np.ndarray, predictions: np.ndarray, folds: list, settings: dict) -> np.ndarray:
    """``(targets, folds)`` scores of out-of-fold predictions (columns are targets)."""
    scorer = settings["scorer"]
    per_fold = []
    for _train, test in folds:
        if scorer is None and settings["task"] == "regression":
            per_fold.append(_pearson(truth[test], predictions[test]))
        elif scorer is None:
            per_fold.append((truth[test] == predictions[test]).mean(axis=0))
        else:
            per_fold.append([_score_one(scorer, truth[test, t], predictions[test, t], settings)
                             for t in range(truth.shape[1])])
    return np.asarray(per_fold, dtype=np.float64).T


def _score_one(scorer: Callable, truth: np.ndarray, predictions: np.ndarray,
               settings: dict) -> float:
    if settings["task"] == "classification":
        fake = _Classification(predictions)
        fake.classes_ = np.unique(truth)
    else:
        fake = _Regression(predictions)
    return float(scorer(fake, np.zeros((len(truth), 1)), truth))


def _with_pca(estimator: Any, settings: dict) -> Any:
    if settings["n_components"] is None:
        return estimator
    return make_pipeline(PCA(settings["n_components"], random_state=settings["random_state"]),
                         estimator)


def _ridge_predictions(gram: torch.Tensor, features: np.ndarray | None, truth: np.ndarray,
                       folds: list, settings: dict, device: torch.device) -> tuple:
    """Out-of-fold predictions of the default ridge from the images' Gram matrix, its
    penalties ``(targets, folds)`` and, on request, one scikit-learn ``Ridge`` per fold with
    those penalties (fitted on ``features``)."""
    targets = torch.tensor(truth, device=device)
    predictions = np.empty_like(truth)
    alphas, models = [], []
    for train, test in folds:
        fold, chosen = _ridge.ridge_fold(gram, targets, train, test, settings["alphas"],
                                         settings["n_components"])
        predictions[test] = fold.cpu().numpy()
        alphas.append(chosen)
        if settings["return_models"]:
            ridge = Ridge(alpha=chosen if len(chosen) > 1 else chosen[0])
            models.append(_with_pca(ridge, settings).fit(features[train].astype(np.float64),
                                                         truth[train]))
    return predictions, np.stack(alphas, axis=1), models


def _estimator_predictions(features: np.ndarray, truth: np.ndarray, folds: list,
                           settings: dict) -> tuple:
    """Out-of-fold predictions of a fresh clone of the estimator fitted on each fold."""
    estimator = _with_pca(settings["estimator"], settings)
    predictions = np.empty(truth.shape, dtype=np.float64)
    models = []
    for train, test in folds:
        wanted = truth[train] if truth.shape[1] > 1 else truth[train, 0]
        fitted = clone(estimator).fit(features[train], wanted)
        predictions[test] = np.asarray(fitted.predict(features[test])).reshape(len(test), -1)
        if settings["return_models"]:
            models.append(fitted)
    return predictions, models


def _regression_rows(features: np.ndarray | None, truth: np.ndarray, folds: list,
                     settings: dict, device: torch.device,
                     gram: torch.Tensor | None = None) -> list[dict]:
    """One row per target of a multivariate regression (the default ridge needs only the
    images' ``gram`` matrix, computed from ``features`` when not given)."""
    extra: list[dict] = [{} for _ in range(truth.shape[1])]
    if settings["estimator"] is None:
        gram = _ridge.gram_matrix(features, device) if gram is None else gram
        predictions, alphas, models = _ridge_predictions(gram, features, truth, folds, settings,
                                                         device)
        for row, chosen in zip(extra, alphas):
            row["alphas"] = tuple(chosen.tolist())
    else:
        predictions, models = _estimator_predictions(features, truth, folds, settings)
    if settings["return_models"]:
        for row in extra:
            row["models"] = tuple(models)
    scores = _scores(truth, predictions, folds, settings)
    return [{"fold_scores": tuple(s.tolist()), "score": float(s.mean()), **row}
            for s, row in zip(scores, extra)]


def _location(unit: int, axes: list, activation_type: str) -> dict:
    """The channel, row and column of feature ``unit``; ``axes`` holds the layer's indices
    kept along each axis (channels, then rows and columns where it has them)."""
    if unit < 0:
        return {"unit": None, "channel": None, "row": None, "col": None}
    if activation_type != "unit_level":
        return {"unit": unit, "channel": int(axes[0][unit]), "row": None, "col": None}
    place = np.unravel_index(unit, [len(kept) for kept in axes])
    where = [int(kept[i]) for kept, i in zip(axes, place)] + [None, None]
    return {"unit": unit, "channel": where[0], "row": where[1], "col": where[2]}


def _check_mask(mask: Any, plan: Any) -> dict:
    """``{(model, layer label): (channels, rows, cols)}`` of the masked chosen layers."""
    if mask is None:
        return {}
    if not isinstance(mask, dict):
        raise fail("mask", "None or a dict {layer name or label: {'channels': [...], "
                   "'rows': [...], 'cols': [...]}}", mask)
    found = {}
    for key, parts in mask.items():
        hits = [(name, label) for name, model_plan in plan.models.items()
                for label in model_plan.layers if key in (label, label[0])]
        if not hits:
            raise fail("mask", "keys naming chosen layers", key)
        for name, label in hits:
            found[(name, label)] = layer_mask(parts, plan.models[name].shape(label), "mask",
                                              f"layer {label} of model {name!r}")
    return found


def _masked(activations: np.ndarray, shape: tuple, chosen: tuple | None,
            activation_type: str, random_state: int, label: tuple) -> tuple:
    """The layer's features under its mask, and the indices kept along each axis."""
    channels, rows, cols = chosen if chosen else (None, None, None)
    positions = None if rows is None and cols is None else (rows, cols)
    features = activation_patterns(activations, activation_type, channels, positions,
                                   random_state=random_state, layer_label=label)
    kept = [channels, rows, cols][: len(shape)]
    axes = [np.arange(size) if part is None else np.asarray(part)
            for size, part in zip(shape, kept)]
    return features, axes


def _univariate_rows(features: np.ndarray, truth: np.ndarray, folds: list, settings: dict,
                     axes: list, device: torch.device) -> list[dict]:
    """One row per target: its best single unit, where it is, and its fold scores."""
    units, scores = _ridge.best_units(features, torch.tensor(truth, device=device), folds)
    rows = []
    for target, (unit, fold_scores) in enumerate(zip(units, scores)):
        row = {"fold_scores": tuple(fold_scores.tolist()), "score": float(fold_scores.mean()),
               **_location(int(unit), axes, settings["activation_type"])}
        if settings["return_models"]:
            row["models"] = tuple(
                LinearRegression().fit(features[train, unit : unit + 1].astype(np.float64),
                                       truth[train, target])
                for train, _test in folds) if unit >= 0 else ()
        rows.append(row)
    return rows


def _classification_rows(features: np.ndarray, responses: pd.DataFrame, folds: dict,
                         settings: dict) -> list[dict]:
    """One row per behavioural column: fold scores, classes and the summed confusion matrix."""
    estimator = _with_pca(settings["estimator"], settings)
    rows = []
    for column in responses:
        truth = responses[column].to_numpy()
        classes = np.unique(truth)
        predictions = np.empty_like(truth)
        confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
        models = []
        for train, test in folds[column]:
            fitted = clone(estimator).fit(features[train], truth[train])
            predictions[test] = fitted.predict(features[test])
            confusion += confusion_matrix(truth[test], predictions[test], labels=classes)
            models.append(fitted)
        scores = _scores(truth[:, None], predictions[:, None], folds[column], settings)[0]
        row = {"fold_scores": tuple(scores.tolist()), "score": float(scores.mean()),
               "classes": tuple(classes.tolist()), "confusion": confusion}
        if settings["return_models"]:
            row["models"] = tuple(models)
        rows.append(row)
    return rows


def _layer_rows(features: np.ndarray | None, axes: list | None, responses: pd.DataFrame,
                folds: dict, settings: dict, device: torch.device,
                gram: torch.Tensor | None = None) -> list[dict]:
    """Every target's row for one layer (the ``target`` column first)."""
    if settings["task"] == "classification":
        rows = _classification_rows(features, responses, folds, settings)
    else:
        shared = folds[responses.columns[0]]
        truth = responses.to_numpy(dtype=np.float64)
        if settings["mode"] == "uv":
            rows = _univariate_rows(features, truth, shared, settings, axes, device)
        else:
            rows = _regression_rows(features, truth, shared, settings, device, gram)
    return [{"target": target, **row} for target, row in zip(responses.columns, rows)]


def _iterated_rows(features: np.ndarray, axes: list, responses: pd.DataFrame, folds: dict,
                   settings: dict, device: torch.device) -> list[dict]:
    """The rows of one layer, or of each of its channels or positions (``iter_axis``)."""
    if settings["iter_axis"] is None:
        return _layer_rows(features, axes, responses, folds, settings, device)
    units = features.reshape(len(features), *(len(kept) for kept in axes))
    if settings["iter_axis"] == "channel":
        parts = [({"channel": int(c)}, units[:, i]) for i, c in enumerate(axes[0])]
    else:
        parts = [({"row": int(r), "col": int(c)}, units[:, :, i, j])
                 for i, r in enumerate(axes[1]) for j, c in enumerate(axes[2])]
    return [{**where, **row} for where, part in parts for row in _layer_rows(
        part.reshape(len(part), -1), axes, responses, folds, settings, device)]


def _columns(settings: dict) -> list[str]:
    where = {None: [], "channel": ["channel"], "position": ["row", "col"]}
    columns = ["model", "layer_label", "layer", "layer_num", "activation_type", "target",
               *where[settings["iter_axis"]], "fold_scores", "score"]
    if settings["task"] == "classification":
        columns += ["classes", "confusion"]
    elif settings["mode"] == "uv":
        columns += ["unit", "channel", "row", "col"]
    elif settings["estimator"] is None:
        columns += ["alphas"]
    return columns + (["models"] if settings["return_models"] else [])


@public
def fit_encoding_models(
    images: Any,
    models_dict: dict,
    responses: pd.DataFrame,
    which_layers: Any = None,
    *,
    estimator: Any = None,
    cv: int = 10,
    mode: str = "mv",
    task: str = "regression",
    scoring: Any = None,
    activation_type: str = "unit_level",
    alphas: Sequence[float] | None = None,
    n_components: int | None = None,
    mask: dict | None = None,
    random_state: int = 0,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    max_memory: int | str | None = None,
    verbose: bool = True,
    return_models: bool = False,
    iter_axis: str | None = None,
) -> pd.DataFrame:
    """Cross-validated encoding models (or behaviour probes) of every layer of every model.

    Each image runs once through each model (in batches, in as many forward
    passes as the memory budget needs); from each chosen layer's activations
    every target -- a column of ``responses`` -- is predicted with K-fold
    cross-validation: the model is fitted on the training images of each
    fold and scored on its test images.

    - ``mode='mv'`` (multivariate): every target from the whole layer. The
      default estimator is ridge regression with an intercept, fitted for
      every target at once in closed form (float64, on ``device``), each
      target's penalty chosen among ``alphas`` by exact leave-one-out error
      on the fold's training images (as scikit-learn's ``RidgeCV(alphas,
      alpha_per_target=True)``). Any scikit-learn estimator or pipeline may
      be given instead, e.g. ``make_pipeline(PCA(100), LinearRegression())``
      or ``PLSRegression(10)``; a fresh clone is fitted on each fold.
    - ``mode='uv'`` (univariate): per target, the single feature (unit, or
      channel for pooled types) whose least-squares prediction has the best
      mean fold score, and where it is. The score is the best of many, so it
      is biased upwards as a measure of that feature.
    - ``task='classification'``: each column is a behavioural label decoded
      by a classifier (default ``LogisticRegression(max_iter=1000)``),
      folds stratified by the column, scored by accuracy, with a confusion
      matrix. ``task='regression'`` with behavioural columns is a regression
      probe.

    Parameters
    ----------
    images : dict or list
        ``{key: image}`` or a list of images (keys ``0 .. n - 1``); an image
        is a file path, PIL image or array.
    models_dict : dict
        ``{name: prepared model}`` or ``{name: (base_model, weights)}``.
    responses : pandas.DataFrame
        One row per image, indexed by its key, and one column per target
        (voxel, electrode, neuron, rating, label); no missing values.
    which_layers : None, str, tuple, list or dict
        ``None``: every layer (with ``original_rgb``); names or labels:
        those layers of every model; ``{model name: layers}``.
    estimator : scikit-learn estimator, optional
        With ``fit`` and ``predict``; default the closed-form ridge
        (regression) or logistic regression (classification). Not with
        ``mode='uv'``.
    cv : int, default 10
        Folds: ``KFold(cv, shuffle=True, random_state=random_state)`` over
        the images in the order of ``images`` (``StratifiedKFold`` for
        classification).
    mode : {'mv', 'uv'}, default 'mv'
    task : {'regression', 'classification'}, default 'regression'
    scoring : str or callable, optional
        A scikit-learn scorer computed from predictions (``'r2'``,
        ``'neg_mean_squared_error'``, ``'balanced_accuracy'``, ...), applied
        to each target and fold; default Pearson r between predicted and
        measured responses (accuracy for classification). Not with
        ``mode='uv'``, which scores by Pearson r.
    activation_type : str, default 'unit_level'
        The features: every unit (``'unit_level'``), or per channel its mean
        (``'feature_means'``), maximum (``'max_pool'``), median
        (``'median_pool'``), L1 norm (``'l1_pool'``) or L2 norm
        (``'l2_pool'``) over space; or the units projected to ``k`` dimensions
        (``'srp_<k>'``, seeded by ``random_state`` and the layer, see
        :func:`~pytorch_feature_analysis.sparse_random_projection`; not with
        ``mode='uv'``).
    alphas : sequence of float, optional
        Penalties of the default ridge; default ``10**-2 .. 10**8``, one per
        power of ten.
    n_components : int, optional
        Reduce the features to this many principal components before the
        estimator, with PCA fitted on each fold's training images only
        (never on its test images).
    mask : dict, optional
        ``{layer name or label: {'channels': [...], 'rows': [...], 'cols':
        [...]}}``: keep only these channels, rows and columns (each key
        optional) of the named layers, before pooling; ``unit``, ``channel``,
        ``row`` and ``col`` still say where a unit is in the whole layer.
    random_state : int, default 0
        Seed of the folds, of PCA and of models given as ``(base_model,
        'random')``.
    batch_size, device, transform
        As :func:`~pytorch_feature_analysis.get_activations`; the default
        ridge and univariate search also run on ``device``.
    max_memory : int, str or None, default None
        Budget of the activations held at once (bytes or a size such as
        ``'4GB'``). The default ridge (``mode='mv'``, no ``estimator``,
        ``iter_axis`` or ``return_models``) needs only each
        layer's ``images x images`` float64 Gram matrix: it is built as
        :func:`~pytorch_feature_analysis.get_rdms` builds a squared Euclidean RDM,
        in passes that fit the budget, a layer too large for one pass from
        channel slices, so no layer is ever held whole. Otherwise layers are
        extracted in as many passes as needed for three float32 copies of
        each (``images x units x 12`` bytes) to fit, beside one batch's
        forward pass. The ridge also holds ``images x targets`` float64
        targets. ``None``: half of the memory free now.
    verbose : bool, default True
        Show progress bars.
    return_models : bool, default False
        Add a ``models`` column with the fitted models of each fold (the
        default ridge as scikit-learn ``Ridge`` objects with the chosen
        penalties; ``'uv'``: a ``LinearRegression`` of the best unit).
    iter_axis : {None, 'channel', 'position'}, default None
        One model per layer (None), per channel (from the channel's units at
        every position; a ``channel`` column) or per position (from every
        channel's unit there; ``row`` and ``col`` columns), as DNNBrain's
        probes. Only with ``mode='mv'``, ``activation_type='unit_level'`` and
        layers with rows and columns.

    Returns
    -------
    pandas.DataFrame
        One row per model, layer and target, with columns:

        - ``model``: the model's name in ``models_dict``;
        - ``layer_label``, ``layer``, ``layer_num``: e.g. ``('conv1', 1)``,
          ``'conv1'``, ``1``;
        - ``activation_type``: as given;
        - ``target``: the column of ``responses``;
        - ``channel`` (``iter_axis='channel'``) or ``row`` and ``col``
          (``iter_axis='position'``): where in the layer the model's features
          are;
        - ``fold_scores``: tuple of the score of each fold;
        - ``score``: their mean (NaN where a fold's score is undefined, e.g.
          Pearson r of a constant prediction);
        - ``alphas`` (default ridge): tuple of each fold's penalty;
        - ``unit``, ``channel``, ``row``, ``col`` (``'uv'``): the best
          feature's index among the layer's features and its place in the
          layer (``None`` where the layer or feature has no such axis, or no
          unit has a defined score);
        - ``classes``, ``confusion`` (classification): the sorted labels and
          the confusion matrix (rows measured, columns predicted) summed over
          the folds;
        - ``models`` (``return_models``): tuple of the fitted models, one per
          fold.

    Raises
    ------
    InvalidInputError, FileNotFoundError
        Before any forward pass: responses not indexed by the image keys
        (the missing and unknown keys named), missing values, fewer images
        than folds, an estimator without ``fit``/``predict``, an unknown
        activation type, mode or scorer, an unknown model or layer.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(num_objects=4, size=32)
    >>> images = {i: s['path'] for i, s in enumerate(stimuli)}
    >>> voxels = pd.DataFrame(np.random.default_rng(0).normal(size=(16, 2)),
    ...                       columns=['v1', 'v2'])
    >>> scores = pfa.fit_encoding_models(images, {'alexnet': ('alexnet', 'random')}, voxels,
    ...                                  ['conv1', 'fc3'], cv=4, verbose=False)
    >>> scores[['layer', 'target']].values.tolist()
    [['conv1', 'v1'], ['conv1', 'v2'], ['fc3', 'v1'], ['fc3', 'v2']]
    >>> len(scores.loc[0, 'fold_scores'])
    4
    """
    keys, image_list = _check_images(images)
    settings = _check_settings(dict(locals()), len(keys))
    responses = _check_responses(responses, keys, settings["task"])
    folds = _folds(responses, settings)
    extraction = check_extraction(batch_size, device, transform, max_memory, verbose)
    plan = plan_analysis(models_dict, which_layers, image_list[0], extraction,
                         weights_seed=random_state)
    masks = _check_mask(mask, plan)
    _check_iter_axis(settings, plan)
    rows: list[dict] = []
    total = sum(len(model_plan.layers) for model_plan in plan.models.values())
    with tqdm(total=total, disable=not verbose, desc="encoding models", unit="layer") as bar:
        for model_plan in plan.models.values():
            for label, layer_rows in _model_rows(image_list, model_plan, masks, responses,
                                                 folds, settings, extraction):
                common = {"model": model_plan.name, "layer_label": label, "layer": label[0],
                          "layer_num": label[1], "activation_type": activation_type}
                rows += [{**common, **row} for row in layer_rows]
                bar.update(1)
    return pd.DataFrame(rows, columns=_columns(settings))


def _needs_only_grams(settings: dict, model_plan: Any, masked: dict) -> bool:
    """Whether the layers' rows need only the images' Gram matrices (the default ridge).

    Layers ``masked`` (``{label: mask}``) qualify where the RDM engine can
    apply the mask: not to a projection, and only to a layer whose name is
    called once.
    """
    names = [label[0] for label in model_plan.book]
    maskable = not masked or (projection_dims(settings["activation_type"]) is None
                              and all(names.count(label[0]) == 1 for label in masked))
    return (settings["estimator"] is None and settings["mode"] == "mv"
            and settings["task"] == "regression" and settings["iter_axis"] is None
            and not settings["return_models"] and maskable)


def _model_rows(images: list, model_plan: Any, masks: dict, responses: pd.DataFrame,
                folds: dict, settings: dict, extraction: Any) -> Iterator[tuple]:
    """``(layer label, rows)`` of each chosen layer of one model.

    The default ridge needs only each layer's Gram matrix, built as the RDM
    engine builds a squared Euclidean RDM (``K = -D2 / 2`` up to the centring
    every fold does), from channel slices where a layer does not fit the budget;
    other estimators and modes get each layer's features, whole.
    """
    device = extraction.device
    masked = {label: parts for (name, label), parts in masks.items() if name == model_plan.name}
    if _needs_only_grams(settings, model_plan, masked):
        squared = layer_squared_distances(images, model_plan, model_plan.layers,
                                          settings["activation_type"], extraction,
                                          settings["random_state"], masked)
        for label in model_plan.layers:
            gram = torch.as_tensor(-0.5 * squared.pop(label), device=device)
            yield label, _layer_rows(None, None, responses, folds, settings, device, gram)
        return
    for layers in whole_layer_passes(model_plan, len(images), extraction, _LAYER_COPIES):
        activations = get_activations(
            images, model_plan.model, layers, batch_size=extraction.batch_size,
            device=device, transform=extraction.transform, verbose=extraction.verbose,
            layer_book=model_plan.book)
        for label in layers:
            features, axes = _masked(activations.pop(label), model_plan.shape(label),
                                     masks.get((model_plan.name, label)),
                                     settings["activation_type"], settings["random_state"],
                                     label)
            yield label, _iterated_rows(features, axes, responses, folds, settings, device)


@public
def spm_hrf(dt: float, length: float = 32.0) -> np.ndarray:
    """SPM's canonical haemodynamic response, sampled every ``dt`` seconds.

    The double gamma ``g(t) = f(t; 6) - f(t; 16) / 6``, ``f(t; a)`` the
    gamma density of shape ``a`` and scale 1 s (SPM's parameters: response
    delay 6 s, undershoot delay 16 s, dispersions 1, response to undershoot
    ratio 6, onset 0, length 32 s), at ``t = 0, dt, 2 dt, ...`` up to
    ``length``, divided by its sum.

    Parameters
    ----------
    dt : float
        Seconds between samples (> 0).
    length : float, default 32.0
        Seconds covered (> 0).

    Returns
    -------
    numpy.ndarray
        float64, ``ceil(length / dt) + 1`` samples summing to 1.

    Examples
    --------
    >>> hrf = spm_hrf(1.0)
    >>> len(hrf), int(hrf.argmax()), round(float(hrf.sum()), 6)
    (33, 5, 1.0)
    """
    dt = check_number(dt, "dt", minimum=0, exclusive_minimum=True, what="seconds")
    length = check_number(length, "length", minimum=0, exclusive_minimum=True, what="seconds")
    times = np.arange(int(np.ceil(length / dt)) + 1) * dt
    curve = stats.gamma.pdf(times, 6.0) - stats.gamma.pdf(times, 16.0) / 6.0
    return curve / curve.sum()


def _check_events(features: Any, onsets: Any, durations: Any) -> tuple:
    values = np.asarray(features, dtype=np.float64) if not isinstance(features, pd.DataFrame) \
        else features.to_numpy(dtype=np.float64)
    if values.ndim not in (1, 2) or not len(values) or not np.all(np.isfinite(values)):
        raise fail("features", "finite numbers, one row per event", features)
    times = []
    for value, name in ((onsets, "onsets"), (durations, "durations")):
        array = np.asarray(value, dtype=np.float64)
        if array.shape != (len(values),) or not np.all(np.isfinite(array)) or np.any(array < 0):
            raise fail(name, f"{len(values)} non-negative seconds, one per event (row of "
                       "features)", value)
        times.append(array)
    return values, times[0], times[1]


@public
def convolve_hrf(
    features: Any,
    onsets: Sequence[float],
    durations: Sequence[float],
    n_volumes: int,
    tr: float,
    oversampling: int = 16,
) -> Any:
    """Event-related feature time courses convolved with the canonical HRF, one row per volume.

    Each event (a row of ``features``, e.g. one image's layer features) is
    a boxcar of its values from its onset for its duration (at least one
    time bin) on a grid of ``tr / oversampling`` seconds; the summed boxcars
    are convolved with :func:`spm_hrf` on that grid and read at each
    volume's acquisition time ``v * tr`` -- the design of an encoding model
    of fMRI time series. Events after the last volume have no effect.

    Parameters
    ----------
    features : array-like or pandas.DataFrame
        ``(events,)`` or ``(events, features)``.
    onsets, durations : sequence of float
        Seconds, one per event.
    n_volumes : int
        Volumes of the time series.
    tr : float
        Seconds between volumes.
    oversampling : int, default 16
        Time bins per volume (SPM's microtime resolution).

    Returns
    -------
    numpy.ndarray or pandas.DataFrame
        ``(n_volumes,)`` or ``(n_volumes, features)`` float64; a DataFrame
        (one row per volume, ``features``' columns) for a DataFrame.

    Examples
    --------
    >>> design = convolve_hrf([[1.0, 2.0]], onsets=[0.0], durations=[60.0], n_volumes=30, tr=2.0)
    >>> design.shape, design[-1].round(4).tolist()
    ((30, 2), [1.0, 2.0])
    """
    values, onsets, durations = _check_events(features, onsets, durations)
    n_volumes = check_int(n_volumes, "n_volumes", minimum=1)
    oversampling = check_int(oversampling, "oversampling", minimum=1)
    step = check_number(tr, "tr", minimum=0, exclusive_minimum=True, what="seconds") / oversampling
    grid = np.zeros((n_volumes * oversampling,) + values.shape[1:])
    for value, onset, duration in zip(values, onsets, durations):
        start = int(round(onset / step))
        stop = max(start + 1, int(round((onset + duration) / step)))
        grid[start:stop] += value
    hrf = spm_hrf(step).reshape((-1,) + (1,) * (values.ndim - 1))
    convolved = signal.fftconvolve(grid, hrf, axes=0)[: len(grid)]
    sampled = convolved[::oversampling]
    if isinstance(features, pd.DataFrame):
        return pd.DataFrame(sampled, columns=features.columns)
    return sampled


def _checked_design(design: Any, responses: Any) -> tuple[np.ndarray, pd.DataFrame]:
    """The design as a float64 (volumes, regressors) array and the responses as a frame."""
    if isinstance(responses, pd.Series):
        responses = responses.to_frame()
    if not isinstance(responses, pd.DataFrame) or responses.shape[1] == 0:
        raise fail("responses", "a DataFrame with one row per volume and one column per target",
                   responses)
    values = np.asarray(design, dtype=np.float64)
    if values.ndim != 2 or len(values) != len(responses):
        raise fail("design", f"a 2-D array or frame of {len(responses)} rows (one per volume "
                   "of responses)", f"shape {values.shape}", raw=True)
    if isinstance(design, pd.DataFrame) and not design.index.equals(responses.index):
        raise fail("design", "a frame with the index of responses", "another index", raw=True)
    for name, table in (("design", pd.DataFrame(values)), ("responses", responses)):
        if table.isna().to_numpy().any():
            raise fail(name, "values without NaN", "missing values", raw=True)
    return values, responses


@public
def fit_design_models(
    design: Any,
    responses: pd.DataFrame,
    *,
    estimator: Any = None,
    cv: int = 5,
    shuffle: bool = False,
    scoring: Any = None,
    alphas: Sequence[float] | None = None,
    random_state: int = 0,
    device: str | torch.device = "cpu",
    return_models: bool = False,
) -> pd.DataFrame:
    """Cross-validated encoding models of response time series from a design.

    The design is any matrix with one row per volume (or time point), e.g.
    layer features convolved with the HRF by :func:`convolve_hrf`; every
    target column of ``responses`` is predicted from it as in
    :func:`fit_encoding_models` (the same closed-form ridge with per-target
    penalties by default, or any scikit-learn estimator).

    Parameters
    ----------
    design : array_like or pandas.DataFrame
        ``(volumes, regressors)``; a frame must share the index of ``responses``.
    responses : pandas.DataFrame
        ``(volumes, targets)``: voxels, electrodes, ...
    estimator, scoring, alphas, return_models
        As :func:`fit_encoding_models`.
    cv : int, default 5
        Number of folds.
    shuffle : bool, default False
        Contiguous blocks of volumes per fold (the default, so that
        autocorrelated neighbours do not straddle training and test), or
        shuffled folds seeded by ``random_state``.
    random_state : int, default 0
        Seeds shuffled folds.
    device : str or torch.device, default 'cpu'
        Where the default ridge runs.

    Returns
    -------
    pandas.DataFrame
        One row per target: ``target``, ``fold_scores`` (tuple), ``score``
        (their mean), ``alphas`` (the default ridge's penalty per fold) and,
        with ``return_models``, ``models``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> features = rng.normal(size=(40, 3))
    >>> design = convolve_hrf(features, onsets=np.arange(40) * 6.0, durations=[2.0] * 40,
    ...                       n_volumes=120, tr=2.0)
    >>> voxels = pd.DataFrame({'v': design @ [1.0, -2.0, 0.5] + rng.normal(size=120) * 0.01})
    >>> scores = fit_design_models(design, voxels)
    >>> scores[['target', 'score']].round(2).values.tolist()
    [['v', 1.0]]
    """
    values, responses = _checked_design(design, responses)
    cv = _check_cv(cv, len(values))
    settings = dict(task="regression", mode="mv", n_components=None,
                    alphas=_check_alphas(alphas),
                    estimator=_check_estimator(estimator, "mv", "regression"),
                    scorer=_check_scoring(scoring, "mv", "regression"),
                    random_state=check_random_state(random_state),
                    return_models=check_bool(return_models, "return_models"))
    shuffled = check_bool(shuffle, "shuffle")
    splitter = KFold(cv, shuffle=shuffled, random_state=settings["random_state"] if shuffled
                     else None)
    folds = list(splitter.split(values))
    truth = responses.to_numpy(dtype=np.float64)
    device = check_device(device)
    rows = _regression_rows(values, truth, folds, settings, device)
    columns = ["target", "fold_scores", "score"] + (["alphas"] if estimator is None else [])
    columns += ["models"] if settings["return_models"] else []
    return pd.DataFrame([{"target": target, **row} for target, row in
                         zip(responses.columns, rows)], columns=columns)

