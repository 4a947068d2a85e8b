"""The ``pfa`` command: help, ``pfa rdms`` / ``pfa meta`` against the library, resuming,
one-line errors (exit 2 for the input, 1 for files), bugs left loud, and the demo."""

import errno
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

import pytorch_feature_analysis as pfa
import pytorch_feature_analysis.rdms as rdms_module
from pytorch_feature_analysis import cli, demo
from pytorch_feature_analysis.cli import main

LAYERS = ["conv1", "fc3"]


@pytest.fixture
def study(tmp_path):
    """A CSV of 2 objects x 3 colours, paths relative to the CSV, plus an unused column."""
    stimuli = pfa.save_synthetic_stimuli(
        tmp_path / "images", num_objects=2, colors=(0, 120, 240), size=32
    )
    rows = [
        {"path": f"images/{Path(s['path']).name}", "obj": s["obj"], "color": s["color"],
         "note": "x"}
        for s in stimuli
    ]
    csv = tmp_path / "study.csv"
    pd.DataFrame(rows).to_csv(csv, index=False)
    return csv, stimuli


def rdms_args(csv, out, *extra):
    return ["rdms", str(csv), "--entry", "color", "--group", "obj", "--model", "alexnet:random",
            "--quiet", "--out", str(out), *extra]


def assert_frames_equal(left, right):
    assert list(left.columns) == list(right.columns)
    assert len(left) == len(right)
    for column in left.columns:
        if column == "matrix":
            for a, b in zip(left[column], right[column]):
                assert a.dtype == np.float64
                np.testing.assert_array_equal(a, b)
        else:
            assert left[column].tolist() == right[column].tolist(), column


def test_module_help_in_a_subprocess():
    done = subprocess.run(
        [sys.executable, "-m", "pytorch_feature_analysis", "--help"],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    for word in ("demo", "rdms", "meta", "examples:"):
        assert word in done.stdout


@pytest.mark.parametrize("command", ["demo", "rdms", "meta"])
def test_each_command_explains_itself(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: pfa {command}" in out
    assert "example" in out
    assert "--quiet" in out


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([])
    assert exit_info.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


def test_rdms_equals_get_rdms(study, tmp_path, monkeypatch):
    csv, stimuli = study
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # relative paths are relative to the CSV, not to here
    out = tmp_path / "out" / "rdms.parquet"
    code = main(rdms_args(csv, out, "--metric", "corr", "--metric", "euclidean_distance",
                          "--layers", ",".join(LAYERS)))
    assert code == 0
    from_cli = pfa.load_frame(out)

    image_sets = pfa.package_image_sets(
        [{k: s[k] for k in ("path", "obj", "color")} for s in stimuli], ["color"], ["obj"]
    )
    direct = pfa.get_rdms(
        image_sets, pfa.prepare_models({"alexnet_random": ("alexnet", "random")}), None, "study",
        which_layers={"alexnet_random": LAYERS}, dissim_metrics=["corr", "euclidean_distance"],
        verbose=False,
    )
    assert_frames_equal(from_cli, direct)
    # values are read as text: '000' stays '000'
    assert from_cli["entry_keys"][0] == (("000",), ("120",), ("240",))


def test_rdms_resumes_without_recomputing(study, tmp_path, monkeypatch, capsys):
    csv, _ = study
    out = tmp_path / "rdms.parquet"
    assert main(rdms_args(csv, out, "--layers", "conv1")) == 0
    first = pfa.load_frame(out)

    requested = []
    real_fill_targets = rdms_module.fill_targets  # get_rdms's one forward pass

    def recording_fill_targets(images, model, book, targets, **kwargs):
        requested.append([tuple(label) for label in targets])
        return real_fill_targets(images, model, book, targets, **kwargs)

    monkeypatch.setattr(rdms_module, "fill_targets", recording_fill_targets)

    # the same command again: nothing runs through the model, the rows stay as they were
    assert main(rdms_args(csv, out, "--layers", "conv1")) == 0
    assert requested == []
    assert_frames_equal(pfa.load_frame(out), first)

    # one more layer: only that layer is computed, the earlier rows are kept
    capsys.readouterr()
    verbose = [arg for arg in rdms_args(csv, out, "--layers", "conv1,fc3") if arg != "--quiet"]
    assert main(verbose) == 0
    # 2 sets x 2 activation types: 8 rows of original_rgb and conv1 kept, 4 of fc3 added
    assert "4 computed now, 8 already there" in capsys.readouterr().out
    assert requested == [[("fc3", 21)], [("fc3", 21)]]  # once per image set
    resumed = pfa.load_frame(out)
    assert len(first) == 8 and len(resumed) == 12
    kept = resumed[resumed["layer"] != "fc3"].reset_index(drop=True)
    assert_frames_equal(kept, first)


def test_model_label_and_per_model_layers(study, tmp_path):
    csv, _ = study
    out = tmp_path / "rdms.parquet"
    args = ["rdms", str(csv), "--entry", "color", "--group", "obj",
            "--model", "mine=alexnet:random", "--model", "alexnet:random", "--seed", "3",
            "--layers", "mine=fc3", "--layers", "alexnet_random=conv1", "--quiet", "--out", str(out)]
    assert main(args) == 0
    frame = pfa.load_frame(out)
    layers = frame.groupby("model")["layer"].agg(lambda s: sorted(set(s))).to_dict()
    assert layers == {"mine": ["fc3", "original_rgb"], "alexnet_random": ["conv1", "original_rgb"]}
    # both models were drawn with seed 3: the same weights give the same fc3 RDMs
    seeded = pfa.prepare_models({"m": ("alexnet", "random", 3)})
    image_sets = pfa.package_image_sets(
        cli.read_study(csv, ["obj", "color"]), ["color"], ["obj"]
    )
    direct = pfa.get_rdms(image_sets, seeded, None, which_layers={"m": ["fc3"]}, verbose=False)
    mine = frame[(frame["model"] == "mine") & (frame["layer"] == "fc3")]["matrix"].tolist()
    for a, b in zip(mine, direct[direct["layer"] == "fc3"]["matrix"]):
        np.testing.assert_array_equal(a, b)


def test_read_study_strips_spaces_around_values(tmp_path):
    """A hand-written CSV with spaces around the commas gives the same values as one without."""
    (tmp_path / "study.csv").write_text("path , obj , color\nmy images/a b.png , cat , 000\n")
    rows = cli.read_study(tmp_path / "study.csv", ["obj", "color"])
    assert rows == [{"path": str((tmp_path / "my images" / "a b.png").resolve()), "obj": "cat",
                     "color": "000"}]


def test_parse_model_spec():
    assert cli.parse_model_spec("alexnet:trained") == ("alexnet", ("alexnet", "trained", 0))
    assert cli.parse_model_spec("alexnet:random", 5) == ("alexnet_random", ("alexnet", "random", 5))
    assert cli.parse_model_spec("resnet50:/w/stylized.pth.tar") == (
        "resnet50_stylized", ("resnet50", "/w/stylized.pth.tar", 0)
    )
    url = "https://example.org/models/r50.pth?dl=1"
    assert cli.parse_model_spec(f"resnet50:{url}") == ("resnet50_r50", ("resnet50", url, 0))
    assert cli.parse_model_spec(f"x=resnet50:{url}") == ("x", ("resnet50", url, 0))


def test_meta_equals_get_meta_rdms(tmp_path):
    stimuli = pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 120, 240), size=32)
    rdm_df = pfa.get_rdms(
        pfa.package_image_sets(stimuli, ["color"], ["obj"]),
        pfa.prepare_models({"alexnet": ("alexnet", "random")}),
        tmp_path / "rdms.parquet", which_layers={"alexnet": LAYERS},
        dissim_metrics=["corr", "euclidean_distance"], verbose=False,
    )
    groups = ["model", "layer", "activation_type", "dissim_metric"]
    out = tmp_path / "meta.parquet"
    args = ["meta", str(tmp_path / "rdms.parquet"), "--entry", "obj",
            *[arg for group in groups for arg in ("--group", group)],
            "--metric", "corr", "--metric", "euclidean_distance", "--name", "objs",
            "--quiet", "--out", str(out)]
    assert main(args) == 0
    direct = pfa.get_meta_rdms(rdm_df, None, ["obj"], grouping_variables=groups, df_name="objs",
                               dissim_metrics=["corr", "euclidean_distance"], verbose=False)
    assert_frames_equal(pfa.load_frame(out), direct)

    # --where keeps the matching rows only
    where_out = tmp_path / "meta_conv1.parquet"
    assert main(["meta", str(tmp_path / "rdms.parquet"), "--entry", "obj", "--where", "layer=conv1",
                 "--where", "layer_num=1", *[arg for g in groups for arg in ("--group", g)],
                 "--quiet", "--out", str(where_out)]) == 0
    subset = rdm_df[rdm_df["layer"] == "conv1"].reset_index(drop=True)
    expected = pfa.get_meta_rdms(subset, None, ["obj"], grouping_variables=groups, verbose=False)
    assert_frames_equal(pfa.load_frame(where_out), expected)


def _errors(study_csv, tmp_path):
    frame = tmp_path / "frame.parquet"
    pfa.save_frame(pd.DataFrame({"obj": ["a"], "matrix": [np.zeros((2, 2))]}), frame)
    out = str(tmp_path / "o.parquet")
    base = ["--entry", "color", "--group", "obj", "--quiet"]
    return {
        "missing study": (["rdms", str(tmp_path / "nope.csv"), *base, "--model", "alexnet:random",
                           "--out", out], "nope.csv"),
        "unknown column": (["rdms", str(study_csv), "--entry", "colour", "--group", "obj",
                            "--model", "alexnet:random", "--out", out], "'colour'"),
        "unknown model": (["rdms", str(study_csv), *base, "--model", "alexnt:random", "--out", out],
                          "'alexnet'"),
        "model without weights": (["rdms", str(study_csv), *base, "--model", "alexnet",
                                   "--out", out], "NAME:WEIGHTS"),
        "missing weights file": (["rdms", str(study_csv), *base, "--model", "alexnet:/no/w.pth",
                                  "--out", out], "/no/w.pth"),
        "unknown layer": (["rdms", str(study_csv), *base, "--model", "alexnet:random",
                           "--layers", "conv9", "--out", out], "'conv9'"),
        "layers of an unknown model": (["rdms", str(study_csv), *base, "--model", "alexnet:random",
                                        "--layers", "vgg=conv1", "--out", out], "'vgg'"),
        "csv output": (["rdms", str(study_csv), *base, "--model", "alexnet:random",
                        "--out", str(tmp_path / "o.csv")], "o.csv"),
        "entry and group": (["rdms", str(study_csv), "--entry", "obj", "--group", "obj",
                             "--model", "alexnet:random", "--quiet", "--out", out], "'obj'"),
        "unknown device": (["rdms", str(study_csv), *base, "--model", "alexnet:random",
                            "--device", "gpu", "--out", out], "'gpu'"),
        "missing frame": (["meta", str(tmp_path / "nope.parquet"), "--entry", "obj", "--quiet",
                           "--out", out], "nope.parquet"),
        "unknown meta column": (["meta", str(frame), "--entry", "object", "--quiet", "--out", out],
                                "'object'"),
        "where matches nothing": (["meta", str(frame), "--entry", "obj", "--where", "obj=b",
                                   "--quiet", "--out", out], "'a'"),
    }


@pytest.mark.parametrize("case", [
    "missing study", "unknown column", "unknown model", "model without weights",
    "missing weights file", "unknown layer", "layers of an unknown model", "csv output",
    "entry and group", "unknown device", "missing frame", "unknown meta column",
    "where matches nothing",
])
def test_errors_are_one_line_and_exit_2(case, study, tmp_path, capsys):
    args, named = _errors(study[0], tmp_path)[case]
    capsys.readouterr()
    assert main(args) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"pfa {args[0]}: error: ")
    assert named in lines[0]
    assert "Traceback" not in captured.err
    assert not (tmp_path / "o.parquet").exists()


def one_error_line(capsys, command):
    """The only line on stderr, a one-line error of ``pfa command``."""
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith(f"pfa {command}: error: ")
    assert "Traceback" not in captured.err
    return lines[0]


@pytest.mark.parametrize("option, value, named", [
    ("--perms", "-1", "'-1'"),
    ("--cores", "0", "'0'"),
    ("--batch-size", "many", "'many'"),
    ("--image-size", "16", "'16'"),
    ("--seed", "1.5", "'1.5'"),
    ("--metric", "pearson", "'pearson'"),
    ("--layers", "alexnet_random=", "'alexnet_random='"),
    ("--layers", "=conv1", "'=conv1'"),
    ("--model", "alexnet:", "'alexnet:'"),
    ("--max-memory", "lots", "'lots'"),
])
def test_bad_option_values_exit_2_with_argparses_message(option, value, named, study, tmp_path,
                                                          capsys):
    capsys.readouterr()
    assert main(rdms_args(study[0], tmp_path / "o.parquet", option, value)) == 2
    line = one_error_line(capsys, "rdms")
    assert f"argument {option}" in line and named in line
    assert not (tmp_path / "o.parquet").exists()


@pytest.mark.parametrize("args, named", [
    (["--where", "layer"], "'layer'"),
    (["--perms", "-2"], "'-2'"),
    (["--metric", "tau"], "'tau'"),
])
def test_bad_meta_option_values_exit_2(args, named, tmp_path, capsys):
    frame = tmp_path / "frame.parquet"
    pfa.save_frame(pd.DataFrame({"obj": ["a"], "matrix": [np.zeros((2, 2))]}), frame)
    capsys.readouterr()
    out = str(tmp_path / "m.parquet")
    assert main(["meta", str(frame), "--entry", "obj", *args, "--out", out]) == 2
    assert named in one_error_line(capsys, "meta")


def test_bad_demo_weights_exit_2(tmp_path, capsys):
    assert main(["demo", "--weights", "pretrained", "--out", str(tmp_path / "demo")]) == 2
    assert "'pretrained'" in one_error_line(capsys, "demo")
    assert not (tmp_path / "demo").exists()


@pytest.fixture
def tiny_frame(tmp_path):
    """A frame file that loads (the meta-RDM step itself is patched in these tests)."""
    frame = tmp_path / "frame.parquet"
    pfa.save_frame(pd.DataFrame({"obj": ["a", "b"], "matrix": [np.zeros((2, 2))] * 2}), frame)
    return frame


def meta_args(frame, out):
    return ["meta", str(frame), "--entry", "obj", "--quiet", "--out", str(out)]


@pytest.mark.parametrize("error, named", [
    (PermissionError(errno.EACCES, "Permission denied", "/data/locked/m.parquet"),
     "/data/locked/m.parquet"),
    (OSError(errno.ENOSPC, "No space left on device"), "m.parquet"),
])
def test_file_errors_exit_1_with_one_line_naming_the_file(error, named, tiny_frame, tmp_path,
                                                          monkeypatch, capsys):
    def failing(*args, **kwargs):
        raise error

    monkeypatch.setattr(cli, "get_meta_rdms", failing)
    assert main(meta_args(tiny_frame, tmp_path / "m.parquet")) == 1
    line = one_error_line(capsys, "meta")
    assert named in line and error.strerror in line


def test_a_read_only_output_folder_exits_1(study, tmp_path, capsys):
    folder = tmp_path / "read_only"
    folder.mkdir()
    folder.chmod(0o500)
    try:
        if os.access(folder, os.W_OK):
            pytest.skip("this user (root?) may write into a 0o500 folder")
        out = folder / "rdms.parquet"
        assert main(rdms_args(study[0], out, "--layers", "conv1")) == 1
        assert str(folder) in one_error_line(capsys, "rdms")
        assert not out.exists()
    finally:
        folder.chmod(0o700)


def test_an_output_folder_that_is_a_file_exits_1(study, tmp_path, capsys):
    """A real OSError, also for root: the folder of --out is a plain file."""
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("")
    capsys.readouterr()
    assert main(rdms_args(study[0], blocker / "rdms.parquet", "--layers", "conv1")) == 1
    assert str(blocker) in one_error_line(capsys, "rdms")
    assert main(["demo", "--weights", "random", "--quiet", "--out", str(blocker / "demo")]) == 1
    assert str(blocker) in one_error_line(capsys, "demo")


@pytest.mark.parametrize("bug", [RuntimeError("a bug"), KeyError("matrix"), ValueError("a bug")])
def test_an_internal_bug_is_not_reported_as_a_usage_error(bug, tiny_frame, tmp_path,
                                                          monkeypatch, capsys):
    """Only InvalidInputError is the user's mistake; a plain ValueError or KeyError is a bug."""
    def broken(*args, **kwargs):
        raise bug

    monkeypatch.setattr(cli, "get_meta_rdms", broken)
    with pytest.raises(type(bug)) as raised:
        main(meta_args(tiny_frame, tmp_path / "m.parquet"))
    assert raised.value is bug
    assert "error:" not in capsys.readouterr().err


def test_usage_error_is_the_librarys_one_exception_class():
    assert cli.UsageError is pfa.InvalidInputError


def test_meta_reads_a_pickle_only_with_allow_pickle(tmp_path, capsys):
    stimuli = pfa.make_synthetic_stimuli(num_objects=3, colors=(0, 120, 240), size=32)
    pickled = tmp_path / "rdms.pkl"
    rdm_df = pfa.get_rdms(
        pfa.package_image_sets(stimuli, ["color"], ["obj"]),
        pfa.prepare_models({"alexnet": ("alexnet", "random")}), pickled,
        which_layers={"alexnet": ["conv1"]}, verbose=False,
    )
    groups = [arg for group in ("model", "layer", "activation_type", "dissim_metric")
              for arg in ("--group", group)]
    out = tmp_path / "meta.parquet"
    capsys.readouterr()
    assert main(meta_args(pickled, out) + groups) == 2
    assert "allow_pickle" in one_error_line(capsys, "meta")
    assert main(meta_args(pickled, out) + groups + ["--allow-pickle"]) == 0
    expected = pfa.get_meta_rdms(rdm_df, None, ["obj"], grouping_variables=groups[1::2],
                                 verbose=False)
    assert_frames_equal(pfa.load_frame(out), expected)


@pytest.mark.skipif(demo._unreachable(demo._checkpoint_url()) is None,
                    reason="this machine can download AlexNet's weights")
def test_demo_with_trained_weights_offline_exits_1(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty_cache"))
    assert main(["demo", "--weights", "trained", "--out", str(tmp_path / "demo")]) == 1
    line = one_error_line(capsys, "demo")
    assert "alexnet-owt-7be5be79.pth" in line and "random" in line
    assert not (tmp_path / "demo").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(study, tmp_path, capsys):
    assert main(rdms_args(study[0], tmp_path / "o.parquet", "--device", "cuda")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "CUDA" in err[0]


def test_duplicate_images_in_the_study_are_one_line(study, tmp_path, capsys):
    csv, _ = study
    table = pd.read_csv(csv, dtype=str)
    pd.concat([table, table.iloc[:1]]).to_csv(csv, index=False)
    assert main(rdms_args(csv, tmp_path / "o.parquet")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "('000',)" in err[0]


def test_demo_writes_the_study(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "no_weights_here"))
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--weights", "random"]) == 0
    summary = capsys.readouterr().out.strip().splitlines()
    assert 3 <= len(summary) <= 10
    assert str(out) in summary[0] and "random weights" in summary[0]

    assert len(list((out / "stimuli").glob("*.png"))) == 16
    rdm_df = pfa.load_frame(out / "rdms.parquet")
    assert len(rdm_df) == 4 * 22 * 2 * 2
    assert set(rdm_df["model"]) == {"alexnet_random"}
    assert set(rdm_df["dissim_metric"]) == {"corr", "euclidean_distance"}
    meta = pfa.load_frame(out / "meta_rdms.parquet")
    assert len(meta) == 22 * 2 * 2 * 2
    layer_meta = pfa.load_frame(out / "meta_rdms_obj_layer.parquet")
    assert len(layer_meta) == 2 * 2 * 2 and len(layer_meta["entry_keys"][0]) == 4 * 22
    meta_meta = pfa.load_frame(out / "meta_meta_rdms.parquet")
    assert len(meta_meta) == 8
    assert {"dissim_metric_sub", "dissim_metric_sub_sub"} <= set(meta_meta.columns)

    # a second-order cell, recomputed with numpy from the first-order file
    first = rdm_df[(rdm_df["layer"] == "conv2") & (rdm_df["activation_type"] == "unit_level")
                   & (rdm_df["dissim_metric"] == "corr")].sort_values("obj")
    upper = np.triu_indices(4, k=1)
    expected = 1 - np.corrcoef(np.stack([m[upper] for m in first["matrix"]]))
    row = meta[(meta["layer"] == "conv2") & (meta["activation_type"] == "unit_level")
               & (meta["dissim_metric_sub"] == "corr") & (meta["dissim_metric"] == "corr")]
    assert row["entry_keys"].iloc[0] == tuple((obj,) for obj in first["obj"])
    np.testing.assert_allclose(row["matrix"].iloc[0], expected, atol=1e-10)

    plots = ("mds_colors", "mds_objects", "mds_trajectories", "heatmaps_colors",
             "heatmaps_objects")
    for name in plots:
        with Image.open(out / "plots" / f"{name}.png") as image:
            assert min(image.size) > 200
