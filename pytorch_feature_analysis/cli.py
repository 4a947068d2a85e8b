"""The ``pfa`` command: a demo, RDMs of one's own images, meta-RDMs.

::

    pfa demo --out pfa_demo
    pfa rdms study.csv --entry color --group obj --model alexnet:random --out rdms.parquet
    pfa meta rdms.parquet --entry obj --group model --group layer \\
        --group activation_type --group dissim_metric --out meta.parquet

Every subcommand explains itself with ``--help``. Mistakes in the input (a
missing file, an unknown column, model, layer or metric) stop the command
before any work starts with one line on stderr and exit status 2.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch
from tqdm.auto import tqdm

from .dissim import METRIC_NAMES
from .io import frame_format, load_frame
from .meta import get_meta_rdms
from .models import available_models, prepare_models
from .rdms import get_rdms
from .stimuli import default_transform, package_image_sets, save_synthetic_stimuli

__all__ = ["main", "build_parser", "run_demo", "parse_model_spec", "read_study", "UsageError"]

_DEMO_MODEL = "alexnet"
_DEMO_METRICS = ["corr", "euclidean_distance"]
_DEMO_OBJECTS = 4
_DEMO_COLORS = (0, 90, 180, 270)
_DEMO_PLOT_LAYER = "conv1"


class UsageError(Exception):
    """A mistake in the command's input, reported as one line and exit status 2."""


# ---------------------------------------------------------------------------
# Reading the user's input
# ---------------------------------------------------------------------------


def parse_model_spec(text: str, random_state: int = 0) -> tuple[str, tuple]:
    """Turn ``[LABEL=]NAME:WEIGHTS`` into a ``models_dict`` item.

    Parameters
    ----------
    text : str
        ``NAME`` is a base model (see
        :func:`~pytorch_feature_analysis.available_models`); ``WEIGHTS`` is
        ``trained``, ``random``, or the path or URL of a state_dict.
        ``LABEL`` names the model in the ``model`` column; by default the
        name for trained weights, ``NAME_random`` for random ones and
        ``NAME_<file stem>`` for a weights file.
    random_state : int, default 0
        Seed of random weights.

    Returns
    -------
    (str, tuple)
        The label and ``(NAME, WEIGHTS, random_state)``, as
        :func:`~pytorch_feature_analysis.prepare_models` takes them.

    Raises
    ------
    UsageError
        For text of another form or an unknown base model.

    Examples
    --------
    >>> parse_model_spec('alexnet:random')
    ('alexnet_random', ('alexnet', 'random', 0))
    >>> parse_model_spec('mine=resnet50:/models/w.pth')
    ('mine', ('resnet50', '/models/w.pth', 0))
    """
    label = None
    equals, colon = text.find("="), text.find(":")
    if equals != -1 and (colon == -1 or equals < colon):
        label, text = text[:equals], text[equals + 1:]
    base, _, weights = text.partition(":")
    if not base or not weights or (label is not None and not label):
        raise UsageError(
            f"--model must be [LABEL=]NAME:WEIGHTS, e.g. alexnet:random, alexnet:trained or "
            f"resnet50:/path/weights.pth; got {text!r} instead."
        )
    names = available_models()
    if base not in names:
        close = difflib.get_close_matches(base.lower(), names, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UsageError(
            f"Unknown model {base!r} in --model {text!r}.{hint} Known models: "
            f"{', '.join(names[:6])}, ... ({len(names)} in all: pfa.available_models())."
        )
    if label is None:
        if weights == "trained":
            label = base
        elif weights == "random":
            label = f"{base}_random"
        else:
            stem = Path(urllib.parse.urlparse(weights).path or weights).name.split(".")[0]
            label = f"{base}_{stem}" if stem else base
    return label, (base, weights, random_state)


def read_study(csv_path: str | os.PathLike, variables: Sequence[str]) -> list[dict]:
    """Read a study CSV into image descriptions for ``package_image_sets``.

    Parameters
    ----------
    csv_path : path-like
        A CSV file with one row per image: a ``path`` column (absolute, or
        relative to the CSV's folder) and one column per variable. Values are
        read as text, so ``000`` stays ``'000'``, without the spaces around
        them. Other columns are ignored.
    variables : list of str
        The columns to keep (entry and grouping variables).

    Returns
    -------
    list of dict
        ``{'path': absolute path, variable: value, ...}`` per row, in file order.

    Raises
    ------
    UsageError
        For a missing or unreadable file, a file without rows, or a column
        that is not in it (named, with the columns it has).

    Examples
    --------
    >>> import tempfile
    >>> folder = tempfile.mkdtemp()
    >>> _ = Path(folder, 'study.csv').write_text('path,obj,color\\na.png,cat,000\\n')
    >>> rows = read_study(Path(folder, 'study.csv'), ['color'])
    >>> rows[0]['color'], rows[0]['path'] == str(Path(folder, 'a.png').resolve())
    ('000', True)
    """
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise UsageError(f"The study file {str(csv_path)!r} does not exist.")
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise UsageError(f"Could not read {str(csv_path)!r} as a CSV file: {error}") from error
    table.columns = [str(column).strip() for column in table.columns]
    needed = list(dict.fromkeys(["path", *variables]))
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise UsageError(
            f"The study file {str(csv_path)!r} has no column(s) {missing}; its columns are "
            f"{list(table.columns)}."
        )
    if table.empty:
        raise UsageError(f"The study file {str(csv_path)!r} has no rows.")
    folder = csv_path.resolve().parent
    rows = []
    for record in table[needed].to_dict("records"):
        record = {column: value.strip() for column, value in record.items()}
        path = Path(record["path"])
        record["path"] = str(path if path.is_absolute() else (folder / path).resolve())
        rows.append(record)
    return rows


def _which_layers(layer_args: Sequence[str] | None, model_labels: Sequence[str]) -> dict | None:
    """``--layers [MODEL=]L1,L2`` values as ``get_rdms``'s ``which_layers``."""
    if not layer_args:
        return None
    shared: list[str] = []
    per_model: dict[str, list[str]] = {}
    for text in layer_args:
        label, sep, names = text.rpartition("=")
        layers = [name.strip() for name in names.split(",") if name.strip()]
        if not layers:
            raise UsageError(f"--layers needs layer names, e.g. conv1,fc3; got {text!r} instead.")
        if not sep:
            shared.extend(layers)
        elif label not in model_labels:
            raise UsageError(
                f"--layers {text!r} names the model {label!r}, which is not one of the "
                f"--model labels {list(model_labels)}."
            )
        else:
            per_model.setdefault(label, []).extend(layers)
    chosen = {
        label: list(dict.fromkeys(per_model.get(label, []) + shared)) for label in model_labels
    }
    return {label: layers for label, layers in chosen.items() if layers}


def _count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    if frame_format(path) == "parquet":
        return pq.read_metadata(path).num_rows
    return len(load_frame(path))


def _check_out(path: str, allowed: Sequence[str], option: str = "--out") -> Path:
    try:
        kind = frame_format(path)
    except ValueError:
        kind = None
    if kind not in allowed:
        raise UsageError(
            f"{option} must be a .parquet file (or .p/.pkl for pickle); got {path!r} instead."
        )
    return Path(path)


def _check_columns(frame: pd.DataFrame, columns: Sequence[str], option: str, source: str) -> None:
    missing = [column for column in dict.fromkeys(columns) if column not in frame.columns]
    if missing:
        raise UsageError(
            f"The column(s) {missing} named by {option} are not in {source!r}; its columns "
            f"are {list(frame.columns)}."
        )


# ---------------------------------------------------------------------------
# pfa rdms
# ---------------------------------------------------------------------------


def _run_rdms(args: argparse.Namespace) -> int:
    verbose = not args.quiet
    overlap = sorted(set(args.entry) & set(args.group))
    if overlap:
        raise UsageError(f"The column(s) {overlap} cannot be both --entry and --group variables.")
    out = _check_out(args.out, ("parquet", "pickle"))
    specs = dict(parse_model_spec(text, args.seed) for text in args.model)
    if len(specs) != len(args.model):
        raise UsageError(
            f"Two --model options got the same label ({list(specs)} from {args.model}); "
            "name them, e.g. --model mine=alexnet:random."
        )
    which_layers = _which_layers(args.layers, list(specs))
    try:
        device = torch.device(args.device)
    except RuntimeError as error:
        raise UsageError(f"--device must be cpu or cuda; got {args.device!r} instead.") from error
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {args.device} needs a CUDA GPU, and torch finds none.")
    if args.image_size < 32:
        raise UsageError(f"--image-size must be at least 32 pixels; got {args.image_size} instead.")
    rows = read_study(args.study, [*args.entry, *args.group])
    image_sets = package_image_sets(rows, args.entry, args.group)
    models = {}
    for label, spec in specs.items():
        try:
            models.update(prepare_models({label: spec}))
        except (OSError, RuntimeError) as error:
            raise UsageError(
                f"Could not load the weights of --model {label}={spec[0]}:{spec[1]}: {error}"
            ) from error
    before = 0 if args.overwrite else _count_rows(out)
    start = time.perf_counter()
    frame = get_rdms(
        image_sets,
        models,
        out,
        args.name or Path(args.study).stem,
        which_layers=which_layers,
        dissim_metrics=args.metric or ["corr"],
        num_perms=args.perms,
        num_cores=args.cores,
        verbose=verbose,
        append=not args.overwrite,
        batch_size=args.batch_size,
        device=args.device,
        transform=None if args.image_size == 224 else default_transform(args.image_size),
        random_state=args.seed,
    )
    if verbose:
        print(
            f"pfa rdms: {len(frame)} RDMs in {out} ({len(frame) - before} computed now, "
            f"{before} already there; {len(image_sets)} image sets x {len(models)} model(s)) "
            f"in {time.perf_counter() - start:.0f} s."
        )
    return 0


# ---------------------------------------------------------------------------
# pfa meta
# ---------------------------------------------------------------------------


def _apply_where(frame: pd.DataFrame, conditions: Sequence[str], source: str) -> pd.DataFrame:
    for condition in conditions:
        column, sep, value = condition.partition("=")
        if not sep or not column:
            raise UsageError(
                f"--where must be COLUMN=VALUE, e.g. activation_type=unit_level; got "
                f"{condition!r} instead."
            )
        _check_columns(frame, [column], "--where", source)
        as_text = frame[column].map(str)
        if not (as_text == value).any():
            values = sorted(set(as_text))
            raise UsageError(
                f"--where {condition!r} matches no row of {source!r}; the values of {column!r} "
                f"are {values[:20]}{' ...' if len(values) > 20 else ''}."
            )
        frame = frame[as_text == value]
    return frame.reset_index(drop=True)


def _run_meta(args: argparse.Namespace) -> int:
    verbose = not args.quiet
    out = _check_out(args.out, ("parquet", "pickle"))
    source = Path(args.frame)
    try:
        frame_format(source)
    except ValueError as error:
        raise UsageError(str(error)) from error
    if not source.is_file():
        raise UsageError(f"The frame file {args.frame!r} does not exist.")
    frame = load_frame(source)
    frame = _apply_where(frame, args.where or [], args.frame)
    grouping = args.group or "rest"
    _check_columns(frame, args.entry, "--entry", args.frame)
    if grouping != "rest":
        _check_columns(frame, grouping, "--group", args.frame)
        overlap = sorted(set(args.entry) & set(grouping))
        if overlap:
            raise UsageError(
                f"The column(s) {overlap} cannot be both --entry and --group variables."
            )
    start = time.perf_counter()
    meta = get_meta_rdms(
        frame,
        out,
        args.entry,
        grouping_variables=grouping,
        df_name=args.name,
        num_perms=args.perms,
        dissim_metrics=args.metric or ["corr"],
        random_state=args.seed,
        verbose=verbose,
    )
    if verbose:
        size = len(meta["entry_keys"].iloc[0]) if len(meta) else 0
        plural = "" if len(meta) == 1 else "s"
        print(
            f"pfa meta: {len(meta)} meta-RDM{plural} of {size} entries "
            f"({', '.join(args.entry)}) from {len(frame)} RDMs in {out} in "
            f"{time.perf_counter() - start:.0f} s."
        )
    return 0


# ---------------------------------------------------------------------------
# pfa demo
# ---------------------------------------------------------------------------


def _local_alexnet_checkpoint() -> Path:
    """Where torchvision keeps AlexNet's trained weights once downloaded."""
    from torchvision.models import AlexNet_Weights

    filename = os.path.basename(urllib.parse.urlparse(AlexNet_Weights.DEFAULT.url).path)
    return Path(torch.hub.get_dir(), "checkpoints", filename)


def _demo_weights() -> str:
    """``'trained'`` when AlexNet's trained weights are on this machine, else ``'random'``."""
    return "trained" if _local_alexnet_checkpoint().is_file() else "random"


def _finite_entries(row: pd.Series) -> list:
    """Entry keys of an RDM without NaN in their row, for MDS."""
    matrix = np.asarray(row["matrix"], dtype=float)
    keep = ~np.isnan(matrix).any(axis=1)
    return [key for key, kept in zip(row["entry_keys"], keep) if kept]


def _select(frame: pd.DataFrame, **values) -> pd.DataFrame:
    mask = np.ones(len(frame), dtype=bool)
    for column, value in values.items():
        mask &= (frame[column] == value).to_numpy()
    return frame[mask].reset_index(drop=True)


def _mds_png(row_frame: pd.DataFrame, path: Path, title: str, **options) -> None:
    import matplotlib.pyplot as plt

    from .meta import subset_rdm_df
    from .plotting import rdm_mds

    finite = _finite_entries(row_frame.iloc[0])
    if len(finite) < len(row_frame["entry_keys"].iloc[0]):
        kept = set(finite)
        row_frame = subset_rdm_df(row_frame, finite)
        if "cond_pics" in options:
            options["cond_pics"] = {k: v for k, v in options["cond_pics"].items() if k in kept}
        if "line_trajectories" in options:
            options["line_trajectories"] = [
                ([key for key in keys if key in kept], style)
                for keys, style in options["line_trajectories"]
            ]
    result = rdm_mds(
        row_frame, fig_title=title, show=False, save_opts={"fname": path, "dpi": 100},
        return_result=True, **options,
    )
    plt.close(result.fig)


def _demo_plots(
    rdm_df: pd.DataFrame,
    meta_rdm: pd.DataFrame,
    layer_meta: pd.DataFrame,
    stimuli: list[dict],
    layers: list[str],
    label: str,
    plots_dir: Path,
    verbose: bool,
) -> None:
    """The demo's MDS plots and heatmap grids (unit-level activations, 1 - Pearson r)."""
    import matplotlib.pyplot as plt

    from .plotting import plot_rdm_grid

    picture = {(s["obj"], s["color"]): s["path"] for s in stimuli}
    objects = list(dict.fromkeys(s["obj"] for s in stimuli))
    colors = list(dict.fromkeys(s["color"] for s in stimuli))
    corr = {"activation_type": "unit_level", "dissim_metric": "corr"}
    with tqdm(total=5, desc="plots", unit="plot", disable=not verbose) as bar:
        _mds_png(
            _select(rdm_df, layer=_DEMO_PLOT_LAYER, obj=objects[0], **corr),
            plots_dir / "mds_colors.png",
            f"{objects[0]}: its colours in {_DEMO_PLOT_LAYER} ({label})",
            cond_pics={(color,): picture[objects[0], color] for color in colors},
        )
        bar.update(1)
        _mds_png(
            _select(meta_rdm, layer=_DEMO_PLOT_LAYER, dissim_metric_sub="corr", **corr),
            plots_dir / "mds_objects.png",
            f"Colour spaces of the objects in {_DEMO_PLOT_LAYER} ({label})",
            cond_pics={(obj,): picture[obj, colors[0]] for obj in objects},
        )
        bar.update(1)
        line_colors = ("black", "tab:blue", "tab:orange", "tab:green")
        _mds_png(
            _select(layer_meta, dissim_metric_sub="corr", **corr),
            plots_dir / "mds_trajectories.png",
            f"Each object's colour space through the layers ({label})",
            cond_pics={(obj, layers[-1]): picture[obj, colors[0]] for obj in objects},
            line_trajectories=[
                ([(obj, layer) for layer in layers], {"linewidth": 1, "c": line_color})
                for obj, line_color in zip(objects, line_colors)
            ],
            plot_opts={"s": 12},
        )
        bar.update(1)
        grids = (
            (_select(rdm_df, obj=objects[0], **corr), "heatmaps_colors.png",
             f"{objects[0]}: its colour RDM in each layer ({label}, 1 - Pearson r)"),
            (_select(meta_rdm, dissim_metric_sub="corr", **corr), "heatmaps_objects.png",
             f"The objects' second-order RDM in each layer ({label}, 1 - Pearson r)"),
        )
        for frame, name, title in grids:
            in_order = frame.iloc[np.argsort(frame["layer"].map(layers.index).to_numpy())]
            fig = plot_rdm_grid(in_order, col="layer", col_wrap=6, height=2.0)
            fig.suptitle(title)
            fig.savefig(plots_dir / name, dpi=80)
            plt.close(fig)
            bar.update(1)


def run_demo(out_dir: str | os.PathLike = "pfa_demo", verbose: bool = True) -> dict:
    """Run the user guide's study end to end and write every result to a folder.

    Draws 4 objects x 4 colours (:func:`~pytorch_feature_analysis.save_synthetic_stimuli`),
    runs them through AlexNet -- its trained weights when torchvision's
    checkpoint is already in the torch hub cache, otherwise random weights
    (seed 0); nothing is downloaded --, and writes:

    - ``stimuli/``: the 16 images (PNG);
    - ``rdms.parquet``: the RDM frame (``get_rdms``; metrics ``corr`` and
      ``euclidean_distance``; every layer; both activation types);
    - ``meta_rdms.parquet``: second-order RDMs whose entries are the objects,
      one per model, layer, activation type and metric;
    - ``meta_rdms_obj_layer.parquet``: second-order RDMs whose entries are
      (object, layer), one per model, activation type and metric;
    - ``meta_meta_rdms.parquet``: third-order RDMs of the previous frame,
      whose entries are the activation types;
    - ``plots/mds_colors.png`` (first-order MDS of one object's colours, with
      the pictures), ``plots/mds_objects.png`` (second-order MDS of the
      objects, with pictures), ``plots/mds_trajectories.png`` (each object's
      path through the layers), ``plots/heatmaps_colors.png`` (one object's
      colour RDM in every layer) and ``plots/heatmaps_objects.png`` (the
      objects' second-order RDM in every layer).

    Parameters
    ----------
    out_dir : path-like, default 'pfa_demo'
        Folder to write into (created if needed; files of an earlier demo are
        replaced).
    verbose : bool, default True
        Show progress bars.

    Returns
    -------
    dict
        ``{'stimuli', 'rdms', 'meta_rdms', 'meta_rdms_obj_layer',
        'meta_meta_rdms', 'plots'}`` -> paths, plus ``'model'`` (the model's
        label, ``'alexnet'`` or ``'alexnet_random'``), ``'weights'``
        (``'trained'`` or ``'random'``) and ``'counts'`` (rows per frame).

    Examples
    --------
    >>> result = run_demo('pfa_demo', verbose=False)  # doctest: +SKIP
    >>> result['counts']['rdms']  # doctest: +SKIP
    352
    """
    out_dir = Path(out_dir)
    plots_dir = out_dir / "plots"
    plots_dir.mkdir(parents=True, exist_ok=True)
    paths = {
        "stimuli": out_dir / "stimuli",
        "rdms": out_dir / "rdms.parquet",
        "meta_rdms": out_dir / "meta_rdms.parquet",
        "meta_rdms_obj_layer": out_dir / "meta_rdms_obj_layer.parquet",
        "meta_meta_rdms": out_dir / "meta_meta_rdms.parquet",
        "plots": plots_dir,
    }

    stimuli = save_synthetic_stimuli(
        paths["stimuli"], num_objects=_DEMO_OBJECTS, colors=_DEMO_COLORS
    )
    image_sets = package_image_sets(stimuli, ["color"], ["obj"])

    weights = _demo_weights()
    label = _DEMO_MODEL if weights == "trained" else f"{_DEMO_MODEL}_random"
    models = prepare_models({label: (_DEMO_MODEL, weights)}, random_state=0)

    rdm_df = get_rdms(
        image_sets, models, paths["rdms"], "one_object_color_rdms",
        dissim_metrics=_DEMO_METRICS, verbose=verbose, append=False,
    )
    meta_rdm = get_meta_rdms(
        rdm_df, paths["meta_rdms"], ["obj"],
        grouping_variables=["model", "layer", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_meta_rdm", dissim_metrics=_DEMO_METRICS,
        verbose=verbose,
    )
    layer_meta = get_meta_rdms(
        rdm_df, paths["meta_rdms_obj_layer"], ["obj", "layer"],
        grouping_variables=["model", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_and_layers_meta_rdm", dissim_metrics=_DEMO_METRICS,
        verbose=verbose,
    )
    meta_meta = get_meta_rdms(
        layer_meta, paths["meta_meta_rdms"], ["activation_type"],
        grouping_variables=["model", "dissim_metric", "dissim_metric_sub"],
        df_name="activation_type_meta_meta_rdm", dissim_metrics=_DEMO_METRICS, verbose=verbose,
    )

    layers = list(dict.fromkeys(rdm_df.sort_values("layer_num", kind="stable")["layer"]))
    _demo_plots(rdm_df, meta_rdm, layer_meta, stimuli, layers, label, plots_dir, verbose)
    return {
        **paths,
        "model": label,
        "weights": weights,
        "counts": {
            "rdms": len(rdm_df),
            "meta_rdms": len(meta_rdm),
            "meta_rdms_obj_layer": len(layer_meta),
            "meta_meta_rdms": len(meta_meta),
            "stimuli": len(stimuli),
            "layers": len(layers),
        },
    }


def _run_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    start = time.perf_counter()
    result = run_demo(args.out, verbose=not args.quiet)
    if args.quiet:
        return 0
    counts, out = result["counts"], Path(args.out)
    weights = (
        "trained weights from the torch hub cache" if result["weights"] == "trained"
        else f"random weights, seed 0: no trained weights at {_local_alexnet_checkpoint()}"
    )
    lines = [
        f"pfa demo: {counts['stimuli']} images ({_DEMO_OBJECTS} objects x "
        f"{len(_DEMO_COLORS)} colours) through AlexNet ({weights}) in "
        f"{time.perf_counter() - start:.0f} s. Written to {out}/:",
        f"  stimuli/                     the {counts['stimuli']} images",
        f"  rdms.parquet                 {counts['rdms']} RDMs ({_DEMO_OBJECTS} objects x "
        f"{counts['layers']} layers x 2 metrics x 2 activation types)",
        f"  meta_rdms.parquet            {counts['meta_rdms']} second-order RDMs (entries: obj)",
        f"  meta_rdms_obj_layer.parquet  {counts['meta_rdms_obj_layer']} second-order RDMs "
        "(entries: obj x layer)",
        f"  meta_meta_rdms.parquet       {counts['meta_meta_rdms']} third-order RDMs "
        "(entries: activation_type)",
        "  plots/                       3 MDS plots with the pictures, 2 heatmap grids "
        "(a panel per layer)",
        f"Read a table back with pfa.load_frame('{(out / 'rdms.parquet').as_posix()}').",
    ]
    print("\n".join(lines))
    return 0


# ---------------------------------------------------------------------------
# The parser
# ---------------------------------------------------------------------------

_MAIN_EPILOG = """\
examples:
  pfa demo                                   # the user guide's study, into ./pfa_demo
  pfa rdms study.csv --entry color --group obj --model alexnet:random --out rdms.parquet
  pfa meta rdms.parquet --entry obj --group model --group layer \\
      --group activation_type --group dissim_metric --out meta.parquet

Run 'pfa COMMAND --help' for the options of each command.
"""

_RDMS_EPILOG = f"""\
The study CSV has one row per image: a 'path' column (absolute, or relative to
the CSV's folder) and one column per variable; values are read as text, other
columns are ignored. Each combination of the --group variables is one image
set, i.e. one RDM per model, layer, metric and activation type; its entries
are the images' values of the --entry variables.

  path,obj,color
  stimuli/obj001_000deg.png,obj001,000
  stimuli/obj001_090deg.png,obj001,090
  ...

--model is [LABEL=]NAME:WEIGHTS: NAME is a torchvision model (alexnet, vgg19,
resnet50, googlenet, ...) or cornet_z / cornet_s; WEIGHTS is 'trained',
'random' (seeded by --seed) or the path or URL of a state_dict. LABEL is the
model's name in the 'model' column (default: NAME for trained weights,
NAME_random for random ones).

Metrics: {', '.join(METRIC_NAMES)}.

The frame is saved after each image set x model. Running the same command
again computes only the RDMs that are not in --out yet (interrupted runs
resume; new layers, metrics, models or images are added); --overwrite starts
afresh.

examples:
  pfa rdms study.csv --entry color --group obj --model alexnet:random --out rdms.parquet
  pfa rdms study.csv --entry color --group obj --model alexnet:trained \\
      --model mine=resnet50:/models/stylized.pth --metric corr --metric euclidean_distance \\
      --layers alexnet=conv1,fc2 --cores 2 --out rdms.parquet
"""

_META_EPILOG = """\
Each group of rows with the same values of the --group columns becomes one
meta-RDM; its entries are the rows' values of the --entry columns, and each
cell compares two RDMs' upper triangles with the --metric. Columns of the
level below take a '_sub' suffix (dissim_metric -> dissim_metric_sub), so the
output can be fed back in for third-order RDMs. Without --group, every column
except the entry variables and the per-RDM columns groups the rows; list the
groups yourself when other columns change with the entries (layer_num with
layer).

examples:
  # how similar are the objects' colour spaces, per layer?
  pfa meta rdms.parquet --entry obj --group model --group layer \\
      --group activation_type --group dissim_metric --out meta.parquet
  # objects x layers in one meta-RDM, unit-level activations only
  pfa meta rdms.parquet --entry obj --entry layer --group model \\
      --group activation_type --group dissim_metric --where activation_type=unit_level \\
      --out meta_obj_layer.parquet
  # third order
  pfa meta meta_obj_layer.parquet --entry activation_type --group model \\
      --group dissim_metric --group dissim_metric_sub --out meta_meta.parquet
"""

_DEMO_EPILOG = """\
Writes into --out: stimuli/ (16 PNG images of 4 objects x 4 colours),
rdms.parquet, meta_rdms.parquet, meta_rdms_obj_layer.parquet,
meta_meta_rdms.parquet and plots/ (MDS plots with the pictures, RDM heatmaps).
AlexNet uses its trained weights when torchvision's checkpoint is already in
the torch hub cache (TORCH_HOME), random weights (seed 0) otherwise; nothing is
downloaded.

example:
  pfa demo --out pfa_demo
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pfa`` command.

    Examples
    --------
    >>> build_parser().parse_args(['demo']).out
    'pfa_demo'
    """
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(
        prog="pfa",
        description="Representational similarity analysis (RSA) of images in PyTorch CNNs:\n"
        "RDMs per layer, meta-RDMs of any order, MDS plots, parquet tables.",
        epilog=_MAIN_EPILOG,
        formatter_class=formatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no summary")

    demo = commands.add_parser(
        "demo", parents=[quiet], formatter_class=formatter, epilog=_DEMO_EPILOG,
        help="run the user guide's study on synthetic images (a minute, no downloads)",
        description="Run the user guide's study end to end on synthetic images: RDMs,\n"
        "meta-RDMs of second and third order, MDS plots and heatmaps.",
    )
    demo.add_argument("--out", default="pfa_demo", metavar="DIR",
                      help="folder to write into (default: ./pfa_demo)")
    demo.set_defaults(handler=_run_demo)

    rdms = commands.add_parser(
        "rdms", parents=[quiet], formatter_class=formatter, epilog=_RDMS_EPILOG,
        help="RDMs of your own images, listed in a CSV (resumable)",
        description="Make one RDM per image set, model, layer, metric and activation type\n"
        "from the images listed in a CSV file, and save the RDM frame.",
    )
    rdms.add_argument("study", metavar="STUDY.csv", help="one row per image: path + variables")
    rdms.add_argument("--entry", action="append", required=True, metavar="VAR",
                      help="variable that varies within an RDM (its entries); repeatable")
    rdms.add_argument("--group", action="append", required=True, metavar="VAR",
                      help="variable that varies between RDMs (an image set per value); "
                      "repeatable")
    rdms.add_argument("--model", action="append", required=True, metavar="[LABEL=]NAME:WEIGHTS",
                      help="e.g. alexnet:random, alexnet:trained, mine=resnet50:w.pth; repeatable")
    rdms.add_argument("--metric", action="append", choices=METRIC_NAMES, metavar="METRIC",
                      help="dissimilarity metric (default: corr); repeatable")
    rdms.add_argument("--layers", action="append", metavar="[MODEL=]L1,L2",
                      help="only these layers (original_rgb is always kept), for every model "
                      "or for the model labelled MODEL; default: every layer")
    rdms.add_argument("--perms", type=int, default=0, metavar="N",
                      help="also N RDMs with the entries' labels scrambled (default: 0)")
    rdms.add_argument("--cores", type=int, default=1, metavar="N",
                      help="image sets x models in N processes (default: 1)")
    rdms.add_argument("--batch-size", type=int, default=32, metavar="N",
                      help="images per forward pass (default: 32)")
    rdms.add_argument("--image-size", type=int, default=224, metavar="PX",
                      help="resize and crop images to PX x PX (default: 224)")
    rdms.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    rdms.add_argument("--seed", type=int, default=0,
                      help="seed of random weights and permutations (default: 0)")
    rdms.add_argument("--name", metavar="DF_NAME",
                      help="value of the df_name column (default: the CSV's file name)")
    rdms.add_argument("--overwrite", action="store_true",
                      help="recompute everything instead of adding to --out")
    rdms.add_argument("--out", required=True, metavar="FILE.parquet", help="the RDM frame")
    rdms.set_defaults(handler=_run_rdms)

    meta = commands.add_parser(
        "meta", parents=[quiet], formatter_class=formatter, epilog=_META_EPILOG,
        help="meta-RDMs (RDMs of RDMs) of an RDM frame, of any order",
        description="Make meta-RDMs from a frame written by 'pfa rdms' or 'pfa meta'.",
    )
    meta.add_argument("frame", metavar="FRAME.parquet", help="an RDM or meta-RDM frame")
    meta.add_argument("--entry", action="append", required=True, metavar="COLUMN",
                      help="column whose values are the meta-RDM's entries; repeatable")
    meta.add_argument("--group", action="append", metavar="COLUMN",
                      help="column fixed within a meta-RDM; repeatable (default: every other "
                      "descriptive column)")
    meta.add_argument("--metric", action="append", choices=METRIC_NAMES, metavar="METRIC",
                      help="how two RDMs are compared (default: corr); repeatable")
    meta.add_argument("--where", action="append", metavar="COLUMN=VALUE",
                      help="use only the rows with this value, e.g. activation_type=unit_level; "
                      "repeatable")
    meta.add_argument("--perms", type=int, default=0, metavar="N",
                      help="also N meta-RDMs with scrambled entries (default: 0)")
    meta.add_argument("--seed", type=int, default=0, help="seed of the permutations (default: 0)")
    meta.add_argument("--name", default="meta_rdm", metavar="DF_NAME",
                      help="value of the df_name column (default: meta_rdm)")
    meta.add_argument("--out", required=True, metavar="FILE.parquet", help="the meta-RDM frame")
    meta.set_defaults(handler=_run_meta)
    return parser


def _one_line(error: BaseException) -> str:
    message = error.args[0] if isinstance(error, KeyError) and error.args else str(error)
    return " ".join(str(message).split())


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pfa`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``pfa`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 2 for a mistake in the input (one line on stderr);
        130 when interrupted.

    Examples
    --------
    >>> main(['meta', 'no_such_frame.parquet', '--entry', 'obj', '--out', 'm.parquet'])
    2
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.handler(args)
    except (UsageError, ValueError, KeyError, TypeError, FileNotFoundError) as error:
        print(f"pfa {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        hint = "; run the same command again to resume" if args.command == "rdms" else ""
        print(f"pfa {args.command}: interrupted{hint}.", file=sys.stderr)
        return 130
