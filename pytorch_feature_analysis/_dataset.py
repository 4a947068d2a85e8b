"""Datasets of parquet parts: one folder standing for one frame (private: :mod:`.io` is the API).

A dataset is a folder of parquet files ("parts"), each written by
:func:`~pytorch_feature_analysis.save_frame` and so readable alone, with its
types restored. Parts may sit in hive-style subfolders ``key=value`` (values
percent-encoded, e.g. ``model=alexnet/part-....parquet``); the key is also a
column of every part. Files and folders whose name starts with ``.`` or
``_`` (temporary files of atomic writes, lock files) are not parts. pyarrow
(``pyarrow.dataset.dataset(folder)``), DuckDB
(``read_parquet('folder/**/*.parquet')``) and ``dask.dataframe`` read the
same folder without this library. The folder may also be a URL of any
file system fsspec knows (an object store such as ``s3://bucket/study/``):
see :mod:`._location`.

Reading goes part by part: each part is decoded with its own metadata, so
parts may store a column with different codecs (a ``perm`` column of
``'orig_data'`` only in one, with permutation numbers in another), and
filters and column selections are pushed down to pyarrow (row groups and
parts that cannot match are not read).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from ._arrow_codec import StoredFormatError, table_to_frame
from ._location import arrow, is_dir, is_file, join, locate, parquet_files
from ._validation import InvalidInputError, caller, fail

__all__ = ["is_dataset_path", "part_files", "part_path", "read_dataset"]

_HIVE_KEYS = ("model",)


def is_dataset_path(path: Any) -> bool:
    """Whether ``path`` names a dataset folder: it ends in a separator or is a folder."""
    text = os.fspath(path)
    return text.endswith(("/", os.sep)) or is_dir(path)


def part_files(folder: Any) -> list:
    """The location of every part of the dataset, in sorted order (none for a missing folder)."""
    return parquet_files(folder)


def part_path(folder: Any, partition: dict, name: str) -> Any:
    """``folder/key=value/.../name``, values percent-encoded."""
    folders = [f"{key}={quote(str(value), safe='')}" for key, value in partition.items()]
    return join(folder, *folders, name)


def _expression(filters: Any, available: list[str]) -> Any:
    """A pyarrow expression from DNF ``filters``, or None; unknown columns are named."""
    if filters is None:
        return None
    expected = ("None, or a list of (column, op, value) tuples (all must hold) or a list of "
                "such lists (any may hold), as pyarrow's filters")
    if not isinstance(filters, list) or not filters:
        raise fail("filters", expected, filters)
    conjunctions = filters if isinstance(filters[0], list) else [filters]
    for conjunction in conjunctions:
        if not isinstance(conjunction, list) or not all(
            isinstance(term, tuple) and len(term) == 3 for term in conjunction
        ):
            raise fail("filters", expected, filters)
    unknown = sorted({term[0] for c in conjunctions for term in c} - set(available))
    if unknown:
        raise fail("filters", f"filters on columns of the frame ({available})", unknown)
    try:
        return pq.filters_to_expression(filters)
    except (TypeError, ValueError, pa.ArrowException) as error:
        raise fail("filters", expected, filters) from error


def _dataset_of(paths: list[str], base: str, schema: pa.Schema, filesystem: Any) -> ds.Dataset:
    """The parts as one pyarrow dataset with the first part's ``schema`` (no schema merging).

    Hive keys that are columns of the parts become partition fields, so
    filters on them skip whole subfolders.
    """
    keys = [schema.field(key) for key in _HIVE_KEYS if key in schema.names]
    partitioning = ds.partitioning(pa.schema(keys), flavor="hive") if keys else None
    return ds.dataset(paths, schema=schema, format="parquet", filesystem=filesystem,
                      partitioning=partitioning, partition_base_dir=base)


def read_dataset(folder: Any, filters: Any = None, columns: Any = None,
                 files: list | None = None) -> pd.DataFrame:
    """The frame held by the parts of ``folder``: the rows ``filters`` keep, ``columns`` only.

    ``files`` are the parts when the caller has listed them already.
    """
    folder = locate(folder)
    single = files is None and is_file(folder)
    if files is None:
        files = [folder] if single else part_files(folder)
    if not files:
        raise InvalidInputError(
            f"The folder {os.fspath(folder)!r} given to {caller()} holds no parquet part "
            "(a dataset folder holds .parquet files, possibly in key=value subfolders)."
        )
    filesystem, paths = arrow(folder, *files)
    base, paths = os.fspath(Path(paths[0]).parent) if single else paths[0], paths[1:]
    located = dict(zip(paths, files))
    first_schema = pq.read_schema(paths[0], filesystem=filesystem)
    first = list(first_schema.names)
    expression = _expression(filters, first)
    columns = _checked_columns(columns, first)
    options = ds.ParquetFragmentScanOptions(page_checksum_verification=True)
    frames, attrs = [], {}
    dataset = _dataset_of(paths, base, first_schema, filesystem)
    for fragment in dataset.get_fragments(filter=expression):
        path = located.get(fragment.path, fragment.path)
        schema = fragment.physical_schema
        _check_same_columns(path, schema.names, files[0], first)
        try:
            table = fragment.to_table(schema=schema, filter=expression, columns=columns,
                                      fragment_scan_options=options)
            frame = table_to_frame(table, schema.metadata)
        except (pa.ArrowException, OSError, StoredFormatError) as error:
            where = "" if single else f" of the dataset {os.fspath(folder)!r}"
            raise InvalidInputError(
                f"The part {os.fspath(path)!r}{where} given to {caller()} cannot be read "
                f"({type(error).__name__}: {error}); delete it to compute it again, or restore "
                "it from a copy."
            ) from error
        _merge_attrs(attrs, frame.attrs)
        if len(frame) or not frames:
            frames.append(frame)
    result = pd.concat([f for f in frames if len(f)] or frames[:1], ignore_index=True)
    if columns is not None:
        result = result[columns]
    result.attrs = attrs
    return result


def _checked_columns(columns: Any, available: list[str]) -> list[str] | None:
    if columns is None:
        return None
    if isinstance(columns, str) or not all(isinstance(c, str) for c in columns):
        raise fail("columns", "None or a list of column names", columns)
    unknown = [column for column in columns if column not in available]
    if unknown:
        raise fail("columns", f"columns of the dataset ({available})", unknown)
    return list(columns)


def _check_same_columns(path: Any, names: list, first_path: Any, first: list) -> None:
    if set(names) != set(first):
        extra = sorted(set(names) - set(first))
        lacking = sorted(set(first) - set(names))
        raise InvalidInputError(
            f"The part {os.fspath(path)!r} belongs to another study than "
            f"{os.fspath(first_path)!r}: it has the extra columns {extra} and lacks {lacking}. "
            "Keep the parts of one study per folder (move that part away)."
        )


def _merge_attrs(merged: dict, attrs: dict) -> None:
    """Merge the ``attrs`` of a part: dict values are merged, others kept from the first part."""
    for key, value in attrs.items():
        if isinstance(value, dict) and isinstance(merged.get(key, {}), dict):
            merged.setdefault(key, {}).update(value)
        else:
            merged.setdefault(key, value)
