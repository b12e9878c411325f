"""Condition sets of the generation experiments: names, norms and geometry of every addition."""

from __future__ import annotations

import re

import numpy as np
import pytest

from steerid import conditions, perturb

D = 32


@pytest.fixture
def v():
    return np.random.default_rng(0).standard_normal(D) * 3.0


@pytest.fixture
def deltas(v):
    return {
        "orthogonal": perturb.orthogonal_draws(v, 2, 1),
        "null": perturb.orthogonal_draws(v, 1, 2),
        "top_gain": perturb.orthogonal_draws(v, 1, 3),
    }


def test_e1_set_has_baseline_signs_perturbations_alone_and_directions(v, deltas):
    direction = np.random.default_rng(5).standard_normal(D)
    named = conditions.e1_conditions(v, deltas, 1, {"pca": direction}, alpha=2.0)
    assert set(named) == {
        "baseline",
        "v",
        "-v",
        "v+orthogonal-0",
        "v+orthogonal-1",
        "v+null-0",
        "v+top_gain-0",
        "orthogonal-0",
        "pca",
    }
    assert not named["baseline"].any()
    np.testing.assert_allclose(named["-v"], -named["v"])
    np.testing.assert_allclose(named["v+null-0"], 2.0 * (v + deltas["null"][0]))
    np.testing.assert_allclose(named["orthogonal-0"], 2.0 * deltas["orthogonal"][0])
    # Other directions are applied at ‖v‖: only their direction differs.
    assert np.linalg.norm(named["pca"]) == pytest.approx(2.0 * np.linalg.norm(v))
    assert conditions.members(list(named), "orthogonal") == ["v+orthogonal-0", "v+orthogonal-1"]


def test_e2_strengths_are_in_units_of_the_residual_norm(v, deltas):
    named = conditions.e2_conditions(v, deltas, [0.1, 0.5], residual_norm=40.0)
    assert set(named) == {
        "baseline",
        "v@0.1",
        "v+orthogonal@0.1",
        "v+null@0.1",
        "v@0.5",
        "v+orthogonal@0.5",
        "v+null@0.5",
    }
    assert np.linalg.norm(named["v@0.5"]) == pytest.approx(0.5 * 40.0)
    scale = 0.1 * 40.0 / np.linalg.norm(v)
    np.testing.assert_allclose(named["v+orthogonal@0.1"], scale * (v + deltas["orthogonal"][0]))


def test_e2_strengths_in_units_of_v_are_the_papers_grid(v, deltas):
    named = conditions.e2_conditions(v, deltas, [0.5, 2.0], residual_norm=40.0, units="v_norm")
    np.testing.assert_allclose(named["v@2"], 2.0 * v)
    np.testing.assert_allclose(named["v+null@0.5"], 0.5 * (v + deltas["null"][0]))
    with pytest.raises(ValueError, match="alpha units 'furlongs' are not one of"):
        conditions.e2_conditions(v, deltas, [1.0], residual_norm=40.0, units="furlongs")


def test_e7_names_carry_source_end_and_k(v):
    spans = {conditions.Span("jacobian", "top", 8): perturb.orthogonal_draws(v, 1, 4)[0]}
    named = conditions.e7_conditions(v, spans, alpha=1.0)
    assert set(named) == {"baseline", "v", "span:jacobian-top-8"}


def test_zero_direction_cannot_be_rescaled():
    with pytest.raises(ValueError, match="zero direction"):
        conditions.at_norm(np.zeros(4), 1.0)


def test_other_trait_vector_is_orthogonalised_at_the_norm_of_v(v):
    u = np.random.default_rng(9).standard_normal(D) + 0.5 * v
    delta = perturb.orthogonalised(u, v)
    assert abs(delta @ v) < 1e-9 * np.linalg.norm(v) ** 2
    assert np.linalg.norm(delta) == pytest.approx(np.linalg.norm(v))
    assert delta @ u > 0  # it keeps the part of u that is not v
    with pytest.raises(ValueError, match="parallel"):
        perturb.orthogonalised(2.0 * v, v)


def test_every_name_a_condition_set_writes_parses_back_to_itself(v, deltas):
    spans = {conditions.Span("covariance", "bottom", 8): deltas["null"][0]}
    environments = {conditions.Condition(environment="topic_shift").name: deltas["null"][0]}
    names = [
        *conditions.e1_conditions(v, deltas, 1, {"pca": v, "probe": v, **environments}, alpha=1.0),
        *conditions.e2_conditions(v, deltas, [0.025, 0.4], residual_norm=10.0),
        *conditions.e7_conditions(v, spans, alpha=1.0),
        *[conditions.pooled(kind) for kind in conditions.PERTURBATION_TYPES],
    ]
    for name in names:
        assert conditions.Condition.parse(name).name == name
    assert conditions.Condition.parse("v+top_gain-3") == conditions.Condition("v", "top_gain", 3)
    assert conditions.Condition.parse("orthogonal-0").base is None
    assert conditions.Condition.parse("env:topic_shift").environment == "topic_shift"
    assert conditions.Condition.parse("span:jacobian-top-256").span == conditions.Span("jacobian", "top", 256)
    assert conditions.Condition.parse("v+null@0.4") == conditions.Condition(kind="null", alpha=0.4)


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("", "empty"),
        ("v+bogus-1", "perturbation kind 'bogus'"),
        ("w+null-0", "'w' is not one of"),
        ("v+", "did you mean 'v'"),
        ("v@0.10", "did you mean 'v@0.1'"),
    ],
)
def test_a_name_no_condition_has_is_refused_by_name(name, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        conditions.Condition.parse(name)


def test_perturbation_registry_names_its_controls_and_seed_streams():
    kinds = conditions.PERTURBATION_KINDS
    assert conditions.POSITIVE_CONTROLS == ("top_variance", "top_gain")
    offsets = [kind.draw.seed_offset for kind in kinds.values() if kind.draw]
    assert len(set(offsets)) == len(offsets) and max(offsets) < conditions.SPAN_SEED_OFFSET
