"""Plots of 5-D activations: maps over channels x time, and time courses."""

from __future__ import annotations

import ast

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import pytorch_feature_analysis as pfa  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def acts(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 4, 6, 3, 5))


def test_matshow_draws_each_channel_at_each_time_on_one_scale():
    data = acts()
    fig = pfa.plot_5d_matshow(torch.from_numpy(data), entry=1, channels=[0, 3], times=[1, 2, 5])
    assert isinstance(fig, Figure)
    maps = fig.axes[:6]
    shown = data[1][np.ix_([0, 3], [1, 2, 5])]
    for index, ax in enumerate(maps):
        row, column = divmod(index, 3)
        np.testing.assert_array_equal(ax.images[0].get_array(), shown[row, column])
        assert ax.images[0].get_clim() == (shown.min(), shown.max())
    assert [ax.get_title() for ax in maps[:3]] == ["t=1", "t=2", "t=5"]
    assert [maps[0].get_ylabel(), maps[3].get_ylabel()] == ["ch 0", "ch 3"]
    assert len(fig.axes) == 7  # and the colour bar


def test_matshow_defaults_spread_channels_and_times_evenly():
    fig = pfa.plot_5d_matshow(np.zeros((1, 20, 30, 2, 2)))
    assert len(fig.axes) == 8 * 12 + 1
    assert fig.axes[0].get_ylabel() == "ch 0" and fig.axes[12 * 7].get_ylabel() == "ch 19"
    assert fig.axes[11].get_title() == "t=29"


def test_time_courses_are_the_mean_min_max_and_example_units():
    data = acts(1)
    fig = pfa.plot_5d_time(data, entry=1, num_examples=3, fps=10.0)
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    entry = data[1]
    np.testing.assert_allclose(lines["mean"].get_ydata(), entry.mean(axis=(0, 2, 3)))
    np.testing.assert_allclose(lines["min"].get_ydata(), entry.min(axis=(0, 2, 3)))
    np.testing.assert_allclose(lines["max"].get_ydata(), entry.max(axis=(0, 2, 3)))
    np.testing.assert_allclose(lines["mean"].get_xdata(), np.arange(6) / 10.0)
    examples = [label for label in lines if label.startswith("unit ")]
    assert len(examples) == 3
    for label in examples:
        channel, row, column = ast.literal_eval(label[len("unit "):])
        np.testing.assert_allclose(lines[label].get_ydata(), entry[channel, :, row, column])
    assert fig.axes[0].get_xlabel() == "time (s)"
    again = pfa.plot_5d_time(data, entry=1, num_examples=3, fps=10.0)
    assert [line.get_label() for line in again.axes[0].lines] == list(lines)


@pytest.mark.parametrize("call, match", [
    (lambda: pfa.plot_5d_matshow(np.zeros((2, 3, 4))), "'activations' parameter.*shape"),
    (lambda: pfa.plot_5d_matshow(acts(), entry=2), "'entry' parameter of plot_5d_matshow"),
    (lambda: pfa.plot_5d_matshow(acts(), channels=[4]), "'channels' parameter"),
    (lambda: pfa.plot_5d_time(acts(), fps=0), "'fps' parameter of plot_5d_time"),
    (lambda: pfa.plot_5d_time(acts(), num_examples=-1), "'num_examples' parameter"),
])
def test_bad_plot_input_is_named(call, match):
    with pytest.raises(pfa.InvalidInputError, match=match):
        call()
