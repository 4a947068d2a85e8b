"""What a resumed ``get_rdms`` keeps, recomputes and merges.

Rows are identified by model, layer, activation type, kernel set, metric,
permutation and image-set labels. Each image set x model also has a
fingerprint of what made its rows (the model's weights, the preprocessing, the
images, the permutation seed and the library version), stored in the file's
``attrs``; a resumed call recomputes the rows whose fingerprint changed.
Before each write the file is locked and re-read, so rows another process
saved meanwhile are kept.
"""

from __future__ import annotations

import os
from typing import Any, Callable

import pandas as pd

from ._contract import IDENTITY_COLUMNS, RDM_COLUMNS, TIME_COLUMNS
from ._fingerprint import describe_changes
from ._validation import problem
from .io import file_lock, frame_format, load_frame, save_frame

FINGERPRINTS = "pytorch_feature_analysis.fingerprints"


def label_key(labels: dict) -> frozenset:
    return frozenset((key, value) for key, value in labels.items())


def row_identity(model: str, label: tuple, activation_type: str, kernel_set: str, metric: str,
                 perm: Any, labels: frozenset, time: int | None = None) -> tuple:
    """The identity tuple; a time step (time-resolved RDMs only) comes before the labels.

    The image-set labels stay its last item; an RDM that is not time-resolved
    has the identity (and so the permutation seeds) it always had.
    """
    core = (model, label[0], int(label[1]), activation_type, kernel_set, metric, perm)
    return core + ((labels,) if time is None else (time, labels))


def _missing(value: Any) -> bool:
    return pd.api.types.is_scalar(value) and pd.isna(value)


def identity_of(row: dict) -> tuple:
    """The identity of a row given as a dict of the frame's columns.

    Its :data:`IDENTITY_COLUMNS`, its time step (``None`` for an RDM that is
    not time-resolved), then the image-set labels it has (every other column,
    where not missing).
    """
    labels = {key: value for key, value in row.items()
              if key not in RDM_COLUMNS and key not in TIME_COLUMNS and not _missing(value)}
    model, layer, layer_num, activation_type, kernel_set, metric, perm = (
        row[column] for column in IDENTITY_COLUMNS)
    time = row.get("time")
    time = None if time is None or _missing(time) else int(time)
    return row_identity(model, (layer, layer_num), activation_type, kernel_set, metric, perm,
                        label_key(labels), time)


def task_key(model_name: str, labels: dict) -> str:
    """The text key of one image set x model (JSON-safe, for the fingerprints)."""
    return repr((model_name, sorted(labels.items(), key=repr)))


def task_key_of(identity: tuple) -> str:
    return task_key(identity[0], dict(identity[-1]))


def stale_tasks(existing: pd.DataFrame, current: dict, on_change: str) -> dict:
    """``{task key: changed parts}`` of the image sets x models whose rows on file are stale."""
    stored = existing.attrs.get(FINGERPRINTS, {})
    on_file = {task_key_of(identity_of(row)) for row in existing.to_dict("records")}
    stale = {}
    for key, parts in current.items():
        if key in on_file:
            changed = describe_changes(stored[key], parts) if key in stored else ["fingerprint"]
            if changed:
                stale[key] = changed
    if stale and on_change == "error":
        key, changed = next(iter(stale.items()))
        raise problem(
            f"the rows on file for {key} were made with other {', '.join(changed)} than this "
            f"call's ({len(stale)} image set(s) x model(s) differ); pass on_change='recompute' "
            "to recompute them, or write to another file."
        )
    return stale


def describe_stale(stale: dict) -> str:
    """One line: how many image sets x models are recomputed, and why."""
    counts: dict[str, int] = {}
    for changed in stale.values():
        for part in changed:
            counts[part] = counts.get(part, 0) + 1
    reasons = ", ".join(f"{part} changed for {count}" for part, count in counts.items())
    return f"Recomputing {len(stale)} image set(s) x model(s) already on file: {reasons}."


class RowStore:
    """The rows of one call's frame: kept from the file, computed now, saved by others."""

    def __init__(self, order: dict, label_columns: list, fingerprints: dict, stale: dict):
        self.order, self.label_columns, self.fingerprints = order, label_columns, fingerprints
        self.stale = stale
        self.rows: list[dict] = []
        self.keys: list[tuple] = []
        self.identities: set = set()

    def add(self, rows: list[dict]) -> None:
        """Add rows not held yet (rows of the file, or computed now)."""
        for row in rows:
            identity = identity_of(row)
            if identity in self.identities:
                continue
            self.identities.add(identity)
            self.rows.append(row)
            self.keys.append(self.order.get(identity, (-1, len(self.rows))))
            self.label_columns += [c for c in row if c not in RDM_COLUMNS
                                   and c not in self.label_columns]

    def absorb(self, saved: pd.DataFrame) -> None:
        """Keep the rows (and fingerprints) that another writer saved meanwhile.

        Rows of the image sets x models this call recomputes are not taken.
        """
        for key, parts in saved.attrs.get(FINGERPRINTS, {}).items():
            if key not in self.stale:
                self.fingerprints.setdefault(key, parts)
        rows = saved.to_dict("records")
        self.add([row for row in rows if task_key_of(identity_of(row)) not in self.stale])

    def frame(self) -> pd.DataFrame:
        ranked = sorted(range(len(self.rows)), key=lambda i: (self.keys[i][0] >= 0, self.keys[i]))
        frame = pd.DataFrame([self.rows[i] for i in ranked],
                             columns=list(RDM_COLUMNS) + self.label_columns)
        frame.attrs[FINGERPRINTS] = dict(self.fingerprints)
        return frame.reset_index(drop=True)


def save_merged(store: RowStore, out_fname: Any, absorb: bool = True,
                matrix_storage: str = "float64") -> None:
    """Under the file's lock: take in rows saved by others (if ``absorb``), then write every row."""
    with file_lock(out_fname):
        if absorb and os.path.exists(out_fname):
            store.absorb(load_frame(out_fname, allow_pickle=frame_format(out_fname) == "pickle"))
        save_frame(store.frame(), out_fname, matrix_storage=matrix_storage)


class Checkpoint:
    """Rewrites the file whenever the last write cost at most ``share`` of the work since.

    With ``overwrite``, the first write replaces what the file held; later
    writes keep rows other writers saved meanwhile, as every write does
    otherwise.
    """

    def __init__(self, out_fname: Any, store: RowStore, share: float, clock: Callable[[], float],
                 overwrite: bool = False, matrix_storage: str = "float64"):
        self.out_fname, self.store, self.share, self.clock = out_fname, store, share, clock
        self.matrix_storage = matrix_storage
        self.last_end, self.last_cost, self.unsaved = clock(), 0.0, False
        self.absorb = not overwrite

    def after_work(self) -> None:
        self.unsaved = True
        if self.last_cost <= self.share * (self.clock() - self.last_end):
            self.save()

    def save(self) -> None:
        if self.out_fname is None:
            return
        start = self.clock()
        save_merged(self.store, self.out_fname, self.absorb, self.matrix_storage)
        self.absorb = True
        self.last_end = self.clock()
        self.last_cost, self.unsaved = self.last_end - start, False

    def close(self, force: bool) -> None:
        """Save what is not saved yet (also when an error stops the run)."""
        if self.unsaved or force:
            self.save()
