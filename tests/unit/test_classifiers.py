"""Classifier versions: the bundled registry, pin resolution, tamper detection and the rule-set decision."""

import json
import re
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from app.domain.classifiers.base import ClassifierDefinitionError, VersionStatus
from app.domain.classifiers.manifest import manifest_digest, parse_manifest
from app.domain.classifiers.registry import ClassifierRegistry, load_registry
from app.domain.classifiers.rules import CUTOFF, SPECIMEN, RuleSetClassifier
from app.domain.eligibility import EligibilityStatus
from app.domain.errors import InvalidInput
from app.domain.reasons import ReasonCode
from app.domain.risk import RiskGroup
from app.domain.specimen import SpecimenType
from tests.unit.factories import (
    BUNDLED_VERSION,
    DEFAULT_NAME,
    add_version,
    bundled_definitions_path,
    bundled_manifest,
    copy_definitions,
    manifest_path,
    parameter,
    read_json,
    reported,
    specimen,
    write_json,
)

BUNDLED_REF = f"{DEFAULT_NAME}@{BUNDLED_VERSION}"
WRONG_DIGEST = "sha256:" + "0" * 64


@pytest.fixture(scope="module")
def bundled() -> ClassifierRegistry:
    return load_registry()


@pytest.fixture
def definitions(tmp_path: Path) -> Path:
    """A private copy of the shipped definitions directory."""
    return copy_definitions(tmp_path)


def _without_sources(manifest: dict[str, Any], name: str = CUTOFF) -> dict[str, Any]:
    del parameter(manifest, name)["sources"]
    return manifest


# The bundled registry ------------------------------------------------------------------------------------


def test_bundled_registry_serves_il6_enrichment_1_0_0_as_the_active_default(
    bundled: ClassifierRegistry,
) -> None:
    entry = bundled.resolve(None)
    assert entry.definition.ref == BUNDLED_REF
    assert entry.status is VersionStatus.ACTIVE
    assert bundled.default_name == DEFAULT_NAME
    assert bundled.rejected == ()
    assert [version.definition.ref for version in bundled.listing()] == [BUNDLED_REF]


def test_bundled_digest_is_the_manifest_digest_of_the_manifest_file(bundled: ClassifierRegistry) -> None:
    manifest = read_json(manifest_path(bundled_definitions_path()))
    recorded = read_json(bundled_definitions_path() / "registry.json")["classifiers"][0]["digest"]
    entry = bundled.resolve(None)
    assert entry.digest == manifest_digest(manifest)
    assert entry.digest == recorded
    assert entry.digest.startswith("sha256:")
    assert len(entry.digest) == len("sha256:") + 64


def test_bundled_version_is_a_rule_set_with_the_trial_parameters(bundled: ClassifierRegistry) -> None:
    classifier = bundled.resolve(None).classifier
    assert isinstance(classifier, RuleSetClassifier)
    assert classifier.cutoff_pg_per_ml == Decimal("17.85")
    assert classifier.required_specimen is SpecimenType.SERUM
    definition = classifier.definition
    assert definition.parameter(CUTOFF).unit == "pg/mL"
    assert definition.parameter(SPECIMEN).value == "serum"
    assert all(parameter.sources for parameter in definition.parameters)


@pytest.mark.parametrize(
    "pin",
    [
        pytest.param(None, id="no-pin-default"),
        pytest.param("il6-enrichment", id="name-only-active"),
        pytest.param("il6-enrichment@1.0.0", id="name-and-version"),
    ],
)
def test_resolve_gives_the_bundled_version(bundled: ClassifierRegistry, pin: str | None) -> None:
    entry = bundled.resolve(pin)
    assert entry is bundled.resolve(None)
    assert entry.definition.ref == BUNDLED_REF


@pytest.mark.parametrize(
    "pin",
    [
        pytest.param("il6-enrichment@9.9.9", id="unknown-version"),
        pytest.param("nope", id="unknown-name"),
        pytest.param("nope@1.0.0", id="unknown-name-with-version"),
        pytest.param("IL6!", id="malformed"),
        pytest.param("IL6-ENRICHMENT", id="uppercase"),
        pytest.param("il6-enrichment@1.0", id="two-part-version"),
        pytest.param("il6-enrichment@", id="empty-version"),
        pytest.param("", id="empty"),
    ],
)
def test_resolve_refuses_unknown_or_malformed_pins(bundled: ClassifierRegistry, pin: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        bundled.resolve(pin)
    assert caught.value.pointer == "/classifier"


@pytest.mark.parametrize(
    "pin",
    [
        pytest.param("il6-enrichment\n", id="name-trailing-newline"),
        pytest.param("il6-enrichment@1.0.0\n", id="pin-trailing-newline"),
    ],
)
def test_resolve_refuses_a_pin_with_a_trailing_newline(bundled: ClassifierRegistry, pin: str) -> None:
    """The grammar is 'name' or 'name@major.minor.patch'; PIN ends in ``$``, which also matches before a
    final newline, so these are accepted as the bundled version."""
    with pytest.raises(InvalidInput) as caught:
        bundled.resolve(pin)
    assert caught.value.pointer == "/classifier"


def test_unknown_version_message_lists_the_servable_versions(bundled: ClassifierRegistry) -> None:
    with pytest.raises(InvalidInput) as caught:
        bundled.resolve("il6-enrichment@9.9.9")
    assert BUNDLED_REF in caught.value.message
    assert "9.9.9" not in caught.value.message


# Tampering with a copy of the definitions ----------------------------------------------------------------


def test_an_untouched_copy_loads_like_the_bundled_registry(definitions: Path) -> None:
    registry = load_registry(definitions)
    assert registry.resolve(None).definition.ref == BUNDLED_REF
    assert registry.resolve(None).digest == load_registry().resolve(None).digest
    assert registry.rejected == ()


@pytest.mark.parametrize(
    "cutoff",
    [pytest.param("20", id="cutoff-20"), pytest.param("17.850", id="cutoff-17.850-same-number")],
)
def test_a_changed_cutoff_rejects_the_only_active_version_and_loading_fails(
    definitions: Path, cutoff: str
) -> None:
    path = manifest_path(definitions)
    manifest = read_json(path)
    parameter(manifest, CUTOFF)["value"] = cutoff
    write_json(path, manifest)
    with pytest.raises(ClassifierDefinitionError, match="default classifier il6-enrichment has no verified"):
        load_registry(definitions)


def test_a_changed_limitation_text_also_breaks_the_digest(definitions: Path) -> None:
    path = manifest_path(definitions)
    manifest = read_json(path)
    manifest["limitations"].append("Added after the digest was recorded.")
    write_json(path, manifest)
    with pytest.raises(ClassifierDefinitionError, match="no verified active version"):
        load_registry(definitions)


def test_a_retired_version_with_a_wrong_digest_is_rejected_beside_a_good_active_one(
    definitions: Path,
) -> None:
    add_version(definitions, "1.1.0", "retired", digest=WRONG_DIGEST)
    registry = load_registry(definitions)

    assert registry.resolve(None).definition.ref == BUNDLED_REF
    assert [(r.name, r.version) for r in registry.rejected] == [(DEFAULT_NAME, "1.1.0")]
    reason = registry.rejected[0].reason
    assert "digest" in reason
    assert WRONG_DIGEST in reason
    assert registry.get(DEFAULT_NAME, "1.1.0") is None
    assert [v.definition.ref for v in registry.listing()] == [BUNDLED_REF]
    with pytest.raises(InvalidInput) as caught:
        registry.resolve("il6-enrichment@1.1.0")
    assert caught.value.pointer == "/classifier"


def test_a_retired_version_with_the_right_digest_is_served_only_when_pinned(definitions: Path) -> None:
    add_version(definitions, "0.9.0", "retired")
    registry = load_registry(definitions)
    assert registry.rejected == ()
    assert registry.resolve("il6-enrichment@0.9.0").status is VersionStatus.RETIRED
    assert registry.resolve("il6-enrichment").definition.version == BUNDLED_VERSION
    assert [v.definition.version for v in registry.listing()] == ["0.9.0", BUNDLED_VERSION]


def test_a_draft_version_cannot_be_resolved_even_when_pinned(definitions: Path) -> None:
    add_version(definitions, "1.1.0", "draft")
    registry = load_registry(definitions)
    draft = registry.get(DEFAULT_NAME, "1.1.0")
    assert draft is not None, "the draft verifies; only its status keeps it from being served"
    assert draft.status is VersionStatus.DRAFT
    assert registry.rejected == ()

    with pytest.raises(InvalidInput) as caught:
        registry.resolve("il6-enrichment@1.1.0")
    assert caught.value.pointer == "/classifier"
    assert "1.1.0" not in caught.value.message
    assert registry.resolve("il6-enrichment").definition.version == BUNDLED_VERSION


def test_a_draft_as_the_only_version_of_the_default_fails_loading(definitions: Path) -> None:
    index = read_json(definitions / "registry.json")
    index["classifiers"][0]["status"] = "draft"
    write_json(definitions / "registry.json", index)
    with pytest.raises(ClassifierDefinitionError, match="no verified active version"):
        load_registry(definitions)


def test_two_active_versions_of_one_classifier_fail_loading(definitions: Path) -> None:
    add_version(definitions, "1.1.0", "active")
    with pytest.raises(ClassifierDefinitionError, match="more than one active version"):
        load_registry(definitions)


def test_a_manifest_in_the_wrong_place_is_rejected(definitions: Path) -> None:
    manifest = bundled_manifest()
    manifest["version"] = "2.0.0"
    target = manifest_path(definitions, "1.1.0")
    write_json(target, manifest)
    index = read_json(definitions / "registry.json")
    index["classifiers"].append(
        {"name": DEFAULT_NAME, "version": "1.1.0", "status": "retired", "digest": manifest_digest(manifest)}
    )
    write_json(definitions / "registry.json", index)
    registry = load_registry(definitions)
    assert [(r.version, "differs from its place" in r.reason) for r in registry.rejected] == [("1.1.0", True)]


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda p: p.pop("sources"), id="sources-missing"),
        pytest.param(lambda p: p.update(sources=[]), id="sources-empty"),
        pytest.param(lambda p: p.update(sources=[{"url": "https://example.org"}]), id="source-no-citation"),
        pytest.param(lambda p: p.update(sources="a citation"), id="sources-not-a-list"),
    ],
)
def test_parse_manifest_refuses_a_parameter_without_sources(edit: Callable[[dict[str, Any]], object]) -> None:
    manifest = bundled_manifest()
    edit(parameter(manifest, CUTOFF))
    with pytest.raises(ClassifierDefinitionError, match=re.escape(CUTOFF)):
        parse_manifest(manifest)


def test_a_parameter_without_sources_rejects_the_version_even_with_a_matching_digest(
    definitions: Path,
) -> None:
    add_version(definitions, "1.1.0", "retired", manifest=_without_sources(bundled_manifest()))
    registry = load_registry(definitions)
    assert [r.version for r in registry.rejected] == ["1.1.0"]
    assert "source" in registry.rejected[0].reason
    with pytest.raises(InvalidInput):
        registry.resolve("il6-enrichment@1.1.0")


def test_the_active_default_without_sources_fails_loading(definitions: Path) -> None:
    path = manifest_path(definitions)
    manifest = _without_sources(read_json(path), SPECIMEN)
    write_json(path, manifest)
    index = read_json(definitions / "registry.json")
    index["classifiers"][0]["digest"] = manifest_digest(manifest)
    write_json(definitions / "registry.json", index)
    with pytest.raises(ClassifierDefinitionError, match="no verified active version"):
        load_registry(definitions)


def test_a_malformed_source_rejects_the_version_instead_of_crashing_the_load(definitions: Path) -> None:
    """load_registry promises to keep a failing version aside with its reason; a source that is not an
    object makes parse_manifest raise AttributeError, which escapes and aborts the whole load."""
    manifest = bundled_manifest()
    parameter(manifest, CUTOFF)["sources"] = ["AACR Abstract CT119"]
    add_version(definitions, "1.1.0", "retired", manifest=manifest)
    registry = load_registry(definitions)
    assert [r.version for r in registry.rejected] == ["1.1.0"]
    assert registry.resolve(None).definition.ref == BUNDLED_REF


# RFC 8785: the digest covers content, not formatting --------------------------------------------------------


def _reversed_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: _reversed_keys(value[key]) for key in reversed(list(value))}
    if isinstance(value, list):
        return [_reversed_keys(item) for item in value]
    return value


def test_digest_ignores_key_order_and_whitespace() -> None:
    manifest = bundled_manifest()
    reordered = _reversed_keys(manifest)
    assert list(reordered) != list(manifest)
    assert manifest_digest(reordered) == manifest_digest(manifest)


def test_digest_changes_with_any_value() -> None:
    manifest = bundled_manifest()
    changed = bundled_manifest()
    parameter(changed, CUTOFF)["value"] = "17.86"
    assert manifest_digest(changed) != manifest_digest(manifest)


@pytest.mark.parametrize(
    "indent",
    [pytest.param(None, id="compact"), pytest.param(8, id="indent-8")],
)
def test_a_reformatted_manifest_file_still_verifies(definitions: Path, indent: int | None) -> None:
    path = manifest_path(definitions)
    original = path.read_text(encoding="utf-8")
    write_json(path, _reversed_keys(read_json(path)), indent=indent)
    assert path.read_text(encoding="utf-8") != original
    registry = load_registry(definitions)
    assert registry.rejected == ()
    assert registry.resolve(None).digest == manifest_digest(json.loads(original))


# The rule-set decision -------------------------------------------------------------------------------------


def test_rule_set_decides_lt_1_5_pg_per_ml_serum_as_eligible_and_low(bundled: ClassifierRegistry) -> None:
    measurement = reported("<1.5")
    decision = bundled.resolve(None).classifier.decide(measurement, specimen(SpecimenType.SERUM))
    assert decision.measurement is measurement
    assert decision.detectable is False
    assert decision.eligibility.status is EligibilityStatus.ELIGIBLE
    assert [r.code for r in decision.eligibility.reasons] == [ReasonCode.IL6_UNDETECTABLE]
    assert decision.risk.group is RiskGroup.LOW
    assert decision.risk.cutoff_pg_per_ml == Decimal("17.85")
    assert [r.code for r in decision.risk.reasons] == [ReasonCode.IL6_BELOW_CUTOFF]


def test_rule_set_takes_its_numbers_from_the_manifest() -> None:
    manifest = bundled_manifest()
    parameter(manifest, CUTOFF)["value"] = "5"
    parameter(manifest, SPECIMEN)["value"] = "plasma"
    classifier = RuleSetClassifier(parse_manifest(manifest))
    decision = classifier.decide(reported("10"), specimen(SpecimenType.PLASMA))
    assert decision.risk.group is RiskGroup.HIGH
    assert decision.risk.cutoff_pg_per_ml == Decimal("5")
    assert decision.eligibility.status is EligibilityStatus.INELIGIBLE


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        pytest.param(CUTOFF, "seventeen", "not a decimal", id="cutoff-not-decimal"),
        pytest.param(CUTOFF, "Infinity", "not finite", id="cutoff-infinite"),
        pytest.param(SPECIMEN, "urine", "unknown specimen", id="unknown-specimen"),
    ],
)
def test_rule_set_refuses_malformed_parameters(name: str, value: str, message: str) -> None:
    manifest = bundled_manifest()
    parameter(manifest, name)["value"] = value
    definition = parse_manifest(manifest)
    with pytest.raises(ClassifierDefinitionError, match=message):
        RuleSetClassifier(definition)
