"""The ``pfa`` command: a demo, RDMs of one's own images, meta-RDMs.

::

    pfa demo --out pfa_demo
    pfa rdms study.csv --entry color --group obj --model alexnet:random --out rdms.parquet
    pfa meta rdms.parquet --entry obj --group model --group layer \\
        --group activation_type --group dissim_metric --out meta.parquet

The command only parses: each subcommand hands its options to the library
(:func:`~pytorch_feature_analysis.run_demo`,
:func:`~pytorch_feature_analysis.get_rdms`,
:func:`~pytorch_feature_analysis.get_meta_rdms`), which checks them. Every
subcommand explains itself with ``--help``. A mistake in the input (a bad
option value, a missing file, an unknown column, model, layer or metric)
stops the command with one line on stderr and exit status 2; a file that
cannot be read or written (permission denied, a full disk) with one line
naming it and exit status 1.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Callable, NoReturn, Sequence

import pandas as pd
import pyarrow.parquet as pq

from ._validation import InvalidInputError, check_device, fail, parse_memory, public
from .demo import run_demo
from .dissim import METRIC_NAMES
from .io import frame_format, load_frame
from .meta import get_meta_rdms
from .models import available_models, prepare_models
from .rdms import get_rdms
from .stimuli import default_transform, package_image_sets

__all__ = ["main", "build_parser", "parse_model_spec", "read_study", "UsageError"]

#: The old name of :class:`~pytorch_feature_analysis.InvalidInputError`.
UsageError = InvalidInputError


# ---------------------------------------------------------------------------
# Reading the user's input
# ---------------------------------------------------------------------------


@public
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
    InvalidInputError
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
        raise fail("text", "[LABEL=]NAME:WEIGHTS, e.g. alexnet:random, alexnet:trained or "
                   "resnet50:/path/weights.pth", text)
    names = available_models()
    if base not in names:
        close = difflib.get_close_matches(base.lower(), names, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(map(repr, close))}? " if close else ""
        raise fail("text", f"NAME:WEIGHTS with a known model NAME ({hint}all {len(names)}: "
                   "pfa.available_models())", text)
    if label is None:
        if weights in ("trained", "random"):
            label = base if weights == "trained" else f"{base}_random"
        else:
            stem = Path(urllib.parse.urlparse(weights).path or weights).name.split(".")[0]
            label = f"{base}_{stem}" if stem else base
    return label, (base, weights, random_state)


@public
def read_study(csv_path: str | Path, variables: Sequence[str]) -> list[dict]:
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
    InvalidInputError
        For a missing file, a file that is not CSV text, a file without
        rows, or a column that is not in it (named, with the columns it has).

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
        raise fail("csv_path", "an existing CSV file", str(csv_path))
    try:
        table = pd.read_csv(csv_path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise fail("csv_path", f"a CSV file ({_one_line(error)})", str(csv_path)) from error
    table.columns = [str(column).strip() for column in table.columns]
    needed = list(dict.fromkeys(["path", *variables]))
    missing = [column for column in needed if column not in table.columns]
    if missing:
        raise fail("csv_path", f"a CSV file with the column(s) {missing}",
                   f"{str(csv_path)!r} with the columns {list(table.columns)}", raw=True)
    if table.empty:
        raise fail("csv_path", "a CSV file with at least one row", str(csv_path))
    folder = csv_path.resolve().parent
    rows = []
    for record in table[needed].to_dict("records"):
        record = {column: value.strip() for column, value in record.items()}
        path = Path(record["path"])
        record["path"] = str(path if path.is_absolute() else (folder / path).resolve())
        rows.append(record)
    return rows


# ---------------------------------------------------------------------------
# Option values: argparse type= callables (a bad value exits 2 with one line)
# ---------------------------------------------------------------------------


def _short(error: Exception) -> str:
    """A library message without its "The 'x' parameter of f" opening, for argparse."""
    text = _one_line(error)
    return "must be " + text.split(" must be ", 1)[1] if " must be " in text else text


def _option_type(name: str, convert: Callable) -> Callable:
    """``convert`` as an argparse type named ``name``; its InvalidInputError becomes the message."""

    def option(text: str):
        try:
            return convert(text)
        except InvalidInputError as error:
            raise argparse.ArgumentTypeError(_short(error)) from error

    option.__name__ = name
    return option


def _int_at_least(minimum: int) -> Callable:
    def convert(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise fail("value", f"an int >= {minimum}", text)
        return value

    return _option_type("int", convert)


def _existing_file(text: str) -> str:
    if not Path(text).is_file():
        raise fail("path", "an existing file", text)
    return text


def _frame_file(text: str) -> str:
    frame_format(text)
    return _existing_file(text)


def _out_frame(text: str) -> str:
    try:
        kind = frame_format(text)
    except InvalidInputError:
        kind = None
    if kind not in ("parquet", "pickle"):
        raise fail("path", "a .parquet file (or .p/.pkl for pickle)", text)
    return text


def _model(text: str) -> tuple[str, tuple]:
    """:func:`parse_model_spec`, with a weights path that must be a file."""
    label, (base, weights, seed) = parse_model_spec(text)
    if weights not in ("trained", "random") and "://" not in weights:
        if not Path(weights).is_file():
            raise fail("value", "NAME:WEIGHTS with WEIGHTS trained, random, a URL or an "
                       f"existing file; there is no file {weights!r}", text)
    return label, (base, weights, seed)


def _device(text: str) -> str:
    check_device(text)
    return text


def _memory(text: str) -> str:
    parse_memory(text)
    return text


def _layers(text: str) -> tuple[str, list[str]]:
    label, sep, names = text.rpartition("=")
    layers = [name.strip() for name in names.split(",") if name.strip()]
    if not layers or (sep and not label):
        raise fail("value", "[MODEL=]L1,L2, e.g. conv1,fc3 or alexnet=conv1", text)
    return label, layers


def _where(text: str) -> tuple[str, str]:
    column, sep, value = text.partition("=")
    if not sep or not column:
        raise fail("value", "COLUMN=VALUE, e.g. activation_type=unit_level", text)
    return column, value


_INT = {minimum: _int_at_least(minimum) for minimum in (0, 1, 32)}
_EXISTING_FILE = _option_type("file", _existing_file)
_FRAME_FILE = _option_type("frame file", _frame_file)
_OUT_FRAME = _option_type("output file", _out_frame)
_DEVICE = _option_type("device", _device)
_MEMORY = _option_type("size", _memory)
_MODEL = _option_type("model", _model)
_LAYERS = _option_type("layers", _layers)
_WHERE = _option_type("condition", _where)


# ---------------------------------------------------------------------------
# The subcommands
# ---------------------------------------------------------------------------


def _which_layers(options: Sequence[tuple[str, list[str]]], labels: Sequence[str]) -> dict | None:
    """``--layers`` values as ``get_rdms``'s ``which_layers`` (None: every layer)."""
    if not options:
        return None
    for label, _ in options:
        if label and label not in labels:
            raise InvalidInputError(
                f"--layers must name one of the --model labels {list(labels)}; got {label!r} "
                "instead."
            )
    chosen = {
        label: list(dict.fromkeys(n for key, names in options if key in ("", label) for n in names))
        for label in labels
    }
    return {label: layers for label, layers in chosen.items() if layers}


def _count_rows(path: Path) -> int:
    if not path.is_file():
        return 0
    if frame_format(path) == "parquet":
        return pq.read_metadata(path).num_rows
    return len(load_frame(path, allow_pickle=True))  # the command's own output file


def _run_rdms(args: argparse.Namespace) -> int:
    models_dict = {}
    for label, (base, weights, _) in args.model:
        if label in models_dict:
            raise InvalidInputError(
                f"Each --model must have its own label; got {label!r} twice instead (name "
                "them, e.g. --model mine=alexnet:random)."
            )
        models_dict[label] = (base, weights, args.seed)
    which_layers = _which_layers(args.layers, list(models_dict))
    rows = read_study(args.study, [*args.entry, *args.group])
    image_sets = package_image_sets(rows, args.entry, args.group)
    models = prepare_models(models_dict)
    out = Path(args.out)
    before = 0 if args.overwrite else _count_rows(out)
    start = time.perf_counter()
    frame = get_rdms(
        image_sets, models, out, args.name or Path(args.study).stem,
        which_layers=which_layers, dissim_metrics=args.metric or ["corr"],
        num_perms=args.perms, num_cores=args.cores, verbose=not args.quiet,
        append=not args.overwrite, batch_size=args.batch_size, device=args.device,
        transform=default_transform(args.image_size), random_state=args.seed,
        max_memory=args.max_memory,
    )
    if not args.quiet:
        print(
            f"pfa rdms: {len(frame)} RDMs in {out} ({len(frame) - before} computed now, "
            f"{before} already there; {len(image_sets)} image sets x {len(models)} model(s)) "
            f"in {time.perf_counter() - start:.0f} s."
        )
    return 0


def _apply_where(frame: pd.DataFrame, conditions: Sequence[tuple[str, str]],
                 source: str) -> pd.DataFrame:
    """The rows whose ``column`` reads as ``value`` for every ``--where COLUMN=VALUE``."""
    for column, value in conditions:
        if column not in frame.columns:
            raise InvalidInputError(
                f"--where must name a column of {source!r} ({list(frame.columns)}); got "
                f"{column!r} instead."
            )
        as_text = frame[column].map(str)
        if not (as_text == value).any():
            values = sorted(set(as_text))
            raise InvalidInputError(
                f"--where {column}=... must give a value of {column!r} in {source!r} "
                f"({values[:20]}{' ...' if len(values) > 20 else ''}); got {value!r} instead."
            )
        frame = frame[as_text == value]
    return frame.reset_index(drop=True)


def _run_meta(args: argparse.Namespace) -> int:
    frame = load_frame(args.frame, allow_pickle=args.allow_pickle)
    frame = _apply_where(frame, args.where or [], args.frame)
    start = time.perf_counter()
    meta = get_meta_rdms(
        frame, Path(args.out), args.entry, grouping_variables=args.group or "rest",
        df_name=args.name, num_perms=args.perms, dissim_metrics=args.metric or ["corr"],
        random_state=args.seed, verbose=not args.quiet,
    )
    if not args.quiet:
        size = len(meta["entry_keys"].iloc[0]) if len(meta) else 0
        plural = "" if len(meta) == 1 else "s"
        print(
            f"pfa meta: {len(meta)} meta-RDM{plural} of {size} entries "
            f"({', '.join(args.entry)}) from {len(frame)} RDMs in {args.out} in "
            f"{time.perf_counter() - start:.0f} s."
        )
    return 0


def _run_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    start = time.perf_counter()
    result = run_demo(args.out, weights=args.weights, verbose=not args.quiet)
    if args.quiet:
        return 0
    counts, out = result["counts"], Path(args.out)
    lines = [
        f"pfa demo: {counts['stimuli']} images through AlexNet ({result['weights_source']}) "
        f"in {time.perf_counter() - start:.0f} s. Written to {out}/:",
        f"  stimuli/                     the {counts['stimuli']} images (objects x colours)",
        f"  rdms.parquet                 {counts['rdms']} RDMs (objects x {counts['layers']} "
        "layers x 2 metrics x 2 activation types)",
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
AlexNet uses its trained ImageNet weights: from the torch hub cache
($TORCH_HOME/hub/checkpoints), else downloaded there once (233 MB). Offline,
it falls back at once to random weights (seed 0) with a one-line notice;
--weights trained or --weights random forces either.

examples:
  pfa demo --out pfa_demo
  pfa demo --weights random        # no download, no network
"""



class _BadOption(SystemExit):
    """A bad option value: argparse's exit (status 2), which :func:`main` turns into its status."""


class _Parser(argparse.ArgumentParser):
    """argparse's parser, reporting a bad option value as one line (``pfa rdms: error: ...``).

    Other mistakes (no command, a required option left out) keep argparse's
    usage message.
    """

    def error(self, message: str) -> NoReturn:
        cause = sys.exc_info()[1]
        if not isinstance(cause, argparse.ArgumentError) or cause.argument_name is None:
            super().error(message)
        print(f"{self.prog}: error: {_one_line(message)} (see '{self.prog} --help')",
              file=sys.stderr)
        raise _BadOption(2)


def _add_demo(commands, parents: list) -> None:
    demo = commands.add_parser(
        "demo", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_DEMO_EPILOG,
        help="run the user guide's study on synthetic images (a minute on a CPU)",
        description="Run the user guide's study end to end on synthetic images: RDMs,\n"
        "meta-RDMs of second and third order, MDS plots and heatmaps.",
    )
    demo.add_argument("--out", default="pfa_demo", metavar="DIR",
                      help="folder to write into (default: ./pfa_demo)")
    demo.add_argument("--weights", choices=("auto", "trained", "random"), default="auto",
                      help="AlexNet's weights: trained (cached or downloaded), random (seed 0), "
                      "or auto: trained when cached or online, else random (default)")
    demo.set_defaults(handler=_run_demo)


def _add_rdms(commands, parents: list) -> None:
    rdms = commands.add_parser(
        "rdms", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_RDMS_EPILOG, help="RDMs of your own images, listed in a CSV (resumable)",
        description="Make one RDM per image set, model, layer, metric and activation type\n"
        "from the images listed in a CSV file, and save the RDM frame.",
    )
    option = rdms.add_argument
    option("study", type=_EXISTING_FILE, metavar="STUDY.csv",
           help="one row per image: path + variables")
    option("--entry", action="append", required=True, metavar="VAR",
           help="variable that varies within an RDM (its entries); repeatable")
    option("--group", action="append", required=True, metavar="VAR",
           help="variable that varies between RDMs (an image set per value); repeatable")
    option("--model", action="append", required=True, type=_MODEL,
           metavar="[LABEL=]NAME:WEIGHTS",
           help="e.g. alexnet:random, alexnet:trained, mine=resnet50:w.pth; repeatable")
    option("--metric", action="append", choices=METRIC_NAMES, metavar="METRIC",
           help="dissimilarity metric (default: corr); repeatable")
    option("--layers", action="append", type=_LAYERS, metavar="[MODEL=]L1,L2",
           help="only these layers (original_rgb is always kept), for every model or for the "
           "model labelled MODEL; default: every layer")
    option("--perms", type=_INT[0], default=0, metavar="N",
           help="also N RDMs with the entries' labels scrambled (default: 0)")
    option("--cores", type=_INT[1], default=1, metavar="N",
           help="image sets x models in N processes (default: 1)")
    option("--batch-size", type=_INT[1], default=32, metavar="N",
           help="images per forward pass (default: 32)")
    option("--image-size", type=_INT[32], default=224, metavar="PX",
           help="resize and crop images to PX x PX (default: 224)")
    option("--device", type=_DEVICE, default="cpu", help="cpu or cuda (default: cpu)")
    option("--max-memory", type=_MEMORY, metavar="SIZE",
           help="memory budget of the activations, e.g. 4GB (default: half of what is free)")
    option("--seed", type=_INT[0], default=0,
           help="seed of random weights and permutations (default: 0)")
    option("--name", metavar="DF_NAME",
           help="value of the df_name column (default: the CSV's file name)")
    option("--overwrite", action="store_true",
           help="recompute everything instead of adding to --out")
    option("--out", required=True, type=_OUT_FRAME, metavar="FILE.parquet", help="the RDM frame")
    rdms.set_defaults(handler=_run_rdms)


def _add_meta(commands, parents: list) -> None:
    meta = commands.add_parser(
        "meta", parents=parents, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=_META_EPILOG, help="meta-RDMs (RDMs of RDMs) of an RDM frame, of any order",
        description="Make meta-RDMs from a frame written by 'pfa rdms' or 'pfa meta'.",
    )
    option = meta.add_argument
    option("frame", type=_FRAME_FILE, metavar="FRAME.parquet", help="an RDM or meta-RDM frame")
    option("--allow-pickle", action="store_true",
           help="read a .p/.pkl FRAME (unpickling runs code: only for files you trust)")
    option("--entry", action="append", required=True, metavar="COLUMN",
           help="column whose values are the meta-RDM's entries; repeatable")
    option("--group", action="append", metavar="COLUMN",
           help="column fixed within a meta-RDM; repeatable (default: every other "
           "descriptive column)")
    option("--metric", action="append", choices=METRIC_NAMES, metavar="METRIC",
           help="how two RDMs are compared (default: corr); repeatable")
    option("--where", action="append", type=_WHERE, metavar="COLUMN=VALUE",
           help="use only the rows with this value, e.g. activation_type=unit_level; repeatable")
    option("--perms", type=_INT[0], default=0, metavar="N",
           help="also N meta-RDMs with scrambled entries (default: 0)")
    option("--seed", type=_INT[0], default=0, help="seed of the permutations (default: 0)")
    option("--name", default="meta_rdm", metavar="DF_NAME",
           help="value of the df_name column (default: meta_rdm)")
    option("--out", required=True, type=_OUT_FRAME, metavar="FILE.parquet",
           help="the meta-RDM frame")
    meta.set_defaults(handler=_run_meta)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``pfa`` command.

    Option values are converted and checked as they are parsed; a bad one
    stops the command with one line on stderr and exit status 2.

    Examples
    --------
    >>> build_parser().parse_args(['demo']).out
    'pfa_demo'
    >>> build_parser().parse_args(['demo', '--weights', 'random']).weights
    'random'
    """
    parser = _Parser(
        prog="pfa",
        description="Representational similarity analysis (RSA) of images in PyTorch CNNs:\n"
        "RDMs per layer, meta-RDMs of any order, MDS plots, parquet tables.",
        epilog=_MAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("-q", "--quiet", action="store_true", help="no progress bars, no summary")
    for add in (_add_demo, _add_rdms, _add_meta):
        add(commands, [quiet])
    return parser


def _one_line(error: object) -> str:
    return " ".join(str(error).split())


def _os_error_line(error: OSError, out: str) -> str:
    """The error in one line, naming the file (or, when the error names none, ``--out``)."""
    if error.filename is None and error.strerror:
        return f"{_one_line(error)} (writing {out})"
    return _one_line(error)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``pfa`` command line; return the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments after ``pfa`` (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success; 2 for a mistake in the input (a bad option value, or
        the library's :class:`~pytorch_feature_analysis.InvalidInputError`)
        and 1 for a file that cannot be read or written (an :class:`OSError`),
        each with one line on stderr; 130 when interrupted. Any other
        exception is a bug and propagates with its traceback.

    Raises
    ------
    SystemExit
        From argparse: status 0 after ``--help``; 2, with the usage, without
        a command or a required option.

    Examples
    --------
    >>> main(['meta', 'no_such_frame.parquet', '--entry', 'obj', '--out', 'm.parquet'])
    2
    """
    try:
        args = build_parser().parse_args(argv)
    except _BadOption as bad:
        return bad.code
    try:
        return args.handler(args)
    except InvalidInputError as error:
        print(f"pfa {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"pfa {args.command}: error: {_os_error_line(error, args.out)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        hint = "; run the same command again to resume" if args.command == "rdms" else ""
        print(f"pfa {args.command}: interrupted{hint}.", file=sys.stderr)
        return 130
