"""How well model RDMs explain measured RDMs: scores, noise ceilings and inference.

One path answers "how well does each layer fit, with what uncertainty, and
which layers differ": :func:`compare_to_targets` scores every model RDM
against every target (averaged over subjects, with the noise ceiling, and on
request a bootstrap and a permutation test), :func:`compare_models` tests the
differences between model RDMs on the same target, and
:func:`noise_ceiling` gives the ceiling alone. Entries are matched by
``entry_keys``, never by position. Resamples are drawn in batches and scored
with one matrix product per batch; they are seeded by ``random_state`` and
by the target they resample, so filtering out other targets or models does
not change them.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pandas as pd
import torch

from . import _rdm_scores
from ._contract import check_rdm_frame
from ._evaluation import (Evaluation, Options, aligned_targets, condition_variances,
                          described_columns, evaluations, target_groups)
from ._rdm_scores import SCORE_METHODS
from ._validation import (check_choice, check_device, check_int, check_number,
                          check_random_state, fail, problem, public)

__all__ = ["SCORE_METHODS", "compare_to_targets", "noise_ceiling", "compare_models"]

_BOOTSTRAP_OVER = ("conditions", "subjects", "both")
_CORRECTIONS = ("fdr_bh", "bonferroni", "holm", None)
_NEEDED = ["matrix", "entry_keys"]


def _options(method: str, sigma_k: Any, device: Any) -> Options:
    check_choice(method, "method", SCORE_METHODS)
    if sigma_k is not None and method not in ("corr_cov", "cosine_cov"):
        raise fail("sigma_k", "None unless method is 'corr_cov' or 'cosine_cov'", sigma_k)
    device = torch.device("cpu") if device is None else check_device(device)
    return Options(method, sigma_k, device)


def _subject_column(target_df: pd.DataFrame, subject_column: str | None) -> str | None:
    """The column naming subjects: as given, or ``'subject'`` when the frame has one."""
    if subject_column is None:
        return "subject" if "subject" in target_df.columns else None
    if subject_column not in target_df.columns:
        raise fail("subject_column", f"a column of target_df {list(target_df.columns)}",
                   subject_column)
    return subject_column


def _bootstrap_over(over: str | None, subject_column: str | None) -> str:
    if over is None:
        return "both" if subject_column is not None else "conditions"
    check_choice(over, "bootstrap_over", _BOOTSTRAP_OVER)
    if over != "conditions" and subject_column is None:
        raise fail("bootstrap_over", "'conditions' when target_df has no subject column",
                   over)
    return over


def _fraction(value: Any, param: str) -> float:
    """A number strictly between 0 and 1."""
    return check_number(value, param, minimum=0, maximum=1, exclusive_minimum=True,
                        exclusive_maximum=True, what="e.g. 0.95")


def _subject_mean(batches: Any, weights: torch.Tensor | None = None) -> np.ndarray:
    """(B, M) means over subjects of (B, M, S) batches (weighted by how often each was drawn)."""
    means, start = [], 0
    for batch in batches:
        if weights is None:
            means.append(batch.mean(dim=2))
        else:
            these = weights[start: start + len(batch)][:, None, :]
            means.append((batch * these).sum(dim=2) / these.sum(dim=2))
        start += len(batch)
    return torch.cat(means).cpu().numpy()


def _bootstrap(evaluation: Evaluation, options: Options, count: int, over: str) -> np.ndarray:
    """(count, M) mean scores over resampled conditions and/or subjects."""
    rng = np.random.default_rng((evaluation.seed, 0))
    n, subjects = len(evaluation.entries), evaluation.subjects
    draws = torch.arange(n, device=options.device).expand(count, n)
    weights = None
    if over in ("conditions", "both"):
        draws = torch.as_tensor(rng.integers(0, n, size=(count, n)), device=options.device)
    if over in ("subjects", "both"):
        picked = rng.integers(0, subjects, size=(count, subjects))
        counts = (picked[:, :, None] == np.arange(subjects)).sum(axis=1)
        weights = torch.as_tensor(counts, dtype=torch.float64, device=options.device)
    return _subject_mean(evaluation.resampled(options, draws), weights)


def _null(evaluation: Evaluation, options: Options, count: int) -> np.ndarray:
    """(count, M) mean scores with the targets' condition labels permuted."""
    rng = np.random.default_rng((evaluation.seed, 1))
    n = len(evaluation.entries)
    draws = rng.permuted(np.tile(np.arange(n), (count, 1)), axis=1)
    return _subject_mean(evaluation.permuted(options, torch.as_tensor(draws,
                                                                     device=options.device)))


def _ceiling(target_matrices: torch.Tensor, options: Options, entries: list) -> tuple:
    """Nili et al.'s (2014) lower and upper bounds: each subject against the pooled
    RDM of the others, and of all subjects."""
    subjects, n = target_matrices.shape[0], target_matrices.shape[1]
    pairs = _rdm_scores.Pairs.of(n, options.device)
    identity = torch.arange(n, device=options.device)[None]
    vectors = _rdm_scores.gather(target_matrices, identity, pairs)
    numpy_vectors = vectors[0].cpu().numpy()
    others = [_rdm_scores.pooled(np.delete(numpy_vectors, s, axis=0), options.method)
              for s in range(subjects)]
    pooled = np.stack(others + [_rdm_scores.pooled(numpy_vectors, options.method)])
    sigma = condition_variances(options.sigma_k, entries, options.device)
    valid = _rdm_scores.valid_all(pairs, vectors)
    scores = _rdm_scores.scores(torch.as_tensor(pooled, device=options.device)[None], vectors,
                                valid, options.method, identity, pairs, sigma)[0]
    lower = scores[torch.arange(subjects), torch.arange(subjects)].mean()
    return float(lower), float(scores[subjects].mean())


def _inference_columns(samples: np.ndarray, confidence: float, prefix: str = "") -> dict:
    """Bootstrap SE and percentile CI per column of ``samples`` (NaN resamples left out)."""
    tail = 100 * (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        low, high = np.nanpercentile(samples, [tail, 100 - tail], axis=0)
        return {f"{prefix}se": np.nanstd(samples, axis=0, ddof=1),
                f"{prefix}ci_low": low, f"{prefix}ci_high": high}


def _evaluation_rows(evaluation: Evaluation, options: Options, subject_column: str | None,
                     inference: dict) -> list[dict]:
    """One row per model RDM of ``evaluation``: its score and what was asked besides."""
    point = evaluation.point(options).cpu().numpy()
    subjects = evaluation.subjects
    columns: dict[str, Any] = {"score": point.mean(axis=1)}
    if subject_column is not None:
        columns["subjects"] = subjects
        columns["score_sem"] = (point.std(axis=1, ddof=1) / np.sqrt(subjects)
                                if subjects > 1 else np.nan)
        lower, upper = (_ceiling(evaluation.target_matrices, options, evaluation.entries)
                        if subjects > 1 else (np.nan, np.nan))
        columns.update(noise_ceiling_lower=lower, noise_ceiling_upper=upper)
    if inference["bootstrap"]:
        samples = _bootstrap(evaluation, options, inference["bootstrap"], inference["over"])
        columns.update(_inference_columns(samples, inference["confidence"], "score_"))
    if inference["permutations"]:
        null = _null(evaluation, options, inference["permutations"])
        exceeding = (null >= columns["score"][None]).sum(axis=0)
        columns["p_value"] = (1 + exceeding) / (1 + inference["permutations"])
    return _rows(evaluation, options, columns)


def _rows(evaluation: Evaluation, options: Options, columns: dict) -> list[dict]:
    model_columns = described_columns(evaluation.models)
    target = {f"target_{column}": value for column, value in evaluation.target.items()}
    shared = {**target, "method": options.method, "entries": len(evaluation.entries),
              "dropped_entries": evaluation.dropped}
    rows = []
    for position, (_, model) in enumerate(evaluation.models.iterrows()):
        values = {key: (value[position] if np.ndim(value) else value)
                  for key, value in columns.items()}
        rows.append({**{c: model[c] for c in model_columns}, **shared, **values})
    return rows


def _checked_frames(rdm_df: Any, target_df: Any, subject_column: Any, on_missing: str
                    ) -> str | None:
    check_rdm_frame(rdm_df, "rdm_df", _NEEDED)
    check_rdm_frame(target_df, "target_df", _NEEDED)
    if len(rdm_df) == 0 or len(target_df) == 0:
        raise problem("rdm_df and target_df must each hold at least one RDM; got "
                      f"{len(rdm_df)} and {len(target_df)} rows.")
    check_choice(on_missing, "on_missing", ("error", "intersect"))
    return _subject_column(target_df, subject_column)


@public
def compare_to_targets(
    rdm_df: pd.DataFrame,
    target_df: pd.DataFrame,
    method: str = "spearman",
    on_missing: str = "error",
    *,
    subject_column: str | None = None,
    sigma_k: Any = None,
    bootstrap: int = 0,
    bootstrap_over: str | None = None,
    permutations: int = 0,
    confidence: float = 0.95,
    random_state: int = 0,
    device: Any = None,
) -> pd.DataFrame:
    """Score every model RDM against every target: mean over subjects, noise ceiling, inference.

    Target rows that differ only in ``subject_column`` form one target (e.g.
    one region): each model RDM is compared with every subject's RDM and the
    scores are averaged, as in Nili et al. (2014). Entries are matched by
    ``entry_keys``, never by position: a target listing the conditions in
    another order gives the same score.

    Parameters
    ----------
    rdm_df : pandas.DataFrame
        Model RDMs (e.g. from :func:`~pytorch_feature_analysis.get_rdms`).
    target_df : pandas.DataFrame
        Target RDMs (e.g. from :func:`~pytorch_feature_analysis.rdms_from_patterns`).
        Their dissimilarities must be defined (no NaN) on the compared entries.
    method : {'pearson', 'spearman', 'kendall_tau_a', 'cosine', 'corr_cov', 'cosine_cov'}
        Pearson, Spearman (average ranks for ties), Kendall's tau-a, cosine,
        or Pearson and cosine after whitening by the covariance of RDM cells
        under independent noise (Diedrichsen et al., 2021; as rsatoolbox's
        ``compare``). Default 'spearman'.
    on_missing : {'error', 'intersect'}, default 'error'
        Entries of one side that the other lacks are an error naming them,
        or left out (``'intersect'``; ``entries`` and ``dropped_entries`` say
        what was compared).
    subject_column : str, optional
        The label column naming subjects; ``'subject'`` when target_df has
        such a column, else every target row is a target of its own.
    sigma_k : array_like or mapping, optional
        For the whitened methods: each condition's noise variance, as a 1-D
        array in the order of the compared entries or a mapping from entry
        key to variance (default: equal variances).
    bootstrap : int, default 0
        Number of bootstrap resamples (0: none). Adds ``score_se``,
        ``score_ci_low`` and ``score_ci_high`` (percentile interval).
        Resampled conditions keep their duplicates apart: a pair of draws of
        the same condition is left out, never compared with itself.
    bootstrap_over : {'conditions', 'subjects', 'both'}, optional
        What to resample: 'both' when there is a subject column, else
        'conditions'. Conditions generalise to new stimuli, subjects to new
        subjects.
    permutations : int, default 0
        Number of permutations of the targets' condition labels (0: none).
        Adds ``p_value``, one-sided, ``(1 + #null >= score) / (1 + permutations)``.
    confidence : float, default 0.95
        Coverage of the bootstrap interval.
    random_state : int, default 0
        Seeds the resamples (with the target's description, so each target's
        resamples stay the same whatever else is in the frames).
    device : str or torch.device, optional
        Where to compute ('cpu' when omitted).

    Returns
    -------
    pandas.DataFrame
        One row per model RDM x target: the model RDM's describing columns
        (``model``, ``layer``, ``dissim_metric``, labels, ...), the target's
        with a ``target_`` prefix (without the subject column), ``method``,
        ``entries`` (how many were compared), ``dropped_entries`` (keys left
        out by ``'intersect'``) and ``score`` (the mean over subjects). With a
        subject column also ``subjects``, ``score_sem`` (standard error of
        the mean over subjects) and ``noise_ceiling_lower`` /
        ``noise_ceiling_upper`` (NaN with one subject); with ``bootstrap``
        ``score_se``, ``score_ci_low``, ``score_ci_high``; with
        ``permutations`` ``p_value``.

    See Also
    --------
    compare_models : which model RDMs differ on the same target.
    noise_ceiling : the ceiling alone.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> truth = {(s,): rng.normal(size=20) for s in 'abcdef'}
    >>> sets = [({'model': 'fmri', 'layer': 'IT', 'subject': k},
    ...          {key: p + rng.normal(size=20) for key, p in truth.items()}, ('stimulus',))
    ...         for k in range(3)]
    >>> target = pfa.rdms_from_patterns(sets)
    >>> model = pfa.rdms_from_patterns([({'model': 'net', 'layer': 'fc1'}, truth,
    ...                                   ('stimulus',))])
    >>> scores = compare_to_targets(model, target, bootstrap=100)
    >>> scores[['layer', 'target_layer', 'subjects']].values.tolist()
    [['fc1', 'IT', 3]]
    >>> bool(scores.score_ci_low[0] <= scores.score[0] <= scores.score_ci_high[0])
    True
    """
    subject_column = _checked_frames(rdm_df, target_df, subject_column, on_missing)
    options = _options(method, sigma_k, device)
    inference = {
        "bootstrap": check_int(bootstrap, "bootstrap", minimum=0),
        "over": _bootstrap_over(bootstrap_over, subject_column),
        "permutations": check_int(permutations, "permutations", minimum=0),
        "confidence": _fraction(confidence, "confidence"),
    }
    rows = []
    for evaluation in evaluations(rdm_df, target_df, subject_column, on_missing,
                                  check_random_state(random_state), options.device):
        rows.extend(_evaluation_rows(evaluation, options, subject_column, inference))
    return pd.DataFrame(rows)


@public
def noise_ceiling(
    target_df: pd.DataFrame,
    method: str = "spearman",
    subject_column: str = "subject",
    *,
    sigma_k: Any = None,
    device: Any = None,
) -> pd.DataFrame:
    """The lower and upper bounds of the noise ceiling of each target (Nili et al., 2014).

    The upper bound averages, over subjects, the score of each subject's RDM
    against the RDM pooled over all subjects; the lower bound against the RDM
    pooled over the other subjects. Pooling suits the method, as in
    rsatoolbox's ``boot_noise_ceiling``: cosine methods average RDMs scaled
    to unit root mean square, correlation methods average z-scored RDMs,
    rank methods average ranks. No model can be expected to score above the
    upper bound; one that reaches the lower bound explains the data as well
    as the other subjects do.

    Parameters
    ----------
    target_df : pandas.DataFrame
        Target RDMs, several subjects per target.
    method : str, default 'spearman'
        As :func:`compare_to_targets`.
    subject_column : str, default 'subject'
        The label column naming subjects; rows that differ only in it form
        one target.
    sigma_k : array_like or mapping, optional
        As :func:`compare_to_targets` (whitened methods only).
    device : str or torch.device, optional
        Where to compute ('cpu' when omitted).

    Returns
    -------
    pandas.DataFrame
        One row per target: its describing columns (without the subject
        column), ``method``, ``subjects``, ``entries``,
        ``noise_ceiling_lower`` and ``noise_ceiling_upper``.

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> truth = {(s,): rng.normal(size=20) for s in 'abcdef'}
    >>> sets = [({'model': 'fmri', 'layer': 'IT', 'subject': k},
    ...          {key: p + rng.normal(size=20) for key, p in truth.items()}, ('stimulus',))
    ...         for k in range(4)]
    >>> ceiling = noise_ceiling(pfa.rdms_from_patterns(sets), method='pearson')
    >>> bool(ceiling.noise_ceiling_lower[0] < ceiling.noise_ceiling_upper[0])
    True
    """
    check_rdm_frame(target_df, "target_df", _NEEDED)
    if not isinstance(subject_column, str) or subject_column not in target_df.columns:
        raise fail("subject_column", f"a column of target_df {list(target_df.columns)}",
                   subject_column)
    options = _options(method, sigma_k, device)
    rows = []
    for target, group in target_groups(target_df, subject_column):
        if len(group) < 2:
            raise problem(f"a noise ceiling needs at least 2 subjects; the target {target} "
                          f"has {len(group)} (in column {subject_column!r}).")
        keys = [tuple(key) for key in group["entry_keys"].iloc[0]]
        entries, _, matrices = aligned_targets(group, keys, "error")
        lower, upper = _ceiling(torch.as_tensor(matrices, device=options.device), options,
                                entries)
        rows.append({**target, "method": method, "subjects": len(group), "entries": len(keys),
                     "noise_ceiling_lower": lower, "noise_ceiling_upper": upper})
    return pd.DataFrame(rows)


def _two_sided_p(differences: np.ndarray) -> np.ndarray:
    """Per column, twice the bootstrap share on the far side of zero (at least 1/(B+1))."""
    count = np.isfinite(differences).sum(axis=0)
    below = (differences <= 0).sum(axis=0) + 1
    above = (differences >= 0).sum(axis=0) + 1
    return np.minimum(1.0, 2 * np.minimum(below, above) / (count + 1))


def _pair_rows(evaluation: Evaluation, options: Options, inference: dict) -> list[dict]:
    """Every pair of model RDMs of ``evaluation``: difference, SE, CI, p values."""
    from statsmodels.stats.multitest import multipletests

    score = evaluation.point(options).mean(dim=1).cpu().numpy()
    samples = _bootstrap(evaluation, options, inference["bootstrap"], inference["over"])
    first, second = np.triu_indices(len(score), 1)
    if not len(first):
        return []
    differences = samples[:, first] - samples[:, second]
    p_value = _two_sided_p(differences)
    columns = {"difference": score[first] - score[second],
               **_inference_columns(differences, inference["confidence"], "difference_"),
               "p_value": p_value}
    if inference["correction"] is None:
        columns["p_corrected"] = p_value
    else:
        columns["p_corrected"] = multipletests(p_value, method=inference["correction"])[1]
    columns["significant"] = columns["p_corrected"] < inference["alpha"]
    described = described_columns(evaluation.models)
    models = evaluation.models[described].reset_index(drop=True)
    pairs = pd.concat([models.iloc[first].add_suffix("_a").reset_index(drop=True),
                       models.iloc[second].add_suffix("_b").reset_index(drop=True)], axis=1)
    for column, value in {**{f"target_{c}": v for c, v in evaluation.target.items()},
                          "method": options.method, "entries": len(evaluation.entries),
                          **columns}.items():
        pairs[column] = [value] * len(pairs) if not np.ndim(value) else value
    return pairs.to_dict("records")


@public
def compare_models(
    rdm_df: pd.DataFrame,
    target_df: pd.DataFrame,
    method: str = "spearman",
    on_missing: str = "error",
    *,
    subject_column: str | None = None,
    sigma_k: Any = None,
    bootstrap: int = 1000,
    bootstrap_over: str | None = None,
    correction: str | None = "fdr_bh",
    alpha: float = 0.05,
    confidence: float = 0.95,
    random_state: int = 0,
    device: Any = None,
) -> pd.DataFrame:
    """Test every pair of model RDMs on the same target: which fits better?

    The difference of two model RDMs' scores (``score_a - score_b``, as in
    :func:`compare_to_targets`) is resampled with the same bootstrap
    resamples as :func:`compare_to_targets` draws for that target, so the
    two calls agree. The p value is two-sided: twice the share of resampled
    differences on the far side of zero. P values are corrected for the
    number of pairs tested on each target.

    Parameters
    ----------
    rdm_df, target_df, method, on_missing, subject_column, sigma_k, random_state, device
        As :func:`compare_to_targets`.
    bootstrap : int, default 1000
        Number of bootstrap resamples (at least 2).
    bootstrap_over : {'conditions', 'subjects', 'both'}, optional
        As :func:`compare_to_targets` ('both' with a subject column, else
        'conditions').
    correction : {'fdr_bh', 'bonferroni', 'holm', None}, default 'fdr_bh'
        Multiple-comparison correction over the pairs on one target
        (``statsmodels.stats.multitest.multipletests``); None for none.
    alpha : float, default 0.05
        Level of ``significant``.
    confidence : float, default 0.95
        Coverage of the bootstrap interval of the difference.

    Returns
    -------
    pandas.DataFrame
        One row per pair of model RDMs x target: the first model RDM's
        describing columns with an ``_a`` suffix, the second's with ``_b``,
        the target's with a ``target_`` prefix, ``method``, ``entries``,
        ``difference`` (``score_a - score_b``), ``difference_se``,
        ``difference_ci_low``, ``difference_ci_high``, ``p_value``,
        ``p_corrected`` and ``significant`` (``p_corrected < alpha``).

    Examples
    --------
    >>> import pytorch_feature_analysis as pfa
    >>> rng = np.random.default_rng(0)
    >>> truth = {(s,): rng.normal(size=30) for s in 'abcdefgh'}
    >>> target = pfa.rdms_from_patterns([({'model': 'fmri', 'layer': 'IT'}, truth, ('s',))])
    >>> good = {key: p + 0.1 * rng.normal(size=30) for key, p in truth.items()}
    >>> bad = {key: rng.normal(size=30) for key in truth}
    >>> models = pfa.rdms_from_patterns([({'model': 'net', 'layer': 'good'}, good, ('s',)),
    ...                                  ({'model': 'net', 'layer': 'bad'}, bad, ('s',))])
    >>> pairs = compare_models(models, target, bootstrap=200)
    >>> pairs[['layer_a', 'layer_b', 'significant']].values.tolist()
    [['good', 'bad', True]]
    """
    subject_column = _checked_frames(rdm_df, target_df, subject_column, on_missing)
    options = _options(method, sigma_k, device)
    check_choice(correction, "correction", _CORRECTIONS)
    inference = {
        "bootstrap": check_int(bootstrap, "bootstrap", minimum=2),
        "over": _bootstrap_over(bootstrap_over, subject_column),
        "confidence": _fraction(confidence, "confidence"),
        "correction": correction,
        "alpha": _fraction(alpha, "alpha"),
    }
    rows = []
    for evaluation in evaluations(rdm_df, target_df, subject_column, on_missing,
                                  check_random_state(random_state), options.device):
        rows.extend(_pair_rows(evaluation, options, inference))
    return pd.DataFrame(rows)
