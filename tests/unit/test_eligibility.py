"""Detectability against the Elecsys IL-6 limit of detection (1.5 pg/mL) and the NCT01488318 criterion."""

from decimal import Decimal

import pytest

from app.domain.classifiers.registry import load_registry
from app.domain.eligibility import EligibilityStatus, assess_eligibility, detectability
from app.domain.errors import InvalidInput
from app.domain.reasons import ReasonCode
from app.domain.specimen import SpecimenType
from tests.unit.factories import ELECSYS_IL6, reported, specimen

SERUM = SpecimenType.SERUM
PLASMA = SpecimenType.PLASMA

ELIGIBLE = EligibilityStatus.ELIGIBLE
INELIGIBLE = EligibilityStatus.INELIGIBLE
INDETERMINATE = EligibilityStatus.INDETERMINATE

UNDETECTABLE = ReasonCode.IL6_UNDETECTABLE
DETECTABLE = ReasonCode.IL6_DETECTABLE
ABOVE_LOD = ReasonCode.IL6_CENSORED_ABOVE_LOD
BELOW_LOD = ReasonCode.IL6_CENSORED_BELOW_LOD
NOT_SERUM = ReasonCode.SPECIMEN_NOT_SERUM

# (reported result, unit, specimen, detectable, status, reason codes in order)
CASES = [
    pytest.param("1.4999", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="exact-1.4999-below-LoD"),
    pytest.param("1.5", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="exact-1.5-at-LoD"),
    pytest.param("1.50", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="exact-1.50-at-LoD"),
    pytest.param("0", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="exact-0"),
    pytest.param("250", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="exact-250-well-above"),
    pytest.param("<1.5", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="lt-1.5-lab-reported-below-LoD"),
    pytest.param("<=1.5", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="le-1.5-per-spec"),
    pytest.param("<1.0", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="lt-1.0-below-LoD"),
    pytest.param("<=0", "pg/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="le-0"),
    pytest.param("<1.51", "pg/mL", SERUM, None, INDETERMINATE, [ABOVE_LOD], id="lt-1.51-straddles-LoD"),
    pytest.param("<=1.5001", "pg/mL", SERUM, None, INDETERMINATE, [ABOVE_LOD], id="le-1.5001-straddles"),
    pytest.param("<20", "pg/mL", SERUM, None, INDETERMINATE, [ABOVE_LOD], id="lt-20-straddles-LoD"),
    pytest.param(">1.5", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="gt-1.5-detectable"),
    pytest.param(">=1.5", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="ge-1.5-detectable"),
    pytest.param(">5000", "pg/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="gt-5000-above-range"),
    pytest.param(">1.4", "pg/mL", SERUM, None, INDETERMINATE, [BELOW_LOD], id="gt-1.4-straddles-LoD"),
    pytest.param(">1.4999", "pg/mL", SERUM, None, INDETERMINATE, [BELOW_LOD], id="gt-1.4999-straddles"),
    pytest.param(">=1.0", "pg/mL", SERUM, None, INDETERMINATE, [BELOW_LOD], id="ge-1.0-straddles-LoD"),
    pytest.param(">=0", "pg/mL", SERUM, None, INDETERMINATE, [BELOW_LOD], id="ge-0-says-nothing"),
    pytest.param("0.0015", "ng/mL", SERUM, True, INELIGIBLE, [DETECTABLE], id="ng/mL-0.0015-is-LoD"),
    pytest.param("0.0014999", "ng/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="ng/mL-below-LoD"),
    pytest.param("<0.0015", "ng/mL", SERUM, False, ELIGIBLE, [UNDETECTABLE], id="ng/mL-lt-LoD"),
    pytest.param("<0.00151", "ng/mL", SERUM, None, INDETERMINATE, [ABOVE_LOD], id="ng/mL-lt-above-LoD"),
    pytest.param("1.5", "ng/L", SERUM, True, INELIGIBLE, [DETECTABLE], id="ng/L-1.5-is-LoD"),
    pytest.param("1.4999", "pg/mL", PLASMA, False, INDETERMINATE, [NOT_SERUM], id="plasma-would-be-eligible"),
    pytest.param("<1.5", "pg/mL", PLASMA, False, INDETERMINATE, [NOT_SERUM], id="plasma-lt-LoD"),
    pytest.param("1.5", "pg/mL", PLASMA, True, INDETERMINATE, [NOT_SERUM], id="plasma-would-be-ineligible"),
    pytest.param(
        "<20", "pg/mL", PLASMA, None, INDETERMINATE, [NOT_SERUM, ABOVE_LOD], id="plasma-and-lt-20-straddles"
    ),
    pytest.param(
        ">1.4", "pg/mL", PLASMA, None, INDETERMINATE, [NOT_SERUM, BELOW_LOD], id="plasma-and-gt-1.4-straddles"
    ),
    pytest.param(
        "<1.5", "pg/mL", SpecimenType.WHOLE_BLOOD, False, INDETERMINATE, [NOT_SERUM], id="whole-blood"
    ),
    pytest.param(
        "<1.5", "pg/mL", SpecimenType.OTHER_BODY_FLUID, False, INDETERMINATE, [NOT_SERUM], id="body-fluid"
    ),
]


@pytest.mark.parametrize(("text", "unit", "kind", "detectable", "status", "codes"), CASES)
def test_detectability(
    text: str,
    unit: str,
    kind: SpecimenType,
    detectable: bool | None,
    status: EligibilityStatus,
    codes: list[ReasonCode],
) -> None:
    assert detectability(reported(text, unit)) is detectable


@pytest.mark.parametrize(("text", "unit", "kind", "detectable", "status", "codes"), CASES)
def test_assess_eligibility(
    text: str,
    unit: str,
    kind: SpecimenType,
    detectable: bool | None,
    status: EligibilityStatus,
    codes: list[ReasonCode],
) -> None:
    eligibility = assess_eligibility(reported(text, unit), specimen(kind), SERUM)
    assert eligibility.status is status
    assert [reason.code for reason in eligibility.reasons] == codes


def test_the_bundled_version_uses_the_manufacturers_elecsys_limit_of_detection() -> None:
    assert ELECSYS_IL6.lod_pg_per_ml == Decimal("1.5")
    assert ELECSYS_IL6.measuring_range_pg_per_ml == (Decimal("1.5"), Decimal("5000"))
    assert "Roche" in ELECSYS_IL6.sources[0].citation


def test_an_assay_the_version_does_not_list_is_invalid_input() -> None:
    definition = load_registry().resolve(None).definition
    with pytest.raises(InvalidInput) as caught:
        definition.assay("some-elisa")
    assert caught.value.pointer == "/il6/assay"
    assert "elecsys-il6" in caught.value.message


@pytest.mark.parametrize(
    ("text", "code"),
    [
        pytest.param("1.4999", UNDETECTABLE, id="undetectable"),
        pytest.param("1.5", DETECTABLE, id="detectable"),
        pytest.param("<20", ABOVE_LOD, id="censored-above"),
        pytest.param(">1.4", BELOW_LOD, id="censored-below"),
    ],
)
def test_reason_messages_name_the_limit_of_detection(text: str, code: ReasonCode) -> None:
    (reason,) = assess_eligibility(reported(text), specimen(), SERUM).reasons
    assert reason.code is code
    assert "1.5 pg/mL" in reason.message


def test_the_specimen_reason_names_the_required_and_the_given_specimen() -> None:
    reason = assess_eligibility(reported("<1.5"), specimen(PLASMA), SERUM).reasons[0]
    assert reason.code is NOT_SERUM
    assert "serum" in reason.message
    assert "plasma" in reason.message


def test_the_required_specimen_is_a_parameter_not_hard_coded() -> None:
    eligibility = assess_eligibility(reported("<1.5"), specimen(PLASMA), PLASMA)
    assert eligibility.status is ELIGIBLE
    assert [reason.code for reason in eligibility.reasons] == [UNDETECTABLE]
