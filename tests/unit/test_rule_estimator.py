"""The rule set's scikit-learn face agrees with the domain rules on every exact value."""

from datetime import UTC, datetime
from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from app.domain.classifiers.registry import load_registry
from app.domain.il6 import measure
from app.domain.specimen import Specimen, SpecimenType
from app.ml.rule_estimator import RiskCutoffEstimator
from tests.unit.factories import ELECSYS_IL6

VERSION = load_registry().resolve("il6-enrichment@1.0.0")
SERUM = Specimen(SpecimenType.SERUM, datetime(2026, 11, 20, 9, 30, tzinfo=UTC))


def domain_group(value: float) -> str:
    measurement = measure(Decimal(repr(value)), "pg/mL", None, ELECSYS_IL6)
    group = VERSION.classifier.decide(measurement, SERUM).risk.group
    assert group is not None
    return group.value


def fitted() -> RiskCutoffEstimator:
    return RiskCutoffEstimator.from_definition(VERSION.definition).fit(np.array([[0.0]]))


def test_cutoff_comes_from_the_version() -> None:
    assert RiskCutoffEstimator.from_definition(VERSION.definition).cutoff_pg_per_ml == 17.85


@pytest.mark.parametrize("value", [0.0, 1.5, 17.849999999999998, 17.85, 17.850000000000005, 5000.0])
def test_edges_agree_with_the_domain(value: float) -> None:
    assert fitted().predict(np.array([[value]]))[0] == domain_group(value)


@given(st.floats(min_value=0, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_every_exact_value_agrees_with_the_domain(value: float) -> None:
    assert fitted().predict(np.array([[value]]))[0] == domain_group(value)


def test_probabilities_are_one_hot_over_low_and_high() -> None:
    proba = fitted().predict_proba(np.array([[1.0], [17.85]]))

    assert proba.tolist() == [[1.0, 0.0], [0.0, 1.0]]
    assert fitted().classes_.tolist() == ["low", "high"]


def test_it_clones_and_composes_like_any_estimator() -> None:
    pipeline = make_pipeline(
        FunctionTransformer(lambda ng_per_ml: ng_per_ml * 1000),  # ng/mL in, pg/mL to the rule
        clone(RiskCutoffEstimator.from_definition(VERSION.definition)),
    )
    pipeline.fit(np.array([[0.0]]))

    assert pipeline.predict(np.array([[0.01784], [0.01785]])).tolist() == ["low", "high"]


def test_it_refuses_to_guess_a_cutoff_or_predict_unfitted() -> None:
    with pytest.raises(ValueError, match="cutoff"):
        RiskCutoffEstimator().fit(np.array([[1.0]]))
    with pytest.raises(NotFittedError):
        RiskCutoffEstimator(cutoff_pg_per_ml=17.85).predict(np.array([[1.0]]))
    with pytest.raises(ValueError, match="one feature"):
        RiskCutoffEstimator(cutoff_pg_per_ml=17.85).fit(np.array([[1.0, 2.0]]))
    with pytest.raises(ValueError, match="negative"):
        fitted().predict(np.array([[-1.0]]))
