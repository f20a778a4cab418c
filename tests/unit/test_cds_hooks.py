"""A CDS Hooks patient-view call is read as the result it prefetched, for the patient in context; a decision
becomes one card; the client's access token is never recorded."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from app.api.exact_json import parse_exact_json
from app.api.intake import Intake
from app.api.intake_fhir import CDS_HOOK_CALL
from app.domain.classifiers.registry import load_registry
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator, measure
from app.domain.specimen import Specimen, SpecimenType
from app.interop.cds_hooks import (
    DISCOVERY,
    PREFETCH_TEMPLATE,
    SUMMARY_MAX,
    NoResult,
    PrefetchMissing,
    card_for,
    read_hook_call,
    recorded_body,
)
from app.service.documents import decision_document
from tests.fhir_factories import bundle, hook_call, observation, specimen

VERSION = load_registry().resolve(None)


def test_discovery_offers_one_patient_view_service_with_its_prefetch() -> None:
    document = DISCOVERY.model_dump(exclude_none=True)

    [service] = document["services"]
    assert service["hook"] == "patient-view"
    assert service["id"] == "il6-eligibility"
    assert service["title"]
    assert "NCT01488318" in service["description"]
    assert service["prefetch"] == {"il6": PREFETCH_TEMPLATE}
    assert PREFETCH_TEMPLATE.startswith(
        "Observation?patient={{context.patientId}}&code=http://loinc.org|26881-3"
    )
    assert "_include=Observation:specimen" in PREFETCH_TEMPLATE


def test_the_prefetched_observation_is_read_for_the_patient_in_context() -> None:
    call = hook_call(observation(subject=None), patient="PIT-0042")

    read = read_hook_call(call)

    assert read.hook_instance == uuid.UUID(call["hookInstance"])
    assert read.result is not None
    assert read.result.document["subject_id"] == "PIT-0042"
    assert read.result.reference == f"hookInstance:{call['hookInstance']}"
    assert read.result.source_of("/subject_id") == ("context", "patientId")
    assert read.result.source_of("/il6/assay") == ("prefetch", "il6", "method")


def test_a_searchset_with_the_included_specimen_is_read() -> None:
    result = observation(contained=None, specimen={"reference": "Specimen/s1"})
    submission = Intake.read(
        CDS_HOOK_CALL, json.dumps(hook_call(bundle(result, specimen(), kind="searchset"))).encode()
    )

    assert submission.specimen_type is SpecimenType.SERUM
    assert submission.comparator is Comparator.LT
    assert submission.reference is not None
    assert submission.reference.startswith("hookInstance:")


def test_without_the_prefetch_key_the_precondition_fails() -> None:
    with pytest.raises(PrefetchMissing):
        read_hook_call(hook_call(...))
    with pytest.raises(PrefetchMissing):
        read_hook_call(hook_call(..., prefetch={"patient": {"resourceType": "Patient"}}))


@pytest.mark.parametrize("prefetched", [None, {"resourceType": "Bundle", "type": "searchset", "total": 0}])
def test_no_result_for_the_patient_is_nothing_to_decide(prefetched: Any) -> None:
    assert read_hook_call(hook_call(prefetched)).result is None
    with pytest.raises(NoResult):
        Intake.read(CDS_HOOK_CALL, json.dumps(hook_call(prefetched)).encode())


@pytest.mark.parametrize(
    ("changes", "location"),
    [
        ({"hook": "order-select"}, ("hook",)),
        ({"hookInstance": "not-a-uuid"}, ("hookInstance",)),
        ({"context": {"userId": "Practitioner/1"}}, ("context", "patientId")),
        ({"unknown": 1}, ("unknown",)),
    ],
)
def test_a_call_of_another_shape_is_refused(changes: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        read_hook_call(hook_call(observation()) | changes)
    assert [error["loc"] for error in refused.value.errors()] == [location]


def test_an_observation_about_another_patient_is_refused() -> None:
    with pytest.raises(InvalidInput) as refused:
        read_hook_call(hook_call(observation(subject="PIT-9999"), patient="PIT-0042"))
    assert refused.value.pointer == "/prefetch/il6/subject/reference"


def test_prefetch_errors_point_into_the_prefetch() -> None:
    with pytest.raises(InvalidInput) as refused:
        read_hook_call(hook_call({**observation(), "status": "preliminary"}))
    assert refused.value.pointer == "/prefetch/il6/status"


def test_errors_found_when_deciding_point_into_the_prefetch() -> None:
    call = json.dumps(hook_call(observation(method={"text": "unknown-assay"}))).encode()

    relocated = CDS_HOOK_CALL.relocate(call, InvalidInput("/il6/assay", "Unknown assay"))

    assert relocated.pointer == "/prefetch/il6/method"


def test_the_access_token_is_never_recorded() -> None:
    call = hook_call(observation(value=Decimal("1.50")), fhirServer="https://ehr.example/fhir")
    call["fhirAuthorization"] = {"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300}
    raw = json.dumps(call, default=str).replace('"1.50"', "1.50").encode()

    recorded = recorded_body(raw, parse_exact_json(raw))

    assert b"opaque-token" not in recorded
    assert b"fhirAuthorization" not in recorded
    kept = parse_exact_json(recorded)
    assert kept == {key: value for key, value in parse_exact_json(raw).items() if key != "fhirAuthorization"}
    assert str(kept["prefetch"]["il6"]["valueQuantity"]["value"]) == "1.50"


def test_a_call_without_a_token_is_recorded_as_received() -> None:
    raw = json.dumps(hook_call(observation()), indent=2).encode()
    assert recorded_body(raw, parse_exact_json(raw)) is raw


def decision(
    value: str, comparator: Comparator | None, kind: SpecimenType = SpecimenType.SERUM
) -> dict[str, Any]:
    measurement = measure(Decimal(value), "pg/mL", comparator, VERSION.definition.assay("elecsys-il6"))
    return decision_document(
        VERSION.classifier.decide(measurement, Specimen(kind, datetime(2026, 11, 20, tzinfo=UTC))), VERSION
    )


def test_an_undetectable_result_is_an_eligible_info_card() -> None:
    assessment_id = uuid.uuid4()

    card = card_for(assessment_id, decision("1.5", Comparator.LT)).model_dump(exclude_none=True, mode="json")

    assert card["uuid"] == str(assessment_id)
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Eligible for the NCT01488318")
    assert len(card["summary"]) < 140
    assert "**IL6 risk group:** low" in card["detail"]
    assert "< 1.5 pg/mL" in card["detail"]
    assert "`IL6_UNDETECTABLE`" in card["detail"]
    assert "`IL6_BELOW_CUTOFF`" in card["detail"]
    assert str(assessment_id) in card["detail"]
    assert "NCT01488318" in card["source"]["label"]
    assert "il6-enrichment@1.0.0" in card["source"]["label"]
    assert card["source"]["url"] == "https://clinicaltrials.gov/study/NCT01488318"


@pytest.mark.parametrize(
    ("value", "comparator", "kind", "indicator", "starts"),
    [
        ("30", None, SpecimenType.SERUM, "info", "Not eligible"),
        ("30", Comparator.LT, SpecimenType.SERUM, "warning", "NCT01488318 IL6 eligibility is indeterminate"),
        ("1", Comparator.LT, SpecimenType.PLASMA, "warning", "NCT01488318 IL6 eligibility is indeterminate"),
    ],
)
def test_cards_for_other_decisions(
    value: str, comparator: Comparator | None, kind: SpecimenType, indicator: str, starts: str
) -> None:
    card = card_for(uuid.uuid4(), decision(value, comparator, kind))

    assert card.indicator == indicator
    assert card.summary.startswith(starts)
    assert len(card.summary) <= SUMMARY_MAX


def test_a_card_without_a_risk_group_says_none() -> None:
    card = card_for(uuid.uuid4(), decision("30", Comparator.LT))

    assert "**IL6 risk group:** none" in card.detail
    assert "`IL6_STRADDLES_CUTOFF`" in card.detail
