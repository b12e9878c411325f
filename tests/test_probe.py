"""minilm-probe: a logistic probe fitted to the model's own instructed completions, validated on held-out pairs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml
from scipy.optimize import minimize
from snakemake_runner import TEST_CONFIG, copy_study, executed_rules, printed, snakemake, write_config

from steerid.pipeline.results import read_generations, read_scores
from steerid.scoring import auroc, auroc_interval, get_scorer, scorer_record, validate_scorer
from steerid.scoring.probe import L2, fit_logistic, fit_probe, split_pairs

MODEL, LAYER = "smollm2-135m", 15


def penalised_loss(theta: np.ndarray, x: np.ndarray, y: np.ndarray, l2: float) -> float:
    z = x @ theta[:-1] + theta[-1]
    return float(np.sum(np.logaddexp(0.0, z) - y * z) + 0.5 * l2 * theta[:-1] @ theta[:-1])


@pytest.mark.parametrize("separable", [False, True], ids=["overlapping", "separable"])
def test_the_fit_is_the_penalised_maximum_likelihood_scipy_finds(separable):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((60, 12))
    y = (x[:, 0] + (0 if separable else rng.standard_normal(60)) > 0).astype(float)
    weights, bias = fit_logistic(x, y, l2=L2)
    reference = minimize(penalised_loss, np.zeros(13), args=(x, y, L2), method="BFGS", options={"gtol": 1e-10}).x
    np.testing.assert_allclose(np.r_[weights, bias], reference, atol=1e-5)


def test_the_split_is_by_pair_disjoint_seeded_and_refuses_too_few_pairs():
    fit, held_out = split_pairs(32, seed=3)
    assert len(fit) == len(held_out) == 16 and not set(fit) & set(held_out)
    assert sorted([*fit, *held_out]) == list(range(32))
    assert split_pairs(32, seed=3)[0].tolist() == fit.tolist()
    assert split_pairs(32, seed=4)[0].tolist() != fit.tolist()
    with pytest.raises(ValueError, match="at least 4 contrast pairs"):
        split_pairs(3, seed=0)


def test_the_probe_learns_a_pole_from_texts_and_scores_unseen_ones_by_it():
    polite = [f"Could you please kindly help me with the {t}? Thank you so much." for t in ("garden", "report", "car")]
    rude = [f"Fix the {t} now. I don't care, just do it." for t in ("garden", "report", "car")]
    fit = fit_probe(polite, rude)
    assert fit["n_fit"] == 6 and len(fit["weights"]) == 384
    scorer = get_scorer("politeness", "minilm-probe", fit=fit)
    check = validate_scorer(
        scorer,
        ["Would you please pass the salt? Thanks a lot.", "I would be grateful if you could call me back."],
        ["Give me the salt.", "Call me back, and hurry up."],
        0.8,
    )
    assert check["auroc"] == 1.0 and check["valid"]


def test_a_probe_without_its_fit_is_refused_with_where_it_comes_from():
    assert scorer_record("minilm-probe").fitted
    with pytest.raises(ValueError, match="fitted by its validation job"):
        get_scorer("politeness", "minilm-probe")


def test_the_auroc_interval_covers_the_estimate_is_seeded_and_narrows_with_more_pairs():
    rng = np.random.default_rng(1)
    pos, neg = rng.normal(1.0, 1.0, 160), rng.normal(0.0, 1.0, 160)
    low, high = auroc_interval(pos[:40], neg[:40], 1000, seed=0)
    assert low < auroc(pos[:40], neg[:40]) < high
    assert auroc_interval(pos[:40], neg[:40], 1000, seed=0) == [low, high]
    wide_low, wide_high = auroc_interval(pos, neg, 1000, seed=0)
    assert (wide_high - wide_low) < 0.7 * (high - low)  # 4x the pairs: about half the width


@pytest.mark.workflow
def test_score_jobs_score_with_the_probe_their_validation_job_fitted(run, tmp_path):
    workdir = copy_study(run, tmp_path / "copy")
    base = yaml.safe_load(TEST_CONFIG.read_text())
    config = write_config(tmp_path, scoring={**base["scoring"], "sentiment": "minilm-probe"})
    target = f"results/{MODEL}/scores/e1/L{LAYER}/sentiment/in_distribution.h5"
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", target)
    assert result.returncode == 0, printed(result)[-3000:]
    assert sorted(executed_rules(result.stdout + result.stderr)) == ["score", "validate_scorer"]

    check = json.loads((workdir / f"results/{MODEL}/validation/sentiment.json").read_text())
    pairs = base["scoring"]["validation_texts"]
    assert sorted(check["fit_pairs"] + check["held_out_pairs"]) == list(range(pairs))
    assert check["n"] == 2 * len(check["held_out_pairs"]) and check["fit"]["n_fit"] == 2 * len(check["fit_pairs"])
    grids, attrs = read_scores(str(workdir / target))
    assert attrs["scorer"] == "minilm-probe"
    records = read_generations(
        str(workdir / f"results/{MODEL}/generations/e1/L{LAYER}/sentiment/in_distribution.jsonl")
    )
    expected = get_scorer("sentiment", "minilm-probe", fit=check["fit"]).score([r["completion"] for r in records])
    for record, value in zip(records, expected):
        assert grids[record["condition"]][record["prompt_index"], record["sample_index"]] == pytest.approx(value)
