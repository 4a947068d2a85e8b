"""Meta-RDMs: RDMs whose entries are themselves RDMs, of any order.

:func:`get_meta_rdms` groups the rows of an RDM frame by *grouping
variables*; within a group, each row is one entry of a meta-RDM, named by its
values of the *entry variables*, and each cell compares the upper triangles
of two RDMs. The result is again an RDM frame, so it can be fed back in to
make third-order RDMs and beyond. Columns that describe the level below keep
their meaning by taking a ``'_sub'`` suffix (``dissim_metric`` becomes
``dissim_metric_sub``, ``dissim_metric_sub`` becomes ``dissim_metric_sub_sub``).
"""

from __future__ import annotations

import copy
import os
from collections import Counter
from typing import Any, Sequence

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ._contract import (
    FOLLOWING_COLUMNS,
    PER_RDM_COLUMNS,
    REQUIRED_COLUMNS,
    check_rdm_frame,
    dissim_rankings,
    level_down_name,
    stable_seed,
)
from ._meta_dataset import DatasetSource, MetaOutput
from ._validation import InvalidInputError, check_bool, check_int, fail, problem, public
from .dissim import Metric, compute_rdms, resolve_metrics

__all__ = ["get_meta_rdms", "subset_rdm_df", "compute_tolerances"]


def _name_list(value: Any, param_name: str) -> list[str]:
    names = [value] if isinstance(value, str) else value
    try:
        names = list(names)
    except TypeError:
        names = None
    if not names or not all(isinstance(name, str) for name in names):
        raise InvalidInputError(
            f"The {param_name!r} parameter of get_meta_rdms must be a column name or a "
            f"non-empty list of column names; got {value!r} instead."
        )
    return names


def _is_hashable_column(column: pd.Series) -> bool:
    try:
        for value in column:
            hash(value)
    except TypeError:
        return False
    return True


def _rest_grouping_variables(rdm_df: pd.DataFrame, entry_variables: list[str]) -> list[str]:
    excluded = set(entry_variables) | set(PER_RDM_COLUMNS)
    # a column that follows an entry variable (time_s follows time) varies with it
    excluded |= {column for column, followed in FOLLOWING_COLUMNS.items()
                 if followed in entry_variables}
    return [
        column
        for column in rdm_df.columns
        if column not in excluded
        and "entry_labels" not in column
        and _is_hashable_column(rdm_df[column])
    ]


def _as_key(key: Any) -> tuple:
    return tuple(key) if isinstance(key, (tuple, list)) else (key,)


def _check_subsets(entry_var_subsets: Any, entry_variables: list[str]) -> list[tuple[str, Any]]:
    """Normalise [(name, 'all' or entry keys), ...]; keys become tuples."""
    problem = None
    try:
        subsets = list(entry_var_subsets)
    except TypeError:
        subsets, problem = [], entry_var_subsets
    checked = []
    for subset in subsets:
        if not (isinstance(subset, (tuple, list)) and len(subset) == 2):
            problem = subset
            break
        name, keys = subset
        if isinstance(keys, str) and keys == "all":
            checked.append((name, "all"))
            continue
        if len(entry_variables) == 1:
            keys = [key if isinstance(key, tuple) and len(key) == 1 else (key,) for key in keys]
        else:
            keys = [_as_key(key) for key in keys]
        wrong = [key for key in keys if len(key) != len(entry_variables)]
        if wrong:
            raise InvalidInputError(
                f"The 'entry_var_subsets' parameter of get_meta_rdms must give entry keys "
                f"with one value per entry variable {entry_variables}; got {wrong[0]!r} "
                f"in subset {name!r} instead."
            )
        checked.append((name, keys))
    if problem is not None or not checked:
        raise InvalidInputError(
            f"The 'entry_var_subsets' parameter of get_meta_rdms must be a non-empty list "
            f"of (subset_name, entry_keys or 'all') pairs; got {problem!r} instead."
        )
    return checked


def _group_description(columns: list[str], values: tuple) -> str:
    if not columns:
        return "(the whole frame)"
    return "{" + ", ".join(f"{c!r}: {v!r}" for c, v in zip(columns, values)) + "}"


def _split_groups(frame: pd.DataFrame, columns: list[str]) -> list[tuple[tuple, pd.DataFrame]]:
    if not columns:
        return [((), frame)]
    grouped = frame.groupby(columns, sort=True, dropna=False)
    return [(tuple(values), group) for values, group in grouped]


def _same_value(first: Any, other: Any) -> bool:
    if isinstance(first, np.ndarray) or isinstance(other, np.ndarray):
        try:
            return bool(np.array_equal(first, other))
        except (TypeError, ValueError):
            return False
    try:
        if first == other:
            return True
    except (TypeError, ValueError):
        return False
    return bool(pd.api.types.is_scalar(first) and pd.isna(first) and pd.isna(other))


def _is_constant(column: pd.Series) -> bool:
    values = column.tolist()
    return all(_same_value(values[0], value) for value in values[1:])


def _upper_triangles(stack: np.ndarray) -> np.ndarray:
    rows, cols = np.triu_indices(stack.shape[1], 1)
    return stack[:, rows, cols]


def _empty_rows(stack: np.ndarray) -> np.ndarray:
    """(k, n) mask of sub-RDM rows whose off-diagonal entries are all NaN."""
    n = stack.shape[1]
    off_diagonal_nans = np.isnan(stack) & ~np.eye(n, dtype=bool)
    return off_diagonal_nans.sum(axis=2) == n - 1


def _meta_matrices(stack: np.ndarray, metrics: list[Metric]) -> list[np.ndarray]:
    """Compare every pair of sub-RDMs in a (k, n, n) stack, one matrix per metric.

    Sub-RDM rows that are entirely NaN in either RDM of a pair are left out of
    that pair's comparison. Pairs sharing the same left-out rows are computed
    together.
    """
    matrices = compute_rdms(_upper_triangles(stack), metrics)
    empty = _empty_rows(stack)
    affected = empty.any(axis=1)
    if not affected.any():
        return matrices
    first, second = np.triu_indices(len(stack), 1)
    needs_own = affected[first] | affected[second]
    pairs_by_mask: dict[bytes, list[tuple[int, int]]] = {}
    for i, j in zip(first[needs_own], second[needs_own]):
        mask = empty[i] | empty[j]
        pairs_by_mask.setdefault(mask.tobytes(), []).append((int(i), int(j)))
    for mask_bytes, pairs in pairs_by_mask.items():
        keep = np.flatnonzero(~np.frombuffer(mask_bytes, dtype=bool))
        members = sorted({index for pair in pairs for index in pair})
        position = {member: p for p, member in enumerate(members)}
        if len(keep) < 2:
            reduced = [np.full((len(members), len(members)), np.nan) for _ in metrics]
        else:
            sub_stack = stack[np.ix_(members, keep, keep)]
            reduced = compute_rdms(_upper_triangles(sub_stack), metrics)
        for matrix, part in zip(matrices, reduced):
            for i, j in pairs:
                matrix[i, j] = matrix[j, i] = part[position[i], position[j]]
    return matrices


def _scrambled(stack: np.ndarray, identity: tuple) -> np.ndarray:
    """Reorder the entries of each sub-RDM with its own permutation.

    The permutations are seeded by ``identity`` (the seed, the group, the subset
    and the permutation number), so they stay the same when other groups are
    filtered out.
    """
    seed, *what = identity
    rng = np.random.default_rng(stable_seed(seed, tuple(what)))
    k, n, _ = stack.shape
    orders = rng.permuted(np.tile(np.arange(n), (k, 1)), axis=1)
    return stack[np.arange(k)[:, None, None], orders[:, :, None], orders[:, None, :]]


def _group_stack(group: pd.DataFrame, description: str) -> tuple[np.ndarray, tuple, tuple]:
    """The group's sub-RDMs as a (k, n, n) stack, after checking they correspond."""
    sub_keys = group["entry_keys"].tolist()
    sub_labels = group["entry_labels"].tolist()
    first_keys = tuple(sub_keys[0])
    for keys in sub_keys[1:]:
        if tuple(keys) != first_keys:
            raise InvalidInputError(
                f"The RDMs of group {description} must have the same entries (entry_keys) "
                f"to be compared; got {first_keys!r} and {tuple(keys)!r} instead."
            )
    n = len(first_keys)
    if n < 2:
        raise InvalidInputError(
            f"The RDMs of group {description} must have at least 2 entries to be "
            f"compared; got {n} instead."
        )
    matrices = [np.asarray(matrix, dtype=np.float64) for matrix in group["matrix"]]
    for matrix in matrices:
        if matrix.shape != (n, n):
            raise InvalidInputError(
                f"The RDMs of group {description} must be {n} x {n} matrices, one row and "
                f"column per entry key; got shape {matrix.shape} instead."
            )
    return np.stack(matrices), first_keys, copy.deepcopy(tuple(sub_labels[0]))


def _check_unique_entries(keys: list[tuple], entry_variables: list[str], description: str) -> None:
    repeated = [key for key, count in Counter(keys).items() if count > 1]
    if repeated:
        raise InvalidInputError(
            f"The 'entry_variables' parameter of get_meta_rdms must pick out one RDM per "
            f"entry in each group; got entry {repeated[0]!r} of {entry_variables} "
            f"{Counter(keys)[repeated[0]]} times in group {description} instead. Add the "
            f"variables that tell these RDMs apart to the grouping or entry variables."
        )


def _subset_indices(keys: list[tuple], subset_keys: Any) -> list[int]:
    if isinstance(subset_keys, str):
        return list(range(len(keys)))
    wanted = set(subset_keys)
    return [index for index, key in enumerate(keys) if key in wanted]


@public
def get_meta_rdms(
    rdm_df: pd.DataFrame,
    out_fname: Any,
    entry_variables: Any,
    entry_var_subsets: Any = (("all", "all"),),
    grouping_variables: Any = "rest",
    df_name: str = "meta_rdm",
    num_perms: int = 0,
    dissim_metrics: Any = ("corr",),
    random_state: Any = 0,
    verbose: bool = True,
    *,
    collect: bool = True,
) -> pd.DataFrame | None:
    """Make meta-RDMs: RDMs whose entries are the RDMs of a frame.

    The rows of ``rdm_df`` are grouped by ``grouping_variables``; within a
    group, each row is one entry of a meta-RDM, keyed by its values of
    ``entry_variables``, and each cell is the dissimilarity between the upper
    triangles of two RDMs. All pairs of a group are computed at once.

    Parameters
    ----------
    rdm_df : pandas.DataFrame
        An RDM frame (from :func:`get_rdms` or from this function, for
        higher orders). Needs ``matrix``, ``entry_keys``, ``entry_labels``,
        the entry variables and the grouping variables. It is not modified.
        Or the folder of a dataset (e.g. written by :func:`get_rdms` to
        ``'study_rdms/'``): it is read one group at a time, each group's
        RDMs with a filter on its grouping variables pushed down to the
        parquet parts, so memory holds the RDMs of one group (and one small
        row per RDM, without its matrix) rather than the whole study. The
        folder may be a URL of a file system fsspec knows (e.g.
        ``'s3://bucket/study_rdms/'``, see :doc:`/cluster`).
    out_fname : str, os.PathLike or None
        Where to save the result (:func:`save_frame`: parquet, pickle or csv
        by extension); ``None`` to not save. A path ending in ``'/'`` (or an
        existing folder) is a dataset: one parquet part per group,
        ``part-<group number>.parquet``, written as each group is done
        (parts an earlier call left there are removed first). Files and
        folders may be URLs, as ``rdm_df``.
    entry_variables : str or list of str
        Columns whose values name the entries of each meta-RDM.
    entry_var_subsets : list of (str, 'all' or list), default [('all', 'all')]
        ``(subset_name, entry_keys)`` pairs: one meta-RDM per subset, using
        only the listed entries (tuples of entry-variable values; plain values
        when there is one entry variable), or all of them for ``'all'``. A
        group holding none of a subset's entries gives no row for it.
    grouping_variables : list of str or 'rest', default 'rest'
        Columns whose values are fixed within a meta-RDM. Names are those of
        ``rdm_df`` (``'dissim_metric'`` means the metric of its RDMs, which is
        ``dissim_metric_sub`` in the result). ``'rest'`` uses every column
        except the entry variables, the per-RDM columns (``matrix``,
        ``entry_keys``, ``entry_labels``, ``dissim_rankings``,
        ``perm_scramble``, ``kernel_inds``), ``entry_labels*`` columns and
        columns holding unhashable values, and ``time_s`` when ``time`` is
        an entry variable (a time x time meta-RDM of time-resolved RDMs);
        list the variables yourself when other columns change along with the
        entry variables (e.g. ``layer_num`` with ``layer``).
    df_name : str, default 'meta_rdm'
        Stored in the ``df_name`` column.
    num_perms : int, default 0
        Number of permuted meta-RDMs to add per group, metric and subset;
        each scrambles the entries of every sub-RDM with its own permutation.
    dissim_metrics : list, default ['corr']
        Metrics comparing two upper triangles, as in :func:`compute_rdms`
        (names from :data:`METRIC_NAMES`, ``(name, func)`` pairs or
        ``(name, func, 'matrix')`` triples).
    random_state : int, numpy.random.Generator or None, default 0
        Seed of the permutations.
    verbose : bool, default True
        Show a progress bar over groups.
    collect : bool, default True
        With a dataset ``out_fname``: return the meta frame read back from
        it, or ``None`` with ``collect=False``.

    Returns
    -------
    pandas.DataFrame or None
        One row per group x entry-variable subset x metric x permutation,
        columns in alphabetical order (``None`` for a dataset ``out_fname``
        with ``collect=False``):

        * the grouping variables, named for the level below where needed
          (``dissim_metric`` -> ``dissim_metric_sub``, ``perm`` ->
          ``perm_sub``, ``dissim_metric_sub`` -> ``dissim_metric_sub_sub``);
        * ``matrix``: the meta-RDM (float64, symmetric, zero diagonal);
        * ``dissim_metric``: the metric comparing the sub-RDMs;
        * ``df_name``: ``df_name``;
        * ``perm``: ``'orig_data'`` or the permutation number;
        * ``entry_var_subset``: the subset name;
        * ``dissim_rankings``: greedy most-dissimilar order of the entries
          (:func:`~pytorch_feature_analysis.get_extreme_dissims_total`);
        * ``entry_keys``, ``entry_labels``: the entries, as tuples of
          entry-variable values and as ``{variable: value}`` dicts;
        * ``entry_keys_sub``, ``entry_labels_sub``: the entries of the
          sub-RDMs;
        * every column of ``rdm_df`` ending in ``'_sub'`` that is not a
          grouping variable and is constant within every group (e.g.
          ``entry_keys_sub``), with one more ``'_sub'``, so a third-order
          frame still says how each level was made.

    Raises
    ------
    InvalidInputError
        When a needed column is missing (named in the message), for entries
        repeated in a group, sub-RDMs of a group with different entries, a
        subset holding one entry of a group, unknown metrics or subset keys,
        and other invalid arguments.

    Notes
    -----
    As in the original library, when a sub-RDM row is NaN everywhere off the
    diagonal (an entry without a defined dissimilarity), that entry is left
    out of the comparisons of that RDM, pair by pair. Other NaN make the cell
    NaN.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> def rdm():
    ...     m = rng.random((3, 3))
    ...     m = m + m.T
    ...     np.fill_diagonal(m, 0)
    ...     return m
    >>> rdm_df = pd.DataFrame({
    ...     'layer': ['conv1', 'conv1', 'fc1', 'fc1'],
    ...     'obj': ['cat', 'dog', 'cat', 'dog'],
    ...     'dissim_metric': 'corr',
    ...     'matrix': [rdm() for _ in range(4)],
    ...     'entry_keys': [(('red',), ('green',), ('blue',))] * 4,
    ...     'entry_labels': [({'color': 'red'}, {'color': 'green'}, {'color': 'blue'})] * 4})
    >>> meta = get_meta_rdms(rdm_df, None, ['layer'], grouping_variables=['obj', 'dissim_metric'],
    ...                      verbose=False)
    >>> meta[['obj', 'dissim_metric_sub', 'entry_keys']]
       obj dissim_metric_sub          entry_keys
    0  cat              corr  ((conv1,), (fc1,))
    1  dog              corr  ((conv1,), (fc1,))
    >>> meta['matrix'][0].shape
    (2, 2)
    """
    source = DatasetSource(rdm_df) if isinstance(rdm_df, (str, os.PathLike)) else None
    rdm_df = source.skeleton() if source is not None else rdm_df
    check_rdm_frame(rdm_df, needed=())
    entry_variables = _name_list(entry_variables, "entry_variables")
    metrics = resolve_metrics(dissim_metrics, param_name="dissim_metrics",
                              func_name="get_meta_rdms")
    subsets = _check_subsets(entry_var_subsets, entry_variables)
    num_perms = check_int(num_perms, "num_perms", minimum=0)
    if not isinstance(df_name, str):
        raise fail("df_name", "a string", df_name)
    output = MetaOutput(out_fname, check_bool(collect, "collect"),
                        source.folder if source is not None else None)
    seed = _permutation_seed(random_state)
    grouping_variables = _grouping_variables(rdm_df, grouping_variables, entry_variables)
    check_rdm_frame(rdm_df, needed=[*REQUIRED_COLUMNS, *entry_variables, *grouping_variables])
    _check_variable_roles(rdm_df, entry_variables, grouping_variables)

    rename = {column: level_down_name(column) for column in rdm_df.columns}
    frame = rdm_df.rename(columns=rename)
    group_columns = [rename[column] for column in grouping_variables]
    entry_columns = [rename[column] for column in entry_variables]
    keys_in_frame = set(zip(*(frame[column].tolist() for column in entry_columns)))
    _check_subset_keys(subsets, keys_in_frame)
    groups = _split_groups(frame, group_columns)
    candidates = [rename[c] for c in rdm_df.columns
                  if c.endswith("_sub") and c not in grouping_variables]
    carried = [c for c in candidates if all(_is_constant(group[c]) for _, group in groups)]

    output.start()
    progress = tqdm(groups, desc="get_meta_rdms", unit="group", disable=not verbose)
    for group_values, group in progress:
        if source is not None:
            group = source.group_with_matrices(group, dict(zip(grouping_variables, group_values)),
                                               dict(zip(entry_variables, entry_columns)))
        fixed = dict(zip(group_columns, group_values))
        fixed.update({column: copy.deepcopy(group[column].iloc[0]) for column in carried})
        description = _group_description(grouping_variables, group_values)
        output.add(_group_rows(group, fixed, description, entry_columns, entry_variables,
                               subsets, metrics, num_perms, (seed, group_values), df_name))
    return output.close()


def _permutation_seed(random_state: Any) -> int:
    """An int seed: ``random_state`` itself, or drawn from a Generator (fresh for ``None``)."""
    if random_state is None or isinstance(random_state, np.random.Generator):
        return int(np.random.default_rng(random_state).integers(2**63))
    return check_int(random_state, "random_state", minimum=0)


def _grouping_variables(
    rdm_df: pd.DataFrame, grouping_variables: Any, entry_variables: list
) -> list:
    if isinstance(grouping_variables, str) and grouping_variables == "rest":
        return _rest_grouping_variables(rdm_df, entry_variables)
    if isinstance(grouping_variables, (list, tuple)) and not grouping_variables:
        return []
    return _name_list(grouping_variables, "grouping_variables")


def _group_rows(group: pd.DataFrame, fixed: dict, description: str, entry_columns: list,
                entry_variables: list, subsets: list, metrics: list, num_perms: int,
                group_seed: tuple, df_name: str) -> list[dict]:
    """The meta-RDM rows of one group: per subset, permutation and metric."""
    keys = list(zip(*(group[column].tolist() for column in entry_columns)))
    _check_unique_entries(keys, entry_variables, description)
    stack, sub_keys, sub_labels = _group_stack(group, description)
    rows = []
    for subset_name, subset_keys in subsets:
        chosen = _subset_indices(keys, subset_keys)
        if not chosen:
            continue
        if len(chosen) < 2:
            raise problem(
                f"subset {subset_name!r} of group {description} holds one entry "
                f"({keys[chosen[0]]!r}); a meta-RDM needs at least 2. Choose other entry "
                "variables or subsets."
            )
        chosen_keys = tuple(keys[index] for index in chosen)
        for perm in ["orig_data", *range(1, num_perms + 1)]:
            sub_stack = stack[chosen]
            if perm != "orig_data":
                sub_stack = _scrambled(sub_stack, (*group_seed, subset_name, perm))
            for metric, matrix in zip(metrics, _meta_matrices(sub_stack, metrics)):
                rows.append({
                    **fixed, "matrix": matrix, "dissim_metric": metric.name, "df_name": df_name,
                    "perm": perm, "entry_var_subset": subset_name,
                    "dissim_rankings": dissim_rankings(matrix), "entry_keys": chosen_keys,
                    "entry_labels": tuple(dict(zip(entry_columns, key)) for key in chosen_keys),
                    "entry_keys_sub": sub_keys, "entry_labels_sub": sub_labels,
                })
    return rows


def _check_variable_roles(
    rdm_df: pd.DataFrame, entry_variables: list[str], grouping_variables: list[str]
) -> None:
    both = [column for column in grouping_variables if column in entry_variables]
    if both:
        raise InvalidInputError(
            f"The 'grouping_variables' parameter of get_meta_rdms must not repeat entry "
            f"variables; got {both} in both instead."
        )
    per_rdm = [
        column
        for column in [*grouping_variables, *entry_variables]
        if column in (*REQUIRED_COLUMNS, "dissim_rankings")
    ]
    if per_rdm:
        raise InvalidInputError(
            f"The grouping and entry variables of get_meta_rdms must be condition "
            f"columns, not {per_rdm}, which describe each RDM's own entries."
        )
    roles = (("grouping_variables", grouping_variables), ("entry_variables", entry_variables))
    for role, columns in roles:
        unhashable = [column for column in columns if not _is_hashable_column(rdm_df[column])]
        if unhashable:
            raise InvalidInputError(
                f"The {role!r} parameter of get_meta_rdms must name columns of hashable "
                f"values (str, numbers, tuples); got {unhashable}, which hold lists, "
                f"arrays or dicts, instead."
            )


def _check_subset_keys(subsets: list[tuple[str, Any]], keys_in_frame: set) -> None:
    for name, keys in subsets:
        if isinstance(keys, str):
            continue
        unknown = [key for key in keys if key not in keys_in_frame]
        if unknown:
            raise InvalidInputError(
                f"The 'entry_var_subsets' parameter of get_meta_rdms must list entries "
                f"present in the frame; got {unknown} in subset {name!r}, which match no "
                f"RDM, instead."
            )


@public
def subset_rdm_df(df: pd.DataFrame, entry_keys: Any) -> pd.DataFrame:
    """Keep only some entries of every RDM of a frame.

    Parameters
    ----------
    df : pandas.DataFrame
        An RDM frame (from :func:`get_rdms` or :func:`get_meta_rdms`) with
        ``matrix`` and ``entry_keys`` columns. It is not modified.
    entry_keys : list
        Entry keys to keep (tuples; plain values stand for 1-tuples). Each RDM
        keeps those of its entries that are listed, in its own order.

    Returns
    -------
    pandas.DataFrame
        A copy of ``df`` with ``matrix`` (the sub-matrix), ``entry_keys`` and,
        when present, ``entry_labels`` (tuples) and ``dissim_rankings``
        (recomputed with :func:`~pytorch_feature_analysis.get_extreme_dissims_total`) updated; the other
        columns unchanged.

    Raises
    ------
    ValueError
        When a listed key is in no RDM of the frame.

    Examples
    --------
    >>> df = pd.DataFrame({'matrix': [np.array([[0., 1., 2.], [1., 0., 3.], [2., 3., 0.]])],
    ...                    'entry_keys': [(('red',), ('green',), ('blue',))]})
    >>> small = subset_rdm_df(df, ['red', 'blue'])
    >>> small['entry_keys'][0]
    (('red',), ('blue',))
    >>> small['matrix'][0]
    array([[0., 2.],
           [2., 0.]])
    """
    check_rdm_frame(df, "df", ["matrix", "entry_keys"])
    wanted = {_as_key(key) for key in entry_keys}
    present = {_as_key(key) for keys in df["entry_keys"] for key in keys}
    unknown = sorted(wanted - present, key=repr)
    if unknown:
        raise InvalidInputError(
            f"The 'entry_keys' parameter of subset_rdm_df must list entries of the frame's "
            f"RDMs; got {unknown}, which are in no RDM, instead."
        )
    has_labels = "entry_labels" in df.columns
    has_rankings = "dissim_rankings" in df.columns
    matrices, keys_list, labels_list, rankings = [], [], [], []
    for position in range(len(df)):
        row_keys = df["entry_keys"].iloc[position]
        keep = [index for index, key in enumerate(row_keys) if _as_key(key) in wanted]
        matrix = np.asarray(df["matrix"].iloc[position])[np.ix_(keep, keep)]
        matrices.append(matrix)
        keys_list.append(tuple(row_keys[index] for index in keep))
        if has_labels:
            row_labels = df["entry_labels"].iloc[position]
            labels_list.append(tuple(row_labels[index] for index in keep))
        if has_rankings:
            rankings.append(dissim_rankings(matrix) if keep else ())
    result = df.copy()
    result["matrix"] = matrices
    result["entry_keys"] = keys_list
    if has_labels:
        result["entry_labels"] = labels_list
    if has_rankings:
        result["dissim_rankings"] = rankings
    return result


def _tolerance_indices(matrix: np.ndarray, labels: Sequence[dict], row_name: Any) -> dict:
    variables = list(labels[0].keys())
    if len(variables) != 2 or any(set(label) != set(variables) for label in labels):
        raise InvalidInputError(
            f"The RDMs given to compute_tolerances must have exactly two entry variables, "
            f"the same for every entry; got {variables} in row {row_name!r} instead."
        )
    same = {}
    for variable in variables:
        codes = pd.factorize(pd.Series([label[variable] for label in labels], dtype=object))[0]
        same[variable] = codes[:, None] == codes[None, :]
    values = {}
    for variable, other in (variables, variables[::-1]):
        only_variable = matrix[~same[variable] & same[other]]
        only_other = matrix[same[variable] & ~same[other]]
        d_variable = only_variable.mean() if only_variable.size else np.nan
        d_other = only_other.mean() if only_other.size else np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            values[f"{variable}_tolerance"] = (d_other - d_variable) / (d_other + d_variable)
    return values


@public
def compute_tolerances(input_df: pd.DataFrame) -> pd.DataFrame:
    """Tolerance index of each of two entry variables, for every RDM of a frame.

    For RDMs whose entries cross two variables A and B, with ``d_A`` the mean
    dissimilarity between entries that differ only in A and ``d_B`` the mean
    between entries that differ only in B::

        A_tolerance = (d_B - d_A) / (d_B + d_A)

    1 means changing A changes nothing (the representation is tolerant to A)
    while B matters; -1 the reverse; 0 that both matter equally.

    Parameters
    ----------
    input_df : pandas.DataFrame
        RDM frame with ``matrix`` and ``entry_labels`` columns, whose entry
        labels hold exactly two variables. It is not modified.

    Returns
    -------
    pandas.DataFrame
        A copy of ``input_df`` with one ``<variable>_tolerance`` column (float)
        per entry variable.

    Examples
    --------
    >>> labels = ({'shape': 'cat', 'color': 'red'}, {'shape': 'cat', 'color': 'blue'},
    ...           {'shape': 'dog', 'color': 'red'}, {'shape': 'dog', 'color': 'blue'})
    >>> matrix = np.array([[0., 1., 3., 4.], [1., 0., 4., 3.], [3., 4., 0., 1.], [4., 3., 1., 0.]])
    >>> df = compute_tolerances(pd.DataFrame({'matrix': [matrix], 'entry_labels': [labels]}))
    >>> float(df['color_tolerance'][0]), float(df['shape_tolerance'][0])
    (0.5, -0.5)
    """
    check_rdm_frame(input_df, "input_df", ["matrix", "entry_labels"])
    rows = zip(input_df.index, input_df["matrix"], input_df["entry_labels"])
    values = [
        _tolerance_indices(np.asarray(matrix, dtype=np.float64), labels, name)
        for name, matrix, labels in rows
    ]
    result = input_df.copy()
    for column in dict.fromkeys(column for row in values for column in row):
        result[column] = [row.get(column, np.nan) for row in values]
    return result
