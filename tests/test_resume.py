"""Resumed get_rdms runs: fingerprints, rows never lost, concurrent writers."""

from __future__ import annotations

import multiprocessing
import os
import shutil

import numpy as np
import pandas as pd
import torch
import pytest
from torchvision import transforms

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import rdms as rdms_module

SMALL = transforms.Compose([
    transforms.Resize(64), transforms.CenterCrop(64), transforms.ToTensor(),
    transforms.Normalize(pfa.IMAGENET_MEAN, pfa.IMAGENET_STD),
])
OTHER = transforms.Compose([
    transforms.Resize(72), transforms.CenterCrop(64), transforms.ToTensor(),
    transforms.Normalize(pfa.IMAGENET_MEAN, pfa.IMAGENET_STD),
])
KWARGS = dict(which_layers=["conv1", "fc3"], dissim_metrics=["corr"], num_perms=1, verbose=False)


@pytest.fixture()
def study(tmp_path):
    stimuli = pfa.save_synthetic_stimuli(tmp_path / "images", num_objects=3,
                                         colors=(0, 120, 240), size=48)
    return pfa.package_image_sets(stimuli, ["color"], ["obj"]), tmp_path / "rdms.parquet"


def models(seed=0):
    return {"alexnet": pfa.prepare_model("alexnet", "random", random_state=seed)}


def computed_sets(monkeypatch):
    """Record which image sets are computed."""
    calls = []
    real = rdms_module._image_set_rdms

    def spy(**task):
        calls.append(task["image_set"][0]["obj"])
        return real(**task)

    monkeypatch.setattr(rdms_module, "_image_set_rdms", spy)
    return calls


def test_a_changed_image_recomputes_exactly_its_set(study, monkeypatch):
    image_sets, path = study
    first = pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    calls = computed_sets(monkeypatch)
    changed = image_sets[1][1][("120",)]
    shutil.copy(image_sets[2][1][("240",)], changed)  # the image file now holds other pixels
    os.utime(changed, ns=(1, 1))
    again = pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    assert calls == ["obj002"]
    for obj in ("obj001", "obj003"):
        for a, b in zip(first[first["obj"] == obj]["matrix"], again[again["obj"] == obj]["matrix"]):
            np.testing.assert_array_equal(a, b)
    before = first[first["obj"] == "obj002"]["matrix"].iloc[2]
    assert not np.allclose(before, again[again["obj"] == "obj002"]["matrix"].iloc[2])
    calls.clear()
    pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    assert calls == []  # nothing changed now


@pytest.mark.parametrize("change", ["weights", "transform", "random_state"])
def test_changed_weights_transform_or_seed_recompute_every_set(study, monkeypatch, change):
    image_sets, path = study
    pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    calls = computed_sets(monkeypatch)
    changed = {"weights": dict(models_dict=models(1)), "transform": dict(transform=OTHER),
               "random_state": dict(random_state=3)}[change]
    arguments = dict(models_dict=models(), transform=SMALL, **KWARGS)
    arguments.update(changed)
    with pytest.raises(pfa.InvalidInputError, match="preprocessing" if change == "transform"
                       else change):
        pfa.get_rdms(image_sets, out_fname=path, on_change="error", **arguments)
    assert calls == []
    result = pfa.get_rdms(image_sets, out_fname=path, **arguments)
    assert calls == ["obj001", "obj002", "obj003"]
    fresh = pfa.get_rdms(image_sets, out_fname=None, **arguments)
    for a, b in zip(result["matrix"], fresh["matrix"]):
        np.testing.assert_array_equal(a, b)


def test_rows_computed_before_an_error_are_on_file(study, monkeypatch):
    image_sets, path = study
    monkeypatch.setattr(rdms_module, "_CHECKPOINT_SHARE", 0.0)  # one checkpoint only, the first
    real = rdms_module._image_set_rdms
    calls = []

    def failing(**task):
        calls.append(task["image_set"][0]["obj"])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(**task)

    monkeypatch.setattr(rdms_module, "_image_set_rdms", failing)
    with pytest.raises(KeyboardInterrupt):
        pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    assert sorted(pfa.load_frame(path)["obj"].unique()) == ["obj001", "obj002"]


def _write_half(args):
    index, image_sets, path = args
    import pytorch_feature_analysis as pfa  # noqa: F811 (a fresh process)

    pfa.get_rdms(image_sets[index::2], {"alexnet": ("alexnet", "random")}, path,
                 which_layers=["fc3"], transform=SMALL, verbose=False)


def test_two_processes_writing_one_file_keep_every_row(tmp_path):
    stimuli = pfa.save_synthetic_stimuli(tmp_path / "images", num_objects=6, colors=(0, 180),
                                         size=32)
    image_sets = pfa.package_image_sets(stimuli, ["color"], ["obj"])
    path = str(tmp_path / "shared.parquet")
    context = multiprocessing.get_context("spawn")
    with context.Pool(2) as pool:
        pool.map(_write_half, [(0, image_sets, path), (1, image_sets, path)])
    frame = pfa.load_frame(path)
    assert sorted(frame["obj"].unique()) == [f"obj00{i}" for i in range(1, 7)]
    assert len(frame) == 6 * 2 * 2  # sets x (original_rgb, fc3) x activation types


def test_a_file_that_is_not_an_image_fails_before_any_forward_pass(study, monkeypatch):
    image_sets, path = study
    broken = image_sets[2][1][("240",)]
    with open(broken, "wb") as handle:
        handle.write(b"not a png at all")
    monkeypatch.setattr(rdms_module, "fill_targets", lambda *a, **k: pytest.fail("a pass ran"))
    with pytest.raises(pfa.InvalidInputError, match=r"obj003.*240.*must be an image"):
        pfa.get_rdms(image_sets, models(), path, transform=SMALL, **KWARGS)
    assert not path.exists()


def test_confusing_inputs_get_errors_naming_them(study, tmp_path):
    image_sets, path = study
    pd.DataFrame({"x": [1]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(pfa.InvalidInputError, match=r"'out_fname'.*other.parquet.*'model'"):
        pfa.get_rdms(image_sets, models(), tmp_path / "other.parquet", transform=SMALL, **KWARGS)
    with pytest.raises(pfa.InvalidInputError, match=r"'random_state' parameter of prepare_model.*'x'"):
        pfa.prepare_model("alexnet", "random", random_state="x")
    with pytest.raises(pfa.InvalidInputError, match=r"image array must hold pixels.*\(0, 0, 3\)"):
        pfa.get_activations([np.zeros((0, 0, 3))], models()["alexnet"], ["fc3"], verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=r"'transform' parameter of get_rdms.*\(5,\)"):
        pfa.get_rdms(image_sets, models(), None, transform=lambda image: torch.zeros(5), **KWARGS)
    stimuli = [{"color": "r", "obj": "a", "path": "x.png"}, {"color": "g", "obj": "a", "path": "y.png"}]
    assert pfa.package_image_sets(stimuli, "color", "obj") == pfa.package_image_sets(
        stimuli, ["color"], ["obj"])
