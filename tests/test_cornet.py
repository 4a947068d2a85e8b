"""Tests of the CORnet-Z and CORnet-S architectures against the published facts."""

import math
from collections import Counter

import numpy as np
import pytest
import torch

from pytorch_feature_analysis import cornet

# ----------------------------------------------------------------------------
# Expected parameter / buffer shapes, written out by hand from the published
# architecture tables (checkpoint key names without the 'module.' prefix).
# ----------------------------------------------------------------------------

DECODER_SHAPES = {
    "decoder.linear.weight": (1000, 512),
    "decoder.linear.bias": (1000,),
}


def _batch_norm_shapes(prefix, channels):
    return {
        f"{prefix}.weight": (channels,),
        f"{prefix}.bias": (channels,),
        f"{prefix}.running_mean": (channels,),
        f"{prefix}.running_var": (channels,),
        f"{prefix}.num_batches_tracked": (),
    }


def _cornet_z_shapes():
    shapes = {
        "V1.conv.weight": (64, 3, 7, 7),
        "V1.conv.bias": (64,),
        "V2.conv.weight": (128, 64, 3, 3),
        "V2.conv.bias": (128,),
        "V4.conv.weight": (256, 128, 3, 3),
        "V4.conv.bias": (256,),
        "IT.conv.weight": (512, 256, 3, 3),
        "IT.conv.bias": (512,),
    }
    shapes.update(DECODER_SHAPES)
    return shapes


def _cornet_s_shapes():
    shapes = {
        "V1.conv1.weight": (64, 3, 7, 7),
        "V1.conv2.weight": (64, 64, 3, 3),
    }
    shapes.update(_batch_norm_shapes("V1.norm1", 64))
    shapes.update(_batch_norm_shapes("V1.norm2", 64))
    for area, c_in, c_out, times in [
        ("V2", 64, 128, 2),
        ("V4", 128, 256, 4),
        ("IT", 256, 512, 2),
    ]:
        wide = 4 * c_out
        shapes[f"{area}.conv_input.weight"] = (c_out, c_in, 1, 1)
        shapes[f"{area}.skip.weight"] = (c_out, c_out, 1, 1)
        shapes.update(_batch_norm_shapes(f"{area}.norm_skip", c_out))
        shapes[f"{area}.conv1.weight"] = (wide, c_out, 1, 1)
        shapes[f"{area}.conv2.weight"] = (wide, wide, 3, 3)
        shapes[f"{area}.conv3.weight"] = (c_out, wide, 1, 1)
        for t in range(times):
            shapes.update(_batch_norm_shapes(f"{area}.norm1_{t}", wide))
            shapes.update(_batch_norm_shapes(f"{area}.norm2_{t}", wide))
            shapes.update(_batch_norm_shapes(f"{area}.norm3_{t}", c_out))
    shapes.update(DECODER_SHAPES)
    return shapes


EXPECTED_SHAPES = {"cornet_z": _cornet_z_shapes(), "cornet_s": _cornet_s_shapes()}
BUILDERS = {"cornet_z": cornet.cornet_z, "cornet_s": cornet.cornet_s}


@pytest.fixture(scope="module")
def models():
    torch.manual_seed(0)
    return {name: build().eval() for name, build in BUILDERS.items()}


def _count_calls(model, x):
    """Forward ``x`` once and count forward-hook calls per named module."""
    counts = Counter()
    handles = [
        module.register_forward_hook(lambda m, i, o, name=name: counts.update([name]))
        for name, module in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            model(x)
    finally:
        for handle in handles:
            handle.remove()
    return counts


# ----------------------------------------------------------------------------
# Structure
# ----------------------------------------------------------------------------


def test_public_api_is_exported():
    import pytorch_feature_analysis as pfa

    for name in ["cornet_z", "cornet_s", "CORNET_WEIGHT_URLS", "CORblockZ", "CORblockS"]:
        assert name in cornet.__all__
        assert getattr(pfa, name) is getattr(cornet, name)


def test_weight_urls():
    assert cornet.CORNET_WEIGHT_URLS == {
        "cornet_z": "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth",
        "cornet_s": "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth",
    }


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_children_in_published_order(models, name):
    model = models[name]
    assert isinstance(model, torch.nn.Sequential)
    assert [child for child, _ in model.named_children()] == ["V1", "V2", "V4", "IT", "decoder"]
    assert [child for child, _ in model.decoder.named_children()] == [
        "avgpool",
        "flatten",
        "linear",
        "output",
    ]
    assert type(model.decoder.flatten).__name__.lower() == "flatten"
    assert type(model.decoder.output).__name__.lower() == "identity"


def test_cornet_z_block_children(models):
    for area in ["V1", "V2", "V4", "IT"]:
        block = getattr(models["cornet_z"], area)
        assert [child for child, _ in block.named_children()] == [
            "conv",
            "nonlin",
            "pool",
            "output",
        ]


def test_cornet_s_child_order(models):
    model = models["cornet_s"]
    assert [child for child, _ in model.V1.named_children()] == [
        "conv1",
        "norm1",
        "nonlin1",
        "pool",
        "conv2",
        "norm2",
        "nonlin2",
        "output",
    ]
    v4_children = [child for child, _ in model.V4.named_children()]
    assert v4_children[:10] == [
        "conv_input",
        "skip",
        "norm_skip",
        "conv1",
        "nonlin1",
        "conv2",
        "nonlin2",
        "conv3",
        "nonlin3",
        "output",
    ]
    assert sorted(v4_children[10:]) == sorted(
        f"norm{i}_{t}" for i in (1, 2, 3) for t in range(4)
    )


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_state_dict_keys_and_shapes_match_reference(models, name):
    state = models[name].state_dict()
    expected = EXPECTED_SHAPES[name]
    assert set(state) == set(expected)
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key


def test_cornet_z_conv_geometry(models):
    model = models["cornet_z"]
    assert model.V1.conv.stride == (2, 2) and model.V1.conv.padding == (3, 3)
    for area in ["V2", "V4", "IT"]:
        conv = getattr(model, area).conv
        assert conv.stride == (1, 1) and conv.padding == (1, 1)
    for area in ["V1", "V2", "V4", "IT"]:
        pool = getattr(model, area).pool
        assert (pool.kernel_size, pool.stride, pool.padding) == (3, 2, 1)


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_module_prefixed_checkpoint_loads_strictly(models, name):
    source = models[name]
    checkpoint = {
        "state_dict": {f"module.{key}": value.clone() for key, value in source.state_dict().items()}
    }
    torch.manual_seed(123)
    target = BUILDERS[name]()
    stripped = {
        key[len("module.") :]: value for key, value in checkpoint["state_dict"].items()
    }
    result = target.load_state_dict(stripped, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


# ----------------------------------------------------------------------------
# Forward pass
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_forward_small_input(models, name):
    torch.manual_seed(1)
    with torch.no_grad():
        out = models[name](torch.randn(2, 3, 64, 64))
    assert tuple(out.shape) == (2, 1000)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_forward_imagenet_size(models, name):
    torch.manual_seed(2)
    with torch.no_grad():
        out = models[name](torch.randn(1, 3, 224, 224))
    assert tuple(out.shape) == (1, 1000)


def test_cornet_z_matches_functional_computation(models):
    """Recompute CORnet-Z with torch.nn.functional from its own weights."""
    model = models["cornet_z"]
    torch.manual_seed(3)
    x = torch.randn(2, 3, 64, 64)
    h = x
    for area, stride, padding in [("V1", 2, 3), ("V2", 1, 1), ("V4", 1, 1), ("IT", 1, 1)]:
        conv = getattr(model, area).conv
        h = torch.nn.functional.conv2d(h, conv.weight, conv.bias, stride=stride, padding=padding)
        h = torch.nn.functional.max_pool2d(torch.relu(h), 3, stride=2, padding=1)
    h = h.mean(dim=(2, 3))
    expected = h @ model.decoder.linear.weight.T + model.decoder.linear.bias
    with torch.no_grad():
        out = model(x)
    torch.testing.assert_close(out, expected.detach(), rtol=1e-4, atol=1e-5)


def test_cornet_s_block_matches_functional_computation():
    """Recompute one recurrent block step by step with torch.nn.functional."""
    torch.manual_seed(4)
    block = cornet.CORblockS(4, 6, times=3)
    for module in block.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.uniform_(-0.5, 0.5)
            module.running_var.uniform_(0.5, 2.0)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
    block.eval()
    x = torch.randn(2, 4, 10, 10)

    def bn(h, norm):
        return torch.nn.functional.batch_norm(
            h, norm.running_mean, norm.running_var, norm.weight, norm.bias, training=False
        )

    f = torch.nn.functional
    h = f.conv2d(x, block.conv_input.weight)
    for t in range(3):
        if t == 0:
            skip = bn(f.conv2d(h, block.skip.weight, stride=2), block.norm_skip)
        else:
            skip = h
        h = torch.relu(bn(f.conv2d(h, block.conv1.weight), getattr(block, f"norm1_{t}")))
        h = f.conv2d(h, block.conv2.weight, stride=2 if t == 0 else 1, padding=1)
        h = torch.relu(bn(h, getattr(block, f"norm2_{t}")))
        h = bn(f.conv2d(h, block.conv3.weight), getattr(block, f"norm3_{t}"))
        h = torch.relu(h + skip)
    with torch.no_grad():
        out = block(x)
    assert tuple(out.shape) == (2, 6, 5, 5)
    torch.testing.assert_close(out, h.detach(), rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------------
# Hooks: every call is observable
# ----------------------------------------------------------------------------


def test_cornet_s_recurrent_modules_run_once_per_step(models):
    model = models["cornet_s"]
    counts = _count_calls(model, torch.zeros(1, 3, 64, 64))
    for area, times in [("V2", 2), ("V4", 4), ("IT", 2)]:
        for child in ["conv1", "conv2", "conv3", "nonlin1", "nonlin2", "nonlin3", "output"]:
            assert counts[f"{area}.{child}"] == times, (area, child)
        for child in ["conv_input", "skip", "norm_skip", area]:
            key = child if child == area else f"{area}.{child}"
            assert counts[key] == 1, key
        for t in range(times):
            for i in (1, 2, 3):
                assert counts[f"{area}.norm{i}_{t}"] == 1
    assert counts["V2.conv1"] == 2
    assert counts["V4.conv1"] == 4
    assert counts["IT.conv1"] == 2
    assert counts["V4.output"] == 4
    for name, _ in model.V1.named_children():
        assert counts[f"V1.{name}"] == 1


def test_cornet_z_every_module_runs_once(models):
    model = models["cornet_z"]
    counts = _count_calls(model, torch.zeros(1, 3, 64, 64))
    names = [name for name, _ in model.named_modules() if name]
    assert len(names) == 4 * (1 + 4) + (1 + 4)  # four areas and the decoder, each with 4 children
    assert {name: counts[name] for name in names} == {name: 1 for name in names}


def test_cornet_s_v2_halves_spatial_size_at_first_step(models):
    model = models["cornet_s"]
    seen = {"V1.output": [], "V2.conv2": [], "V2.output": []}
    handles = [
        model.get_submodule(name).register_forward_hook(
            lambda m, i, o, name=name: seen[name].append(tuple(o.shape))
        )
        for name in seen
    ]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, 64, 64))
    finally:
        for handle in handles:
            handle.remove()
    # V1: stride-2 conv then stride-2 pool: 64 -> 16.
    assert seen["V1.output"] == [(1, 64, 16, 16)]
    # V2 step 0 halves (conv2 stride 2), step 1 keeps the size (stride 1).
    assert seen["V2.conv2"] == [(1, 512, 8, 8), (1, 512, 8, 8)]
    assert seen["V2.output"] == [(1, 128, 8, 8), (1, 128, 8, 8)]
    # Running the model leaves no trace on its modules.
    assert model.V2.conv2.stride == (1, 1)


# ----------------------------------------------------------------------------
# Initialisation and reproducibility
# ----------------------------------------------------------------------------


def test_cornet_z_xavier_uniform_init(models):
    model = models["cornet_z"]
    layers = [getattr(model, area).conv for area in ["V1", "V2", "V4", "IT"]]
    layers.append(model.decoder.linear)
    for layer in layers:
        weight = layer.weight.detach().numpy()
        receptive = int(np.prod(weight.shape[2:]))
        fan_in, fan_out = weight.shape[1] * receptive, weight.shape[0] * receptive
        bound = math.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(weight).max() <= bound
        # Uniform on [-b, b]: the extremes come close to the bound, std is b / sqrt(3).
        assert np.abs(weight).max() > 0.95 * bound
        assert weight.std() == pytest.approx(bound / math.sqrt(3), rel=0.05)
        assert np.all(layer.bias.detach().numpy() == 0)


def test_cornet_s_init(models):
    model = models["cornet_s"]
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            assert torch.all(module.weight == 1), name
            assert torch.all(module.bias == 0), name
    for name in ["V4.conv2", "IT.conv2", "IT.conv1", "V2.conv2"]:
        conv = model.get_submodule(name)
        weight = conv.weight.detach().numpy()
        k_h, k_w = conv.kernel_size
        expected_std = math.sqrt(2.0 / (k_h * k_w * conv.out_channels))
        assert weight.std() == pytest.approx(expected_std, rel=0.02), name
        assert weight.mean() == pytest.approx(0.0, abs=0.02 * expected_std), name
    # The linear layer keeps PyTorch's default: uniform within 1 / sqrt(fan_in).
    linear = model.decoder.linear
    bound = 1.0 / math.sqrt(512)
    assert linear.weight.abs().max() <= bound
    assert linear.weight.std().item() == pytest.approx(bound / math.sqrt(3), rel=0.05)


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s"])
def test_same_seed_same_weights(name):
    torch.manual_seed(7)
    first = BUILDERS[name]().state_dict()
    torch.manual_seed(7)
    second = BUILDERS[name]().state_dict()
    torch.manual_seed(8)
    third = BUILDERS[name]().state_dict()
    assert first.keys() == second.keys()
    assert all(torch.equal(first[key], second[key]) for key in first)
    assert not torch.equal(first["decoder.linear.weight"], third["decoder.linear.weight"])
