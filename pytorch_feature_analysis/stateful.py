"""Models that keep a state between calls, run over long inputs in chunks.

The *state protocol* (as Convis's ``Layer``): a module keeps a state when it
has the methods ``get_state()`` (a dict of what it carries from one call to
the next, e.g. the last frames a causal temporal filter still needs) and
``set_state(state)``; ``reset_state()``, when present, returns it to the
state of a fresh input. Any :class:`torch.nn.Module` following it works; the
base class :class:`StatefulModule` implements it (with ``push_state`` /
``pop_state``), and :class:`CausalTemporalConv` and :class:`LeakyIntegrator`
are two small stateful layers built on it.

:func:`run_in_chunks` runs such a model over an input ``(batch, channels,
time, height, width)`` in chunks of ``dt`` frames; the model carries its
state from chunk to chunk, so the activations equal those of one pass over
the whole input (up to the model's own floating-point arithmetic) while the
memory of a pass is that of one chunk. :func:`fit_in_chunks` fits a model's
parameters to recorded responses over time the same way (Convis's
``optimize``). Modules that run several times in one
pass (the time steps of a recurrent block, e.g. CORnet-S) are one layer per
call, as everywhere in the library
(:func:`~pytorch_feature_analysis.trace_layers`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn
import pandas as pd
from tqdm.auto import tqdm

from ._validation import check_int, check_number, fail, problem, public
from .activations import LayerCapture, full_float32, resolve_layers
from .models import trace_layers

__all__ = [
    "StatefulModule",
    "CausalTemporalConv",
    "LeakyIntegrator",
    "get_model_state",
    "set_model_state",
    "reset_model_state",
    "run_in_chunks",
    "fit_in_chunks",
]


def _copy(value: Any) -> Any:
    return value.detach().clone() if isinstance(value, torch.Tensor) else value


class StatefulModule(nn.Module):
    """Base class of modules that keep a state between calls.

    A subclass declares its state variables with :meth:`register_state` in
    ``__init__`` and reads and writes them as attributes in ``forward``;
    ``None`` means "no input seen yet".

    Examples
    --------
    >>> layer = LeakyIntegrator(0.5)
    >>> _ = layer(torch.ones(1, 1, 2, 1, 1))
    >>> layer.get_state()['last'].flatten().tolist()
    [0.75]
    """

    def __init__(self) -> None:
        super().__init__()
        self._state_names: list[str] = []
        self._state_stack: list[dict] = []

    def register_state(self, name: str, value: Any = None) -> None:
        """Declare attribute ``name`` a state variable, with its initial value."""
        self._state_names.append(name)
        setattr(self, name, value)

    def get_state(self) -> dict:
        """A copy of every state variable: ``{name: value}``."""
        return {name: _copy(getattr(self, name)) for name in self._state_names}

    def set_state(self, state: dict) -> None:
        """Set every state variable from ``state`` (as :meth:`get_state` returns it)."""
        if not isinstance(state, dict) or set(state) != set(self._state_names):
            raise fail("state", f"a dict with the keys {sorted(self._state_names)} "
                       f"(a state of {type(self).__name__})", state)
        for name in self._state_names:
            setattr(self, name, _copy(state[name]))

    def reset_state(self) -> None:
        """Forget every input seen (every state variable back to ``None``)."""
        for name in self._state_names:
            setattr(self, name, None)

    def push_state(self) -> None:
        """Keep a copy of the current state on a stack."""
        self._state_stack.append(self.get_state())

    def pop_state(self) -> None:
        """Return to the state last pushed (and take it off the stack)."""
        if not self._state_stack:
            raise problem(f"pop_state of a {type(self).__name__} needs a state pushed first.")
        self.set_state(self._state_stack.pop())


class CausalTemporalConv(StatefulModule):
    """A 3-D convolution that looks only at the current and past frames.

    Output frame ``t`` depends on input frames ``t - kernel_frames + 1 ..
    t``; before the first frame the input counts as zeros. The state is the
    last ``kernel_frames - 1`` input frames, so a chunked run equals one pass.
    Space is zero-padded to keep its size (odd spatial kernels).

    Parameters
    ----------
    in_channels, out_channels : int
    kernel_frames : int
        Frames the filter spans.
    kernel_size : int, default 1
        Height and width of the filter (odd).

    Examples
    --------
    >>> conv = CausalTemporalConv(1, 2, kernel_frames=3)
    >>> conv(torch.zeros(1, 1, 5, 4, 4)).shape
    torch.Size([1, 2, 5, 4, 4])
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_frames: int,
                 kernel_size: int = 1) -> None:
        super().__init__()
        frames = check_int(kernel_frames, "kernel_frames", minimum=1)
        size = check_int(kernel_size, "kernel_size", minimum=1)
        if size % 2 == 0:
            raise fail("kernel_size", "an odd int (space keeps its size)", kernel_size)
        self.conv = nn.Conv3d(in_channels, out_channels, (frames, size, size),
                              padding=(0, size // 2, size // 2))
        self.register_state("history")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        keep = self.conv.kernel_size[0] - 1
        history = self.history
        if history is None:
            history = x.new_zeros(x.shape[:2] + (keep,) + x.shape[3:])
        padded = torch.cat([history, x], dim=2)
        self.history = padded[:, :, padded.shape[2] - keep:].detach().clone()
        return self.conv(padded)


class LeakyIntegrator(StatefulModule):
    """An exponential filter in time: ``y[t] = decay * y[t - 1] + (1 - decay) * x[t]``.

    ``y[-1]`` is 0. The state is the last output frame.

    Parameters
    ----------
    decay : float
        In [0, 1): how much of the last output each frame keeps.

    Examples
    --------
    >>> LeakyIntegrator(0.5)(torch.ones(1, 1, 3, 1, 1)).flatten().tolist()
    [0.5, 0.75, 0.875]
    """

    def __init__(self, decay: float) -> None:
        super().__init__()
        self.decay = check_number(decay, "decay", minimum=0, maximum=1, exclusive_maximum=True)
        self.register_state("last")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = x.new_zeros(x.shape[:2] + x.shape[3:]) if self.last is None else self.last
        frames = []
        for t in range(x.shape[2]):
            last = self.decay * last + (1 - self.decay) * x[:, :, t]
            frames.append(last)
        self.last = last.detach().clone()
        return torch.stack(frames, dim=2)


def _stateful(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """Every module of ``model`` (itself included, as ``''``) that follows the protocol."""
    return OrderedDict(
        (name, module) for name, module in model.named_modules()
        if callable(getattr(module, "get_state", None))
        and callable(getattr(module, "set_state", None))
    )


@public
def get_model_state(model: nn.Module) -> dict:
    """The state of every stateful module of ``model``: ``{module name: its state}``.

    Examples
    --------
    >>> model = torch.nn.Sequential(LeakyIntegrator(0.5), torch.nn.ReLU())
    >>> get_model_state(model)
    {'0': {'last': None}}
    """
    return {name: module.get_state() for name, module in _stateful(model).items()}


@public
def set_model_state(model: nn.Module, state: dict) -> None:
    """Set the state of every stateful module from :func:`get_model_state`'s dict.

    Examples
    --------
    >>> model = torch.nn.Sequential(LeakyIntegrator(0.5))
    >>> saved = get_model_state(model)
    >>> _ = model(torch.ones(1, 1, 2, 1, 1))
    >>> set_model_state(model, saved)
    >>> model[0].last is None
    True
    """
    modules = _stateful(model)
    if not isinstance(state, dict) or set(state) != set(modules):
        raise fail("state", f"a dict keyed by the stateful modules {sorted(modules)}", state)
    for name, module in modules.items():
        module.set_state(state[name])


@public
def reset_model_state(model: nn.Module) -> None:
    """Call ``reset_state()`` of every stateful module (a fresh input follows).

    Examples
    --------
    >>> model = torch.nn.Sequential(LeakyIntegrator(0.5))
    >>> _ = model(torch.ones(1, 1, 2, 1, 1))
    >>> reset_model_state(model)
    >>> model[0].last is None
    True
    """
    for name, module in _stateful(model).items():
        if not callable(getattr(module, "reset_state", None)):
            raise problem(f"the stateful module {name or 'model'!r} ({type(module).__name__}) "
                          "has no reset_state(); set its state with set_model_state instead.")
        module.reset_state()


def _check_chunks(the_input: Any, dt: Any) -> tuple[torch.Tensor, int]:
    """The input as a 5-D tensor and ``dt``, frames per chunk, at most its length."""
    if isinstance(the_input, np.ndarray):
        the_input = torch.from_numpy(the_input)
    if not isinstance(the_input, torch.Tensor) or the_input.ndim != 5:
        shown = f"shape {tuple(the_input.shape)}" if hasattr(the_input, "shape") else the_input
        raise fail("the_input", "a 5-D array or tensor (batch, channels, time, height, width)",
                   shown, raw=hasattr(the_input, "shape"))
    dt = check_int(dt, "dt", minimum=1)
    if dt > the_input.shape[2]:
        raise fail("dt", f"at most the input's length, {the_input.shape[2]} frames", dt)
    return the_input, dt


@public
def run_in_chunks(
    model: nn.Module,
    the_input: Any,
    dt: int,
    layers: Sequence | None = None,
    *,
    verbose: bool = True,
) -> "OrderedDict[tuple, np.ndarray]":
    """Run a stateful model over a long input in chunks of ``dt`` frames, as Convis's ``run``.

    The model starts from its current state (see :func:`reset_model_state`)
    and carries it from chunk to chunk; each chosen layer's outputs are
    joined along the time axis, so they equal one pass over the whole input.

    Parameters
    ----------
    model : torch.nn.Module
        A model with at least one module following the state protocol (see
        the module documentation); without one, chunks would not be joined
        continuously, which is an error.
    the_input : numpy.ndarray or torch.Tensor
        ``(batch, channels, time, height, width)``, in the model's dtype.
    dt : int
        Frames per chunk, at most the input's length (the last chunk may be
        shorter).
    layers : sequence, optional
        Layer names or labels as :func:`~pytorch_feature_analysis.trace_layers`
        gives them (traced on the first chunk, the state restored after);
        default every layer. Each must keep the time axis (5-D outputs).
    verbose : bool, default True
        Show a progress bar over the chunks.

    Returns
    -------
    collections.OrderedDict
        ``{(name, number): float32 array (batch, channels, time, ...)}`` in
        forward order.

    Examples
    --------
    >>> model = torch.nn.Sequential(CausalTemporalConv(1, 2, 3), torch.nn.ReLU())
    >>> acts = run_in_chunks(model, torch.rand(1, 1, 10, 4, 4), dt=4, verbose=False)
    >>> {label: a.shape for label, a in acts.items()}
    {('conv1', 1): (1, 2, 10, 4, 4), ('relu1', 2): (1, 2, 10, 4, 4)}
    """
    x, dt = _check_chunks(the_input, dt)
    if not _stateful(model):
        raise problem(f"run_in_chunks needs a model that keeps its state between chunks (a "
                      f"module with get_state() and set_state(); {type(model).__name__} has "
                      "none), or chunks would not join up; run it in one pass instead.")
    saved = get_model_state(model)
    book = trace_layers(model, x[:, :, :dt])
    set_model_state(model, saved)
    chosen = resolve_layers(book, layers)
    pieces: dict[tuple, list] = {label: [] for label in chosen}

    def sink(label: tuple, output: torch.Tensor) -> None:
        if output.ndim != 5:
            raise problem(f"layer {label} gives {output.ndim}-D outputs; run_in_chunks joins "
                          "layers that keep the time axis (5-D); choose others with layers=.")
        pieces[label].append(output.detach().to("cpu", torch.float32, copy=True).numpy())

    starts = range(0, x.shape[2], dt)
    with full_float32(), LayerCapture(model, book, chosen, sink) as capture:
        for start in tqdm(starts, disable=not verbose, desc="chunks", unit="chunk"):
            capture.run(model, x[:, :, start : start + dt])
    return OrderedDict((label, np.concatenate(pieces[label], axis=2)) for label in chosen)


def _mean_squared_error(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return torch.mean((output - target) ** 2)


def _check_target(target: Any, output_shape: tuple) -> torch.Tensor:
    target = torch.from_numpy(target) if isinstance(target, np.ndarray) else target
    if not isinstance(target, torch.Tensor) or tuple(target.shape) != output_shape:
        shown = tuple(target.shape) if hasattr(target, "shape") else type(target).__name__
        raise fail("target", f"an array or tensor shaped like the model's output {output_shape}",
                   shown, raw=True)
    return target


@public
def fit_in_chunks(
    model: nn.Module,
    the_input: Any,
    target: Any,
    dt: int,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    loss: Any = None,
    num_epochs: int = 1,
    verbose: bool = True,
) -> pd.DataFrame:
    """Fit a stateful model's parameters to responses over time, chunk by chunk.

    As Convis's ``optimize``.

    Each epoch starts from a fresh state (:func:`reset_model_state`) and
    walks through the input in chunks of ``dt`` frames. On each chunk the
    optimizer takes one step (its closure runs the chunk from the state the
    chunk started in, as often as the optimizer asks, so L-BFGS works too);
    the chunk then runs once more with the updated parameters to give the
    state the next chunk starts from. Gradients stay within a chunk
    (truncated back-propagation through time): states must be stored
    detached, as the layers of :class:`StatefulModule` do.

    Parameters
    ----------
    model : torch.nn.Module
        A model following the state protocol, with ``reset_state`` (see the
        module documentation); its parameters are changed in place.
    the_input : numpy.ndarray or torch.Tensor
        ``(batch, channels, time, height, width)``.
    target : numpy.ndarray or torch.Tensor
        The responses, shaped like the model's output over the whole input
        (time on axis 2).
    dt : int
        Frames per chunk, at most the input's length.
    optimizer : torch.optim.Optimizer, optional
        Default ``torch.optim.Adam(model.parameters(), lr=0.01)``.
    loss : callable, optional
        ``loss(output, target) -> scalar tensor``; default the mean squared
        error.
    num_epochs : int, default 1
    verbose : bool, default True
        Show a progress bar over the epochs.

    Returns
    -------
    pandas.DataFrame
        One row per epoch and chunk: ``epoch``, ``chunk``, ``start`` (its
        first frame) and ``loss`` (before the step).

    Examples
    --------
    >>> torch.manual_seed(0) and None
    >>> model = torch.nn.Sequential(CausalTemporalConv(1, 1, kernel_frames=2))
    >>> x = torch.rand(1, 1, 20, 2, 2)
    >>> history = fit_in_chunks(model, x, 2 * x, dt=5, num_epochs=30, verbose=False,
    ...                         optimizer=torch.optim.Adam(model.parameters(), lr=0.1))
    >>> bool(history.loss.iloc[-4:].mean() < history.loss.iloc[:4].mean() / 10)
    True
    """
    x, dt = _check_chunks(the_input, dt)
    num_epochs = check_int(num_epochs, "num_epochs", minimum=1)
    loss = _mean_squared_error if loss is None else loss
    if not callable(loss):
        raise fail("loss", "a callable loss(output, target) -> scalar tensor", loss)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    reset_model_state(model)
    with torch.no_grad():
        shape = tuple(model(x[:, :, :dt]).shape)
    target = _check_target(target, shape[:2] + (x.shape[2],) + shape[3:])
    rows = []
    with full_float32():
        for epoch in tqdm(range(num_epochs), disable=not verbose, desc="epochs", unit="epoch"):
            reset_model_state(model)
            for chunk, start in enumerate(range(0, x.shape[2], dt)):
                value = _fit_chunk(model, x[:, :, start : start + dt],
                                   target[:, :, start : start + dt], optimizer, loss)
                rows.append({"epoch": epoch, "chunk": chunk, "start": start, "loss": value})
    return pd.DataFrame(rows, columns=["epoch", "chunk", "start", "loss"])


def _fit_chunk(model: nn.Module, x: torch.Tensor, target: torch.Tensor, optimizer: Any,
               loss: Any) -> float:
    """One optimizer step on one chunk; the state then moves on with the new parameters."""
    start_state = get_model_state(model)

    def closure() -> torch.Tensor:
        set_model_state(model, start_state)
        optimizer.zero_grad()
        value = loss(model(x), target)
        value.backward()
        return value

    with torch.enable_grad():
        value = float(optimizer.step(closure).detach())
    set_model_state(model, start_state)
    with torch.no_grad():
        model(x)
    return value
