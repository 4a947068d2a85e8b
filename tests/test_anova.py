"""Streaming per-unit ANOVA checked against numpy and statsmodels."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from statsmodels.formula.api import ols
from statsmodels.stats.anova import anova_lm

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis.anova import compute_etas_for_model_and_imageset_fast, unit_anova
from pytorch_feature_analysis import anova as anova_module
from tiny import tiny_model, to_tensor64

LEVELS1 = ("red", "green", "blue")
LEVELS2 = ("disc", "bar", "ring")
SIZE = 16


# Layer labels of tiny_model and the module each one is taken from.
TINY_LAYERS = {("conv1", 1): 0, ("relu1", 2): 1, ("conv2", 4): 3, ("fc1", 7): 6}


def make_design(replicates, seed=0):
    """Images of a 3 x 3 design; pixel (0, 0) is the same in every image and
    pixel (0, 1) depends on the cell only (no within-cell variance)."""
    rng = np.random.default_rng(seed)
    colours = rng.uniform(0.2, 0.8, size=(len(LEVELS1), 3))
    patterns = rng.uniform(-0.2, 0.2, size=(len(LEVELS2), SIZE, SIZE, 3))
    stim_dict = {}
    for i, level1 in enumerate(LEVELS1):
        for j, level2 in enumerate(LEVELS2):
            images = []
            for _ in range(replicates):
                noise = rng.normal(0, 0.08, size=(SIZE, SIZE, 3))
                image = np.clip(colours[i] + patterns[j] + noise, 0, 1)
                image[0, 0] = 0.5
                image[0, 1] = 0.1 + 0.15 * i + 0.1 * j
                images.append(image)
            stim_dict[(level1, level2)] = images if replicates > 1 else images[0]
    return ({"study": "tiny", "session": 3}, stim_dict, ("colour", "shape"))


def images_in_cell_order(image_set):
    stim_dict = image_set[1]
    out = []
    for level1 in LEVELS1:
        for level2 in LEVELS2:
            value = stim_dict[(level1, level2)]
            out.extend(value if isinstance(value, list) else [value])
    return out


def hooked_activations(model, images):
    """Activations by plain forward hooks: {label: (n, units) float64}."""
    pixels = torch.stack([to_tensor64(pfa.load_image(image)) for image in images])
    stored = {}
    handles = [
        model[index].register_forward_hook(
            lambda module, inputs, output, label=label: stored.__setitem__(label, output.clone())
        )
        for label, index in TINY_LAYERS.items()
    ]
    with torch.no_grad():
        model(pixels)
    for handle in handles:
        handle.remove()
    stored[("original_rgb", 0)] = pixels
    return {
        label: value.reshape(len(images), -1).float().double().numpy()
        for label, value in stored.items()
    }


def numpy_anova(values, replicates):
    """Two-pass sums of squares from cell, row and column means."""
    y = values.reshape(len(LEVELS1), len(LEVELS2), replicates, -1)
    grand = y.mean(axis=(0, 1, 2))
    rows, cols, cells = y.mean(axis=(1, 2)), y.mean(axis=(0, 2)), y.mean(axis=2)
    ss = {
        "total": ((y - grand) ** 2).sum(axis=(0, 1, 2)),
        "var1": len(LEVELS2) * replicates * ((rows - grand) ** 2).sum(axis=0),
        "var2": len(LEVELS1) * replicates * ((cols - grand) ** 2).sum(axis=0),
        "within": ((y - cells[:, :, None]) ** 2).sum(axis=(0, 1, 2)),
    }
    ss["interaction"] = ss["total"] - ss["within"] - ss["var1"] - ss["var2"]
    return ss


def statsmodels_anova(values, replicates):
    frame = pd.DataFrame(
        {
            "y": values,
            "f1": np.repeat(LEVELS1, len(LEVELS2) * replicates),
            "f2": np.tile(np.repeat(LEVELS2, replicates), len(LEVELS1)),
        }
    )
    # Type 2 needs residual degrees of freedom; with one image per cell the
    # model is saturated and type 1 (the same sums for a balanced design) is used.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a saturated model warns about its zero residual
        table = anova_lm(ols("y ~ C(f1) * C(f2)", data=frame).fit(), typ=2 if replicates > 1 else 1)
    return table.rename(index={"C(f1)": "var1", "C(f2)": "var2", "C(f1):C(f2)": "interaction"})


def varying_units(values):
    return values.max(axis=0) > values.min(axis=0)


@pytest.fixture(scope="module")
def replicated():
    image_set = make_design(replicates=2)
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no RuntimeWarning may leak
        result = unit_anova(
            image_set, ("tiny", model), {"tiny": list(TINY_LAYERS) + ["original_rgb"]},
            transform=to_tensor64, batch_size=5, verbose=False,
        )
    acts = hooked_activations(model, images_in_cell_order(image_set))
    return image_set, model, result, acts


@pytest.fixture(scope="module")
def single():
    image_set = make_design(replicates=1)
    model = tiny_model()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = unit_anova(
            image_set, ("tiny", model), {"tiny": list(TINY_LAYERS) + ["original_rgb"]},
            transform=to_tensor64, batch_size=4, verbose=False,
        )
    acts = hooked_activations(model, images_in_cell_order(image_set))
    return image_set, model, result, acts


@pytest.mark.parametrize("design", ["single", "replicated"])
def test_etas_equal_numpy_sums_of_squares_for_every_unit(design, request):
    image_set, _, (_, units), acts = request.getfixturevalue(design)
    replicates = 2 if design == "replicated" else 1
    assert set(units) == set(acts)
    for label, values in acts.items():
        ss = numpy_anova(values, replicates)
        varying = varying_units(values)
        for effect in ("var1", "var2", "interaction"):
            ours = units[label][f"eta2_{effect}"].reshape(-1)
            np.testing.assert_allclose(
                ours[varying], ss[effect][varying] / ss["total"][varying], rtol=0, atol=1e-8
            )
            assert np.isnan(ours[~varying]).all()
            np.testing.assert_allclose(
                units[label][f"ss_{effect}"].reshape(-1), ss[effect], rtol=1e-7, atol=1e-9
            )


def test_per_unit_arrays_are_shaped_like_the_layer(replicated):
    _, _, (_, units), _ = replicated
    shapes = {("original_rgb", 0): (3, 16, 16), ("conv1", 1): (4, 16, 16),
              ("relu1", 2): (4, 16, 16), ("conv2", 4): (5, 6, 6), ("fc1", 7): (7,)}
    for label, shape in shapes.items():
        for key, values in units[label].items():
            expected = (shape[0],) if key.endswith("_kernelmeans") else shape
            assert values.shape == expected, (label, key)


def test_replicates_give_statsmodels_eta_f_and_p(replicated):
    _, _, (_, units), acts = replicated
    rng = np.random.default_rng(1)
    checked = 0
    for label, values in acts.items():
        candidates = np.flatnonzero(varying_units(values))
        for unit in rng.choice(candidates, size=min(4, len(candidates)), replace=False):
            table = statsmodels_anova(values[:, unit], replicates=2)
            total = table["sum_sq"].sum()
            if table.loc["Residual", "sum_sq"] < 1e-12 * total:
                continue  # no within-cell variance: checked separately
            for effect in ("var1", "var2", "interaction"):
                ours = {key: units[label][f"{key}_{effect}"].reshape(-1)[unit]
                        for key in ("eta2", "F", "p")}
                assert ours["eta2"] == pytest.approx(table.loc[effect, "sum_sq"] / total, abs=1e-8)
                assert ours["F"] == pytest.approx(table.loc[effect, "F"], rel=1e-6)
                assert ours["p"] == pytest.approx(table.loc[effect, "PR(>F)"], rel=1e-6)
            checked += 1
    assert checked >= 12


def test_one_image_per_cell_matches_statsmodels_sums_and_has_no_f(single):
    _, _, (_, units), acts = single
    values = acts[("fc1", 7)]
    for unit in range(values.shape[1]):
        table = statsmodels_anova(values[:, unit], replicates=1)
        total = table["sum_sq"].sum()
        for effect in ("var1", "var2", "interaction"):
            assert units[("fc1", 7)][f"eta2_{effect}"][unit] == pytest.approx(
                table.loc[effect, "sum_sq"] / total, abs=1e-8
            )
    for label in units:
        for effect in ("var1", "var2", "interaction"):
            assert np.isnan(units[label][f"F_{effect}"]).all()
            assert np.isnan(units[label][f"p_{effect}"]).all()
        np.testing.assert_array_equal(units[label]["ss_within"], 0.0)
        etas = sum(units[label][f"eta2_{e}"] for e in ("var1", "var2", "interaction"))
        finite = np.isfinite(etas)
        np.testing.assert_allclose(etas[finite], 1.0, atol=1e-9)


def test_constant_unit_gives_nan_and_cell_constant_unit_gives_nan_f(replicated):
    _, _, (_, units), acts = replicated
    rgb = units[("original_rgb", 0)]
    for effect in ("var1", "var2", "interaction"):
        for key in ("eta2", "F", "p"):
            assert np.isnan(rgb[f"{key}_{effect}"][:, 0, 0]).all()
        # Pixel (0, 1) depends on the cell only: etas defined, no error term.
        assert np.isnan(rgb[f"F_{effect}"][:, 0, 1]).all()
        assert np.isnan(rgb[f"p_{effect}"][:, 0, 1]).all()
        assert not np.isinf(units[("conv1", 1)][f"F_{effect}"]).any()
    np.testing.assert_array_equal(rgb["ss_total"][:, 0, 0], 0.0)
    np.testing.assert_array_equal(rgb["ss_within"][:, 0, 1], 0.0)
    pixel = acts[("original_rgb", 0)].reshape(-1, 3, SIZE, SIZE)[:, :, 0, 1]
    ss = numpy_anova(pixel, replicates=2)
    np.testing.assert_allclose(rgb["eta2_var1"][:, 0, 1], ss["var1"] / ss["total"], atol=1e-8)


def test_summary_frame_columns_and_values(replicated):
    image_set, _, (summary, units), _ = replicated
    stats_columns = [
        f"{name}_eta2_{stat}"
        for name in ("colour", "shape", "interaction")
        for stat in ("mean", "stdev", "stdev_kernelmeans")
    ]
    assert list(summary.columns) == (
        ["model", "layer", "layer_num", "layer_label"] + stats_columns + ["study", "session"]
    )
    assert summary["layer_label"].tolist() == [
        ("original_rgb", 0), ("conv1", 1), ("relu1", 2), ("conv2", 4), ("fc1", 7)
    ]
    assert (summary["layer"] == summary["layer_label"].str[0]).all()
    assert (summary["layer_num"] == summary["layer_label"].str[1]).all()
    assert (summary["model"] == "tiny").all() and (summary["study"] == "tiny").all()
    assert (summary["session"] == 3).all()
    for _, row in summary.iterrows():
        stats = units[row["layer_label"]]
        for name, effect in (("colour", "var1"), ("shape", "var2"), ("interaction", "interaction")):
            etas = stats[f"eta2_{effect}"]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                kernel_means = np.nanmean(etas.reshape(etas.shape[0], -1), axis=1)
            if etas.ndim == 1:
                kernel_means = etas
            assert row[f"{name}_eta2_mean"] == pytest.approx(np.nanmean(etas), abs=1e-12)
            assert row[f"{name}_eta2_stdev"] == pytest.approx(np.nanstd(etas), abs=1e-12)
            assert row[f"{name}_eta2_stdev_kernelmeans"] == pytest.approx(
                np.nanstd(kernel_means), abs=1e-12
            )
            np.testing.assert_allclose(
                stats[f"eta2_{effect}_kernelmeans"], kernel_means, atol=1e-12
            )


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_streaming_in_small_batches_equals_one_batch(batch_size, replicated):
    image_set, model, (summary, units), _ = replicated
    layers = {"tiny": list(TINY_LAYERS) + ["original_rgb"]}
    whole = unit_anova(image_set, ("tiny", model), layers, transform=to_tensor64,
                       batch_size=18, verbose=False)
    small = unit_anova(image_set, ("tiny", model), layers, transform=to_tensor64,
                       batch_size=batch_size, verbose=False)
    for result in (whole, small):
        pd.testing.assert_frame_equal(result.summary, summary, rtol=1e-10, atol=1e-12)
        for label in units:
            for key, values in units[label].items():
                np.testing.assert_allclose(result.units[label][key], values, rtol=1e-9,
                                           atol=1e-12, err_msg=f"{label} {key}")


def test_alexnet_64px_matches_get_activations_and_accepts_both_model_forms():
    stimuli = pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 120, 240), size=32)
    image_set = ({"obj_set": "a"}, {(s["color"], s["obj"]): s["path"] for s in stimuli},
                 ("color", "obj"))
    transform = pfa.default_transform(64)
    summary, units = compute_etas_for_model_and_imageset_fast(
        image_set, ("alexnet", "alexnet", "random"), {"alexnet": ["conv2", ("fc3", 21)]},
        transform=transform, batch_size=4, verbose=False,
    )
    assert summary["layer_label"].tolist() == [("conv2", 4), ("fc3", 21)]
    model = pfa.prepare_model("alexnet", "random")
    images = [image_set[1][(c, o)]
              for c in ("000", "120", "240") for o in ("obj001", "obj002", "obj003")]
    # The same batches as unit_anova's: float32 convolutions depend on the batch size.
    acts = pfa.get_activations(images, model, ["conv2", "fc3"], transform=transform,
                               batch_size=4, verbose=False)
    for label, values in acts.items():
        values = values.reshape(len(images), -1).astype(np.float64)
        ss = numpy_anova(values, replicates=1)
        varying = varying_units(values)
        np.testing.assert_allclose(
            units[label]["eta2_var1"].reshape(-1)[varying],
            ss["var1"][varying] / ss["total"][varying], atol=1e-8,
        )
    again = unit_anova(image_set, ("alexnet", model), ["conv2", "fc3"], transform=transform,
                       batch_size=4, verbose=False)
    pd.testing.assert_frame_equal(again.summary, summary)


def test_unbalanced_and_incomplete_designs_name_the_cells():
    labels, stim_dict, factors = make_design(replicates=2)
    model = ("tiny", tiny_model())
    uneven = dict(stim_dict)
    uneven[("green", "bar")] = uneven[("green", "bar")][:1]
    with pytest.raises(ValueError, match=r"balanced.*1 image\(s\) in \('green', 'bar'\)"):
        unit_anova((labels, uneven, factors), model, ["fc1"], transform=to_tensor64, verbose=False)
    missing = {key: value for key, value in stim_dict.items() if key != ("blue", "ring")}
    with pytest.raises(ValueError, match=r"cells \('blue', 'ring'\) are missing"):
        unit_anova((labels, missing, factors), model, ["fc1"], transform=to_tensor64, verbose=False)
    empty = dict(stim_dict)
    empty[("red", "disc")] = []
    with pytest.raises(ValueError, match=r"0 image\(s\) in \('red', 'disc'\)"):
        unit_anova((labels, empty, factors), model, ["fc1"], transform=to_tensor64, verbose=False)


def test_bad_arguments_are_named():
    image_set = make_design(replicates=1)
    model = ("tiny", tiny_model())
    with pytest.raises(ValueError, match=r"which_layer_dict.*models_dict \(\['tiny'\]\).*'alexnet'"):
        unit_anova(image_set, model, {"alexnet": ["conv1"]}, verbose=False)
    with pytest.raises(ValueError, match="Unknown layer 'conv9' of model 'tiny'.*conv1"):
        unit_anova(image_set, model, {"tiny": ["conv9"]}, transform=to_tensor64, verbose=False)
    with pytest.raises(ValueError, match="two different factors"):
        unit_anova((image_set[0], image_set[1], ("colour",)), model, ["fc1"], verbose=False)
    with pytest.raises(ValueError, match="model_desc"):
        unit_anova(image_set, "alexnet", ["fc1"], verbose=False)
    with pytest.raises(ValueError, match=r"at least 2 levels"):
        one_level = {key: value for key, value in image_set[1].items() if key[0] == "red"}
        unit_anova((image_set[0], one_level, image_set[2]), model, ["fc1"], verbose=False)


def test_inputs_are_not_modified():
    image_set = make_design(replicates=2)
    stim_copy = {key: [image.copy() for image in value] for key, value in image_set[1].items()}
    model = tiny_model()
    weights = {key: value.clone() for key, value in model.state_dict().items()}
    unit_anova(image_set, ("tiny", model, "trained"), ["fc1"], transform=to_tensor64, verbose=False)
    for key, value in image_set[1].items():
        assert all(np.array_equal(a, b) for a, b in zip(value, stim_copy[key]))
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key])
    result = unit_anova(image_set, ("tiny", model, "random"), ["fc1"], transform=to_tensor64,
                        verbose=False)
    for key, value in model.state_dict().items():
        assert torch.equal(value, weights[key])  # new random weights went to a copy
    assert result.summary["colour_eta2_mean"].notna().all()


def test_max_memory_lowers_the_batch_and_changes_nothing(monkeypatch):
    image_set = make_design(replicates=2)
    model = ("tiny", tiny_model())
    batches = []
    real = anova_module.iter_activations

    def spy(*args, **kwargs):
        batches.append(kwargs["batch_size"])
        return real(*args, **kwargs)

    monkeypatch.setattr(anova_module, "iter_activations", spy)
    kwargs = dict(transform=to_tensor64, verbose=False)
    free = unit_anova(image_set, model, None, **kwargs)
    bounded = unit_anova(image_set, model, None, max_memory=400_000, **kwargs)
    assert batches[0] == 32 and 1 <= batches[1] < 32
    assert list(free.units) == list(bounded.units)  # None: every layer
    assert len(free.units) == len(pfa.model_layers(model[1], to_tensor64(
        next(iter(image_set[1].values()))[0]).unsqueeze(0)))
    for label in free.units:
        for name, values in free.units[label].items():
            np.testing.assert_allclose(bounded.units[label][name], values, rtol=1e-10, equal_nan=True)
    with pytest.raises(pfa.InvalidInputError, match="'max_memory' parameter of unit_anova"):
        unit_anova(image_set, model, None, max_memory=100, **kwargs)
