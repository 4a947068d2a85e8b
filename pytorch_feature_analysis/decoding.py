"""Decoding variables from layer activations with linear classifiers.

For a two-way crossed design (say colour x object), each variable is decoded
pairwise -- every two levels, collapsing across the other variable -- from
the activations of each layer, with leave-one-out cross-validation as in the
original library; and cross-decoded: trained on one level of the other
variable, tested on another.
"""

from __future__ import annotations

import itertools
import os
import warnings
from collections import OrderedDict
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
import torch
from sklearn.base import clone
from sklearn.svm import SVC
from tqdm.auto import tqdm

from ._plan import ModelPlan, check_extraction, plan_analysis, whole_layer_passes
from . import __version__
from ._fingerprint import (
    callable_fingerprint,
    describe_changes,
    images_fingerprint,
    weights_fingerprint,
)
from ._resume import FINGERPRINTS
from ._validation import InvalidInputError, check_choice, check_int, fail, problem, public
from .activations import ACTIVATION_TYPES, activation_patterns, get_activations
from .io import frame_format, load_frame, save_frame
from .parallel import imap_ordered
from .stimuli import check_images_exist

__all__ = ["run_2way_svm_analysis"]

_LAYER_COLUMNS = ["analysis_name", "model", "layer_label", "layer", "layer_num", "activation_type"]
_RESULT_COLUMNS = ["decoding_type", "bin1", "bin2", "train_level", "test_level", "acc"]


def _check_variables(image_list: Any, var1: Any, var2: Any, grouping_vars: Any) -> list[str]:
    if isinstance(grouping_vars, str):
        grouping_vars = [grouping_vars]
    grouping_vars = list(grouping_vars or [])
    if var1 == var2:
        raise fail("var2", f"a different variable from var1 ({var1!r})", var2)
    clashing = sorted({var1, var2} & set(grouping_vars))
    if clashing:
        raise fail("grouping_vars", "variables other than var1 and var2", clashing)
    reserved = set(_LAYER_COLUMNS) | {"decoded_variable", "other_variable"} | set(_RESULT_COLUMNS)
    reserved_used = sorted(reserved & set(grouping_vars))
    if reserved_used:
        raise fail("grouping_vars", "names that are not output columns", reserved_used)
    if not isinstance(image_list, (list, tuple)) or not image_list:
        raise fail("image_list", "a non-empty list of dicts, one per image", image_list)
    needed = ["path", var1, var2, *grouping_vars]
    for position, image in enumerate(image_list):
        if not isinstance(image, dict):
            raise fail("image_list", "a list of dicts, one per image", image)
        missing = [key for key in needed if key not in image]
        if missing:
            raise InvalidInputError(
                f"Image {position} of image_list must have the keys {needed}; it lacks "
                f"{missing}."
            )
    return grouping_vars


def _groups(
    image_list: Sequence[dict], grouping_vars: list[str]
) -> "OrderedDict[tuple, list[int]]":
    groups: "OrderedDict[tuple, list[int]]" = OrderedDict()
    for position, image in enumerate(image_list):
        groups.setdefault(tuple(image[var] for var in grouping_vars), []).append(position)
    return groups


def _levels(values: Sequence) -> list:
    return list(OrderedDict.fromkeys(values))


def _check_design(image_list, members, var1, var2, group_labels) -> None:
    """Every combination of var1 and var2 levels, the same number of times."""
    where = f"the group {group_labels}" if group_labels else "image_list"
    values1 = [image_list[i][var1] for i in members]
    values2 = [image_list[i][var2] for i in members]
    levels1, levels2 = _levels(values1), _levels(values2)
    if len(levels1) < 2 or len(levels2) < 2:
        raise InvalidInputError(
            f"Decoding needs at least 2 levels of {var1!r} and of {var2!r} in {where}; got "
            f"{levels1} and {levels2} instead."
        )
    counts = {cell: 0 for cell in itertools.product(levels1, levels2)}
    for cell in zip(values1, values2):
        counts[cell] += 1
    by_count: dict[int, list] = {}
    for cell, count in counts.items():
        by_count.setdefault(count, []).append(cell)
    if len(by_count) > 1:
        listing = "; ".join(
            f"{count} image(s) for {', '.join(map(repr, cells))}"
            for count, cells in sorted(by_count.items())
        )
        raise InvalidInputError(
            f"Decoding needs a balanced crossed design of ({var1!r}, {var2!r}) in {where} "
            f"(every combination, the same number of times); got {listing} instead."
        )


def _decode(
    features: np.ndarray, labels: np.ndarray, folds: list, estimator: Any
) -> tuple[int, int]:
    """Fit a fresh copy of the estimator on each fold; count correct test predictions."""
    correct = total = 0
    for train, test in folds:
        fitted = clone(estimator).fit(features[train], labels[train])
        correct += int(np.sum(fitted.predict(features[test]) == labels[test]))
        total += len(test)
    return correct, total


def _pair_tasks(
    features: np.ndarray,
    decoded: np.ndarray,
    other: np.ndarray,
    bins: tuple,
    other_levels: list,
    cv: Any,
    cross_decoding: bool,
    estimator: Any,
) -> Iterator[tuple[dict, dict]]:
    """(row fields, task kwargs) for the within row of one pair, then its cross rows."""
    first = np.flatnonzero(decoded == bins[0])
    second = np.flatnonzero(decoded == bins[1])
    members = np.concatenate([first, second])
    labels = np.repeat([0, 1], [len(first), len(second)])
    position = np.concatenate([np.arange(len(first)), np.arange(len(second))])
    pair_features = features[members]
    if cv is None:
        folds = [
            (np.flatnonzero(position != k), np.flatnonzero(position == k))
            for k in range(len(first))
        ]
    else:
        with warnings.catch_warnings():  # splitters without groups say they ignore them
            warnings.filterwarnings("ignore", message="The groups parameter is ignored")
            folds = [
                (np.asarray(train), np.asarray(test))
                for train, test in cv.split(pair_features, labels, position)
            ]
    row = {"decoding_type": "within", "bin1": bins[0], "bin2": bins[1],
           "train_level": None, "test_level": None}
    yield row, {"features": pair_features, "labels": labels, "folds": folds, "estimator": estimator}
    if not cross_decoding:
        return
    pair_other = other[members]
    for train_level, test_level in itertools.permutations(other_levels, 2):
        train = np.flatnonzero(pair_other == train_level)
        test = np.flatnonzero(pair_other == test_level)
        used = np.concatenate([train, test])
        fold = (np.arange(len(train)), np.arange(len(train), len(used)))
        row = {"decoding_type": "cross", "bin1": bins[0], "bin2": bins[1],
               "train_level": train_level, "test_level": test_level}
        yield row, {"features": pair_features[used], "labels": labels[used], "folds": [fold],
                    "estimator": estimator}


def _group_tasks(
    group_images: list[dict],
    activations: dict,
    var1: str,
    var2: str,
    layers: list,
    activation_type: str,
    cv: Any,
    cross_decoding: bool,
    estimator: Any,
    fields: list[dict],
) -> Iterator[dict]:
    """Yield each row's task lazily, appending its identifying fields to ``fields``."""
    for decoded_var, other_var in ((var1, var2), (var2, var1)):
        decoded = _object_array([image[decoded_var] for image in group_images])
        other = _object_array([image[other_var] for image in group_images])
        for label in layers:
            features = activation_patterns(activations[label], activation_type)
            for bins in itertools.combinations(_levels(decoded), 2):
                for row, task in _pair_tasks(
                    features, decoded, other, bins, _levels(other), cv, cross_decoding, estimator
                ):
                    fields.append(
                        {"layer_label": label, "layer": label[0], "layer_num": label[1],
                         "decoded_variable": decoded_var, "other_variable": other_var, **row}
                    )
                    yield task


def _object_array(values: Sequence) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _frame(rows: list[dict], columns: list[str]) -> pd.DataFrame:
    """The result frame; the levels trained and tested on stay Python objects (None for
    'within' rows) whatever the rows hold."""
    frame = pd.DataFrame(rows, columns=columns)
    for column in ("train_level", "test_level"):
        frame[column] = pd.Series([row[column] for row in rows], index=frame.index, dtype=object)
    return frame


def _save(frame: pd.DataFrame, save_path: Any, existing: pd.DataFrame | None,
          fingerprints: dict) -> None:
    if existing is not None:
        fingerprints = {**existing.attrs.get(FINGERPRINTS, {}), **fingerprints}
        frame = pd.concat([existing, frame], ignore_index=True)
    if frame_format(save_path) == "csv":
        frame = frame.assign(layer_label=frame["layer_label"].map(str))
    frame.attrs[FINGERPRINTS] = fingerprints
    save_frame(frame, save_path)


def _fingerprints(plan: Any, image_list: list, analysis_name: str, settings: dict) -> dict:
    """``{(analysis, model) key: {part: fingerprint}}``: what makes each model's rows."""
    shared = {
        "preprocessing": callable_fingerprint(plan.extraction.transform),
        "images": images_fingerprint([image["path"] for image in image_list]),
        "decoding": repr([settings[k] for k in ("estimator", "cv", "activation_type",
                                                "cross_decoding", "var1", "var2")]),
        "version": __version__,
    }
    return {repr((analysis_name, name)): {"weights": weights_fingerprint(model_plan.model),
                                          **shared}
            for name, model_plan in plan.models.items()}


def _rows_on_file(save_path: Any, append: bool, fingerprints: dict,
                  on_change: str) -> pd.DataFrame | None:
    """The rows to keep from ``save_path`` (``None`` without ``append`` or a file)."""
    if not append or save_path is None or not os.path.exists(save_path):
        return None
    existing = load_frame(save_path, allow_pickle=frame_format(save_path) == "pickle")
    return _without_changed(existing, fingerprints, on_change)


def _without_changed(existing: pd.DataFrame, current: dict, on_change: str) -> pd.DataFrame:
    """The rows on file, less those of this analysis' models that were made differently."""
    stored = existing.attrs.get(FINGERPRINTS, {})
    keys = [repr((name, model))
            for name, model in zip(existing["analysis_name"], existing["model"])]
    changed = {key: describe_changes(stored.get(key, {}), parts)
               for key, parts in current.items() if key in stored and key in keys}
    changed = {key: parts for key, parts in changed.items() if parts}
    if changed and on_change == "error":
        key, parts = next(iter(changed.items()))
        raise problem(f"the rows on file for {key} were made with other {', '.join(parts)} than "
                      "this call's; pass on_change='recompute' to replace them.")
    kept = existing[[key not in changed for key in keys]].reset_index(drop=True)
    kept.attrs = {FINGERPRINTS: {k: v for k, v in stored.items() if k not in changed}}
    return kept


@public
def run_2way_svm_analysis(
    image_list: Sequence[dict],
    var1: str,
    var2: str,
    grouping_vars: Sequence[str],
    models_dict: dict,
    which_layers: Any,
    analysis_name: str,
    save_path: str | os.PathLike | None,
    *,
    estimator: Any = None,
    cv: Any = None,
    cross_decoding: bool = True,
    activation_type: str = "unit_level",
    append: bool = True,
    num_cores: int = 1,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    random_state: int | None = 0,
    verbose: bool = True,
    max_memory: int | str | None = None,
    on_change: str = "recompute",
) -> pd.DataFrame:
    """Pairwise decoding of two crossed variables from each layer's activations.

    Within each group of images (one per combination of the grouping
    variables), for each model and layer, and for each of ``var1`` and
    ``var2``: every pair of its levels is decoded by a linear SVM (``C=1``)
    collapsing across the other variable, with leave-one-out
    cross-validation as in the original library: fold ``k`` holds out the
    ``k``-th image of each of the two levels (in ``image_list`` order) and
    trains on the rest. With ``cross_decoding``, each pair is also decoded
    across the other variable: trained on the images of one of its levels
    and tested on those of another, for every ordered pair of its levels.

    Each image runs once through each model, in batches; the features are
    the layer's activations flattened (``activation_type='unit_level'``) or
    each channel's mean over space (``'feature_means'``). Fits run in
    ``num_cores`` joblib workers, one task per output row (all its folds);
    the frame is the same for any ``num_cores``.

    Parameters
    ----------
    image_list : list of dict
        One dict per image: ``'path'`` (a file path, PIL image or array) and
        a value for ``var1``, ``var2`` and each grouping variable. Within a
        group, every combination of ``var1`` and ``var2`` levels must appear
        the same number of times.
    var1, var2 : str
        The two crossed variables to decode.
    grouping_vars : list of str
        The analysis runs separately within each combination of these
        (``[]``: one group of all images).
    models_dict : dict
        ``{name: prepared model}`` or ``{name: (base_model, weights)}``
        (see :func:`~pytorch_feature_analysis.prepare_models`).
    which_layers : None, str, tuple, list or dict
        ``None``: every layer of every model (including ``original_rgb``);
        layer names or labels (e.g. ``['conv1', ('fc2', 19)]``): those layers
        of every model; ``{model_name: [layers]}``: those layers of the named
        models, every layer of the others.
    analysis_name : str
        Stored in the ``analysis_name`` column.
    save_path : str, path-like or None
        Where the frame is written (atomically, after each model), as
        parquet (``.parquet``), csv (``.csv``; ``layer_label`` is written as
        text) or pickle (``.p``), by its extension. ``None``: not saved.
    estimator : scikit-learn classifier, optional
        Any estimator or pipeline with ``fit`` and ``predict``; a fresh
        clone is fitted per fold. Default ``sklearn.svm.SVC(kernel='linear',
        C=1)``, as in the original library.
    cv : scikit-learn splitter, optional
        Folds for the ``'within'`` rows instead of the default. It is called
        as ``cv.split(X, y, groups)`` on the two levels' images, with
        ``groups`` each image's position among the images of its level (the
        default folds are ``LeaveOneGroupOut`` on these groups). Accuracy
        is pooled over every held-out prediction.
    cross_decoding : bool, default True
        Add the ``'cross'`` rows.
    activation_type : {'unit_level', 'feature_means'}, default 'unit_level'
        The features: every unit, or each channel's mean over space.
    append : bool, default True
        If ``save_path`` exists, keep its rows and write this call's after
        them (as the original library did); ``False``: overwrite it. A
        parquet or pickle file records what made each model's rows (weights,
        preprocessing, images, decoding settings, library version): rows of
        the same ``analysis_name`` and model made differently are replaced
        (see ``on_change``). A csv file keeps no such record.
    num_cores : int, default 1
        Parallel joblib workers for the fits.
    batch_size : int, default 32
        Images per forward pass.
    device : {'cpu', 'cuda'} or torch.device, default 'cpu'
        Where the forward passes run.
    transform : callable, optional
        Image preprocessing (PIL image -> tensor); default
        :func:`~pytorch_feature_analysis.default_transform`.
    random_state : int or None, default 0
        Seed for models given as ``(base_model, 'random')``.
    verbose : bool, default True
        Show progress bars.
    on_change : {'recompute', 'error'}, default 'recompute'
        With ``append``, what to do with rows on file of this
        ``analysis_name`` and model that were made differently: replace them,
        or raise an error naming what changed.
    max_memory : int, str or None, default None
        Memory budget of the activations held at once (bytes, or a size such
        as ``'4GB'``): a group's layers are extracted in as many forward
        passes as needed for their activations (``images x units x 4`` bytes
        per layer) to fit. ``None``: half of the memory free now.

    Returns
    -------
    pandas.DataFrame
        This call's results, one row per group, model, layer, decoded
        variable, pair of its levels and decoding type (and, for
        ``'cross'``, pair of levels of the other variable), with columns:

        - ``analysis_name``: ``analysis_name``;
        - ``model``: the model's name in ``models_dict``;
        - ``layer_label``, ``layer``, ``layer_num``: the layer, e.g.
          ``('conv1', 1)``, ``'conv1'``, ``1``;
        - ``activation_type``: ``'unit_level'`` or ``'feature_means'``;
        - ``decoded_variable``: ``var1`` or ``var2``;
        - ``other_variable``: the other one;
        - one column per grouping variable: the group's level;
        - ``decoding_type``: ``'within'`` (cross-validated, collapsing across
          the other variable) or ``'cross'``;
        - ``bin1``, ``bin2``: the two decoded levels;
        - ``train_level``, ``test_level``: for ``'cross'`` rows, the levels
          of ``other_variable`` trained and tested on (``None`` for
          ``'within'`` rows);
        - ``acc``: the proportion of held-out images classified correctly
          (chance is 0.5).

    Raises
    ------
    InvalidInputError, FileNotFoundError
        Before any forward pass: images lacking a variable (named), a group
        that is not a balanced crossed design (its cells and counts named),
        a missing image, an unknown model or layer (the valid ones listed),
        an estimator without ``fit``/``predict``, or a ``save_path`` of an
        unknown format.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 120, 240), size=32)
    >>> svm_df = pfa.run_2way_svm_analysis(
    ...     stimuli, 'color', 'obj', [], {'alexnet': ('alexnet', 'random')},
    ...     {'alexnet': ['fc3']}, 'demo', None, verbose=False)
    >>> svm_df.groupby('decoding_type').size().to_dict()  # 2 variables x 3 pairs
    {'cross': 36, 'within': 6}
    >>> svm_df.loc[0, ['layer', 'decoded_variable', 'bin1', 'bin2']].tolist()
    ['fc3', 'color', '000', '120']
    """
    grouping_vars = _check_variables(image_list, var1, var2, grouping_vars)
    groups = _groups(image_list, grouping_vars)
    for group, members in groups.items():
        _check_design(image_list, members, var1, var2, dict(zip(grouping_vars, group)))
    check_images_exist(image["path"] for image in image_list)
    estimator = _check_estimator(estimator, cv)
    check_choice(activation_type, "activation_type", ACTIVATION_TYPES)
    check_int(num_cores, "num_cores", minimum=1)
    if save_path is not None:
        frame_format(save_path)
    extraction = check_extraction(batch_size, device, transform, max_memory, verbose)
    plan = plan_analysis(models_dict, which_layers, image_list[0]["path"], extraction,
                         weights_seed=random_state)
    check_choice(on_change, "on_change", ("recompute", "error"))
    columns = (
        _LAYER_COLUMNS + ["decoded_variable", "other_variable"] + grouping_vars + _RESULT_COLUMNS
    )
    settings = dict(var1=var1, var2=var2, activation_type=activation_type, cv=cv,
                    cross_decoding=cross_decoding, estimator=estimator, num_cores=num_cores)
    fingerprints = _fingerprints(plan, image_list, analysis_name, settings)
    existing = _rows_on_file(save_path, append, fingerprints, on_change)
    rows: list[dict] = []
    total = _rows_per_layer(image_list, groups, var1, var2, cross_decoding) * sum(
        len(model_plan.layers) for model_plan in plan.models.values())
    with tqdm(total=total, disable=not verbose, desc="decoding", unit="row") as bar:
        for model_plan in plan.models.values():
            for group, members in groups.items():
                group_rows = _decode_group(model_plan, [image_list[i] for i in members],
                                           extraction, settings, bar)
                common = {"analysis_name": analysis_name, "model": model_plan.name,
                          "activation_type": activation_type, **dict(zip(grouping_vars, group))}
                rows += [{column: {**common, **row}.get(column) for column in columns}
                         for row in group_rows]
            if save_path is not None:
                _save(_frame(rows, columns), save_path, existing, fingerprints)
    return _frame(rows, columns)


def _check_estimator(estimator: Any, cv: Any) -> Any:
    if estimator is None:
        estimator = SVC(kernel="linear", C=1)
    if not (hasattr(estimator, "fit") and hasattr(estimator, "predict")):
        raise fail("estimator", "a scikit-learn classifier with fit and predict", estimator)
    if cv is not None and not hasattr(cv, "split"):
        raise fail("cv", "None or a scikit-learn splitter with a split method", cv)
    return estimator


def _rows_per_layer(image_list, groups, var1, var2, cross_decoding) -> int:
    rows = 0
    for members in groups.values():
        for decoded_var, other_var in ((var1, var2), (var2, var1)):
            num_levels = len(_levels(image_list[i][decoded_var] for i in members))
            num_other = len(_levels(image_list[i][other_var] for i in members))
            per_pair = 1 + (num_other * (num_other - 1) if cross_decoding else 0)
            rows += num_levels * (num_levels - 1) // 2 * per_pair
    return rows


def _decode_group(model_plan: ModelPlan, group_images: list[dict], extraction: Any,
                  settings: dict, bar: Any) -> list[dict]:
    """Every row of one group through one model, layer pass by layer pass, in output order."""
    rows = []
    for layers in whole_layer_passes(model_plan, len(group_images), extraction, copies=2):
        activations = get_activations(
            [image["path"] for image in group_images], model_plan.model, layers,
            batch_size=extraction.batch_size, device=extraction.device,
            transform=extraction.transform, verbose=extraction.verbose,
            layer_book=model_plan.book,
        )
        fields: list[dict] = []
        tasks = _group_tasks(
            group_images, activations, settings["var1"], settings["var2"], layers,
            settings["activation_type"], settings["cv"], settings["cross_decoding"],
            settings["estimator"], fields,
        )
        for position, (correct, tested) in enumerate(
            imap_ordered(_decode, tasks, settings["num_cores"])
        ):
            rows.append({**fields[position], "acc": correct / tested})
            bar.update(1)
    order = {label: rank for rank, label in enumerate(model_plan.layers)}
    variables = [settings["var1"], settings["var2"]]
    return sorted(rows, key=lambda row: (variables.index(row["decoded_variable"]),
                                         order[row["layer_label"]]))
