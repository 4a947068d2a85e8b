"""``get_rdms`` into a dataset: one parquet part per image set x model (private: see rdms).

Each image set x model writes its rows as one part
``<folder>/model=<name>/part-<digest>.parquet`` as soon as it is done, where
it ran (a local process, or a Dask worker writing to a shared path or to an
object store's URL), with the atomic write of
:func:`~pytorch_feature_analysis.save_frame` (a killed write leaves no part).
The digest is that of the task, its fingerprint and its rows, so a retried
task finds its part written and writes nothing. Each part holds the
fingerprint of what made it in its ``attrs``. A resumed call reads the parts'
identity columns and fingerprints only (never the matrices), computes what is
missing, and removes, before any new work, the parts whose fingerprint
changed; no part is ever rewritten.
"""

from __future__ import annotations

import hashlib
import os
import pickle
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

import pandas as pd
import pyarrow.parquet as pq
from tqdm.auto import tqdm

from ._arrow_codec import STORAGE_KEY, table_to_frame
from ._contract import PER_RDM_COLUMNS, RDM_COLUMNS
from ._dataset import part_files, part_path, read_dataset
from ._fingerprint import weights_fingerprint
from ._location import absolute, arrow, exists, remove
from ._resume import FINGERPRINTS, RowStore, identity_of, stale_tasks, task_key, task_key_of
from ._validation import fail, problem
from .io import save_frame
from .models import prepare_model
from .parallel import imap_ordered, run_on_cluster

__all__ = ["DatasetTarget", "dataset_state", "run_on_dataset"]


@dataclass
class DatasetTarget:
    """Where a get_rdms call writes its parts, and the parts it removes before starting."""

    folder: Any
    labels: list
    matrix_storage: str
    remove: list = field(default_factory=list)


def _part_rows(path: Any, columns: list, rdm_name: str) -> pd.DataFrame:
    """The rows of a part of this study without their per-RDM columns (no matrix is read).

    A part without the call's ``columns`` or of another ``df_name`` is an
    error naming it. The frame's ``attrs`` hold the part's fingerprints.
    """
    filesystem, (inner,) = arrow(path)
    with pq.ParquetFile(inner, filesystem=filesystem) as handle:
        schema = handle.schema_arrow
        missing = [column for column in columns if column not in schema.names]
        if missing:
            raise fail("out_fname", "a dataset folder of this study's parts (or another folder)",
                       f"the part {os.fspath(path)!r}, without the columns {missing} of this "
                       "call", raw=True)
        wanted = [c for c in schema.names if c not in (*PER_RDM_COLUMNS, "layer_label")]
        frame = table_to_frame(handle.read(columns=wanted), schema.metadata)
    names = set(frame["df_name"])
    if names - {rdm_name}:
        raise fail("out_fname", f"a dataset folder of the study {rdm_name!r} (rdm_name)",
                   f"the part {os.fspath(path)!r} of the study {sorted(names)}", raw=True)
    return frame


def dataset_state(folder: Any, fingerprints: dict, rdm_name: str, labels: list,
                  on_change: str, append: bool, matrix_storage: str) -> tuple:
    """``(done identities, stale tasks, target)`` of a call writing to the dataset ``folder``.

    With ``append=False`` every part is to be removed. Parts of another study
    are an error naming the part.
    """
    target = DatasetTarget(absolute(folder), labels, matrix_storage)
    parts = part_files(target.folder)
    if not append:
        target.remove = parts
        return set(), {}, target
    rows, owners, stored = [], [], {}
    for path in parts:
        frame = _part_rows(path, [*RDM_COLUMNS, *labels], rdm_name)
        rows += frame.to_dict("records")
        owners += [path] * len(frame)
        stored.update(frame.attrs.get(FINGERPRINTS, {}))
    existing = pd.DataFrame(rows)
    existing.attrs[FINGERPRINTS] = stored
    stale = stale_tasks(existing, fingerprints, on_change)
    identities = [identity_of(row) for row in rows]
    target.remove = sorted({path for path, identity in zip(owners, identities)
                            if task_key_of(identity) in stale})
    done = {identity for identity in identities if task_key_of(identity) not in stale}
    return done, stale, target


def _sorted_identity(identity: tuple) -> tuple:
    """The identity with its labels sorted (a frozenset's order differs between processes)."""
    return (*identity[:-1], tuple(sorted(identity[-1], key=repr)))


def write_task_part(rows: list[dict], target: DatasetTarget, fingerprint: dict) -> str:
    """Write the rows of one image set x model as a part (unless a retried task wrote it)."""
    identities = sorted(repr(_sorted_identity(identity_of(row))) for row in rows)
    key = task_key_of(identity_of(rows[0]))
    text = repr((key, sorted(fingerprint.items()), identities))
    name = f"part-{hashlib.sha256(text.encode()).hexdigest()[:24]}.parquet"
    path = part_path(target.folder, {"model": rows[0]["model"]}, name)
    if not exists(path):
        others = [c for c in dict.fromkeys(k for row in rows for k in row)
                  if c not in RDM_COLUMNS and c not in target.labels]
        frame = pd.DataFrame(rows, columns=[*RDM_COLUMNS, *target.labels, *others])
        frame.attrs[FINGERPRINTS] = {key: fingerprint}
        save_frame(frame, path, matrix_storage=target.matrix_storage)
    return os.fspath(path)


_MODELS: dict = {}  # (name, weights fingerprint) -> model: the two last used in this process
_KEEP_MODELS = 2


def _worker_model(name: str, fingerprint: str, make: Callable[[], Any]) -> Any:
    """The model ``name`` with these weights: kept from an earlier task, or made now."""
    key = (name, fingerprint)
    if key not in _MODELS:
        while len(_MODELS) >= _KEEP_MODELS:
            _MODELS.pop(next(iter(_MODELS)))
        _MODELS[key] = make()
    return _MODELS[key]


def _built_model(name: str, description: tuple, expected: str) -> Any:
    """The model ``name`` built from ``(base_model, weights, seed)``; its weights checked."""
    model = prepare_model(*description[:2], random_state=description[2])
    if weights_fingerprint(model) != expected:
        raise problem(
            f"the model {name!r} built on a worker from {description!r} has other weights "
            "than the one planned on the machine that submitted the work; give models as "
            "(base_model, weights) with seeded or stored weights, or as modules."
        )
    return model


def task_part(compute: Callable, task: dict, target: DatasetTarget, fingerprint: dict,
              models: dict | None = None, description: tuple | None = None) -> str:
    """Compute one image set x model and write its part; the part's path.

    On a worker the task comes without its model: it is built from
    ``description``, or unpickled from the ``models`` sent to every worker
    (pickled here, as Dask's own serialisation of modules loses their hooks).
    """
    if task["model"] is None:
        name, weights = task["model_name"], fingerprint["weights"]
        make = ((lambda: pickle.loads(models[name])) if description is None
                else (lambda: _built_model(name, description, weights)))
        task = dict(task, model=_worker_model(name, weights, make))
    return write_task_part(compute(**task), target, fingerprint)


def run_on_dataset(call: Any, compute: Callable, client: Any, num_cores: int, verbose: bool,
                   collect: bool) -> pd.DataFrame | None:
    """Run a planned get_rdms call into its dataset; the whole frame if ``collect``."""
    target = call.target
    for path in target.remove:
        remove(path)
    bars = verbose and len(call.tasks) == 1 and num_cores == 1 and client is None
    calls = (dict(compute=compute, task=dict(task, verbose=bars), target=target,
                  fingerprint=call.fingerprints[task_key(task["model_name"],
                                                         task["image_set"][0])])
             for task in call.tasks)
    if client is None:
        results = imap_ordered(task_part, calls, num_cores)
    else:
        results = _on_cluster(call, client, calls)
    with tqdm(total=len(call.tasks), disable=not verbose or len(call.tasks) < 2, desc="RDMs",
              unit="set x model") as bar:
        for path in results:
            _check_visible(path, target.folder)
            bar.update(1)
    if not collect:
        return None
    store = RowStore(call.tasks.order(), list(target.labels), dict(call.fingerprints), call.stale)
    stored = read_dataset(target.folder) if part_files(target.folder) else pd.DataFrame()
    store.add(stored.to_dict("records"))
    frame = store.frame()
    if STORAGE_KEY in stored.attrs:
        frame.attrs[STORAGE_KEY] = stored.attrs[STORAGE_KEY]
    return frame


def _check_visible(path: str, folder: Any) -> None:
    """The part a worker wrote must be seen here: workers and caller share the folder."""
    if not exists(path):
        raise problem(
            f"the part {path!r} that a worker wrote is not in the dataset {os.fspath(folder)!r} "
            "as this process sees it: give out_fname as a folder every worker and this process "
            "share (a shared file system mounted at the same path, or an object store's URL; "
            "a 'memory://' URL belongs to one process: use it with num_cores=1 and no client)."
        )


def _on_cluster(call: Any, client: Any, calls: Iterable[dict]) -> Any:
    """Submit the tasks without their models: built on the workers, or sent once."""
    described = {name: spec for name, spec in call.descriptions.items() if spec is not None}
    modules = {name: pickle.dumps(model_plan.model) for name, model_plan
               in call.plan.models.items() if name not in described}
    tag = hashlib.sha256(os.urandom(16)).hexdigest()[:8]
    submitted = (
        (f"pfa-rdms-{tag}-{i}",
         dict(kwargs, task=dict(kwargs["task"], model=None),
              description=described.get(kwargs["task"]["model_name"])))
        for i, kwargs in enumerate(calls)
    )
    return run_on_cluster(client, task_part, submitted, {"models": modules})


def model_descriptions(models_dict: dict) -> dict:
    """``{name: (base_model name, weights, seed)}`` for models given by description, else None.

    Such models are built on the workers of a cluster rather than sent to them.
    """
    descriptions = {}
    for name, spec in models_dict.items():
        described = isinstance(spec, (tuple, list)) and len(spec) in (2, 3) and isinstance(
            spec[0], str)
        descriptions[name] = (spec[0], spec[1], spec[2] if len(spec) == 3 else 0) if described \
            else None
    return descriptions
