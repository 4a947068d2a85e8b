"""Loading CNN models and finding their layers.

A *prepared model* is an ordinary :class:`torch.nn.Module` in eval mode, with
its weights set as asked (``'trained'``, ``'random'``, a URL or a local file).
Layers are named as in the original library's "address book": the type of the
layer and its rank among layers of that type (``'conv3'`` is the third
convolution), paired with the rank of the layer overall, e.g. ``('conv3', 7)``.

Two address books exist:

* :func:`fetch_layers` crawls the module tree (one entry per leaf module, in
  the order the modules were registered), as the original library did;
* :func:`trace_layers` runs one forward pass and lists every *call* of a leaf
  module in forward order, so a module that runs several times in one pass
  (the ReLU of a ResNet block, the convolutions of a recurrent CORnet-S block)
  gives one layer per call. Activations, RDMs and ANOVAs use this one.

For networks in which every module runs once, in the order it was registered
(AlexNet, VGG), the two books are identical.
"""

from __future__ import annotations

import contextlib
import difflib
import numbers
import os
import re
import urllib.parse
import urllib.request
from collections import OrderedDict
from typing import Any, Iterator, NamedTuple

import torch
import torchvision
from torch import nn

from . import cornet
from ._validation import InvalidInputError, accepts_original_names, fail, public

__all__ = [
    "available_models",
    "prepare_models",
    "prepare_model",
    "load_weights",
    "fetch_layers",
    "trace_layers",
    "index_nested",
    "layer_type_name",
    "LayerCall",
]

_CORNET_BUILDERS = {"cornet_z": cornet.cornet_z, "cornet_s": cornet.cornet_s}

# Type names of the original library, checked in this order (subclasses first).
_TYPE_NAMES = (
    (nn.modules.conv._ConvNd, "conv"),
    (nn.Linear, "fc"),
    (nn.modules.pooling._MaxPoolNd, "maxpool"),
    (nn.modules.pooling._AdaptiveMaxPoolNd, "maxpool"),
    (nn.modules.pooling._AvgPoolNd, "avgpool"),
    (nn.modules.pooling._AdaptiveAvgPoolNd, "avgpool"),
    (nn.ReLU, "relu"),
    (nn.modules.batchnorm._BatchNorm, "batchnorm"),
    (nn.modules.dropout._DropoutNd, "dropout"),
    (nn.Flatten, "flatten"),
    (nn.Identity, "identity"),
)


class LayerCall(NamedTuple):
    """One call of a leaf module in a forward pass.

    Attributes
    ----------
    address : list
        The module's address, as given by :func:`fetch_layers`.
    call : int
        Which call of that module this is, counting from 0, in forward order.
    shape : tuple of int
        The shape of one image's output in the traced pass (batch axis left
        out), e.g. ``(64, 55, 55)``; ``()`` when unknown.
    """

    address: list
    call: int
    shape: tuple = ()


def available_models() -> list[str]:
    """Names accepted as a base model by :func:`prepare_model`.

    Returns
    -------
    list of str
        Every torchvision classification model and video classifier
        (``'r3d_18'``, ``'mc3_18'``, ``'r2plus1d_18'``, ``'s3d'``, ``'mvit_v2_s'``,
        ...; their inputs are ``(n, 3, time, height, width)``, see
        :func:`~pytorch_feature_analysis.video_transform`), plus ``'cornet_z'``
        and ``'cornet_s'``, sorted.

    Examples
    --------
    >>> names = available_models()
    >>> {'alexnet', 'vgg19', 'resnet50', 'googlenet', 'cornet_s'} <= set(names)
    True
    """
    names = torchvision.models.list_models(module=torchvision.models)
    videos = torchvision.models.list_models(module=torchvision.models.video)
    return sorted(set(names) | set(videos) | set(_CORNET_BUILDERS))


def _check_model_name(name: str) -> str:
    names = available_models()
    if name in names:
        return name
    close = difflib.get_close_matches(name.lower(), names, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise InvalidInputError(
        f"Unknown base model {name!r}.{hint} Call pfa.available_models() for all "
        f"{len(names)} names, or pass a torch.nn.Module instance."
    )


def _build_architecture(name: str) -> nn.Module:
    """An untrained model of the named architecture, initialised by torch's RNG."""
    if name in _CORNET_BUILDERS:
        return _CORNET_BUILDERS[name]()
    kwargs: dict[str, Any] = {}
    if name == "googlenet":
        # The trained GoogLeNet has no auxiliary classifiers; match its layers.
        kwargs = {"aux_logits": False, "init_weights": True}
    elif name == "inception_v3":
        kwargs = {"init_weights": True}
    return torchvision.models.get_model(name, weights=None, **kwargs)


def _build_trained(name: str) -> nn.Module:
    if name in _CORNET_BUILDERS:
        model = _CORNET_BUILDERS[name]()
        load_weights(model, cornet.CORNET_WEIGHT_URLS[name])
        return model
    return torchvision.models.get_model(name, weights="DEFAULT")


def _read_checkpoint(source: str | os.PathLike) -> Any:
    """Read a checkpoint from a local path, a ``file://`` URL or a web URL."""
    source = os.fspath(source)
    scheme = urllib.parse.urlparse(source).scheme
    if scheme == "file":
        source = urllib.request.url2pathname(urllib.parse.urlparse(source).path)
        scheme = ""
    if scheme in ("http", "https", "ftp", "s3"):
        return torch.hub.load_state_dict_from_url(
            source, map_location="cpu", check_hash=False, weights_only=True
        )
    if not os.path.isfile(source):
        raise FileNotFoundError(f"Weights file {source!r} does not exist.")
    try:
        return torch.load(source, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise InvalidInputError(
            f"Could not read weights file {source!r} as a PyTorch state_dict or "
            f"checkpoint: {error}"
        ) from error


def _extract_state_dict(checkpoint: Any, source: str) -> dict[str, torch.Tensor]:
    if isinstance(checkpoint, dict) and "state_dict" in checkpoint:
        checkpoint = checkpoint["state_dict"]
    if not isinstance(checkpoint, dict) or not all(
        isinstance(value, torch.Tensor) for value in checkpoint.values()
    ):
        raise InvalidInputError(
            f"The weights at {source!r} must be a state_dict (a dict of tensors) or a "
            f"checkpoint dict with a 'state_dict' key; got {type(checkpoint).__name__} "
            "instead."
        )
    prefix = "module."
    if checkpoint and all(key.startswith(prefix) for key in checkpoint):
        checkpoint = {key[len(prefix):]: value for key, value in checkpoint.items()}
    return checkpoint


def load_weights(model: nn.Module, source: str | os.PathLike) -> nn.Module:
    """Load weights into a model, strictly, from a file or URL.

    Parameters
    ----------
    model : torch.nn.Module
        The model whose parameters are replaced (in place).
    source : str or path-like
        A local path, a ``file://`` URL or a web URL of a state_dict, or of a
        checkpoint dict holding one under ``'state_dict'``. A ``module.``
        prefix on every key (left by ``DataParallel``) is stripped.

    Returns
    -------
    torch.nn.Module
        ``model`` itself.

    Raises
    ------
    ValueError
        When the keys do not match the model: the message lists the missing
        and the unexpected keys.

    Examples
    --------
    >>> import tempfile, os, torch
    >>> net = torch.nn.Sequential(torch.nn.Linear(2, 2))
    >>> path = os.path.join(tempfile.mkdtemp(), 'w.pt')
    >>> torch.save({'state_dict': {'module.0.weight': torch.eye(2),
    ...                            'module.0.bias': torch.zeros(2)}}, path)
    >>> load_weights(net, path)[0].weight.tolist()
    [[1.0, 0.0], [0.0, 1.0]]
    """
    source_text = os.fspath(source)
    state_dict = _extract_state_dict(_read_checkpoint(source_text), source_text)
    expected = set(model.state_dict())
    missing = sorted(expected - set(state_dict))
    unexpected = sorted(set(state_dict) - expected)
    if missing or unexpected:
        raise InvalidInputError(
            f"The weights at {source_text!r} do not match the model "
            f"{type(model).__name__}: missing keys {missing[:20]}"
            f"{' ...' if len(missing) > 20 else ''}; unexpected keys {unexpected[:20]}"
            f"{' ...' if len(unexpected) > 20 else ''}."
        )
    try:
        model.load_state_dict(state_dict, strict=True)
    except RuntimeError as error:  # shapes that do not match
        raise InvalidInputError(f"The weights at {source_text!r} do not fit the model: {error}") from error
    return model


@contextlib.contextmanager
def _seeded(random_state: int | None) -> Iterator[None]:
    """Seed torch's generator for the block and restore it after; ``None``: leave it alone.

    With ``None`` the global generator is used and advances, so two random
    models drawn one after the other differ.
    """
    if random_state is None:
        yield
        return
    if not isinstance(random_state, numbers.Integral) or isinstance(random_state, bool):
        raise fail("random_state", "None or an int (a seed)", random_state)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(random_state)
        yield


@public
@accepts_original_names(which_model="base_model", weights_opt="weights")
def prepare_model(
    base_model: str | nn.Module,
    weights: str | os.PathLike = "trained",
    random_state: int | None = 0,
) -> nn.Module:
    """Load one model with the weights asked for, in eval mode.

    Parameters
    ----------
    base_model : str or torch.nn.Module
        A name from :func:`available_models` (every torchvision classification
        model, ``'cornet_z'``, ``'cornet_s'``), or a module instance.
    weights : str or path-like, default 'trained'
        ``'trained'``: torchvision's default weights, or CORnet's published
        checkpoints; ``'random'``: a fresh initialisation seeded by
        ``random_state``; anything else: a URL or local path of a state_dict
        or checkpoint (see :func:`load_weights`). For a module instance,
        ``'trained'`` keeps its current weights.
    random_state : int or None, default 0
        Seed for ``'random'`` weights. The same seed gives the same weights;
        ``None`` draws from torch's global generator.
    which_model, weights_opt
        The original library's names of ``base_model`` and ``weights``,
        accepted as keywords.

    Returns
    -------
    torch.nn.Module
        The model itself (printable and indexable as usual, e.g.
        ``model.features[0]``), in eval mode, on the CPU.

    Examples
    --------
    >>> alexnet = prepare_model('alexnet', 'random', random_state=1)
    >>> alexnet.features[0]
    Conv2d(3, 64, kernel_size=(11, 11), stride=(4, 4), padding=(2, 2))
    >>> alexnet.training
    False
    """
    weights_text = os.fspath(weights) if isinstance(weights, os.PathLike) else weights
    if not isinstance(weights_text, str):
        raise InvalidInputError(
            "The 'weights' parameter of prepare_model must be 'trained', 'random', a URL "
            f"or a file path; got {weights!r} instead."
        )
    if isinstance(base_model, nn.Module):
        model = base_model
        if weights_text == "random":
            with _seeded(random_state):
                for module in model.modules():
                    if hasattr(module, "reset_parameters"):
                        module.reset_parameters()
        elif weights_text != "trained":
            load_weights(model, weights_text)
    elif isinstance(base_model, str):
        name = _check_model_name(base_model)
        if weights_text == "trained":
            model = _build_trained(name)
        else:
            with _seeded(random_state):
                model = _build_architecture(name)
            if weights_text != "random":
                load_weights(model, weights_text)
    else:
        raise InvalidInputError(
            "The 'base_model' parameter of prepare_model must be a model name or a "
            f"torch.nn.Module; got {type(base_model).__name__} instead."
        )
    return model.eval()


@public
def prepare_models(models_dict: dict, random_state: int | None = 0) -> "OrderedDict[str, nn.Module]":
    """Load several models, as the original library's ``prepare_models``.

    Parameters
    ----------
    models_dict : dict
        ``{your_name: (base_model, weights)}``, e.g.
        ``{'alexnet': ('alexnet', 'trained'), 'alexnet_random': ('alexnet', 'random')}``.
        A value may also be ``(base_model, weights, random_state)`` to seed
        that model on its own, or a bare ``torch.nn.Module`` (used as it is).
        See :func:`prepare_model` for base models and weights.
    random_state : int or None, default 0
        Seed for every ``'random'`` model without a seed of its own.

    Returns
    -------
    collections.OrderedDict
        ``{your_name: prepared model}`` in the order of ``models_dict``.

    Examples
    --------
    >>> models = prepare_models({'alexnet_random': ('alexnet', 'random')})
    >>> list(models)
    ['alexnet_random']
    """
    if not isinstance(models_dict, dict) or not models_dict:
        raise InvalidInputError(
            "The 'models_dict' parameter of prepare_models must be a non-empty dict "
            f"{{name: (base_model, weights)}}; got {models_dict!r} instead."
        )
    prepared = OrderedDict()
    for name, spec in models_dict.items():
        if isinstance(spec, nn.Module):
            prepared[name] = spec.eval()
            continue
        if not isinstance(spec, (tuple, list)) or len(spec) not in (2, 3):
            raise InvalidInputError(
                f"The entry {name!r} of models_dict must be (base_model, weights) or "
                f"(base_model, weights, random_state); got {spec!r} instead."
            )
        seed = spec[2] if len(spec) == 3 else random_state
        prepared[name] = prepare_model(spec[0], spec[1], random_state=seed)
    return prepared


def layer_type_name(module: nn.Module) -> str:
    """The type part of a layer's name (``'conv'``, ``'relu'``, ``'fc'``, ...).

    The original library's names are used for its layer types (conv, relu,
    maxpool, avgpool -- adaptive pooling too --, fc, dropout, batchnorm,
    flatten, identity); any other module gets its class name in lower case
    (``nn.GELU`` -> ``'gelu'``, ``nn.LayerNorm`` -> ``'layernorm'``).

    Examples
    --------
    >>> layer_type_name(torch.nn.AdaptiveAvgPool2d(1))
    'avgpool'
    >>> layer_type_name(torch.nn.GELU())
    'gelu'
    """
    for module_type, type_name in _TYPE_NAMES:
        if isinstance(module, module_type):
            return type_name
    return re.sub(r"[^0-9a-z]", "", type(module).__name__.lower()) or "module"


def _leaf_addresses(model: nn.Module) -> list[tuple[list, nn.Module]]:
    """Every leaf module with its address, in registration order, each module once."""
    found: list[tuple[list, nn.Module]] = []
    seen = {id(model)}

    def crawl(module: nn.Module, address: list) -> None:
        if id(module) in seen:  # registered twice: addressed where it first appears
            return
        seen.add(id(module))
        children = list(module.named_children())
        if not children:
            found.append((address, module))
            return
        # Position among all registered children: named_children() skips a
        # module registered twice, so counting what it yields could be wrong.
        positions = {name: position for position, name in enumerate(module._modules)}
        indexable = isinstance(module, (nn.Sequential, nn.ModuleList))
        for child_name, child in children:
            step = positions[child_name] if indexable else ("attr", child_name)
            crawl(child, address + [step])

    for top_name, top_module in model.named_children():
        crawl(top_module, [top_name])
    if not found:  # the model itself is a single layer
        raise InvalidInputError(
            f"The model {type(model).__name__} has no submodules to address; wrap it in "
            "torch.nn.Sequential."
        )
    return found


def _name_layers(modules: list[nn.Module]) -> list[tuple[str, int]]:
    counts: dict[str, int] = {}
    labels = []
    for overall, module in enumerate(modules, start=1):
        type_name = layer_type_name(module)
        counts[type_name] = counts.get(type_name, 0) + 1
        labels.append((f"{type_name}{counts[type_name]}", overall))
    return labels


def fetch_layers(model: nn.Module) -> "OrderedDict[tuple[str, int], list]":
    """The model's address book: every leaf module, as the original library.

    The module tree is crawled recursively in registration order. Each leaf
    module (one without children) is one layer, labelled ``(name, number)``:
    ``name`` is the layer type and its rank among layers of that type, and
    ``number`` its rank overall, both counting from 1. No leaf is dropped:
    layer types without a name of their own are named after their class
    (see :func:`layer_type_name`). A module registered at several places
    (shared) is one layer, addressed where it first appears, as in
    ``model.modules()``.

    Parameters
    ----------
    model : torch.nn.Module

    Returns
    -------
    collections.OrderedDict
        ``{(name, number): address}``. An address is a list: the name of a
        top-level child, then an ``int`` for a child of an ``nn.Sequential``
        or ``nn.ModuleList``, or ``('attr', child_name)`` for any other child.
        :func:`index_nested` turns it back into the module.

    See Also
    --------
    trace_layers : the layers in forward order, one per call.

    Examples
    --------
    >>> alexnet = prepare_model('alexnet', 'random')
    >>> book = fetch_layers(alexnet)
    >>> list(book.items())[:2]
    [(('conv1', 1), ['features', 0]), (('relu1', 2), ['features', 1])]
    >>> book[('avgpool1', 14)]
    ['avgpool']
    """
    leaves = _leaf_addresses(model)
    labels = _name_layers([module for _, module in leaves])
    return OrderedDict(zip(labels, (address for address, _ in leaves)))


def index_nested(the_item: Any, indices: list) -> Any:
    """Follow an address from :func:`fetch_layers` to the module it names.

    Parameters
    ----------
    the_item : dict or torch.nn.Module
        Where to start, usually ``model._modules`` (as in the original
        library) or the model itself.
    indices : list
        Steps: a ``str`` (a key, or an attribute of a module), an ``int``
        (a position), or ``('attr', name)`` (an attribute).

    Returns
    -------
    object
        What the address points to.

    Examples
    --------
    >>> alexnet = prepare_model('alexnet', 'random')
    >>> index_nested(alexnet._modules, ['classifier', 4])
    Linear(in_features=4096, out_features=4096, bias=True)
    """
    for step in indices:
        if isinstance(step, tuple):
            the_item = getattr(the_item, step[1])
        elif isinstance(step, str) and isinstance(the_item, nn.Module):
            the_item = getattr(the_item, step)
        else:
            the_item = the_item[step]
    return the_item


def trace_layers(
    model: nn.Module, example_input: torch.Tensor | None = None
) -> "OrderedDict[tuple[str, int], LayerCall]":
    """The layers of one forward pass, in forward order, one per module call.

    Every call of a leaf module that returns a tensor is one layer. Layers
    are named as in :func:`fetch_layers` -- type, rank within the type, rank
    overall -- but counted over *calls* in the order they run. A module that
    runs three times in one pass (the ReLU of a torchvision ResNet bottleneck
    block) is three layers (in ResNet-50's first block: ``('relu2', 7)``,
    ``('relu3', 10)`` and ``('relu4', 15)``); they share an address and differ in ``call``. Modules
    that do not run (GoogLeNet's auxiliary classifiers in eval mode) are not
    layers.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : torch.Tensor, optional
        One input batch; default a ``(1, 3, 224, 224)`` tensor of zeros.

    Returns
    -------
    collections.OrderedDict
        ``{(name, number): LayerCall(address, call, shape)}``.

    Examples
    --------
    >>> resnet = prepare_model('resnet18', 'random')
    >>> book = trace_layers(resnet)
    >>> [label for label, where in book.items() if where.address == ['layer1', 0, ('attr', 'relu')]]
    [('relu2', 7), ('relu3', 10)]
    """
    leaves = _leaf_addresses(model)
    calls: list[tuple[int, int, tuple]] = []  # (leaf position, call index, shape), forward order
    call_counts = [0] * len(leaves)

    def make_hook(position: int):
        def hook(_module, _inputs, output):
            if isinstance(output, torch.Tensor):
                calls.append((position, call_counts[position], tuple(output.shape[1:])))
            call_counts[position] += 1

        return hook

    handles = [
        module.register_forward_hook(make_hook(position))
        for position, (_, module) in enumerate(leaves)
    ]
    if example_input is None:
        example_input = torch.zeros(1, 3, 224, 224)
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    try:
        with torch.inference_mode():
            model(example_input.to(device))
    finally:
        for handle in handles:
            handle.remove()
    labels = _name_layers([leaves[position][1] for position, _, _ in calls])
    return OrderedDict(
        (label, LayerCall(leaves[position][0], call, shape))
        for label, (position, call, shape) in zip(labels, calls)
    )
