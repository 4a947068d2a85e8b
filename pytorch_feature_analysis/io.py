"""Reading and writing frames: parquet (the default), pickle and csv.

The format follows the file name: ``.parquet``/``.pq`` (parquet),
``.p``/``.pkl``/``.pickle`` (pickle) or ``.csv``. Every write is atomic: the
frame goes to a temporary file in the target folder, is flushed to disk and
then renamed over the target, so an interrupted write never leaves a
half-written file behind. The index is not stored: frames are written with a
fresh ``RangeIndex`` in mind, so call ``reset_index()`` first when the index
carries information.

Parquet layout
--------------
A parquet file written here reads back equal to the frame that was saved,
Python types included, and stays readable by pyarrow, DuckDB or polars
without this library. Each column is stored with one of four codecs, recorded
per column in the JSON blob under the schema metadata key
``b'pytorch_feature_analysis'``:

``pandas``
    Columns with a non-object dtype (int, float, bool, str, category,
    datetime, ...) are converted by pyarrow, and pyarrow's own ``b'pandas'``
    metadata restores their dtype.
``arrow``
    Object columns whose values share one structure are stored as native
    Arrow types, described by a small type ``spec``: numpy arrays as nested
    lists (an n x n float64 matrix is ``list<list<double>>``), homogeneous
    tuples and lists as ``list<...>`` (``entry_keys`` is
    ``list<list<string>>``), tuples mixing types per position as
    ``struct<field_0, field_1, ...>`` (``layer_label`` is
    ``struct<field_0: string, field_1: int64>``), dicts with the same keys as
    ``struct<key, ...>`` and other str-keyed dicts as ``map<string, ...>``.
    The spec says which lists were tuples, which structs were tuples and
    which numpy scalar types were used, so the exact values come back.
    Missing values are nulls; ``missing: "nan"`` says they were NaN.
``str_int``
    Object columns mixing str and int (``perm``: ``'orig_data'`` and
    permutation numbers) are stored as strings; on reading, strings of
    decimal digits are ints (no original str value looks like one).
``json``
    Any other object column (types mixed inside, ints beyond int64, ...) is
    stored as one JSON text per row. Tuples are ``{"__tuple__": [...]}``,
    non-finite floats ``{"__float__": "nan"}``, numpy arrays
    ``{"__ndarray__": [...], "dtype": ..., "shape": [...]}``, numpy scalars
    ``{"__numpy__": dtype, "value": ...}`` and dicts with non-str keys (or
    keys starting with ``__``) ``{"__dict__": [[key, value], ...]}`` (``"__ordereddict__"`` for an
    ``OrderedDict``).

A numpy array whose shape cannot be told from its nested lists (an empty
dimension followed by a non-empty one) is stored with the ``json`` codec.

RDM frames hold arrays, tuples and dicts: keep them in parquet (or pickle).
CSV is for flat frames only, and saving a frame with such values to csv is an
error.
"""

import functools
import json
import math
import os
import re
import uuid
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

__all__ = [
    "frame_format",
    "save_frame",
    "load_frame",
    "combine_frames",
    "combine_csvs",
]

METADATA_KEY = b"pytorch_feature_analysis"
_FORMAT_VERSION = 1
_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".p": "pickle",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".csv": "csv",
}
_ACCEPTED = ", ".join(_FORMATS)


def frame_format(path):
    """Name the file format that a frame path's extension selects.

    Parameters
    ----------
    path : str or os.PathLike
        File name ending in ``.parquet``/``.pq``, ``.p``/``.pkl``/``.pickle``
        or ``.csv`` (case-insensitive).

    Returns
    -------
    str
        ``'parquet'``, ``'pickle'`` or ``'csv'``.

    Raises
    ------
    ValueError
        If the extension is none of these.

    Examples
    --------
    >>> frame_format('analysis/rdms.parquet')
    'parquet'
    >>> frame_format('demo_rdm.p')
    'pickle'
    """
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in _FORMATS:
        raise ValueError(
            f"The frame path must end in one of {_ACCEPTED}; "
            f"got {os.fspath(path)!r} instead."
        )
    return _FORMATS[suffix]


def save_frame(df, path):
    """Write a frame atomically, in the format its file name selects.

    The frame is written to a temporary file in the target folder, flushed to
    disk and renamed over ``path``; parent folders are created. The index is
    not stored. See the module documentation for the parquet layout.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to save (not modified).
    path : str or os.PathLike
        Target file; its extension picks the format (see :func:`frame_format`).

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        For an unknown extension, duplicate column names, or a csv target for
        a frame holding arrays, tuples, lists or dicts.
    TypeError
        For a parquet target and a value that is no plain Python value, numpy
        array or numpy scalar (use pickle for those).

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> df = pd.DataFrame({'layer_label': [('conv1', 1)],
    ...                    'matrix': [np.array([[0.0, 0.5], [0.5, 0.0]])]})
    >>> folder = tempfile.mkdtemp()
    >>> path = save_frame(df, f'{folder}/rdms.parquet')
    >>> load_frame(path)['layer_label'][0]
    ('conv1', 1)
    """
    if not isinstance(df, pd.DataFrame):
        raise TypeError(
            "The 'df' parameter of save_frame must be a pandas DataFrame; "
            f"got {type(df).__name__} instead."
        )
    path = Path(os.fspath(path))
    kind = frame_format(path)
    if kind == "parquet":
        table = _frame_to_table(df)
        _atomic_write(path, lambda target: pq.write_table(table, target))
    elif kind == "pickle":
        frame = df.reset_index(drop=True)
        _atomic_write(path, lambda target: frame.to_pickle(target, compression=None))
    else:
        _check_flat(df)
        _atomic_write(path, lambda target: df.to_csv(target, index=False))
    return path


def load_frame(path):
    """Read a frame written by :func:`save_frame` (or any parquet, pickle, csv).

    Parameters
    ----------
    path : str or os.PathLike
        File to read; its extension picks the format.

    Returns
    -------
    pandas.DataFrame
        The stored frame with a fresh ``RangeIndex`` (parquet, csv) and, for
        parquet files written by this library, the original Python types.

    Raises
    ------
    FileNotFoundError
        If there is no file at ``path``.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> df = pd.DataFrame({'perm': ['orig_data', 1, 2]})
    >>> load_frame(save_frame(df, f'{folder}/perms.parquet'))['perm'].tolist()
    ['orig_data', 1, 2]
    """
    path = Path(os.fspath(path))
    kind = frame_format(path)
    if not path.is_file():
        raise FileNotFoundError(f"There is no frame file at {os.fspath(path)!r}.")
    if kind == "parquet":
        return _table_to_frame(pq.read_table(path))
    if kind == "csv":
        return pd.read_csv(path)
    frame = pd.read_pickle(path, compression=None)
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(
            f"The pickle file {os.fspath(path)!r} must hold a pandas DataFrame; "
            f"got {type(frame).__name__} instead."
        )
    return frame


def combine_frames(paths, keys=()):
    """Load several frame files and stack them into one frame.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        A folder (every ``.parquet``, ``.pq``, ``.p``, ``.pkl``, ``.pickle``
        and ``.csv`` file inside, in sorted order) or a list of file paths.
    keys : str or sequence of str, default ()
        If given, only files whose name contains at least one of these
        substrings are used.

    Returns
    -------
    pandas.DataFrame
        The files' frames concatenated in order, with a fresh ``RangeIndex``;
        columns missing from some files are filled with NaN.

    Raises
    ------
    FileNotFoundError
        If the folder or a listed file does not exist.
    ValueError
        If no file matches, or a listed file has an unknown extension.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_frame(pd.DataFrame({'obj': ['cat']}), f'{folder}/cat_rdms.parquet')
    >>> _ = save_frame(pd.DataFrame({'obj': ['dog']}), f'{folder}/dog_rdms.p')
    >>> combine_frames(folder)['obj'].tolist()
    ['cat', 'dog']
    >>> combine_frames(folder, keys=['dog'])['obj'].tolist()
    ['dog']
    """
    if isinstance(paths, (str, os.PathLike)):
        folder = Path(os.fspath(paths))
        if not folder.is_dir():
            raise FileNotFoundError(
                f"The 'paths' parameter of combine_frames must be an existing folder "
                f"or a list of files; got {os.fspath(paths)!r} instead."
            )
        files = sorted(
            p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in _FORMATS
        )
        source = f"folder {os.fspath(folder)!r}"
    else:
        files = [Path(os.fspath(p)) for p in paths]
        for file in files:
            frame_format(file)
        source = f"{len(files)} listed file(s)"
    keys = [keys] if isinstance(keys, str) else list(keys)
    if keys:
        files = [f for f in files if any(key in f.name for key in keys)]
    if not files:
        with_keys = f" with a name containing one of {keys}" if keys else ""
        raise ValueError(
            f"combine_frames found no frame file ({_ACCEPTED}){with_keys} "
            f"in the {source}."
        )
    return pd.concat([load_frame(f) for f in files], ignore_index=True)


combine_csvs = combine_frames


def _atomic_write(path, write):
    """Call ``write(temporary_path)``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    if hasattr(os, "O_DIRECTORY"):
        folder = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(folder)
        finally:
            os.close(folder)


def _check_flat(df):
    """Refuse csv for frames whose object columns hold containers or arrays."""
    containers = (tuple, list, dict, set, np.ndarray)
    nested = [
        name
        for name, column in df.items()
        if column.dtype == object and any(isinstance(v, containers) for v in column)
    ]
    if nested:
        raise ValueError(
            "A frame saved as csv must hold only flat values; got column(s) "
            f"{nested} holding arrays, tuples, lists or dicts instead. Save it as "
            ".parquet (or pickle) to keep them."
        )


# --------------------------------------------------------------------------
# Parquet: frame <-> Arrow table
# --------------------------------------------------------------------------


def _frame_to_table(df):
    names = list(df.columns)
    fields = [str(name) for name in names]
    duplicated = sorted({f for f in fields if fields.count(f) > 1})
    if duplicated:
        raise ValueError(
            "A frame saved as parquet must have unique column names; got "
            f"{duplicated} more than once instead."
        )
    df = df.reset_index(drop=True)
    native = [i for i, name in enumerate(names) if df[name].dtype != object]
    native_frame = df.iloc[:, native].set_axis([fields[i] for i in native], axis=1)
    native_table = pa.Table.from_pandas(native_frame, preserve_index=False)

    arrays, columns = [], []
    for i, name in enumerate(names):
        if i in native:
            arrays.append(native_table.column(fields[i]))
            columns.append({"name": _json_value(name), "field": fields[i], "codec": "pandas"})
        else:
            array, column = _encode_object_column(df[name].tolist())
            arrays.append(array)
            columns.append({"name": _json_value(name), "field": fields[i], **column})
    metadata = dict(native_table.schema.metadata or {})
    metadata[METADATA_KEY] = json.dumps(
        {"format_version": _FORMAT_VERSION, "index": "not stored", "columns": columns}
    ).encode()
    return pa.table(arrays, names=fields).replace_schema_metadata(metadata)


def _table_to_frame(table):
    metadata = table.schema.metadata or {}
    if METADATA_KEY not in metadata:
        return table.to_pandas()
    description = json.loads(metadata[METADATA_KEY], object_hook=_json_hook)
    columns = description["columns"]
    native_fields = [c["field"] for c in columns if c["codec"] == "pandas"]
    native = table.select(native_fields).to_pandas()
    data = {}
    for column in columns:
        field = column["field"]
        if column["codec"] == "pandas":
            data[field] = native[field]
        else:
            values = _decode_object_column(table.column(field), column)
            data[field] = pd.Series(_object_array(values), dtype=object)
    frame = pd.DataFrame(data, index=pd.RangeIndex(table.num_rows))
    names = [column["name"] for column in columns]
    if names != list(frame.columns):
        frame.columns = pd.Index(names, dtype=object, tupleize_cols=False)
    return frame


def _object_array(values):
    array = np.empty(len(values), dtype=object)
    for i, value in enumerate(values):
        array[i] = value
    return array


def _encode_object_column(values):
    """Return the Arrow array and the metadata entry for one object column."""
    try:
        stored, missing = _split_missing(values)
        spec = _column_spec(stored)
        if spec["kind"] == "array" and spec["ndim"] > 0:
            array = _arrays_to_arrow(stored, spec)
        elif _holds_multidimensional_arrays(spec):
            array = pa.array(
                [_to_arrow_value(v, spec) for v in stored], type=_arrow_type(spec)
            )
        else:  # pyarrow converts tuples, dicts and numpy scalars itself
            array = pa.array(stored, type=_arrow_type(spec))
        return array, {"codec": "arrow", "spec": spec, "missing": missing}
    except (_Unrepresentable, pa.ArrowException, OverflowError):
        pass
    try:
        return _str_int_array(values), {
            "codec": "str_int",
            "note": "strings of decimal digits are ints",
        }
    except _Unrepresentable:
        pass
    return pa.array([_json_text(v) for v in values], type=pa.string()), {
        "codec": "json",
        "note": "one JSON text per row; see the tags in the module documentation",
    }


def _decode_object_column(column, description):
    codec = description["codec"]
    if codec == "json":
        return [json.loads(text, object_hook=_json_hook) for text in column.to_pylist()]
    if codec == "str_int":
        return [
            None if v is None else int(v) if _INT_TEXT.fullmatch(v) else v
            for v in column.to_pylist()
        ]
    spec = description["spec"]
    if spec["kind"] == "array" and spec["ndim"] > 0:
        values = _arrow_to_arrays(column, spec)
    else:
        values = [_from_arrow_value(v, spec) for v in column.to_pylist()]
    if description["missing"] == "nan":
        values = [math.nan if v is None else v for v in values]
    return values


def _split_missing(values):
    """Turn NaN used as a missing marker (in a non-float column) into None."""
    is_nan = [type(v) is float and math.isnan(v) for v in values]
    if not any(is_nan):
        return values, "none"
    others = [v for v, nan in zip(values, is_nan) if not nan and v is not None]
    if all(type(v) is float for v in others):
        return values, "none"
    if any(v is None for v in values):
        raise _Unrepresentable("both None and NaN mark missing values")
    return [None if nan else v for v, nan in zip(values, is_nan)], "nan"


# --------------------------------------------------------------------------
# Arrow codec: a spec per column describes the Python structure of its values
# --------------------------------------------------------------------------


class _Unrepresentable(Exception):
    """The values have no exact Arrow-native encoding."""


_NULL = {"kind": "null"}
_SCALAR_SPECS = {t: {"kind": t.__name__} for t in (str, int, float, bool)}
_SCALAR_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "bool": pa.bool_()}
_NUMERIC_DTYPES = {
    "bool", "int8", "int16", "int32", "int64",
    "uint8", "uint16", "uint32", "uint64", "float32", "float64",
}  # fmt: skip
_CONTAINERS = {"tuple": tuple, "list": list}
_PLAIN_KINDS = {"null", "str", "int", "float", "bool"}  # pyarrow returns these as they were


def _column_spec(values):
    """Unify the specs of a column's values, once per distinct object."""
    spec, seen = _NULL, set()
    for value in values:
        if id(value) not in seen:
            seen.add(id(value))
            spec = _unify(spec, _value_spec(value))
    return spec


def _value_spec(value):
    kind = type(value)
    if value is None:
        return _NULL
    if kind in _SCALAR_SPECS:
        return _SCALAR_SPECS[kind]
    if isinstance(value, np.generic) and value.dtype.name in _NUMERIC_DTYPES:
        return {"kind": "numpy", "dtype": value.dtype.name}
    if kind is np.ndarray and value.dtype.name in _NUMERIC_DTYPES:
        shape = value.shape
        if 0 in shape and any(shape[shape.index(0) :]):
            raise _Unrepresentable("array shape not recoverable from nested lists")
        return {"kind": "array", "dtype": value.dtype.name, "ndim": value.ndim}
    if kind in (tuple, list):
        container = "tuple" if kind is tuple else "list"
        item_kinds = set(map(type, value))
        if len(item_kinds) == 1 and item_kinds <= _SCALAR_SPECS.keys():
            item = _SCALAR_SPECS[item_kinds.pop()]
            return {"kind": "seq", "type": container, "item": item, "length": len(value)}
        items = [_value_spec(v) for v in value]
        try:
            item = functools.reduce(_unify, items, _NULL)
        except _Unrepresentable:
            return {"kind": "hseq", "type": container, "items": items}
        return {"kind": "seq", "type": container, "item": item, "length": len(value)}
    if kind is dict and all(type(key) is str for key in value):
        if not value:
            return {"kind": "map", "value": _NULL}
        return {
            "kind": "record",
            "keys": list(value),
            "values": [_value_spec(v) for v in value.values()],
        }
    raise _Unrepresentable(f"no Arrow-native form for {kind.__name__}")


def _unify(a, b):
    """The spec describing values of both specs, or _Unrepresentable."""
    if a["kind"] == "null":
        return b
    if b["kind"] == "null" or a == b:
        return a
    kinds = {a["kind"], b["kind"]}
    if kinds <= {"seq", "hseq"} and a["type"] == b["type"]:
        return _unify_sequences(a, b)
    if kinds == {"record"} and a["keys"] == b["keys"]:
        return {**a, "values": [_unify(x, y) for x, y in zip(a["values"], b["values"])]}
    if kinds <= {"record", "map"}:
        value_specs = _dict_value_specs(a) + _dict_value_specs(b)
        return {"kind": "map", "value": functools.reduce(_unify, value_specs, _NULL)}
    raise _Unrepresentable("values of different kinds")


def _unify_sequences(a, b):
    if a["kind"] == b["kind"] == "seq":
        length = a["length"] if a["length"] == b["length"] else None
        return {**a, "item": _unify(a["item"], b["item"]), "length": length}
    if a["kind"] == "seq":
        a, b = b, a
    if b["kind"] == "hseq":
        others = b["items"]
    elif b["length"] is not None:
        others = [b["item"]] * b["length"]
    else:
        others = []
    if len(others) != len(a["items"]):
        raise _Unrepresentable("tuples of different lengths")
    return {**a, "items": [_unify(x, y) for x, y in zip(a["items"], others)]}


def _holds_multidimensional_arrays(spec):
    if spec["kind"] == "array":
        return spec["ndim"] != 1
    nested = [spec.get("item"), spec.get("value"), *spec.get("items", ()), *spec.get("values", ())]
    return any(_holds_multidimensional_arrays(s) for s in nested if s is not None)


def _dict_value_specs(spec):
    return spec["values"] if spec["kind"] == "record" else [spec["value"]]


def _arrow_type(spec):
    kind = spec["kind"]
    if kind == "null":
        return pa.null()
    if kind in _SCALAR_TYPES:
        return _SCALAR_TYPES[kind]
    if kind == "numpy":
        return pa.from_numpy_dtype(np.dtype(spec["dtype"]))
    if kind == "array":
        arrow_type = pa.from_numpy_dtype(np.dtype(spec["dtype"]))
        for _ in range(spec["ndim"]):
            arrow_type = pa.list_(arrow_type)
        return arrow_type
    if kind == "seq":
        return pa.list_(_arrow_type(spec["item"]))
    if kind == "hseq":
        return pa.struct(
            [(f"field_{i}", _arrow_type(item)) for i, item in enumerate(spec["items"])]
        )
    if kind == "record":
        return pa.struct(list(zip(spec["keys"], map(_arrow_type, spec["values"]))))
    return pa.map_(pa.string(), _arrow_type(spec["value"]))


def _to_arrow_value(value, spec):
    kind = spec["kind"]
    if value is None:
        return None
    if kind == "numpy":
        return value.item()
    if kind == "array":
        return value.tolist()
    if kind == "seq":
        return [_to_arrow_value(v, spec["item"]) for v in value]
    if kind == "hseq":
        return {
            f"field_{i}": _to_arrow_value(v, item)
            for i, (v, item) in enumerate(zip(value, spec["items"]))
        }
    if kind == "record":
        return {
            key: _to_arrow_value(value[key], item)
            for key, item in zip(spec["keys"], spec["values"])
        }
    if kind == "map":
        return [(key, _to_arrow_value(v, spec["value"])) for key, v in value.items()]
    return value


def _from_arrow_value(value, spec):
    kind = spec["kind"]
    if value is None:
        return None
    if kind == "numpy":
        return np.dtype(spec["dtype"]).type(value)
    if kind == "array":
        array = np.array(value, dtype=spec["dtype"])
        return array.reshape(array.shape + (0,) * (spec["ndim"] - array.ndim))
    if kind == "seq":
        if spec["item"]["kind"] in _PLAIN_KINDS:
            return _CONTAINERS[spec["type"]](value)
        return _CONTAINERS[spec["type"]](_from_arrow_value(v, spec["item"]) for v in value)
    if kind == "hseq":
        return _CONTAINERS[spec["type"]](
            _from_arrow_value(value[f"field_{i}"], item)
            for i, item in enumerate(spec["items"])
        )
    if kind == "record":
        if all(item["kind"] in _PLAIN_KINDS for item in spec["values"]):
            return value  # pyarrow builds the dict in the struct's (the original) key order
        return {
            key: _from_arrow_value(value[key], item)
            for key, item in zip(spec["keys"], spec["values"])
        }
    if kind == "map":
        return {key: _from_arrow_value(v, spec["value"]) for key, v in value}
    return value


def _offsets(lengths):
    ends = np.cumsum(np.asarray(lengths, dtype=np.int64))
    if ends.size and ends[-1] > np.iinfo(np.int32).max:
        raise OverflowError("more than 2**31 - 1 array elements in one column")
    return pa.array(np.concatenate([[0], ends]).astype(np.int32))


def _arrays_to_arrow(values, spec):
    """Nested Arrow lists for a column of numpy arrays (or None), without copies per row."""
    dtype = np.dtype(spec["dtype"])
    present = [v for v in values if v is not None]
    flat = np.concatenate([v.ravel() for v in present]) if present else np.empty(0, dtype)
    array = pa.array(flat.astype(dtype, copy=False), type=pa.from_numpy_dtype(dtype))
    for level in range(spec["ndim"] - 1, 0, -1):
        lengths = [np.full(math.prod(v.shape[:level]), v.shape[level]) for v in present]
        array = pa.ListArray.from_arrays(
            _offsets(np.concatenate(lengths) if lengths else []), array
        )
    mask = np.array([v is None for v in values], dtype=bool)
    return pa.ListArray.from_arrays(
        _offsets([0 if v is None else v.shape[0] for v in values]),
        array,
        mask=pa.array(mask) if mask.any() else None,
    )


def _arrow_to_arrays(column, spec):
    """Numpy arrays (or None) back from a column of nested Arrow lists."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    is_null = array.is_null().to_numpy(zero_copy_only=False)
    offsets = array.offsets.to_numpy().astype(np.int64)
    start, stop = offsets[:-1], offsets[1:]
    shape = [stop - start]
    level = array.values
    for _ in range(1, spec["ndim"]):
        inner = level.offsets.to_numpy().astype(np.int64)
        last = len(inner) - 1
        first_length = inner[np.minimum(start + 1, last)] - inner[np.minimum(start, last)]
        shape.append(np.where(stop > start, first_length, 0))
        start, stop = inner[start], inner[stop]
        level = level.values
    flat = np.array(level.to_numpy(zero_copy_only=False), dtype=spec["dtype"], copy=True)
    return [
        None if is_null[i] else flat[start[i] : stop[i]].reshape([int(s[i]) for s in shape])
        for i in range(len(array))
    ]


# --------------------------------------------------------------------------
# Mixed str/int columns and the JSON fallback
# --------------------------------------------------------------------------

_INT_TEXT = re.compile(r"-?[0-9]+")


def _str_int_array(values):
    kinds = {type(v) for v in values if v is not None}
    if kinds != {str, int} or any(type(v) is str and _INT_TEXT.fullmatch(v) for v in values):
        raise _Unrepresentable("not a column of str and int")
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


def _json_text(value):
    return json.dumps(_json_value(value), allow_nan=False, separators=(",", ":"))


def _json_value(value):
    """A JSON-ready form of ``value`` that :func:`_json_hook` turns back into it."""
    kind = type(value)
    if value is None or kind in (str, bool, int):
        return value
    if kind is float:
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if kind is list:
        return [_json_value(v) for v in value]
    if kind is tuple:
        return {"__tuple__": [_json_value(v) for v in value]}
    if kind is dict and all(type(key) is str and not key.startswith("__") for key in value):
        return {key: _json_value(v) for key, v in value.items()}
    if kind in (dict, OrderedDict):
        tag = "__dict__" if kind is dict else "__ordereddict__"
        return {tag: [[_json_value(k), _json_value(v)] for k, v in value.items()]}
    if kind is np.ndarray and value.dtype.kind in "biufUO":
        return {
            "__ndarray__": [_json_value(v) for v in value.ravel().tolist()],
            "dtype": value.dtype.str,
            "shape": list(value.shape),
        }
    if isinstance(value, np.generic) and value.dtype.kind in "biufU":
        return {"__numpy__": value.dtype.str, "value": _json_value(value.item())}
    raise TypeError(
        f"A frame saved as parquet must hold values of plain Python, numpy array or "
        f"numpy scalar types; got {value!r} of type {kind.__name__} instead. "
        "Save it as pickle (.p, .pkl or .pickle) to keep it."
    )


def _json_hook(obj):
    if "__tuple__" in obj:
        return tuple(obj["__tuple__"])
    if "__float__" in obj:
        return float(obj["__float__"])
    if "__dict__" in obj:
        return {key: value for key, value in obj["__dict__"]}
    if "__ordereddict__" in obj:
        return OrderedDict((key, value) for key, value in obj["__ordereddict__"])
    if "__numpy__" in obj:
        return np.dtype(obj["__numpy__"]).type(obj["value"])
    if "__ndarray__" in obj:
        items = obj["__ndarray__"]
        array = np.empty(len(items), dtype=obj["dtype"])
        for i, item in enumerate(items):
            array[i] = item
        return array.reshape(obj["shape"])
    return obj
