"""Tests of image loading, preprocessing, image sets and synthetic stimuli.

References: torchvision's own per-image transform, the original library's
docstring example and the user guide's image-set loop (typed in here), PIL
and colorsys.
"""

import colorsys
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms
from torchvision.transforms import v2

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import stimuli as stimuli_module


def noise_image(width, height, seed, mode="RGB"):
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "RGBA": 4}.get(mode)
    shape = (height, width) if channels is None else (height, width, channels)
    return Image.fromarray(rng.integers(0, 256, size=shape, dtype=np.uint8), mode=mode)


# ----------------------------------------------------------------------------
# Preprocessing
# ----------------------------------------------------------------------------


def test_fast_default_preprocessing_equals_torchvision_per_image():
    sizes = [(300, 200), (200, 300), (224, 224), (100, 50), (641, 480), (225, 224), (37, 90)]
    images = [noise_image(w, h, seed) for seed, (w, h) in enumerate(sizes)]
    expected = torch.stack([
        transforms.Compose([
            transforms.Resize(224),
            transforms.CenterCrop(224),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ])(image)
        for image in images
    ])
    batch = pfa.preprocess_images(images)
    assert batch.shape == (len(sizes), 3, 224, 224) and batch.dtype == torch.float32
    assert batch.is_contiguous()
    assert torch.allclose(batch, expected, atol=1e-6, rtol=0)
    per_image = torch.stack([pfa.default_transform()(image) for image in images])
    assert torch.allclose(batch, per_image, atol=1e-6, rtol=0)


def test_default_preprocessing_of_other_modes_matches_rgb_conversion():
    images = [noise_image(120, 90, 1, "L"), noise_image(90, 120, 2, "RGBA"),
              noise_image(64, 64, 3).convert("P")]
    expected = torch.stack([pfa.default_transform()(image.convert("RGB")) for image in images])
    assert torch.allclose(pfa.preprocess_images(images), expected, atol=1e-6, rtol=0)


def test_preprocessing_does_not_modify_its_inputs():
    image = noise_image(50, 40, 0)
    array = np.asarray(image).copy()
    floats = array / 255.0
    floats_before = floats.copy()
    pfa.preprocess_images([image, array, floats])
    assert np.array_equal(np.asarray(image), array)
    assert np.array_equal(floats, floats_before)


def test_a_custom_transform_is_applied_to_every_image():
    transform = pfa.default_transform(32)
    images = [noise_image(40, 60, 0), noise_image(70, 30, 1)]
    batch = pfa.preprocess_images(images, transform)
    assert torch.equal(batch, torch.stack([transform(image) for image in images]))
    assert batch.shape == (2, 3, 32, 32)


def test_a_transform_giving_different_shapes_is_rejected():
    with pytest.raises(ValueError, match="same shape"):
        pfa.preprocess_images([noise_image(40, 60, 0), noise_image(70, 30, 1)],
                              transforms.ToTensor())


def test_default_transform_crops_to_a_square():
    out = pfa.default_transform(48)(noise_image(100, 60, 0))
    assert out.shape == (3, 48, 48)


# ----------------------------------------------------------------------------
# Loading images
# ----------------------------------------------------------------------------


def test_load_image_from_path_pil_and_arrays(tmp_path):
    image = noise_image(30, 20, 0)
    path = tmp_path / "noise.png"
    image.save(path)
    uint8 = np.asarray(image)
    for source in (str(path), path, image, uint8, uint8 / 255.0, uint8.astype(np.float32) / 255):
        loaded = pfa.load_image(source)
        assert loaded.mode == "RGB" and loaded.size == (30, 20)
        assert np.array_equal(np.asarray(loaded), uint8)
    grey = np.asarray(noise_image(8, 6, 1, "L"))
    assert np.array_equal(np.asarray(pfa.load_image(grey)), np.stack([grey] * 3, axis=-1))
    assert np.array_equal(np.asarray(pfa.load_image(grey[..., None])),
                          np.stack([grey] * 3, axis=-1))


def test_load_image_errors_name_the_problem(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.png"):
        pfa.load_image(str(tmp_path / "missing.png"))
    garbage = tmp_path / "x.png"
    garbage.write_bytes(b"\x89PNG but not really")
    with pytest.raises(ValueError, match="x.png"):
        pfa.load_image(garbage)
    with pytest.raises(ValueError, match=r"\(4, 4, 2\)"):
        pfa.load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        pfa.load_image(np.full((4, 4, 3), -0.5))
    with pytest.raises(ValueError, match="NaN"):
        pfa.load_image(np.full((4, 4, 3), np.inf))
    with pytest.raises(ValueError, match="int64"):
        pfa.load_image(np.zeros((4, 4, 3), np.int64))
    with pytest.raises(TypeError, match="int"):
        pfa.load_image(42)


def test_check_images_exist_names_the_missing_file(tmp_path):
    present = tmp_path / "here.png"
    noise_image(4, 4, 0).save(present)
    stimuli_module.check_images_exist([str(present), present, noise_image(4, 4, 1), np.zeros((2, 2))])
    with pytest.raises(FileNotFoundError, match="gone.jpg"):
        stimuli_module.check_images_exist([str(present), str(tmp_path / "gone.jpg")])


# ----------------------------------------------------------------------------
# Image sets
# ----------------------------------------------------------------------------


def test_package_image_sets_reproduces_the_original_docstring_example():
    image_list = [{'color': 'red', 'shape': 'square', 'path': 'red_square.jpg'},
                  {'color': 'blue', 'shape': 'square', 'path': 'blue_square.jpg'},
                  {'color': 'red', 'shape': 'circle', 'path': 'red_circle.jpg'},
                  {'color': 'blue', 'shape': 'circle', 'path': 'blue_square.jpg'}]
    expected = [(OrderedDict([('color', 'red')]),
                 OrderedDict([(('square',), 'red_square.jpg'),
                              (('circle',), 'red_circle.jpg')]),
                 ('shape',),
                 []),
                (OrderedDict([('color', 'blue')]),
                 OrderedDict([(('square',), 'blue_square.jpg'),
                              (('circle',), 'blue_square.jpg')]),
                 ('shape',),
                 [])]
    got = pfa.package_image_sets(image_list, ['shape'], ['color'])
    assert got == expected
    for got_set, expected_set in zip(got, expected):
        assert isinstance(got_set, tuple)
        assert list(got_set[0].items()) == list(expected_set[0].items())
        assert list(got_set[1].items()) == list(expected_set[1].items())
        stimuli_module.validate_image_set(got_set)


def test_package_image_sets_matches_the_guides_hand_built_sets():
    color_list = ['000', '090', '180', '270']
    obj_list = ['obj001', 'obj003', 'obj004', 'obj005']
    stim_dir = '/stimuli'
    # The guide's loop, as printed there.
    image_sets = []
    for obj in obj_list:
        image_set_labels = {'obj': obj}
        image_set_stim = {}
        for color in color_list:
            image_set_stim[tuple([color])] = f"{stim_dir}/{obj}/{obj}_{color}deg.jpg"
        entry_types = tuple(['color'])
        image_sets.append((image_set_labels, image_set_stim, entry_types, []))
    image_list = [{'obj': obj, 'color': color, 'path': f"{stim_dir}/{obj}/{obj}_{color}deg.jpg"}
                  for color in color_list for obj in obj_list]  # a different order on purpose
    packaged = pfa.package_image_sets(image_list, ['color'], ['obj'])
    assert packaged == image_sets
    for image_set in packaged:
        stimuli_module.validate_image_set(image_set)


def test_package_image_sets_with_two_entry_and_two_grouping_variables():
    image_list = [
        {'obj': obj, 'size': size, 'color': color, 'angle': angle,
         'path': f"{obj}{size}{color}{angle}"}
        for obj in 'ab' for size in 'sl' for color in 'rg' for angle in (0, 90)
    ]
    sets = pfa.package_image_sets(image_list, ['color', 'angle'], ['obj', 'size'])
    assert [dict(s[0]) for s in sets] == [{'obj': o, 'size': z} for o in 'ab' for z in 'sl']
    assert all(s[2] == ('color', 'angle') and s[3] == [] for s in sets)
    assert list(sets[1][1].items()) == [(('r', 0), 'alr0'), (('r', 90), 'alr90'),
                                        (('g', 0), 'alg0'), (('g', 90), 'alg90')]


def test_package_image_sets_errors():
    good = {'color': 'red', 'shape': 'square', 'path': 'a.jpg'}
    with pytest.raises(ValueError, match="'path'") as error:
        pfa.package_image_sets([good, {'color': 'red', 'shape': 'disc'}], ['shape'], ['color'])
    assert "Image 1" in str(error.value)
    with pytest.raises(ValueError, match="must match") as error:
        pfa.package_image_sets([{'color': 'red', 'size': 'big', 'path': 'a.jpg'}],
                               ['shape'], ['color'])
    assert "'size'" in str(error.value) and "'shape'" in str(error.value)
    with pytest.raises(ValueError, match="must match"):
        pfa.package_image_sets([{'color': 'red', 'path': 'a.jpg'}], ['shape'], ['color'])
    duplicate = {'color': 'red', 'shape': 'square', 'path': 'b.jpg'}
    with pytest.raises(ValueError, match=r"\('square',\)") as error:
        pfa.package_image_sets([good, duplicate], ['shape'], ['color'])
    assert "'a.jpg'" in str(error.value) and "'b.jpg'" in str(error.value)
    with pytest.raises(ValueError, match="both entry and grouping"):
        pfa.package_image_sets([good], ['shape', 'color'], ['color'])


def test_package_image_sets_does_not_modify_the_image_list():
    image_list = [{'color': 'red', 'shape': 'square', 'path': 'a.jpg'},
                  {'color': 'red', 'shape': 'disc', 'path': 'b.jpg'}]
    before = [dict(image) for image in image_list]
    pfa.package_image_sets(image_list, ['shape'], ['color'])
    assert image_list == before


def test_validate_image_set_accepts_good_sets_and_names_problems():
    good = ({'obj': 'a'}, {('red',): 'a.png', ('blue',): 'b.png'}, ('color',), [])
    assert stimuli_module.validate_image_set(good) is None
    with pytest.raises(ValueError, match="0 entries; an RDM needs at least 2"):
        stimuli_module.validate_image_set(({'obj': 'a'}, {}, ('color',), []))
    with pytest.raises(ValueError, match="1 entry; an RDM needs at least 2"):
        stimuli_module.validate_image_set(({'obj': 'a'}, {('red',): 'a.png'}, ('color',), []))
    one_plus_combination = ({'obj': 'a'}, {('red',): 'a.png'}, ('color',),
                            [(('mix',), [('red',)], np.mean, {}, False)])
    assert stimuli_module.validate_image_set(one_plus_combination) is None
    with pytest.raises(ValueError, match="Image set 3 must be a tuple"):
        stimuli_module.validate_image_set(({'obj': 'a'}, {}), position=3)
    with pytest.raises(ValueError, match="labels must be a dict"):
        stimuli_module.validate_image_set((['obj'], good[1], ('color',), []))
    with pytest.raises(ValueError, match=r"\{entry_key: image\}"):
        stimuli_module.validate_image_set(({'obj': 'a'}, ['a.png', 'b.png'], ('color',), []))
    with pytest.raises(ValueError, match=r"entry key \('red', 1\)"):
        stimuli_module.validate_image_set(({'obj': 'a'}, {('red', 1): 'a', ('blue', 1): 'b'}, ('color',), []))
    with pytest.raises(ValueError, match=r"\('color',\)"):
        stimuli_module.validate_image_set(({'obj': 'a'}, {('red',): 'a', ('blue',): 'b'}, 'color', []))


# ----------------------------------------------------------------------------
# Synthetic stimuli
# ----------------------------------------------------------------------------


def test_synthetic_stimuli_are_coloured_shapes_on_white():
    stimuli = pfa.make_synthetic_stimuli(3, colors=(0, 90, 180, 270), size=40)
    assert [(s['obj'], s['color']) for s in stimuli] == [
        (f"obj00{i}", c) for i in (1, 2, 3) for c in ('000', '090', '180', '270')
    ]
    for stimulus in stimuli:
        pixels = np.asarray(stimulus['path'])
        assert stimulus['path'].mode == 'RGB' and pixels.shape == (40, 40, 3)
        assert tuple(pixels[0, 0]) == (255, 255, 255)  # background
        hue = int(stimulus['color']) / 360
        expected = tuple(int(round(255 * v)) for v in colorsys.hsv_to_rgb(hue, 0.85, 0.9))
        assert tuple(pixels[20, 20]) == expected  # the centre of every shape is filled
    # Different objects are different shapes; different colours differ in colour only.
    masks = [np.any(np.asarray(s['path']) != 255, axis=-1) for s in stimuli]
    assert np.array_equal(masks[0], masks[1]) and not np.array_equal(masks[0], masks[4])
    again = pfa.make_synthetic_stimuli(3, colors=(0, 90, 180, 270), size=40)
    assert all(np.array_equal(np.asarray(a['path']), np.asarray(b['path']))
               for a, b in zip(stimuli, again))


def test_synthetic_stimuli_package_into_the_guides_design():
    stimuli = pfa.make_synthetic_stimuli(4, size=32)
    sets = pfa.package_image_sets(stimuli, ['color'], ['obj'])
    assert [dict(s[0]) for s in sets] == [{'obj': f"obj00{i}"} for i in (1, 2, 3, 4)]
    assert all(list(s[1]) == [('000',), ('090',), ('180',), ('270',)] for s in sets)


@pytest.mark.parametrize("num_objects", [0, 9])
def test_synthetic_stimuli_reject_bad_object_counts(num_objects):
    with pytest.raises(ValueError, match="'num_objects' parameter of make_synthetic_stimuli"):
        pfa.make_synthetic_stimuli(num_objects)


def test_saved_synthetic_stimuli_read_back_identically(tmp_path):
    out_dir = tmp_path / "new" / "folder"
    saved = pfa.save_synthetic_stimuli(out_dir, num_objects=2, colors=(0, 120), size=24)
    in_memory = pfa.make_synthetic_stimuli(2, colors=(0, 120), size=24)
    assert [Path(s['path']).name for s in saved] == [
        "obj001_000deg.png", "obj001_120deg.png", "obj002_000deg.png", "obj002_120deg.png"
    ]
    for on_disk, original in zip(saved, in_memory):
        assert isinstance(on_disk['path'], str)
        assert (on_disk['obj'], on_disk['color']) == (original['obj'], original['color'])
        with Image.open(on_disk['path']) as read:
            assert np.array_equal(np.asarray(read.convert('RGB')), np.asarray(original['path']))


def test_sixteen_bit_greyscale_images_keep_their_range(tmp_path):
    # 16-bit greyscale (common for scientific stimuli): scaled to 8 bits, not clipped to white.
    deep = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    expected = np.round(deep / 257.0).astype(np.uint8)
    path = tmp_path / "deep.png"
    Image.fromarray(deep).save(path)
    for image in (path, Image.open(path), deep):
        loaded = np.asarray(pfa.load_image(image))
        np.testing.assert_array_equal(loaded, np.repeat(expected[..., None], 3, axis=2))


@pytest.mark.parametrize("size", [32, 97, 224, 300])
def test_batched_default_preprocessing_at_any_size(size):
    """The batch path equals the per-image v2 transform exactly, and the v1 steps to 1e-6."""
    images = [noise_image(w, h, seed) for seed, (w, h) in enumerate([(300, 200), (41, 90),
                                                                      (size, size), (640, 481)])]
    transform = pfa.default_transform(size)
    assert isinstance(transform, v2.Compose)
    batch = pfa.preprocess_images(images, transform)
    assert batch.shape == (4, 3, size, size) and batch.is_contiguous()
    assert type(batch) is torch.Tensor
    assert torch.equal(batch, torch.stack([transform(image) for image in images]))
    v1 = transforms.Compose([transforms.Resize(size), transforms.CenterCrop(size),
                             transforms.ToTensor(), transforms.Normalize(pfa.IMAGENET_MEAN,
                                                                         pfa.IMAGENET_STD)])
    expected = torch.stack([v1(image) for image in images])
    assert (batch - expected).abs().max() < 1e-6


@pytest.mark.parametrize("size", [0, 2.5, "224", True])
def test_default_transform_rejects_bad_sizes(size):
    with pytest.raises(pfa.InvalidInputError, match="'size' parameter of default_transform"):
        pfa.default_transform(size)


def test_user_mistakes_raise_invalid_input_error():
    with pytest.raises(pfa.InvalidInputError):
        pfa.package_image_sets([{'color': 'red', 'path': 'a.jpg'}], ['color'], ['color'])
    with pytest.raises(pfa.InvalidInputError):
        pfa.load_image(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(pfa.InvalidInputError, match="'transform' parameter of preprocess_images"):
        pfa.preprocess_images([noise_image(40, 60, 0), noise_image(70, 30, 1)],
                              transforms.ToTensor())
