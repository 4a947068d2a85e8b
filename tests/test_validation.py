"""The shared checks of _validation: values they return and the messages they write."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from pytorch_feature_analysis._validation import (
    InvalidInputError,
    check_indices,
    check_int,
    check_number,
    public,
)


@pytest.mark.parametrize(
    "value, options, expected",
    [
        (2, {}, 2.0),
        (-3.5, {}, -3.5),
        (np.float32(0.25), {"minimum": 0, "maximum": 1}, 0.25),
        (np.int64(7), {"minimum": 7}, 7.0),
        (0, {"minimum": 0, "maximum": 1, "exclusive_maximum": True}, 0.0),
        (1, {"minimum": 0, "maximum": 1}, 1.0),
        (1e-9, {"minimum": 0, "exclusive_minimum": True}, 1e-9),
        (math.inf, {"minimum": 0, "allow_inf": True}, math.inf),
        (None, {"allow_none": True}, None),
    ],
)
def test_check_number_returns_the_value_as_a_float(value, options, expected):
    checked = check_number(value, "x", **options)
    assert checked == expected
    assert checked is None or type(checked) is float


@pytest.mark.parametrize(
    "value, options, message",
    [
        (True, {}, "a finite number; got True"),
        (np.bool_(False), {}, f"a finite number; got {np.bool_(False)!r}"),
        (math.nan, {"allow_inf": True}, "a number; got nan"),
        (np.float64("nan"), {"minimum": 0}, f"a finite number >= 0; got {np.float64('nan')!r}"),
        (math.inf, {}, "a finite number; got inf"),
        (-math.inf, {"minimum": 0, "allow_inf": True}, "a number >= 0; got -inf"),
        ("0.5", {}, "a finite number; got '0.5'"),
        (None, {}, "a finite number; got None"),
        (1 + 2j, {}, "a finite number; got (1+2j)"),
        (10**400, {}, "a finite number; got 1000"),
        (-0.1, {"minimum": 0}, "a finite number >= 0; got -0.1"),
        (0, {"minimum": 0, "exclusive_minimum": True}, "a finite number > 0; got 0"),
        (1, {"maximum": 1, "exclusive_maximum": True}, "a finite number < 1; got 1"),
        (2, {"maximum": 1}, "a finite number <= 1; got 2"),
        (1, {"minimum": 0, "maximum": 1, "exclusive_minimum": True,
             "exclusive_maximum": True}, "a number in (0, 1); got 1"),
        (-1, {"minimum": 0, "maximum": 1}, "a number in [0, 1]; got -1"),
        ("a", {"allow_none": True, "minimum": 0, "what": "seconds"},
         "None or a finite number >= 0 (seconds); got 'a'"),
    ],
)
def test_check_number_refuses_with_a_message_naming_value_and_expectation(
    value, options, message
):
    pattern = "The 'x' parameter of pytorch_feature_analysis must be " + re.escape(message)
    with pytest.raises(InvalidInputError, match=pattern):
        check_number(value, "x", **options)


def test_check_number_names_the_public_function_called():
    @public
    def play(fps=1.0):
        return check_number(fps, "fps", minimum=0, exclusive_minimum=True)

    assert play(np.float32(2.5)) == 2.5
    with pytest.raises(InvalidInputError, match=r"^The 'fps' parameter of play must be a "
                       r"finite number > 0; got -2 instead\.$"):
        play(-2)


def test_check_int_still_refuses_bools_and_floats():
    assert check_int(np.int16(3), "n", minimum=1) == 3
    for value in (True, 3.0):
        with pytest.raises(InvalidInputError, match="must be an int >= 1; got"):
            check_int(value, "n", minimum=1)


def test_check_indices_returns_python_ints_in_the_given_order():
    assert check_indices(np.array([4, 0, 4]), "x", 5) == [4, 0, 4]
    assert check_indices((np.int8(1),), "x", 2) == [1]
    assert check_indices(np.int64(3), "x", 4, single=True) == [3]
    assert all(type(i) is int for i in check_indices(np.arange(3), "x", 3))


@pytest.mark.parametrize(
    "values, options, got",
    [
        ([0, 5, -1, 2], {}, "[5, -1]"),
        ([True, 1], {}, "[True]"),
        ([1.0], {}, "[1.0]"),
        ([], {}, "[]"),
        (3, {}, "3"),
        (True, {"single": True}, "True"),
        ("01", {}, "'01'"),
        (None, {}, "None"),
    ],
)
def test_check_indices_names_the_bad_indices(values, options, got):
    pattern = (r"^The 'x' parameter of pytorch_feature_analysis must be indices \(ints\) in "
               r"0\.\.4; got " + re.escape(got) + r" instead\.$")
    with pytest.raises(InvalidInputError, match=pattern):
        check_indices(values, "x", 5, **options)


def test_check_indices_says_whose_axis():
    with pytest.raises(InvalidInputError, match=re.escape(
            "must be row indices (ints) in 0..2 for layer 'a', which has 3 rows; got [3]")):
        check_indices([3], "x", 3, what="row", where="layer 'a'")
