"""The shared checks of _validation: values they return and the messages they write."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from pytorch_feature_analysis._validation import (
    InvalidInputError,
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
