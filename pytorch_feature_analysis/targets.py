"""Measured RDMs as rows of the RDM frame: brain regions, recordings, behaviour.

Measured data join model RDMs in the same frame, so one call of
:func:`~pytorch_feature_analysis.get_meta_rdms` compares model layers with
brain regions, and plots and files treat both alike. The columns that come
from models are filled as follows:

- ``model``: the data source, e.g. ``'fmri'``, ``'meg'``, ``'behaviour'``;
- ``layer``: the region or measure, e.g. ``'V1'``, ``'IT'``;
- ``layer_num``: the user's order of the regions (default: the order of first
  appearance within each source, from 1);
- ``activation_type``: ``'measured'``;
- ``kernel_set_name``: ``'all'``, with ``kernel_inds`` ``()``.

Every other label (e.g. ``subject``) is a label column, as image-set labels
are for model RDMs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd
from scipy.spatial.distance import squareform

from ._contract import RDM_COLUMNS, check_rdm_frame, rdm_cells
from ._validation import fail, problem, public
from .dissim import compute_rdms, resolve_metrics
from .io import save_frame

__all__ = [
    "MEASURED", "rdms_from_patterns", "rdms_from_matrices", "to_rsatoolbox", "from_rsatoolbox",
]

#: The ``activation_type`` of measured RDMs.
MEASURED = "measured"

_SOURCE_LABELS = ("model", "layer", "layer_num")


def _check_labels(labels: Any, position: int, what: str) -> dict:
    """A set's labels: a dict naming ``model`` (the source) and ``layer`` (the region)."""
    if not isinstance(labels, dict):
        raise fail(what, f"sets whose labels are dicts (set {position})", labels)
    missing = [key for key in ("model", "layer") if key not in labels]
    if missing:
        raise fail(what, "sets whose labels name the data source ('model', e.g. 'fmri') and "
                   "the region or measure ('layer', e.g. 'V1')",
                   f"labels {dict(labels)} without {missing} in set {position}", raw=True)
    reused = [key for key in labels if key in RDM_COLUMNS and key not in _SOURCE_LABELS]
    if reused:
        raise fail(what, f"labels not named like the frame's own columns {list(RDM_COLUMNS)}",
                   f"{reused} in set {position}", raw=True)
    return dict(labels)


def _entry_keys(keys: Sequence, variables: Any, position: int, what: str) -> tuple:
    if isinstance(variables, str) or not isinstance(variables, (tuple, list)) or not variables:
        raise fail(what, "sets with a tuple of entry variable names, e.g. ('stimulus',)",
                   f"{variables!r} in set {position}", raw=True)
    keys = tuple(key if isinstance(key, tuple) else (key,) for key in keys)
    wrong = [key for key in keys if len(key) != len(variables)]
    if wrong or len(keys) < 2 or len(set(keys)) != len(keys):
        raise fail(what, f"at least 2 distinct entry keys of {len(variables)} value(s) "
                   f"{tuple(variables)} per set", f"{list(keys)[:6]} in set {position}", raw=True)
    return keys


def _layer_numbers(label_list: list[dict]) -> list[int]:
    """The given ``layer_num``, else each layer's rank of first appearance within its source."""
    seen: dict[str, list] = {}
    numbers = []
    for labels in label_list:
        layers = seen.setdefault(labels["model"], [])
        if labels["layer"] not in layers:
            layers.append(labels["layer"])
        numbers.append(int(labels.get("layer_num", layers.index(labels["layer"]) + 1)))
    return numbers


def _frame(rows: list[dict], out_fname: Any) -> pd.DataFrame:
    labels = list(dict.fromkeys(k for row in rows for k in row if k not in RDM_COLUMNS))
    frame = pd.DataFrame(rows, columns=list(RDM_COLUMNS) + labels)
    if out_fname is not None:
        save_frame(frame, out_fname)
    return frame


def _row(rdm_name: str, labels: dict, layer_num: int, metric: str, matrix: np.ndarray,
         keys: tuple, variables: Sequence) -> dict:
    extra = {key: value for key, value in labels.items() if key not in _SOURCE_LABELS}
    return {
        "df_name": rdm_name, "model": labels["model"], "layer": labels["layer"],
        "layer_num": layer_num, "layer_label": (labels["layer"], layer_num),
        "dissim_metric": metric, "activation_type": MEASURED,
        "entry_keys": keys, "entry_labels": tuple(dict(zip(variables, key)) for key in keys),
        "kernel_set_name": "all", "kernel_inds": (), "perm": "orig_data",
        "perm_scramble": list(range(len(keys))), **rdm_cells(matrix), **extra,
    }


@public
def rdms_from_patterns(
    pattern_sets: Sequence[tuple],
    out_fname: str | os.PathLike | None = None,
    dissim_metrics: Any = ("corr",),
    rdm_name: str = "measured",
) -> pd.DataFrame:
    """RDMs of measured response patterns, as rows of an RDM frame.

    Parameters
    ----------
    pattern_sets : list of tuple
        ``(labels, {entry_key: pattern}, entry_variables)``, built like image
        sets with 1-D response patterns (voxels, channels, units, ratings) in
        place of images; one set per RDM, e.g. per subject x region.
        ``labels`` names the data source (``'model'``) and the region or
        measure (``'layer'``), optionally ``'layer_num'``, and any other labels
        (e.g. ``'subject'``). Every pattern of a set has the same length.
    out_fname : str, path-like or None, default None
        Where to save the frame (parquet or pickle).
    dissim_metrics : list, default ['corr']
        As in :func:`~pytorch_feature_analysis.get_rdms`.
    rdm_name : str, default 'measured'
        Stored in ``df_name``.

    Returns
    -------
    pandas.DataFrame
        One row per set and metric, with the columns of
        :func:`~pytorch_feature_analysis.get_rdms` (see the module
        documentation for how the model columns are filled) and one column per
        other label.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> sets = [({'model': 'fmri', 'layer': region, 'subject': s},
    ...          {(stimulus,): rng.normal(size=50) for stimulus in ('cat', 'dog', 'car')},
    ...          ('stimulus',))
    ...         for s in (1, 2) for region in ('V1', 'IT')]
    >>> frame = rdms_from_patterns(sets)
    >>> frame[['model', 'layer', 'layer_num', 'activation_type', 'subject']].values.tolist()[:2]
    [['fmri', 'V1', 1, 'measured', 1], ['fmri', 'IT', 2, 'measured', 1]]
    """
    metrics = resolve_metrics(dissim_metrics, param_name="dissim_metrics",
                              func_name="rdms_from_patterns")
    checked = []
    for position, pattern_set in enumerate(_sets(pattern_sets, "pattern_sets", 3)):
        labels = _check_labels(pattern_set[0], position, "pattern_sets")
        patterns = pattern_set[1]
        if not isinstance(patterns, dict):
            raise fail("pattern_sets", "sets holding a dict {entry_key: pattern}",
                       f"{type(patterns).__name__} in set {position}", raw=True)
        keys = _entry_keys(list(patterns), pattern_set[2], position, "pattern_sets")
        checked.append((labels, keys, pattern_set[2], _stack(list(patterns.values()), position)))
    numbers = _layer_numbers([labels for labels, *_ in checked])
    rows = []
    for (labels, keys, variables, stacked), number in zip(checked, numbers):
        for metric, matrix in zip(metrics, compute_rdms(stacked, metrics)):
            rows.append(_row(rdm_name, labels, number, metric.name, matrix, keys, variables))
    return _frame(rows, out_fname)


def _sets(sets: Any, what: str, length: int) -> list:
    if sets is None or isinstance(sets, (str, dict)) or not hasattr(sets, "__iter__"):
        raise fail(what, "a list of sets", sets)
    sets = list(sets)
    if not sets:
        raise fail(what, "a list of at least one set", sets)
    for position, item in enumerate(sets):
        if not isinstance(item, (tuple, list)) or len(item) != length:
            raise fail(what, f"sets of {length} parts", f"{item!r:.120} in set {position}",
                       raw=True)
    return sets


def _stack(patterns: list, position: int) -> np.ndarray:
    arrays = [np.asarray(pattern, dtype=np.float64).ravel() for pattern in patterns]
    sizes = sorted({array.size for array in arrays})
    if len(sizes) != 1 or sizes[0] == 0:
        raise fail("pattern_sets", "sets of patterns of one length (at least 1)",
                   f"lengths {sizes} in set {position}", raw=True)
    return np.stack(arrays)


@public
def rdms_from_matrices(
    matrix_sets: Sequence[tuple],
    out_fname: str | os.PathLike | None = None,
    dissim_metric: str = "unknown",
    rdm_name: str = "measured",
    mat_variable: str | None = None,
) -> pd.DataFrame:
    """Precomputed RDMs (measured, or from elsewhere) as rows of an RDM frame.

    Parameters
    ----------
    matrix_sets : list of tuple
        ``(labels, matrix, entry_keys, entry_variables)``: ``labels`` as in
        :func:`rdms_from_patterns`; ``matrix`` a square RDM or its condensed
        upper triangle (as :func:`scipy.spatial.distance.pdist` gives), as an
        array or a ``.npy``, ``.csv`` (numbers only) or ``.mat`` file; the
        entry keys in the matrix's order.
    out_fname : str, path-like or None, default None
        Where to save the frame (parquet or pickle).
    dissim_metric : str, default 'unknown'
        Stored in ``dissim_metric`` (how the RDMs were computed).
    rdm_name : str, default 'measured'
        Stored in ``df_name``.
    mat_variable : str, optional
        The variable of ``.mat`` files that holds the RDM; default the only
        array variable in the file.

    Returns
    -------
    pandas.DataFrame
        One row per set, with the columns of :func:`rdms_from_patterns`.

    Raises
    ------
    InvalidInputError
        For a matrix that is not square (or condensed) for its entry keys,
        not symmetric, or with a non-zero diagonal (NaN entries are kept: an
        undefined dissimilarity), naming the set.

    Examples
    --------
    >>> from scipy.spatial.distance import pdist
    >>> ratings = np.array([[0.0, 1.0], [1.0, 0.0], [3.0, 3.0]])
    >>> frame = rdms_from_matrices([({'model': 'behaviour', 'layer': 'similarity'},
    ...                               pdist(ratings), ['cat', 'dog', 'car'], ('stimulus',))])
    >>> frame.loc[0, 'matrix'].shape, frame.loc[0, 'entry_keys']
    ((3, 3), (('cat',), ('dog',), ('car',)))
    """
    if not isinstance(dissim_metric, str):
        raise fail("dissim_metric", "a string naming how the RDMs were computed", dissim_metric)
    checked = []
    for position, (labels, matrix, keys, variables) in enumerate(
        _sets(matrix_sets, "matrix_sets", 4)
    ):
        labels = _check_labels(labels, position, "matrix_sets")
        keys = _entry_keys(keys, variables, position, "matrix_sets")
        square = _square(_read_matrix(matrix, mat_variable), len(keys), position)
        checked.append((labels, keys, variables, square))
    numbers = _layer_numbers([labels for labels, *_ in checked])
    rows = [_row(rdm_name, labels, number, dissim_metric, square, keys, variables)
            for (labels, keys, variables, square), number in zip(checked, numbers)]
    return _frame(rows, out_fname)


def _read_matrix(matrix: Any, mat_variable: str | None) -> np.ndarray:
    if not isinstance(matrix, (str, os.PathLike)):
        return np.asarray(matrix, dtype=np.float64)
    path = Path(os.fspath(matrix))
    if not path.is_file():
        raise FileNotFoundError(f"The RDM file {str(path)!r} does not exist.")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        return np.load(path, allow_pickle=False).astype(np.float64)
    if suffix == ".csv":
        return np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=1)
    if suffix == ".mat":
        return _mat_array(path, mat_variable)
    raise fail("matrix_sets", "matrices as arrays or .npy, .csv or .mat files", str(path))


def _mat_array(path: Path, mat_variable: str | None) -> np.ndarray:
    from scipy.io import loadmat

    contents = {k: v for k, v in loadmat(path).items() if not k.startswith("__")}
    if mat_variable is None:
        arrays = [name for name, value in contents.items() if isinstance(value, np.ndarray)]
        if len(arrays) != 1:
            raise fail("mat_variable", f"the variable of {str(path)!r} holding the RDM "
                       f"(it holds {sorted(contents)})", mat_variable)
        mat_variable = arrays[0]
    if mat_variable not in contents:
        raise fail("mat_variable", f"a variable of {str(path)!r} ({sorted(contents)})",
                   mat_variable)
    return np.asarray(contents[mat_variable], dtype=np.float64)


def _square(matrix: np.ndarray, n: int, position: int) -> np.ndarray:
    """A square, symmetric, zero-diagonal n x n matrix from a square or condensed one."""
    if matrix.ndim == 2 and 1 in matrix.shape and matrix.size == n * (n - 1) // 2:
        matrix = matrix.ravel()
    if matrix.ndim == 1 and matrix.size == n * (n - 1) // 2:
        matrix = squareform(matrix, checks=False)
    if matrix.shape != (n, n):
        raise problem(f"the matrix of set {position} must be {n} x {n} (or its {n * (n - 1) // 2} "
                      f"upper-triangle values), one row per entry key; got shape {matrix.shape}.")
    if not np.allclose(matrix, matrix.T, rtol=1e-7, atol=1e-12, equal_nan=True):
        i, j = np.unravel_index(np.nanargmax(np.abs(matrix - matrix.T)), matrix.shape)
        raise problem(f"the matrix of set {position} must be symmetric; got {matrix[i, j]!r} at "
                      f"[{i}, {j}] and {matrix[j, i]!r} at [{j}, {i}].")
    diagonal = np.diagonal(matrix)
    if np.any(diagonal != 0):
        raise problem(f"the matrix of set {position} must have a zero diagonal; got "
                      f"{diagonal[diagonal != 0][0]!r} on it.")
    return matrix


def _rsatoolbox():
    try:
        import rsatoolbox.rdm
    except ImportError as error:
        raise ImportError(
            "to_rsatoolbox and from_rsatoolbox need rsatoolbox: pip install "
            "'pytorch_feature_analysis[rsa]' (or pip install rsatoolbox)."
        ) from error
    return rsatoolbox.rdm


_ENTRY_COLUMNS = ("matrix", "entry_keys", "entry_labels")


@public
def to_rsatoolbox(rdm_df: pd.DataFrame):
    """The RDMs of a frame as one ``rsatoolbox.rdm.RDMs`` object.

    Every row must have the same entries (``entry_keys``). The other columns
    become RDM descriptors, the entries' labels pattern descriptors (with the
    entry keys under ``'entry_key'``), and the frame's column order the
    descriptor ``'pfa_columns'``, so :func:`from_rsatoolbox` gives the frame
    back exactly.

    Examples
    --------
    >>> frame = rdms_from_matrices([({'model': 'behaviour', 'layer': 'similarity'},
    ...                              [1.0, 2.0, 3.0], ['cat', 'dog', 'car'], ('stimulus',))])
    >>> rdms = to_rsatoolbox(frame)
    >>> rdms.pattern_descriptors['stimulus'], rdms.rdm_descriptors['layer']
    (['cat', 'dog', 'car'], ['similarity'])
    """
    check_rdm_frame(rdm_df)
    keys = rdm_df["entry_keys"].iloc[0]
    differing = [i for i, other in enumerate(rdm_df["entry_keys"]) if tuple(other) != tuple(keys)]
    if differing:
        raise fail("rdm_df", "RDMs of the same entries (select rows or subset_rdm_df first)",
                   f"row {differing[0]} with entries {rdm_df['entry_keys'].iloc[differing[0]]} "
                   f"beside {keys}", raw=True)
    labels = rdm_df["entry_labels"].iloc[0]
    metrics = rdm_df["dissim_metric"].unique().tolist() if "dissim_metric" in rdm_df else []
    return _rsatoolbox().RDMs(
        np.stack([squareform(np.asarray(m, dtype=np.float64), checks=False)
                  for m in rdm_df["matrix"]]),
        dissimilarity_measure=metrics[0] if len(metrics) == 1 else None,
        descriptors={"pfa_columns": list(rdm_df.columns)},
        rdm_descriptors={column: rdm_df[column].tolist() for column in rdm_df.columns
                         if column not in _ENTRY_COLUMNS},
        pattern_descriptors={"entry_key": list(keys),
                             **{name: [label[name] for label in labels] for name in labels[0]}},
    )


@public
def from_rsatoolbox(rdms: Any) -> pd.DataFrame:
    """A frame of the RDMs in an ``rsatoolbox.rdm.RDMs`` object.

    RDM descriptors become columns (rsatoolbox's own ``'index'`` left out),
    pattern descriptors the entries (``entry_keys`` from ``'entry_key'``, or
    the tuples of the other pattern descriptors; ``entry_labels`` the dicts).
    A frame made by :func:`to_rsatoolbox` comes back exactly, columns in
    their order.
    """
    if not hasattr(rdms, "get_matrices") or not hasattr(rdms, "rdm_descriptors"):
        raise fail("rdms", "an rsatoolbox.rdm.RDMs object", type(rdms).__name__, raw=True)
    patterns = {k: v for k, v in rdms.pattern_descriptors.items() if k != "index"}
    names = [name for name in patterns if name != "entry_key"]
    count = rdms.n_cond
    keys = [tuple(key) for key in patterns["entry_key"]] if "entry_key" in patterns else \
        [tuple(patterns[name][i] for name in names) if names else (i,) for i in range(count)]
    entry_labels = tuple({name: patterns[name][i] for name in names} for i in range(count))
    columns = {k: list(v) for k, v in rdms.rdm_descriptors.items() if k != "index"}
    if "dissim_metric" not in columns and rdms.dissimilarity_measure is not None:
        columns["dissim_metric"] = [rdms.dissimilarity_measure] * rdms.n_rdm
    columns.update(matrix=list(rdms.get_matrices().astype(np.float64)),
                   entry_keys=[tuple(keys)] * rdms.n_rdm, entry_labels=[entry_labels] * rdms.n_rdm)
    order = rdms.descriptors.get("pfa_columns") or list(columns)
    return pd.DataFrame({column: columns[column] for column in order})
