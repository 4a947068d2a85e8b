"""The RDM frame: one representational dissimilarity matrix per row.

:func:`get_rdms` runs every image set through every model once, in batches,
and turns the activations of each layer into RDMs -- one per image set x
model x layer x dissimilarity metric x activation type x kernel set x
permutation -- with the metadata in the other columns.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import pandas as pd
from tqdm.auto import tqdm

from . import __version__
from ._arrow_codec import frame_to_table, table_to_frame
from ._contract import RDM_COLUMNS, permutation, rdm_cells, scrambled
from ._fingerprint import callable_fingerprint, images_fingerprint, weights_fingerprint
from ._plan import (
    FLOAT64,
    AnalysisPlan,
    check_extraction,
    fitted_batch_size,
    format_bytes,
    plan_analysis,
    plan_passes,
    transient_bytes,
    workers_budget,
)
from ._rdm_engine import ACTIVATION_TYPES, Entries, LayerWork
from ._time import check_time_axes, check_time_options, step_seconds, time_columns, time_steps
from ._dataset import is_dataset_path
from ._location import is_url
from ._masks import layer_mask
from ._resume import (
    FINGERPRINTS,
    Checkpoint,
    RowStore,
    describe_stale,
    identity_of,
    label_key,
    row_identity,
    stale_tasks,
    task_key,
    task_key_of,
)
from ._study import dataset_state, model_descriptions, run_on_dataset
from ._validation import check_bool, check_choice, check_int, fail, problem, public
from ._projection import projection_dims
from .activations import ORIGINAL_RGB, POOLING_TYPES, fill_targets
from .dissim import _CHUNK_VALUES, resolve_metrics
from .io import MATRIX_STORAGES, frame_format, load_frame
from .parallel import active_client, connect_client, imap_ordered
from .stimuli import check_images_exist, validate_image_set

__all__ = ["RDM_COLUMNS", "get_rdms", "plan_rdms"]

# Checkpoints: the file is rewritten after an image set x model whenever the
# last write took at most this share of the work done since, so writing stays
# a small part of a long run and an interruption loses little.
_CHECKPOINT_SHARE = 0.1

# The accumulators' float64 work chunks (two at most at once).
_WORK_BYTES = 2 * _CHUNK_VALUES * 8


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


def _kernel_mask(kernel_set: Any, model_name: str, layer: str, shape: tuple) -> tuple:
    """``(channels, rows, cols)`` a kernel set keeps of a layer (None: the whole axis)."""
    if kernel_set == "all" or (model_name, layer) not in kernel_set:
        return None, None, None
    spec = kernel_set[(model_name, layer)]
    spec = spec if isinstance(spec, dict) else {"channels": spec}
    return layer_mask(spec, shape, "kernel_sets", f"({model_name!r}, {layer!r})")


def _kernel_positions(kernel_set: Any, model_name: str, layer: str, shape: tuple
                      ) -> tuple | None:
    """The rows and columns a kernel set keeps of a layer (None: every position)."""
    _, rows, cols = _kernel_mask(kernel_set, model_name, layer, shape)
    if rows is None and cols is None:
        return None
    return tuple(list(range(size)) if kept is None else kept
                 for kept, size in zip((rows, cols), shape[1:]))


def _kernel_indices(kernel_set: Any, model_name: str, layer: str, shape: tuple) -> list[int]:
    """The channels a kernel set keeps of a layer."""
    channels = _kernel_mask(kernel_set, model_name, layer, shape)[0]
    return list(range(shape[0] if shape else 1)) if channels is None else channels


def _layer_works(task_image_set: tuple, combinations: list, model_plan, todo: dict, metrics: list,
                 kernel_sets: list, device, timing: dict, random_state: int = 0
                 ) -> list[LayerWork]:
    """One :class:`LayerWork` per layer with RDMs to compute, in forward order."""
    entries = Entries.of(task_image_set, combinations)
    works = []
    for label in model_plan.book:
        if label not in todo:
            continue
        shape = model_plan.shape(label)
        kernels = {
            name: _kernel_indices(kernel_set, model_plan.name, label[0], shape)
            for name, kernel_set in kernel_sets
        }
        positions = {name: _kernel_positions(kernel_set, model_plan.name, label[0], shape)
                     for name, kernel_set in kernel_sets}
        positions = {name: kept for name, kept in positions.items() if kept is not None}
        if positions and timing["resolved"]:
            raise fail("kernel_sets", "no rows or columns with time_resolved=True",
                       sorted(positions), raw=True)
        seconds = step_seconds(model_plan, label, timing)
        works.append(LayerWork(label, shape, todo[label], entries, metrics, kernels, device,
                               times=time_steps(model_plan, label, timing),
                               step_seconds=seconds,
                               random_state=random_state, positions=positions))
    return works


def _image_set_rdms(
    image_set: tuple,
    model_name: str,
    model: Any,
    book: dict,
    works: list[LayerWork],
    passes: list,
    extraction: Any,
    batch_size: int,
    rdm_name: str,
    random_state: int,
    num_perms: int,
    verbose: bool = False,
) -> list[dict]:
    """All missing RDM rows of one image set through one model, pass by pass."""
    rows: list[dict] = []
    for work, finished in _finished_rdms(model, book, works, passes, extraction, batch_size,
                                         verbose):
        rows += _rows(finished, work, image_set[0], model_name, rdm_name, random_state,
                      num_perms)
    return rows


def _finished_rdms(model: Any, book: dict, works: list[LayerWork], passes: list,
                   extraction: Any, batch_size: int, verbose: bool) -> Iterator[tuple]:
    """Run the passes; yield ``(work, finished RDM)`` as each layer is complete."""
    by_label = {work.label: work for work in works}
    images = works[0].entries.images
    for pieces in passes:
        targets = {piece.label: by_label[piece.label].target(piece) for piece in pieces}
        fill_targets(images, model, book, targets, batch_size=batch_size, device=extraction.device,
                     transform=extraction.transform, verbose=verbose)
        for piece in pieces:
            work, target = by_label[piece.label], targets.pop(piece.label)
            if target.units is not None:
                work.add_units(piece, target.units)
            del target
            if piece.stop == piece.channels:
                for finished in work.finish():
                    yield work, finished


def layer_squared_distances(images: list, model_plan: Any, labels: list, activation_type: str,
                            extraction: Any, random_state: int = 0,
                            masks: dict | None = None) -> dict:
    """Squared Euclidean distances between the images' patterns in each of ``labels``.

    Computed as :func:`get_rdms` computes them: in forward passes that fit
    the extraction's memory budget, a layer too large for one pass built
    from channel slices, so no layer is ever held whole. ``masks`` maps
    layer labels to the ``(channels, rows, cols)`` they keep (None: the
    whole axis), as a kernel set would (each masked layer's name must be
    called once). Returns ``{layer label: float64 (n, n) numpy array}``.
    """
    image_set = ({}, {(str(i),): image for i, image in enumerate(images)}, ("image",), [])
    masks = masks or {}
    kept = {(model_plan.name, label[0]): {key: part for key, part in zip(
        ("channels", "rows", "cols"), parts) if part is not None}
        for label, parts in masks.items()}
    settings = dict(metrics=resolve_metrics(["sq_euclidean"]),
                    kernel_sets=[("all", "all"), ("mask", kept)],
                    time={"resolved": False, "frame_rate": None},
                    random_state=random_state, budget=extraction.budget(), rdm_name="",
                    num_perms=0)
    todo = {label: {(activation_type, "mask" if label in masks else "all",
                     "sq_euclidean", "orig_data", None)} for label in labels}
    task = _task(image_set, model_plan, todo, extraction, settings)
    finished = _finished_rdms(task["model"], task["book"], task["works"], task["passes"],
                              extraction, task["batch_size"], verbose=False)
    return {work.label: matrix for work, (*_, matrix, _time) in finished}


def _rows(finished: tuple, work: LayerWork, labels: dict, model_name: str, rdm_name: str,
          random_state: int, num_perms: int) -> list[dict]:
    """The frame rows of one finished RDM: the original data and its permutations."""
    activation_type, kernel_set_name, kernel_inds, metric, matrix, step = finished
    n = len(work.entries.keys)
    rows = []
    for perm in ["orig_data"] + list(range(1, num_perms + 1)):
        if (activation_type, kernel_set_name, metric.name, perm, step) not in work.wanted:
            continue
        identity = row_identity(model_name, work.label, activation_type, kernel_set_name,
                                 metric.name, perm, label_key(labels), step)
        scramble = list(range(n)) if perm == "orig_data" else permutation(n, random_state, identity)
        row = {
            "df_name": rdm_name,
            "model": model_name,
            "layer": work.label[0],
            "layer_num": int(work.label[1]),
            "layer_label": (work.label[0], int(work.label[1])),
            "dissim_metric": metric.name,
            "activation_type": activation_type,
            "entry_keys": work.entries.keys,
            "entry_labels": work.entries.labels,
            "kernel_set_name": kernel_set_name,
            "kernel_inds": kernel_inds,
            "perm": perm,
            "perm_scramble": scramble,
            **rdm_cells(scrambled(matrix, scramble)),
            **time_columns(step, work.step_seconds),
        }
        row.update(labels)
        rows.append(row)
    return rows


@public
def get_rdms(
    image_sets: Sequence[tuple],
    models_dict: dict,
    out_fname: str | os.PathLike | None,
    rdm_name: str = "default_name",
    which_layers: Any = None,
    dissim_metrics: Sequence = ("corr",),
    kernel_sets: Sequence = (("all", "all"),),
    num_perms: int = 0,
    num_cores: int = 1,
    verbose: bool = True,
    debug_check: bool = False,
    append: bool = True,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    transform: Callable | None = None,
    random_state: int = 0,
    max_memory: int | str | None = None,
    dry_run: bool = False,
    on_change: str = "recompute",
    time_resolved: bool = False,
    frame_rate: float | None = None,
    matrix_storage: str = "float64",
    client: Any = None,
    collect: bool = True,
    activation_types: Sequence[str] = ACTIVATION_TYPES,
) -> pd.DataFrame | None:
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
        A path ending in ``'/'`` (or an existing folder) is a *dataset* for
        large studies: each image set x model is written as soon as it is
        done as one parquet part ``<folder>/model=<name>/part-<digest>.parquet``
        (atomically: a killed write leaves no part), with the types of the
        single file; a rerun lists the parts and computes only what is
        missing, and no part is ever rewritten (parts made differently are
        removed and recomputed, as ``on_change`` says). Read it with
        :func:`~pytorch_feature_analysis.load_frame` (filters and columns),
        DuckDB (``read_parquet('<folder>/**/*.parquet')``), pyarrow or
        ``dask.dataframe``. The folder may be a URL of a file system fsspec
        knows, such as an object store (``'s3://bucket/study_rdms/'``,
        ``'gcs://...'``; see :doc:`/cluster`): there each
        part is stored in one upload, which leaves no part until it is
        complete. A URL must be a dataset folder (ending in ``'/'``).
    rdm_name : str, default 'default_name'
        Stored in the ``df_name`` column.
    which_layers : None, str, tuple, list or dict, optional
        ``None``: every layer of every model; layer names or labels (e.g.
        ``['conv1', ('fc3', 21)]``): those layers of every model; a dict
        ``{model_name: layers}``: those layers of the named models, every
        layer of the others. ``original_rgb`` is always included.
    dissim_metrics : list, default ['corr']
        Names among ``'corr'`` (1 - Pearson r), ``'euclidean_distance'``,
        ``'cosine'``, ``'spearman'`` (1 - Spearman rho), ``'sq_euclidean'``,
        ``'manhattan'``; a ``(name, func)`` pair where ``func(x, y)`` takes
        two 1-D patterns; or a ``(name, func, 'matrix')`` triple where
        ``func(patterns)`` returns the ``n x n`` matrix.
    kernel_sets : list of tuple, default [('all', 'all')]
        ``(name, 'all')`` or ``(name, {(model, layer_name): [channel indices]})``;
        layers not listed in a kernel set use every channel. A layer's entry
        may also be a mask ``{'channels': [...], 'rows': [...], 'cols':
        [...]}`` (each optional): its RDMs keep those channels at those
        positions only, and its feature means and pooled values are taken
        over those positions (DNNBrain's Mask).
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
    debug_check : bool, default False
        Accepted for the original library's signature (where it stood in this
        position) and ignored.
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
    max_memory : int, str or None, default None
        Memory budget of the activations on ``device``: bytes, or a size such
        as ``'4GB'`` or ``'512MiB'``; ``None`` allows half of the memory free
        now. The layers are planned into forward passes whose stored
        activations fit; a layer too large for one pass is split into channel
        slices over several passes (not possible for ``'spearman'``, a user's
        metric or combinations, which need every feature at once: then the
        error names the layer and what it needs). The peak of a pass is its
        layers' float32 activations (``images x units x 4`` bytes), their
        channel means, the ``n x n`` float64 statistics of each RDM being
        built, and the transient outputs of one batch's forward pass (the batch
        is made smaller when that alone would take half the budget).
    on_change : {'recompute', 'error'}, default 'recompute'
        What a resumed call does with rows on file that were made differently
        (other weights, preprocessing, images, combinations, permutation seed
        or library version than this call's, for the same model name and
        image-set labels): recompute them (``verbose`` says how many and
        why), or raise an error naming what changed.
    time_resolved : bool, default False
        One RDM per time step of each layer, for layers with a time axis
        (one entry's output ``(channels, time, height, width)``: the 3-D
        convolutions of video models, and ``original_rgb`` of videos, see
        :func:`~pytorch_feature_analysis.video_transform`); the rows get a
        ``time`` column. Asking it of a layer without a time axis is an
        error naming the layer. ``'feature_means'`` are then each channel's
        mean over space at each time step. A time x time meta-RDM is
        ``get_meta_rdms(rdm_df, None, ['time'])``.
    frame_rate : float, optional
        Frames per second of the input videos, with ``time_resolved=True``:
        adds ``time_s``, the start of each time step in seconds.
    dry_run : bool, default False
        Plan only: return the summary of :func:`plan_rdms` (passes, predicted
        peak memory, output size) without running any forward pass.
    matrix_storage : {'float64', 'condensed_float32'}, default 'float64'
        How ``out_fname`` stores the matrices (see
        :func:`~pytorch_feature_analysis.save_frame`): whole, or their upper
        triangle in float32 (about a quarter of the bytes; the matrices read
        back as ``n x n`` float64 within float32 rounding, and the frame
        returned holds them as the file does, flagged in its ``attrs``).
    client : None, dask.distributed.Client or str, default None
        Run the image sets x models on the workers of a Dask cluster: a
        ``Client``, or the address of its scheduler (e.g.
        ``'tcp://10.0.0.5:8786'``; one that does not answer is an error
        before anything is written). With ``None``, a client active in this
        process (``dask.distributed.default_client()``) is used when
        ``out_fname`` is a dataset; ``False`` runs here. Needs a dataset
        ``out_fname`` on a path every worker can write to: each worker
        writes its parts there. Models given as ``(base_model, weights)``
        are built on the workers (checked against the weights planned
        here), modules are sent to each worker once; a failed task, or one
        whose worker died, is retried twice. ``device`` is the device of
        every worker, checked on the workers (the calling machine needs no
        GPU), and ``max_memory=None`` plans for the worker with the least
        memory free. See the documentation page "Running a study on a
        cluster".
    collect : bool, default True
        With a dataset ``out_fname``: return the whole frame (read from the
        dataset), or ``None`` with ``collect=False``: this process then never
        holds the study's RDMs, which stay in the parts written by the
        workers, and plans each image set x model as it runs (its memory
        stays flat as the study grows).
    activation_types : sequence of str, default ('unit_level', 'feature_means')
        The patterns RDMs are made of: ``'unit_level'`` (every unit),
        ``'feature_means'``, ``'max_pool'``, ``'median_pool'``, ``'l1_pool'``,
        ``'l2_pool'`` (each channel's mean, maximum, median, L1 or L2 norm over
        space, computed batch by batch in the forward pass; see
        :func:`~pytorch_feature_analysis.pool_channels`), or ``'srp_<k>'``
        (e.g. ``'srp_4096'``): every unit projected to ``k`` dimensions by a
        seeded sparse random projection
        (:func:`~pytorch_feature_analysis.sparse_random_projection`, seeded by
        ``random_state`` and the layer), accumulated batch by batch on the
        device, so that only ``n x k`` values are held per layer. Such RDMs
        approximate the unit-level ones (the error shrinks as ``1 /
        sqrt(k)``) and the activation type says so; not with
        ``time_resolved=True`` or kernel sets other than ``'all'``.

    Returns
    -------
    pandas.DataFrame or None
        Every RDM in the file or dataset (or of this call, with
        ``out_fname=None``; ``None`` for a dataset with ``collect=False``),
        one per row, with columns:

        - ``df_name``: ``rdm_name``;
        - ``model``: the model's name in ``models_dict``;
        - ``layer``: type and rank within the type, e.g. ``'conv3'``;
        - ``layer_num``: rank in the forward pass (``original_rgb`` is 0);
        - ``layer_label``: ``(layer, layer_num)``;
        - ``dissim_metric``: the metric's name;
        - ``activation_type``: ``'unit_level'`` (every unit) or
          ``'feature_means'`` (each channel's mean over space; the same as
          ``'unit_level'`` for layers without space), or a pooled type of
          ``activation_types``. For ``original_rgb``: the preprocessed pixels,
          and the three channel means;
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
        - one column per image-set label, e.g. ``obj``;
        - with ``time_resolved=True``: ``time``, the layer's time step (int,
          from 0), and with ``frame_rate`` also ``time_s``, its start in
          seconds (``time * input frames / layer time steps / frame_rate``).

    Raises
    ------
    InvalidInputError, FileNotFoundError
        Before any work starts, for a malformed or too small image set,
        duplicate entry keys, a missing image (named), an unknown metric
        (valid ones listed), an unknown layer (valid ones listed), a
        malformed kernel set, an ``out_fname`` of an unknown format, a
        dataset ``out_fname`` holding parts of another study (the part is
        named), a ``client`` without a dataset or whose scheduler does not
        answer, a ``max_memory`` too small for a layer, or ``device='cuda'``
        without a GPU. ``InvalidInputError`` is a ``ValueError``.

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
    client, opened = _client_of(client, out_fname)
    try:
        call = _plan_call(dict(locals()), client)
        if dry_run:
            return _summary(call)
        check_int(num_cores, "num_cores", minimum=1)
        collect = check_bool(collect, "collect")
        if verbose:
            for line in _plan_lines(call) + ([describe_stale(call.stale)] if call.stale else []):
                tqdm.write(line)
        if call.target is not None:
            return run_on_dataset(call, _image_set_rdms, client, num_cores, verbose, collect)
        return _run(call, out_fname, num_cores, verbose, append, matrix_storage)
    finally:
        if opened:
            client.close()


def _client_of(client: Any, out_fname: Any) -> tuple[Any, bool]:
    """The Dask client to run on (None: here) and whether it was opened here."""
    dataset = out_fname is not None and is_dataset_path(out_fname)
    if client is False or (client is None and not dataset):
        return None, False
    if client is None:
        return active_client(), False
    if not dataset:
        raise fail("client", "None unless out_fname is a dataset folder (a path ending in "
                   "'/'), which the workers write to", client)
    return connect_client(client)


def _check_image_sets(image_sets: Any) -> list[tuple]:
    """Every image set well formed, with labels of its own that no frame column uses."""
    if image_sets is None or isinstance(image_sets, (str, dict)):
        raise fail("image_sets", "a list of image sets (see package_image_sets)", image_sets)
    image_sets = list(image_sets)
    if not image_sets:
        raise problem("the 'image_sets' parameter must hold at least one image set.")
    seen: dict[frozenset, int] = {}
    for position, image_set in enumerate(image_sets):
        validate_image_set(image_set, position)
        _check_combinations(image_set)
        key = label_key(image_set[0])
        if key in seen:
            raise problem(
                f"image sets {seen[key]} and {position} have the same labels "
                f"{dict(image_set[0])}; each image set needs labels of its own."
            )
        seen[key] = position
        reused = [label for label in image_set[0] if label in RDM_COLUMNS]
        if reused:
            raise fail("image_sets", f"labels not named like the frame's own columns "
                       f"{list(RDM_COLUMNS)}", f"{reused} in image set {position}", raw=True)
    check_images_exist(image for image_set in image_sets for image in image_set[1].values())
    return image_sets


@dataclass
class _Call:
    """Everything one get_rdms call will do, planned before any forward pass."""

    plan: AnalysisPlan
    image_sets: list
    tasks: _TaskPlan
    existing: pd.DataFrame | None
    fingerprints: dict
    stale: dict
    budget: int
    target: Any = None
    descriptions: dict | None = None


def _plan_call(args: dict, client: Any = None) -> _Call:
    """Check every argument of get_rdms (``args``), plan models, layers and passes; run nothing.

    With a Dask ``client``, the device and the memory budget are those of
    the cluster's workers.
    """
    image_sets = _check_image_sets(args["image_sets"])
    settings = dict(
        metrics=resolve_metrics(args["dissim_metrics"], param_name="dissim_metrics",
                                func_name="get_rdms"),
        kernel_sets=_check_kernel_sets(args["kernel_sets"]),
        num_perms=check_int(args["num_perms"], "num_perms", minimum=0),
        random_state=check_int(args["random_state"], "random_state", minimum=0),
        rdm_name=args["rdm_name"],
        time=check_time_options(args),
    )
    settings["activation_types"] = _check_activation_types(
        args.get("activation_types", ACTIVATION_TYPES), settings)
    out_fname = args["out_fname"]
    dataset = out_fname is not None and is_dataset_path(out_fname)
    if not dataset and out_fname is not None and frame_format(out_fname) == "csv":
        raise fail("out_fname", "a .parquet or .p/.pkl file (RDM frames hold arrays)",
                   os.fspath(out_fname))
    if not dataset and is_url(out_fname):
        raise fail("out_fname", "a local file, or a URL of a dataset folder (ending in '/')",
                   out_fname)
    check_choice(args["on_change"], "on_change", ("recompute", "error"))
    storage = check_choice(args.get("matrix_storage", "float64"), "matrix_storage",
                           MATRIX_STORAGES)
    if storage != "float64" and not dataset and (
            out_fname is None or frame_format(out_fname) != "parquet"):
        raise fail("matrix_storage", "'float64' unless out_fname is a parquet file or a dataset",
                   storage)
    extraction = check_extraction(args["batch_size"], args["device"], args["transform"],
                                  args["max_memory"], args["verbose"],
                                  device_here=client is None)
    plan = plan_analysis(args["models_dict"], args["which_layers"],
                         next(iter(image_sets[0][1].values())), extraction)
    for model_plan in plan.models.values():
        model_plan.layers = [ORIGINAL_RGB] + [l for l in model_plan.layers if l != ORIGINAL_RGB]
    _check_kernel_set_layers(settings["kernel_sets"], {n: mp.book for n, mp in plan.models.items()})
    check_time_axes(plan, image_sets, settings["time"])
    fingerprints = _fingerprints(image_sets, plan, settings["random_state"])
    existing, stale, target = None, {}, None
    if dataset:
        labels = list(OrderedDict.fromkeys(k for image_set in image_sets for k in image_set[0]))
        done, stale, target = dataset_state(out_fname, fingerprints, settings["rdm_name"], labels,
                                            args["on_change"], args["append"], storage)
    elif args["append"] and out_fname is not None and os.path.exists(out_fname):
        # the file this call writes to: a pickle here is the user's own output (the guide's .p)
        existing = load_frame(out_fname, allow_pickle=True)
        _check_rdm_file(existing, out_fname)
        stale = stale_tasks(existing, fingerprints, args["on_change"])
        existing = _without_tasks(existing, stale)
        fingerprints = {**existing.attrs.get(FINGERPRINTS, {}), **fingerprints}
    if not dataset:
        done = {identity_of(row) for row in existing.to_dict("records")} \
            if existing is not None else set()
    settings["budget"] = extraction.budget() if client is None else workers_budget(client,
                                                                                   extraction)
    return _Call(plan, image_sets, _TaskPlan(image_sets, plan, done, settings), existing,
                 fingerprints, stale, settings["budget"], target,
                 model_descriptions(args["models_dict"]))


def _check_rdm_file(existing: pd.DataFrame, out_fname: Any) -> None:
    """The frame on file must be an RDM frame, to be added to."""
    missing = [column for column in RDM_COLUMNS if column not in existing.columns]
    if missing:
        raise fail("out_fname", "an RDM frame file to add to (or append=False to replace it)",
                   f"{os.fspath(out_fname)!r}, a frame without the columns {missing}", raw=True)


def _fingerprints(image_sets: list, plan: AnalysisPlan, random_state: int) -> dict:
    """``{task key: {part: fingerprint}}`` for every image set x model of the call."""
    weights = {name: weights_fingerprint(mp.model) for name, mp in plan.models.items()}
    preprocessing = callable_fingerprint(plan.extraction.transform)
    fingerprints = {}
    for labels, images, _, combinations in image_sets:
        parts = {
            "images": images_fingerprint(list(images.values())),
            "combinations": repr([(c[0], c[1], callable_fingerprint(c[2]), c[3], c[4])
                                  for c in combinations or []]),
            "preprocessing": preprocessing,
            "random_state": random_state,
            "version": __version__,
        }
        for name in plan.models:
            fingerprints[task_key(name, labels)] = {"weights": weights[name], **parts}
    return fingerprints


def _without_tasks(existing: pd.DataFrame, stale: dict) -> pd.DataFrame:
    """``existing`` without the rows of the stale image sets x models."""
    keep = [task_key_of(identity_of(row)) not in stale for row in existing.to_dict("records")]
    kept = existing[keep].reset_index(drop=True)
    stored = existing.attrs.get(FINGERPRINTS, {})
    kept.attrs = {FINGERPRINTS: {key: parts for key, parts in stored.items() if key not in stale}}
    return kept


def _check_activation_types(activation_types: Any, settings: dict) -> tuple:
    known = ACTIVATION_TYPES + POOLING_TYPES
    chosen = (activation_types,) if isinstance(activation_types, str) else activation_types
    try:
        chosen = tuple(chosen)
    except TypeError:
        chosen = ()
    if not chosen or len(set(chosen)) < len(chosen) or any(
            t not in known and projection_dims(t) is None for t in chosen):
        raise fail("activation_types", f"distinct names among {known} or 'srp_<k>' (e.g. "
                   "'srp_1024')", activation_types)
    projected = [t for t in chosen if projection_dims(t) is not None]
    if projected and (settings["time"]["resolved"]
                      or any(spec != "all" for _, spec in settings["kernel_sets"])):
        raise fail("activation_types", "no 'srp_<k>' type with time_resolved=True or with "
                   "kernel sets other than 'all' (a projection mixes every channel)", projected)
    return chosen


class _TaskPlan:
    """The image set x model tasks of a call, each built only when it is run.

    Nothing per task is held, so the memory of the process that plans a
    study does not grow with its number of image sets x models. Every task
    is built once here to check it (e.g. that it fits ``max_memory``) before
    any forward pass.
    """

    def __init__(self, image_sets: list, plan: AnalysisPlan, done: set, settings: dict):
        self.image_sets, self.plan, self.done, self.settings = image_sets, plan, done, settings
        # the axes of each layer's RDMs after its time steps, in frame order
        self._axes = ([metric.name for metric in settings["metrics"]],
                      settings["activation_types"],
                      [name for name, _ in settings["kernel_sets"]],
                      ["orig_data"] + list(range(1, settings["num_perms"] + 1)))
        self._count = sum(1 for _ in self)

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[dict]:
        for pair in self._pairs():
            todo: dict[tuple, set] = {}
            for identity, _, label, wanted in self._rdms(*pair):
                if identity not in self.done:
                    todo.setdefault(label, set()).add(wanted)
            if todo:
                yield _task(pair[1], pair[3], todo, self.plan.extraction, self.settings)

    def order(self) -> dict[tuple, tuple]:
        """Every RDM's place in the frame: ``{row identity: sort key}``."""
        return {identity: rank for pair in self._pairs()
                for identity, rank, _, _ in self._rdms(*pair)}

    def _pairs(self) -> Iterator[tuple]:
        """``(set index, image set, model index, model plan)`` of every image set x model."""
        for set_index, image_set in enumerate(self.image_sets):
            for model_index, model_plan in enumerate(self.plan.models.values()):
                yield set_index, image_set, model_index, model_plan

    def _rdms(self, set_index: int, image_set: tuple, model_index: int,
              model_plan: Any) -> Iterator[tuple]:
        """``(identity, sort key, layer, wanted)`` of each RDM of one image set x model."""
        labels = label_key(image_set[0])
        for layer_rank, label in enumerate(model_plan.layers):
            for rank, (step, metric, activation_type, kernel_set, perm) in _ranked_product(
                time_steps(model_plan, label, self.settings["time"]), *self._axes,
            ):
                identity = row_identity(model_plan.name, label, activation_type, kernel_set,
                                        metric, perm, labels, step)
                yield (identity, (set_index, model_index, layer_rank) + rank, label,
                       (activation_type, kernel_set, metric, perm, step))


def _task(image_set: tuple, model_plan: Any, todo: dict, extraction: Any, settings: dict) -> dict:
    """The keyword arguments of :func:`_image_set_rdms` for one image set x model."""
    works = _layer_works(image_set, _check_combinations(image_set), model_plan, todo,
                         settings["metrics"], settings["kernel_sets"], extraction.device,
                         settings["time"], settings["random_state"])
    entries = len(works[0].entries.keys)
    # the work chunks, and about three n x n float64 matrices while an RDM is finished
    usable = settings["budget"] - _WORK_BYTES - 3 * entries * entries * FLOAT64
    batch_size = fitted_batch_size(model_plan, extraction, usable)
    room = usable - transient_bytes(model_plan, batch_size)
    passes = plan_passes([work.need() for work in works], room, model_plan.name)
    return dict(
        image_set=image_set, model_name=model_plan.name, model=model_plan.model,
        book=model_plan.book, works=works, passes=passes, extraction=extraction,
        batch_size=batch_size, rdm_name=settings["rdm_name"],
        random_state=settings["random_state"], num_perms=settings["num_perms"],
    )


def _largest_pass(task: dict) -> int:
    """Bytes held by the task's largest pass (activations, channel means, statistics)."""
    needs = {work.label: work.need() for work in task["works"]}
    return max(
        sum((p.stop - p.start) * needs[p.label].per_channel + needs[p.label].fixed for p in pieces)
        for pieces in task["passes"]
    )


def _summary(call: _Call) -> pd.DataFrame:
    """One row per image set x model still to compute: passes, peak memory and output."""
    rows = []
    for task in call.tasks:
        model_plan = call.plan.models[task["model_name"]]
        n = len(task["works"][0].entries.keys)
        rdms = sum(len(work.wanted) for work in task["works"])
        peak = (_largest_pass(task) + transient_bytes(model_plan, task["batch_size"])
                + _WORK_BYTES + 3 * n * n * FLOAT64)
        rows.append({
            "model": task["model_name"], "image_set": dict(task["image_set"][0]),
            "entries": n, "layers": len(task["works"]), "rdms": rdms,
            "passes": len(task["passes"]),
            "sliced_layers": len({p.label for ps in task["passes"] for p in ps if not p.whole}),
            "batch_size": task["batch_size"],
            "peak_bytes": peak, "output_bytes": rdms * n * n * 8, "budget_bytes": call.budget,
        })
    columns = ["model", "image_set", "entries", "layers", "rdms", "passes", "sliced_layers",
               "batch_size",
               "peak_bytes", "output_bytes", "budget_bytes"]
    return pd.DataFrame(rows, columns=columns)


def _plan_lines(call: _Call) -> list[str]:
    """One line per model whose work needs more than one pass per image set."""
    lines = []
    summary = _summary(call)
    for model_name, rows in summary.groupby("model", sort=False):
        most = int(rows["passes"].max())
        if most > 1:
            lines.append(f"{model_name}: {most} passes per image set to stay under "
                         f"{format_bytes(call.budget)} (peak about "
                         f"{format_bytes(rows['peak_bytes'].max())}).")
    return lines


def _run(call: _Call, out_fname: Any, num_cores: int, verbose: bool, append: bool,
         matrix_storage: str = "float64") -> pd.DataFrame:
    """Run the tasks, saving checkpoints, and return the whole frame in plan order."""
    labels = list(OrderedDict.fromkeys(k for image_set in call.image_sets for k in image_set[0]))
    store = RowStore(call.tasks.order(), labels, call.fingerprints, call.stale)
    if call.existing is not None:
        store.add(call.existing.to_dict("records"))
    checkpoint = Checkpoint(out_fname, store, _CHECKPOINT_SHARE, time.perf_counter,
                            overwrite=not append, matrix_storage=matrix_storage)
    # one image set x model here: its forward passes show their own progress
    bars = verbose and len(call.tasks) == 1 and num_cores == 1
    tasks = (dict(task, verbose=bars) for task in call.tasks)
    try:
        with tqdm(total=len(call.tasks), disable=not verbose or len(call.tasks) < 2, desc="RDMs",
                  unit="set x model") as bar:
            for rows in imap_ordered(_image_set_rdms, tasks, num_cores):
                store.add(rows)
                checkpoint.after_work()
                bar.update(1)
    finally:
        checkpoint.close(force=not call.tasks or bool(call.stale) or not append)
    if matrix_storage == "float64":
        return store.frame()
    # as the file holds them: rounded to float32, and flagged
    return table_to_frame(frame_to_table(store.frame(), ("matrix",)))


@public
def plan_rdms(
    image_sets: Sequence[tuple],
    models_dict: dict,
    out_fname: str | os.PathLike | None = None,
    which_layers: Any = None,
    dissim_metrics: Sequence = ("corr",),
    kernel_sets: Sequence = (("all", "all"),),
    num_perms: int = 0,
    append: bool = True,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    transform: Callable | None = None,
    max_memory: int | str | None = None,
    activation_types: Sequence[str] = ACTIVATION_TYPES,
    time_resolved: bool = False,
    frame_rate: float | None = None,
    rdm_name: str = "default_name",
    random_state: int = 0,
) -> pd.DataFrame:
    """What :func:`get_rdms` would do, before any forward pass: passes, memory, output size.

    Takes the parameters of :func:`get_rdms` that shape the work (with
    ``out_fname`` and ``append``, RDMs already on file are left out, as
    ``get_rdms`` would skip them; give the ``rdm_name`` and ``random_state``
    of the ``get_rdms`` call, as they tell which RDMs on file are its own).
    Models given as ``(base_model, weights)`` are prepared and traced (one
    forward pass of one image each).

    Returns
    -------
    pandas.DataFrame
        One row per image set x model with RDMs to compute:

        - ``model``, ``image_set`` (its labels);
        - ``entries``: the RDMs' size ``n``;
        - ``layers``, ``rdms``: how many layers and RDMs are computed;
        - ``passes``: forward passes over the set's images;
        - ``sliced_layers``: layers too large for one pass, computed from
          channel slices over several passes;
        - ``batch_size``: images per forward pass (lowered to fit the budget);
        - ``peak_bytes``: predicted peak memory on the device (activations
          held by the largest pass, the ``n x n`` statistics, one batch's
          transient outputs and the float64 work chunks);
        - ``output_bytes``: the RDMs' matrices (``rdms x n x n x 8``);
        - ``budget_bytes``: the memory budget planned for.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(num_objects=1, colors=(0, 120, 240), size=32)
    >>> image_sets = pfa.package_image_sets(stimuli, ['color'], ['obj'])
    >>> plan = pfa.plan_rdms(image_sets, {'alexnet': ('alexnet', 'random')},
    ...                      which_layers=['conv1'], max_memory='2GB')
    >>> plan[['model', 'entries', 'layers', 'rdms', 'passes']].values.tolist()
    [['alexnet', 3, 2, 4, 1]]
    >>> tight = pfa.plan_rdms(image_sets, {'alexnet': ('alexnet', 'random')}, max_memory='80MB')
    >>> bool(tight['passes'][0] > 1), bool(tight['peak_bytes'][0] <= 80_000_000)
    (True, True)
    """
    call = _plan_call(dict(locals(), verbose=False, on_change="recompute"))
    return _summary(call)
