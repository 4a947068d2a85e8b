"""Activations out: batched extraction with forward hooks.

Images are run through a model in batches; a forward hook on every chosen
layer *copies* its output as soon as the layer has run, so a later in-place
operation (``ReLU(inplace=True)`` after a convolution) cannot change what was
stored, and a module that runs several times in one pass stores every call
as its own layer (see :func:`pytorch_feature_analysis.trace_layers`).

Layers are labelled ``(name, number)``. The preprocessed image itself is the
layer ``('original_rgb', 0)``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from . import _projection
from ._validation import InvalidInputError, check_device, check_int, fail, parse_memory, public
from .models import LayerCall, index_nested, trace_layers
from .stimuli import check_images_exist, preprocess_images

__all__ = [
    "ORIGINAL_RGB",
    "ACTIVATION_TYPES",
    "get_activations",
    "iter_activations",
    "model_layers",
    "feature_means",
    "activation_patterns",
    "POOLING_TYPES",
    "pool_channels",
    "sparse_random_projection",
    "full_float32",
]

ORIGINAL_RGB = ("original_rgb", 0)
ACTIVATION_TYPES = ("unit_level", "feature_means")
POOLING_TYPES = ("max_pool", "median_pool", "l1_pool", "l2_pool")

LayerLabel = tuple  # (name, number)

# Traces of models already seen, while their module tree, mode and input size
# stay the same: tracing costs a forward pass.
_TRACES: "weakref.WeakKeyDictionary[nn.Module, tuple]" = weakref.WeakKeyDictionary()


def model_layers(
    model: nn.Module, example_input: torch.Tensor | None = None, original_rgb: bool = True
) -> "OrderedDict[LayerLabel, LayerCall | None]":
    """Every layer activations can be taken from, in forward order.

    Parameters
    ----------
    model : torch.nn.Module
    example_input : torch.Tensor, optional
        One preprocessed input batch; default ``(1, 3, 224, 224)`` zeros.
    original_rgb : bool, default True
        Start with ``('original_rgb', 0)`` (whose value is ``None``).

    Returns
    -------
    collections.OrderedDict
        ``{(name, number): LayerCall}``, as :func:`pytorch_feature_analysis.trace_layers`.

    Notes
    -----
    Tracing runs one forward pass of ``example_input``. The result is kept
    for the model while its module tree, its train/eval mode and the input
    size stay the same, so later calls cost nothing.

    Examples
    --------
    >>> from pytorch_feature_analysis import prepare_model
    >>> list(model_layers(prepare_model('alexnet', 'random')))[:3]
    [('original_rgb', 0), ('conv1', 1), ('relu1', 2)]
    """
    if example_input is None:
        example_input = torch.zeros(1, 3, 224, 224)
    key = (
        tuple(id(module) for module in model.modules()),
        model.training,
        tuple(example_input.shape[1:]),
    )
    cached = _TRACES.get(model)
    if cached is None or cached[0] != key:
        cached = (key, trace_layers(model, example_input))
        _TRACES[model] = cached
    book: "OrderedDict[LayerLabel, LayerCall | None]" = OrderedDict()
    if original_rgb:
        book[ORIGINAL_RGB] = None
    book.update(cached[1])
    return book


def resolve_layers(book: dict, layers: Sequence | None, model_name: str | None = None) -> list:
    """Turn layer names or labels into labels of ``book``, in forward order.

    Parameters
    ----------
    book : dict
        Keys are labels ``(name, number)``, e.g. from :func:`model_layers`.
    layers : str, tuple, sequence or None
        Names (``'conv1'``) and/or labels (``('conv1', 1)``), or one of them
        alone; ``None`` or ``'all'`` means every layer.
    model_name : str, optional
        Named in error messages.

    Returns
    -------
    list of tuple
        The chosen labels, in the order of ``book``.

    Raises
    ------
    ValueError
        An unknown layer; the message lists the valid ones.

    Examples
    --------
    >>> book = {('original_rgb', 0): None, ('conv1', 1): None, ('relu1', 2): None}
    >>> resolve_layers(book, ['relu1', ('conv1', 1)])
    [('conv1', 1), ('relu1', 2)]
    """
    labels = list(book)
    if layers is None or (isinstance(layers, str) and layers == "all"):
        return labels
    if isinstance(layers, str) or (
        isinstance(layers, tuple) and len(layers) == 2 and isinstance(layers[1], int)
    ):
        layers = [layers]
    by_name = {label[0]: label for label in labels}
    chosen = set()
    for layer in layers:
        if isinstance(layer, tuple) and layer in book:
            chosen.add(layer)
        elif isinstance(layer, str) and layer in by_name:
            chosen.add(by_name[layer])
        else:
            of_model = f" of model {model_name!r}" if model_name else ""
            valid = ", ".join(name for name, _ in labels)
            raise InvalidInputError(
                f"Unknown layer {layer!r}{of_model}. Valid layers (names, or labels such as "
                f"{labels[-1]!r}): {valid}."
            )
    return [label for label in labels if label in chosen]


class LayerCapture:
    """Forward hooks that hand each chosen layer's output to a sink, once per call.

    The one hook machinery of the library (extraction, stateful models and
    interpretation use it); not part of the public API. Inside ``with``, each
    :meth:`run` is one forward pass in inference mode that calls
    ``sink(label, output)`` for every chosen layer label of ``book`` (from
    :func:`model_layers`), every call of a module counted apart.

    Examples
    --------
    >>> model = nn.Sequential(nn.Linear(2, 3), nn.ReLU())
    >>> book = model_layers(model, torch.zeros(1, 2))
    >>> seen = {}
    >>> keep = lambda label, output: seen.update({label: tuple(output.shape)})
    >>> with LayerCapture(model, book, [('fc1', 1)], keep) as capture:
    ...     capture.run(model, torch.zeros(4, 2))
    >>> seen
    {('fc1', 1): (4, 3)}
    """

    def __init__(self, model: nn.Module, book: dict, chosen: Sequence[LayerLabel], sink: Callable):
        wanted: dict[int, dict[int, LayerLabel]] = {}
        modules: dict[int, nn.Module] = {}
        for label in chosen:
            where = book[label]
            if where is None:
                continue
            module = index_nested(model, where.address)
            modules[id(module)] = module
            wanted.setdefault(id(module), {})[where.call] = label
        self._wanted = wanted
        self._modules = modules
        self._calls: dict[int, int] = {}
        self._sink = sink
        self._handles: list = []

    def _hook(self, module: nn.Module, _inputs: Any, output: Any) -> None:
        call = self._calls.get(id(module), 0)
        self._calls[id(module)] = call + 1
        label = self._wanted[id(module)].get(call)
        if label is not None and isinstance(output, torch.Tensor):
            self._sink(label, output)

    def run(self, model: nn.Module, batch: torch.Tensor) -> None:
        self._calls.clear()
        with torch.inference_mode():
            model(batch)

    def __enter__(self) -> "LayerCapture":
        self._handles = [m.register_forward_hook(self._hook) for m in self._modules.values()]
        return self

    def __exit__(self, *exc: Any) -> None:
        for handle in self._handles:
            handle.remove()


@contextlib.contextmanager
def full_float32() -> Iterator[None]:
    """Run convolutions and matrix products in full float32 (no TF32) inside the block.

    Every forward pass of the library runs inside it, so results do not depend
    on the device: on recent NVIDIA GPUs torch uses TF32 for convolutions by
    default, which changes activations by about 1e-3. The user's settings are
    restored afterwards.

    Examples
    --------
    >>> before = torch.backends.cudnn.conv.fp32_precision
    >>> with full_float32():
    ...     torch.backends.cudnn.conv.fp32_precision
    'ieee'
    >>> torch.backends.cudnn.conv.fp32_precision == before
    True
    """
    backends = torch.backends
    if hasattr(backends.cuda.matmul, "fp32_precision"):
        knobs = [
            (backends.cuda.matmul, "fp32_precision"),
            (backends.cudnn.conv, "fp32_precision"),
            (backends.cudnn.rnn, "fp32_precision"),
        ]
        strict = "ieee"
    else:  # older torch: the TF32 switches
        knobs = [(backends.cuda.matmul, "allow_tf32"), (backends.cudnn, "allow_tf32")]
        strict = False
    saved = [getattr(owner, name) for owner, name in knobs]
    try:
        for owner, name in knobs:
            setattr(owner, name, strict)
        yield
    finally:
        for (owner, name), value in zip(knobs, saved):
            setattr(owner, name, value)


def _as_numpy_copy(tensor: torch.Tensor) -> np.ndarray:
    """A float32 CPU copy that later in-place operations cannot reach."""
    copied = tensor.detach().to("cpu", torch.float32, copy=True)
    return copied.numpy()


def _plan(
    images: Sequence[Any],
    model: nn.Module,
    layers: Sequence | None,
    batch_size: int,
    device: str | torch.device,
    transform: Callable | None,
    original_rgb: bool,
    layer_book: dict | None,
) -> tuple[list, torch.device, dict, list]:
    """Check the arguments of an extraction; return images, device, book, chosen labels."""
    batch_size = check_int(batch_size, "batch_size", minimum=1)
    if images is None or isinstance(images, (str, bytes)):
        raise fail("images", "a sequence of images (paths, PIL images or arrays)", images)
    images = list(images)
    if not images:
        raise fail("images", "a non-empty sequence of images", images)
    check_images_exist(images)
    device = check_device(device)
    if layer_book is None:
        layer_book = model_layers(model, preprocess_images(images[:1], transform))
    if not original_rgb and ORIGINAL_RGB in layer_book:
        layer_book = OrderedDict((k, v) for k, v in layer_book.items() if k != ORIGINAL_RGB)
    return images, device, layer_book, resolve_layers(layer_book, layers)


def _run_batches(
    images: list,
    model: nn.Module,
    book: dict,
    chosen: list,
    batch_size: int,
    device: torch.device,
    transform: Callable | None,
    verbose: bool,
    sink: Callable[[LayerLabel, slice, torch.Tensor], None],
) -> Iterator[slice]:
    """Run the batches with hooks; hand every chosen output to ``sink``; yield each batch."""
    home = next((p.device for p in model.parameters()), torch.device("cpu"))
    batch = slice(0, 0)

    def hand_over(label: LayerLabel, output: torch.Tensor) -> None:
        sink(label, batch, output)

    model.to(device)
    try:
        with full_float32(), LayerCapture(model, book, chosen, hand_over) as capture, tqdm(
            total=len(images), disable=not verbose, desc="activations", unit="image"
        ) as progress:
            for start in range(0, len(images), batch_size):
                batch = slice(start, min(start + batch_size, len(images)))
                pixels = preprocess_images(images[batch], transform).to(device)
                if ORIGINAL_RGB in chosen:
                    sink(ORIGINAL_RGB, batch, pixels)
                capture.run(model, pixels)
                progress.update(batch.stop - batch.start)
                yield batch
    finally:
        model.to(home)


@public
def iter_activations(
    images: Sequence[Any],
    model: nn.Module,
    layers: Sequence | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    original_rgb: bool = True,
    verbose: bool = True,
    layer_book: dict | None = None,
) -> Iterator[tuple[slice, "OrderedDict[LayerLabel, np.ndarray]"]]:
    """Stream activations batch by batch; memory is one batch.

    Takes the same parameters as :func:`get_activations`, and checks them
    when called (before the first batch is asked for).

    Yields
    ------
    batch : slice
        Which images of ``images`` the batch holds.
    activations : collections.OrderedDict
        ``{(name, number): float32 array of shape (batch size, ...)}``, one
        copy per chosen layer, in forward order.

    Examples
    --------
    >>> from pytorch_feature_analysis import prepare_model, make_synthetic_stimuli
    >>> images = [s['path'] for s in make_synthetic_stimuli(1, size=32)]
    >>> model = prepare_model('alexnet', 'random')
    >>> for batch, acts in iter_activations(images, model, ['fc3'], batch_size=3, verbose=False):
    ...     print(batch, acts[('fc3', 21)].shape)
    slice(0, 3, None) (3, 1000)
    slice(3, 4, None) (1, 1000)
    """
    images, device, book, chosen = _plan(
        images, model, layers, batch_size, device, transform, original_rgb, layer_book
    )
    order = {label: rank for rank, label in enumerate(chosen)}
    current: "OrderedDict[LayerLabel, np.ndarray]" = OrderedDict()

    def sink(label: LayerLabel, _batch: slice, output: torch.Tensor) -> None:
        current[label] = _as_numpy_copy(output)

    def stream() -> Iterator[tuple[slice, "OrderedDict[LayerLabel, np.ndarray]"]]:
        for batch in _run_batches(
            images, model, book, chosen, batch_size, device, transform, verbose, sink
        ):
            yield batch, OrderedDict(sorted(current.items(), key=lambda item: order[item[0]]))
            current.clear()

    return stream()


@public
def get_activations(
    images: Sequence[Any],
    model: nn.Module,
    layers: Sequence | None = None,
    *,
    batch_size: int = 32,
    device: str | torch.device = "cpu",
    transform: Callable | None = None,
    original_rgb: bool = True,
    verbose: bool = True,
    layer_book: dict | None = None,
    max_memory: int | str | None = None,
) -> "OrderedDict[LayerLabel, np.ndarray]":
    """Activations of every image in every chosen layer, computed in batches.

    Parameters
    ----------
    images : sequence
        File paths, PIL images or numpy arrays (see
        :func:`pytorch_feature_analysis.load_image`). Missing files are
        reported, by name, before any work starts.
    model : torch.nn.Module
        A prepared model (:func:`pytorch_feature_analysis.prepare_model`).
    layers : sequence, optional
        Layer names (``'conv1'``) or labels (``('conv1', 1)``), including
        ``'original_rgb'``; default every layer (see :func:`model_layers`).
    batch_size : int, default 32
        Images per forward pass.
    device : {'cpu', 'cuda'} or torch.device, default 'cpu'
        Where the forward pass runs. The model is moved there for the run and
        moved back afterwards.
    transform : callable, optional
        PIL image -> tensor; default
        :func:`pytorch_feature_analysis.default_transform` (shorter side to
        224, centre crop 224, ImageNet normalisation).
    original_rgb : bool, default True
        Whether ``('original_rgb', 0)``, the preprocessed pixels, is a layer:
        with ``True`` it is one of "every layer" and can be named in
        ``layers``; with ``False`` it is never returned.
    verbose : bool, default True
        Show a progress bar.
    layer_book : dict, optional
        A book from :func:`model_layers`, to skip tracing the model again.
    max_memory : int, str or None, default None
        Refuse, before any forward pass, to return more than this many bytes
        (or a size such as ``'4GB'``); the error says how much the result
        needs. ``None``: no check.

    Returns
    -------
    collections.OrderedDict
        ``{(name, number): float32 array of shape (len(images), ...)}`` in
        forward order; e.g. AlexNet's conv1 is ``(n, 64, 55, 55)``.

    Notes
    -----
    Memory is what is returned: ``len(images)`` times the number of units of
    the chosen layers, at 4 bytes each; each layer's output is copied straight
    into its place in the returned array as soon as the layer has run. Every
    layer of AlexNet with ``original_rgb`` is about 5.0 MB per image, so 1,000
    images take about 5 GB (ResNet-50: about 130 MB per image). Choose fewer
    layers, or stream with :func:`iter_activations`, whose memory does not
    grow with the number of images.

    Examples
    --------
    >>> from pytorch_feature_analysis import prepare_model, make_synthetic_stimuli
    >>> images = [s['path'] for s in make_synthetic_stimuli(1, size=32)]
    >>> acts = get_activations(images, prepare_model('alexnet', 'random'),
    ...                        ['original_rgb', 'conv1', 'fc3'], verbose=False)
    >>> {label: array.shape for label, array in acts.items()}
    {('original_rgb', 0): (4, 3, 224, 224), ('conv1', 1): (4, 64, 55, 55), ('fc3', 21): (4, 1000)}
    """
    images, device, book, chosen = _plan(
        images, model, layers, batch_size, device, transform, original_rgb, layer_book
    )
    _check_result_fits(images, book, chosen, transform, max_memory)
    stored: dict[LayerLabel, np.ndarray] = {}

    def sink(label: LayerLabel, batch: slice, output: torch.Tensor) -> None:
        target = stored.get(label)
        if target is None:
            shape = (len(images),) + tuple(output.shape[1:])
            target = stored[label] = np.empty(shape, dtype=np.float32)
        torch.from_numpy(target[batch]).copy_(output.detach())

    for _ in _run_batches(images, model, book, chosen, batch_size, device, transform, verbose, sink):
        pass
    return OrderedDict((label, stored[label]) for label in chosen if label in stored)


def _check_result_fits(
    images: list, book: dict, chosen: list, transform: Any, max_memory: Any
) -> None:
    if max_memory is None:
        return
    budget = parse_memory(max_memory, "max_memory")
    example = preprocess_images(images[:1], transform) if ORIGINAL_RGB in chosen else None
    per_image = sum(
        int(np.prod(book[label].shape if label != ORIGINAL_RGB else example.shape[1:]))
        for label in chosen
    ) * 4
    if per_image * len(images) > budget:
        raise fail(
            "max_memory",
            f"at least {per_image * len(images)} bytes for {len(images)} images x {per_image} "
            "bytes of the chosen layers (stream with iter_activations, or choose fewer layers)",
            max_memory,
        )


def feature_means(array: np.ndarray) -> np.ndarray:
    """Each channel's mean over space: ``(n, C, ...)`` -> ``(n, C)``.

    Layers without spatial dimensions (``(n, units)``) are returned as they are.

    Examples
    --------
    >>> feature_means(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[1.5, 5.5]])
    """
    if array.ndim <= 2:
        return array
    return array.reshape(array.shape[0], array.shape[1], -1).mean(axis=2)


@public
def pool_channels(values: torch.Tensor | np.ndarray, how: str) -> torch.Tensor:
    """Each channel pooled over space, in float64: ``(n, C, ...)`` -> ``(n, C)``.

    Parameters
    ----------
    values : torch.Tensor or numpy.ndarray
        A layer's activations, images first, channels second; a layer
        without space (``(n, C)``) counts as one position per channel.
    how : {'max_pool', 'median_pool', 'l1_pool', 'l2_pool', 'feature_means'}
        The maximum, the median (the mean of the two middle values for an even
        number of positions, as :func:`numpy.median`), the L1 norm (sum of
        absolute values), the L2 norm, or the mean over space.

    Returns
    -------
    torch.Tensor
        float64, on the device of ``values``.

    Examples
    --------
    >>> pool_channels(np.array([[[[1.0, -4.0], [2.0, 2.0]]]]), 'l1_pool')
    tensor([[9.]], dtype=torch.float64)
    """
    kinds = POOLING_TYPES + ("feature_means",)
    if how not in kinds:
        raise fail("how", f"one of {kinds}", how)
    values = torch.as_tensor(values)
    flat = values.reshape(values.shape[0], values.shape[1] if values.ndim > 1 else 1, -1)
    flat = flat.to(torch.float64)
    if how == "max_pool":
        return flat.amax(dim=2)
    if how == "l1_pool":
        return flat.abs().sum(dim=2)
    if how == "l2_pool":
        return flat.square().sum(dim=2).sqrt()
    if how == "feature_means":
        return flat.mean(dim=2)
    ordered = flat.sort(dim=2).values
    middle = ordered.shape[2] // 2
    if ordered.shape[2] % 2:
        return ordered[:, :, middle]
    return (ordered[:, :, middle - 1] + ordered[:, :, middle]) / 2


@public
def sparse_random_projection(n_features: int, n_components: int, random_state: int = 0,
                             layer_label: tuple = ()) -> Any:
    """The sparse random projection of activation type ``'srp_<n_components>'``.

    A layer of ``n_features`` units is mapped to ``n_components``
    dimensions by a matrix whose entries are ``+-sqrt(s / n_components)``
    with probability ``1 / (2 s)`` each and 0 otherwise, ``s =
    sqrt(n_features)`` (Li, Hastie and Church, 2006): distances and inner
    products are kept in expectation, with an error that shrinks as ``1 /
    sqrt(n_components)``. It is seeded by ``random_state`` and the layer, so
    :func:`~pytorch_feature_analysis.get_rdms` and
    :func:`activation_patterns` use the same matrix for the same layer.

    Parameters
    ----------
    n_features : int
        Units of the layer (of the chosen channels and positions).
    n_components : int
        Dimensions after the projection.
    random_state : int, default 0
        As ``get_rdms``'s ``random_state``.
    layer_label : tuple, default ()
        The layer's label, e.g. ``('conv1', 1)``.

    Returns
    -------
    scipy.sparse.csr_matrix
        ``(n_features, n_components)``, float64.

    Examples
    --------
    >>> matrix = sparse_random_projection(10_000, 64, layer_label=('conv1', 1))
    >>> matrix.shape, matrix.nnz   # about 10_000 * 64 / sqrt(10_000) non-zero entries
    ((10000, 64), 6339)
    >>> round(float(matrix.power(2).sum()) / 10_000, 1)  # squared norms kept on average
    1.0
    """
    n_features = check_int(n_features, "n_features", minimum=1)
    n_components = check_int(n_components, "n_components", minimum=1)
    seed = _projection.layer_seed(check_int(random_state, "random_state", minimum=0),
                                  layer_label, n_features, n_components)
    return _projection.Projection(n_features, n_components, seed).rows(
        0, n_features, torch.device("cpu"))


@public
def activation_patterns(
    array: np.ndarray,
    activation_type: str = "unit_level",
    kernel_inds: Sequence[int] | None = None,
    positions: tuple | None = None,
    *,
    random_state: int = 0,
    layer_label: tuple = (),
) -> np.ndarray:
    """One pattern (row) per image: ``(n, C, ...)`` -> ``(n, features)``.

    Parameters
    ----------
    array : numpy.ndarray
        A layer's activations, images first.
    activation_type : str, default 'unit_level'
        ``'unit_level'``: every unit; ``'feature_means'``: each channel's
        mean over space (see :func:`feature_means`); ``'max_pool'``,
        ``'median_pool'``, ``'l1_pool'``, ``'l2_pool'``: each channel's
        maximum, median, L1 or L2 norm over space (float64, see
        :func:`pool_channels`); ``'srp_<k>'`` (e.g. ``'srp_1024'``): the chosen
        units projected to ``k`` dimensions by :func:`sparse_random_projection`
        (an approximation, named as one).
    kernel_inds : sequence of int, optional
        Keep only these channels (the second axis); default all.
    positions : tuple (rows, cols), optional
        Keep only these rows and columns of a spatial layer (``(n, C, H,
        W)``) before pooling: two sequences of int (or ``None`` for all);
        default every position.
    random_state, layer_label
        The seed of an ``'srp_<k>'`` projection (see
        :func:`sparse_random_projection`).

    Examples
    --------
    >>> acts = np.arange(16.0).reshape(2, 2, 2, 2)
    >>> activation_patterns(acts, 'feature_means', kernel_inds=[1])
    array([[ 5.5],
           [13.5]])
    >>> activation_patterns(acts, 'max_pool', positions=([0], None))
    array([[ 1.,  5.],
           [ 9., 13.]])
    """
    known = ACTIVATION_TYPES + POOLING_TYPES
    if activation_type not in known and _projection.projection_dims(activation_type) is None:
        raise fail("activation_type", f"one of {known} or 'srp_<k>' (e.g. 'srp_1024')",
                   activation_type)
    if kernel_inds is not None:
        array = array[:, np.asarray(kernel_inds, dtype=np.intp)]
    if positions is not None:
        if array.ndim != 4:
            raise fail("positions", "None for a layer without rows and columns",
                       positions)
        rows, cols = (np.arange(size) if chosen is None else np.asarray(chosen, dtype=np.intp)
                      for chosen, size in zip(positions, array.shape[2:]))
        array = array[:, :, rows[:, None], cols[None, :]]
    if activation_type == "feature_means":
        array = feature_means(array)
    elif activation_type in POOLING_TYPES:
        array = pool_channels(array, activation_type).numpy()
    elif activation_type != "unit_level":
        array = array.reshape(array.shape[0], -1)
        projection = sparse_random_projection(array.shape[1], _projection.projection_dims(
            activation_type), random_state, layer_label)
        array = np.asarray(projection.T @ array.astype(np.float64).T).T
    return array.reshape(array.shape[0], -1)


@dataclass
class LayerTarget:
    """Where one pass stores channels ``start:stop`` of a layer, on the device.

    ``units`` (float32, ``(n, stop - start, ...)``) receives the outputs;
    ``means`` (float64, ``(n, channels)``) receives each channel's mean over
    space in its columns ``start:stop``; ``pools`` (``{pooling type: float64
    (n, channels)}``, see :func:`pool_channels`) each channel's pooled value;
    ``projections`` (``{activation type: (float64 (n, k), sparse (k, units of
    the channels))}``) adds the channels' share of a sparse random projection.
    Any may be ``None``.
    """

    start: int
    stop: int
    units: torch.Tensor | None = None
    means: torch.Tensor | None = None
    pools: dict | None = None
    projections: dict | None = None

    def store(self, batch: slice, output: torch.Tensor) -> None:
        """Copy one batch's channels ``start:stop``; their float64 means over space.

        The means are float64 sums of the float32 values, converted a few
        images at a time into a small buffer that stays in cache (a float64
        copy of the whole batch costs several times more).
        """
        part = output[:, self.start : self.stop]
        if self.units is not None:
            self.units[batch].copy_(part)
        for how, pooled in (self.pools or {}).items():
            pooled[batch, self.start : self.stop] = pool_channels(part, how)
        for projected, transposed in (self.projections or {}).values():
            projected[batch] += _projection.project(part, transposed)
        if self.means is None:
            return
        means = self.means[batch, self.start : self.stop]
        if part.ndim <= 2:
            means.copy_(part)
            return
        flat = part.flatten(2)
        step = max(1, 2**18 // flat[0].numel())  # images per block of 2 MiB of float64
        buffer = torch.empty((min(step, len(flat)),) + flat.shape[1:], dtype=torch.float64,
                             device=flat.device)
        for begin in range(0, len(flat), step):
            block = flat[begin : begin + step]
            means[begin : begin + step] = buffer[: len(block)].copy_(block).sum(dim=2)
        means /= flat.shape[2]


def fill_targets(
    images: list,
    model: nn.Module,
    book: dict,
    targets: "dict[LayerLabel, LayerTarget]",
    *,
    batch_size: int,
    device: torch.device,
    transform: Callable | None,
    verbose: bool,
) -> None:
    """One batched forward pass that stores the chosen layers into ``targets``.

    Parameters
    ----------
    images : list
        The images, in the order of the targets' first axis.
    model : torch.nn.Module
    book : dict
        The model's book (:func:`model_layers`).
    targets : dict
        ``{layer label: LayerTarget}``, the buffers (on ``device``) to fill.
    batch_size, device, transform, verbose
        As :func:`get_activations`.

    Examples
    --------
    >>> from pytorch_feature_analysis import prepare_model, make_synthetic_stimuli
    >>> images = [s['path'] for s in make_synthetic_stimuli(1, size=32)]
    >>> model = prepare_model('alexnet', 'random')
    >>> target = LayerTarget(0, 2, units=torch.empty(4, 2, 55, 55))
    >>> fill_targets(images, model, model_layers(model), {('conv1', 1): target},
    ...              batch_size=3, device=torch.device('cpu'), transform=None, verbose=False)
    >>> bool(torch.equal(target.units, torch.from_numpy(
    ...     get_activations(images, model, ['conv1'], verbose=False)[('conv1', 1)][:, :2])))
    True
    """

    def sink(label: LayerLabel, batch: slice, output: torch.Tensor) -> None:
        targets[label].store(batch, output)

    chosen = [label for label in book if label in targets]
    for _ in _run_batches(images, model, book, chosen, batch_size, device, transform, verbose, sink):
        pass
