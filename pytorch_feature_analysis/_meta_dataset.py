"""Meta-RDMs of a dataset, one group at a time (private: see :func:`get_meta_rdms`).

The dataset is first read without its ``matrix`` column (the skeleton: one
small row per RDM), which is enough to check the arguments and form the
groups. Each group's matrices are then read with a filter on its grouping
variables, pushed down to the parquet parts where the stored values allow
it, so memory holds one group's RDMs at a time. A dataset output gets one
part per group, ``part-<group number>.parquet``, in group order.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from ._arrow_codec import METADATA_KEY
from ._dataset import is_dataset_path, part_files, read_dataset
from ._location import arrow, join, locate, remove, same_place
from ._validation import fail, problem
from .io import frame_format, save_frame

__all__ = ["DatasetSource", "MetaOutput"]

_PLAIN = {"str": str, "int": int, "float": float, "bool": bool}


class DatasetSource:
    """A dataset read one group at a time: its parts listed, its first footer read, once.

    ``folder`` is a dataset folder (a path or URL) holding parquet parts.
    """

    def __init__(self, folder: Any):
        self.folder, self.files = folder, part_files(folder)
        if not self.files:
            raise fail("rdm_df", "an RDM frame or a dataset folder holding parquet parts", folder)
        filesystem, (first,) = arrow(self.files[0])
        self.schema = pq.read_schema(first, filesystem=filesystem)
        self.pushable = _pushable_columns(self.schema)

    def skeleton(self) -> pd.DataFrame:
        """Every row of the dataset without its matrices (``matrix`` holds None)."""
        columns = [column for column in self.schema.names if column != "matrix"]
        frame = read_dataset(self.folder, columns=columns, files=self.files)
        frame.insert(0, "matrix", None)
        return frame

    def group_with_matrices(self, group: pd.DataFrame, grouping: dict,
                            entry_columns: dict) -> pd.DataFrame:
        """``group`` (rows of the skeleton) with its matrices read from the dataset.

        ``grouping`` maps the dataset's grouping columns to the group's values;
        ``entry_columns`` maps the dataset's entry columns to the group's names.
        """
        filters = [term for column, value in grouping.items()
                   if (term := _filter(column, value, self.pushable)) is not None]
        read = read_dataset(self.folder, filters=filters or None, files=self.files)
        mask = [all(_same(row[column], value) for column, value in grouping.items())
                for row in read[list(grouping)].to_dict("records")]
        matched = read[mask]
        listed = [tuple(row) for row in group[list(entry_columns.values())].itertuples(
            index=False)]
        found = [tuple(row) for row in matched[list(entry_columns)].itertuples(index=False)]
        if found != listed:
            raise problem(
                f"the dataset {os.fspath(self.folder)!r} changed while it was read: the group "
                f"{grouping} holds the entries {found[:5]} where {listed[:5]} were listed."
            )
        return group.assign(matrix=matched["matrix"].to_numpy())


def _pushable_columns(schema: Any) -> dict:
    """``{column: Python type or codec}`` of the columns whose stored values are the plain values.

    ``schema`` is the pyarrow schema of the dataset's first part.
    """
    blob = (schema.metadata or {}).get(METADATA_KEY)
    if blob is None:
        return {}
    pushable = {}
    for column in json.loads(blob)["columns"]:
        kind = column.get("spec", {}).get("kind") if column["codec"] == "arrow" else None
        if kind in _PLAIN:
            pushable[column["field"]] = _PLAIN[kind]
        elif column["codec"] in ("pandas", "str_int"):
            pushable[column["field"]] = column["codec"]
    return pushable


def _filter(column: str, value: Any, pushable: dict) -> tuple | None:
    """The pushed-down filter selecting ``value`` in ``column``, where the stored values allow."""
    stored = pushable.get(column)
    value = value.item() if isinstance(value, np.generic) else value
    if type(value) not in (str, int, float, bool) or (
            isinstance(value, float) and math.isnan(value)):
        return None
    if stored == "str_int" and type(value) in (str, int):  # ints are stored as their text
        return (column, "==", str(value))
    if stored == "pandas" or stored is type(value):
        return (column, "==", value)
    return None


def _same(value: Any, wanted: Any) -> bool:
    missing = pd.api.types.is_scalar(value) and pd.isna(value)
    wanted_missing = pd.api.types.is_scalar(wanted) and pd.isna(wanted)
    return missing and wanted_missing or (not missing and not wanted_missing and value == wanted)


class MetaOutput:
    """Where the meta-RDM rows go: kept for one frame, or one part per group in a dataset."""

    def __init__(self, out_fname: Any, collect: bool, source: Any = None):
        self.out_fname, self.collect, self.rows, self.count = out_fname, collect, [], 0
        dataset = out_fname is not None and is_dataset_path(out_fname)
        self.folder = locate(out_fname) if dataset else None
        if self.folder is None:
            if out_fname is not None:
                frame_format(out_fname)
            return
        if source is not None and same_place(self.folder, source):
            raise fail("out_fname", "another folder than the dataset read (rdm_df)", out_fname)

    def start(self) -> None:
        """Remove the parts an earlier call left in the output dataset."""
        for path in part_files(self.folder) if self.folder is not None else []:
            remove(path)

    def add(self, rows: list[dict]) -> None:
        if self.folder is None:
            self.rows += rows
        elif rows:
            path = join(self.folder, f"part-{self.count:09d}.parquet")
            save_frame(pd.DataFrame(rows).sort_index(axis=1), path)
            self.count += 1

    def close(self) -> pd.DataFrame | None:
        """The meta frame (saved to a file if asked), or the dataset read back if collected."""
        if self.folder is None:
            meta_df = pd.DataFrame(self.rows).sort_index(axis=1)
            if self.out_fname is not None:
                save_frame(meta_df, self.out_fname)
            return meta_df
        if not self.collect:
            return None
        return read_dataset(self.folder) if self.count else pd.DataFrame()
