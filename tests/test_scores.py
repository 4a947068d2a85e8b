"""Model RDMs against targets: scores against scipy and rsatoolbox, noise ceilings, inference."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats
import torch
from statsmodels.stats.multitest import multipletests

import pytorch_feature_analysis as pfa
from pytorch_feature_analysis import _evaluation, _rdm_scores, scores as scores_module

STIMULI = ("cat", "dog", "car", "cup", "pen", "box", "hat")
RSATOOLBOX_NAMES = {"pearson": "corr", "spearman": "spearman", "cosine": "cosine",
                    "kendall_tau_a": "tau-a", "corr_cov": "corr_cov", "cosine_cov": "cosine_cov"}
UPPER = np.triu_indices(len(STIMULI), 1)


def patterns(rng, stimuli=STIMULI, size=30):
    return {(s,): rng.normal(size=size) for s in stimuli}


def model_frame(rng, layers=("conv1", "fc1")):
    return pfa.rdms_from_patterns([({"model": "net", "layer": layer}, patterns(rng),
                                    ("stimulus",)) for layer in layers])


def subject_frame(truth, rng, subjects=4, noise=1.0, order=STIMULI, region="IT"):
    """Simulated subjects: noisy copies of ``truth`` patterns, listed in ``order``."""
    return pfa.rdms_from_patterns([
        ({"model": "fmri", "layer": region, "subject": k},
         {(s,): truth[(s,)] + noise * rng.normal(size=len(truth[(s,)])) for s in order},
         ("stimulus",))
        for k in range(subjects)])


def reference(x, y, method):
    """One score computed directly from two upper triangles."""
    return {
        "pearson": lambda: scipy.stats.pearsonr(x, y)[0],
        "spearman": lambda: scipy.stats.spearmanr(x, y)[0],
        "kendall_tau_a": lambda: np.mean([np.sign(x[i] - x[j]) * np.sign(y[i] - y[j])
                                          for i in range(len(x)) for j in range(len(x))
                                          if i != j]),
        "cosine": lambda: x @ y / np.linalg.norm(x) / np.linalg.norm(y),
    }[method]()


def aligned(matrix, keys):
    order = [keys.index((s,)) for s in STIMULI]
    return np.asarray(matrix)[np.ix_(order, order)]


@pytest.mark.parametrize("method", ["pearson", "spearman", "kendall_tau_a", "cosine"])
def test_scores_match_entries_by_key_and_equal_scipy_averaged_over_subjects(method):
    rng = np.random.default_rng(4)
    model = model_frame(rng)
    shuffled = STIMULI[::-1]
    target = subject_frame(patterns(rng), rng, subjects=3, order=shuffled)
    scores = pfa.compare_to_targets(model, target, method=method)
    described = scores[["layer", "target_layer", "method", "entries", "subjects"]]
    assert described.values.tolist() == [["conv1", "IT", method, 7, 3],
                                         ["fc1", "IT", method, 7, 3]]
    assert "target_subject" not in scores
    for matrix, (_, row) in zip(model["matrix"], scores.iterrows()):
        per_subject = [reference(matrix[UPPER], aligned(t, list(keys))[UPPER], method)
                       for t, keys in zip(target["matrix"], target["entry_keys"])]
        assert row["score"] == pytest.approx(np.mean(per_subject), abs=1e-12)
        assert row["score_sem"] == pytest.approx(scipy.stats.sem(per_subject), abs=1e-12)


def test_without_subjects_every_target_row_is_a_target():
    rng = np.random.default_rng(5)
    target = subject_frame(patterns(rng), rng, subjects=2).drop(columns="subject")
    scores = pfa.compare_to_targets(model_frame(rng), target, method="pearson")
    assert len(scores) == 4
    assert not {"subjects", "score_sem", "noise_ceiling_lower"} & set(scores.columns)


@pytest.mark.parametrize("method", ["corr_cov", "cosine_cov"])
@pytest.mark.parametrize("with_sigma", [False, True])
def test_whitened_scores_equal_rsatoolbox(method, with_sigma):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    rng = np.random.default_rng(6)
    model = model_frame(rng)
    target = subject_frame(patterns(rng), rng, subjects=1, order=STIMULI[::-1])
    sigma = rng.uniform(0.5, 2.0, size=len(STIMULI)) if with_sigma else None
    scores = pfa.compare_to_targets(
        model, target, method=method,
        sigma_k=None if sigma is None else {(s,): v for s, v in zip(STIMULI, sigma)})
    target_vector = aligned(target["matrix"][0], list(target["entry_keys"][0]))[UPPER]
    expected = rsatoolbox.rdm.compare(
        rsatoolbox.rdm.RDMs(np.stack([m[UPPER] for m in model["matrix"]])),
        rsatoolbox.rdm.RDMs(target_vector[None]), method=method, sigma_k=sigma)[:, 0]
    np.testing.assert_allclose(scores["score"], expected, atol=1e-12)


@pytest.mark.parametrize("method", list(RSATOOLBOX_NAMES))
def test_noise_ceilings_equal_rsatoolbox(method):
    rsatoolbox = pytest.importorskip("rsatoolbox")
    from rsatoolbox.inference import boot_noise_ceiling

    rng = np.random.default_rng(7)
    target = subject_frame(patterns(rng), rng, subjects=5, order=STIMULI[::-1])
    ceiling = pfa.noise_ceiling(target, method=method)
    vectors = np.stack([aligned(m, list(k))[UPPER]
                        for m, k in zip(target["matrix"], target["entry_keys"])])
    with pytest.warns(UserWarning) if method == "kendall_tau_a" else _no_warning():
        lower, upper = boot_noise_ceiling(rsatoolbox.rdm.RDMs(vectors),
                                          method=RSATOOLBOX_NAMES[method])
    assert ceiling[["layer", "subjects", "entries"]].values.tolist() == [["IT", 5, 7]]
    assert ceiling["noise_ceiling_lower"][0] == pytest.approx(lower, abs=1e-12)
    assert ceiling["noise_ceiling_upper"][0] == pytest.approx(upper, abs=1e-12)
    scores = pfa.compare_to_targets(model_frame(rng), target, method=method)
    assert scores["noise_ceiling_lower"].tolist() == pytest.approx([lower] * 2, abs=1e-12)
    assert scores["noise_ceiling_upper"].tolist() == pytest.approx([upper] * 2, abs=1e-12)


class _no_warning:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_a_target_made_from_the_model_beats_permutations_and_an_unrelated_one_does_not():
    rng = np.random.default_rng(8)
    truth = patterns(rng, size=50)
    model = pfa.rdms_from_patterns([({"model": "net", "layer": "fc1"}, truth, ("stimulus",))])
    related = subject_frame(truth, rng, subjects=3, noise=0.5)
    scores = pfa.compare_to_targets(model, related, permutations=500)
    assert scores["p_value"][0] < 0.01
    p_values = []
    for seed in range(12):
        unrelated = subject_frame(patterns(np.random.default_rng(100 + seed)), rng, subjects=3)
        p_values.append(pfa.compare_to_targets(model, unrelated, permutations=200,
                                               random_state=seed)["p_value"][0])
    assert 0.2 < np.mean(p_values) < 0.8
    assert np.mean(np.array(p_values) < 0.05) < 0.3


def test_bootstrap_intervals_hold_the_estimate_are_seeded_and_do_not_depend_on_other_rows():
    rng = np.random.default_rng(9)
    truth = patterns(rng)
    target = pd.concat([subject_frame(truth, rng, region="IT"),
                        subject_frame(patterns(rng), rng, region="V1")], ignore_index=True)
    model = model_frame(rng)
    first = pfa.compare_to_targets(model, target, bootstrap=200, random_state=3)
    assert (first["score_ci_low"] <= first["score"]).all()
    assert (first["score"] <= first["score_ci_high"]).all()
    assert (first["score_se"] > 0).all()
    again = pfa.compare_to_targets(model, target, bootstrap=200, random_state=3)
    pd.testing.assert_frame_equal(first, again)
    other = pfa.compare_to_targets(model, target, bootstrap=200, random_state=4)
    assert not np.allclose(first["score_se"], other["score_se"])
    alone = pfa.compare_to_targets(model.iloc[1:], target[target["layer"] == "V1"],
                                   bootstrap=200, random_state=3)
    expected = first[(first["layer"] == "fc1") & (first["target_layer"] == "V1")]
    np.testing.assert_array_equal(alone["score_se"], expected["score_se"])


@pytest.mark.parametrize("over", ["conditions", "subjects", "both"])
def test_bootstrap_resamples_equal_a_direct_computation(over):
    """Each resample's score, recomputed with numpy from the same draws: pairs of
    draws of one condition are left out, subjects weigh as often as drawn."""
    rng = np.random.default_rng(10)
    model = model_frame(rng)
    target = subject_frame(patterns(rng), rng, subjects=3)
    options = _evaluation.Options("pearson")
    evaluation = _evaluation.evaluations(model, target, "subject", "error", 0,
                                         torch.device("cpu"))[0]
    samples = scores_module._bootstrap(evaluation, options, 6, over)
    draws = np.random.default_rng((evaluation.seed, 0))
    n, subjects = len(STIMULI), 3
    conditions = draws.integers(0, n, size=(6, n)) if over != "subjects" else None
    picked = draws.integers(0, subjects, size=(6, subjects)) if over != "conditions" else None
    for b in range(6):
        index = np.arange(n) if conditions is None else conditions[b]
        chosen = np.arange(subjects) if picked is None else picked[b]
        first, second = np.triu_indices(n, 1)
        keep = index[first] != index[second]
        rows, cols = index[first][keep], index[second][keep]
        for m, matrix in enumerate(model["matrix"]):
            per_subject = [scipy.stats.pearsonr(matrix[rows, cols],
                                                target["matrix"][s][rows, cols])[0]
                           for s in chosen]
            assert samples[b, m] == pytest.approx(np.mean(per_subject), abs=1e-12)


def test_model_differences_agree_with_scores_and_statsmodels():
    rng = np.random.default_rng(11)
    stimuli = tuple(f"s{k}" for k in range(20))
    truth = patterns(rng, stimuli)
    noisy = {key: value + 0.3 * rng.normal(size=30) for key, value in truth.items()}
    model = pfa.rdms_from_patterns(
        [({"model": "net", "layer": "good"}, noisy, ("stimulus",))]
        + [({"model": "net", "layer": bad}, patterns(rng, stimuli), ("stimulus",))
           for bad in ("bad1", "bad2")])
    target = subject_frame(truth, rng, subjects=4, noise=0.5, order=stimuli)
    pairs = pfa.compare_models(model, target, bootstrap=300, correction="holm")
    scores = pfa.compare_to_targets(model, target).set_index("layer")["score"]
    assert pairs[["layer_a", "layer_b"]].values.tolist() == [
        ["good", "bad1"], ["good", "bad2"], ["bad1", "bad2"]]
    expected = [scores[a] - scores[b] for a, b in pairs[["layer_a", "layer_b"]].values]
    np.testing.assert_allclose(pairs["difference"], expected, atol=1e-12)
    np.testing.assert_allclose(pairs["p_corrected"],
                               multipletests(pairs["p_value"], method="holm")[1])
    assert pairs["significant"].tolist()[:2] == [True, True]
    assert pairs["p_value"][2] > 0.05
    assert (pairs["difference_ci_low"] <= pairs["difference"]).all()


def test_intersected_entries_are_recorded():
    rng = np.random.default_rng(12)
    model = model_frame(rng)
    target = subject_frame(patterns(rng, STIMULI + ("owl",)), rng, subjects=2,
                           order=STIMULI[1:] + ("owl",))
    with pytest.raises(pfa.InvalidInputError, match=r"lacks \[\('cat',\)\].*\[\('owl',\)\]"):
        pfa.compare_to_targets(model, target)
    scores = pfa.compare_to_targets(model, target, on_missing="intersect", method="pearson")
    assert scores["entries"].tolist() == [6, 6]
    assert scores["dropped_entries"][0] == (("cat",),)


def test_bad_input_is_named():
    rng = np.random.default_rng(13)
    model = model_frame(rng)
    target = subject_frame(patterns(rng), rng, subjects=2)
    with pytest.raises(pfa.InvalidInputError, match=r"one of \('pearson', 'spearman'.*'tau'"):
        pfa.compare_to_targets(model, target, method="tau")
    with pytest.raises(pfa.InvalidInputError, match=r"at least 2 subjects.*has 1"):
        pfa.noise_ceiling(target.iloc[:1])
    broken = target.copy()
    matrix = broken["matrix"][1].copy()
    matrix[0, 2] = matrix[2, 0] = np.nan
    broken.at[1, "matrix"] = matrix
    with pytest.raises(pfa.InvalidInputError, match=r"row 1 has 1 undefined \(NaN\).*'cat'"):
        pfa.compare_to_targets(model, broken)
    lopsided = target.copy()
    lopsided.at[0, "matrix"] = lopsided["matrix"][0] + np.triu(np.ones((7, 7)), 1)
    with pytest.raises(pfa.InvalidInputError, match=r"row 0 must hold a symmetric matrix"):
        pfa.compare_to_targets(model, lopsided)
    lopsided.at[0, "matrix"] = np.zeros((6, 6))
    with pytest.raises(pfa.InvalidInputError, match=r"row 0 must hold a 7 x 7 matrix"):
        pfa.compare_to_targets(model, lopsided)
    with pytest.raises(pfa.InvalidInputError, match=r"'sigma_k' parameter.*'corr_cov'"):
        pfa.compare_to_targets(model, target, sigma_k=np.ones(7))
    with pytest.raises(pfa.InvalidInputError, match=r"'sigma_k' parameter.*7 variances"):
        pfa.compare_to_targets(model, target, method="corr_cov", sigma_k=np.ones(3))
    with pytest.raises(pfa.InvalidInputError, match=r"'bootstrap_over'.*no subject column"):
        pfa.compare_to_targets(model, target.drop(columns="subject"), bootstrap=5,
                               bootstrap_over="subjects")
    with pytest.raises(pfa.InvalidInputError, match=r"'subject_column' parameter"):
        pfa.compare_to_targets(model, target, subject_column="participant")
    with pytest.raises(pfa.InvalidInputError, match=r"'correction' parameter of compare_models"):
        pfa.compare_models(model, target, correction="fdr")
    with pytest.raises(pfa.InvalidInputError, match=r"'confidence' parameter"):
        pfa.compare_to_targets(model, target, bootstrap=5, confidence=95)


def test_a_model_rdm_with_undefined_cells_scores_nan():
    rng = np.random.default_rng(14)
    model = model_frame(rng)
    matrix = model["matrix"][0].copy()
    matrix[1, 3] = matrix[3, 1] = np.nan
    model.at[0, "matrix"] = matrix
    scores = pfa.compare_to_targets(model, subject_frame(patterns(rng), rng), method="pearson")
    assert np.isnan(scores["score"][0]) and np.isfinite(scores["score"][1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_scores_on_cuda_equal_cpu():
    rng = np.random.default_rng(15)
    model = model_frame(rng)
    target = subject_frame(patterns(rng), rng)
    for method in RSATOOLBOX_NAMES:
        on_cpu = pfa.compare_to_targets(model, target, method=method, bootstrap=50)
        on_gpu = pfa.compare_to_targets(model, target, method=method, bootstrap=50,
                                        device="cuda")
        pd.testing.assert_frame_equal(on_cpu, on_gpu, atol=1e-10, check_exact=False)


@pytest.mark.parametrize("method", ["pearson", "spearman", "cosine", "corr_cov", "cosine_cov"])
def test_closed_form_resamples_equal_gathered_resamples(method, monkeypatch):
    """Bootstrap resamples scored from pair weights, and permutations from vectors
    normalised once, equal scoring each resample's own RDM vectors (ties included)."""
    rng = np.random.default_rng(16)
    model = model_frame(rng, layers=("conv1", "fc1", "fc2"))
    model["matrix"] = [np.round(m, 1) for m in model["matrix"]]
    target = subject_frame(patterns(rng), rng, subjects=3)
    target["matrix"] = [np.round(m, 1) for m in target["matrix"]]
    options = dict(method=method, bootstrap=40, permutations=40, random_state=2)
    closed_form = pfa.compare_to_targets(model, target, **options)
    monkeypatch.setattr(_rdm_scores, "FAST_METHODS", ())
    monkeypatch.setattr(_rdm_scores, "PERMUTED_METHODS", ())
    gathered = pfa.compare_to_targets(model, target, **options)
    assert np.isfinite(closed_form.filter(like="score")).all().all()
    assert closed_form["p_value"].nunique() > 1
    pd.testing.assert_frame_equal(closed_form, gathered, check_exact=False, atol=1e-12)


def test_the_layer_profile_draws_lines_bands_ceiling_and_marks():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(17)
    truth = patterns(rng)
    target = subject_frame(truth, rng, subjects=3, noise=0.5)
    noisy = [{k: v + scale * rng.normal(size=30) for k, v in truth.items()}
             for scale in (0.2, 3.0, 30.0)]
    model = pfa.rdms_from_patterns([({"model": name, "layer": layer}, patterns_, ("stimulus",))
                                    for name in ("a", "b")
                                    for layer, patterns_ in zip(("conv1", "conv2", "fc"), noisy)])
    scores = pfa.compare_to_targets(model, target, method="pearson", bootstrap=50,
                                    permutations=50)
    ax = pfa.plot_score_profile(scores)
    lines = [line for line in ax.get_lines() if line.get_marker() == "o"]
    assert [line.get_label() for line in lines] == ["a", "b"]
    np.testing.assert_allclose(lines[0].get_ydata(), scores["score"][:3])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["conv1", "conv2", "fc"]
    marks = [line for line in ax.get_lines() if line.get_marker() == "*"]
    significant = scores[scores["p_value"] < 0.05]
    assert sum(len(m.get_xdata()) for m in marks) == len(significant) > 0
    ceiling = [p for p in ax.patches if p.get_label() == "noise ceiling"]
    assert len(ceiling) == 1
    assert ceiling[0].get_y() == pytest.approx(scores["noise_ceiling_lower"][0])
    assert len(ax.collections) == 2
    plt.close("all")
    with pytest.raises(pfa.InvalidInputError, match=r"one row per 'layer_num'.*'model'"):
        pfa.plot_score_profile(scores, hue=None)


def test_time_resolved_targets_plot_score_against_time():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(18)
    truth = patterns(rng)
    target = pfa.rdms_from_patterns([
        ({"model": "meg", "layer": "sensors", "time": t},
         {k: v + (1 + t) * rng.normal(size=30) for k, v in truth.items()}, ("stimulus",))
        for t in range(4)])
    model = pfa.rdms_from_patterns([({"model": "net", "layer": "fc"}, truth, ("stimulus",))])
    scores = pfa.compare_to_targets(model, target, method="pearson")
    ax = pfa.plot_score_profile(scores)
    assert ax.get_xlabel() == "time"
    line = ax.get_lines()[0]
    np.testing.assert_array_equal(line.get_xdata(), [0, 1, 2, 3])
    assert line.get_ydata()[0] > line.get_ydata()[-1]
    plt.close("all")
