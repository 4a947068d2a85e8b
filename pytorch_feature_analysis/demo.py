"""The demo study: the user guide's analysis end to end, from a notebook or ``pfa demo``.

:func:`run_demo` draws 4 objects in 4 colours, runs them through AlexNet and
writes the RDM frame, second- and third-order meta-RDMs, MDS plots and
heatmaps into one folder. AlexNet gets its trained weights when it can: from
the torch hub cache, else downloaded once (233 MB, with a progress bar). A
machine that cannot reach the download server falls back at once to random
weights (seed 0), with a one-line notice.

Examples
--------
>>> import pytorch_feature_analysis as pfa
>>> result = pfa.run_demo('pfa_demo', verbose=False)  # doctest: +SKIP
>>> result['weights'], result['counts']['rdms']  # doctest: +SKIP
('trained', 352)
"""

from __future__ import annotations

import os
import sys
import threading
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from ._validation import check_bool, check_choice, public
from .meta import get_meta_rdms, subset_rdm_df
from .models import prepare_models
from .rdms import get_rdms
from .stimuli import package_image_sets, save_synthetic_stimuli

__all__ = ["run_demo"]

_MODEL = "alexnet"
_METRICS = ["corr", "euclidean_distance"]
_OBJECTS = 4
_COLORS = (0, 90, 180, 270)
_PLOT_LAYER = "conv1"
_PROBE_TIMEOUT_S = 3.0
_WEIGHTS = ("auto", "trained", "random")


# ---------------------------------------------------------------------------
# AlexNet's weights: the cache, a download, or random
# ---------------------------------------------------------------------------


def _checkpoint_url() -> str:
    from torchvision.models import AlexNet_Weights

    return AlexNet_Weights.IMAGENET1K_V1.url


def _local_alexnet_checkpoint() -> Path:
    """Where torchvision keeps AlexNet's trained weights once downloaded (honours TORCH_HOME)."""
    filename = os.path.basename(urllib.parse.urlparse(_checkpoint_url()).path)
    return Path(torch.hub.get_dir(), "checkpoints", filename)


def _head(url: str, timeout: float) -> str | None:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
            return None
    except (OSError, ValueError) as error:  # URLError and socket errors are OSErrors
        return str(getattr(error, "reason", error))


def _unreachable(url: str, timeout: float = _PROBE_TIMEOUT_S) -> str | None:
    """Why ``url`` cannot be reached within ``timeout`` seconds, or None when it can.

    The probe runs in a daemon thread, so a name lookup that hangs (which the
    socket timeout does not bound) cannot hold the caller longer either.
    """
    answer: list[str | None] = []
    probe = threading.Thread(target=lambda: answer.append(_head(url, timeout)), daemon=True)
    probe.start()
    probe.join(timeout)
    return answer[0] if answer else f"no answer within {timeout:g} s"


def _download(url: str, destination: Path, verbose: bool) -> None:
    """Fetch ``url`` into the torch hub cache, checking the hash in its file name."""
    match = torch.hub.HASH_REGEX.search(destination.name)
    destination.parent.mkdir(parents=True, exist_ok=True)
    torch.hub.download_url_to_file(
        url, str(destination), match.group(1) if match else None, progress=verbose
    )


def _resolve_weights(weights: str, verbose: bool) -> tuple[str, str]:
    """``('trained' | 'random', where they come from)``; downloads when it must and can."""
    if weights == "random":
        return "random", "random weights, seed 0, as asked"
    checkpoint, url = _local_alexnet_checkpoint(), _checkpoint_url()
    if checkpoint.is_file():
        return "trained", f"trained weights from the torch hub cache ({checkpoint})"
    reason = _unreachable(url)
    if reason is None:
        _download(url, checkpoint, verbose)
        return "trained", f"trained weights, downloaded to {checkpoint}"
    if weights == "trained":
        raise ConnectionError(
            f"AlexNet's trained weights are not at {checkpoint} and {url} cannot be reached "
            f"({reason}); connect once to download them, copy the file there, or use random "
            "weights."
        )
    source = f"random weights, seed 0: offline ({reason}) and no trained weights at {checkpoint}"
    if verbose:
        print(f"pfa demo: using {source}.", file=sys.stderr)
    return "random", source


# ---------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------


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


def _mds_plots(frames: dict, stimuli: list[dict], layers: list[str], label: str,
               plots_dir: Path) -> None:
    """First-order MDS of one object's colours, second-order of the objects, trajectories."""
    picture = {(s["obj"], s["color"]): s["path"] for s in stimuli}
    objects = list(dict.fromkeys(s["obj"] for s in stimuli))
    colors = list(dict.fromkeys(s["color"] for s in stimuli))
    corr = {"activation_type": "unit_level", "dissim_metric": "corr"}
    _mds_png(
        _select(frames["rdms"], layer=_PLOT_LAYER, obj=objects[0], **corr),
        plots_dir / "mds_colors.png",
        f"{objects[0]}: its colours in {_PLOT_LAYER} ({label})",
        cond_pics={(color,): picture[objects[0], color] for color in colors},
    )
    _mds_png(
        _select(frames["meta_rdms"], layer=_PLOT_LAYER, dissim_metric_sub="corr", **corr),
        plots_dir / "mds_objects.png",
        f"Colour spaces of the objects in {_PLOT_LAYER} ({label})",
        cond_pics={(obj,): picture[obj, colors[0]] for obj in objects},
    )
    line_colors = ("black", "tab:blue", "tab:orange", "tab:green")
    _mds_png(
        _select(frames["meta_rdms_obj_layer"], dissim_metric_sub="corr", **corr),
        plots_dir / "mds_trajectories.png",
        f"Each object's colour space through the layers ({label})",
        cond_pics={(obj, layers[-1]): picture[obj, colors[0]] for obj in objects},
        line_trajectories=[
            ([(obj, layer) for layer in layers], {"linewidth": 1, "c": line_color})
            for obj, line_color in zip(objects, line_colors)
        ],
        plot_opts={"s": 12},
    )


def _heatmap_grids(frames: dict, obj: str, layers: list[str], label: str,
                   plots_dir: Path) -> None:
    """One object's colour RDM and the objects' second-order RDM, a panel per layer."""
    import matplotlib.pyplot as plt

    from .plotting import plot_rdm_grid

    corr = {"activation_type": "unit_level", "dissim_metric": "corr"}
    grids = (
        (_select(frames["rdms"], obj=obj, **corr), "heatmaps_colors.png",
         f"{obj}: its colour RDM in each layer ({label}, 1 - Pearson r)"),
        (_select(frames["meta_rdms"], dissim_metric_sub="corr", **corr), "heatmaps_objects.png",
         f"The objects' second-order RDM in each layer ({label}, 1 - Pearson r)"),
    )
    for frame, name, title in grids:
        in_order = frame.iloc[np.argsort(frame["layer"].map(layers.index).to_numpy())]
        fig = plot_rdm_grid(in_order, col="layer", col_wrap=6, height=2.0)
        fig.suptitle(title)
        fig.savefig(plots_dir / name, dpi=80)
        plt.close(fig)


# ---------------------------------------------------------------------------
# The study
# ---------------------------------------------------------------------------


def _tables(image_sets: list, models: dict, paths: dict, verbose: bool) -> dict:
    """The RDM frame and the three meta-RDM frames, each written to its file."""
    rdm_df = get_rdms(
        image_sets, models, paths["rdms"], "one_object_color_rdms",
        dissim_metrics=_METRICS, verbose=verbose, append=False,
    )
    meta = dict(dissim_metrics=_METRICS, verbose=verbose)
    meta_rdm = get_meta_rdms(
        rdm_df, paths["meta_rdms"], ["obj"],
        grouping_variables=["model", "layer", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_meta_rdm", **meta,
    )
    layer_meta = get_meta_rdms(
        rdm_df, paths["meta_rdms_obj_layer"], ["obj", "layer"],
        grouping_variables=["model", "activation_type", "dissim_metric"],
        df_name="color_space_across_objects_and_layers_meta_rdm", **meta,
    )
    meta_meta = get_meta_rdms(
        layer_meta, paths["meta_meta_rdms"], ["activation_type"],
        grouping_variables=["model", "dissim_metric", "dissim_metric_sub"],
        df_name="activation_type_meta_meta_rdm", **meta,
    )
    return {"rdms": rdm_df, "meta_rdms": meta_rdm, "meta_rdms_obj_layer": layer_meta,
            "meta_meta_rdms": meta_meta}


@public
def run_demo(out: str | os.PathLike = "pfa_demo", weights: str = "auto",
             verbose: bool = True) -> dict:
    """Run the user guide's study end to end and write every result to a folder.

    Draws 4 objects x 4 colours (:func:`~pytorch_feature_analysis.save_synthetic_stimuli`),
    runs them through AlexNet and writes:

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
    out : path-like, default 'pfa_demo'
        Folder to write into (created if needed; files of an earlier demo are
        replaced).
    weights : {'auto', 'trained', 'random'}, default 'auto'
        AlexNet's weights. ``'trained'``: torchvision's ImageNet weights, from
        the torch hub cache (``$TORCH_HOME/hub/checkpoints``), else downloaded
        there (233 MB, once). ``'random'``: random weights, seed 0, without
        looking for the others. ``'auto'``: trained weights when they are
        cached or the download server answers within 3 seconds, else random
        ones, with a one-line notice on stderr.
    verbose : bool, default True
        Show progress bars (and the download's) and the notice.

    Returns
    -------
    dict
        ``{'stimuli', 'rdms', 'meta_rdms', 'meta_rdms_obj_layer',
        'meta_meta_rdms', 'plots'}`` -> paths; ``'model'``: the model's label
        (``'alexnet'`` for trained weights, ``'alexnet_random'``);
        ``'models'``: ``{label: the AlexNet used}``, for
        :func:`~pytorch_feature_analysis.get_rdms` on other images;
        ``'weights'``: ``'trained'`` or ``'random'``; ``'weights_source'``:
        where they came from, in words; ``'counts'``: rows per frame, and
        the numbers of stimuli and layers.

    Raises
    ------
    InvalidInputError
        For ``weights`` or ``verbose`` of another value.
    ConnectionError
        For ``weights='trained'`` when the weights are not cached and the
        download server cannot be reached.

    Examples
    --------
    >>> result = run_demo('pfa_demo', verbose=False)  # doctest: +SKIP
    >>> result['counts']['rdms']  # doctest: +SKIP
    352
    """
    check_choice(weights, "weights", _WEIGHTS)
    verbose = check_bool(verbose, "verbose")
    resolved, source = _resolve_weights(weights, verbose)
    out = Path(out)
    paths = {"stimuli": out / "stimuli", "plots": out / "plots"}
    paths.update({name: out / f"{name}.parquet" for name in
                  ("rdms", "meta_rdms", "meta_rdms_obj_layer", "meta_meta_rdms")})
    paths["plots"].mkdir(parents=True, exist_ok=True)
    stimuli = save_synthetic_stimuli(paths["stimuli"], num_objects=_OBJECTS, colors=_COLORS)
    label = _MODEL if resolved == "trained" else f"{_MODEL}_random"
    models = prepare_models({label: (_MODEL, resolved)}, random_state=0)
    frames = _tables(package_image_sets(stimuli, ["color"], ["obj"]), models, paths, verbose)
    layers = list(dict.fromkeys(frames["rdms"].sort_values("layer_num", kind="stable")["layer"]))
    with tqdm(total=2, desc="plots", unit="group", disable=not verbose) as bar:
        _mds_plots(frames, stimuli, layers, label, paths["plots"])
        bar.update(1)
        _heatmap_grids(frames, stimuli[0]["obj"], layers, label, paths["plots"])
        bar.update(1)
    counts = {name: len(frame) for name, frame in frames.items()}
    counts.update(stimuli=len(stimuli), layers=len(layers))
    return {**paths, "model": label, "models": models, "weights": resolved,
            "weights_source": source, "counts": counts}
