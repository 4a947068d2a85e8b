"""Tests of batched activation extraction against plain-torch computations.

The reference values come from forward hooks written here (which clone each
output as the module returns it), from ``torch.nn.functional`` on the
preprocessed pixels, from torchvision's own per-image transform, and from
numpy -- never from the extraction code itself.
"""

from collections import OrderedDict

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis.activations import resolve_layers

ALEXNET_LABELS = [
    ("conv1", 1), ("relu1", 2), ("maxpool1", 3), ("conv2", 4), ("relu2", 5), ("maxpool2", 6),
    ("conv3", 7), ("relu3", 8), ("conv4", 9), ("relu4", 10), ("conv5", 11), ("relu5", 12),
    ("maxpool3", 13), ("avgpool1", 14), ("dropout1", 15), ("fc1", 16), ("relu6", 17),
    ("dropout2", 18), ("fc2", 19), ("relu7", 20), ("fc3", 21),
]


@pytest.fixture(scope="module")
def book(alexnet):
    """AlexNet's traced layers, passed to calls whose subject is not tracing (faster)."""
    return pfa.model_layers(alexnet)


@pytest.fixture(scope="module")
def images():
    """Four synthetic PIL images, non-square so that resizing and cropping matter."""
    stimuli = pfa.make_synthetic_stimuli(2, colors=(0, 180), size=80)
    return [stimulus["path"].resize((96, 72)) for stimulus in stimuli]


@pytest.fixture(scope="module")
def pixels(images):
    """The batch as torchvision's per-image transform makes it."""
    transform = pfa.default_transform()
    return torch.stack([transform(image) for image in images])


def plain_hook_outputs(model, modules, batch):
    """Clones of every call's output of ``modules``, per module, in call order."""
    recorded = {id(module): [] for module in modules}
    order = []

    def hook(module, _inputs, output):
        recorded[id(module)].append(output.detach().clone())
        order.append(output.detach().clone())

    handles = [module.register_forward_hook(hook) for module in modules]
    try:
        with torch.no_grad():
            model(batch)
    finally:
        for handle in handles:
            handle.remove()
    return recorded, order


# ----------------------------------------------------------------------------
# Correctness against independent computations
# ----------------------------------------------------------------------------


def test_conv1_keeps_negative_values_despite_the_inplace_relu(alexnet, images, pixels):
    assert alexnet.features[1].inplace  # the trap: ReLU(inplace=True) right after conv1
    acts = pfa.get_activations(images, alexnet, ["conv1", "relu1"], verbose=False)
    with torch.no_grad():
        expected = F.conv2d(pixels, alexnet.features[0].weight, alexnet.features[0].bias,
                            stride=4, padding=2).numpy()
    conv1 = acts[("conv1", 1)]
    assert conv1.shape == (4, 64, 55, 55) and conv1.dtype == np.float32
    assert (conv1 < 0).mean() > 0.1
    np.testing.assert_allclose(conv1, expected, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(acts[("relu1", 2)], np.maximum(expected, 0), rtol=1e-4, atol=1e-4)


def test_every_alexnet_layer_equals_a_plain_hook_extraction(alexnet, images, pixels):
    leaves = [m for m in alexnet.modules() if next(m.children(), None) is None]
    _, order = plain_hook_outputs(alexnet, leaves, pixels)
    acts = pfa.get_activations(images, alexnet, verbose=False)
    assert list(acts) == [("original_rgb", 0)] + ALEXNET_LABELS
    np.testing.assert_array_equal(acts[("original_rgb", 0)], pixels.numpy())
    for label, expected in zip(ALEXNET_LABELS, order):
        got = acts[label]
        assert got.shape == tuple(expected.shape), label
        scale = float(expected.abs().max()) or 1.0
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=str(label))


def test_a_repeated_module_keeps_every_call(resnet18, images):
    transform = pfa.default_transform(64)
    small = torch.stack([transform(image) for image in images])
    relu = resnet18.layer1[0].relu
    recorded, _ = plain_hook_outputs(resnet18, [relu], small)
    assert len(recorded[id(relu)]) == 2
    book = pfa.model_layers(resnet18)
    labels = [label for label, where in book.items()
              if where is not None and where.address == ["layer1", 0, ("attr", "relu")]]
    assert labels == [("relu2", 7), ("relu3", 10)]
    acts = pfa.get_activations(images, resnet18, labels, transform=transform, verbose=False)
    assert list(acts) == labels
    for label, expected in zip(labels, recorded[id(relu)]):
        np.testing.assert_allclose(acts[label], expected.numpy(), rtol=1e-5, atol=1e-5)
    # The two calls see different inputs, so they really are two layers.
    assert not np.allclose(acts[labels[0]], acts[labels[1]])


def test_every_resnet18_call_equals_a_plain_hook_extraction(resnet18, images):
    transform = pfa.default_transform(64)
    small = torch.stack([transform(image) for image in images])
    leaves = [m for m in resnet18.modules() if next(m.children(), None) is None]
    _, order = plain_hook_outputs(resnet18, leaves, small)
    acts = pfa.get_activations(images, resnet18, transform=transform, original_rgb=False,
                               verbose=False)
    assert len(acts) == len(order) == 60
    for (label, got), expected in zip(acts.items(), order):
        np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5,
                                   err_msg=str(label))


def test_a_shared_inplace_relu_module_gives_one_layer_per_call():
    torch.manual_seed(0)
    relu = nn.ReLU(inplace=True)
    conv_a, conv_b = nn.Conv2d(3, 4, 3), nn.Conv2d(4, 5, 3)
    model = nn.Sequential(conv_a, relu, conv_b, relu).eval()
    arrays = [np.random.default_rng(i).random((20, 20, 3)) for i in range(3)]
    transform = pfa.default_transform(16)
    batch = torch.stack([transform(pfa.load_image(a)) for a in arrays])
    with torch.no_grad():
        first = conv_a(batch)
        second = conv_b(torch.relu(first))
    acts = pfa.get_activations(arrays, model, transform=transform, verbose=False)
    assert list(acts) == [("original_rgb", 0), ("conv1", 1), ("relu1", 2), ("conv2", 3),
                          ("relu2", 4)]
    np.testing.assert_allclose(acts[("conv1", 1)], first.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts[("relu1", 2)], torch.relu(first).numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(acts[("conv2", 3)], second.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(acts[("relu2", 4)], torch.relu(second).numpy(), rtol=1e-5,
                               atol=1e-6)


def test_batch_size_does_not_change_the_result(alexnet, book, images):
    layers = ["conv2", "relu5", "fc1", "fc3"]
    images6 = images + images[:2]
    small = pfa.get_activations(images6, alexnet, layers, batch_size=3, verbose=False,
                                layer_book=book)
    large = pfa.get_activations(images6, alexnet, layers, batch_size=16, verbose=False,
                                layer_book=book)
    assert list(small) == list(large)
    for label in small:
        scale = float(np.abs(large[label]).max())
        np.testing.assert_allclose(small[label], large[label], rtol=1e-5, atol=1e-5 * scale)
    # Repeated images give repeated rows (the batches are put back in order).
    np.testing.assert_allclose(small[("fc3", 21)][4:], small[("fc3", 21)][:2], rtol=1e-5,
                               atol=1e-5)


def test_iter_activations_streams_the_same_values(alexnet, book, images):
    whole = pfa.get_activations(images, alexnet, ["conv1", "fc3"], verbose=False, layer_book=book)
    streamed = list(pfa.iter_activations(images, alexnet, ["conv1", "fc3"], batch_size=3,
                                         verbose=False))
    assert [batch for batch, _ in streamed] == [slice(0, 3), slice(3, 4)]
    for label in whole:
        joined = np.concatenate([acts[label] for _, acts in streamed])
        np.testing.assert_allclose(joined, whole[label], rtol=1e-5, atol=1e-5)
    assert all(list(acts) == [("conv1", 1), ("fc3", 21)] for _, acts in streamed)


def test_a_given_layer_book_gives_the_same_values(alexnet, images):
    book = pfa.model_layers(alexnet)
    with_book = pfa.get_activations(images, alexnet, ["fc2"], layer_book=book, verbose=False)
    without = pfa.get_activations(images, alexnet, ["fc2"], verbose=False)
    np.testing.assert_array_equal(with_book[("fc2", 19)], without[("fc2", 19)])


# ----------------------------------------------------------------------------
# Choosing layers
# ----------------------------------------------------------------------------


def test_layers_by_name_and_by_label(alexnet, book, images):
    chosen = ["fc3", ("conv2", 4), "original_rgb"]
    def chosen_labels(layers):
        return list(pfa.get_activations(images[:2], alexnet, layers, verbose=False,
                                        layer_book=book))

    assert chosen_labels(chosen) == [("original_rgb", 0), ("conv2", 4), ("fc3", 21)]
    assert chosen_labels("fc2") == [("fc2", 19)]
    assert chosen_labels(("fc2", 19)) == [("fc2", 19)]
    assert chosen_labels(("conv1", "fc3")) == [("conv1", 1), ("fc3", 21)]  # a tuple of names
    assert chosen_labels([("conv1", 1), "conv1"]) == [("conv1", 1)]


def test_original_rgb_is_the_preprocessed_batch_and_can_be_left_out(alexnet, images):
    acts = pfa.get_activations(images, alexnet, ["original_rgb"], verbose=False)
    np.testing.assert_array_equal(acts[("original_rgb", 0)], pfa.preprocess_images(images).numpy())
    every = pfa.get_activations(images[:2], alexnet, original_rgb=False, verbose=False)
    assert list(every) == ALEXNET_LABELS
    with pytest.raises(ValueError, match="original_rgb"):
        pfa.get_activations(images[:2], alexnet, ["original_rgb"], original_rgb=False,
                            verbose=False)


def test_unknown_layer_error_lists_the_valid_layers(alexnet, images):
    with pytest.raises(ValueError) as error:
        pfa.get_activations(images, alexnet, ["conv1", "conv9"], verbose=False)
    message = str(error.value)
    assert "'conv9'" in message
    for name, _ in ALEXNET_LABELS:
        assert name in message
    with pytest.raises(ValueError, match=r"\('conv1', 2\)"):
        pfa.get_activations(images, alexnet, [("conv1", 2)], verbose=False)


def test_resolve_layers_with_a_model_name():
    book = OrderedDict([(("original_rgb", 0), None), (("conv1", 1), None), (("relu1", 2), None)])
    assert resolve_layers(book, None) == list(book)
    assert resolve_layers(book, "all") == list(book)
    assert resolve_layers(book, ["relu1", ("conv1", 1)]) == [("conv1", 1), ("relu1", 2)]
    with pytest.raises(ValueError, match="of model 'mine'"):
        resolve_layers(book, ["fc1"], "mine")


# ----------------------------------------------------------------------------
# Inputs
# ----------------------------------------------------------------------------


def test_paths_pil_and_arrays_give_the_same_activations(alexnet, book, images, tmp_path):
    paths = []
    for i, image in enumerate(images):
        path = tmp_path / f"image_{i}.png"
        image.save(path)  # lossless
        paths.append(str(path))
    uint8 = [np.asarray(image) for image in images]
    floats = [array.astype(np.float64) / 255 for array in uint8]
    layers = ["original_rgb", "conv1", "fc3"]
    reference = pfa.get_activations(images, alexnet, layers, verbose=False, layer_book=book)
    for variant in (paths, [tmp_path / f"image_{i}.png" for i in range(4)], uint8, floats,
                    [images[0], paths[1], uint8[2], floats[3]]):
        acts = pfa.get_activations(variant, alexnet, layers, verbose=False, layer_book=book)
        for label in reference:
            np.testing.assert_array_equal(acts[label], reference[label])


def test_grey_and_rgba_images_are_converted_to_rgb(alexnet, book, images):
    grey = images[0].convert("L")
    rgba = images[1].convert("RGBA")
    acts = pfa.get_activations([grey, rgba], alexnet, ["original_rgb"], verbose=False,
                               layer_book=book)
    expected = pfa.preprocess_images([grey.convert("RGB"), images[1]]).numpy()
    np.testing.assert_array_equal(acts[("original_rgb", 0)], expected)


def test_missing_file_is_named_before_any_work(alexnet, images, tmp_path):
    missing = tmp_path / "not_there.jpg"
    with pytest.raises(FileNotFoundError, match="not_there.jpg"):
        pfa.get_activations([images[0], str(missing)], alexnet, verbose=False)
    with pytest.raises(FileNotFoundError, match="not_there.jpg"):
        pfa.iter_activations([images[0], str(missing)], alexnet, verbose=False)


def test_unreadable_file_is_named(alexnet, images, tmp_path):
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"\x00\x01 definitely not a png file")
    with pytest.raises(ValueError, match="x.png"):
        pfa.get_activations([images[0], str(garbage)], alexnet, ["fc3"], verbose=False)


def test_bad_arrays_are_rejected_with_their_problem(alexnet):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pfa.get_activations([np.full((8, 8, 3), 2.0)], alexnet, verbose=False)
    with pytest.raises(ValueError, match="NaN"):
        pfa.get_activations([np.full((8, 8, 3), np.nan)], alexnet, verbose=False)
    with pytest.raises(ValueError, match="shape"):
        pfa.get_activations([np.zeros((8, 8, 5), np.uint8)], alexnet, verbose=False)


@pytest.mark.parametrize("batch_size", [0, -1, 2.5, "8", True])
def test_bad_batch_size_is_named(alexnet, images, batch_size):
    with pytest.raises(ValueError, match="'batch_size' parameter of get_activations"):
        pfa.get_activations(images, alexnet, batch_size=batch_size, verbose=False)


def test_empty_image_list_is_rejected(alexnet):
    with pytest.raises(ValueError, match="'images' parameter of get_activations"):
        pfa.get_activations([], alexnet, verbose=False)
    with pytest.raises(ValueError, match="'images' parameter of iter_activations"):
        pfa.iter_activations([], alexnet, verbose=False)


def test_unavailable_cuda_is_reported(alexnet, images):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(ValueError, match="cuda"):
        pfa.get_activations(images, alexnet, ["fc3"], device="cuda", verbose=False)


# ----------------------------------------------------------------------------
# Side effects
# ----------------------------------------------------------------------------


def test_verbose_false_prints_nothing_and_verbose_shows_progress(alexnet, book, images, capsys):
    pfa.get_activations(images, alexnet, ["fc3"], verbose=False)
    list(pfa.iter_activations(images, alexnet, ["fc3"], verbose=False))
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""
    pfa.get_activations(images, alexnet, ["fc3"], verbose=True, layer_book=book)
    captured = capsys.readouterr()
    assert captured.out == "" and "activations" in captured.err


def test_the_model_is_left_as_it_was(alexnet, images, tmp_path):
    before = {key: value.clone() for key, value in alexnet.state_dict().items()}
    pfa.get_activations(images, alexnet, verbose=False)
    garbage = tmp_path / "bad.png"
    garbage.write_bytes(b"not an image")
    with pytest.raises(ValueError):  # fails in the second batch
        pfa.get_activations(images + [str(garbage)], alexnet, batch_size=4, verbose=False)
    assert not alexnet.training
    assert all(not module._forward_hooks for module in alexnet.modules())
    after = alexnet.state_dict()
    assert all(torch.equal(before[key], after[key]) for key in before)


# ----------------------------------------------------------------------------
# From activations to patterns
# ----------------------------------------------------------------------------


def test_feature_means_and_activation_patterns_against_numpy():
    rng = np.random.default_rng(0)
    conv = rng.normal(size=(5, 6, 3, 4)).astype(np.float32)
    fc = rng.normal(size=(5, 7))
    expected_means = conv.mean(axis=(2, 3))
    np.testing.assert_allclose(pfa.feature_means(conv), expected_means, rtol=1e-6)
    np.testing.assert_array_equal(pfa.feature_means(fc), fc)
    np.testing.assert_array_equal(pfa.activation_patterns(conv), conv.reshape(5, 72))
    np.testing.assert_allclose(pfa.activation_patterns(conv, "feature_means"), expected_means,
                               rtol=1e-6)
    kernels = [4, 0, 2]
    np.testing.assert_array_equal(pfa.activation_patterns(conv, kernel_inds=kernels),
                                  np.stack([conv[i][kernels].ravel() for i in range(5)]))
    np.testing.assert_allclose(
        pfa.activation_patterns(conv, "feature_means", kernel_inds=kernels),
        np.stack([[conv[i, k].mean() for k in kernels] for i in range(5)]),
        rtol=1e-6,
    )
    np.testing.assert_array_equal(pfa.activation_patterns(fc, "feature_means", [1, 3]),
                                  fc[:, [1, 3]])
    original = conv.copy()
    pfa.activation_patterns(conv, "feature_means", kernel_inds=kernels)
    np.testing.assert_array_equal(conv, original)


def test_activation_patterns_rejects_unknown_types():
    with pytest.raises(ValueError, match="'activation_type' parameter of activation_patterns"):
        pfa.activation_patterns(np.zeros((2, 3)), "unit-level")


def test_model_layers_starts_with_original_rgb(alexnet):
    book = pfa.model_layers(alexnet)
    assert list(book) == [("original_rgb", 0)] + ALEXNET_LABELS
    assert book[("original_rgb", 0)] is None
    assert list(pfa.model_layers(alexnet, original_rgb=False)) == ALEXNET_LABELS
    assert pfa.ORIGINAL_RGB == ("original_rgb", 0)
    assert pfa.ACTIVATION_TYPES == ("unit_level", "feature_means")


def test_pil_image_inputs_are_not_modified(alexnet, images):
    copies = [image.copy() for image in images]
    pfa.get_activations(images, alexnet, ["fc3"], verbose=False)
    assert all(np.array_equal(np.asarray(a), np.asarray(b)) for a, b in zip(images, copies))
    assert all(isinstance(image, Image.Image) for image in images)


def test_max_memory_refuses_a_result_that_does_not_fit_before_any_pass(monkeypatch):
    import pytorch_feature_analysis as pfa
    from pytorch_feature_analysis import activations

    model = pfa.prepare_model("alexnet", "random")
    images = [s["path"] for s in pfa.make_synthetic_stimuli(1, colors=(0, 180), size=32)]
    needed = 2 * (64 * 55 * 55 + 1000) * 4  # conv1 and fc3 of two images, float32
    acts = pfa.get_activations(images, model, ["conv1", "fc3"], max_memory=needed, verbose=False)
    assert sum(array.nbytes for array in acts.values()) == needed
    monkeypatch.setattr(activations.LayerCapture, "run", lambda *a: pytest.fail("a pass ran"))
    with pytest.raises(pfa.InvalidInputError, match=rf"max_memory.*get_activations.*{needed}"):
        pfa.get_activations(images, model, ["conv1", "fc3"], max_memory=needed - 1, verbose=False)
