"""Kernel sets that keep rows and columns (spatial masks) as well as channels."""

from __future__ import annotations

import numpy as np
import pytest

import pytorch_feature_analysis as pfa
from tiny import smallest_budget, tiny_model, to_tensor64

MODEL = tiny_model()
RNG = np.random.default_rng(2)
IMAGES = [RNG.uniform(0, 1, size=(16, 16, 3)) for _ in range(6)]
IMAGE_SET = [({"set": "a"}, {(str(k),): image for k, image in enumerate(IMAGES)}, ("key",), [])]
MASK = {"channels": [1, 3, 4], "rows": [0, 2, 5], "cols": [1, 2]}
KINDS = ["unit_level", "feature_means", "max_pool", "l2_pool"]


def expected_patterns(acts, kind):
    kept = acts[:, MASK["channels"]][:, :, MASK["rows"]][:, :, :, MASK["cols"]]
    kept = kept.reshape(len(acts), len(MASK["channels"]), -1).astype(np.float64)
    return {"unit_level": kept.reshape(len(acts), -1), "feature_means": kept.mean(axis=2),
            "max_pool": kept.max(axis=2), "l2_pool": np.sqrt((kept ** 2).sum(axis=2))}[kind]


def test_a_mask_keeps_channels_at_positions_for_every_activation_type_also_from_slices():
    kernel_sets = [("all", "all"), ("masked", {("tiny", "conv2"): MASK})]
    kwargs = dict(which_layers=["conv2"], transform=to_tensor64, batch_size=2,
                  activation_types=KINDS, kernel_sets=kernel_sets)
    acts = pfa.get_activations(IMAGES, MODEL, ["conv2"], transform=to_tensor64,
                               verbose=False)[("conv2", 4)]
    budget = smallest_budget(IMAGE_SET, {"tiny": MODEL}, **kwargs) + 50
    plan = pfa.plan_rdms(IMAGE_SET, {"tiny": MODEL}, max_memory=budget, **kwargs)
    assert plan.loc[0, "sliced_layers"] == 2  # original_rgb and conv2 in channel slices
    for max_memory in (None, budget):
        frame = pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, max_memory=max_memory,
                             verbose=False, **kwargs)
        masked = frame[(frame["layer"] == "conv2") & (frame["kernel_set_name"] == "masked")]
        assert sorted(masked["activation_type"]) == sorted(KINDS)
        for row in masked.itertuples():
            assert row.kernel_inds == tuple(MASK["channels"])
            patterns = expected_patterns(acts, row.activation_type)
            np.testing.assert_allclose(row.matrix, 1 - np.corrcoef(patterns), atol=1e-6)
        whole = frame[(frame["layer"] == "conv2") & (frame["kernel_set_name"] == "all")]
        unit = whole[whole["activation_type"] == "unit_level"]["matrix"].iloc[0]
        np.testing.assert_allclose(unit, 1 - np.corrcoef(acts.reshape(6, -1)), atol=1e-6)


def test_bad_masks_are_named():
    for mask, message in [({"rows": [0, 9]}, r"row indices \(ints\) in 0\.\.5"),
                          ({"depth": [0]}, r"keys \('channels', 'rows', 'cols'\)"),
                          ({"cols": []}, r"col indices")]:
        with pytest.raises(pfa.InvalidInputError, match=message):
            pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, which_layers=["conv2"],
                         transform=to_tensor64, verbose=False,
                         kernel_sets=[("m", {("tiny", "conv2"): mask})])
    with pytest.raises(pfa.InvalidInputError, match=r"no rows or columns for \('tiny', 'fc1'\)"):
        pfa.get_rdms(IMAGE_SET, {"tiny": MODEL}, None, which_layers=["fc1"],
                     transform=to_tensor64, verbose=False,
                     kernel_sets=[("m", {("tiny", "fc1"): {"rows": [0]}})])


def test_one_layer_mask_is_checked_the_same_way_for_kernel_sets_and_encoding_masks():
    from pytorch_feature_analysis._masks import layer_mask

    kept = layer_mask({"channels": np.array([4, 0]), "cols": (np.int8(2),)}, (5, 6, 3), "mask",
                      "conv2")
    assert kept == ([4, 0], None, [2]) and all(type(i) is int for i in kept[0] + kept[2])
    assert layer_mask({"channels": [0]}, (), "mask", "out") == ([0], None, None)
    assert layer_mask({}, (10,), "mask", "fc1") == (None, None, None)
    for spec, message in [
        ({"channels": [True]}, r"channel indices \(ints\) in 0\.\.4 for conv2, which has 5 "
                               r"channels; got \[True\]"),
        ({"rows": 3}, r"row indices \(ints\) in 0\.\.5 .*; got 3 instead"),
        ({"cols": [0, 3, -1]}, r"col indices .*; got \[3, -1\] instead"),
        ({"depth": [0], "rows": [0]}, r"a mask \(dict\) with some of the keys .*; got \['depth'\]"),
        ([0, 1], r"a mask \(dict\) .* for conv2; got \[0, 1\]"),
    ]:
        with pytest.raises(pfa.InvalidInputError, match=r"The 'mask' parameter .*" + message):
            layer_mask(spec, (5, 6, 3), "mask", "conv2")
    with pytest.raises(pfa.InvalidInputError, match=r"no rows or columns for fc1, whose output "
                       r"\(shape \(10,\)\) has none"):
        layer_mask({"cols": [0]}, (10,), "mask", "fc1")
