"""The one exception class and the checks every public function shares.

Every message has one shape, ``The 'x' parameter of f must be ...; got ...
instead.``, and names the public function the user called, even when the check
runs inside a function it calls: :func:`public` records the outermost public
call, and :func:`fail` writes the message.

Examples
--------
>>> @public
... def get_things(batch_size=32):
...     return check_int(batch_size, 'batch_size', minimum=1)
>>> get_things(0)
Traceback (most recent call last):
...
pytorch_feature_analysis._validation.InvalidInputError: The 'batch_size' parameter of get_things must be an int >= 1; got 0 instead.
"""

from __future__ import annotations

import contextvars
import functools
import math
import numbers
import os
import re
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

__all__ = ["InvalidInputError"]


class InvalidInputError(ValueError, TypeError):
    """A bad value given to the library: the message names it and what was expected.

    A subclass of :class:`ValueError` (and :class:`TypeError`), so code that
    catches either keeps working.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> try:
    ...     pfa.compare_rdms([[0.0]], method='tau')
    ... except pfa.InvalidInputError as error:
    ...     print(error)  # doctest: +ELLIPSIS
    The 'method' parameter of compare_rdms must be one of ...; got 'tau' instead.
    """


_CALLER: contextvars.ContextVar[str | None] = contextvars.ContextVar("pfa_caller", default=None)


def public(func: Callable) -> Callable:
    """Mark ``func`` as a public entry point: checks inside it name it.

    Nested public calls keep the outermost name, so ``get_rdms(batch_size=0)``
    names ``get_rdms`` although ``get_activations`` checks the value.
    """

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _CALLER.get() is not None:
            return func(*args, **kwargs)
        token = _CALLER.set(func.__name__)
        try:
            return func(*args, **kwargs)
        finally:
            _CALLER.reset(token)

    return wrapper


def caller(default: str = "pytorch_feature_analysis") -> str:
    """The public function the user called (``default`` outside any)."""
    return _CALLER.get() or default


def describe(value: Any, width: int = 100) -> str:
    """``repr(value)``, cut to ``width`` characters."""
    text = repr(value)
    return text if len(text) <= width else text[: width - 3] + "..."


def fail(param: str, expected: str, got: Any, *, raw: bool = False) -> InvalidInputError:
    """The error for parameter ``param``: it ``must be expected; got got instead``.

    ``got`` is shown with :func:`describe` unless ``raw`` (then as given).
    Returned, not raised, so the caller writes ``raise fail(...)``.
    """
    shown = got if raw else describe(got)
    return InvalidInputError(
        f"The {param!r} parameter of {caller()} must be {expected}; got {shown} instead."
    )


def problem(message: str) -> InvalidInputError:
    """An error about the input as a whole, prefixed with the public function's name."""
    return InvalidInputError(f"{caller()}: {message}")


def check_int(
    value: Any, param: str, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    """An integer (Python or numpy; never a bool or float) within the bounds."""
    bounds = []
    if minimum is not None:
        bounds.append(f">= {minimum}")
    if maximum is not None:
        bounds.append(f"<= {maximum}")
    expected = "an int" + (" " + " and ".join(bounds) if bounds else "")
    if not isinstance(value, numbers.Integral) or isinstance(value, bool):
        raise fail(param, expected, value)
    value = int(value)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise fail(param, expected, value)
    return value


def check_number(
    value: Any,
    param: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    exclusive_maximum: bool = False,
    allow_none: bool = False,
    allow_inf: bool = False,
    what: str | None = None,
) -> float | None:
    """A real number (Python or numpy; never a bool, NaN or a string) within the bounds.

    Returned as a float (``None`` as is when ``allow_none``). Infinite values
    pass only with ``allow_inf``, and then only within the bounds. ``what``
    says what the number means (e.g. ``'seconds'``) in the message.

    Examples
    --------
    >>> check_number(2, 'fps', minimum=0, exclusive_minimum=True)
    2.0
    >>> check_number(0.5, 'decay', minimum=0, maximum=1, exclusive_maximum=True)
    0.5
    >>> try:
    ...     check_number(True, 'dt', minimum=0, exclusive_minimum=True)
    ... except InvalidInputError as error:
    ...     print(error)
    The 'dt' parameter of pytorch_feature_analysis must be a finite number > 0; got True instead.
    """
    if value is None and allow_none:
        return None
    expected = _number_expected(minimum, maximum, exclusive_minimum, exclusive_maximum,
                                allow_inf)
    expected = ("None or " if allow_none else "") + expected + (f" ({what})" if what else "")
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise fail(param, expected, value)
    try:
        number = float(value)
    except OverflowError as error:
        raise fail(param, expected, value) from error
    below = minimum is not None and (
        number < minimum or (exclusive_minimum and number == minimum))
    above = maximum is not None and (
        number > maximum or (exclusive_maximum and number == maximum))
    if math.isnan(number) or (math.isinf(number) and not allow_inf) or below or above:
        raise fail(param, expected, value)
    return number


def _number_expected(minimum: float | None, maximum: float | None, exclusive_minimum: bool,
                     exclusive_maximum: bool, allow_inf: bool) -> str:
    """What :func:`check_number` asks for: ``'a number in [0, 1)'``, ``'a finite number > 0'``."""
    if minimum is not None and maximum is not None:
        left, right = "(" if exclusive_minimum else "[", ")" if exclusive_maximum else "]"
        return f"a number in {left}{minimum}, {maximum}{right}"
    kind = "a number" if allow_inf else "a finite number"
    if minimum is not None:
        return f"{kind} {'>' if exclusive_minimum else '>='} {minimum}"
    if maximum is not None:
        return f"{kind} {'<' if exclusive_maximum else '<='} {maximum}"
    return kind


def check_indices(
    values: Any,
    param: str,
    size: int,
    *,
    what: str | None = None,
    where: str | None = None,
    single: bool = False,
) -> list[int]:
    """At least one index, an int (Python or numpy; never a bool) in ``0..size - 1``.

    A list, tuple, array or other non-string iterable of them, or (``single``)
    one alone; returned as a list of ints. ``what`` names the axis
    (``'channel'``) and ``where`` whose axis it is, for the message.

    Examples
    --------
    >>> check_indices((2, 0), 'channels', 3), check_indices(1, 'channels', 3, single=True)
    ([2, 0], [1])
    >>> try:
    ...     check_indices([3, True, 1], 'channels', 3, what='channel', where="layer 'conv1'")
    ... except InvalidInputError as error:
    ...     print(error)  # doctest: +NORMALIZE_WHITESPACE
    The 'channels' parameter of pytorch_feature_analysis must be channel indices (ints) in
    0..2 for layer 'conv1', which has 3 channels; got [3, True] instead.
    """
    expected = f"{what + ' ' if what else ''}indices (ints) in 0..{size - 1}"
    if where:
        expected += f" for {where}" + (f", which has {size} {what}s" if what else "")
    if single and isinstance(values, numbers.Integral) and not isinstance(values, bool):
        values = [values]
    items = check_sequence(values, param, expected)
    bad = [index for index in items if not isinstance(index, numbers.Integral)
           or isinstance(index, bool) or not 0 <= index < size]
    if bad:
        raise fail(param, expected, bad)
    return [int(index) for index in items]


def check_bool(value: Any, param: str) -> bool:
    """``True`` or ``False`` (numpy bools included)."""
    if not isinstance(value, (bool,)) and type(value).__name__ != "bool_":
        raise fail(param, "True or False", value)
    return bool(value)


def check_choice(value: Any, param: str, choices: Sequence) -> Any:
    """One of ``choices``."""
    try:
        known = value in choices
    except TypeError:
        known = False
    if not known:
        raise fail(param, f"one of {tuple(choices)}", value)
    return value


def check_random_state(value: Any, param: str = "random_state") -> int:
    """A seed: an int >= 0."""
    return check_int(value, param, minimum=0)


def check_device(device: Any, param: str = "device", *, here: bool = True):
    """A ``torch.device`` that exists here; CUDA only when torch sees a GPU.

    With ``here=False`` (a device of other machines, e.g. a cluster's
    workers) only its name is checked.
    """
    import torch

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise fail(param, "'cpu', 'cuda', 'cuda:N' or a torch.device", device) from error
    if resolved.type == "cuda":
        if here:
            _check_gpu_here(resolved, device, param)
    elif resolved.type not in ("cpu", "mps"):
        raise fail(param, "'cpu' or 'cuda'", device)
    return resolved


def _check_gpu_here(resolved: Any, device: Any, param: str) -> None:
    """The CUDA device ``resolved`` exists on this machine."""
    import torch

    if not torch.cuda.is_available():
        raise fail(param, "'cpu' on this machine (torch sees no CUDA GPU)", device)
    if resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise fail(param, f"a GPU index below {torch.cuda.device_count()}", device)


_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([kmgt]?i?b?)\s*$", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12}


def parse_memory(value: Any, param: str = "max_memory") -> int:
    """Bytes from an int or a string such as ``'4GB'``, ``'512MiB'`` or ``'1.5 GB'``.

    ``kB``/``MB``/``GB``/``TB`` are powers of 1000, ``KiB``/``MiB``/``GiB``/``TiB``
    powers of 1024.

    Examples
    --------
    >>> parse_memory('4GB'), parse_memory('1.5 GiB'), parse_memory(1024)
    (4000000000, 1610612736, 1024)
    """
    expected = "a positive number of bytes or a size such as '4GB' or '512MiB'"
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        if value <= 0:
            raise fail(param, expected, value)
        return int(value)
    if not isinstance(value, str) or not _SIZE.match(value):
        raise fail(param, expected, value)
    number, unit = _SIZE.match(value).groups()
    unit = unit.lower()
    scale = _UNITS[unit[:1]] if "i" not in unit else 1024 ** "bkmgt".index(unit[0])
    size = int(float(number) * scale)
    if size <= 0:
        raise fail(param, expected, value)
    return size


def check_columns(frame: Any, required: Iterable[str], param: str = "df") -> None:
    """A DataFrame holding every column of ``required``; the error names the missing ones."""
    import pandas as pd

    if not isinstance(frame, pd.DataFrame):
        raise fail(param, "a pandas DataFrame", type(frame).__name__, raw=True)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise fail(
            param,
            f"a frame with the column(s) {missing}",
            f"columns {list(frame.columns)}",
            raw=True,
        )


def check_output_path(path: Any, param: str, suffixes: Sequence[str]) -> Path:
    """A file path ending in one of ``suffixes`` whose folder, if it exists, is a folder."""
    if not isinstance(path, (str, os.PathLike)):
        raise fail(param, f"a file path ending in one of {tuple(suffixes)}", path)
    resolved = Path(os.fspath(path))
    if resolved.suffix.lower() not in suffixes:
        raise fail(param, f"a file path ending in one of {tuple(suffixes)}", os.fspath(path))
    if resolved.is_dir():
        raise fail(param, "a file path, not a folder", os.fspath(path))
    return resolved


def check_sequence(value: Any, param: str, expected: str) -> list:
    """A non-empty list from a list, tuple or other non-string iterable."""
    if value is None or isinstance(value, (str, bytes, dict)):
        raise fail(param, expected, value)
    try:
        items = list(value)
    except TypeError as error:
        raise fail(param, expected, value) from error
    if not items:
        raise fail(param, expected, value)
    return items


def accepts_original_names(**renamed: str) -> Callable:
    """Let a function take the original library's keyword names as aliases.

    ``@accepts_original_names(which_model='base_model')`` makes
    ``f(which_model=x)`` the same call as ``f(base_model=x)``; giving both is
    an error.

    Examples
    --------
    >>> @accepts_original_names(weights_opt='weights')
    ... def load(weights='trained'):
    ...     return weights
    >>> load(weights_opt='random')
    'random'
    """

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in renamed.items():
                if old in kwargs:
                    if new in kwargs:
                        raise InvalidInputError(
                            f"{func.__name__} got both {old!r} (the original library's name) "
                            f"and {new!r}; give one."
                        )
                    kwargs[new] = kwargs.pop(old)
            return func(*args, **kwargs)

        return wrapper

    return decorate
