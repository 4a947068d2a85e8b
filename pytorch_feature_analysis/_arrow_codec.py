"""The Arrow codec of parquet frame files (private: :mod:`.io` is the API).

A parquet file written by :func:`~pytorch_feature_analysis.save_frame` reads
back equal to the frame that was saved, Python types included, and stays
readable by pyarrow, DuckDB or polars without this library. This module turns
a frame into an Arrow table and back; :mod:`.io` writes and reads the file.

Parquet layout
--------------
Each column is stored with one of four codecs, recorded per column in the
JSON blob under the schema metadata key ``b'pytorch_feature_analysis'``
(with the blob's ``format_version``, the Arrow type of each stored column, the
frame's ``attrs`` (JSON values, e.g. the fingerprints of what made the rows) and,
under ``b'pytorch_feature_analysis.crc32'``, a CRC-32 of the blob and of
pyarrow's ``b'pandas'`` metadata, so a damaged footer is an error on reading):

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
``condensed_float32``
    A column of matrices saved with condensed storage: each symmetric n x n
    matrix as its upper triangle above the diagonal, in float32
    (``list<float>``, ``n (n - 1) / 2`` values); on reading, the full
    float64 matrix is rebuilt with a zero diagonal, and the frame's ``attrs``
    say so under :data:`STORAGE_KEY`. Files using it have format_version 2.
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
``None`` in an object column is an Arrow null and comes back as ``None``.

Examples
--------
>>> import numpy as np, pandas as pd
>>> frame = pd.DataFrame({'layer_label': [('conv1', 1)], 'perm': ['orig_data']})
>>> table = frame_to_table(frame)
>>> str(table.schema.field('layer_label').type)
'struct<field_0: string, field_1: int64>'
>>> table_to_frame(table)['layer_label'][0]
('conv1', 1)
"""

import functools
import json
import math
import re
import zlib
from collections import OrderedDict

import numpy as np
import pandas as pd
import pyarrow as pa

__all__ = [
    "METADATA_KEY",
    "CHECKSUM_KEY",
    "FORMAT_VERSION",
    "StoredFormatError",
    "STORAGE_KEY",
    "frame_to_table",
    "table_to_frame",
]

METADATA_KEY = b"pytorch_feature_analysis"
CHECKSUM_KEY = b"pytorch_feature_analysis.crc32"
FORMAT_VERSION = 2  # 2: the condensed_float32 codec (files without it are written as 1)
#: The ``attrs`` key that says which matrix columns were read from condensed float32 storage.
STORAGE_KEY = "pytorch_feature_analysis.matrix_storage"
CONDENSED = "condensed_float32"


class StoredFormatError(ValueError):
    """A stored table this library cannot decode (its caller names the file)."""


def frame_to_table(df, condensed=()):
    """The Arrow table that stores ``df`` (its index dropped), metadata included.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame (not modified); column names must be unique as strings.
    condensed : sequence of str, default ()
        Columns of symmetric square matrices with a zero diagonal to store as
        their upper triangle in float32 (codec ``condensed_float32``).

    Returns
    -------
    pyarrow.Table
        One column per frame column, named ``str(name)``, with the codec
        description and its checksum in the schema metadata.

    Raises
    ------
    ValueError
        If two column names are equal as strings, or a matrix of a
        ``condensed`` column is not square, symmetric and zero on its diagonal.
    TypeError
        If a value is no plain Python value, numpy array or numpy scalar.

    Examples
    --------
    >>> import pandas as pd
    >>> frame_to_table(pd.DataFrame({'perm': ['orig_data', 1]})).column('perm').to_pylist()
    ['orig_data', '1']
    """
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
    native_table = _small_strings(pa.Table.from_pandas(native_frame, preserve_index=False))

    arrays, columns = [], []
    condensed_used = any(name in condensed for name in names)
    for i, name in enumerate(names):
        if i in native:
            array, column = native_table.column(fields[i]), {"codec": "pandas"}
        elif name in condensed:
            array, column = _condensed_array(df[name].tolist(), name), {"codec": CONDENSED}
        else:
            array, column = _encode_object_column(df[name].tolist())
        arrays.append(array)
        columns.append(
            {"name": _json_value(name), "field": fields[i], "arrow_type": _type_text(array.type),
             **column}
        )
    blob = json.dumps(
        {
            "format_version": 2 if condensed_used else 1,
            "index": "not stored",
            "rows": len(df),
            "columns": columns,
            "attrs": {key: value for key, value in df.attrs.items() if key != STORAGE_KEY},
        }
    ).encode()
    metadata = dict(native_table.schema.metadata or {})
    metadata[METADATA_KEY] = blob
    metadata[CHECKSUM_KEY] = str(_metadata_checksum(metadata)).encode()
    return pa.table(arrays, names=fields).replace_schema_metadata(metadata)


def _small_strings(table):
    """Text columns as Arrow ``string`` where they fit (pandas 3 gives ``large_string``).

    Readers of hive-style datasets (pyarrow, Dask) type a folder's
    ``model=alexnet`` as ``string`` and refuse a ``large_string`` column of the
    same name; pyarrow's pandas metadata restores the dtype on reading.
    """
    fields = [field.with_type(pa.string()) if pa.types.is_large_string(field.type) else field
              for field in table.schema]
    try:
        return table.cast(pa.schema(fields, metadata=table.schema.metadata))
    except pa.ArrowException:  # more than 2 GiB of text in the column: kept large
        return table


def table_to_frame(table, metadata=None):
    """The frame stored in ``table`` (plain ``to_pandas()`` without this library's metadata).

    Parameters
    ----------
    table : pyarrow.Table
        A table read from a parquet file.
    metadata : dict, optional
        The schema metadata of the whole file, for a table holding some of
        its rows and columns (read with filters or a column selection); the
        stored columns missing from ``table`` are left out.

    Returns
    -------
    pandas.DataFrame
        The stored frame with a fresh ``RangeIndex``.

    Raises
    ------
    StoredFormatError
        If the metadata is damaged (a checksum does not match, the JSON does
        not parse, a described column is missing or has another type), was
        written by a newer format version, or a column does not decode.

    Examples
    --------
    >>> import pandas as pd
    >>> table_to_frame(frame_to_table(pd.DataFrame({'perm': ['orig_data', 1]})))['perm'].tolist()
    ['orig_data', 1]
    """
    selected = metadata is not None
    metadata = (metadata if selected else table.schema.metadata) or {}
    if METADATA_KEY not in metadata:
        if CHECKSUM_KEY in metadata:
            raise StoredFormatError("its metadata is missing beside its checksum")
        return table.to_pandas()
    try:
        columns = _stored_columns(table, metadata, selected)
        frame = _decode_table(table, columns)
        frame.attrs = json.loads(metadata[METADATA_KEY]).get("attrs", {})
        storage = {c["name"]: CONDENSED for c in columns if c["codec"] == CONDENSED}
        if storage:
            frame.attrs[STORAGE_KEY] = storage
        return frame
    except StoredFormatError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, OverflowError, pa.ArrowException) as error:
        raise StoredFormatError(
            f"its metadata or columns do not decode ({type(error).__name__}: {error})"
        ) from error


def _type_text(arrow_type):
    """The type as text, without the names parquet gives to list items and map entries."""
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type):
        return f"list<{_type_text(arrow_type.value_type)}>"
    if pa.types.is_map(arrow_type):
        return f"map<{_type_text(arrow_type.key_type)}, {_type_text(arrow_type.item_type)}>"
    if pa.types.is_struct(arrow_type):
        fields = (arrow_type.field(i) for i in range(arrow_type.num_fields))
        return f"struct<{', '.join(f'{f.name!r}: {_type_text(f.type)}' for f in fields)}>"
    return str(arrow_type)


def _metadata_checksum(metadata):
    return zlib.crc32(metadata.get(METADATA_KEY, b"") + b"\0" + metadata.get(b"pandas", b""))


def _stored_columns(table, metadata, selected=False):
    """The column descriptions of a table written here, checked against the table.

    With ``selected``, the table holds some of the rows and columns written:
    the descriptions of the columns it holds.
    """
    checksum = str(_metadata_checksum(metadata)).encode()
    if metadata.get(CHECKSUM_KEY, checksum) != checksum:
        raise StoredFormatError("the checksum of its metadata does not match")
    description = json.loads(metadata[METADATA_KEY], object_hook=_json_hook)
    version = description["format_version"]
    if type(version) is not int or version > FORMAT_VERSION:
        raise StoredFormatError(
            f"it was written with format_version {version!r} of the file layout and this "
            f"version of pytorch_feature_analysis reads format_version {FORMAT_VERSION} "
            "and older; upgrade pytorch_feature_analysis to read it"
        )
    columns = description["columns"]
    if selected:
        held = set(table.schema.names)
        columns = [column for column in columns if column["field"] in held]
    elif description.get("rows", table.num_rows) != table.num_rows:
        raise StoredFormatError(
            f"it holds {table.num_rows} rows where {description['rows']} were written"
        )
    stored = {field.name: _type_text(field.type) for field in table.schema}
    for column in columns:
        field, written = column["field"], column.get("arrow_type")
        if field not in stored or written not in (None, stored[field]):
            raise StoredFormatError(
                f"its column {field!r} is missing or not of the type it was written with "
                f"({written})"
            )
    return columns


def _decode_table(table, columns):
    native_fields = [c["field"] for c in columns if c["codec"] == "pandas"]
    native = table.select(native_fields).to_pandas()
    data = {}
    for column in columns:
        field = column["field"]
        if column["codec"] == "pandas":
            data[field] = native[field]
        elif column["codec"] == CONDENSED:
            data[field] = pd.Series(_object_array(_full_matrices(table.column(field))),
                                    dtype=object)
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


def _condensed_array(values, name):
    """``list<float>``: the float32 upper triangle (above the diagonal) of each matrix."""
    triangles = []
    for row, value in enumerate(values):
        matrix = np.asarray(value, dtype=np.float64) if value is not None else None
        if (matrix is None or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]
                or not np.array_equal(matrix, matrix.T, equal_nan=True)
                or np.any(np.diagonal(matrix) != 0)):
            raise ValueError(
                f"Condensed storage of column {name!r} needs symmetric square matrices with "
                f"a zero diagonal; got {_described(matrix)} in row {row} instead."
            )
        triangles.append(matrix[np.triu_indices(len(matrix), 1)].astype(np.float32))
    flat = np.concatenate(triangles) if triangles else np.empty(0, np.float32)
    return pa.ListArray.from_arrays(_offsets([len(t) for t in triangles]), pa.array(flat))


def _described(matrix):
    if matrix is None:
        return "None"
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        return f"an array of shape {matrix.shape}"
    return "an asymmetric matrix" if not np.array_equal(matrix, matrix.T, equal_nan=True) else (
        "a matrix with a non-zero diagonal")


def _full_matrices(column):
    """The n x n float64 matrices back from their float32 upper triangles."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    offsets = array.offsets.to_numpy().astype(np.int64)
    flat = array.values.to_numpy(zero_copy_only=False).astype(np.float64)
    matrices = []
    for start, stop in zip(offsets[:-1], offsets[1:]):
        n = int(round((1 + math.sqrt(1 + 8 * (stop - start))) / 2))
        matrix = np.zeros((n, n))
        rows, cols = np.triu_indices(n, 1)
        matrix[rows, cols] = matrix[cols, rows] = flat[start:stop]
        matrices.append(matrix)
    return matrices


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
