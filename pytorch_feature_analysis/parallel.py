"""Running work in parallel through joblib.

The caller chooses the backend: local processes by default, or any joblib
backend that is active in a ``with joblib.parallel_backend(...)`` block (for
example ``'dask'`` with a Dask cluster).
"""

from __future__ import annotations

import itertools
import os
from typing import Any, Callable, Iterable, Iterator

import joblib

from ._validation import check_choice, check_int, public

__all__ = ["parallel_process"]


def _threads_per_worker(num_cores: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, num_cores))


def _call_with_threads(func: Callable, threads: int, kwargs: dict) -> Any:
    import torch

    torch.set_num_threads(threads)
    return func(**kwargs)


def imap_ordered(func: Callable, kwargs_list: Iterable[dict], num_cores: int = 1) -> Iterator[Any]:
    """Call ``func(**kwargs)`` for each kwargs dict; yield results in order.

    With ``num_cores == 1`` the calls run here, one after the other. With
    more, they run in ``num_cores`` joblib workers, each limited to its
    share of the CPU's threads for torch, and results are yielded as soon as
    they are ready in order, so the caller can save work as it goes.

    Examples
    --------
    >>> list(imap_ordered(pow, [{'base': 2, 'exp': 3}, {'base': 3, 'exp': 2}]))
    [8, 9]
    """
    num_cores = check_int(num_cores, "num_cores", minimum=1)
    if num_cores == 1:
        for kwargs in kwargs_list:
            yield func(**kwargs)
        return
    threads = _threads_per_worker(num_cores)
    runner = joblib.Parallel(n_jobs=num_cores, return_as="generator")
    yield from runner(
        joblib.delayed(_call_with_threads)(func, threads, kwargs) for kwargs in kwargs_list
    )


@public
def parallel_process(
    func: Callable, arg_dict: Any, num_cores: int, method: str = "joblib", make_combinations: bool = False
) -> list:
    """Run a function many times in parallel, as the original library's helper.

    Parameters
    ----------
    func : callable
    arg_dict : list of dict or dict of lists
        With ``make_combinations=False``, a list of keyword-argument dicts,
        one per call. With ``make_combinations=True``, one dict of lists: every
        combination of the values is one call.
    num_cores : int
        Number of parallel workers.
    method : str, default 'joblib'
        Kept for the original's signature; every method runs through joblib
        (its ``'pathos'`` and ``'multiprocessing'`` map to joblib processes).
    make_combinations : bool, default False

    Returns
    -------
    list
        The results, in the order of the calls.

    Examples
    --------
    >>> def mult(x, y):
    ...     return x * y
    >>> parallel_process(mult, [{'x': 2, 'y': 4}, {'x': 5, 'y': 3}], num_cores=1)
    [8, 15]
    >>> parallel_process(mult, {'x': [2, 1, 3], 'y': [6, 2, 4]}, 1, make_combinations=True)
    [12, 4, 8, 6, 2, 4, 18, 6, 12]
    """
    check_choice(method, "method", ("joblib", "pathos", "multiprocessing"))
    if make_combinations:
        lists = {key: value if isinstance(value, list) else [value] for key, value in arg_dict.items()}
        kwargs_list = [dict(zip(lists, values)) for values in itertools.product(*lists.values())]
    else:
        kwargs_list = list(arg_dict)
    return list(imap_ordered(func, kwargs_list, num_cores))
