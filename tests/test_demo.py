"""The demo module: AlexNet's weights (the hub cache, a download, the offline fallback, for
real where the machine is offline) and ``run_demo`` called from Python."""

import os
import time
import urllib.request

import pytest
import torch
from torchvision.models import AlexNet_Weights

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import demo

URL = AlexNet_Weights.IMAGENET1K_V1.url
FILENAME = os.path.basename(URL)
ONLINE = demo._unreachable(URL) is None
offline_only = pytest.mark.skipif(ONLINE, reason="this machine can download AlexNet's weights")


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    """An empty torch hub cache; returns its checkpoints folder (not created)."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    return tmp_path / "torch_home" / "hub" / "checkpoints"


@pytest.fixture
def no_network(monkeypatch):
    """Fail the test if the demo asks the network anything."""
    def probe(*args, **kwargs):
        raise AssertionError("the demo probed the network")

    monkeypatch.setattr(demo, "_unreachable", probe)
    monkeypatch.setattr(torch.hub, "download_url_to_file", probe)


def seeded_alexnet_state(seed):
    return pfa.prepare_model("alexnet", "random", random_state=seed).state_dict()


def test_the_checkpoint_is_where_torchvision_keeps_it(torch_home, monkeypatch):
    assert demo._local_alexnet_checkpoint() == torch_home / FILENAME
    monkeypatch.setattr(demo, "_unreachable", lambda url, timeout=3.0: "no network (test)")
    assert demo._resolve_weights("auto", verbose=False)[0] == "random"
    torch_home.mkdir(parents=True)
    (torch_home / FILENAME).write_bytes(b"")
    assert demo._resolve_weights("auto", verbose=False)[0] == "trained"


@offline_only
def test_offline_auto_falls_back_at_once_with_a_one_line_notice(torch_home, capsys):
    start = time.perf_counter()
    weights, source = demo._resolve_weights("auto", verbose=True)
    assert time.perf_counter() - start < demo._PROBE_TIMEOUT_S + 0.5
    assert weights == "random" and "offline" in source
    notice = capsys.readouterr().err.strip().splitlines()
    assert len(notice) == 1 and "random weights" in notice[0] and FILENAME in notice[0]
    assert not torch_home.exists()  # nothing half-downloaded


@offline_only
def test_offline_demo_runs_with_random_weights(torch_home, tmp_path, capsys):
    result = pfa.run_demo(tmp_path / "demo", verbose=False)
    assert result["weights"] == "random" and result["model"] == "alexnet_random"
    assert set(pfa.load_frame(result["rdms"])["model"]) == {"alexnet_random"}
    assert capsys.readouterr().err == ""  # verbose=False: not even the notice


@offline_only
def test_trained_weights_offline_are_a_clear_error(torch_home, tmp_path):
    with pytest.raises(ConnectionError, match=FILENAME) as raised:
        pfa.run_demo(tmp_path / "demo", weights="trained", verbose=False)
    assert "random weights" in str(raised.value)
    assert not (tmp_path / "demo").exists()


def test_trained_weights_come_from_the_cache(torch_home, tmp_path, no_network):
    torch_home.mkdir(parents=True)
    cached = seeded_alexnet_state(7)
    torch.save(cached, torch_home / FILENAME)
    result = pfa.run_demo(tmp_path / "demo", verbose=False)
    assert result["weights"] == "trained" and result["model"] == "alexnet"
    assert "torch hub cache" in result["weights_source"]
    used = result["models"]["alexnet"].state_dict()
    assert list(used) == list(cached)
    assert all(torch.equal(used[name], cached[name]) for name in cached)
    assert not torch.equal(used["features.0.weight"], seeded_alexnet_state(0)["features.0.weight"])
    assert set(pfa.load_frame(result["rdms"])["model"]) == {"alexnet"}
    assert demo._resolve_weights("trained", verbose=False)[0] == "trained"


def test_online_the_weights_are_downloaded_into_the_cache(torch_home, monkeypatch):
    calls = []

    def download(url, destination, hash_prefix, progress):
        calls.append((url, destination, hash_prefix, progress))
        torch.save(seeded_alexnet_state(3), destination)

    monkeypatch.setattr(demo, "_unreachable", lambda url, timeout=3.0: None)
    monkeypatch.setattr(torch.hub, "download_url_to_file", download)
    weights, source = demo._resolve_weights("auto", verbose=True)
    assert weights == "trained" and "downloaded" in source
    assert calls == [(URL, str(torch_home / FILENAME), "7be5be79", True)]
    assert (torch_home / FILENAME).is_file()


def test_random_weights_never_touch_the_network(torch_home, no_network, capsys):
    assert demo._resolve_weights("random", verbose=True)[0] == "random"
    assert capsys.readouterr().err == ""


def test_the_probe_gives_up_after_its_timeout(monkeypatch):
    def hanging(*args, **kwargs):
        time.sleep(2)
        raise TimeoutError("answered too late")

    monkeypatch.setattr(urllib.request, "urlopen", hanging)
    start = time.perf_counter()
    assert demo._unreachable(URL, timeout=0.2) == "no answer within 0.2 s"
    assert time.perf_counter() - start < 1.5


@pytest.mark.parametrize("weights", ["pretrained", None, True])
def test_bad_weights_are_refused_before_any_work(weights, tmp_path, no_network):
    with pytest.raises(pfa.InvalidInputError, match="'weights' parameter of run_demo"):
        pfa.run_demo(tmp_path / "demo", weights=weights, verbose=False)
    assert not (tmp_path / "demo").exists()
