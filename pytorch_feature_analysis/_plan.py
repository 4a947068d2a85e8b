"""The analysis plan every entry point shares: models, layers, extraction options, memory.

:func:`plan_analysis` checks ``models_dict``, prepares the models, traces each
model's layer book once, applies the one rule for ``which_layers`` and carries
the extraction options (batch size, device, transform, memory budget), so
``get_rdms``, ``unit_anova`` and ``run_2way_svm_analysis`` plan the same way.
:func:`plan_passes` splits the layers of one model into forward passes whose
activations fit the memory budget.

``which_layers`` means the same everywhere:

* ``None`` (or ``'all'``): every layer of every model;
* a layer name, a label ``('conv1', 1)`` or a list of them: those layers of
  every model;
* a dict ``{model name: layers}``: those layers of the named models, every
  layer of the others.
"""

from __future__ import annotations

import math
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import torch
from torch import nn

from ._validation import check_device, check_int, fail, parse_memory
from .activations import ORIGINAL_RGB, model_layers, resolve_layers
from .models import prepare_models
from .stimuli import preprocess_images

# Share of the free memory that ``max_memory=None`` allows.
_SAFE_SHARE = 0.5
# The forward pass of one batch holds a few layer outputs at once.
_TRANSIENT_OUTPUTS = 4
FLOAT32 = 4
FLOAT64 = 8


@dataclass
class Extraction:
    """How activations are extracted: the options every entry point shares."""

    batch_size: int = 32
    device: torch.device = torch.device("cpu")
    transform: Callable | None = None
    max_memory: int | None = None
    verbose: bool = True

    def budget(self) -> int:
        """The memory budget in bytes (``max_memory``, or a safe share of what is free)."""
        return self.max_memory if self.max_memory is not None else default_budget(self.device)


@dataclass
class ModelPlan:
    """One model: its name, the module, its layer book and the chosen layers."""

    name: str
    model: nn.Module
    book: "OrderedDict[tuple, Any]"
    layers: list
    input_shape: tuple

    def shape(self, label: tuple) -> tuple:
        """One image's output shape in layer ``label``."""
        return self.input_shape if label == ORIGINAL_RGB else tuple(self.book[label].shape)


@dataclass
class AnalysisPlan:
    """Every model of an analysis, planned once, and the extraction options."""

    models: "OrderedDict[str, ModelPlan]"
    extraction: Extraction = field(default_factory=Extraction)


def available_memory() -> int:
    """Bytes of host memory available now (``MemAvailable`` on Linux)."""
    try:
        with open("/proc/meminfo") as info:
            for line in info:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def default_budget(device: torch.device) -> int:
    """A safe share of the memory free on ``device`` (and on the host)."""
    host = int(_SAFE_SHARE * available_memory())
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return min(host, int(_SAFE_SHARE * free)) if host > 0 else int(_SAFE_SHARE * free)
    return host


def _budget_here(device_name: str) -> int | None:
    """:func:`default_budget` of a device of this machine, or None when it lacks the device."""
    device = torch.device(device_name)
    if device.type == "cuda" and (not torch.cuda.is_available()
                                  or (device.index or 0) >= torch.cuda.device_count()):
        return None
    return default_budget(device)


def workers_budget(client: Any, extraction: Extraction) -> int:
    """The memory budget of a cluster's workers: ``max_memory``, or the smallest worker's share.

    Each worker checks that it has ``extraction.device`` (its own GPU for
    ``'cuda'``); workers that lack it are named in the error.
    """
    budgets = client.run(_budget_here, str(extraction.device))
    if not budgets:
        raise fail("client", "a cluster with at least one worker", client)
    lacking = sorted(address for address, budget in budgets.items() if budget is None)
    if lacking:
        raise fail("device", "a device that every worker of the cluster has",
                   f"{str(extraction.device)!r} (the workers {lacking} have none)", raw=True)
    return extraction.max_memory if extraction.max_memory is not None else min(budgets.values())


def format_bytes(size: float) -> str:
    """``'3.2 GB'``-style text (powers of 1000).

    Examples
    --------
    >>> format_bytes(3_200_000_000), format_bytes(512)
    ('3.2 GB', '512 B')
    """
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{int(size)} B"


def check_extraction(
    batch_size: Any, device: Any, transform: Any, max_memory: Any, verbose: Any,
    device_here: bool = True,
) -> Extraction:
    """The extraction options, checked (errors name the public function called).

    With ``device_here=False`` the device is that of other machines (a
    cluster's workers, which check it themselves): only its name is checked.
    """
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if transform is not None and not callable(transform):
        raise fail("transform", "None or a callable PIL image -> tensor", transform)
    memory = None if max_memory is None else parse_memory(max_memory, "max_memory")
    return Extraction(batch_size, check_device(device, here=device_here), transform, memory,
                      bool(verbose))


def layers_per_model(
    which_layers: Any, model_names: Sequence[str], param: str = "which_layers"
) -> dict:
    """Apply the one ``which_layers`` rule: ``{model name: layers or None}``."""
    if which_layers is None or (isinstance(which_layers, str) and which_layers == "all"):
        return {name: None for name in model_names}
    if isinstance(which_layers, dict):
        unknown = [name for name in which_layers if name not in model_names]
        if unknown:
            raise fail(
                param,
                f"a dict keyed by models of models_dict ({list(model_names)})",
                f"{unknown}, which are not in models_dict,",
                raw=True,
            )
        return {name: which_layers.get(name) for name in model_names}
    if isinstance(which_layers, (str, tuple, list)):
        return {name: which_layers for name in model_names}
    raise fail(
        param,
        "None, layer names or labels, or a dict {model name: layers}",
        which_layers,
    )


def check_models(models_dict: Any, weights_seed: int | None = 0) -> "OrderedDict[str, nn.Module]":
    """``{name: module}``, preparing ``(base_model, weights)`` values here."""
    if not isinstance(models_dict, dict) or not models_dict:
        raise fail("models_dict", "a non-empty dict {name: model or (base_model, weights)}",
                   models_dict)
    bad = [name for name in models_dict if not isinstance(name, str)]
    if bad:
        raise fail("models_dict", "a dict keyed by model names (str)", f"keys {bad}", raw=True)
    if all(isinstance(model, nn.Module) for model in models_dict.values()):
        return OrderedDict(models_dict)
    return prepare_models(models_dict, random_state=weights_seed)


def plan_analysis(
    models_dict: Any,
    which_layers: Any,
    example_image: Any,
    extraction: Extraction,
    *,
    weights_seed: int | None = 0,
    original_rgb: bool = True,
    layers_param: str = "which_layers",
) -> AnalysisPlan:
    """Prepare the models, trace each book once and resolve the layers.

    Parameters
    ----------
    models_dict : dict
        ``{name: module}`` or ``{name: (base_model, weights)}``.
    which_layers : None, str, tuple, list or dict
        See the module documentation.
    example_image : image
        One image of the analysis, preprocessed with ``extraction.transform``
        for tracing (layer shapes follow the real input size).
    extraction : Extraction
    weights_seed : int or None, default 0
        Seed of ``'random'`` weights prepared here.
    original_rgb : bool, default True
        Whether ``('original_rgb', 0)`` is one of "every layer".
    layers_param : str, default 'which_layers'
        The name of the caller's layers parameter, for error messages.
    """
    models = check_models(models_dict, weights_seed)
    wanted = layers_per_model(which_layers, list(models), layers_param)
    example = preprocess_images([example_image], extraction.transform)
    planned = OrderedDict()
    for name, model in models.items():
        book = model_layers(model, example, original_rgb=original_rgb)
        layers = resolve_layers(book, wanted[name], name)
        planned[name] = ModelPlan(name, model, book, layers, tuple(example.shape[1:]))
    return AnalysisPlan(planned, extraction)


@dataclass(frozen=True)
class LayerNeed:
    """What one layer holds during a pass: ``per_channel`` bytes per channel and ``fixed`` bytes."""

    label: tuple
    channels: int
    per_channel: int
    fixed: int
    splittable: bool
    why_whole: str = ""

    @property
    def total(self) -> int:
        return self.channels * self.per_channel + self.fixed


@dataclass(frozen=True)
class Piece:
    """Channels ``start:stop`` of one layer, extracted in one pass."""

    label: tuple
    start: int
    stop: int
    channels: int

    @property
    def whole(self) -> bool:
        return self.start == 0 and self.stop == self.channels


def plan_passes(needs: Sequence[LayerNeed], room: int, model_name: str) -> list[list[Piece]]:
    """Group layers (or channel slices of a layer) into passes that fit ``room`` bytes.

    Layers keep their forward order; a layer that does not fit a pass alone is
    split into channel slices over several passes when it can be, else it is
    an error naming the layer and the memory it needs.
    """
    passes: list[list[Piece]] = []
    current: list[Piece] = []
    used = 0
    for need in needs:
        if need.total <= room - used:
            current.append(Piece(need.label, 0, need.channels, need.channels))
            used += need.total
            continue
        if current:
            passes.append(current)
            current, used = [], 0
        if need.total <= room:
            current.append(Piece(need.label, 0, need.channels, need.channels))
            used = need.total
            continue
        passes.extend([[piece] for piece in _split(need, room, model_name)])
    if current:
        passes.append(current)
    return passes


def _split(need: LayerNeed, room: int, model_name: str) -> list[Piece]:
    """Channel slices of one layer, each fitting ``room`` (an error when none can)."""
    step = (room - need.fixed) // max(need.per_channel, 1)
    if not need.splittable or step < 1:
        smallest = need.total if not need.splittable else need.per_channel + need.fixed
        why = "" if need.splittable else need.why_whole
        raise fail(
            "max_memory",
            f"at least {format_bytes(smallest)} for layer {need.label} of model "
            f"{model_name!r}{why}",
            f"room for {format_bytes(max(room, 0))} of activations",
            raw=True,
        )
    return [
        Piece(need.label, start, min(start + step, need.channels), need.channels)
        for start in range(0, need.channels, step)
    ]


def transient_bytes(model_plan: ModelPlan, batch_size: int) -> int:
    """Memory of one batch's forward pass: a few of its largest layer outputs."""
    largest = max(math.prod(model_plan.shape(label)) for label in model_plan.book)
    return _TRANSIENT_OUTPUTS * batch_size * largest * FLOAT32


def fitted_batch_size(model_plan: ModelPlan, extraction: Extraction, budget: int) -> int:
    """The batch size, lowered (to 1 at least) so one batch uses at most half the budget."""
    per_image = transient_bytes(model_plan, 1)
    return max(1, min(extraction.batch_size, (budget // 2) // max(per_image, 1)))


def whole_layer_passes(
    model_plan: ModelPlan, num_images: int, extraction: Extraction, copies: int = 1
) -> list[list]:
    """The model's layers grouped into passes whose activations fit the budget.

    Each layer is held whole: ``copies`` times its float32 activations of
    ``num_images`` images (the stored activations and the copies its analysis
    makes); one batch's forward pass is counted apart.
    """
    room = extraction.budget() - transient_bytes(model_plan, extraction.batch_size)
    needs = [
        LayerNeed(label, 1, 0, copies * num_images * math.prod(model_plan.shape(label)) * FLOAT32,
                  splittable=False)
        for label in model_plan.layers
    ]
    return [[piece.label for piece in pieces]
            for pieces in plan_passes(needs, room, model_plan.name)]
