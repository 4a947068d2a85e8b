"""Running work in parallel: local processes through joblib, or a Dask cluster.

On one machine the caller chooses the joblib backend: local processes by
default, or any backend active in a ``with joblib.parallel_backend(...)``
block. Beyond one machine, :func:`run_on_cluster` submits tasks to the
workers of a ``dask.distributed`` cluster (the ``dask`` extra), retrying a
task whose worker was lost or failed.
"""

from __future__ import annotations

import itertools
import os
import sys
from typing import Any, Callable, Iterable, Iterator

import joblib

from ._validation import check_choice, check_int, fail, public

__all__ = ["parallel_process"]


def _threads_per_worker(num_cores: int) -> int:
    return max(1, (os.cpu_count() or 1) // max(1, num_cores))


def _call_with_threads(func: Callable, threads: int, kwargs: dict) -> Any:
    import torch

    torch.set_num_threads(threads)
    return func(**kwargs)


def imap_ordered(func: Callable, kwargs_list: Iterable[dict],
                 num_cores: int = 1) -> Iterator[Any]:
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
    func: Callable, arg_dict: Any, num_cores: int, method: str = "joblib",
    make_combinations: bool = False,
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
        lists = {key: value if isinstance(value, list) else [value]
                 for key, value in arg_dict.items()}
        kwargs_list = [dict(zip(lists, values)) for values in itertools.product(*lists.values())]
    else:
        kwargs_list = list(arg_dict)
    return list(imap_ordered(func, kwargs_list, num_cores))


# A task that fails (or whose worker dies, which Dask reschedules by itself) is run again this
# many times before the error reaches the caller.
TASK_RETRIES = 2
_CLIENT_EXPECTED = (
    "None, a dask.distributed.Client, or the address of a running Dask scheduler "
    "(e.g. 'tcp://10.0.0.5:8786')"
)


def active_client() -> Any:
    """The ``dask.distributed`` client active in this process, or None."""
    if "distributed" not in sys.modules:  # no client can exist without the module imported
        return None
    import distributed

    try:
        return distributed.default_client()
    except ValueError:
        return None


def connect_client(client: Any) -> tuple[Any, bool]:
    """``(client, opened_here)``: the client given, or one connected to an address."""
    if not isinstance(client, str):
        if type(client).__name__ != "Client" or not hasattr(client, "submit"):
            raise fail("client", _CLIENT_EXPECTED, client)
        return client, False
    try:
        import dask.config
        import distributed
    except ImportError as error:  # pragma: no cover - the dask extra is part of dev
        raise fail("client", "a scheduler address with dask[distributed] installed (pip "
                   "install 'pytorch_feature_analysis[dask]')", client) from error
    timeout = dask.config.get("distributed.comm.timeouts.connect")
    try:
        return distributed.Client(client, timeout=timeout, set_as_default=False), True
    except (OSError, TimeoutError) as error:
        raise fail("client", f"{_CLIENT_EXPECTED} that answers within {timeout}",
                   f"{client!r}, which did not ({type(error).__name__}: {error})",
                   raw=True) from error


def _empty_container(value: Any) -> bool:
    """Whether ``value`` is an empty dict, list or tuple (which Dask cannot scatter)."""
    return isinstance(value, (dict, list, tuple)) and not value


def run_on_cluster(client: Any, func: Callable, calls: Iterable[tuple[str, dict]],
                   shared: dict) -> Iterator[Any]:
    """Run ``func(**shared, **kwargs)`` on the cluster's workers; yield results as they finish.

    ``calls`` are ``(key, kwargs)`` pairs; each key names its Dask task (keys
    must be unique). The ``shared`` values are sent to the workers once
    (e.g. models given as modules) and passed to every call. At most twice
    as many tasks as the cluster has worker threads (4 at least) are
    submitted at a time, so the memory of the submitting process and the
    scheduler does not grow with the number of calls. A task is retried
    :data:`TASK_RETRIES` times; the first error left after that is raised
    here, and the tasks submitted and not done are cancelled.
    """
    import distributed

    scattered = {name: client.scatter(value, broadcast=True, hash=False)
                 if not _empty_container(value) else value for name, value in shared.items()}
    waiting = iter(calls)

    def submit(count: int) -> list:
        return [client.submit(func, key=key, retries=TASK_RETRIES, pure=False, **scattered,
                              **kwargs) for key, kwargs in itertools.islice(waiting, count)]

    def window() -> int:
        return max(4, 2 * sum(client.nthreads().values()))

    running = distributed.as_completed(submit(window()), loop=client.loop)

    def submit_more() -> None:
        running.update(submit(max(0, window() - running.count())))

    try:
        for future in running:
            result = future.result()
            future.release()
            submit_more()
            yield result
    finally:
        for future in running.futures:
            future.cancel()
