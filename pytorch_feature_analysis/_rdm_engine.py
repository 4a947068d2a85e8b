"""The RDMs of one image set through one model, within a memory budget.

The layers asked for are planned into forward passes whose activations fit
the budget (:func:`pytorch_feature_analysis._plan.plan_passes`). Each pass
stores its layers (or channel slices of one large layer) on the device as
float32; their features are fed, chunk by chunk, to one
:class:`~pytorch_feature_analysis.dissim.RDMAccumulator` per activation type
and kernel set, which builds float64 statistics on the device. Only the
finished ``n x n`` matrices reach the host.

Peak memory of a pass: the stored float32 activations of its layers, their
channel means (float64), the accumulators' ``n x n`` float64 statistics, and
the transient outputs of one batch's forward pass.

Time-resolved RDMs (a layer whose output per entry is ``(channels, time,
height, width)``): one accumulator per time step and activation type, fed
with the features of that step; the channel means are kept per time step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ._plan import FLOAT32, FLOAT64, LayerNeed, Piece
from .activations import POOLING_TYPES, LayerTarget, pool_channels
from . import _projection, dissim
from .dissim import Metric

ACTIVATION_TYPES = ("unit_level", "feature_means")


@dataclass
class Entries:
    """The entries of one image set: its images, then its combinations."""

    keys: tuple
    labels: tuple
    images: list
    combinations: list

    @classmethod
    def of(cls, image_set: tuple, combinations: list) -> "Entries":
        _labels, images, entry_variables, _ = image_set
        keys = tuple(images) + tuple(name for name, *_ in combinations)
        labels = tuple(dict(zip(entry_variables, key)) for key in keys)
        return cls(keys, labels, list(images.values()), combinations)

    def append_combinations(self, base: np.ndarray, activation_type: str) -> np.ndarray:
        """``base`` (one row per image) with one row per combination appended."""
        if not self.combinations:
            return base
        position = {key: index for index, key in enumerate(self.keys)}
        combined = []
        for name, sources, func, kwargs, unpack in self.combinations:
            parts = [base[position[source]] for source in sources]
            result = np.asarray(func(*parts, **kwargs) if unpack else func(parts, **kwargs))
            if result.shape != base.shape[1:]:
                raise ValueError(
                    f"The combination {name!r} must return an array of shape {base.shape[1:]} "
                    f"(one entry's {activation_type} pattern); got shape {result.shape} instead."
                )
            combined.append(result)
        return np.concatenate([base, np.stack(combined).astype(base.dtype)])


@dataclass
class LayerWork:
    """Everything one layer must deliver: which RDMs, from which channels."""

    label: tuple
    shape: tuple
    wanted: set  # {(activation_type, kernel_set_name, metric_name, perm, time)}
    entries: Entries
    metrics: list[Metric]
    kernels: dict  # {kernel_set_name: channel indices}
    device: torch.device
    means: torch.Tensor | None = None
    pools: dict = field(default_factory=dict)  # {pooling type: float64 (n, channels[, time])}
    projections: dict = field(default_factory=dict)  # {'srp_<k>': float64 (n, k)}
    projectors: dict = field(default_factory=dict)  # {'srp_<k>': _projection.Projection}
    random_state: int = 0  # seeds the sparse random projections
    positions: dict = field(default_factory=dict)  # {kernel set: (rows, cols)} of masked sets
    masked: dict = field(default_factory=dict)  # {(type, kernel set): float64 (entries, kept)}
    accumulators: dict = field(default_factory=dict)
    times: list = field(default_factory=lambda: [None])  # the RDMs' time steps (_time.time_steps)
    step_seconds: float | None = None  # seconds between two time steps, when known

    @property
    def time_steps(self) -> int | None:
        """The layer's number of time steps when time-resolved, else None."""
        return None if self.times == [None] else len(self.times)

    @property
    def channels(self) -> int:
        return self.shape[0] if self.shape else 1

    def metrics_for(self, activation_type: str, kernel_set_name: str) -> list[Metric]:
        return [
            metric for metric in self.metrics
            if any(w[:3] == (activation_type, kernel_set_name, metric.name) for w in self.wanted)
        ]

    def jobs(self, activation_type: str) -> list[tuple[str, list[Metric]]]:
        jobs = [(name, self.metrics_for(activation_type, name)) for name in self.kernels]
        return [(name, metrics) for name, metrics in jobs if metrics]

    def need(self) -> LayerNeed:
        """The memory this layer holds during a pass, and whether it can be split."""
        n_images, n_entries = len(self.entries.images), len(self.entries.keys)
        spatial = math.prod(self.shape[1:])
        steps = self.time_steps or 1
        units = bool(self.jobs("unit_level")) or self.time_steps is not None or bool(
            self.positions)
        per_channel = n_images * spatial * FLOAT32 if units else 0
        channel_stats = bool(self.jobs("feature_means")) + len(self._pooled())
        fixed = n_images * self.channels * steps * FLOAT64 * channel_stats
        fixed += sum(self._projection_bytes(kind) for kind in self._projected())
        fixed += sum(len(self.entries.keys) * len(self.kernels[name]) * FLOAT64
                     for _, name in self._masked_jobs())
        whole = bool(self.entries.combinations)
        for activation_type in ACTIVATION_TYPES + POOLING_TYPES + tuple(self._projected()):
            for name, metrics in self.jobs(activation_type):
                fixed += steps * dissim.RDMAccumulator.workspace_bytes(n_entries, metrics)
                whole |= (activation_type == "unit_level"
                          and dissim.RDMAccumulator.whole_patterns_needed(metrics))
                if activation_type == "unit_level" and len(self.kernels[name]) < self.channels:
                    fixed += n_entries * len(self.kernels[name]) * spatial * FLOAT32
        fixed += len(self.entries.combinations) * self.channels * spatial * FLOAT32 * 2
        return LayerNeed(self.label, self.channels, per_channel, fixed, splittable=not whole,
                         why_whole=" (its metrics or combinations need every feature at once)")

    def target(self, piece: Piece) -> LayerTarget:
        """Buffers on the device for one pass over channels ``piece.start:piece.stop``."""
        n_images = len(self.entries.images)
        units = None
        timed = self.time_steps is not None
        if self.jobs("unit_level") or timed or self.positions:
            shape = (n_images, piece.stop - piece.start) + tuple(self.shape[1:])
            units = torch.empty(shape, dtype=torch.float32, device=self.device)
        if self.jobs("feature_means") and self.means is None:
            shape = (n_images, self.channels) + ((self.time_steps,) if timed else ())
            self.means = torch.empty(shape, dtype=torch.float64, device=self.device)
        for how in self._pooled():
            if how not in self.pools:
                shape = (n_images, self.channels) + ((self.time_steps,) if timed else ())
                self.pools[how] = torch.empty(shape, dtype=torch.float64, device=self.device)
        # time-resolved means are taken from the units (add_units), per time step
        means = self.means if self.jobs("feature_means") and not timed else None
        return LayerTarget(piece.start, piece.stop, units, means,
                           None if timed else dict(self.pools), self._projection_targets(piece))

    def _pooled(self) -> list[str]:
        return [how for how in POOLING_TYPES if self.jobs(how)]

    def _statistics(self, activation_type: str, name: str, stats: torch.Tensor) -> torch.Tensor:
        """The patterns of one kernel set from a layer's per-channel (or projected) values."""
        if activation_type in self.projections:
            return stats
        if name not in self.positions:
            return stats[:, self.kernels[name]]
        masked = self.masked[(activation_type, name)].cpu().numpy()
        return torch.from_numpy(self.entries.append_combinations(masked, activation_type)).to(
            self.device)

    def _masked_jobs(self) -> list[tuple[str, str]]:
        """(activation type, kernel set) of channel statistics over a set's positions."""
        kinds = ("feature_means",) + POOLING_TYPES
        return [(kind, name) for kind in kinds for name, _ in self.jobs(kind)
                if name in self.positions]

    def _add_masked(self, piece: Piece, units: torch.Tensor) -> None:
        """Channel statistics over each masked set's positions, from one slice of units."""
        for kind, name in self._masked_jobs():
            if (kind, name) not in self.masked:
                self.masked[(kind, name)] = torch.empty(
                    (len(units), len(self.kernels[name])), dtype=torch.float64,
                    device=self.device)
            inside = [(i, k - piece.start) for i, k in enumerate(self.kernels[name])
                      if piece.start <= k < piece.stop]
            if inside:
                columns, local = zip(*inside)
                kept = self._kept(units[:, list(local)], name)
                self.masked[(kind, name)][:, list(columns)] = pool_channels(kept, kind)

    def _kept(self, units: torch.Tensor, name: str) -> torch.Tensor:
        """``units`` (entries, channels, rows, cols) at the positions kernel set ``name`` keeps."""
        if name not in self.positions:
            return units
        rows, cols = (torch.as_tensor(kept, device=units.device)
                      for kept in self.positions[name])
        return units.index_select(2, rows).index_select(3, cols)

    def _projected(self) -> list[str]:
        kinds = {w[0] for w in self.wanted if _projection.projection_dims(w[0]) is not None}
        return sorted(kinds)

    def _projection_bytes(self, kind: str) -> int:
        """The projections of every image and the sparse matrix (column and value per entry,
        and a slice's copy of them)."""
        dims, units = _projection.projection_dims(kind), self.channels * math.prod(self.shape[1:])
        return len(self.entries.images) * dims * FLOAT64 + int(dims * math.sqrt(units)) * 24

    def _projection_targets(self, piece: Piece) -> dict:
        """Per projected type, where a pass adds the share of channels ``piece.start:stop``."""
        spatial, targets = math.prod(self.shape[1:]), {}
        for kind in self._projected():
            dims = _projection.projection_dims(kind)
            if kind not in self.projections:
                self.projections[kind] = torch.zeros((len(self.entries.images), dims),
                                                     dtype=torch.float64, device=self.device)
            if kind not in self.projectors:  # built once per layer, for all its passes
                units = self.channels * spatial
                seed = _projection.layer_seed(self.random_state, self.label, units, dims)
                self.projectors[kind] = _projection.Projection(units, dims, seed)
            targets[kind] = (self.projections[kind], self.projectors[kind].rows(
                piece.start * spatial, piece.stop * spatial, self.device))
        return targets

    def add_units(self, piece: Piece, units: torch.Tensor) -> None:
        """Feed one slice of unit-level activations to the accumulators."""
        if self.time_steps is not None and self.jobs("feature_means"):
            self.means[:, piece.start : piece.stop] = units.flatten(3).sum(
                dim=3, dtype=torch.float64) / math.prod(self.shape[2:])
        if self.time_steps is not None:
            for how, pooled in self.pools.items():  # over space, per channel and time step
                flat = units.reshape(len(units), units.shape[1] * self.time_steps, -1)
                pooled[:, piece.start : piece.stop] = pool_channels(flat, how).reshape(
                    units.shape[:3])
        self._add_masked(piece, units)
        if self.entries.combinations:  # a layer with combinations is never split
            combined = self.entries.append_combinations(units.cpu().numpy(), "unit_level")
            units = torch.from_numpy(combined).to(self.device)
        for name, metrics in self.jobs("unit_level"):
            local = [k - piece.start for k in self.kernels[name] if piece.start <= k < piece.stop]
            if local:
                chosen = units if local == list(range(units.shape[1])) else units[:, local]
                chosen = self._kept(chosen, name)
                for time in self.times:
                    step = chosen if time is None else chosen[:, :, time]
                    self._accumulator("unit_level", name, metrics, time).add(
                        step.reshape(len(step), -1))

    def finish(self) -> list[tuple]:
        """The finished RDMs: ``(activation_type, kernel_set_name, kernel_inds, metric, matrix,
        time)``, ``time`` the time step (``None`` unless time-resolved)."""
        for activation_type, values in [("feature_means", self.means), *self.pools.items(),
                                        *self.projections.items()]:
            jobs = self.jobs(activation_type)
            if not jobs:
                continue
            base = self.entries.append_combinations(values.cpu().numpy(), activation_type)
            stats = torch.from_numpy(base).to(self.device)
            for name, metrics in jobs:
                for time in self.times:
                    chosen = self._statistics(activation_type, name, stats)
                    self._accumulator(activation_type, name, metrics, time).add(
                        chosen if time is None else chosen[:, :, time])
        finished = []
        for (activation_type, name, time), (metrics, accumulator) in self.accumulators.items():
            for metric, matrix in zip(metrics, accumulator.finish()):
                finished.append((activation_type, name, tuple(self.kernels[name]), metric, matrix,
                                 time))
        self.accumulators.clear()
        self.means = None
        self.pools = {}
        self.projections = {}
        self.projectors = {}
        self.masked = {}
        return finished

    def _accumulator(self, activation_type: str, name: str, metrics: list[Metric],
                     time: int | None = None) -> Any:
        key = (activation_type, name, time)
        if key not in self.accumulators:
            accumulator = dissim.RDMAccumulator(len(self.entries.keys), metrics, self.device)
            self.accumulators[key] = (metrics, accumulator)
        return self.accumulators[key][1]
