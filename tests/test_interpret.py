"""Tests of what-a-unit-sees maps, receptive fields, synthesis and minimal images.

Reference values come from plain torch written here (torch.autograd.grad, a
guided-ReLU autograd function, explicit loops over occluder positions,
torch.nn.functional on the layer outputs), numpy and hand-computed geometry --
never from the code under test.
"""

import copy
import sys

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import pytorch_feature_analysis as pfa
from tiny import tiny_model, to_tensor64

MODEL = tiny_model()


def pictures(count=3, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 1, size=(size, size, 3)) for _ in range(count)]


def pixels(images):
    return torch.stack([to_tensor64(pfa.load_image(image)) for image in images])


def maps(images=None, model=MODEL, layers="conv2", channels=(0, 3), **options):
    options = {"transform": to_tensor64, "verbose": False, **options}
    return pfa.attribution_maps(pictures() if images is None else images, model, layers,
                                channels, **options)


def stacked(frame, method, channel):
    rows = frame[(frame["method"] == method) & (frame["channel"] == channel)]
    return np.stack(rows.sort_values("image_key")["map"].tolist())


# ---------------------------------------------------------------------------
# Saliency
# ---------------------------------------------------------------------------


def direct_gradient(forward, x, select):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(select(forward(x)).sum(), x)
    return grad.numpy()


@pytest.mark.parametrize("metric", ["mean", "max"])
def test_saliency_is_the_gradient_of_the_channel_activation(metric):
    frame = maps(methods="saliency", metric=metric)
    x = pixels(pictures())
    for channel in (0, 3):
        pool = (lambda a: a.mean(dim=(1, 2))) if metric == "mean" else (
            lambda a: a.amax(dim=(1, 2)))
        expected = direct_gradient(MODEL[:4], x, lambda out: pool(out[:, channel]))
        np.testing.assert_allclose(stacked(frame, "saliency", channel), expected, atol=1e-12)


def test_saliency_of_a_position_and_of_flat_units():
    x = pixels(pictures())
    at = maps(channels=[2], position=(1, 4))
    expected = direct_gradient(MODEL[:4], x, lambda out: out[:, 2, 1, 4])
    np.testing.assert_allclose(stacked(at, "saliency", 2), expected, atol=1e-12)
    assert at["position"][0] == (1, 4) and at["unit"][0] == 2 * 36 + 1 * 6 + 4
    flat = maps(layers="conv2", channels=None, units=[2 * 36 + 1 * 6 + 4])
    np.testing.assert_allclose(stacked(flat, "saliency", 2), expected, atol=1e-12)
    fc = maps(layers=("fc1", 7), channels=[6])
    expected = direct_gradient(MODEL, x, lambda out: out[:, 6])
    np.testing.assert_allclose(stacked(fc, "saliency", 6), expected, atol=1e-12)


class Reused(nn.Module):
    """One ReLU module called twice: its second call is its own layer."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv1 = nn.Conv2d(3, 4, 3)
        self.conv2 = nn.Conv2d(4, 4, 3)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.conv2(self.relu(self.conv1(x))))


def test_every_call_of_a_reused_module_is_a_target():
    model = Reused().double().eval()
    labels = list(pfa.model_layers(model, torch.zeros(1, 3, 16, 16).double(), False))
    assert labels == [("conv1", 1), ("relu1", 2), ("conv2", 3), ("relu2", 4)]
    frame = maps(model=model, layers=[("relu1", 2), ("relu2", 4)], channels=[1])
    x = pixels(pictures())

    def first(x):
        return torch.relu(model.conv1(x))

    def second(x):
        return torch.relu(model.conv2(first(x)))

    for label, forward in ((("relu1", 2), first), (("relu2", 4), second)):
        got = np.stack(frame[frame["layer_label"] == label]["map"].tolist())
        expected = direct_gradient(forward, x, lambda out: out[:, 1].mean(dim=(1, 2)))
        np.testing.assert_allclose(got, expected, atol=1e-12)
        assert np.abs(expected).sum() > 0


class GuidedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0)


def test_guided_saliency_passes_only_positive_gradients_through_relus():
    frame = maps(layers="fc1", channels=[0, 4], methods="guided_saliency")

    def guided(x):
        out = MODEL[2](GuidedReLU.apply(MODEL[0](x)))
        return MODEL[6](MODEL[5](GuidedReLU.apply(MODEL[3](out))))

    x = pixels(pictures())
    for channel in (0, 4):
        expected = direct_gradient(guided, x, lambda out: out[:, channel])
        np.testing.assert_allclose(stacked(frame, "guided_saliency", channel), expected,
                                   atol=1e-12)
        plain = direct_gradient(MODEL, x, lambda out: out[:, channel])
        assert not np.allclose(expected, plain)
    at_relu = maps(layers=("relu2", 5), channels=[1], methods="guided_saliency")
    expected = direct_gradient(lambda x: GuidedReLU.apply(MODEL[3](MODEL[2](GuidedReLU.apply(
        MODEL[0](x))))), x, lambda out: out[:, 1].mean(dim=(1, 2)))
    np.testing.assert_allclose(stacked(at_relu, "guided_saliency", 1), expected, atol=1e-12)


def linear_model():
    torch.manual_seed(2)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.AvgPool2d(2),
                         nn.Conv2d(4, 3, 3)).double().eval()


def test_smooth_saliency_is_seeded_and_exact_where_the_gradient_is_constant():
    model = linear_model()
    options = dict(model=model, layers="conv2", channels=[1], n_samples=4, noise_level=0.3)
    smooth = maps(methods=["smooth_saliency", "saliency"], **options)
    np.testing.assert_allclose(stacked(smooth, "smooth_saliency", 1),
                               stacked(smooth, "saliency", 1), atol=1e-12)
    noisy = dict(options, model=MODEL, methods="smooth_saliency")
    first, again = maps(**noisy), maps(**noisy, batch_size=1)
    other = maps(**noisy, random_state=1)
    np.testing.assert_array_equal(stacked(first, "smooth_saliency", 1),
                                  stacked(again, "smooth_saliency", 1))
    assert not np.allclose(stacked(first, "smooth_saliency", 1),
                           stacked(other, "smooth_saliency", 1))
    assert first["params"][0] == {"metric": "mean", "n_samples": 4, "noise_level": 0.3,
                                  "random_state": 0}


# ---------------------------------------------------------------------------
# Occlusion and activation maps
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("metric", ["mean", "max"])
def test_occlusion_equals_a_loop_over_occluder_positions(metric):
    window, stride, baseline = (5, 4), (3, 2), 0.25
    frame = maps(layers="conv2", channels=[0, 4], methods="occlusion", window=window,
                 stride=stride, baseline=baseline, metric=metric, batch_size=7)
    pool = (lambda a: a.mean()) if metric == "mean" else (lambda a: a.max())
    for i, image in enumerate(pixels(pictures())):
        for channel in (0, 4):
            with torch.no_grad():
                start = pool(MODEL[:4](image[None])[0, channel])
                expected = np.zeros(((16 - 5) // 3 + 1, (16 - 4) // 2 + 1))
                for r in range(expected.shape[0]):
                    for c in range(expected.shape[1]):
                        occluded = image.clone()
                        occluded[:, 3 * r:3 * r + 5, 2 * c:2 * c + 4] = baseline
                        expected[r, c] = start - pool(MODEL[:4](occluded[None])[0, channel])
            got = stacked(frame, "occlusion", channel)[i]
            np.testing.assert_allclose(got, expected, atol=1e-12)
    assert frame["params"][0] == {"metric": metric, "window": window, "stride": stride,
                                  "baseline": baseline}


def test_activation_maps_are_the_channel_maps_resampled_and_thresholded():
    frame = maps(layers="conv2", channels=[1, 2], methods="activation",
                 interpolation="nearest")
    x = pixels(pictures())
    with torch.no_grad():
        layer = MODEL[:4](x).numpy()  # (3, 5, 6, 6) -> 16 x 16 by nearest resampling
    rows = np.floor(np.arange(16) * 6 / 16).astype(int)
    for channel in (1, 2):
        expected = layer[:, channel][:, rows][:, :, rows]
        np.testing.assert_allclose(stacked(frame, "activation", channel), expected, atol=1e-12)
    cut = maps(layers="conv2", channels=[1], methods="activation", interpolation="bilinear",
               threshold=0.75)
    smooth = F.interpolate(torch.from_numpy(layer[:, [1]]), size=(16, 16), mode="bilinear",
                           align_corners=False).numpy()[:, 0]
    got = stacked(cut, "activation", 1)
    for image, full in zip(got, smooth):
        keep = full >= np.quantile(full, 0.75)
        np.testing.assert_allclose(image[keep], full[keep], atol=1e-12)
        assert np.all(image[~keep] == 0) and keep.mean() == pytest.approx(0.25, abs=0.01)


def test_maps_do_not_depend_on_the_batch_size_and_survive_parquet(tmp_path):
    images = {("a",): pictures()[0], ("b",): pictures()[1], ("c",): pictures()[2]}
    options = dict(images=images, channels=[0], window=4, stride=4,
                   methods=["saliency", "occlusion", "activation"])
    frame, single = maps(**options), maps(**options, batch_size=1)
    for method in ("saliency", "occlusion", "activation"):
        np.testing.assert_allclose(stacked(frame, method, 0), stacked(single, method, 0),
                                   atol=1e-12)
    assert sorted(frame["image_key"].unique()) == [("a",), ("b",), ("c",)]
    path = pfa.save_frame(frame, tmp_path / "maps.parquet")
    pfa.testing.assert_frames_identical(pfa.load_frame(path), frame)


def test_image_labels_become_columns():
    stimuli = pfa.make_synthetic_stimuli(1, colors=(0, 180), size=16)
    frame = maps(images=stimuli, channels=[0])
    assert list(frame["color"]) == [s["color"] for s in stimuli]
    assert list(frame["obj"]) == [s["obj"] for s in stimuli]
    assert list(frame["image_key"]) == [0, 1]
    sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    from_sets = maps(images=sets, channels=[0])
    assert list(from_sets["image_key"]) == [("000",), ("180",)]
    assert list(from_sets["obj"]) == ["obj001"] * 2 and list(from_sets["color"]) == ["000", "180"]
    for a, b in zip(from_sets["map"], frame["map"]):
        np.testing.assert_array_equal(a, b)


# ---------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("call, message", [
    (lambda: maps(channels=[5]), r"'channels' parameter of attribution_maps must be channel "
                                 r"indices \(ints\) in 0\.\.4 for layer \('conv2', 4\) of "
                                 r"model 'model', which has 5 channels; got \[5\]"),
    (lambda: maps(layers="fc1", channels=[7]), r"which has 7 channels; got \[7\]"),
    (lambda: maps(channels=None, units=[180]), r"which has 180 units; got \[180\]"),
    (lambda: maps(layers="fc1", channels=[0], methods="activation"),
     r"'layers' parameter of attribution_maps must be layers with spatial maps for "
     r"'activation' \(layer \('fc1', 7\) of model 'model' has output shape \(7,\)\)"),
    (lambda: maps(layers="fc1", channels=[0], position=(0, 0)), r"no spatial maps"),
    (lambda: maps(channels=[0], position=(6, 0)), r"a pair \(y, x\) within the \(6, 6\) maps"),
    (lambda: maps(methods="occlusion", window=(17, 3)),
     r"'window' parameter of attribution_maps must be at most the preprocessed image size "
     r"\(16, 16\); got \(17, 3\)"),
    (lambda: maps(methods="deconvnet"), r"'methods' parameter .* got 'deconvnet'"),
    (lambda: maps(layers="conv9"), r"Unknown layer 'conv9'"),
    (lambda: maps(channels=[0], units=[0]), r"'channels' parameter .* None when units are given"),
    (lambda: maps(metric="median"), r"'metric' parameter .* got 'median'"),
    (lambda: maps(threshold=1.5, methods="activation"), r"'threshold' parameter"),
])
def test_bad_input_is_named(call, message):
    with pytest.raises(pfa.InvalidInputError, match=message):
        call()


# ---------------------------------------------------------------------------
# Receptive fields
# ---------------------------------------------------------------------------


def test_alexnet_receptive_fields_are_the_hand_computed_ones(alexnet):
    fields = pfa.receptive_fields(alexnet, ["conv1", "conv2", "conv3", "conv4", "conv5"])
    # conv1 11x11/4; pool 3/2: 11 + 2*4 = 19; conv2 5x5: 19 + 4*8 = 51; pool: 51 + 2*8 = 67;
    # conv3-5 3x3 at stride 16: 99, 131, 163. Padding 2 then 2 then 1 three times at strides
    # 1, 8, 16, 16, 16: offsets -2, -18, -34, -50, -66.
    assert fields["size"].tolist() == [(s, s) for s in (11, 51, 99, 131, 163)]
    assert fields["stride"].tolist() == [(s, s) for s in (4, 8, 16, 16, 16)]
    assert fields["offset"].tolist() == [(o, o) for o in (-2, -18, -34, -50, -66)]
    assert fields["map_size"].tolist() == [(55, 55), (27, 27), (13, 13), (13, 13), (13, 13)]
    assert fields["region"].tolist() == [None] * 5


def gradient_box(forward, shape, channel, position):
    """Rows and columns of the input pixels whose gradient is non-zero (their bounding box)."""
    x = torch.rand(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(forward(x)[0, channel][position], x)
    rows, cols = np.nonzero(grad[0].abs().sum(dim=0).numpy())
    return (rows.min(), rows.max() + 1), (cols.min(), cols.max() + 1)


def test_regions_are_the_support_of_the_input_gradient(alexnet):
    positions = [(0, 0), (3, 5), (13, 8), (13, 13)]
    fields = pfa.receptive_fields(alexnet, "conv2", positions, image_size=(120, 120))
    first = copy.deepcopy(alexnet.features[:4]).double()
    for position, region in zip(positions, fields["region"]):
        assert gradient_box(first, (1, 3, 120, 120), 7, position) == region
    torch.manual_seed(3)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=(1, 2), dilation=(1, 2)), nn.ReLU(),
                          nn.AvgPool2d(2), nn.Conv2d(4, 2, (3, 2), stride=(1, 2), padding=1),
                          nn.BatchNorm2d(2), nn.MaxPool2d(3, stride=2, padding=1)).double().eval()
    for layer in model:
        if isinstance(layer, nn.Conv2d):
            layer.weight.data.uniform_(0.1, 1.0)
    model[0].bias.data.fill_(1.0)  # every ReLU passes
    shape = (1, 3, 30, 34)
    with torch.no_grad():
        out = model(torch.zeros(shape, dtype=torch.float64))
    positions = [(y, x) for y in range(out.shape[2]) for x in range(out.shape[3])]
    fields = pfa.receptive_fields(model, ("maxpool1", 6), positions, image_size=(30, 34))
    # the max pool sends the gradient to one input only: compare with an average pool
    average = nn.Sequential(*model[:5], nn.AvgPool2d(3, stride=2, padding=1,
                                                     count_include_pad=True)).eval()
    for position, region in zip(positions, fields["region"]):
        assert gradient_box(average, shape, 1, position) == region


def test_a_branching_model_has_no_geometric_field(resnet18):
    fields = pfa.receptive_fields(resnet18, "conv2", image_size=64)  # the first block's conv
    assert fields["size"][0] == (19, 19)  # 7x7/2, pool 3x3/2: 7 + 2*2 = 11, 3x3: 11 + 2*4
    with pytest.raises(pfa.InvalidInputError, match=r"receptive_fields: layer \('relu3', \d+\) "
                       r"of model 'model' does not take the previous layer's output"):
        pfa.receptive_fields(resnet18, "conv4", image_size=64)
    with pytest.raises(pfa.InvalidInputError, match=r"spatial maps for 'receptive_fields'"):
        pfa.receptive_fields(MODEL, "fc1", image_size=16)
    with pytest.raises(pfa.InvalidInputError, match=r"'positions' parameter .* within the "
                       r"\(6, 6\) maps"):
        pfa.receptive_fields(MODEL, "conv2", [(0, 6)], image_size=16)


@pytest.mark.parametrize("method", ["activation", "occlusion"])
def test_the_empirical_field_averages_thresholded_maps_at_the_top_unit(method):
    model = linear_model()
    images = pictures(4)
    occluder = dict(window=5, stride=3, baseline=0.2)
    field = pfa.empirical_receptive_fields(
        images, model, "conv2", [0, 2], method=method, threshold=0.6,
        interpolation="bilinear", transform=to_tensor64, verbose=False, **occluder)
    with torch.no_grad():
        layer = model(pixels(images))  # (4, 3, 6, 6); field 8 x 8, stride 2, offset -1
        upsampled = F.interpolate(layer, size=(16, 16), mode="bilinear").numpy()
    occluded = maps(images, model=model, channels=[0, 2], methods="occlusion_pixels",
                    **occluder)
    for row in field.itertuples():
        windows = []
        for i in range(4):
            full = upsampled[i, row.channel] if method == "activation" else stacked(
                occluded, "occlusion_pixels", row.channel)[i, 0]
            full = np.where(full < np.quantile(full, 0.6), 0.0, full)
            padded = np.pad(full, 8, constant_values=np.nan)
            y, x = np.unravel_index(np.argmax(layer[i, row.channel].numpy()), (6, 6))
            windows.append(padded[8 - 1 + 2 * y:8 - 1 + 2 * y + 8,
                                  8 - 1 + 2 * x:8 - 1 + 2 * x + 8])
        np.testing.assert_allclose(row.map, np.nanmean(windows, axis=0), atol=1e-12)
        assert row.n_images == 4 and row.method == method
        assert row.params == ({"interpolation": "bilinear", "threshold": 0.6}
                              if method == "activation" else
                              {"metric": "mean", "window": (5, 5), "stride": (3, 3),
                               "baseline": 0.2, "threshold": 0.6})


# ---------------------------------------------------------------------------
# Synthesis
# ---------------------------------------------------------------------------


def synthesize(**options):
    options = {"image_size": 16, "n_iter": 15, "lr": 0.1, "transform": to_tensor64,
               "verbose": False, **options}
    return pfa.synthesize_images(options.pop("model", MODEL), options.pop("layers", "conv2"),
                                 options.pop("channels", [0, 3]), **options)


def test_synthesis_raises_the_target_far_above_its_start_and_is_seeded():
    found = synthesize(snapshot_every=5)
    noise = pixels([np.random.default_rng(0).uniform(0, 1, size=(16, 16, 3))])
    with torch.no_grad():
        start = MODEL[:4](noise)[0].mean(dim=(1, 2))
        end = MODEL[:4](torch.from_numpy(np.stack(found["image"])))
        spread = MODEL[:4](pixels(pictures(50, seed=5))).mean(dim=(2, 3)).std(dim=0)
    for k, channel in enumerate((0, 3)):
        row = found.iloc[k]
        assert row["activation_start"] == pytest.approx(float(start[channel]), abs=1e-12)
        assert row["activation_end"] == pytest.approx(float(end[k, channel].mean()), abs=1e-12)
        # far beyond the spread of the channel's activation over 50 noise images
        assert row["activation_end"] - row["activation_start"] > 20 * float(spread[channel])
        assert row["history"].shape == (16,) and row["snapshots"].shape == (4, 3, 16, 16)
        np.testing.assert_array_equal(row["snapshots"][0], noise[0].numpy())
    again, other = synthesize(snapshot_every=5), synthesize(random_state=1)
    for column in ("image", "history", "snapshots"):
        for a, b in zip(found[column], again[column]):
            np.testing.assert_array_equal(a, b)
    assert not np.allclose(found["image"][0], other["image"][0])


def total_variation(image):
    return np.abs(np.diff(image, axis=1)).sum() + np.abs(np.diff(image, axis=2)).sum()


def test_synthesis_options_do_what_they_say():
    plain = synthesize(channels=[1])["image"][0]
    tv = synthesize(channels=[1], regularization="tv", regularization_weight=0.05)["image"][0]
    assert total_variation(tv) < 0.8 * total_variation(plain)
    l2 = synthesize(channels=[1], regularization="l2", regularization_weight=5.0)["image"][0]
    assert np.linalg.norm(l2) < 0.8 * np.linalg.norm(plain)
    blurred = synthesize(channels=[1], precondition=1.0)["image"][0]
    assert total_variation(blurred) < 0.5 * total_variation(plain)
    smooth = synthesize(channels=[1], smooth_gradient=1.0)
    assert smooth["activation_end"][0] > smooth["activation_start"][0]
    unit = synthesize(layers="fc1", channels=[5], init_image=pictures(1)[0])
    with torch.no_grad():
        start = MODEL(pixels(pictures(1)))[0, 5]
    assert unit["activation_start"][0] == pytest.approx(float(start), abs=1e-12)
    assert unit["activation_end"][0] > float(start) + 0.5
    with pytest.raises(pfa.InvalidInputError, match="'regularization' parameter"):
        synthesize(regularization="l3")
    with pytest.raises(pfa.InvalidInputError, match="'lr' parameter .* > 0"):
        synthesize(lr=0)
    with pytest.raises(pfa.InvalidInputError, match="'smoothing' parameter"):
        synthesize(smooth_gradient=1.0, smoothing="wavelet")


@pytest.mark.parametrize("smoothing", ["gaussian", "fourier"])
def test_one_step_follows_the_sign_of_the_smoothed_gradient(smoothing):
    from scipy.ndimage import gaussian_filter

    start = pictures(1, seed=7)[0]
    found = synthesize(channels=[2], init_image=start, n_iter=1, lr=0.01,
                       smooth_gradient=1.0 if smoothing == "gaussian" else 1.5,
                       smoothing=smoothing)
    x = pixels([start])
    grad = direct_gradient(MODEL[:4], x, lambda out: out[:, 2].mean(dim=(1, 2)))
    if smoothing == "gaussian":  # torch's reflect padding is scipy's mirror; radius 3
        smooth = gaussian_filter(grad, sigma=(0, 0, 1.0, 1.0), mode="mirror", truncate=3.0)
    else:
        f = np.fft.fftfreq(16, 1 / 16)
        scale = np.maximum(1.0, np.hypot(f[:, None], f[None, :])) ** 1.5
        smooth = np.fft.ifft2(np.fft.fft2(grad) / scale).real
    # Adam's first step is lr * g / (|g| + eps), the loss being minus the activation
    expected = x.numpy() + 0.01 * smooth / (np.abs(smooth) + 1e-8)
    np.testing.assert_allclose(found["image"][0], expected[0], atol=1e-9)
    assert not np.allclose(np.sign(smooth), np.sign(grad))


# ---------------------------------------------------------------------------
# Minimal images
# ---------------------------------------------------------------------------


def activation_of(arrays, channel):
    with torch.no_grad():
        return MODEL[:4](pixels(list(arrays)))[:, channel].mean(dim=(1, 2)).numpy()


def check_criterion(row, drawn, criterion):
    """The row's image is drawn[k - 1] and k is what the criterion documents."""
    curve = activation_of(drawn, row["channel"])
    np.testing.assert_allclose(row["activations"], curve, atol=1e-12)
    k = len(row["parts_kept"])
    np.testing.assert_array_equal(row["image"], drawn[k - 1])
    assert row["activation"] == pytest.approx(activation_of([row["image"]], row["channel"])[0],
                                              abs=1e-12)
    if criterion == "max":
        assert row["activation"] == curve.max() and np.all(curve[:k - 1] < curve.max())
    else:
        assert row["activation"] >= criterion * row["activation_full"]
        assert np.all(curve[:k - 1] < criterion * row["activation_full"])


def blocks(count, seed):
    """Images of 4 x 4 patches of random colour: they have parcels to find."""
    rng = np.random.default_rng(seed)
    return [np.kron(rng.uniform(size=(4, 4, 3)), np.ones((4, 4, 1))) for _ in range(count)]


@pytest.mark.parametrize("parcellation, options, criterion", [
    ("slic", {"n_segments": 6}, "max"),
    ("felzenszwalb", {"scale": 10, "min_size": 5}, 0.9),
    ("quickshift", {"kernel_size": 2, "max_dist": 4}, "max"),
])
def test_minimal_parcel_images_keep_the_documented_criterion(parcellation, options, criterion):
    import skimage.segmentation

    images = blocks(2, seed=3)
    found = pfa.minimal_parcel_images(images, MODEL, "conv2", [1, 4], criterion=criterion,
                                      parcellation=parcellation, parcel_options=options,
                                      transform=to_tensor64, verbose=False)
    assert len(found) == 4
    segment = getattr(skimage.segmentation, parcellation)
    options = {"start_label": 0, **options} if parcellation == "slic" else options
    for row in found.to_dict("records"):
        image = np.asarray(pfa.load_image(images[row["image_key"]]), dtype=float) / 255
        labels = segment(image, **options)
        alone = [image * (labels == p)[..., None] for p in np.unique(labels)]
        order = np.argsort(-activation_of(alone, row["channel"]), kind="stable")
        assert row["n_parts"] == len(alone) > 2
        drawn = [image * np.isin(labels, order[:k])[..., None] for k in range(1, len(alone) + 1)]
        check_criterion(row, drawn, criterion)
        assert row["activation_full"] == pytest.approx(activation_of([image], row["channel"])[0])


def test_minimal_component_images_keep_the_documented_criterion():
    from sklearn.decomposition import PCA

    images = pictures(1, seed=4)
    found = pfa.minimal_component_images(images, MODEL, "conv2", [0, 2], n_components=5,
                                         criterion=0.5, transform=to_tensor64, verbose=False)
    image = np.asarray(pfa.load_image(images[0]), dtype=float) / 255
    pca = PCA(5).fit(image.reshape(16, -1))
    scores = pca.transform(image.reshape(16, -1))

    def draw(kept):
        kept = list(kept)
        rows = pca.mean_ + scores[:, kept] @ pca.components_[kept]
        return np.clip(rows, 0, 1).reshape(image.shape)

    for row in found.to_dict("records"):
        alone = activation_of([draw([i]) for i in range(5)], row["channel"])
        order = np.argsort(-alone, kind="stable")
        assert row["parts_kept"] == tuple(order[:len(row["parts_kept"])])
        check_criterion(row, [draw(order[:k]) for k in range(1, 6)], 0.5)
    ica = dict(images=images, models=MODEL, layers="conv2", channels=[3],
               decomposition="ica", n_components=4, transform=to_tensor64, verbose=False)
    first, again = pfa.minimal_component_images(**ica), pfa.minimal_component_images(**ica)
    np.testing.assert_array_equal(first["image"][0], again["image"][0])
    assert first["activation"][0] == pytest.approx(first["activations"][0].max())
    with pytest.raises(pfa.InvalidInputError, match=r"'n_components' parameter .* at most 16"):
        pfa.minimal_component_images(images, MODEL, "conv2", [0], n_components=17,
                                     transform=to_tensor64, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=r"'criterion' parameter"):
        pfa.minimal_parcel_images(images, MODEL, "conv2", [0], criterion=0,
                                  transform=to_tensor64, verbose=False)


# ---------------------------------------------------------------------------
# Pictures
# ---------------------------------------------------------------------------


def test_the_map_grid_has_one_axes_per_row_titled_by_what_varies():
    import matplotlib.pyplot as plt

    images = pictures(2)
    frame = maps(images=images, channels=[0, 3], methods=["saliency", "occlusion"], window=4,
                 stride=4)
    fig = pfa.plot_map_grid(frame, images, col_wrap=3)
    assert len(fig.axes) == 8
    assert [ax.get_title() for ax in fig.axes[:2]] == ["0, 0, saliency", "0, 1, saliency"]
    drawn = fig.axes[0].get_images()
    assert len(drawn) == 2 and drawn[1].get_array().shape == (16, 16)  # image, then map
    np.testing.assert_allclose(drawn[1].get_array(), np.abs(frame["map"][0]).max(axis=0))
    plt.close(fig)
    found = synthesize(n_iter=2)
    fig = pfa.plot_map_grid(found, column="image")
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "3"
    shown = fig.axes[0].get_images()[0].get_array()
    assert shown.shape == (16, 16, 3) and shown.min() == 0 and shown.max() == 1
    plt.close(fig)
    with pytest.raises(pfa.InvalidInputError, match=r"'frame' parameter .* \['map'\]"):
        pfa.plot_map_grid(found)
    with pytest.raises(pfa.InvalidInputError, match=r"no image for key 1"):
        pfa.plot_map_grid(frame, images[:1])


# ---------------------------------------------------------------------------
# Every frame, the device and the inputs
# ---------------------------------------------------------------------------


def test_every_frame_survives_parquet(tmp_path):
    frames = {
        "fields": pfa.receptive_fields(MODEL, ["conv1", "conv2"], [(0, 0), (5, 5)],
                                       image_size=16),
        "empirical": pfa.empirical_receptive_fields(pictures(2), MODEL, "conv2", [0, 1],
                                                    transform=to_tensor64, verbose=False),
        "synthesis": pd.concat([synthesize(n_iter=2), synthesize(n_iter=2, snapshot_every=1)],
                               ignore_index=True),
        "parcels": pfa.minimal_parcel_images(blocks(1, 0), MODEL, "conv2", [0],
                                             parcel_options={"n_segments": 4},
                                             transform=to_tensor64, verbose=False),
    }
    for name, frame in frames.items():
        path = pfa.save_frame(frame, tmp_path / f"{name}.parquet")
        pfa.testing.assert_frames_identical(pfa.load_frame(path), frame)


def hooks(model):
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) + len(m._backward_hooks)
               for m in model.modules())


def test_the_model_and_images_are_left_as_they_were():
    model = copy.deepcopy(MODEL)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    images = pictures(2)
    kept = [image.copy() for image in images]
    maps(images=images, model=model, window=4, n_samples=2,
         methods=["saliency", "guided_saliency", "smooth_saliency", "occlusion",
                  "occlusion_pixels", "activation"])
    synthesize(model=model, n_iter=2, init_image=images[0])
    pfa.receptive_fields(model, "conv2", (1, 1), image_size=16)
    pfa.minimal_component_images(images, model, "conv2", [0], n_components=2,
                                 transform=to_tensor64, verbose=False)
    assert hooks(model) == 0 and not model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert all(np.array_equal(a, b) for a, b in zip(images, kept))


def test_batches_shrink_to_fit_the_memory_budget():
    # one float64 image up to conv2, values and gradients: input 3x16x16, conv1 and relu1
    # 4x16x16, maxpool1 4x8x8, conv2 5x6x6
    per_image = 2 * 8 * (768 + 1024 + 1024 + 256 + 180)
    model = copy.deepcopy(MODEL)
    calls = []
    model[0].register_forward_hook(lambda module, inputs, output: calls.append(len(output)))
    pfa.model_layers(model, pixels(pictures(1)))  # the trace's pass, kept for later calls
    calls.clear()
    fitted = maps(model=model, channels=[1], max_memory=2 * per_image + 7)
    assert calls == [2, 1]
    calls.clear()
    unbounded = maps(model=model, channels=[1], max_memory="1GB")
    assert calls == [3]
    np.testing.assert_allclose(stacked(fitted, "saliency", 1), stacked(unbounded, "saliency", 1),
                               atol=1e-12)
    calls.clear()
    synthesize(model=model, channels=[0, 1, 2], n_iter=0, max_memory=2 * per_image + 7)
    assert calls == [2, 1]
    with pytest.raises(pfa.InvalidInputError, match=r"'max_memory' parameter of attribution_maps "
                       r"must be at least 52.0 kB, what one image needs for a pass up to layer "
                       r"\('conv2', 4\) and back; got 1000 instead"):
        maps(max_memory=1000)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_gives_the_cpu_results():
    model = linear_model().float()
    options = dict(model=model, layers="conv2", channels=[0, 2], window=4,
                   methods=["saliency", "occlusion", "activation"],
                   transform=lambda image: to_tensor64(image).float())
    on_cpu, on_gpu = maps(**options), maps(**options, device="cuda")
    for a, b in zip(on_cpu["map"], on_gpu["map"]):
        np.testing.assert_allclose(a, b, atol=1e-5)
    assert next(model.parameters()).device.type == "cpu"


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error without a GPU")
def test_cuda_without_a_gpu_is_named():
    with pytest.raises(pfa.InvalidInputError, match=r"'device' parameter of attribution_maps"):
        maps(device="cuda")


def test_occlusion_per_pixel_averages_the_drops_of_the_windows_covering_each_pixel():
    per_pixel = maps(pictures(2), methods="occlusion_pixels", layers="conv2", channels=[2],
                     window=(6, 5), stride=(4, 3), baseline=0.5, batch_size=4)
    # Captum's windows: every stride step while the window starts inside the image less a
    # window (rows 0, 4, 8, 12 here, the last clipped at the edge; columns 0, 3, ..., 12)
    corners = [(y, x) for y in range(0, 16 - 6 + 4, 4) for x in range(0, 16 - 5 + 3, 3)]
    for image, got in zip(pixels(pictures(2)), per_pixel["map"]):
        total, count = np.zeros((16, 16)), np.zeros((16, 16))
        with torch.no_grad():
            start = MODEL[:4](image[None])[0, 2].mean()
            for y, x in corners:
                occluded = image.clone()
                occluded[:, y:y + 6, x:x + 5] = 0.5
                total[y:y + 6, x:x + 5] += float(start - MODEL[:4](occluded[None])[0, 2].mean())
                count[y:y + 6, x:x + 5] += 1
        assert got.shape == (3, 16, 16) and count.min() >= 1
        for channel in got:
            np.testing.assert_allclose(channel, total / count, atol=1e-12)


def test_a_missing_optional_library_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "captum.attr", None)
    with pytest.raises(ImportError, match=r"Captum: pip install 'pytorch_feature_analysis"
                                          r"\[interpret\]'"):
        maps()
    monkeypatch.setitem(sys.modules, "skimage.segmentation", None)
    with pytest.raises(ImportError, match=r"scikit-image: pip install 'pytorch_feature_analysis"
                                          r"\[interpret\]'"):
        pfa.minimal_parcel_images(blocks(1, 0), MODEL, "conv2", [0], transform=to_tensor64,
                                  verbose=False)
