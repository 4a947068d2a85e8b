"""Videos: synthetic moving stimuli, loading, preprocessing, video models in get_rdms."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.spatial.distance as ssd
import torch
import torchvision

import pytorch_feature_analysis as pfa

TINY = dict(num_frames=4, crop_size=16, resize_size=16)


@pytest.fixture(scope="module")
def r3d():
    return pfa.prepare_model("r3d_18", "random")


@pytest.fixture(scope="module")
def tiny3d():
    """Two 3-D convolutions (the second halves time): fast stand-in for a video model."""
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv3d(3, 6, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv3d(6, 8, 3, stride=(2, 1, 1), padding=1), torch.nn.ReLU(),
    ).eval()


def test_grating_pixels_equal_the_analytic_formula():
    frames, height, width, fps, ppd = 5, 6, 7, 10.0, 3.0
    sf, speed, direction, contrast, phase = 0.4, 1.5, 30.0, 0.8, 0.3
    grating = pfa.moving_grating(frames, height, width, spatial_frequency=sf, speed=speed,
                                 direction=direction, contrast=contrast, phase=phase, fps=fps,
                                 pixels_per_degree=ppd)
    assert grating.shape == (frames, height, width, 3) and grating.dtype == np.float32
    theta = math.radians(direction)
    for t in range(frames):
        for row in range(height):
            for col in range(width):
                x, y = (col - (width - 1) / 2) / ppd, ((height - 1) / 2 - row) / ppd
                d = x * math.cos(theta) + y * math.sin(theta)
                value = 0.5 + 0.5 * contrast * math.cos(
                    2 * math.pi * sf * (d - speed * t / fps) + phase)
                assert grating[t, row, col] == pytest.approx([value] * 3, abs=1e-6)


def test_a_grating_moving_up_shifts_rows_up():
    grating = pfa.moving_grating(3, 8, 8, spatial_frequency=1.0, speed=2.0, direction=90.0,
                                 fps=8.0, pixels_per_degree=4.0)
    # 2 deg/s at 8 fps and 4 px/deg: one pixel per frame, towards row 0
    assert np.allclose(grating[1, :-1], grating[0, 1:], atol=1e-6)


def test_sharp_bar_pixels_are_the_indicator_of_the_bar():
    frames, height, width, fps, ppd = 6, 5, 9, 5.0, 2.0
    bar = pfa.moving_bar(frames, height, width, bar_width=1.1, speed=2.0, direction=180.0,
                         start=1.0, fps=fps, pixels_per_degree=ppd)
    for t in range(frames):
        centre = 1.0 + 2.0 * t / fps
        for col in range(width):
            d = -(col - (width - 1) / 2) / ppd  # position along leftwards motion
            expected = float(abs(d - centre) <= 0.55)
            assert np.all(bar[t, :, col] == expected)


def test_smoothed_bar_is_the_sharp_bar_convolved_with_a_gaussian_in_time():
    fps, ppd, speed, sigma, width = 10.0, 4.0, 3.0, 0.05, 1.0
    bar = pfa.moving_bar(4, 3, 12, bar_width=width, speed=speed, start=-1.0,
                         temporal_smoothing=sigma, fps=fps, pixels_per_degree=ppd)
    s = np.linspace(-8 * sigma, 8 * sigma, 40001)  # numerical convolution, fine steps
    weights = np.exp(-0.5 * (s / sigma) ** 2)
    weights /= weights.sum()
    for t in range(4):
        for col in range(12):
            d = (col - 5.5) / ppd
            sharp = np.abs(d - (-1.0 + speed * (t / fps - s))) <= width / 2
            assert bar[t, 1, col, 0] == pytest.approx(np.sum(weights * sharp), abs=1e-3)
    assert np.any((bar > 0.01) & (bar < 0.99))  # the edges are blurred


@pytest.mark.parametrize("call, match", [
    (lambda: pfa.moving_grating(fps=0), "'fps' parameter of moving_grating"),
    (lambda: pfa.moving_grating(contrast=2), "'contrast' parameter"),
    (lambda: pfa.moving_bar(temporal_smoothing=-1), "'temporal_smoothing' parameter"),
    (lambda: pfa.moving_bar(num_frames=0), "'num_frames' parameter of moving_bar"),
])
def test_bad_stimulus_parameters_are_named(call, match):
    with pytest.raises(pfa.InvalidInputError, match=match):
        call()


def write_video(path, frames, fps=10):
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("png", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "rgb24"
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_load_video_reads_arrays_lists_and_files(tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (5, 8, 10, 3), dtype=np.uint8)
    write_video(tmp_path / "clip.mov", frames)
    assert np.array_equal(pfa.load_video(tmp_path / "clip.mov"), frames)
    assert np.array_equal(pfa.load_video(frames), frames)
    assert np.array_equal(pfa.load_video(list(frames)), frames)
    from PIL import Image
    assert np.array_equal(pfa.load_video([Image.fromarray(f) for f in frames]), frames)
    grey = pfa.load_video(frames[..., 0])
    assert np.array_equal(grey, np.repeat(frames[..., :1], 3, axis=-1))


@pytest.mark.parametrize("video, match", [
    (np.zeros((4, 8, 8, 2)), "shape"),
    (np.full((2, 4, 4, 3), 1.5), r"values in \[1.5, 1.5\]"),
    ([np.zeros((4, 4, 3)), np.zeros((5, 4, 3))], "frames of one shape"),
    (3, "load_video: a video must be .* got 3 instead"),
])
def test_bad_videos_are_named(video, match):
    with pytest.raises(pfa.InvalidInputError, match=match):
        pfa.load_video(video)


def test_an_unreadable_video_file_is_named(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(pfa.InvalidInputError, match="bad.mp4"):
        pfa.load_video(tmp_path / "bad.mp4")
    with pytest.raises(FileNotFoundError, match="gone.mp4"):
        pfa.load_video(tmp_path / "gone.mp4")


@pytest.mark.parametrize("name", ["r3d_18", "s3d", "mvit_v2_s"])
@pytest.mark.parametrize("dtype", ["uint8", "float"])
def test_video_transform_equals_torchvisions_reference_transform(name, dtype):
    rng = np.random.default_rng(1)
    clip = rng.integers(0, 256, (3, 30, 40, 3), dtype=np.uint8)
    if dtype == "float":
        clip = clip / 255.0
    reference = torchvision.models.get_model_weights(name).DEFAULT.transforms()
    expected = reference(torch.from_numpy(clip).permute(0, 3, 1, 2).float()
                         if dtype == "float" else torch.from_numpy(clip).permute(0, 3, 1, 2))
    got = pfa.video_transform(name, num_frames=3)(clip)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected.float(), atol=1e-5)


def test_clips_are_cut_to_num_frames_and_shorter_ones_are_an_error():
    transform = pfa.video_transform("r3d_18", **TINY)
    long = pfa.moving_grating(7, 16, 16)
    assert torch.equal(transform(long), transform(long[:4]))
    with pytest.raises(pfa.InvalidInputError, match="num_frames=4 frames.*got a clip of 3"):
        transform(long[:3])
    with pytest.raises(pfa.InvalidInputError, match="'model' parameter of video_transform"):
        pfa.video_transform("resnet18")


def test_preprocessing_leaves_the_videos_unchanged():
    clip = pfa.moving_grating(4, 16, 16)  # float32 at the crop size: no resize, no copy needed
    before = clip.copy()
    frames = [f for f in (clip * 255).astype(np.uint8)]
    frames_before = [f.copy() for f in frames]
    transform = pfa.video_transform("r3d_18", **TINY)
    transform(clip).mul_(0)
    transform(frames).mul_(0)
    np.testing.assert_array_equal(clip, before)
    for frame, original in zip(frames, frames_before):
        np.testing.assert_array_equal(frame, original)


def test_a_video_without_a_video_transform_says_what_to_pass():
    with pytest.raises(pfa.InvalidInputError, match="video_transform"):
        pfa.preprocess_images([pfa.moving_grating(2, 8, 8)])


def test_video_models_are_prepared_by_name_with_seeded_random_weights():
    names = set(pfa.available_models())
    assert {"r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v1_b", "mvit_v2_s"} <= names
    first, second = (pfa.prepare_model("mc3_18", "random", random_state=3) for _ in range(2))
    torch.manual_seed(3)
    reference = torchvision.models.video.mc3_18()
    for a, b, c in zip(first.parameters(), second.parameters(), reference.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)


def grating_sets():
    sets = []
    for obj, frequency in (("slow", 0.5), ("fine", 1.5)):
        clips = {(str(d),): pfa.moving_grating(4, 16, 16, spatial_frequency=frequency,
                                               direction=d) for d in (0, 90, 180)}
        sets.append(({"obj": obj}, clips, ("direction",), []))
    return sets


def hooked(model, module, batch):
    stored = []
    handle = module.register_forward_hook(lambda m, i, o: stored.append(o.detach().clone()))
    with torch.no_grad():
        model(batch)
    handle.remove()
    return stored[0].double().numpy()


def test_get_rdms_of_videos_equal_scipy_on_hooked_activations(r3d):
    model = r3d
    transform = pfa.video_transform("r3d_18", **TINY)
    frame = pfa.get_rdms(grating_sets(), {"r3d": model}, None, which_layers=["conv1", "conv3"],
                         dissim_metrics=["corr", "euclidean_distance"], transform=transform,
                         verbose=False)
    modules = {"conv1": model.stem[0], "conv3": model.layer1[0].conv2[0]}
    for labels, clips, _, _ in grating_sets():
        batch = torch.stack([transform(clip) for clip in clips.values()])
        for layer, module in modules.items():
            acts = hooked(model, module, batch)
            for activation_type, patterns in (
                ("unit_level", acts.reshape(len(acts), -1)),
                ("feature_means", acts.reshape(*acts.shape[:2], -1).mean(axis=2)),
            ):
                for metric, scipy_metric in (("corr", "correlation"),
                                             ("euclidean_distance", "euclidean")):
                    row = frame[(frame.obj == labels["obj"]) & (frame.layer == layer)
                                & (frame.activation_type == activation_type)
                                & (frame.dissim_metric == metric)]
                    expected = ssd.squareform(ssd.pdist(patterns, scipy_metric))
                    np.testing.assert_allclose(row.matrix.iloc[0], expected, rtol=1e-4,
                                               atol=1e-6)


def test_a_missing_video_file_in_an_image_set_fails_before_any_work(tmp_path):
    sets = [({"obj": "a"}, {("0",): str(tmp_path / "x.mp4"), ("1",): str(tmp_path / "y.mp4")},
             ("direction",), [])]
    with pytest.raises(FileNotFoundError, match="x.mp4"):
        pfa.get_rdms(sets, {"r3d": ("r3d_18", "random")}, None,
                     transform=pfa.video_transform("r3d_18", **TINY), verbose=False)


def test_video_files_in_an_image_set_give_the_rdms_of_their_frames(tmp_path, tiny3d):
    clips = [(pfa.moving_grating(4, 16, 16, direction=d) * 255).round().astype(np.uint8)
             for d in (0, 90, 180)]
    paths = []
    for index, clip in enumerate(clips):
        write_video(tmp_path / f"{index}.mov", clip)
        paths.append(str(tmp_path / f"{index}.mov"))
    model = tiny3d
    kwargs = dict(which_layers=["conv1"], transform=pfa.video_transform("r3d_18", **TINY),
                  verbose=False)
    from_files = pfa.get_rdms([({"obj": "a"}, {(str(i),): p for i, p in enumerate(paths)},
                                ("d",), [])], {"tiny": model}, None, **kwargs)
    from_arrays = pfa.get_rdms([({"obj": "a"}, {(str(i),): c for i, c in enumerate(clips)},
                                 ("d",), [])], {"tiny": model}, None, **kwargs)
    for a, b in zip(from_files.matrix, from_arrays.matrix):
        np.testing.assert_array_equal(a, b)


def test_time_resolved_rdms_equal_scipy_per_time_step_on_hooked_activations(r3d):
    model = r3d
    transform = pfa.video_transform("r3d_18", **TINY)
    frame = pfa.get_rdms(grating_sets()[:1], {"r3d": model}, None,
                         which_layers=["conv1", "conv6"], transform=transform, verbose=False,
                         time_resolved=True, frame_rate=25)
    clips = grating_sets()[0][1]
    batch = torch.stack([transform(clip) for clip in clips.values()])
    inputs = batch.double().numpy()
    modules = {"conv1": model.stem[0], "conv6": model.layer2[0].conv1[0]}
    expected_steps = {"original_rgb": 4, "conv1": 4, "conv6": 2}
    for layer, steps in expected_steps.items():
        acts = inputs if layer == "original_rgb" else hooked(model, modules[layer], batch)
        assert acts.shape[2] == steps
        rows = frame[frame.layer == layer]
        assert sorted(set(rows.time)) == list(range(steps))
        for step in range(steps):
            at_step = acts[:, :, step]
            for activation_type, patterns in (
                ("unit_level", at_step.reshape(len(at_step), -1)),
                ("feature_means", at_step.reshape(*at_step.shape[:2], -1).mean(axis=2)),
            ):
                row = rows[(rows.time == step) & (rows.activation_type == activation_type)]
                assert len(row) == 1
                # 4 input frames over `steps` steps at 25 frames per second
                assert row.time_s.iloc[0] == pytest.approx(step * 4 / steps / 25)
                expected = ssd.squareform(ssd.pdist(patterns, "correlation"))
                np.testing.assert_allclose(row.matrix.iloc[0], expected, rtol=1e-4, atol=1e-6)


def test_time_resolved_rdms_survive_channel_slices_and_a_file_round_trip(tmp_path, tiny3d):
    model = tiny3d
    kwargs = dict(which_layers=["conv1"], transform=pfa.video_transform("r3d_18", **TINY),
                  verbose=False, time_resolved=True)
    whole = pfa.get_rdms(grating_sets(), {"r3d": model}, None, **kwargs)
    budget = 2**26 + 150_000  # the accumulators' work chunks (64 MiB) and a little more
    plan = pfa.get_rdms(grating_sets(), {"r3d": model}, None, max_memory=budget, dry_run=True,
                        **kwargs)
    assert plan.sliced_layers.max() == 1 and plan.passes.max() > 1
    sliced = pfa.get_rdms(grating_sets(), {"r3d": model}, tmp_path / "r.parquet",
                          max_memory=budget, **kwargs)
    again = pfa.get_rdms(grating_sets(), {"r3d": model}, tmp_path / "r.parquet", **kwargs)
    assert "time_s" not in whole.columns
    for other in (sliced, again, pfa.load_frame(tmp_path / "r.parquet")):
        assert list(other.time) == list(whole.time)
        for a, b in zip(whole.matrix, other.matrix):  # batches of 1 vs 3: float32 rounding
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)


def test_a_time_by_time_meta_rdm_is_one_get_meta_rdms_call(tiny3d):
    frame = pfa.get_rdms(grating_sets(), {"tiny": tiny3d}, None,
                         which_layers=["conv1"], transform=pfa.video_transform("r3d_18", **TINY),
                         verbose=False, time_resolved=True, frame_rate=10)
    frame = frame[frame.layer == "conv1"]
    meta = pfa.get_meta_rdms(frame, None, ["time"], verbose=False)
    # one time x time meta-RDM per image set x activation type
    assert len(meta) == 2 * 2
    for _, row in meta.iterrows():
        rdms = frame[(frame.obj == row.obj) & (frame.layer == row.layer)
                     & (frame.activation_type == row.activation_type)].sort_values("time")
        upper = np.stack([m[np.triu_indices(3, 1)] for m in rdms.matrix])
        expected = ssd.squareform(ssd.pdist(upper, "correlation"))
        np.testing.assert_allclose(row.matrix, expected, atol=1e-10)
        assert row.entry_keys == tuple((t,) for t in range(4))


def test_time_resolved_rdms_of_a_layer_without_a_time_axis_are_an_error(r3d):
    with pytest.raises(pfa.InvalidInputError, match=r"time axis.*\('fc1', \d+\)"):
        pfa.get_rdms(grating_sets(), {"r3d": r3d}, None, which_layers=["fc1"],
                     transform=pfa.video_transform("r3d_18", **TINY), verbose=False,
                     time_resolved=True)
    images = [({"obj": "a"}, {("0",): np.zeros((8, 8, 3)), ("1",): np.ones((8, 8, 3))},
               ("c",), [])]
    with pytest.raises(pfa.InvalidInputError, match="original_rgb.*is the input a video"):
        pfa.get_rdms(images, {"alexnet": ("alexnet", "random")}, None, which_layers=["conv1"],
                     verbose=False, time_resolved=True)
    with pytest.raises(pfa.InvalidInputError, match="'frame_rate' parameter of get_rdms"):
        pfa.get_rdms(images, {"alexnet": ("alexnet", "random")}, None, frame_rate=25,
                     verbose=False)


def grating_design(replicates=2):
    """2 spatial frequencies x 2 directions; replicates differ in phase and contrast."""
    cells = {}
    for sf in ("0.5", "1.5"):
        for d in ("0", "90"):
            cells[(sf, d)] = [pfa.moving_grating(4, 16, 16, spatial_frequency=float(sf),
                                                 direction=float(d), phase=r,
                                                 contrast=0.5 + 0.2 * r)
                              for r in range(replicates)]
    return cells


def test_unit_anova_of_videos_equals_statsmodels_on_hooked_activations(tiny3d):
    from statsmodels.formula.api import ols
    from statsmodels.stats.anova import anova_lm
    import pandas as pd

    cells = grating_design()
    transform = pfa.video_transform("r3d_18", **TINY)
    _, units = pfa.unit_anova(({"study": "g"}, cells, ("sf", "direction")), ("tiny", tiny3d),
                              which_layer_dict=["conv2"], transform=transform, verbose=False)
    clips = [clip for replicates in cells.values() for clip in replicates]
    acts = hooked(tiny3d, tiny3d[2], torch.stack([transform(c) for c in clips]))
    values = acts.reshape(len(acts), -1)
    design = pd.DataFrame([key for key, replicates in cells.items() for _ in replicates],
                          columns=["sf", "direction"])
    eta = units[("conv2", 3)]["eta2_var1"].reshape(-1)
    for unit in np.random.default_rng(0).choice(values.shape[1], 5, replace=False):
        table = anova_lm(ols("y ~ C(sf) * C(direction)", data=design.assign(y=values[:, unit]))
                         .fit(), typ=2)
        expected = table.loc["C(sf)", "sum_sq"] / table["sum_sq"].sum()
        assert eta[unit] == pytest.approx(expected, rel=1e-4, abs=1e-6)


def test_decoding_of_videos_equals_cross_val_score_on_hooked_features(tiny3d):
    from sklearn.linear_model import RidgeClassifier
    from sklearn.model_selection import LeaveOneOut, cross_val_score

    rng = np.random.default_rng(0)  # noisy low-contrast clips: accuracies below 1
    image_list = [{"sf": sf, "direction": d, "path": np.clip(pfa.moving_grating(
        4, 8, 8, spatial_frequency=float(sf), direction=float(d), phase=r, contrast=0.3)
        + rng.normal(0, 0.3, (4, 8, 8, 3)), 0, 1)}
        for sf in ("0.5", "1.5") for d in ("0", "90") for r in range(3)]
    transform = pfa.video_transform("r3d_18", num_frames=4, crop_size=8, resize_size=8)
    frame = pfa.run_2way_svm_analysis(
        image_list, "sf", "direction", [], {"tiny": tiny3d}, ["conv2"], "videos", None,
        estimator=RidgeClassifier(alpha=10.0), cv=LeaveOneOut(), cross_decoding=False,
        transform=transform, verbose=False)
    acts = hooked(tiny3d, tiny3d[2], torch.stack([transform(i["path"]) for i in image_list]))
    features = acts.reshape(len(acts), -1)
    for variable in ("sf", "direction"):
        y = np.array([image[variable] for image in image_list])
        order = np.concatenate([np.flatnonzero(y == level) for level in sorted(set(y))])
        expected = cross_val_score(RidgeClassifier(alpha=10.0), features[order], y[order],
                                   cv=LeaveOneOut()).mean()
        assert 0 < expected < 1
        row = frame[frame.decoded_variable == variable]
        assert row.acc.iloc[0] == pytest.approx(expected, abs=1e-12)


def test_a_shorter_clip_in_an_image_set_is_an_error_naming_its_length(tiny3d):
    clips = {(str(d),): pfa.moving_grating(5, 16, 16, direction=d) for d in (0, 90)}
    clips[("180",)] = pfa.moving_grating(3, 16, 16, direction=180)
    with pytest.raises(pfa.InvalidInputError, match="get_rdms: .*num_frames=4.*a clip of 3"):
        pfa.get_rdms([({"obj": "a"}, clips, ("direction",), [])], {"tiny": tiny3d}, None,
                     transform=pfa.video_transform("r3d_18", **TINY), verbose=False)
