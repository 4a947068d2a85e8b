"""Where frames are stored: a local path, or a URL of an fsspec file system (private).

A *location* is a :class:`pathlib.Path` for a local file or folder, or the
URL itself (a ``str`` such as ``'s3://bucket/study/'`` or
``'memory://study/'``) for any other file system `fsspec
<https://filesystem-spec.readthedocs.io>`_ knows; ``file://`` URLs are local
paths. Every function here takes a path, a URL or a location and does the
same for each, so the readers and writers of frames and datasets never ask
which one they hold. fsspec is imported only for URLs: local paths never
need it. Credentials and other storage options come from fsspec's own
configuration (environment variables such as ``FSSPEC_S3_KEY``, its config
files) and from those of the file system's package (``AWS_PROFILE``, ...).

Writes are atomic both ways: locally through a temporary file renamed over
the target (see :mod:`.io`), elsewhere as one upload of the whole object
(:func:`put_whole`), which an object store shows whole or not at all.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
from pathlib import Path
from typing import Any, Callable

from ._validation import InvalidInputError, caller

__all__ = ["is_url", "locate", "absolute", "same_place", "is_dir", "is_file", "exists",
           "join", "parquet_files", "files_in", "remove", "open_input", "put_whole", "arrow"]

_SCHEME = r"[A-Za-z][A-Za-z0-9+.\-]+"
_URL = re.compile(rf"{_SCHEME}(?:::{_SCHEME})*://")
_INSTALL = "pip install 'pytorch_feature_analysis[dask]' (or pip install fsspec)"


def is_url(path: Any) -> bool:
    """Whether ``path`` is a URL (``protocol://...``, or fsspec's chained ``a::b://...``).

    Only strings are; path objects and local paths (``C:\\...``, ``a::b/c``)
    never are.
    """
    return isinstance(path, str) and _URL.match(path) is not None


def _resolve(url: str) -> tuple:
    """``(fsspec file system, path inside it)`` of ``url``; clear errors when it cannot be had."""
    try:
        from fsspec.core import url_to_fs
    except ImportError as error:
        raise InvalidInputError(
            f"The path {url!r} given to {caller()} is a URL, and reading or writing URLs "
            f"needs fsspec: {_INSTALL}."
        ) from error
    try:
        return url_to_fs(url)
    except ValueError as error:
        raise InvalidInputError(
            f"The path {url!r} given to {caller()} names a protocol that fsspec does not know "
            f"({error}); give a local path, or a URL of a file system fsspec knows, such as "
            "'s3://bucket/folder/', 'gcs://bucket/folder/' or 'file:///absolute/folder/'."
        ) from error
    except ImportError as error:
        raise InvalidInputError(
            f"The path {url!r} given to {caller()} needs the package of its file system, which "
            f"is not installed ({error}); install it (e.g. pip install s3fs, gcsfs, adlfs)."
        ) from error


def _split(path: Any) -> tuple:
    """``(None, Path)`` for a local location, ``(fsspec file system, inner path)`` for a URL."""
    if not is_url(path):
        return None, Path(os.fspath(path))
    filesystem, inner = _resolve(path)
    from fsspec.implementations.local import LocalFileSystem

    if isinstance(filesystem, LocalFileSystem):
        return None, Path(inner)
    return filesystem, inner


def locate(path: Any) -> Path | str:
    """The location of ``path``: a Path (local paths, ``file://`` URLs) or the URL itself."""
    filesystem, inner = _split(path)
    return inner if filesystem is None else path


def absolute(path: Any) -> Path | str:
    """The location, made absolute where it is local (workers may run in other folders)."""
    location = locate(path)
    return location.absolute() if isinstance(location, Path) else location


def same_place(first: Any, second: Any) -> bool:
    """Whether two paths or URLs name the same file or folder."""
    (fs_a, a), (fs_b, b) = _split(first), _split(second)
    if fs_a is None or fs_b is None:
        return fs_a is fs_b and a.resolve() == b.resolve()
    return fs_a == fs_b and a.rstrip("/") == b.rstrip("/")


def is_dir(path: Any) -> bool:
    """Whether ``path`` is an existing folder (a prefix holding objects, in an object store)."""
    filesystem, inner = _split(path)
    return inner.is_dir() if filesystem is None else filesystem.isdir(inner)


def is_file(path: Any) -> bool:
    """Whether ``path`` is an existing file (object)."""
    filesystem, inner = _split(path)
    return inner.is_file() if filesystem is None else filesystem.isfile(inner)


def exists(path: Any) -> bool:
    """Whether a file or folder is at ``path``."""
    filesystem, inner = _split(path)
    return inner.exists() if filesystem is None else filesystem.exists(inner)


def join(folder: Any, *names: str) -> Path | str:
    """The location ``folder/name/...``."""
    location = locate(folder)
    if isinstance(location, Path):
        return Path(location, *names)
    return "/".join([location.rstrip("/"), *names])


def _hidden(parts: tuple) -> bool:
    return any(name.startswith((".", "_")) for name in parts)


def parquet_files(folder: Any) -> list:
    """The locations of the ``.parquet`` files under ``folder``, at any depth, sorted.

    Files whose path below ``folder`` has a name starting with ``.`` or
    ``_`` are left out; a missing folder holds none.
    """
    filesystem, inner = _split(folder)
    if filesystem is None:
        if not inner.is_dir():
            return []
        found = (path for path in inner.rglob("*.parquet") if path.is_file())
        return sorted(path for path in found if not _hidden(path.relative_to(inner).parts))
    if not filesystem.isdir(inner):
        return []
    root = inner.rstrip("/") + "/"
    relative = [tuple(path[len(root):].split("/")) for path in filesystem.find(root)
                if path.startswith(root) and path.endswith(".parquet")]
    return [join(folder, *parts) for parts in sorted(relative) if not _hidden(parts)]


def files_in(folder: Any) -> list:
    """The locations of the files directly in ``folder`` (not in its subfolders), sorted."""
    filesystem, inner = _split(folder)
    if filesystem is None:
        return sorted(path for path in inner.iterdir() if path.is_file())
    entries = filesystem.ls(inner, detail=True)
    names = sorted(posixpath.basename(e["name"].rstrip("/")) for e in entries
                   if e["type"] == "file")
    return [join(folder, name) for name in names]


def remove(path: Any) -> None:
    """Delete the file at ``path`` (nothing if there is none)."""
    filesystem, inner = _split(path)
    if filesystem is None:
        inner.unlink(missing_ok=True)
        return
    try:
        filesystem.rm_file(inner)
    except FileNotFoundError:
        pass


def open_input(path: Any) -> Any:
    """The file at ``path`` opened for reading bytes (a seekable file object)."""
    filesystem, inner = _split(path)
    return open(inner, "rb") if filesystem is None else filesystem.open(inner, "rb")


def put_whole(path: Any, write: Callable[[Any], Any]) -> None:
    """Store what ``write(file)`` writes as the object at the URL ``path``, in one upload.

    An object store has no rename, but shows an object only once its
    upload is complete: a writer killed before leaves nothing under
    ``path``. The object is held in memory until it is sent.
    """
    filesystem, inner = _split(path)
    buffer = io.BytesIO()
    write(buffer)
    data = buffer.getvalue()
    try:
        filesystem.pipe_file(inner, data)
    except FileNotFoundError:  # a file system with real folders, this one not made yet
        filesystem.makedirs(posixpath.dirname(inner), exist_ok=True)
        filesystem.pipe_file(inner, data)


def arrow(*paths: Any) -> tuple:
    """``(filesystem, [path, ...])`` for pyarrow to read ``paths`` (all on one file system).

    The filesystem is None for local paths (pyarrow's own), else the fsspec
    file system wrapped for pyarrow.
    """
    filesystem, first = _split(paths[0])
    if filesystem is None:
        return None, [os.fspath(first)] + [os.fspath(_split(p)[1]) for p in paths[1:]]
    from pyarrow.fs import FSSpecHandler, PyFileSystem

    return PyFileSystem(FSSpecHandler(filesystem)), [first] + [_split(p)[1] for p in paths[1:]]
