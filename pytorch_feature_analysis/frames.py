"""Generic helpers for long-format frames: filter, filter-and-sort, aggregate, pivot.

They work on any frame, including RDM frames whose object columns hold tuples
(``layer_label``), dicts or arrays, and they never modify their input.
"""

import builtins

import numpy as np
import pandas as pd

from ._validation import check_columns, fail, public

__all__ = ["df_subset", "df_filter", "df_filtsort", "df_agg", "df_pivot", "df_inds2cols"]

# numpy and builtin reductions mean what pandas' named reductions mean (std and
# var with ddof=1), as they did when the original library was written.
_PANDAS_REDUCTIONS = {
    builtins.sum: "sum",
    builtins.min: "min",
    builtins.max: "max",
    np.sum: "sum",
    np.nansum: "sum",
    np.mean: "mean",
    np.nanmean: "mean",
    np.median: "median",
    np.nanmedian: "median",
    np.std: "std",
    np.nanstd: "std",
    np.var: "var",
    np.nanvar: "var",
    np.min: "min",
    np.nanmin: "min",
    np.max: "max",
    np.nanmax: "max",
    np.prod: "prod",
    np.nanprod: "prod",
}


@public
def df_subset(df, subset_list):
    """Keep the rows whose columns have the requested values.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to filter (not modified).
    subset_list : list of (column, value) pairs
        Each pair keeps the rows where ``column`` equals ``value``; a list
        value keeps the rows equal to any of its elements, and so does an
        array, ``Index`` or ``Series`` of values (e.g. from ``.unique()``) for
        a column that holds no arrays. Any other value, a tuple such as the
        ``layer_label`` ``('conv1', 1)`` or a numpy scalar included, is one
        value. A single pair may be passed on its own.

    Returns
    -------
    pandas.DataFrame
        The matching rows, with all columns and their original index labels.

    Raises
    ------
    InvalidInputError
        If ``df`` is not a DataFrame, a pair names a column it lacks, or the
        pairs are malformed.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame.from_dict({'city': ['New York', 'New York', 'Seattle', 'Seattle',
    ...                                       'Seattle', 'Boston', 'Boston', 'Boston'],
    ...                              'gender': ['Male', 'Male', 'Female', 'Female', 'Male',
    ...                                         'Male', 'Female', 'Female'],
    ...                              'height': [70, 72, 66, 65, 69, 73, 64, 63],
    ...                              'income': [50000, 100000, 80000, 150000, 120000,
    ...                                         90000, 70000, 110000]})
    >>> df_subset(df, [('city', ['New York', 'Seattle']), ('gender', 'Male')])
           city gender  height  income
    0  New York   Male      70   50000
    1  New York   Male      72  100000
    4   Seattle   Male      69  120000

    A tuple is one value:

    >>> rdms = pd.DataFrame({'layer_label': [('conv1', 1), ('relu1', 2)], 'x': [0.1, 0.2]})
    >>> df_subset(rdms, [('layer_label', ('relu1', 2))])
      layer_label    x
    1  (relu1, 2)  0.2
    """
    pairs = _pairs(subset_list, "subset_list", "(column, value)")
    check_columns(df, [column for column, _ in pairs])
    keep = np.ones(len(df), dtype=bool)
    for column, value in pairs:
        series = df[column]
        value = _as_value_or_values(series, value)
        if isinstance(value, list):
            keep &= _positions(series, value) >= 0
        else:
            keep &= _equals(series, value)
    return df[keep].copy()


df_filter = df_subset


@public
def df_filtsort(df, sortlist):
    """Keep the rows with the listed values and sort them in the listed order.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to filter and sort (not modified).
    sortlist : list of (column, values) pairs
        For each pair, rows whose ``column`` holds none of ``values`` are
        dropped and the rest are ordered as ``values`` lists them. Earlier
        pairs take priority; ties keep their order in ``df``. A single pair
        may be passed on its own.

    Returns
    -------
    pandas.DataFrame
        The kept rows, sorted, with all columns and their original index
        labels.

    Raises
    ------
    InvalidInputError
        If ``df`` is not a DataFrame, a pair names a column it lacks, or the
        pairs are malformed.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame.from_dict({'city': ['New York', 'New York', 'New York', 'Seattle',
    ...                                       'Seattle', 'Seattle', 'Boston', 'Boston',
    ...                                       'Boston'],
    ...                              'gender': ['Male', 'Male', 'Female', 'Female', 'Female',
    ...                                         'Male', 'Male', 'Female', 'Female'],
    ...                              'height': [70, 72, 65, 66, 65, 69, 73, 64, 63],
    ...                              'income': [50000, 100000, 120000, 80000, 150000, 120000,
    ...                                         90000, 70000, 110000]})
    >>> df_filtsort(df, [('city', ['Seattle', 'New York']), ('gender', ['Female', 'Male'])])
           city  gender  height  income
    3   Seattle  Female      66   80000
    4   Seattle  Female      65  150000
    5   Seattle    Male      69  120000
    2  New York  Female      65  120000
    0  New York    Male      70   50000
    1  New York    Male      72  100000
    """
    pairs = _pairs(sortlist, "sortlist", "(column, values)")
    check_columns(df, [column for column, _ in pairs])
    for column, values in pairs:
        if not isinstance(values, (list, tuple)):
            raise fail(
                "sortlist",
                "pairs of a column and a list of values",
                f"{values!r} for column {column!r}",
                raw=True,
            )
    keys = [_positions(df[column], list(values)) for column, values in pairs]
    keep = np.logical_and.reduce([key >= 0 for key in keys]) if keys else np.ones(len(df), bool)
    order = np.lexsort([key[keep] for key in reversed(keys)]) if keys else slice(None)
    return df[keep].iloc[order].copy()


@public
def df_agg(df, group_vars, data_vars, agg_funcs):
    """Aggregate columns within groups, with flat ``<column>_<function>`` names.

    Parameters
    ----------
    df : pandas.DataFrame
        The frame to aggregate (not modified).
    group_vars : list of str or 'rem'
        Columns whose value combinations form the groups; ``'rem'`` means
        every column not in ``data_vars``.
    data_vars : list of str or 'rem'
        Columns to aggregate; ``'rem'`` means every column not in
        ``group_vars``.
    agg_funcs : function, str, or list of them
        Reductions, e.g. ``[np.mean, np.std]`` or ``['mean', 'std']``. numpy
        reductions act as pandas' (``np.std`` is the sample standard
        deviation, ``ddof=1``) and skip NaN.

    Returns
    -------
    pandas.DataFrame
        One row per group (sorted by the group values) with columns:

        - the ``group_vars``, in order;
        - for a list of functions, ``<data_var>_<function name>`` for each
          data variable and function (e.g. ``height_mean``); for a single
          function, the ``data_vars`` names.

    Raises
    ------
    InvalidInputError
        If ``df`` is not a DataFrame or a named column is missing.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame.from_dict({'city': ['New York', 'New York', 'New York', 'New York',
    ...                                       'Boston', 'Boston', 'Boston', 'Boston'],
    ...                              'gender': ['Male', 'Male', 'Female', 'Female', 'Male',
    ...                                         'Male', 'Female', 'Female'],
    ...                              'height': [70, 72, 66, 65, 69, 73, 64, 63],
    ...                              'income': [50000, 100000, 80000, 150000, 120000,
    ...                                         90000, 70000, 110000]})
    >>> df_agg(df, ['city', 'gender'], ['height', 'income'], [np.mean, np.std])
           city  gender  height_mean  height_std  income_mean    income_std
    0    Boston  Female         63.5    0.707107      90000.0  28284.271247
    1    Boston    Male         71.0    2.828427     105000.0  21213.203436
    2  New York  Female         65.5    0.707107     115000.0  49497.474683
    3  New York    Male         71.0    1.414214      75000.0  35355.339059
    """
    check_columns(df, [])  # a DataFrame, before the column lists are read
    if _is_rem(group_vars) and _is_rem(data_vars):
        raise fail(
            "group_vars",
            "a list of columns when data_vars is 'rem' (the two must not both be 'rem')",
            group_vars,
        )
    if not _is_rem(data_vars):
        data_vars = _as_list(data_vars)
        check_columns(df, data_vars)
    if not _is_rem(group_vars):
        group_vars = _as_list(group_vars)
        check_columns(df, group_vars)
    if _is_rem(data_vars):
        data_vars = [c for c in df.columns if c not in group_vars]
    if _is_rem(group_vars):
        group_vars = [c for c in df.columns if c not in data_vars]
    if isinstance(agg_funcs, list):
        funcs = [_PANDAS_REDUCTIONS.get(f, f) if callable(f) else f for f in agg_funcs]
    else:
        funcs = _PANDAS_REDUCTIONS.get(agg_funcs, agg_funcs) if callable(agg_funcs) else agg_funcs
    aggregated = df.groupby(group_vars)[data_vars].agg(funcs)
    if isinstance(agg_funcs, list):
        aggregated.columns = [f"{column}_{func}" for column, func in aggregated.columns]
    return df_inds2cols(aggregated)


@public
def df_pivot(df, index_cols, var_cols, value_cols, aggfunc="mean"):
    """Pivot to wide form with several value columns and flat column names.

    Parameters
    ----------
    df : pandas.DataFrame
        The long-format frame (not modified).
    index_cols : str or list of str
        Columns that identify the output rows.
    var_cols : str or list of str
        Columns whose values become output columns.
    value_cols : str or list of str
        Columns holding the values to spread.
    aggfunc : str or function, default 'mean'
        How to combine several values that land in one cell (numpy
        reductions act as pandas' named ones).

    Returns
    -------
    pandas.DataFrame
        One row per combination of ``index_cols`` values (sorted), with
        columns:

        - the ``index_cols``, in order;
        - for each value column (in order) and each combination of
          ``var_cols`` values (sorted): the var value itself when there is
          one var column and one value column, else the var values and the
          value column joined by ``'_'`` (e.g. ``Female_height``).

    Raises
    ------
    InvalidInputError
        If ``df`` is not a DataFrame or a named column is missing.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame.from_dict({'city': ['New York', 'New York', 'New York', 'Seattle',
    ...                                       'Seattle', 'Seattle', 'Boston', 'Boston',
    ...                                       'Boston'],
    ...                              'gender': ['Male', 'Male', 'Female', 'Female', 'Female',
    ...                                         'Male', 'Male', 'Female', 'Female'],
    ...                              'height': [70, 72, 65, 66, 65, 69, 73, 64, 63],
    ...                              'income': [50000, 100000, 120000, 80000, 150000, 120000,
    ...                                         90000, 70000, 110000]})
    >>> df_pivot(df, ['city'], ['gender'], ['height', 'income'])
           city  Female_height  Male_height  Female_income  Male_income
    0    Boston           63.5         73.0        90000.0      90000.0
    1  New York           65.0         71.0       120000.0      75000.0
    2   Seattle           65.5         69.0       115000.0     120000.0
    """
    index_cols, var_cols, value_cols = map(_as_list, (index_cols, var_cols, value_cols))
    check_columns(df, [*index_cols, *var_cols, *value_cols])
    if callable(aggfunc):
        aggfunc = _PANDAS_REDUCTIONS.get(aggfunc, aggfunc)
    table = df.pivot_table(values=value_cols, index=index_cols, columns=var_cols, aggfunc=aggfunc)
    parts = []
    for value_col in value_cols:
        part = table[value_col]
        var_values = [key if isinstance(key, tuple) else (key,) for key in part.columns]
        if len(value_cols) == 1 and len(var_cols) == 1:
            names = [key[0] for key in var_values]
        else:
            suffix = (value_col,) if len(value_cols) > 1 else ()
            names = ["_".join(map(str, key + suffix)) for key in var_values]
        parts.append(part.set_axis(pd.Index(names, tupleize_cols=False), axis=1))
    wide = pd.concat(parts, axis=1)
    wide.columns.name = None
    return wide.reset_index()


@public
def df_inds2cols(df):
    """Turn every index level of a frame (or series) into a leading column.

    Parameters
    ----------
    df : pandas.DataFrame or pandas.Series
        The frame or series (not modified).

    Returns
    -------
    pandas.DataFrame
        The index levels as the first columns (named as the levels; an
        unnamed level becomes ``'index'`` or ``'level_<i>'``), then the
        original columns (a series becomes one column named after it, or
        ``0``), with a fresh ``RangeIndex``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({'city': ['Boston', 'Boston', 'Seattle'],
    ...                    'gender': ['Male', 'Female', 'Male'],
    ...                    'height': [73, 64, 69]})
    >>> means = df.groupby(['city', 'gender'])['height'].mean()
    >>> df_inds2cols(means)
          city  gender  height
    0   Boston  Female    64.0
    1   Boston    Male    73.0
    2  Seattle    Male    69.0
    """
    if isinstance(df, pd.Series):
        df = df.to_frame()
    if not isinstance(df, pd.DataFrame):
        raise fail("df", "a pandas DataFrame or Series", type(df).__name__, raw=True)
    return df.reset_index()


def _pairs(pairs, param, shape):
    if isinstance(pairs, tuple):
        pairs = [pairs]
    if not isinstance(pairs, list) or not all(
        isinstance(pair, (tuple, list)) and len(pair) == 2 for pair in pairs
    ):
        raise fail(param, f"a list of {shape} pairs", pairs)
    return [tuple(pair) for pair in pairs]


def _as_list(columns):
    return list(columns) if isinstance(columns, (list, tuple, pd.Index)) else [columns]


def _is_rem(value):
    return isinstance(value, str) and value == "rem"


def _as_value_or_values(series, value):
    """A list for several values (arrays of values included), else the one value."""
    if isinstance(value, np.ndarray) and value.ndim == 0:
        return value.item()
    if isinstance(value, (pd.Index, pd.Series, pd.api.extensions.ExtensionArray)):
        return list(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        holds_arrays = any(isinstance(item, np.ndarray) for item in series)
        return value if holds_arrays else value.tolist()
    return value


def _equals(series, value):
    """Boolean mask of the rows equal to ``value`` (one value, even a tuple)."""
    if series.dtype != object and pd.api.types.is_scalar(value):
        return (series == value).to_numpy(dtype=bool, na_value=False)
    return np.fromiter((_same(item, value) for item in series), dtype=bool, count=len(series))


def _same(item, value):
    if isinstance(item, np.ndarray) or isinstance(value, np.ndarray):
        return (
            isinstance(item, np.ndarray)
            and isinstance(value, np.ndarray)
            and item.shape == value.shape
            and bool(np.all(item == value))
        )
    try:
        return bool(item == value)
    except (TypeError, ValueError):
        return False


def _positions(series, values):
    """Position in ``values`` of each row's value (the first match), or -1."""
    positions = np.full(len(series), -1)
    for position in range(len(values) - 1, -1, -1):
        positions[_equals(series, values[position])] = position
    return positions
