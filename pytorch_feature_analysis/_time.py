"""Time-resolved RDMs: which layers have a time axis, their time steps, the time columns.

A layer has a time axis when one entry's output is ``(channels, time, height,
width)``, the layout of 3-D convolutions (torchvision's video models, and
``original_rgb`` of a video). ``get_rdms(..., time_resolved=True)`` makes one
RDM per time step of such a layer; its rows hold the step in ``time`` and,
with a frame rate, the step's start in seconds in ``time_s``: step ``t`` of a
layer with ``T`` steps over ``F`` input frames at ``frame_rate`` frames per
second starts at ``t * (F / T) / frame_rate`` (the layer's steps are taken to
cover the input evenly, as strided temporal convolutions and pooling do).
"""

from __future__ import annotations

from typing import Any

from ._contract import TIME_COLUMNS
from ._validation import check_bool, check_number, fail, problem


def check_time_options(args: dict) -> dict:
    """``{'resolved': bool, 'frame_rate': float or None}`` from get_rdms' arguments."""
    resolved = check_bool(args.get("time_resolved", False), "time_resolved")
    frame_rate = check_number(args.get("frame_rate"), "frame_rate", minimum=0,
                              exclusive_minimum=True, allow_none=True, what="frames per second")
    if frame_rate is not None and not resolved:
        raise fail("frame_rate", "None unless time_resolved=True (it dates time steps)",
                   args["frame_rate"])
    return {"resolved": resolved, "frame_rate": frame_rate}


def has_time_axis(shape: tuple) -> bool:
    """Whether one entry's output ``shape`` is ``(channels, time, height, width)``."""
    return len(shape) == 4


def check_time_axes(plan: Any, image_sets: list, time: dict) -> None:
    """With time-resolved RDMs, every chosen layer must have a time axis (errors name them)."""
    if not time["resolved"]:
        return
    for image_set in image_sets:
        reused = [label for label in image_set[0] if label in TIME_COLUMNS]
        if reused:
            raise fail("image_sets", f"labels other than {list(TIME_COLUMNS)} with "
                       "time_resolved=True", f"the labels {dict(image_set[0])}", raw=True)
    for model_plan in plan.models.values():
        timed = [label for label in model_plan.book if has_time_axis(model_plan.shape(label))]
        without = [label for label in model_plan.layers if label not in timed]
        if without:
            shapes = ", ".join(f"{label} {model_plan.shape(label)}" for label in without[:5])
            raise problem(
                f"time_resolved=True needs layers with a time axis (one entry's output "
                f"(channels, time, height, width)); layers {shapes} of model "
                f"{model_plan.name!r} have none. Its layers with a time axis: "
                f"{', '.join(name for name, _ in timed) or 'none (is the input a video?)'}."
            )


def time_steps(model_plan: Any, label: tuple, time: dict) -> list:
    """The time steps of a layer's RDMs: ``[None]`` unless time-resolved."""
    if not time["resolved"]:
        return [None]
    return list(range(model_plan.shape(label)[1]))


def step_seconds(model_plan: Any, label: tuple, time: dict) -> float | None:
    """Seconds between two time steps of a layer (``None`` without a frame rate)."""
    if not time["resolved"] or time["frame_rate"] is None:
        return None
    frames, steps = model_plan.input_shape[1], model_plan.shape(label)[1]
    return frames / steps / time["frame_rate"]


def time_columns(time_step: int | None, seconds: float | None) -> dict:
    """The time columns of one RDM row (none for an RDM that is not time-resolved)."""
    if time_step is None:
        return {}
    columns = {"time": int(time_step)}
    if seconds is not None:
        columns["time_s"] = time_step * seconds
    return columns
