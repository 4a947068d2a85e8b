"""get_rdms into a dataset: parts, resume, condensed storage, and a real Dask cluster."""

from __future__ import annotations

import contextlib
import os
import signal

import numpy as np
import pytest
import torch
from torch import nn
from torchvision import transforms

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import InvalidInputError
from pytorch_feature_analysis import _study
from pytorch_feature_analysis import rdms as rdms_module
from pytorch_feature_analysis.testing import assert_frames_identical

SMALL = transforms.Compose([transforms.Resize(64), transforms.ToTensor()])
KWARGS = dict(rdm_name="study", which_layers={"squeeze": ["conv1", "conv2"]}, num_perms=1,
              transform=SMALL, verbose=False)


def little():
    """A float32 module (shipped to workers as it is): conv - relu - pool - linear."""
    torch.manual_seed(3)
    return nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 5)).eval()


def described():
    """SqueezeNet described (built on the workers) and a module."""
    return {"squeeze": ("squeezenet1_1", "random"), "little": little()}


@pytest.fixture(scope="module")
def image_sets(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    stimuli = pfa.save_synthetic_stimuli(folder, num_objects=3, colors=(0, 120, 240), size=64)
    return pfa.package_image_sets(stimuli, ["color"], ["obj"])


@pytest.fixture(scope="module")
def serial(image_sets):
    """The frame computed here, in memory."""
    return pfa.get_rdms(image_sets, described(), None, **KWARGS)


@contextlib.contextmanager
def deadline(seconds):
    """Fail (never hang) when the block takes longer than ``seconds``."""
    def expire(*_):
        raise TimeoutError(f"the cluster test took longer than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def by_identity(frame):
    keys = ["model", "obj", "layer_num", "activation_type", "perm"]
    return frame.sort_values(keys, key=lambda c: c.astype(str), kind="stable").reset_index(
        drop=True)


def parts(folder):
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*.parquet"))


def test_a_dataset_holds_the_frame_one_part_per_set_and_model(image_sets, serial, tmp_path):
    folder = tmp_path / "study"
    frame = pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    assert_frames_identical(frame, serial)
    written = parts(folder)
    assert len(written) == 6  # 3 image sets x 2 models
    assert sum(p.startswith("model=squeeze/part-") for p in written) == 3
    for model, rows in serial.groupby("model"):
        stored = pfa.load_frame(folder, filters=[("model", "==", model)])
        assert len(stored) == len(rows)
    conv1 = pfa.load_frame(folder, filters=[("layer", "==", "conv1"), ("obj", "==", "obj002")],
                           columns=["model", "activation_type", "perm", "matrix"])
    expected = serial[(serial["layer"] == "conv1") & (serial["obj"] == "obj002")]
    assert len(conv1) == len(expected) == 8  # 2 models x 2 activation types x 2 perms
    for model, activation_type, perm, matrix in conv1.itertuples(index=False):
        same = expected[(expected["model"] == model) & (expected["perm"] == perm)
                        & (expected["activation_type"] == activation_type)]
        np.testing.assert_array_equal(matrix, same["matrix"].iloc[0])
    assert pfa.get_rdms(image_sets, described(), f"{folder}/", collect=False, **KWARGS) is None


def test_resume_computes_only_missing_parts_and_never_rewrites_one(image_sets, serial, tmp_path,
                                                                    monkeypatch):
    folder = tmp_path / "study"
    calls = []
    real = rdms_module._image_set_rdms

    def dies_on_the_third(**task):
        calls.append((task["model_name"], task["image_set"][0]["obj"]))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(**task)

    monkeypatch.setattr(rdms_module, "_image_set_rdms", dies_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    first = {p: (folder / p).stat().st_mtime_ns for p in parts(folder)}
    assert len(first) == 2
    spy = []
    monkeypatch.setattr(rdms_module, "_image_set_rdms",
                        lambda **task: spy.append(task["model_name"]) or real(**task))
    frame = pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    assert len(spy) == 4
    assert_frames_identical(frame, serial)
    assert {p: (folder / p).stat().st_mtime_ns for p in first} == first


def test_a_half_written_part_leaves_no_trace(image_sets, serial, tmp_path, monkeypatch):
    folder = tmp_path / "study"
    real = pfa.io._atomic_write
    written = []

    def killed_midway(path, write):
        if written:
            def half(target):
                write(target)
                with open(target, "r+b") as handle:
                    handle.truncate(100)
                raise KeyboardInterrupt
            return real(path, half)
        written.append(path)
        return real(path, write)

    monkeypatch.setattr(pfa.io, "_atomic_write", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    assert len(parts(folder)) == 1
    assert [p.name for p in folder.rglob("*") if p.is_file() and p.suffix != ".parquet"] == []
    monkeypatch.setattr(pfa.io, "_atomic_write", real)
    assert_frames_identical(pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS), serial)


def test_a_plan_leaves_out_the_parts_on_disk(image_sets, tmp_path):
    folder = tmp_path / "study"
    pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    planned = dict(rdm_name=KWARGS["rdm_name"], which_layers=KWARGS["which_layers"],
                   num_perms=1, transform=SMALL)
    assert len(pfa.plan_rdms(image_sets, described(), f"{folder}/", **planned)) == 0
    removed = sorted((folder / "model=little").glob("*.parquet"))[0]
    removed.unlink()
    left = pfa.plan_rdms(image_sets, described(), f"{folder}/", **planned)
    assert left["model"].tolist() == ["little"]
    assert len(pfa.plan_rdms(image_sets, described(), f"{folder}/", **planned,
                             random_state=1)) == 2 * len(image_sets)  # all made otherwise
    with pytest.raises(InvalidInputError, match=r"study 'default_name' \(rdm_name\)"):
        pfa.plan_rdms(image_sets, described(), f"{folder}/", transform=SMALL)


def test_changed_weights_replace_their_parts(image_sets, tmp_path):
    folder = tmp_path / "study"
    pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    before = set(parts(folder))
    models = {"squeeze": ("squeezenet1_1", "random", 1), "little": little()}
    with pytest.raises(InvalidInputError, match=r"made with other weights"):
        pfa.get_rdms(image_sets, models, f"{folder}/", on_change="error", **KWARGS)
    assert set(parts(folder)) == before
    frame = pfa.get_rdms(image_sets, models, f"{folder}/", **KWARGS)
    after = set(parts(folder))
    kept = before & after
    assert len(kept) == 3 and all(p.startswith("model=little/") for p in kept)
    assert_frames_identical(frame, pfa.get_rdms(image_sets, models, None, **KWARGS))


def test_condensed_storage_of_a_study(image_sets, serial, tmp_path):
    full = pfa.get_rdms(image_sets, described(), tmp_path / "full.parquet", **KWARGS)
    small = pfa.get_rdms(image_sets, described(), f"{tmp_path}/small/",
                         matrix_storage="condensed_float32", **KWARGS)
    assert small.attrs["pytorch_feature_analysis.matrix_storage"] == {
        "matrix": "condensed_float32"}
    for exact, stored in zip(serial["matrix"], small["matrix"]):
        np.testing.assert_array_equal(stored, exact.astype(np.float32).astype(np.float64))
    assert_frames_identical(small.drop(columns="matrix"), full.drop(columns="matrix"))
    kept = pfa.load_frame(tmp_path / "full.parquet")
    assert_frames_identical(kept, serial)
    one_file = pfa.get_rdms(image_sets, described(), tmp_path / "small.parquet",
                            matrix_storage="condensed_float32", **KWARGS)
    assert_frames_identical(one_file, small)  # returned as the file holds it
    assert_frames_identical(pfa.load_frame(tmp_path / "small.parquet"), small)
    with pytest.raises(InvalidInputError, match=r"'matrix_storage'.*parquet file or a dataset"):
        pfa.get_rdms(image_sets, described(), tmp_path / "x.p",
                     matrix_storage="condensed_float32", **KWARGS)


def test_a_folder_of_another_study_is_refused_naming_the_part(image_sets, tmp_path):
    folder = tmp_path / "study"
    pfa.get_rdms(image_sets, described(), f"{folder}/", **KWARGS)
    with pytest.raises(InvalidInputError, match=r"'out_fname'.*study 'other' \(rdm_name\).*"
                       r"model=.*part-.*\.parquet' of the study \['study'\]"):
        pfa.get_rdms(image_sets, described(), f"{folder}/", **dict(KWARGS, rdm_name="other"))
    relabelled = [({"scene": labels["obj"]}, *rest) for labels, *rest in image_sets]
    with pytest.raises(InvalidInputError, match=r"part .*part-.*\.parquet', without the "
                       r"columns \['scene'\]"):
        pfa.get_rdms(relabelled, described(), f"{folder}/", **KWARGS)


def test_a_cluster_run_equals_the_serial_run_bit_for_bit(image_sets, tmp_path, monkeypatch):
    distributed = pytest.importorskip("distributed")
    folder = tmp_path / "study"
    failed, killed = tmp_path / "failed_once", tmp_path / "killed_once"
    real = rdms_module._image_set_rdms

    def fails_once(**task):  # runs on the workers: the first task fails, the second kills
        if not failed.exists():  # its worker; both are run again
            failed.write_text(task["model_name"])
            raise RuntimeError("a task that failed")
        if not killed.exists():
            killed.write_text(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return real(**task)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers (one thread each): sums in the same order
    try:
        reference = pfa.get_rdms(image_sets, described(), None, **KWARGS)
    finally:
        torch.set_num_threads(threads)
    monkeypatch.setattr(rdms_module, "_image_set_rdms", fails_once)
    with deadline(240), distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
        worker_dashboard_address=None,
    ) as cluster, distributed.Client(cluster) as client:
        frame = pfa.get_rdms(image_sets, described(), f"{folder}/", client=client, **KWARGS)
        client.wait_for_workers(2)  # the killed worker's replacement
        workers = client.run(os.getpid)
        only_described = pfa.get_rdms(image_sets, {"squeeze": described()["squeeze"]},
                                      f"{tmp_path}/described/", client=client, **KWARGS)
        if not torch.cuda.is_available():  # the workers check the device, naming themselves
            with pytest.raises(InvalidInputError, match=r"'device'.*every worker.*'cuda' \(the "
                               r"workers \['tcp://[^']+'(, 'tcp://[^']+')*\] have none\)"):
                pfa.get_rdms(image_sets, described(), f"{tmp_path}/gpu/", client=client,
                             device="cuda", **KWARGS)
            assert not (tmp_path / "gpu").exists()
    assert_frames_identical(frame, reference)
    squeeze = reference[reference["model"] == "squeeze"].reset_index(drop=True)
    assert_frames_identical(by_identity(only_described), by_identity(squeeze))
    assert_frames_identical(by_identity(pfa.load_frame(folder)), by_identity(reference))
    assert len(workers) == 2 and os.getpid() not in workers.values()
    assert failed.read_text() in {"squeeze", "little"}
    assert int(killed.read_text()) not in workers.values()  # that worker died and was replaced


def test_an_unreachable_scheduler_is_an_error_and_writes_nothing(image_sets, tmp_path):
    dask = pytest.importorskip("dask")
    folder = tmp_path / "study"
    with deadline(60), dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        with pytest.raises(InvalidInputError, match=r"'client' parameter of get_rdms.*"
                           r"answers within 2s.*'tcp://127.0.0.1:9', which did not"):
            pfa.get_rdms(image_sets, described(), f"{folder}/", client="tcp://127.0.0.1:9",
                         **KWARGS)
    assert not folder.exists()
    with pytest.raises(InvalidInputError, match=r"'client'.*None unless out_fname is a dataset"):
        pfa.get_rdms(image_sets, described(), tmp_path / "x.parquet", client="tcp://h:1",
                     **KWARGS)


class FakeClient:
    """Answers ``run`` with given per-worker results (as ``Client.run`` does)."""

    def __init__(self, answers):
        self.answers = answers

    def run(self, func, *args):
        return dict(self.answers)


def test_the_memory_budget_of_a_cluster_is_its_smallest_workers():
    from pytorch_feature_analysis import _plan

    extraction = _plan.check_extraction(8, "cpu", None, None, False)
    workers = FakeClient({"tcp://a:1": 6_000_000_000, "tcp://b:1": 2_500_000_000})
    assert _plan.workers_budget(workers, extraction) == 2_500_000_000
    bounded = _plan.check_extraction(8, "cpu", None, "1GB", False)
    assert _plan.workers_budget(workers, bounded) == 1_000_000_000
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    assert 0 < _plan._budget_here("cpu") <= physical / 2  # a share of this machine's memory
    if not torch.cuda.is_available():
        assert _plan._budget_here("cuda") is None
    with pytest.raises(InvalidInputError, match=r"\(the workers \['tcp://b:1'\] have none\)"):
        _plan.workers_budget(FakeClient({"tcp://a:1": 10, "tcp://b:1": None}), extraction)
    with pytest.raises(InvalidInputError, match=r"a cluster with at least one worker"):
        _plan.workers_budget(FakeClient({}), extraction)


def test_a_model_built_differently_on_a_worker_is_refused():
    with pytest.raises(InvalidInputError, match=r"'squeeze' built on a worker.*other weights"):
        _study._built_model("squeeze", ("squeezenet1_1", "random", 0), "not its fingerprint")


def test_descriptions_of_models():
    spec = {"a": ("alexnet", "random"), "b": ("vgg11", "trained", 3), "c": little()}
    assert _study.model_descriptions(spec) == {"a": ("alexnet", "random", 0),
                                               "b": ("vgg11", "trained", 3), "c": None}
