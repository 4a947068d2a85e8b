"""Reading and writing frames: parquet (the default), pickle and csv.

The format follows the file name: ``.parquet``/``.pq`` (parquet),
``.p``/``.pkl``/``.pickle`` (pickle) or ``.csv``. The index is not stored:
frames are written with a fresh ``RangeIndex`` in mind, so call
``reset_index()`` first when the index carries information.

Parquet is the default because a result should be safe to open and hard to
damage unnoticed: reading it runs no code, every page carries a CRC-32
checksum that is verified on reading (a flipped bit is an error naming the
file, never a different number), the library's metadata carries a checksum
and a format version (a file from a newer layout is refused), and the file
is readable by pyarrow, DuckDB or polars without this library. The column
layout is described in the private module
``pytorch_feature_analysis._arrow_codec`` (and on the documentation's page
"Trusting your results"). Reading a pickle can run any code
it holds, so :func:`load_frame` and :func:`combine_frames` read pickles only
with ``allow_pickle=True``.

Every write is atomic: the frame goes to a temporary file
``.<name>.<host>-<pid>.<random>.tmp`` in the target folder, is flushed to disk
and renamed over the target, so an interrupted write never leaves a
half-written file behind. The temporary files of a killed process are removed
by the next write to the same target. :func:`file_lock` lets concurrent
processes take turns at a read-merge-write of one file.

Paths may also be URLs of any file system `fsspec
<https://filesystem-spec.readthedocs.io>`_ knows -- an object store such as
``'s3://bucket/study/rdms.parquet'`` or ``'gcs://...'`` (with ``s3fs`` or
``gcsfs`` installed), ``'memory://...'``, or ``'file:///absolute/path'`` (a
local path) -- for files and datasets alike; fsspec comes with the ``dask``
extra (``pip install "pytorch_feature_analysis[dask]"``) and is needed only
for URLs. Credentials come from fsspec's configuration and the file
system's own (environment variables, config files). An object store has no
rename: a file there is written into memory and stored in one upload, which
the store shows whole or not at all, so a killed write leaves nothing under
its name either. :func:`file_lock` needs a local or shared file system.

RDM frames hold arrays, tuples and dicts: keep them in parquet (or pickle).
CSV is for flat frames only, and saving a frame with such values to csv is an
error.

A *dataset* is a folder of parquet parts standing for one frame (see
:func:`load_frame`): :func:`~pytorch_feature_analysis.get_rdms` writes one
part per image set x model into it as each is done, and
:func:`load_frame` reads all of it, or only the rows and columns asked for.

RDMs take less room with ``matrix_storage='condensed_float32'``: each
symmetric matrix is stored as its upper triangle above the diagonal, in
float32, and rebuilt on reading as the same ``n x n`` float64 matrix with a
zero diagonal (each value within float32 rounding, a relative error of at
most ``2**-24``). An RDM of ``n`` entries then takes ``2 n (n - 1)`` bytes
on disk: a 1,000-image RDM of correlation distances takes 2.0 MB instead of
6.4 MB (the whole float64 matrix, 8.0 MB before parquet's dictionary
encoding of its repeated values), a third.
"""

import contextlib
import os
import re
import socket
import time
import uuid
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ._arrow_codec import (
    CONDENSED,
    METADATA_KEY,
    StoredFormatError,
    frame_to_table,
    table_to_frame,
)
from ._dataset import part_files, read_dataset
from ._location import arrow, files_in, is_dir, is_file, is_url, locate, open_input, put_whole
from ._validation import (
    InvalidInputError,
    accepts_original_names,
    caller,
    check_bool,
    check_choice,
    check_number,
    fail,
    public,
)

if os.name == "nt":  # pragma: no cover - exercised on Windows only
    import msvcrt
else:
    import fcntl

__all__ = [
    "save_frame",
    "load_frame",
    "combine_frames",
    "combine_csvs",
    "file_lock",
]

_FORMATS = {
    ".parquet": "parquet",
    ".pq": "parquet",
    ".p": "pickle",
    ".pkl": "pickle",
    ".pickle": "pickle",
    ".csv": "csv",
}
_ACCEPTED = ", ".join(_FORMATS)
_HOST = re.sub(r"[^A-Za-z0-9_]", "_", socket.gethostname())[:64]
_STALE_AFTER = 24 * 3600  # seconds without a change after which any temporary file is left over
_LOCK_TIMEOUT = 600.0
MATRIX_STORAGES = ("float64", CONDENSED)


@public
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
    InvalidInputError
        If the extension is none of these.

    Examples
    --------
    >>> frame_format('analysis/rdms.parquet')
    'parquet'
    >>> frame_format('demo_rdm.p')
    'pickle'
    """
    return _format_of(path, "path")


@public
def save_frame(df, path, *, matrix_storage="float64"):
    """Write a frame atomically, in the format its file name selects.

    The frame is written to a temporary file in the target folder, flushed to
    disk and renamed over ``path``; parent folders are created, and temporary
    files that a killed process left for the same target are removed. The
    index is not stored. Parquet pages are written with CRC-32 checksums.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to save (not modified).
    path : str or os.PathLike
        Target file; its extension picks the format (see :func:`frame_format`).
        A URL (``'s3://bucket/rdms.parquet'``, ...) writes to that file
        system through fsspec, in one upload (see the module documentation).
    matrix_storage : {'float64', 'condensed_float32'}, default 'float64'
        How a parquet file stores the ``matrix`` column: each matrix whole,
        or (``'condensed_float32'``) its upper triangle in float32, about a
        quarter of the bytes; reading rebuilds the ``n x n`` float64 matrix
        (within float32 rounding) and says so in the frame's ``attrs``
        (see the module documentation).

    Returns
    -------
    pathlib.Path or str
        The path written (the URL itself for a URL of a file system other
        than the local one).

    Raises
    ------
    InvalidInputError
        For an unknown extension, a folder as ``path``, duplicate column
        names, a csv target for a frame holding arrays, tuples, lists or
        dicts, or a parquet target and a value that is no plain Python value,
        numpy array or numpy scalar (use pickle for those); for condensed
        storage, a non-parquet target, no ``matrix`` column, or a matrix that
        is not symmetric with a zero diagonal.

    Examples
    --------
    >>> import tempfile, numpy as np, pandas as pd
    >>> df = pd.DataFrame({'layer_label': [('conv1', 1)],
    ...                    'matrix': [np.array([[0.0, 0.5], [0.5, 0.0]])]})
    >>> folder = tempfile.mkdtemp()
    >>> path = save_frame(df, f'{folder}/rdms.parquet')
    >>> load_frame(path)['layer_label'][0]
    ('conv1', 1)
    >>> small = save_frame(df, f'{folder}/small.parquet', matrix_storage='condensed_float32')
    >>> load_frame(small)['matrix'][0]
    array([[0. , 0.5],
           [0.5, 0. ]])
    """
    if not isinstance(df, pd.DataFrame):
        raise fail("df", "a pandas DataFrame", type(df).__name__, raw=True)
    kind = _format_of(path, "path")
    condensed = _condensed_columns(df, kind, matrix_storage)
    path = locate(path)
    if is_dir(path):
        raise fail("path", "a file path, not a folder", os.fspath(path))
    if kind == "parquet":
        try:
            table = frame_to_table(df, condensed)
        except (ValueError, TypeError) as error:
            raise InvalidInputError(str(error)) from error
        # float32 triangles hold no repeated values: a dictionary would only add to them
        plain = {"use_dictionary": [f for f in table.column_names if f not in condensed]}
        _atomic_write(path, lambda target: pq.write_table(
            table, target, write_page_checksum=True, **(plain if condensed else {})))
    elif kind == "pickle":
        frame = df.reset_index(drop=True)
        _atomic_write(path, lambda target: frame.to_pickle(target, compression=None))
    else:
        _check_flat(df)
        _atomic_write(path, lambda target: df.to_csv(target, index=False))
    return path


@public
def load_frame(path, allow_pickle=False, *, filters=None, columns=None):
    """Read a frame written by :func:`save_frame` (or any parquet, pickle, csv), or a dataset.

    Parameters
    ----------
    path : str or os.PathLike
        File to read, its extension picking the format; or a dataset folder
        of parquet parts (e.g. written by
        :func:`~pytorch_feature_analysis.get_rdms` to ``'study_rdms/'``),
        possibly in hive-style subfolders ``model=<name>/``. Files and
        folders whose name starts with ``.`` or ``_`` are not parts. Either
        may be a URL of a file system fsspec knows (e.g.
        ``'s3://bucket/study_rdms/'``; see the module documentation).
    allow_pickle : bool, default False
        Read a pickle file. Reading a pickle can run any code it holds: pass
        ``True`` only for files you trust (as for :func:`numpy.load`).
    filters : list, optional
        Parquet files and datasets only: the rows to read, as pyarrow's
        filters -- ``(column, op, value)`` tuples that must all hold (op
        among ``==``, ``!=``, ``<``, ``>``, ``<=``, ``>=``, ``in``,
        ``not in``), or a list of such lists of which any may hold, e.g.
        ``[('layer', '==', 'conv1'), ('obj', 'in', ['cat', 'dog'])]``. They
        apply to the stored values: ``perm`` is stored as text
        (``('perm', '==', 'orig_data')``). Parts and row groups that cannot
        match are not read.
    columns : list of str, optional
        Parquet files and datasets only: read these columns only.

    Returns
    -------
    pandas.DataFrame
        The stored frame with a fresh ``RangeIndex`` (parquet, csv) and, for
        parquet files written by this library, the original Python types. A
        dataset's parts are stacked in the sorted order of their paths, their
        ``attrs`` merged. Matrices stored condensed come back as ``n x n``
        float64 matrices, and ``attrs['pytorch_feature_analysis.matrix_storage']``
        names their column.

    Raises
    ------
    FileNotFoundError
        If there is no file or folder at ``path``.
    InvalidInputError
        If ``path`` has an unknown extension, if it is a pickle and
        ``allow_pickle`` is False, if the file (or a part) is damaged or not
        of its format (a parquet page whose checksum does not match, a layout
        newer than this library reads), if a part of a dataset has other
        columns than the first part (parts of another study), or for
        filters or columns on a pickle or csv file, or naming unknown
        columns: the message names the file or part.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> df = pd.DataFrame({'perm': ['orig_data', 1, 2]})
    >>> load_frame(save_frame(df, f'{folder}/perms.parquet'))['perm'].tolist()
    ['orig_data', 1, 2]
    >>> _ = save_frame(df, f'{folder}/perms.p')
    >>> load_frame(f'{folder}/perms.p', allow_pickle=True)['perm'].tolist()
    ['orig_data', 1, 2]
    >>> for layer in ['conv1', 'fc1']:
    ...     part = pd.DataFrame({'layer': [layer], 'value': [len(layer)]})
    ...     _ = save_frame(part, f'{folder}/study/part-{layer}.parquet')
    >>> load_frame(f'{folder}/study', filters=[('layer', '==', 'fc1')])
      layer  value
    0   fc1      3
    """
    allow_pickle = check_bool(allow_pickle, "allow_pickle")
    if isinstance(path, (str, os.PathLike)) and is_dir(path):
        return read_dataset(path, filters, columns)
    kind = _format_of(path, "path")
    path = locate(path)
    if not is_file(path):
        raise FileNotFoundError(f"{caller()}: there is no frame file at {os.fspath(path)!r}.")
    if kind != "parquet" and (filters is not None or columns is not None):
        raise fail("path", "a parquet file or dataset folder, to read with filters or columns",
                   os.fspath(path))
    if kind == "parquet":
        if filters is not None or columns is not None:
            return read_dataset(path, filters, columns)
        return _read_parquet(path)
    if kind == "csv":
        return _read_csv(path)
    if not allow_pickle:
        raise InvalidInputError(
            f"The file {os.fspath(path)!r} given to {caller()} is a pickle, and reading a "
            "pickle can run any code it holds; pass allow_pickle=True only if you trust "
            "where it comes from, or keep frames as .parquet (reading it runs no code)."
        )
    return _read_pickle(path)


@public
@accepts_original_names(path="paths")
def combine_frames(paths, keys=(), allow_pickle=False):
    """Load several frame files and stack them into one frame.

    Parameters
    ----------
    paths : str, os.PathLike or list of them
        A folder (every ``.parquet``, ``.pq`` and ``.csv`` file inside, and
        ``.p``, ``.pkl``, ``.pickle`` files with ``allow_pickle=True``, in
        sorted order; a folder holding only subfolders of parquet parts is
        read as one dataset) or a list of file paths and dataset folders
        (see :func:`load_frame`); any of them may be a URL.
    keys : str or sequence of str, default ()
        If given, only files whose name contains at least one of these
        substrings are used.
    allow_pickle : bool, default False
        Read pickle files (see :func:`load_frame`). Without it, pickles in a
        folder are skipped with a warning, and a listed pickle is an error.
    path
        The original ``combine_csvs``'s name of ``paths``, accepted as a
        keyword.

    Returns
    -------
    pandas.DataFrame
        The files' frames concatenated in order, with a fresh ``RangeIndex``;
        columns missing from some files are filled with NaN.

    Raises
    ------
    FileNotFoundError
        If the folder or a listed file does not exist.
    InvalidInputError
        If no file matches (the message says when pickles were skipped), a
        listed file has an unknown extension, or a file cannot be read.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> folder = tempfile.mkdtemp()
    >>> _ = save_frame(pd.DataFrame({'obj': ['cat']}), f'{folder}/cat_rdms.parquet')
    >>> _ = save_frame(pd.DataFrame({'obj': ['dog']}), f'{folder}/dog_rdms.p')
    >>> combine_frames(folder, allow_pickle=True)['obj'].tolist()
    ['cat', 'dog']
    >>> combine_frames(folder, keys=['dog'], allow_pickle=True)['obj'].tolist()
    ['dog']
    """
    allow_pickle = check_bool(allow_pickle, "allow_pickle")
    keys = [keys] if isinstance(keys, str) else list(keys)
    in_folder = isinstance(paths, (str, os.PathLike))
    if in_folder:
        files, source = _folder_files(paths), f"folder {os.fspath(paths)!r}"
        files = files or [locate(paths)] * bool(part_files(paths))
    else:
        files = [locate(p) for p in paths]
        for file in files:
            if not is_dir(file):
                _format_of(file, "paths")
        source = f"{len(files)} listed file(s)"
    if keys:
        files = [f for f in files if any(key in _name(f) for key in keys)]
    skipped = [f for f in _pickles(files) if in_folder and not allow_pickle]
    files = [f for f in files if f not in skipped]
    if not files:
        with_keys = f" with a name containing one of {keys}" if keys else ""
        note = f"; it skipped {len(skipped)} pickle file(s)" if skipped else ""
        raise InvalidInputError(
            f"{caller()} found no frame file ({_ACCEPTED}){with_keys} in the {source}{note}"
            + (" (pass allow_pickle=True to read pickles you trust)." if skipped else ".")
        )
    if skipped:
        names = ", ".join(_name(f) for f in skipped[:3]) + (", ..." if len(skipped) > 3 else "")
        warnings.warn(
            f"{caller()} skipped {len(skipped)} pickle file(s) in the {source} ({names}); "
            "pass allow_pickle=True to read them (reading a pickle can run code).",
            UserWarning,
            stacklevel=3,
        )
    return pd.concat([load_frame(f, allow_pickle=allow_pickle) for f in files], ignore_index=True)


combine_csvs = combine_frames


@public
def file_lock(path, timeout=_LOCK_TIMEOUT):
    """Hold an exclusive lock on a frame file, for a read-merge-write by one process at a time.

    The lock is an operating-system lock (``fcntl.flock`` on POSIX,
    ``msvcrt.locking`` on Windows) on the sidecar file ``.<name>.lock`` next
    to ``path``, which holds the holder's process id and host while it is
    held. The operating system releases it when its holder ends, even when
    killed, so a crash never leaves a stale lock. The lock is not re-entrant:
    do not take it again inside itself. Locks on network file systems work
    only where the file system supports them.

    Parameters
    ----------
    path : str or os.PathLike
        The file to protect (it need not exist; parent folders are created).
    timeout : float or None, default 600.0
        Seconds to wait for another holder; ``None`` waits for as long as it
        takes, ``0`` tries once.

    Returns
    -------
    contextlib.AbstractContextManager
        A context manager that holds the lock inside its ``with`` block and
        yields ``path`` as a :class:`pathlib.Path`.

    Raises
    ------
    TimeoutError
        If another process holds the lock for longer than ``timeout``; the
        message names the file and the holder's process id when known.
    InvalidInputError
        If ``path`` is a folder or ``timeout`` is no number >= 0.

    Examples
    --------
    >>> import tempfile, pandas as pd
    >>> path = f'{tempfile.mkdtemp()}/rows.parquet'
    >>> for row in range(3):
    ...     with file_lock(path, timeout=10):
    ...         old = load_frame(path) if os.path.exists(path) else None
    ...         _ = save_frame(pd.concat([old, pd.DataFrame({'row': [row]})]), path)
    >>> load_frame(path)['row'].tolist()
    [0, 1, 2]
    """
    path = locate(path)
    if is_url(path):
        raise fail("path", "a local file path (an object store has no locks)", path)
    if path.is_dir():
        raise fail("path", "a file path, not a folder", os.fspath(path))
    check_number(timeout, "timeout", minimum=0, allow_none=True, allow_inf=True, what="seconds")
    return _held_lock(path, timeout)


# --------------------------------------------------------------------------
# Checks and readers
# --------------------------------------------------------------------------


def _format_of(path, param):
    expected = f"a file path ending in one of {_ACCEPTED}"
    if not isinstance(path, (str, os.PathLike)):
        raise fail(param, expected, path)
    suffix = Path(os.fspath(path)).suffix.lower()
    if suffix not in _FORMATS:
        raise fail(param, expected, os.fspath(path))
    return _FORMATS[suffix]


def _unreadable(path, expected, error):
    """The error for a file that could not be read, naming it and the cause."""
    if isinstance(error, StoredFormatError):
        return InvalidInputError(
            f"The file {os.fspath(path)!r} given to {caller()} cannot be read: {error}."
        )
    return InvalidInputError(
        f"The file {os.fspath(path)!r} given to {caller()} must be {expected}; reading it "
        f"failed with {type(error).__name__}: {error} (the file is damaged or of another "
        "format: restore it from a copy or compute it again)."
    )


def _read_parquet(path):
    filesystem, (inner,) = arrow(path)
    try:
        table = pq.read_table(inner, filesystem=filesystem, page_checksum_verification=True)
        if METADATA_KEY not in (table.schema.metadata or {}) and _footer_names_codec(path):
            raise StoredFormatError("its footer names this library's metadata, which is unreadable")
        return table_to_frame(table)
    except PermissionError:
        raise
    except (pa.ArrowException, OSError, StoredFormatError) as error:
        raise _unreadable(path, "an intact parquet file", error) from error


def _footer_names_codec(path):
    """Whether the parquet footer holds this library's metadata key (pyarrow lost it if so)."""
    with open_input(path) as handle:
        handle.seek(-8, os.SEEK_END)
        length = int.from_bytes(handle.read(4), "little")
        handle.seek(max(0, handle.tell() - 4 - length))
        return METADATA_KEY in handle.read(length)


def _read_csv(path):
    try:
        return pd.read_csv(os.fspath(path))
    except ValueError as error:  # pandas' parser errors and UnicodeDecodeError
        raise _unreadable(path, "a csv file of a frame", error) from error


def _read_pickle(path):
    try:
        frame = pd.read_pickle(os.fspath(path), compression=None)
    except Exception as error:  # unpickling raises whatever the stored objects raise
        raise _unreadable(path, "a pickled pandas DataFrame", error) from error
    if not isinstance(frame, pd.DataFrame):
        raise InvalidInputError(
            f"The pickle file {os.fspath(path)!r} must hold a pandas DataFrame; "
            f"got {type(frame).__name__} instead."
        )
    return frame


def _folder_files(folder):
    if not is_dir(folder):
        raise FileNotFoundError(
            f"The 'paths' parameter of {caller()} must be an existing folder "
            f"or a list of files; got {os.fspath(folder)!r} instead."
        )
    return [p for p in files_in(folder) if _suffix(p) in _FORMATS]


def _name(location):
    return Path(os.fspath(location)).name


def _suffix(location):
    return Path(os.fspath(location)).suffix.lower()


def _pickles(files):
    return [f for f in files if not is_dir(f) and _FORMATS[_suffix(f)] == "pickle"]


def _condensed_columns(df, kind, matrix_storage):
    """The columns ``save_frame`` stores condensed: ``('matrix',)`` or none."""
    check_choice(matrix_storage, "matrix_storage", MATRIX_STORAGES)
    if matrix_storage == "float64":
        return ()
    if kind != "parquet" or "matrix" not in df.columns:
        raise fail("matrix_storage", "'float64' unless the target is a parquet file of a "
                   "frame with a 'matrix' column", matrix_storage)
    return ("matrix",)


def _check_flat(df):
    """Refuse csv for frames whose object columns hold containers or arrays."""
    containers = (tuple, list, dict, set, np.ndarray)
    nested = [
        name
        for name, column in df.items()
        if column.dtype == object and any(isinstance(v, containers) for v in column)
    ]
    if nested:
        raise InvalidInputError(
            "A frame saved as csv must hold only flat values; got column(s) "
            f"{nested} holding arrays, tuples, lists or dicts instead. Save it as "
            ".parquet (or pickle) to keep them."
        )


# --------------------------------------------------------------------------
# Atomic writes and their leftovers
# --------------------------------------------------------------------------


def _atomic_write(path, write):
    """Call ``write(temporary_path)``, fsync, then rename over ``path``.

    For a URL (an object store has no rename): ``write`` into memory, then
    one upload of the whole object.
    """
    if is_url(path):
        put_whole(path, write)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(path)
    temporary = path.with_name(f".{path.name}.{_HOST}-{os.getpid()}.{uuid.uuid4().hex}.tmp")
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


def _remove_leftovers(path):
    """Delete the temporary files of ``path`` whose writer is gone.

    A temporary file is left over when the process named in it (on this
    host) is no longer alive, or when it has not changed for a day (files of
    other hosts, or from before the name held a process id). Files of live
    writers are kept.
    """
    pattern = re.compile(
        rf"\.{re.escape(path.name)}\.(?:(?P<host>[A-Za-z0-9_]*)-(?P<pid>[0-9]+)\.)?"
        r"[0-9a-f]{32}\.tmp"
    )
    with os.scandir(path.parent) as entries:
        candidates = [(e.path, pattern.fullmatch(e.name)) for e in entries]
    for candidate, match in candidates:
        if match and _abandoned(candidate, match):
            Path(candidate).unlink(missing_ok=True)


def _abandoned(candidate, match):
    try:
        age = time.time() - os.stat(candidate).st_mtime
    except FileNotFoundError:
        return False
    if age > _STALE_AFTER:
        return True
    return match["host"] == _HOST and not _pid_alive(int(match["pid"]))


def _pid_alive(pid):
    """Whether process ``pid`` of this host runs (True where that cannot be told)."""
    if os.name == "nt":  # os.kill would end the process there: rely on age instead
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # PermissionError: it runs under another user
        return True
    return True


# --------------------------------------------------------------------------
# Locks
# --------------------------------------------------------------------------


@contextlib.contextmanager
def _held_lock(path, timeout):
    path.parent.mkdir(parents=True, exist_ok=True)
    lock_path = path.with_name(f".{path.name}.lock")
    with open(lock_path, "a+b") as handle:
        _acquire(handle, path, lock_path, timeout)
        try:
            handle.truncate(0)
            handle.write(f"{os.getpid()} {_HOST}\n".encode())
            handle.flush()
            yield path
        finally:
            handle.truncate(0)
            handle.flush()
            _unlock(handle)


def _acquire(handle, path, lock_path, timeout):
    deadline = None if timeout is None else time.monotonic() + timeout
    delay = 0.005
    while not _try_lock(handle):
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            raise TimeoutError(
                f"file_lock waited {timeout} s for the lock on {os.fspath(path)!r} "
                f"(lock file {os.fspath(lock_path)!r}), held by {_holder(lock_path)}; "
                "raise the timeout, or end that process if it hangs."
            )
        time.sleep(delay if left is None else min(delay, left))
        delay = min(2 * delay, 0.1)


def _holder(lock_path):
    try:
        fields = lock_path.read_text().split()
    except OSError:
        fields = []
    if len(fields) != 2 or not fields[0].isdigit():
        return "another process (its id is not recorded yet)"
    return f"process {fields[0]} on host {fields[1]!r}"


_WINDOWS_LOCK_OFFSET = 2**30  # lock a byte past the holder's id, which stays readable


def _try_lock(handle):
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        handle.seek(_WINDOWS_LOCK_OFFSET)
        try:
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _unlock(handle):
    if os.name == "nt":  # pragma: no cover - exercised on Windows only
        handle.seek(_WINDOWS_LOCK_OFFSET)
        msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    else:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
