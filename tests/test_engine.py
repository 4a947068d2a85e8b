"""The memory-bounded RDM engine: passes, channel slices, device independence, dry runs."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform
from torchvision import transforms

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import rdms as rdms_module
from tiny import smallest_budget

SMALL = transforms.Compose([
    transforms.Resize(112), transforms.CenterCrop(112), transforms.ToTensor(),
    transforms.Normalize(pfa.IMAGENET_MEAN, pfa.IMAGENET_STD),
])
CHUNKABLE = ["corr", "euclidean_distance", "cosine", "sq_euclidean", "manhattan"]
SCIPY = {"corr": "correlation", "euclidean_distance": "euclidean", "cosine": "cosine",
         "sq_euclidean": "sqeuclidean", "manhattan": "cityblock"}


def tight_budget(image_sets, models, **kwargs):
    """Just above the smallest budget that plan_rdms accepts (found by bisection)."""
    high = smallest_budget(image_sets, models, tolerance=1000, transform=SMALL, batch_size=1,
                           **kwargs)
    return int(high + 0.25 * (high - rdms_module._WORK_BYTES))


@pytest.fixture(scope="module")
def image_sets():
    stimuli = pfa.make_synthetic_stimuli(num_objects=2, colors=(0, 90, 180, 270), size=48)
    return pfa.package_image_sets(stimuli, ["color"], ["obj"])


def hooked(model, images, transform):
    """Every leaf-module call's output, in call order, from plain cloning hooks."""
    batch = torch.stack([transform(image.convert("RGB")) for image in images])
    outputs = []
    handles = [module.register_forward_hook(lambda m, i, o: outputs.append(o.detach().clone()))
               for module in model.modules() if not list(module.children())]
    with torch.no_grad():
        model(batch)
    for handle in handles:
        handle.remove()
    return [batch.double().numpy()] + [o.double().numpy() for o in outputs]


def assert_same_rdms(left, right, tolerance):
    assert len(left) == len(right)
    for column in left.columns:
        if column != "matrix":
            assert list(map(repr, left[column])) == list(map(repr, right[column])), column
    for a, b in zip(left["matrix"], right["matrix"]):
        np.testing.assert_allclose(a, b, rtol=tolerance, atol=tolerance)


def test_tight_budget_splits_layers_into_channel_slices_and_changes_nothing(alexnet, image_sets):
    kwargs = dict(dissim_metrics=CHUNKABLE, transform=SMALL, batch_size=1, verbose=False)
    models = {"alexnet": alexnet}
    tight = tight_budget(image_sets[:1], models, dissim_metrics=CHUNKABLE)
    plan = pfa.plan_rdms(image_sets[:1], models, max_memory=tight, dissim_metrics=CHUNKABLE,
                         transform=SMALL, batch_size=1)
    assert plan["sliced_layers"][0] > 0 and plan["passes"][0] > 1
    assert plan["peak_bytes"][0] <= tight
    unbounded = pfa.get_rdms(image_sets, models, None, **kwargs)
    bounded = pfa.get_rdms(image_sets, models, None, max_memory=tight, **kwargs)
    assert_same_rdms(bounded, unbounded, tolerance=1e-12)

    outputs = hooked(alexnet, list(image_sets[0][1].values()), SMALL)
    labels = list(pfa.model_layers(alexnet, SMALL(image_sets[0][1][("000",)]).unsqueeze(0)))
    by_label = dict(zip(labels, outputs))
    for row in bounded[bounded["obj"] == "obj001"].itertuples():
        array = by_label[row.layer_label]
        if row.activation_type == "feature_means" and array.ndim == 4:
            array = array.mean(axis=(2, 3))
        expected = squareform(pdist(array.reshape(len(array), -1), SCIPY[row.dissim_metric]))
        np.testing.assert_allclose(row.matrix, expected, rtol=1e-6, atol=1e-9)


def test_modules_called_several_times_keep_every_call_under_a_tight_budget(resnet18, image_sets):
    layers = ["relu1", "relu2", "relu3", "relu4", "relu5"]  # relu2/relu3 share a module
    kwargs = dict(which_layers=layers, dissim_metrics=["corr", "manhattan"], transform=SMALL,
                  batch_size=1, verbose=False)
    tight = tight_budget(image_sets[:1], {"resnet": resnet18}, which_layers=layers,
                         dissim_metrics=["corr", "manhattan"])
    plan = pfa.plan_rdms(image_sets[:1], {"resnet": resnet18}, which_layers=layers,
                         dissim_metrics=["corr", "manhattan"], max_memory=tight,
                         transform=SMALL, batch_size=1)
    assert plan["sliced_layers"][0] > 0
    bounded = pfa.get_rdms(image_sets[:1], {"resnet": resnet18}, None, max_memory=tight, **kwargs)
    unbounded = pfa.get_rdms(image_sets[:1], {"resnet": resnet18}, None, **kwargs)
    assert_same_rdms(bounded, unbounded, tolerance=1e-12)
    example = SMALL(image_sets[0][1][("000",)]).unsqueeze(0)
    labels = list(pfa.model_layers(resnet18, example))
    by_label = dict(zip(labels, hooked(resnet18, list(image_sets[0][1].values()), SMALL)))
    shared = [label for label in labels if label[0] in ("relu2", "relu3")]
    assert not np.allclose(by_label[shared[0]], by_label[shared[1]])
    for row in bounded[bounded["activation_type"] == "unit_level"].itertuples():
        array = by_label[row.layer_label]
        expected = squareform(pdist(array.reshape(len(array), -1), SCIPY[row.dissim_metric]))
        np.testing.assert_allclose(row.matrix, expected, rtol=1e-6, atol=1e-9)


def test_combinations_and_whole_pattern_metrics_refuse_a_budget_they_cannot_fit(alexnet, image_sets):
    models = {"alexnet": alexnet}
    tight = tight_budget(image_sets[:1], models, which_layers=["conv1"])
    with pytest.raises(pfa.InvalidInputError, match=r"max_memory.*layer \('(original_rgb|conv1)'.*every feature"):
        pfa.plan_rdms(image_sets[:1], models, which_layers=["conv1"], dissim_metrics=["spearman"],
                      transform=SMALL, batch_size=1, max_memory=tight)
    frame = pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, which_layers=["conv1"],
                         dissim_metrics=["spearman"], transform=SMALL, verbose=False)
    assert len(frame) == 4


def test_bad_budgets_and_devices_are_refused_before_any_forward_pass(alexnet, image_sets, monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(rdms_module, "fill_targets", no_forward)
    run = dict(image_sets=image_sets, models_dict={"alexnet": alexnet}, out_fname=None,
               transform=SMALL, verbose=False)
    with pytest.raises(pfa.InvalidInputError, match=r"'max_memory' parameter of get_rdms.*'lots'"):
        pfa.get_rdms(**run, max_memory="lots")
    with pytest.raises(pfa.InvalidInputError, match=r"'max_memory' parameter of get_rdms.*original_rgb"):
        pfa.get_rdms(**run, max_memory="1MB")
    if not torch.cuda.is_available():
        with pytest.raises(pfa.InvalidInputError, match=r"'device' parameter of get_rdms.*'cuda'"):
            pfa.get_rdms(**run, device="cuda")
    with pytest.raises(pfa.InvalidInputError, match=r"'batch_size' parameter of get_rdms"):
        pfa.get_rdms(**run, batch_size=0)


def test_dry_run_predicts_without_running(alexnet, image_sets, monkeypatch):
    def no_forward(*args, **kwargs):
        raise AssertionError("a forward pass ran")

    monkeypatch.setattr(rdms_module, "fill_targets", no_forward)
    plan = pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, dry_run=True, transform=SMALL,
                        dissim_metrics=["corr", "euclidean_distance"], max_memory="4GB")
    assert plan["rdms"].tolist() == [22 * 2 * 2] * 2
    assert plan["output_bytes"].tolist() == [88 * 4 * 4 * 8] * 2
    assert plan["passes"].tolist() == [1, 1]
    assert (plan["peak_bytes"] <= 4e9).all()


def test_tf32_settings_are_restored_and_off_during_the_forward_pass(alexnet, image_sets, monkeypatch):
    seen = []
    real = pfa.activations.LayerCapture.run

    def spy(self, model, batch):
        seen.append((torch.backends.cudnn.conv.fp32_precision,
                     torch.backends.cuda.matmul.fp32_precision))
        return real(self, model, batch)

    monkeypatch.setattr(pfa.activations.LayerCapture, "run", spy)
    before = (torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision)
    pfa.get_rdms(image_sets[:1], {"alexnet": alexnet}, None, which_layers=["fc3"],
                 transform=SMALL, verbose=False)
    assert seen and set(seen) == {("ieee", "ieee")}
    assert (torch.backends.cudnn.conv.fp32_precision,
            torch.backends.cuda.matmul.fp32_precision) == before


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_equals_cpu(alexnet, image_sets):
    kwargs = dict(dissim_metrics=CHUNKABLE, transform=SMALL, verbose=False)
    cpu = pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, **kwargs)
    cuda = pfa.get_rdms(image_sets, {"alexnet": alexnet}, None, device="cuda", **kwargs)
    assert next(alexnet.parameters()).device.type == "cpu"
    for a, b, metric in zip(cpu["matrix"], cuda["matrix"], cpu["dissim_metric"]):
        scale = 1.0 if metric in ("corr", "cosine") else max(1.0, float(np.abs(a).max()))
        np.testing.assert_allclose(b, a, rtol=0, atol=1e-5 * scale)
