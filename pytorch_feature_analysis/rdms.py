"""The RDM frame: one representational dissimilarity matrix per row.

:func:`get_rdms` runs every image set through every model once, in batches,
and turns the activations of each layer into RDMs -- one per image set x
model x layer x dissimilarity metric x activation type x kernel set x
permutation -- with the metadata in the other columns.
"""

from __future__ import annotations

import hashlib
import itertools
import numbers
import os
import time
from collections import OrderedDict
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import pandas as pd
from torch import nn
from tqdm.auto import tqdm

from .activations import (
    ACTIVATION_TYPES,
    ORIGINAL_RGB,
    feature_means,
    get_activations,
    model_layers,
    resolve_layers,
)
from .dissim import Metric, compute_rdms, resolve_metrics
from .io import frame_format, load_frame, save_frame
from .models import prepare_models
from .parallel import imap_ordered
from .selection import get_extreme_dissims_total
from .stimuli import check_images_exist, preprocess_images, validate_image_set

__all__ = ["RDM_COLUMNS", "get_rdms", "rdm_identity_columns"]

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

# Checkpoints: the file is rewritten after an image set x model whenever the
# last write took at most this share of the work done since, so writing stays
# a small part of a long run and an interruption loses little.
_CHECKPOINT_SHARE = 0.1

_IDENTITY = ("model", "layer", "layer_num", "activation_type", "kernel_set_name", "dissim_metric", "perm")


def rdm_identity_columns(rdm_df: pd.DataFrame) -> list[str]:
    """The columns that identify an RDM of a first-order frame.

    Model, layer, activation type, kernel set, metric and permutation, plus
    every image-set label column (any column that is not one of
    :data:`RDM_COLUMNS`). ``get_rdms(..., append=True)`` skips an RDM whose
    identity is already in the file.

    Examples
    --------
    >>> frame = pd.DataFrame(columns=list(RDM_COLUMNS) + ['obj'])
    >>> rdm_identity_columns(frame)[-2:]
    ['perm', 'obj']
    """
    labels = [column for column in rdm_df.columns if column not in RDM_COLUMNS]
    return list(_IDENTITY) + labels


def _stable_seed(random_state: int, identity: tuple) -> int:
    digest = hashlib.sha256(repr((random_state, identity)).encode()).digest()
    return int.from_bytes(digest[:8], "little")


def _label_key(labels: dict) -> frozenset:
    return frozenset((key, value) for key, value in labels.items())


def _row_identity(model: str, label: tuple, activation_type: str, kernel_set: str, metric: str,
                  perm: Any, labels: frozenset) -> tuple:
    return (model, label[0], int(label[1]), activation_type, kernel_set, metric, perm, labels)


def _existing_identities(existing: pd.DataFrame) -> list[tuple]:
    label_columns = [c for c in existing.columns if c not in RDM_COLUMNS]
    identities = []
    for row in existing.itertuples(index=False):
        values = row._asdict() if hasattr(row, "_asdict") else dict(zip(existing.columns, row))
        labels = frozenset(
            (column, values[column])
            for column in label_columns
            if not (np.isscalar(values[column]) and pd.isna(values[column]))
        )
        identities.append(
            _row_identity(
                values["model"],
                (values["layer"], values["layer_num"]),
                values["activation_type"],
                values["kernel_set_name"],
                values["dissim_metric"],
                values["perm"],
                labels,
            )
        )
    return identities


def _ranked_product(*sequences: Sequence) -> Iterator[tuple[tuple, tuple]]:
    """Every combination of the sequences' items, with their positions.

    Examples
    --------
    >>> list(_ranked_product('ab', 'x'))
    [((0, 0), ('a', 'x')), ((1, 0), ('b', 'x'))]
    """
    ranked = [list(enumerate(sequence)) for sequence in sequences]
    for combination in itertools.product(*ranked):
        yield tuple(rank for rank, _ in combination), tuple(item for _, item in combination)


def _check_kernel_sets(kernel_sets: Any) -> list[tuple[str, Any]]:
    if (
        isinstance(kernel_sets, tuple)
        and len(kernel_sets) == 2
        and isinstance(kernel_sets[0], str)
        and (kernel_sets[1] == "all" or isinstance(kernel_sets[1], dict))
    ):
        kernel_sets = [kernel_sets]
    checked = []
    for kernel_set in kernel_sets:
        if not (
            isinstance(kernel_set, tuple)
            and len(kernel_set) == 2
            and isinstance(kernel_set[0], str)
            and (isinstance(kernel_set[1], dict) or kernel_set[1] == "all")
        ):
            raise ValueError(
                "The 'kernel_sets' parameter of get_rdms must be a list of (name, 'all') or "
                "(name, {(model, layer): [kernel indices]}) tuples; got "
                f"{kernel_set!r} instead."
            )
        checked.append(kernel_set)
    names = [name for name, _ in checked]
    if len(set(names)) != len(names):
        raise ValueError(f"Kernel set names must be unique; got {names} instead.")
    return checked


def _check_kernel_set_layers(kernel_sets: list, books: dict) -> None:
    """Refuse kernel sets naming a model or layer that does not exist (a typo would be ignored)."""
    for name, kernel_set in kernel_sets:
        if kernel_set == "all":
            continue
        for key in kernel_set:
            model_name, layer = key if isinstance(key, tuple) and len(key) == 2 else (None, None)
            if model_name not in books:
                raise ValueError(
                    f"Kernel set {name!r} must be keyed by (model, layer name) with a model of "
                    f"models_dict ({list(books)}); got {key!r} instead."
                )
            layer_names = [label[0] for label in books[model_name]]
            if layer not in layer_names:
                raise ValueError(
                    f"Kernel set {name!r} names the layer {layer!r}, which model {model_name!r} "
                    f"does not have; its layers are {', '.join(layer_names)}."
                )


def _check_combinations(image_set: tuple) -> list[tuple]:
    labels, images, entry_variables, combinations = image_set
    checked = []
    for combination in combinations or []:
        if not isinstance(combination, (tuple, list)) or len(combination) != 5:
            raise ValueError(
                f"A combination of image set {dict(labels)} must be (entry_key, source entry "
                "keys, func, func_kwargs, unpack_args); got "
                f"{combination!r:.200} instead."
            )
        name, sources, func, kwargs, unpack = combination
        if not isinstance(name, tuple):
            name = (name,)
        if len(name) != len(entry_variables):
            raise ValueError(
                f"The combination {name!r} of image set {dict(labels)} must be named by an "
                f"entry key of {len(entry_variables)} value(s), like the images' keys."
            )
        if name in images:
            raise ValueError(
                f"The combination {name!r} of image set {dict(labels)} reuses an image's "
                "entry key."
            )
        missing = [source for source in sources if source not in images]
        if missing:
            raise ValueError(
                f"The combination {name!r} of image set {dict(labels)} combines entries "
                f"{missing} that are not images of the set; its images are {list(images)}."
            )
        checked.append((name, list(sources), func, dict(kwargs or {}), bool(unpack)))
    return checked


def _entry_arrays(values: np.ndarray, activation_type: str, image_keys: list, combinations: list) -> np.ndarray:
    """Per-entry arrays of one layer and activation type, combinations appended."""
    base = feature_means(values) if activation_type == "feature_means" else values
    if not combinations:
        return base
    position = {key: index for index, key in enumerate(image_keys)}
    combined = []
    for name, sources, func, kwargs, unpack in combinations:
        parts = [base[position[source]] for source in sources]
        result = np.asarray(func(*parts, **kwargs) if unpack else func(parts, **kwargs))
        if result.shape != base.shape[1:]:
            raise ValueError(
                f"The combination {name!r} must return an array of shape {base.shape[1:]} "
                f"(one entry's {activation_type} pattern); got shape {result.shape} instead."
            )
        combined.append(result)
    return np.concatenate([base, np.stack(combined).astype(base.dtype)])


def _kernel_indices(kernel_set: Any, model_name: str, layer: str, num_channels: int) -> list[int]:
    if kernel_set == "all" or (model_name, layer) not in kernel_set:
        return list(range(num_channels))
    indices = [int(index) for index in kernel_set[(model_name, layer)]]
    bad = [index for index in indices if not 0 <= index < num_channels]
    if bad or not indices:
        raise ValueError(
            f"Kernel indices for ({model_name!r}, {layer!r}) must lie in 0..{num_channels - 1} "
            f"(the layer has {num_channels} channels); got {bad or indices} instead."
        )
    return indices


def _image_set_rdms(
    image_set: tuple,
    model_name: str,
    model: nn.Module,
    layer_book: dict,
    todo: dict,
    metrics: list[Metric],
    kernel_sets: list,
    num_perms: int,
    rdm_name: str,
    random_state: int,
    batch_size: int,
    device: str,
    transform: Callable | None,
    verbose: bool,
) -> list[dict]:
    """All missing RDM rows of one image set through one model.

    ``todo`` maps each layer label to the set of (activation type, kernel set,
    metric, perm) still to compute.
    """
    labels, images, entry_variables, _ = image_set
    combinations = _check_combinations(image_set)
    image_keys = list(images)
    entry_keys = tuple(image_keys) + tuple(name for name, *_ in combinations)
    entry_labels = tuple(dict(zip(entry_variables, key)) for key in entry_keys)
    activations = get_activations(
        [images[key] for key in image_keys],
        model,
        [label for label in layer_book if label in todo],
        batch_size=batch_size,
        device=device,
        transform=transform,
        verbose=verbose,
        layer_book=layer_book,
    )
    label_key = _label_key(labels)
    perms = ["orig_data"] + list(range(1, num_perms + 1))
    rows = []
    for layer_label, values in activations.items():
        wanted = todo[layer_label]
        for activation_type in ACTIVATION_TYPES:
            entries = _entry_arrays(values, activation_type, image_keys, combinations)
            for kernel_set_name, kernel_set in kernel_sets:
                needed = [
                    metric
                    for metric in metrics
                    if any((activation_type, kernel_set_name, metric.name, p) in wanted for p in perms)
                ]
                if not needed:
                    continue
                kernel_inds = _kernel_indices(kernel_set, model_name, layer_label[0], entries.shape[1])
                selected = entries if kernel_set == "all" else entries[:, kernel_inds]
                patterns = selected.reshape(len(entry_keys), -1)
                for metric, matrix in zip(needed, compute_rdms(patterns, needed)):
                    for perm in perms:
                        if (activation_type, kernel_set_name, metric.name, perm) not in wanted:
                            continue
                        identity = _row_identity(
                            model_name, layer_label, activation_type, kernel_set_name, metric.name,
                            perm, label_key,
                        )
                        if perm == "orig_data":
                            scramble = list(range(len(entry_keys)))
                            final = matrix
                        else:
                            rng = np.random.default_rng(_stable_seed(random_state, identity))
                            scramble = [int(i) for i in rng.permutation(len(entry_keys))]
                            final = matrix[np.ix_(scramble, scramble)]
                        rankings = get_extreme_dissims_total(final, "all")[1]
                        row = {
                            "df_name": rdm_name,
                            "model": model_name,
                            "layer": layer_label[0],
                            "layer_num": int(layer_label[1]),
                            "layer_label": (layer_label[0], int(layer_label[1])),
                            "dissim_metric": metric.name,
                            "activation_type": activation_type,
                            "matrix": np.array(final, dtype=np.float64),
                            "entry_keys": entry_keys,
                            "entry_labels": entry_labels,
                            "kernel_set_name": kernel_set_name,
                            "kernel_inds": tuple(kernel_inds),
                            "perm": perm,
                            "perm_scramble": scramble,
                            "dissim_rankings": tuple(int(i) for i in rankings),
                        }
                        row.update(labels)
                        rows.append(row)
    return rows


def _build_frame(rows: list[dict], label_columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=list(RDM_COLUMNS) + label_columns)
    return frame.reset_index(drop=True)


def get_rdms(
    image_sets: Sequence[tuple],
    models_dict: dict,
    out_fname: str | os.PathLike | None,
    rdm_name: str = "default_name",
    which_layers: dict | None = None,
    dissim_metrics: Sequence = ("corr",),
    kernel_sets: Sequence = (("all", "all"),),
    num_perms: int = 0,
    num_cores: int = 1,
    verbose: bool = True,
    append: bool = True,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    transform: Callable | None = None,
    random_state: int = 0,
) -> pd.DataFrame:
    """Make one RDM per image set, model, layer, metric and activation type.

    Every image of a set runs through each model once, in batches; every
    layer, metric and activation type comes from that one pass, and each RDM
    from one matrix product (only a user's pairwise function loops over
    pairs of entries).

    Parameters
    ----------
    image_sets : list of tuple
        Image sets ``(labels, {entry_key: image}, entry_variables,
        combinations)`` (see :mod:`pytorch_feature_analysis.stimuli` and
        :func:`~pytorch_feature_analysis.package_image_sets`). A combination
        ``(entry_key, [source entry keys], func, func_kwargs, unpack_args)``
        adds an entry whose pattern, in every layer and activation type, is
        ``func(*patterns, **func_kwargs)`` if ``unpack_args`` else
        ``func(patterns, **func_kwargs)`` -- e.g. ``np.mean`` over
        ``axis=0`` for the average pattern of two images.
    models_dict : dict
        ``{name: prepared model}`` (:func:`~pytorch_feature_analysis.prepare_models`),
        or ``{name: (base_model, weights)}`` to prepare them here.
    out_fname : str, path-like or None
        Where the frame is saved: ``.parquet`` (recommended), or ``.p`` /
        ``.pkl`` (pickle). ``None``: not saved. The file is rewritten
        atomically as image sets x models finish (at least once the last write
        took at most a tenth of the work since), so an interrupted run loses
        little, and a rerun with ``append=True`` picks up where it stopped.
    rdm_name : str, default 'default_name'
        Stored in the ``df_name`` column.
    which_layers : dict, optional
        ``{model_name: [layer names or labels]}``, e.g.
        ``{'alexnet': ['conv1', ('fc3', 21)]}``; models not named use every
        layer. ``original_rgb`` is always included.
    dissim_metrics : list, default ['corr']
        Names among ``'corr'`` (1 - Pearson r), ``'euclidean_distance'``,
        ``'cosine'``, ``'spearman'`` (1 - Spearman rho), ``'sq_euclidean'``,
        ``'manhattan'``; a ``(name, func)`` pair where ``func(x, y)`` takes
        two 1-D patterns; or a ``(name, func, 'matrix')`` triple where
        ``func(patterns)`` returns the ``n x n`` matrix.
    kernel_sets : list of tuple, default [('all', 'all')]
        ``(name, 'all')`` or ``(name, {(model, layer_name): [channel indices]})``;
        layers not listed in a kernel set use every channel.
    num_perms : int, default 0
        Extra RDMs per combination with the entries' labels scrambled,
        numbered 1..num_perms in ``perm`` (the original data is
        ``'orig_data'``); the scramble is in ``perm_scramble`` and is seeded by
        ``random_state`` and the RDM's identity, so it is reproducible.
    num_cores : int, default 1
        Image sets x models run in this many joblib workers; the frame is the
        same as with one.
    verbose : bool, default True
        Show progress bars.
    append : bool, default True
        Keep the RDMs already in ``out_fname`` and compute only the missing
        ones (same model, layer, activation type, kernel set, metric, perm
        and image-set labels). ``False``: overwrite the file.
    batch_size : int, default 32
        Images per forward pass.
    device : {'cpu', 'cuda'}, default 'cpu'
        Where the forward passes run.
    transform : callable, optional
        Image preprocessing (PIL image -> tensor); default
        :func:`~pytorch_feature_analysis.default_transform`.
    random_state : int, default 0
        Seed of the permutations.

    Returns
    -------
    pandas.DataFrame
        Every RDM in the file (or of this call, with ``out_fname=None``), one
        per row, with columns:

        - ``df_name``: ``rdm_name``;
        - ``model``: the model's name in ``models_dict``;
        - ``layer``: type and rank within the type, e.g. ``'conv3'``;
        - ``layer_num``: rank in the forward pass (``original_rgb`` is 0);
        - ``layer_label``: ``(layer, layer_num)``;
        - ``dissim_metric``: the metric's name;
        - ``activation_type``: ``'unit_level'`` (every unit) or
          ``'feature_means'`` (each channel's mean over space; the same as
          ``'unit_level'`` for layers without space). For ``original_rgb``:
          the preprocessed pixels, and the three channel means;
        - ``matrix``: the RDM, float64 ``n x n``, symmetric, zero diagonal
          (NaN where a metric is undefined, e.g. ``'corr'`` of a constant
          pattern);
        - ``entry_keys``: the entries' keys, e.g. ``(('000',), ('090',))``;
        - ``entry_labels``: the same as dicts, e.g. ``({'color': '000'}, ...)``;
        - ``kernel_set_name``, ``kernel_inds``: the channels used;
        - ``perm``: ``'orig_data'`` or the permutation number;
        - ``perm_scramble``: entry ``i`` of the RDM holds the pattern of
          entry ``perm_scramble[i]``;
        - ``dissim_rankings``: the entries in the order
          :func:`~pytorch_feature_analysis.get_extreme_dissims_total` picks
          them (most mutually dissimilar first);
        - one column per image-set label, e.g. ``obj``.

    Raises
    ------
    ValueError, FileNotFoundError
        Before any work starts, for a malformed or too small image set,
        duplicate entry keys, a missing image (named), an unknown metric
        (valid ones listed), an unknown layer (valid ones listed), a
        malformed kernel set or an ``out_fname`` of an unknown format.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(num_objects=2, colors=(0, 120, 240), size=32)
    >>> image_sets = pfa.package_image_sets(stimuli, ['color'], ['obj'])
    >>> models = pfa.prepare_models({'alexnet': ('alexnet', 'random')})
    >>> rdm_df = pfa.get_rdms(image_sets, models, None, 'demo',
    ...                       which_layers={'alexnet': ['conv1', 'fc3']},
    ...                       dissim_metrics=['corr', 'euclidean_distance'], verbose=False)
    >>> len(rdm_df)  # 2 sets x 3 layers x 2 metrics x 2 activation types
    24
    >>> rdm_df.loc[0, ['model', 'layer_label', 'dissim_metric', 'activation_type', 'obj']].tolist()
    ['alexnet', ('original_rgb', 0), 'corr', 'unit_level', 'obj001']
    """
    # ---- check everything before long work starts -------------------------
    image_sets = list(image_sets)
    if not image_sets:
        raise ValueError("The 'image_sets' parameter of get_rdms must hold at least one image set.")
    for position, image_set in enumerate(image_sets):
        validate_image_set(image_set, position)
        _check_combinations(image_set)
    seen_labels: dict[frozenset, int] = {}
    for position, image_set in enumerate(image_sets):
        key = _label_key(image_set[0])
        if key in seen_labels:
            raise ValueError(
                f"Image sets {seen_labels[key]} and {position} have the same labels "
                f"{dict(image_set[0])}; each image set needs labels of its own."
            )
        seen_labels[key] = position
        reused = [label for label in image_set[0] if label in RDM_COLUMNS]
        if reused:
            raise ValueError(
                f"The labels of image set {position} must not be named like the frame's own "
                f"columns {list(RDM_COLUMNS)}; got {reused} instead."
            )
    check_images_exist(image for image_set in image_sets for image in image_set[1].values())
    metrics = resolve_metrics(dissim_metrics, param_name="dissim_metrics", func_name="get_rdms")
    kernel_sets = _check_kernel_sets(kernel_sets)
    if not isinstance(num_perms, numbers.Integral) or isinstance(num_perms, bool) or num_perms < 0:
        raise ValueError(
            f"The 'num_perms' parameter of get_rdms must be an int >= 0; got {num_perms!r} instead."
        )
    num_perms = int(num_perms)
    if out_fname is not None:
        file_format = frame_format(out_fname)
        if file_format == "csv":
            raise ValueError(
                f"get_rdms saves RDM frames as .parquet or .p/.pkl, not csv; got {os.fspath(out_fname)!r}."
            )
    if not isinstance(models_dict, dict) or not models_dict:
        raise ValueError(
            "The 'models_dict' parameter of get_rdms must be a non-empty dict {name: model}; "
            f"got {models_dict!r:.100} instead."
        )
    if any(not isinstance(model, nn.Module) for model in models_dict.values()):
        models_dict = prepare_models(models_dict)
    if which_layers is not None and not isinstance(which_layers, dict):
        raise ValueError(
            "The 'which_layers' parameter of get_rdms must be a dict {model name: [layers]}, "
            f"e.g. {{{next(iter(models_dict))!r}: ['conv1']}}; got {which_layers!r:.100} instead."
        )
    which_layers = dict(which_layers or {})
    unknown_models = sorted(set(which_layers) - set(models_dict))
    if unknown_models:
        raise ValueError(
            f"The 'which_layers' parameter of get_rdms names models {unknown_models} that are "
            f"not in models_dict ({list(models_dict)})."
        )

    first_image = next(iter(image_sets[0][1].values()))
    example = preprocess_images([first_image], transform)
    books, chosen = {}, {}
    for model_name, model in models_dict.items():
        books[model_name] = model_layers(model, example)
        layers = resolve_layers(books[model_name], which_layers.get(model_name), model_name)
        chosen[model_name] = [ORIGINAL_RGB] + [label for label in layers if label != ORIGINAL_RGB]
    _check_kernel_set_layers(kernel_sets, books)

    # ---- plan: every RDM of this call, in order; skip the ones on file ----
    existing = None
    if append and out_fname is not None and os.path.exists(out_fname):
        existing = load_frame(out_fname)
    existing_identities = _existing_identities(existing) if existing is not None else []
    done = set(existing_identities)
    perms = ["orig_data"] + list(range(1, num_perms + 1))
    order: dict[tuple, tuple] = {}
    tasks = []
    for set_index, image_set in enumerate(image_sets):
        label_key = _label_key(image_set[0])
        for model_index, model_name in enumerate(models_dict):
            todo: dict[tuple, set] = {}
            for rank, (layer_label, metric, activation_type, kernel_set_name, perm) in _ranked_product(
                chosen[model_name], [m.name for m in metrics], ACTIVATION_TYPES,
                [name for name, _ in kernel_sets], perms,
            ):
                identity = _row_identity(
                    model_name, layer_label, activation_type, kernel_set_name, metric, perm, label_key
                )
                order[identity] = (set_index, model_index) + rank
                if identity not in done:
                    todo.setdefault(layer_label, set()).add((activation_type, kernel_set_name, metric, perm))
            if todo:
                tasks.append(
                    dict(
                        image_set=image_set,
                        model_name=model_name,
                        model=models_dict[model_name],
                        layer_book=books[model_name],
                        todo=todo,
                        metrics=metrics,
                        kernel_sets=kernel_sets,
                        num_perms=num_perms,
                        rdm_name=rdm_name,
                        random_state=random_state,
                        batch_size=batch_size,
                        device=device,
                        transform=transform,
                        verbose=verbose and num_cores == 1 and len(tasks) == 0 and len(image_sets) == 1,
                    )
                )

    # ---- run, saving after each image set x model -------------------------
    label_columns = list(
        OrderedDict.fromkeys(key for image_set in image_sets for key in image_set[0])
    )
    kept_rows: list[dict] = []
    if existing is not None:
        label_columns += [c for c in existing.columns if c not in RDM_COLUMNS and c not in label_columns]
        kept_rows = existing.to_dict("records")
    kept_order = [
        order.get(identity, (-1, position)) for position, identity in enumerate(existing_identities)
    ]
    new_rows: list[dict] = []

    def current_frame() -> pd.DataFrame:
        rows = kept_rows + new_rows
        keys = kept_order + [
            order[
                _row_identity(
                    row["model"], row["layer_label"], row["activation_type"],
                    row["kernel_set_name"], row["dissim_metric"], row["perm"],
                    _label_key({k: row[k] for k in row if k not in RDM_COLUMNS}),
                )
            ]
            for row in new_rows
        ]
        ranked = sorted(range(len(rows)), key=lambda i: (keys[i][0] >= 0, keys[i]))
        return _build_frame([rows[i] for i in ranked], label_columns)

    last_save_end, last_save_cost, unsaved = time.perf_counter(), 0.0, False
    with tqdm(total=len(tasks), disable=not verbose or len(tasks) < 2, desc="RDMs", unit="set x model") as bar:
        for rows in imap_ordered(_image_set_rdms, tasks, num_cores):
            new_rows.extend(rows)
            unsaved = True
            work_since_save = time.perf_counter() - last_save_end
            if out_fname is not None and last_save_cost <= _CHECKPOINT_SHARE * work_since_save:
                start = time.perf_counter()
                save_frame(current_frame(), out_fname)
                last_save_end = time.perf_counter()
                last_save_cost, unsaved = last_save_end - start, False
            bar.update(1)
    frame = current_frame()
    if out_fname is not None and (unsaved or not tasks):
        save_frame(frame, out_fname)
    return frame
