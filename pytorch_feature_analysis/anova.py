"""Two-way ANOVA in every unit of a network, streamed batch by batch.

For a crossed design of two factors (say colour x object), the images run
through the model in batches and each unit's sums of squares are built from
running float64 sums, so memory does not grow with the number of images:
per layer it is ``(levels of factor 1 + levels of factor 2 + 4)`` arrays the
size of the layer, plus one batch of activations.

The sums are shifted by the first image's activations (the sums of squares do
not change under a shift), which keeps the one-pass formulas accurate; a unit
that is constant over the images gives exactly zero variance, and NaN effect
sizes.
"""

from __future__ import annotations

import copy
import math
from collections import OrderedDict
from typing import Any, Callable, NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import stats
from torch import nn

from ._plan import FLOAT32, FLOAT64, ModelPlan, check_extraction, plan_analysis, transient_bytes
from ._validation import InvalidInputError, fail, public
from .activations import iter_activations
from .models import prepare_model
from .stimuli import check_images_exist

__all__ = ["AnovaResult", "unit_anova", "compute_etas_for_model_and_imageset_fast"]

_EFFECTS = ("var1", "var2", "interaction")
_STAT_NAMES = ("eta2_mean", "eta2_stdev", "eta2_stdev_kernelmeans")
# Sums of squares below this many units of rounding (times the number of
# images and the unit's sum of squares about its first image) are zero.
_ROUNDING_ULPS = 16


class AnovaResult(NamedTuple):
    """What :func:`unit_anova` returns; unpacks as ``summary, units``.

    Attributes
    ----------
    summary : pandas.DataFrame
        One row per layer (see :func:`unit_anova` for the columns).
    units : collections.OrderedDict
        ``{layer_label: {statistic: numpy.ndarray}}`` per unit.
    """

    summary: pd.DataFrame
    units: "OrderedDict[tuple, dict[str, np.ndarray]]"


class _Design(NamedTuple):
    labels: dict
    factors: tuple[str, str]
    levels1: list
    levels2: list
    replicates: int
    images: list  # cell by cell (factor 2 varies fastest), replicates together


def _is_replicate_list(value: Any) -> bool:
    return isinstance(value, (list, tuple))


_WHERE = "The 'image_set' parameter of unit_anova"


def _parse_design(image_set: Any) -> _Design:
    """Check a crossed two-factor image set; its images cell by cell, replicates together."""
    labels, stim_dict, factors = _design_parts(image_set)
    levels1: list = []
    levels2: list = []
    for key in stim_dict:
        if not isinstance(key, tuple) or len(key) != 2:
            raise InvalidInputError(
                f"{_WHERE} must key its images by (level of {factors[0]!r}, level of "
                f"{factors[1]!r}); got the key {key!r} instead."
            )
        levels1 += [key[0]] if key[0] not in levels1 else []
        levels2 += [key[1]] if key[1] not in levels2 else []
    if len(levels1) < 2 or len(levels2) < 2:
        raise InvalidInputError(
            f"{_WHERE} must have at least 2 levels of each factor; got {levels1} of "
            f"{factors[0]!r} and {levels2} of {factors[1]!r} instead."
        )
    cells = [(a, b) for a in levels1 for b in levels2]
    contents = _balanced_cells(stim_dict, cells)
    images = [image for cell in cells for image in contents[cell]]
    replicates = len(contents[cells[0]])
    return _Design(dict(labels), tuple(factors), levels1, levels2, replicates, images)


def _design_parts(image_set: Any) -> tuple[dict, dict, tuple]:
    """The labels, images and factor names of an image set, checked."""
    if not isinstance(image_set, (tuple, list)) or len(image_set) not in (3, 4):
        raise InvalidInputError(
            f"{_WHERE} must be a tuple (labels dict, {{(level1, level2): image or list of "
            f"images}}, (factor1, factor2)); got {image_set!r:.200} instead."
        )
    labels, stim_dict, factors = image_set[:3]
    if len(image_set) == 4 and image_set[3]:
        raise InvalidInputError(
            f"{_WHERE} cannot hold combinations of images (its fourth part); got "
            f"{image_set[3]!r:.200} instead."
        )
    if not isinstance(labels, dict):
        raise InvalidInputError(f"{_WHERE} must start with a labels dict; got {labels!r:.200} instead.")
    if (
        not isinstance(factors, (tuple, list))
        or len(factors) != 2
        or not all(isinstance(name, str) for name in factors)
        or factors[0] == factors[1]
        or "interaction" in factors
    ):
        raise InvalidInputError(
            f"{_WHERE} must name two different factors (not 'interaction') in its third "
            f"part, e.g. ('color', 'obj'); got {factors!r} instead."
        )
    reserved = {"model", "layer", "layer_num", "layer_label"}
    reserved |= {f"{name}_{stat}" for name in (*factors, "interaction") for stat in _STAT_NAMES}
    clashing = sorted(set(map(str, labels)) & reserved)
    if clashing:
        raise InvalidInputError(
            f"{_WHERE} has labels {clashing} that clash with output columns; rename them."
        )
    if not isinstance(stim_dict, dict) or not stim_dict:
        raise InvalidInputError(
            f"{_WHERE} must hold a non-empty dict {{(level1, level2): image}} in its second "
            f"part; got {stim_dict!r:.200} instead."
        )
    return labels, stim_dict, tuple(factors)


def _balanced_cells(stim_dict: dict, cells: list) -> dict:
    """``{cell: [images]}``: every cell present, with the same number of images."""
    missing = [cell for cell in cells if cell not in stim_dict]
    if missing:
        raise InvalidInputError(
            f"{_WHERE} must have images for every combination of levels (a crossed design); "
            f"cells {', '.join(map(repr, missing))} are missing."
        )
    contents = {
        cell: list(stim_dict[cell]) if _is_replicate_list(stim_dict[cell]) else [stim_dict[cell]]
        for cell in cells
    }
    counts: dict[int, list] = {}
    for cell in cells:
        counts.setdefault(len(contents[cell]), []).append(cell)
    if len(counts) > 1 or 0 in counts:
        listing = "; ".join(
            f"{count} image(s) in {', '.join(map(repr, counted))}"
            for count, counted in sorted(counts.items())
        )
        raise InvalidInputError(
            f"{_WHERE} must be a balanced design (the same number of images, at least one, "
            f"in every cell); got {listing} instead."
        )
    return contents


def _prepare(model_desc: Any, random_state: int | None) -> tuple[str, nn.Module]:
    if (
        not isinstance(model_desc, (tuple, list))
        or len(model_desc) not in (2, 3)
        or not isinstance(model_desc[0], str)
    ):
        raise InvalidInputError(
            "The 'model_desc' parameter of unit_anova must be (model_name, base_model, "
            f"weights) or (model_name, model); got {model_desc!r:.200} instead."
        )
    if len(model_desc) == 2:
        name, model = model_desc
        if not isinstance(model, nn.Module):
            raise InvalidInputError(
                "The 'model_desc' parameter of unit_anova must be (model_name, base_model, "
                f"weights) or (model_name, torch.nn.Module); got {model_desc!r:.200} instead."
            )
        return name, model.eval()
    name, base_model, weights = model_desc
    if isinstance(base_model, nn.Module) and weights != "trained":
        base_model = copy.deepcopy(base_model)  # new weights must not touch the caller's model
    return name, prepare_model(base_model, weights, random_state=random_state)


def _batch_within(model_plan: ModelPlan, design: _Design, extraction: Any) -> int:
    """The batch size, lowered so one batch and the running sums fit ``max_memory``."""
    if extraction.max_memory is None:
        return extraction.batch_size
    units = sum(math.prod(model_plan.shape(label)) for label in model_plan.layers)
    sums = units * FLOAT64 * (len(design.levels1) + len(design.levels2) + 4)
    per_image = units * FLOAT32 + transient_bytes(model_plan, 1)
    fitting = (extraction.max_memory - sums) // per_image
    if fitting < 1:
        raise fail(
            "max_memory",
            f"at least {sums + per_image} bytes for the running sums of the layers chosen and "
            "one image",
            extraction.max_memory,
        )
    return int(min(extraction.batch_size, fitting))


class _UnitSums:
    """Running float64 sums of one layer's units over a cell-ordered image stream.

    Every value is taken relative to the first image's activations. Kept:
    the sum of squares over all images, each level's sum of factor 1 (rows)
    and factor 2 (columns), and the sum over cells of (cell sum)^2 / replicates.
    A cell whose replicates straddle two batches carries its partial sum over.
    """

    def __init__(self, first: np.ndarray, design: _Design):
        self.shape = first.shape
        self.reference = first.reshape(-1).astype(np.float64)
        size = self.reference.size
        self.replicates = design.replicates
        self.num_levels = (len(design.levels1), len(design.levels2))
        self.sum_sq = np.zeros(size)
        self.cell_sq = np.zeros(size)
        self.row_sums = np.zeros((self.num_levels[0], size))
        self.col_sums = np.zeros((self.num_levels[1], size))
        self.open_cell = -1
        self.open_sum = np.zeros(0)

    def add(self, start: int, values: np.ndarray) -> None:
        """Add the activations of images ``start, start + 1, ...`` (cell order)."""
        deviations = values.reshape(len(values), -1).astype(np.float64)
        deviations -= self.reference
        self.sum_sq += np.einsum("bu,bu->u", deviations, deviations)
        position, stop = start, start + len(values)
        while position < stop:  # one contiguous run of images per cell
            cell = position // self.replicates
            end = min((cell + 1) * self.replicates, stop)
            cell_sum = deviations[position - start : end - start].sum(axis=0)
            if cell == self.open_cell:
                cell_sum += self.open_sum
            if end < (cell + 1) * self.replicates:  # the cell goes on in the next batch
                self.open_cell, self.open_sum = cell, cell_sum
            else:
                self._close_cell(cell, cell_sum)
            position = end

    def _close_cell(self, cell: int, cell_sum: np.ndarray) -> None:
        row, col = divmod(cell, self.num_levels[1])
        self.row_sums[row] += cell_sum
        self.col_sums[col] += cell_sum
        if self.replicates > 1:
            squared = np.square(cell_sum)
            squared /= self.replicates
            self.cell_sq += squared
        self.open_cell = -1

    def statistics(self) -> dict[str, np.ndarray]:
        n1, n2 = self.num_levels
        r = self.replicates
        total = n1 * n2 * r
        correction = self.row_sums.sum(axis=0) ** 2 / total
        ss = {
            "ss_total": self.sum_sq - correction,
            "ss_var1": np.einsum("ku,ku->u", self.row_sums, self.row_sums) / (n2 * r) - correction,
            "ss_var2": np.einsum("ku,ku->u", self.col_sums, self.col_sums) / (n1 * r) - correction,
        }
        if r > 1:
            ss["ss_between"] = self.cell_sq - correction
            ss["ss_within"] = self.sum_sq - self.cell_sq
        else:
            ss["ss_between"] = ss["ss_total"]
            ss["ss_within"] = np.zeros_like(self.sum_sq)
        ss["ss_interaction"] = ss["ss_between"] - ss["ss_var1"] - ss["ss_var2"]
        rounding = _ROUNDING_ULPS * total * np.finfo(np.float64).eps * self.sum_sq
        for key, values in ss.items():
            ss[key] = np.where(values > rounding, values, 0.0)

        out: dict[str, np.ndarray] = {}
        has_variance = ss["ss_total"] > 0
        has_error = has_variance & (ss["ss_within"] > 0)
        df_within = n1 * n2 * (r - 1)
        dfs = {"var1": n1 - 1, "var2": n2 - 1, "interaction": (n1 - 1) * (n2 - 1)}
        for effect in _EFFECTS:
            out[f"eta2_{effect}"] = _ratio(ss[f"ss_{effect}"], ss["ss_total"], has_variance)
        for effect in _EFFECTS:
            out[f"eta2_{effect}_kernelmeans"] = _kernel_means(
                out[f"eta2_{effect}"].reshape(self.shape)
            )
        for effect in _EFFECTS:
            mean_square_error = ss["ss_within"] / max(df_within, 1)
            f_values = _ratio(ss[f"ss_{effect}"] / dfs[effect], mean_square_error, has_error)
            out[f"F_{effect}"] = f_values
            out[f"p_{effect}"] = np.full_like(f_values, np.nan)
            if df_within > 0:
                out[f"p_{effect}"][has_error] = stats.f.sf(
                    f_values[has_error], dfs[effect], df_within
                )
        out.update(ss)
        return {
            key: values if key.endswith("_kernelmeans") else values.reshape(self.shape)
            for key, values in out.items()
        }


def _ratio(numerator: np.ndarray, denominator: np.ndarray, defined: np.ndarray) -> np.ndarray:
    out = np.full(np.shape(numerator), np.nan)
    np.divide(numerator, denominator, out=out, where=defined)
    return out


def _nan_mean(values: np.ndarray, axis: int | None = None) -> np.ndarray:
    """Mean ignoring NaN; NaN (and no warning) where nothing is left."""
    present = ~np.isnan(values)
    count = present.sum(axis=axis)
    total = np.where(present, values, 0.0).sum(axis=axis)
    return _ratio(total, count, count > 0)


def _nan_std(values: np.ndarray) -> float:
    """Population standard deviation ignoring NaN; NaN where nothing is left."""
    mean = _nan_mean(values)
    return float(np.sqrt(_nan_mean((values - mean) ** 2)))


def _kernel_means(values: np.ndarray) -> np.ndarray:
    """Each channel's mean over space (units of layers without space as they are)."""
    if values.ndim < 2:
        return values.reshape(-1)
    return _nan_mean(values.reshape(values.shape[0], -1), axis=1)


@public
def unit_anova(
    image_set: tuple,
    model_desc: tuple,
    which_layer_dict: Any = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    random_state: int | None = 0,
    verbose: bool = True,
    max_memory: int | str | None = None,
) -> AnovaResult:
    """Two-way ANOVA of every unit: eta squared of two factors and their interaction.

    The images of a crossed two-factor design run through the model once,
    in batches, and each unit's sums of squares are accumulated from running
    float64 sums (per level of each factor, and per cell), so memory does not
    grow with the number of images. Eta squared is ``SS_effect / SS_total``
    (classical, not partial), as in the original library.

    With one image per cell there is no error term: the interaction is what
    the two factors leave unexplained (``SS_total - SS_1 - SS_2``) and F and p
    are NaN. With several images per cell (replicates, the same number in
    every cell) the within-cell variance is the error term, and each effect
    gets an F ratio and p value, equal to those of an OLS two-way ANOVA with
    interaction (statsmodels ``anova_lm``; types 1, 2 and 3 agree for balanced
    designs).

    Parameters
    ----------
    image_set : tuple
        ``(labels, stim_dict, (factor1, factor2))``: ``labels`` is a dict
        describing the image set (one output column each); ``stim_dict`` maps
        ``(level of factor1, level of factor2)`` to an image (path, PIL image
        or array) or to a list of images (replicates). Every combination of
        levels must be present, with the same number of images. A fourth,
        empty part (as made by :func:`~pytorch_feature_analysis.package_image_sets`)
        is accepted.
    model_desc : tuple
        ``(model_name, base_model, weights)`` as in the original library
        (see :func:`~pytorch_feature_analysis.prepare_model`), or
        ``(model_name, prepared_model)``.
    which_layer_dict : None, str, tuple, list or dict, default None
        The layers to analyse, as names (``'conv1'``) or labels
        (``('conv1', 1)``), ``'original_rgb'`` included: a list of them, or
        ``{model_name: [layers]}`` as in the original library; ``None``
        means every layer (the rule of every analysis of this library).
    batch_size : int, default 32
        Images per forward pass.
    device : {'cpu', 'cuda'} or torch.device, default 'cpu'
        Where the forward passes run.
    transform : callable, optional
        Image preprocessing (PIL image -> tensor); default
        :func:`~pytorch_feature_analysis.default_transform`.
    random_state : int or None, default 0
        Seed for ``'random'`` weights.
    verbose : bool, default True
        Show a progress bar.
    max_memory : int, str or None, default None
        Memory budget (bytes, or a size such as ``'2GB'``): the batch is made
        smaller so that the running sums (``(levels1 + levels2 + 4) x units``
        float64 values) and one batch of activations fit. ``None``: no bound
        beyond ``batch_size``.

    Returns
    -------
    AnovaResult
        A named tuple ``(summary, units)`` -- unpack it as
        ``summary, units = unit_anova(...)``.

        ``summary`` is a frame with one row per layer and the columns:

        - ``model``: ``model_name``;
        - ``layer``, ``layer_num``, ``layer_label``: the layer, e.g.
          ``'conv1'``, ``1``, ``('conv1', 1)``;
        - ``<factor1>_eta2_mean``, ``<factor1>_eta2_stdev``: mean and
          (population) standard deviation over the layer's units of eta
          squared of factor 1, ignoring units without variance;
        - ``<factor1>_eta2_stdev_kernelmeans``: standard deviation over the
          channels (kernels) of each channel's mean eta squared over space
          (for layers without space, the same as ``<factor1>_eta2_stdev``);
        - the same three for ``<factor2>`` and for ``interaction``;
        - one column per key of the image set's labels.

        ``units`` maps each layer label to a dict of per-unit arrays, shaped
        like one image's activations in that layer (e.g. ``(64, 55, 55)``),
        named as in the original library: ``var1`` is factor 1, ``var2``
        factor 2:

        - ``eta2_var1``, ``eta2_var2``, ``eta2_interaction``: eta squared
          (NaN for a unit whose activation does not vary);
        - ``eta2_<effect>_kernelmeans``: each channel's mean eta squared
          over space, shape ``(channels,)`` (NaN for a channel without any
          varying unit);
        - ``F_<effect>``, ``p_<effect>``: the F ratio and its p value
          (``scipy.stats.f.sf``), NaN with one image per cell and for units
          without within-cell variance;
        - ``ss_total``, ``ss_var1``, ``ss_var2``, ``ss_interaction``,
          ``ss_between`` (between cells), ``ss_within`` (error; zero with one
          image per cell). Sums of squares at the level of rounding error
          are set to zero.

    Raises
    ------
    InvalidInputError, FileNotFoundError
        Before any forward pass: a malformed image set, missing cells or an
        unbalanced design (the cells and their counts are named), a missing
        image, a ``which_layer_dict`` naming another model, an unknown layer
        (the valid ones are listed), or a ``max_memory`` too small for one
        image.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> stimuli = pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 120, 240), size=32)
    >>> image_set = ({'study': 'demo'},
    ...              {(s['color'], s['obj']): s['path'] for s in stimuli},
    ...              ('color', 'obj'))
    >>> summary, units = pfa.unit_anova(image_set, ('alexnet', 'alexnet', 'random'),
    ...                                 {'alexnet': ['conv1', 'fc3']}, verbose=False)
    >>> summary[['layer', 'layer_num', 'study']].values.tolist()
    [['conv1', 1, 'demo'], ['fc3', 21, 'demo']]
    >>> units[('conv1', 1)]['eta2_var1'].shape
    (64, 55, 55)
    """
    design = _parse_design(image_set)
    model_name, model = _prepare(model_desc, random_state)
    check_images_exist(design.images)
    extraction = check_extraction(batch_size, device, transform, max_memory, verbose)
    model_plan = plan_analysis({model_name: model}, which_layer_dict, design.images[0],
                               extraction, layers_param="which_layer_dict").models[model_name]
    chosen = model_plan.layers
    sums: "OrderedDict[tuple, _UnitSums]" = OrderedDict()
    for batch, activations in iter_activations(
        design.images,
        model,
        chosen,
        batch_size=_batch_within(model_plan, design, extraction),
        device=extraction.device,
        transform=transform,
        verbose=verbose,
        layer_book=model_plan.book,
    ):
        for label, values in activations.items():
            if label not in sums:
                sums[label] = _UnitSums(values[0], design)
            sums[label].add(batch.start, values)

    factor_names = dict(zip(_EFFECTS, (*design.factors, "interaction")))
    units: "OrderedDict[tuple, dict[str, np.ndarray]]" = OrderedDict()
    rows = []
    for label in chosen:
        units[label] = sums[label].statistics()
        row: dict[str, Any] = {
            "model": model_name,
            "layer": label[0],
            "layer_num": label[1],
            "layer_label": label,
        }
        for effect in _EFFECTS:
            etas = units[label][f"eta2_{effect}"]
            name = factor_names[effect]
            row[f"{name}_eta2_mean"] = float(_nan_mean(etas))
            row[f"{name}_eta2_stdev"] = _nan_std(etas)
            row[f"{name}_eta2_stdev_kernelmeans"] = _nan_std(
                units[label][f"eta2_{effect}_kernelmeans"]
            )
        row.update(design.labels)
        rows.append(row)
    return AnovaResult(pd.DataFrame(rows), units)


compute_etas_for_model_and_imageset_fast = unit_anova
