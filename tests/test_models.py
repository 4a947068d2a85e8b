"""Tests of model preparation, weights and the layer address books.

Expected values come from the user guide (typed in verbatim), from counts made
by hand from the published architectures, or from plain torch computations
(``model.modules()``, forward hooks written here) -- never from the code under
test.
"""

import inspect
from collections import OrderedDict

import pytest
import torch
import torchvision
from torch import nn

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import cornet

# The guide's `print(pfa.fetch_layers(alexnet))`, copied verbatim.
GUIDE_ALEXNET_LAYERS = OrderedDict([(('conv1', 1), ['features', 0]), (('relu1', 2), ['features', 1]), (('maxpool1', 3), ['features', 2]), (('conv2', 4), ['features', 3]), (('relu2', 5), ['features', 4]), (('maxpool2', 6), ['features', 5]), (('conv3', 7), ['features', 6]), (('relu3', 8), ['features', 7]), (('conv4', 9), ['features', 8]), (('relu4', 10), ['features', 9]), (('conv5', 11), ['features', 10]), (('relu5', 12), ['features', 11]), (('maxpool3', 13), ['features', 12]), (('avgpool1', 14), ['avgpool']), (('dropout1', 15), ['classifier', 0]), (('fc1', 16), ['classifier', 1]), (('relu6', 17), ['classifier', 2]), (('dropout2', 18), ['classifier', 3]), (('fc2', 19), ['classifier', 4]), (('relu7', 20), ['classifier', 5]), (('fc3', 21), ['classifier', 6])])  # noqa: E501


def leaf_modules(model):
    """Leaf modules in registration order, by torch's own module walk."""
    return [module for module in model.modules() if next(module.children(), None) is None]


def hooked_leaf_calls(model, example):
    """(module, call index) of every leaf call returning a tensor, by plain forward hooks."""
    calls, counts = [], {}

    def hook(module, _inputs, output):
        call = counts.get(id(module), 0)
        counts[id(module)] = call + 1
        if isinstance(output, torch.Tensor):
            calls.append((module, call))

    handles = [module.register_forward_hook(hook) for module in leaf_modules(model)]
    try:
        with torch.no_grad():
            model(example)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def assert_book_matches_leaves(model, book):
    """Every address resolves to a leaf; the book lists each leaf once, in order."""
    resolved = [pfa.index_nested(model._modules, address) for address in book.values()]
    assert [id(module) for module in resolved] == [id(module) for module in leaf_modules(model)]
    assert [number for _, number in book] == list(range(1, len(book) + 1))
    for module, address in zip(resolved, book.values()):
        assert pfa.index_nested(model, address) is module  # from the model itself too


def type_ranks_are_consecutive(labels):
    """Within each type name, the ranks run 1, 2, 3, ... in book order."""
    seen = {}
    for name, _ in labels:
        type_name = name.rstrip("0123456789")
        seen[type_name] = seen.get(type_name, 0) + 1
        if name != f"{type_name}{seen[type_name]}":
            return False
    return True


@pytest.fixture(scope="module")
def cornet_s():
    return pfa.prepare_model("cornet_s", "random", random_state=0)


def meta_model(builder, **kwargs):
    """A torchvision architecture without real weights (the structure is all fetch_layers reads)."""
    with torch.device("meta"):
        return builder(**kwargs)


# ----------------------------------------------------------------------------
# fetch_layers / index_nested
# ----------------------------------------------------------------------------


def test_alexnet_book_is_exactly_the_guides(alexnet):
    book = pfa.fetch_layers(alexnet)
    assert isinstance(book, OrderedDict)
    assert book == GUIDE_ALEXNET_LAYERS
    assert list(book.items()) == list(GUIDE_ALEXNET_LAYERS.items())


def test_index_nested_follows_the_guides_fc2_address(alexnet):
    book = pfa.fetch_layers(alexnet)
    assert pfa.index_nested(alexnet._modules, book[("fc2", 19)]) is alexnet.classifier[4]
    assert pfa.index_nested(alexnet._modules, book[("conv1", 1)]) is alexnet.features[0]
    assert pfa.index_nested(alexnet._modules, book[("avgpool1", 14)]) is alexnet.avgpool


def test_alexnet_book_resolves_to_every_leaf(alexnet):
    assert_book_matches_leaves(alexnet, pfa.fetch_layers(alexnet))


def test_resnet50_guides_layer4_2_bn1_has_an_address():
    resnet = meta_model(torchvision.models.resnet50)
    book = pfa.fetch_layers(resnet)
    target = resnet.layer4[2].bn1
    hits = [label for label, address in book.items()
            if pfa.index_nested(resnet._modules, address) is target]
    assert len(hits) == 1
    assert book[hits[0]] == ["layer4", 2, ("attr", "bn1")]
    # By hand: 53 convolutions, 53 batch norms, 17 ReLU modules, 1 max pool,
    # 1 average pool and 1 linear layer in ResNet-50.
    assert len(book) == 126
    names = [name for name, _ in book]
    counts = {kind: sum(n.rstrip("0123456789") == kind for n in names)
              for kind in ("conv", "batchnorm", "relu", "maxpool", "avgpool", "fc")}
    assert counts == {"conv": 53, "batchnorm": 53, "relu": 17, "maxpool": 1, "avgpool": 1, "fc": 1}
    assert_book_matches_leaves(resnet, book)
    assert type_ranks_are_consecutive(book)


def test_vgg19_has_45_layers_ending_as_published():
    vgg = meta_model(torchvision.models.vgg19)
    book = pfa.fetch_layers(vgg)
    assert len(book) == 45
    assert list(book)[-2:] == [("dropout2", 44), ("fc3", 45)]
    # 16 convolutions, each followed by a ReLU, 5 max pools, then the classifier.
    assert list(book)[36:39] == [("maxpool5", 37), ("avgpool1", 38), ("fc1", 39)]
    assert_book_matches_leaves(vgg, book)


@pytest.mark.parametrize("name", ["resnet18", "googlenet", "cornet_z", "cornet_s"])
def test_prepared_models_books_cover_every_leaf(name):
    model = pfa.prepare_model(name, "random", random_state=0)
    book = pfa.fetch_layers(model)
    assert len(book) == len(leaf_modules(model))
    assert_book_matches_leaves(model, book)
    assert type_ranks_are_consecutive(book)


def test_googlenet_and_resnet50_meta_builds_cover_every_leaf():
    for model in (
        meta_model(torchvision.models.googlenet, aux_logits=False, init_weights=True),
        meta_model(torchvision.models.resnet50),
    ):
        book = pfa.fetch_layers(model)
        assert len(book) == len(leaf_modules(model))
        assert_book_matches_leaves(model, book)


def test_unknown_leaf_types_get_lowercase_names_and_are_kept():
    model = nn.Sequential(
        nn.Conv2d(3, 4, 3),
        nn.GELU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.LayerNorm(4),
        nn.Linear(4, 2),
        nn.GELU(),
        nn.Softmax(dim=1),
    )
    book = pfa.fetch_layers(model)
    assert list(book) == [
        ("conv1", 1), ("gelu1", 2), ("avgpool1", 3), ("flatten1", 4),
        ("layernorm1", 5), ("fc1", 6), ("gelu2", 7), ("softmax1", 8),
    ]
    assert_book_matches_leaves(model, book)


def test_layer_type_names_of_pooling_layers():
    assert pfa.layer_type_name(nn.AdaptiveAvgPool2d((6, 6))) == "avgpool"
    assert pfa.layer_type_name(nn.AvgPool2d(2)) == "avgpool"
    assert pfa.layer_type_name(nn.AdaptiveMaxPool2d(1)) == "maxpool"
    assert pfa.layer_type_name(nn.MaxPool1d(2)) == "maxpool"
    assert pfa.layer_type_name(nn.BatchNorm1d(3)) == "batchnorm"
    assert pfa.layer_type_name(nn.Conv1d(1, 1, 1)) == "conv"


def test_a_module_registered_twice_is_one_layer_at_its_first_address():
    relu = nn.ReLU()
    block = nn.Sequential(relu, nn.Conv2d(3, 4, 1), relu, nn.Conv2d(4, 5, 1))
    model = nn.Sequential(OrderedDict([("block", block)]))
    book = pfa.fetch_layers(model)
    assert book == OrderedDict([(("relu1", 1), ["block", 0]), (("conv1", 2), ["block", 1]),
                                (("conv2", 3), ["block", 3])])
    assert pfa.index_nested(model._modules, book[("conv2", 3)]) is block[3]
    assert_book_matches_leaves(model, book)


def test_named_sequential_children_are_addressed_by_position():
    model = pfa.prepare_model("cornet_z", "random", random_state=0)
    book = pfa.fetch_layers(model)
    assert book[("fc1", 19)] == ["decoder", 2]
    assert pfa.index_nested(model._modules, book[("fc1", 19)]) is model.decoder.linear
    assert book[("conv1", 1)] == ["V1", ("attr", "conv")]


# ----------------------------------------------------------------------------
# trace_layers
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("fixture, size, expected", [("resnet18", 64, 60), ("cornet_s", 64, 101)])
def test_trace_counts_every_leaf_call_in_forward_order(request, fixture, size, expected):
    model = request.getfixturevalue(fixture)
    example = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    calls = hooked_leaf_calls(model, example)
    book = pfa.trace_layers(model, example)
    # By hand: ResNet-18 has 52 leaf modules and each of its 8 blocks calls its
    # ReLU twice; CORnet-S: V1 8 calls, each recurrent area 3 + 10 per step
    # (V2 2 steps, V4 4, IT 2), decoder 4: 8 + 23 + 43 + 23 + 4.
    assert len(calls) == expected
    assert len(book) == expected
    assert [number for _, number in book] == list(range(1, expected + 1))
    traced = [(pfa.index_nested(model, where.address), where.call) for where in book.values()]
    assert [(id(m), c) for m, c in traced] == [(id(m), c) for m, c in calls]
    assert len({name for name, _ in book}) == expected  # every call its own name
    assert type_ranks_are_consecutive(book)


def test_trace_gives_a_repeated_relu_one_label_per_call(resnet18):
    book = pfa.trace_layers(resnet18, torch.zeros(1, 3, 64, 64))
    relu_calls = [(label, where.call) for label, where in book.items()
                  if where.address == ["layer1", 0, ("attr", "relu")]]
    # Counted by hand: conv1 1, bn1 2, relu1 3, maxpool1 4, then the first
    # block: conv 5, batchnorm 6, relu 7, conv 8, batchnorm 9, relu 10.
    assert relu_calls == [(("relu2", 7), 0), (("relu3", 10), 1)]


def test_trace_cornet_s_conv_calls_per_time_step(cornet_s):
    book = pfa.trace_layers(cornet_s, torch.zeros(1, 3, 64, 64))
    calls = [where.call for where in book.values()
             if where.address == ["V4", ("attr", "conv2")]]
    assert calls == [0, 1, 2, 3]  # V4 runs 4 time steps
    numbers = [label[1] for label, where in book.items()
               if where.address == ["V4", ("attr", "conv2")]]
    assert numbers == sorted(numbers) and len(set(numbers)) == 4


def test_trace_equals_fetch_for_models_that_run_each_module_once(alexnet):
    traced = pfa.trace_layers(alexnet)
    assert list(traced) == list(GUIDE_ALEXNET_LAYERS)
    assert [where.address for where in traced.values()] == list(GUIDE_ALEXNET_LAYERS.values())
    assert all(where.call == 0 for where in traced.values())


def test_trace_leaves_the_model_without_hooks(resnet18):
    pfa.trace_layers(resnet18, torch.zeros(1, 3, 32, 32))
    assert all(not module._forward_hooks for module in resnet18.modules())


# ----------------------------------------------------------------------------
# prepare_model / prepare_models
# ----------------------------------------------------------------------------


def state_dicts_equal(a, b):
    a, b = a.state_dict(), b.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[key], b[key]) for key in a)


def test_prepare_model_is_the_torchvision_type_in_eval_mode(resnet18, alexnet):
    assert type(resnet18) is torchvision.models.ResNet
    assert type(alexnet) is torchvision.models.AlexNet
    assert not resnet18.training and not any(m.training for m in resnet18.modules())
    assert alexnet.features[0].kernel_size == (11, 11)


def test_random_weights_are_reproducible_and_seed_dependent():
    first = pfa.prepare_model("resnet18", "random", random_state=7)
    again = pfa.prepare_model("resnet18", "random", random_state=7)
    other = pfa.prepare_model("resnet18", "random", random_state=8)
    assert state_dicts_equal(first, again)
    assert not torch.equal(first.conv1.weight, other.conv1.weight)
    assert not torch.equal(first.fc.weight, other.fc.weight)


def test_seeded_random_weights_leave_the_global_generator_alone():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    pfa.prepare_model("cornet_z", "random", random_state=1)
    assert torch.equal(torch.rand(3), expected)


def test_unseeded_random_weights_differ_between_calls():
    first = pfa.prepare_model("cornet_z", "random", random_state=None)
    second = pfa.prepare_model("cornet_z", "random", random_state=None)
    assert not torch.equal(first.V1.conv.weight, second.V1.conv.weight)


@pytest.mark.parametrize("typo, suggestion", [("alexnt", "alexnet"), ("resnet5", "resnet50"),
                                              ("cornet-s", "cornet_s"), ("VGG19", "vgg19")])
def test_unknown_model_name_suggests_close_names(typo, suggestion):
    with pytest.raises(ValueError, match=repr(typo)) as error:
        pfa.prepare_model(typo, "random")
    assert repr(suggestion) in str(error.value)
    assert "available_models" in str(error.value)


def test_available_models_lists_every_torchvision_classification_and_video_model():
    # Classification builders live in modules torchvision.models.<family>;
    # detection, segmentation, video ... builders live one package deeper.
    expected = {
        name
        for name, function in inspect.getmembers(torchvision.models, inspect.isfunction)
        if function.__module__.count(".") == 2
        and not function.__module__.rsplit(".", 1)[1].startswith("_")
    }
    assert {"alexnet", "vgg19", "resnet50", "googlenet", "vit_b_16", "convnext_tiny"} <= expected
    videos = {
        name
        for name, function in inspect.getmembers(torchvision.models.video, inspect.isfunction)
        if function.__module__.startswith("torchvision.models.video.")
        and name in torchvision.models.list_models()
    }
    assert {"r3d_18", "mc3_18", "r2plus1d_18", "s3d", "mvit_v2_s"} <= videos
    names = pfa.available_models()
    assert set(names) == expected | videos | {"cornet_z", "cornet_s"}
    assert names == sorted(names)
    assert "fasterrcnn_resnet50_fpn" not in names


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5",
                                  "mnasnet0_5", "regnet_x_400mf"])
def test_small_torchvision_models_build_with_random_weights(name):
    model = pfa.prepare_model(name, "random", random_state=0)
    assert isinstance(model, nn.Module) and not model.training
    book = pfa.fetch_layers(model)
    assert len(book) == len(leaf_modules(model))
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 64, 64)).shape == (1, 1000)


def save_checkpoint(model, path):
    """A checkpoint as DataParallel training scripts write it."""
    state = {"module." + key: value for key, value in model.state_dict().items()}
    torch.save({"epoch": 60, "arch": "resnet18", "state_dict": state}, path)


def test_weights_from_a_local_checkpoint_with_dataparallel_prefix(tmp_path):
    reference = pfa.prepare_model("resnet18", "random", random_state=11)
    with torch.no_grad():  # buffers too: make the running statistics non-default
        for module in reference.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    path = tmp_path / "resnet18_checkpoint.pth.tar"
    save_checkpoint(reference, path)
    for source in (str(path), path):
        loaded = pfa.prepare_model("resnet18", source)
        assert state_dicts_equal(loaded, reference)
        assert not loaded.training


def test_weights_from_a_file_url(tmp_path):
    reference = pfa.prepare_model("cornet_z", "random", random_state=3)
    path = tmp_path / "cornet z weights.pth"
    save_checkpoint(reference, path)
    loaded = pfa.prepare_model("cornet_z", path.as_uri())
    assert path.as_uri().startswith("file://")
    assert state_dicts_equal(loaded, reference)


def test_weights_from_a_plain_state_dict(tmp_path):
    reference = pfa.prepare_model("cornet_z", "random", random_state=4)
    path = tmp_path / "plain.pt"
    torch.save(reference.state_dict(), path)
    assert state_dicts_equal(pfa.prepare_model("cornet_z", str(path)), reference)


def test_wrong_weights_name_missing_and_unexpected_keys(tmp_path):
    path = tmp_path / "cornet_z.pth"
    save_checkpoint(pfa.prepare_model("cornet_z", "random"), path)
    with pytest.raises(ValueError) as error:
        pfa.prepare_model("resnet18", str(path))
    message = str(error.value)
    assert str(path) in message
    assert "missing keys" in message and "'conv1.weight'" in message
    assert "unexpected keys" in message and "'V1.conv.weight'" in message


def test_missing_and_unreadable_weights_files_are_named(tmp_path):
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(FileNotFoundError, match="nowhere.pth"):
        pfa.prepare_model("cornet_z", str(missing))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        pfa.prepare_model("cornet_z", str(garbage))


def test_module_instances_are_accepted():
    torch.manual_seed(0)
    mine = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    mine.train()
    before = mine[0].weight.detach().clone()
    prepared = pfa.prepare_model(mine)
    assert prepared is mine and not prepared.training
    assert torch.equal(prepared[0].weight, before)  # 'trained' keeps its weights
    first = pfa.prepare_model(mine, "random", random_state=5)[0].weight.detach().clone()
    second = pfa.prepare_model(mine, "random", random_state=5)[0].weight.detach().clone()
    assert torch.equal(first, second) and not torch.equal(first, before)
    models = pfa.prepare_models({"mine": mine, "z": ("cornet_z", "random", 2)})
    assert list(models) == ["mine", "z"] and models["mine"] is mine
    assert state_dicts_equal(models["z"], pfa.prepare_model("cornet_z", "random", random_state=2))


def test_prepare_models_keeps_order_and_seeds():
    models = pfa.prepare_models(
        {"b": ("cornet_z", "random"), "a": ("cornet_z", "random", 9)}, random_state=1
    )
    assert isinstance(models, OrderedDict) and list(models) == ["b", "a"]
    assert state_dicts_equal(models["b"], pfa.prepare_model("cornet_z", "random", random_state=1))
    assert state_dicts_equal(models["a"], pfa.prepare_model("cornet_z", "random", random_state=9))


@pytest.mark.parametrize("bad", [{}, [("alexnet", "random")], {"a": "alexnet"},
                                 {"a": ("alexnet",)}])
def test_prepare_models_rejects_malformed_dicts(bad):
    with pytest.raises((TypeError, ValueError), match="models_dict"):
        pfa.prepare_models(bad)


def test_prepare_model_rejects_bad_argument_types():
    with pytest.raises(TypeError, match="'base_model' parameter of prepare_model"):
        pfa.prepare_model(42, "random")
    with pytest.raises(TypeError, match="'weights' parameter of prepare_model"):
        pfa.prepare_model("cornet_z", 3)


def test_trained_cornet_downloads_the_published_checkpoint(monkeypatch):
    published = pfa.prepare_model("cornet_s", "random", random_state=21)
    checkpoint = {"state_dict": {"module." + k: v for k, v in published.state_dict().items()}}
    asked = []

    def fake_download(url, *args, **kwargs):
        asked.append(url)
        return checkpoint

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    model = pfa.prepare_model("cornet_s", "trained")
    assert asked == [cornet.CORNET_WEIGHT_URLS["cornet_s"]]
    assert state_dicts_equal(model, published)
    assert not model.training


def test_trained_torchvision_model_asks_for_its_default_weights(monkeypatch):
    published = pfa.prepare_model("resnet18", "random", random_state=22)
    asked = []

    def fake_download(url, *args, **kwargs):
        asked.append(url)
        return published.state_dict()

    monkeypatch.setattr(torchvision.models._api, "load_state_dict_from_url", fake_download)
    model = pfa.prepare_model("resnet18", "trained")
    assert asked == [torchvision.models.ResNet18_Weights.DEFAULT.url]
    assert state_dicts_equal(model, published)


def test_web_urls_go_through_the_torch_hub_cache(monkeypatch):
    published = pfa.prepare_model("cornet_z", "random", random_state=23)
    asked = []

    def fake_download(url, *args, **kwargs):
        asked.append(url)
        return {"state_dict": {"module." + k: v for k, v in published.state_dict().items()}}

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", fake_download)
    url = "https://example.org/checkpoints/cornet_z_custom.pth.tar"
    model = pfa.prepare_model("cornet_z", url)
    assert asked == [url]
    assert state_dicts_equal(model, published)


def test_the_original_parameter_names_are_keyword_aliases():
    import torch

    model = pfa.prepare_model(which_model="alexnet", weights_opt="random", random_state=4)
    same = pfa.prepare_model("alexnet", "random", random_state=4)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                 same.state_dict().values()))
    with pytest.raises(pfa.InvalidInputError, match="both 'weights_opt'.*'weights'"):
        pfa.prepare_model("alexnet", weights="random", weights_opt="random")
