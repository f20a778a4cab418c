"""A fitted version, written and loaded through the registry: it decides as its model predicts, and any
tampering, foreign type or library mismatch keeps it from loading.

All cohorts are synthetic (tests/ml_factories.py); nothing fitted here is a clinical model.
"""

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sklearn
import skops.io
from hypothesis import given
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.model_selection import TunedThresholdClassifierCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, StandardScaler

from app.domain.classifiers.base import ClassifierDefinitionError, VersionStatus
from app.domain.classifiers.manifest import artifact_digest, parse_manifest
from app.domain.classifiers.registry import ClassifierRegistry, RegisteredVersion, load_registry
from app.domain.classifiers.rules import CUTOFF, RuleSetClassifier
from app.domain.eligibility import EligibilityStatus
from app.domain.errors import InvalidInput
from app.domain.il6 import measure
from app.domain.risk import RiskGroup
from app.domain.specimen import SpecimenType
from app.ml import artifact as artifacts
from app.ml import model_version
from app.ml.builders import BUILDERS
from app.ml.model_version import KIND, POSITIVE
from app.ml.training import TrainedVersion, fit_version, read_training_csv
from tests.ml_factories import registry_with, resign, synthetic_cohort
from tests.unit.factories import ELECSYS_IL6, copy_definitions, reported, specimen

BASE = load_registry().resolve(None).definition
NOW = datetime(2026, 12, 2, 5, 0, tzinfo=UTC)
NAME, VERSION = "il6-logistic", "0.1.0"


def _fit(data: bytes) -> TrainedVersion:
    cohort = read_training_csv(data, BASE)
    return fit_version(cohort, base=BASE, name=NAME, version=VERSION, created_by="t", now=NOW, repeats=2)


@pytest.fixture(scope="module")
def trained() -> TrainedVersion:
    return _fit(synthetic_cohort(13))


@pytest.fixture(scope="module")
def loaded(trained: TrainedVersion, tmp_path_factory: pytest.TempPathFactory) -> RegisteredVersion:
    registry = load_registry(registry_with(tmp_path_factory.mktemp("registry"), trained), BUILDERS)
    assert registry.rejected == ()
    entry = registry.get(NAME, VERSION)
    assert entry is not None
    return entry


@pytest.fixture(scope="module")
def estimator(trained: TrainedVersion) -> Any:
    return artifacts.loads(trained.artifact)


@pytest.fixture
def definitions(trained: TrainedVersion, tmp_path: Path) -> Path:
    return registry_with(tmp_path, trained)


def manifest_of(definitions: Path) -> dict[str, Any]:
    document = json.loads((definitions / NAME / VERSION / "manifest.json").read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def rejection(definitions: Path) -> str:
    """Load the registry and return why the fitted version was rejected (it must have been)."""
    registry = load_registry(definitions, BUILDERS)
    assert registry.get(NAME, VERSION) is None
    assert [(r.name, r.version) for r in registry.rejected] == [(NAME, VERSION)]
    return registry.rejected[0].reason


def replace_artifact(definitions: Path, data: bytes) -> dict[str, Any]:
    """Swap the version's artifact and re-sign its manifest, so only the builder's own checks remain."""
    (definitions / NAME / VERSION / "model.skops").write_bytes(data)
    manifest = manifest_of(definitions)
    manifest["artifact"]["sha256"] = artifact_digest(data)
    resign(definitions, manifest)
    return manifest


def _parameter(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    found = next(p for p in manifest["parameters"] if p["name"] == name)
    assert isinstance(found, dict)
    return found


# Loading and deciding ---------------------------------------------------------------------------------------


def test_the_fitted_draft_loads_beside_the_bundled_default(loaded: RegisteredVersion) -> None:
    assert loaded.status is VersionStatus.DRAFT
    assert isinstance(loaded.classifier, RuleSetClassifier)
    assert loaded.definition.kind == KIND
    assert str(loaded.classifier.cutoff_pg_per_ml) == loaded.definition.parameter(CUTOFF).value


def test_a_draft_is_not_served_even_when_pinned(trained: TrainedVersion, tmp_path: Path) -> None:
    registry: ClassifierRegistry = load_registry(registry_with(tmp_path, trained), BUILDERS)
    with pytest.raises(InvalidInput):
        registry.resolve(f"{NAME}@{VERSION}")
    assert registry.resolve(None).definition.ref == BASE.ref


def _agree(loaded: RegisteredVersion, estimator: Any, value: float) -> None:
    cutoff = float(loaded.classifier.definition.parameter(CUTOFF).value)
    if abs(value - cutoff) <= model_version.CUTOFF_BAND * cutoff:
        return  # float rounding at the cutoff itself: excluded by the spec's proof as well
    measurement = measure(Decimal(repr(value)), "pg/mL", None, ELECSYS_IL6)
    group = loaded.classifier.decide(measurement, specimen()).risk.group
    predicted = estimator.predict(np.array([[value]]))[0]
    assert (group is RiskGroup.HIGH) == (predicted == POSITIVE), value


def test_decisions_equal_the_models_predictions_on_a_grid(loaded: RegisteredVersion, estimator: Any) -> None:
    cutoff = float(loaded.classifier.definition.parameter(CUTOFF).value)
    values = [*np.logspace(-2, 5, 3001), cutoff * (1 - 1e-6), cutoff * (1 + 1e-6)]
    for value in values:
        _agree(loaded, estimator, float(value))


@given(st.floats(min_value=1e-3, max_value=1e6, allow_nan=False, allow_infinity=False))
def test_decisions_equal_the_models_predictions_on_any_exact_value(
    loaded: RegisteredVersion, estimator: Any, value: float
) -> None:
    _agree(loaded, estimator, value)


def test_censored_results_are_placed_as_by_the_rule_set(loaded: RegisteredVersion) -> None:
    cutoff = loaded.classifier.definition.parameter(CUTOFF).as_decimal()
    base = load_registry().resolve(None).classifier
    assert cutoff > Decimal("1.5"), "the synthetic cohort's cutoff lies above the limit of detection"
    cases = {
        "<1.5": RiskGroup.LOW,
        f"<{cutoff}": RiskGroup.LOW,
        f"<={cutoff}": None,
        f">={cutoff}": RiskGroup.HIGH,
        f">{cutoff * 2}": RiskGroup.HIGH,
        f"<{cutoff * 2}": None,
    }
    for text, group in cases.items():
        decision = loaded.classifier.decide(reported(text), specimen())
        assert decision.risk.group is group, text
        assert decision.eligibility == base.decide(reported(text), specimen()).eligibility, text
    assert (
        loaded.classifier.decide(reported("<1.5"), specimen()).eligibility.status
        is EligibilityStatus.ELIGIBLE
    )
    plasma = loaded.classifier.decide(reported(f">{cutoff * 2}"), specimen(SpecimenType.PLASMA))
    assert plasma.risk.group is None


def test_the_tuning_score_is_scikit_learns_balanced_accuracy() -> None:
    rng = np.random.default_rng(3)
    labels = np.array(["stable", "progressive"])
    for _ in range(20):
        truth, predicted = labels[rng.integers(0, 2, 15)], labels[rng.integers(0, 2, 15)]
        if len(set(truth)) < 2:
            continue
        expected = balanced_accuracy_score(truth, predicted)
        assert model_version.balanced_accuracy(truth, predicted, pos_label=POSITIVE) == pytest.approx(
            expected
        )


# Refusals -------------------------------------------------------------------------------------------------


def test_a_tampered_manifest_is_rejected_by_its_digest(definitions: Path) -> None:
    manifest = manifest_of(definitions)
    _parameter(manifest, CUTOFF)["value"] = "1000"
    path = definitions / NAME / VERSION / "manifest.json"
    path.write_text(json.dumps(manifest), encoding="utf-8")

    assert "digest mismatch" in rejection(definitions)


def test_tampered_artifact_bytes_are_rejected_by_their_checksum(definitions: Path) -> None:
    path = definitions / NAME / VERSION / "model.skops"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))

    assert "artifact checksum differs" in rejection(definitions)


@pytest.mark.parametrize("name", [CUTOFF, model_version.THRESHOLD, model_version.COEFFICIENT])
def test_a_re_signed_parameter_that_differs_from_the_model_is_rejected(definitions: Path, name: str) -> None:
    manifest = manifest_of(definitions)
    value = _parameter(manifest, name)
    value["value"] = repr(float(value["value"]) * (1 + 1e-12))
    resign(definitions, manifest)

    assert f"{name} differs from the fitted model's" in rejection(definitions)


def test_another_model_under_a_re_signed_manifest_is_rejected(definitions: Path) -> None:
    other = _fit(synthetic_cohort(16, seed=5))
    manifest = replace_artifact(definitions, other.artifact)

    assert "differs from the fitted model's" in rejection(definitions)
    assert manifest["artifact"]["sha256"] == artifact_digest(other.artifact)


def _tuned(steps: list[tuple[str, Any]]) -> Any:
    x = np.array([[v] for v in (1.0, 2.0, 3.0, 4.0, 50.0, 60.0, 70.0, 80.0)])
    y = np.array(["stable"] * 4 + ["progressive"] * 4)
    model = model_version.make_estimator(2, 0)
    return TunedThresholdClassifierCV(
        Pipeline(steps), scoring=model.scoring, response_method="predict_proba", cv=model.cv
    ).fit(x, y)


FOREIGN = [
    pytest.param(
        [
            ("log", FunctionTransformer(np.log)),
            ("extra", MinMaxScaler()),
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression()),
        ],
        "sklearn.preprocessing._data.MinMaxScaler",
        id="extra-estimator-skops-would-trust",
    ),
    pytest.param(
        [
            ("log", FunctionTransformer(np.exp)),
            ("scale", StandardScaler()),
            ("logistic", LogisticRegression()),
        ],
        "numpy.exp",
        id="other-function-skops-would-trust",
    ),
]


@pytest.mark.parametrize(("steps", "type_name"), FOREIGN)
def test_an_artifact_with_a_type_outside_the_list_is_refused_by_name(
    steps: list[tuple[str, Any]], type_name: str, definitions: Path
) -> None:
    data = skops.io.dumps(_tuned(steps))
    assert type_name not in skops.io.get_untrusted_types(data=data), "skops alone would load it"

    with pytest.raises(ClassifierDefinitionError, match=re.escape(f"outside the allowed list: {type_name}")):
        artifacts.loads(data)
    with pytest.raises(ClassifierDefinitionError, match=re.escape(type_name)):
        artifacts.dumps(_tuned(steps))
    replace_artifact(definitions, data)
    assert type_name in rejection(definitions)


def test_a_model_missing_a_fitted_attribute_is_rejected_not_crashing_the_load(
    definitions: Path, trained: TrainedVersion
) -> None:
    broken = artifacts.loads(trained.artifact)
    del broken._curve_scorer
    manifest = replace_artifact(definitions, artifacts.dumps(broken))
    manifest["artifact"]["trusted_types"] = list(artifacts.artifact_types(artifacts.dumps(broken)))
    resign(definitions, manifest)

    assert "the model cannot be inspected (AttributeError)" in rejection(definitions)


def test_an_artifact_that_is_not_a_skops_file_is_refused() -> None:
    with pytest.raises(ClassifierDefinitionError, match="not a readable skops file"):
        artifacts.loads(b"\x80\x04\x95 a pickle, perhaps")


def test_a_different_scikit_learn_version_is_refused_naming_both(definitions: Path) -> None:
    manifest = manifest_of(definitions)
    manifest["software"]["scikit-learn"] = "1.0.0"
    resign(definitions, manifest)

    reason = rejection(definitions)
    assert f"trained with scikit-learn 1.0.0; scikit-learn {sklearn.__version__} is installed" in reason


def test_a_manifest_listing_other_trusted_types_is_refused(definitions: Path) -> None:
    manifest = manifest_of(definitions)
    manifest["artifact"]["trusted_types"] = manifest["artifact"]["trusted_types"][1:]
    resign(definitions, manifest)

    assert "artifact types differ from the manifest's list" in rejection(definitions)


def test_a_model_where_higher_il6_means_stable_disease_is_rejected_at_load(definitions: Path) -> None:
    cohort = read_training_csv(synthetic_cohort(20, inverted=True), BASE)
    inverted = model_version.make_estimator(5, 0).fit(cohort.features(), cohort.labels())
    parameters = model_version.model_parameters(inverted)
    assert parameters.coefficient < 0
    manifest = replace_artifact(definitions, artifacts.dumps(inverted))
    for name, text in parameters.as_texts().items():
        _parameter(manifest, name)["value"] = text
    resign(definitions, manifest)

    assert "coefficient must be > 0" in rejection(definitions)


def test_build_refuses_a_missing_artifact_and_another_kind(trained: TrainedVersion) -> None:
    definition = parse_manifest(trained.manifest)
    with pytest.raises(ClassifierDefinitionError, match="needs its model artifact"):
        model_version.build(definition, None)
    with pytest.raises(ClassifierDefinitionError, match="is not a rules classifier"):
        RuleSetClassifier(definition)
    with pytest.raises(ClassifierDefinitionError, match=f"is not a {KIND} classifier"):
        model_version.build(BASE, trained.artifact)


def test_the_bundled_registry_loads_unchanged_with_the_model_builders(tmp_path: Path) -> None:
    registry = load_registry(copy_definitions(tmp_path), BUILDERS)
    assert registry.rejected == ()
    assert registry.resolve(None).definition.ref == BASE.ref
