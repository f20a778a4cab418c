"""A CDS Hooks patient-view call is read as the result it prefetched, for the patient in context and under
the trial subject id its prefetched Patient carries; a decision becomes one card; the client's access token
is never recorded."""

import json
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from pydantic import ValidationError

from app.api.exact_json import parse_exact_json
from app.api.intake import Intake
from app.api.intake_fhir import fhir_forms
from app.domain.classifiers.registry import load_registry
from app.domain.errors import InvalidInput
from app.domain.il6 import Comparator, measure
from app.domain.specimen import Specimen, SpecimenType
from app.interop.cds_hooks import (
    DISCOVERY,
    PATIENT_TEMPLATE,
    PREFETCH_TEMPLATE,
    SUMMARY_MAX,
    HookCall,
    NoResult,
    PrefetchMissing,
    card_for,
    hook_instance_of,
    recorded_body,
)
from app.interop.cds_hooks import read_hook_call as read_with_system
from app.service.documents import decision_document
from tests.fhir_factories import (
    SUBJECT_SYSTEM,
    bundle,
    hook_call,
    observation,
    patient,
    specimen,
    trial_id,
)

VERSION = load_registry().resolve(None)
CDS_HOOK_CALL = fhir_forms(SUBJECT_SYSTEM).hook_call


def read_hook_call(document: Any) -> HookCall:
    return read_with_system(document, SUBJECT_SYSTEM)


def refused_at(document: Any) -> str:
    with pytest.raises(InvalidInput) as refused:
        read_hook_call(document)
    return refused.value.pointer


def test_discovery_offers_one_patient_view_service_with_its_prefetch() -> None:
    document = DISCOVERY.model_dump(exclude_none=True)

    [service] = document["services"]
    assert service["hook"] == "patient-view"
    assert service["id"] == "il6-eligibility"
    assert service["title"]
    assert "NCT01488318" in service["description"]
    assert service["prefetch"] == {"il6": PREFETCH_TEMPLATE, "patient": PATIENT_TEMPLATE}
    assert PATIENT_TEMPLATE == "Patient/{{context.patientId}}"
    assert PREFETCH_TEMPLATE.startswith(
        "Observation?patient={{context.patientId}}&code=http://loinc.org|26881-3"
    )
    assert "_include=Observation:specimen" in PREFETCH_TEMPLATE


def test_the_prefetched_observation_is_read_for_the_patient_in_context() -> None:
    call = hook_call(observation(subject=None, patient="ehr-1001"), patient_id="ehr-1001", subject="PIT-0042")

    read = read_hook_call(call)

    assert read.hook_instance == uuid.UUID(call["hookInstance"])
    assert read.result is not None
    assert read.result.document["subject_id"] == "PIT-0042"  # the trial's id, not the EHR's or the MRN
    assert read.result.reference == f"hookInstance:{call['hookInstance']} Observation/il6-result-1"
    assert hook_instance_of(read.result.reference) == f"hookInstance:{call['hookInstance']}"
    assert read.result.source_of("/subject_id") == ("prefetch", "patient", "identifier", 1, "value")
    assert read.result.source_of("/il6/assay") == ("prefetch", "il6", "method")


def test_without_an_observation_id_the_reference_is_the_hook_instance() -> None:
    call = hook_call(observation(id=None))

    read = read_hook_call(call)

    assert read.result is not None
    assert read.result.reference == f"hookInstance:{call['hookInstance']}"


@pytest.mark.parametrize(
    "reference",
    [
        "Patient/ehr-1001",
        "https://ehr.example/fhir/Patient/ehr-1001",
        "Patient/ehr-1001/_history/3",
        "https://ehr.example/fhir/Patient/ehr-1001/_history/3",
    ],
)
def test_any_literal_reference_to_the_patient_in_context_is_that_patient(reference: str) -> None:
    document = observation(subject=None, patient=None) | {"subject": {"reference": reference}}

    read = read_hook_call(hook_call(document, patient_id="ehr-1001"))

    assert read.result is not None
    assert read.result.document["subject_id"] == "PIT-0042"


@pytest.mark.parametrize(
    ("subject", "pointer"),
    [
        pytest.param({"reference": "Patient/OTHER-1"}, "/prefetch/il6/subject/reference", id="relative"),
        pytest.param(
            {"reference": "https://ehr.example/fhir/Patient/OTHER-1"},
            "/prefetch/il6/subject/reference",
            id="absolute",
        ),
        pytest.param(
            {"reference": "Patient/OTHER-1/_history/3"}, "/prefetch/il6/subject/reference", id="versioned"
        ),
        pytest.param(
            {"reference": "https://ehr.example/fhir/Patient/ehr-1001-x/_history/1"},
            "/prefetch/il6/subject/reference",
            id="absolute-versioned-prefix",
        ),
        pytest.param({"identifier": trial_id("PIT-0042")}, "/prefetch/il6/subject", id="identifier-only"),
        pytest.param({"identifier": {"value": "OTHER-1"}}, "/prefetch/il6/subject", id="other-identifier"),
        pytest.param({"reference": "Group/ehr-1001"}, "/prefetch/il6/subject/reference", id="a-group"),
        pytest.param(
            {"reference": "Device/ehr-1001"}, "/prefetch/il6/subject/reference", id="another-resource-type"
        ),
        pytest.param({"reference": "#p"}, "/prefetch/il6/subject/reference", id="a-contained-patient"),
        pytest.param(
            {"reference": "urn:uuid:5b0c2a8e-8f8a-4d55-9c5e-3f7a2b1d0c9e"},
            "/prefetch/il6/subject/reference",
            id="a-urn",
        ),
        pytest.param({"display": "the patient"}, "/prefetch/il6/subject", id="display-only"),
        pytest.param(None, "/prefetch/il6/subject", id="absent"),
    ],
)
def test_an_observation_not_provably_about_the_patient_in_context_is_refused(
    subject: dict[str, Any] | None, pointer: str
) -> None:
    """Recording another patient's result under the patient in view is the error to prevent: the subject
    must reference the context's patient by its logical id, however the reference is written."""
    document = observation(subject=None, patient=None) | {"subject": subject}
    if subject is not None and subject.get("reference") == "#p":
        document["contained"].append(patient("p", "PIT-0042"))

    assert refused_at(hook_call(document, patient_id="ehr-1001")) == pointer


def test_the_subject_id_is_the_trial_identifier_of_the_prefetched_patient() -> None:
    call = hook_call(observation(subject=None), patient_id="ehr-1001", subject="PIT-0077")

    read = read_hook_call(call)

    assert read.result is not None
    assert read.result.document["subject_id"] == "PIT-0077"


@pytest.mark.parametrize(
    ("prefetched_patient", "pointer"),
    [
        pytest.param(patient("ehr-1001", None), "/prefetch/patient/identifier", id="no-trial-identifier"),
        pytest.param(
            patient("ehr-1001", "PIT-0042", identifier=[trial_id("PIT-0042"), trial_id("PIT-0043")]),
            "/prefetch/patient/identifier",
            id="several-trial-identifiers",
        ),
        pytest.param(patient("ehr-2002", "PIT-0042"), "/prefetch/patient/id", id="another-patient"),
        pytest.param(patient(None, "PIT-0042"), "/prefetch/patient/id", id="no-id"),
        pytest.param(
            {**observation(), "resourceType": "Observation"},
            "/prefetch/patient/resourceType",
            id="not-a-patient",
        ),
        pytest.param("ehr-1001", "/prefetch/patient", id="not-a-resource"),
    ],
)
def test_a_prefetched_patient_that_gives_no_trial_subject_id_is_refused(
    prefetched_patient: Any, pointer: str
) -> None:
    call = hook_call(observation(subject=None), patient_id="ehr-1001", prefetched_patient=prefetched_patient)

    assert refused_at(call) == pointer


def test_a_prefetched_patient_that_is_not_valid_fhir_is_refused_where_it_is_invalid() -> None:
    call = hook_call(observation(), prefetched_patient=patient(birthDate="not a date"))

    with pytest.raises(ValidationError) as invalid:
        read_hook_call(call)

    assert [error["loc"] for error in invalid.value.errors()] == [("prefetch", "patient", "birthDate")]


def test_a_subject_identifier_that_disagrees_with_the_patient_is_refused() -> None:
    call = hook_call(observation(subject="PIT-9999"), patient_id="ehr-1001", subject="PIT-0042")

    assert refused_at(call) == "/prefetch/patient/identifier/1/value"


def test_a_subject_identifier_that_agrees_with_the_patient_is_read() -> None:
    call = hook_call(observation(subject="PIT-0042"), patient_id="ehr-1001", subject="PIT-0042")

    read = read_hook_call(call)

    assert read.result is not None
    assert read.result.document["subject_id"] == "PIT-0042"


@pytest.mark.parametrize(
    "patient_prefetch",
    [
        pytest.param(..., id="absent"),
        pytest.param(None, id="null"),
        pytest.param({"resourceType": "OperationOutcome", "issue": []}, id="operation-outcome"),
    ],
)
def test_without_the_prefetched_patient_the_precondition_fails(patient_prefetch: Any) -> None:
    call = hook_call(observation())
    if patient_prefetch is ...:
        del call["prefetch"]["patient"]
    else:
        call["prefetch"]["patient"] = patient_prefetch

    with pytest.raises(PrefetchMissing):
        read_hook_call(call)


def test_a_patient_with_no_result_needs_no_patient_prefetch() -> None:
    call = hook_call(None)
    del call["prefetch"]["patient"]

    assert read_hook_call(call).result is None


def test_a_searchset_with_the_included_specimen_is_read() -> None:
    result = observation(contained=None, specimen={"reference": "Specimen/s1"})
    call = hook_call(bundle(result, specimen(), kind="searchset"))
    submission = Intake.read(CDS_HOOK_CALL, json.dumps(call).encode())

    assert submission.specimen_type is SpecimenType.SERUM
    assert submission.comparator is Comparator.LT
    assert submission.subject_id == "PIT-0042"
    assert submission.reference == f"hookInstance:{call['hookInstance']} Observation/il6-result-1"


def test_without_the_prefetch_key_the_precondition_fails() -> None:
    with pytest.raises(PrefetchMissing):
        read_hook_call(hook_call(...))
    with pytest.raises(PrefetchMissing):
        read_hook_call(hook_call(..., prefetch={"patient": patient()}))


def test_an_operation_outcome_in_place_of_the_result_is_a_missing_prefetch() -> None:
    """A CDS client may send an OperationOutcome where prefetching failed (CDS Hooks 2.0, Prefetch)."""
    outcome = {
        "resourceType": "OperationOutcome",
        "issue": [{"severity": "error", "code": "processing"}],
    }
    with pytest.raises(PrefetchMissing):
        read_hook_call(hook_call(outcome))


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
        ({"context": {"patientId": "not an id"}}, ("context", "patientId")),
        ({"unknown": 1}, ("unknown",)),
    ],
)
def test_a_call_of_another_shape_is_refused(changes: dict[str, Any], location: tuple[str, ...]) -> None:
    with pytest.raises(ValidationError) as refused:
        read_hook_call(hook_call(observation()) | changes)
    assert [error["loc"] for error in refused.value.errors()] == [location]


def test_an_observation_about_another_patient_is_refused() -> None:
    call = hook_call(observation(patient="ehr-9999"), patient_id="ehr-1001")

    assert refused_at(call) == "/prefetch/il6/subject/reference"


def test_a_call_nested_too_deeply_is_refused_before_it_is_read() -> None:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(100):
        extension = {"url": "http://example.org/x", "extension": [extension]}

    assert refused_at(hook_call(observation(extension=[extension]))) == ""
    assert refused_at(hook_call(observation(), extension={"deep": [extension]})) == ""


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


def test_a_lone_surrogate_in_a_call_with_a_token_is_recorded_escaped() -> None:
    """JSON may carry "\\ud800", which no UTF-8 text can hold: the rewritten call keeps it as its escape."""
    call = hook_call(observation(), fhirServer="https://ehr.example/fhir")
    call["fhirAuthorization"] = {"access_token": "opaque-token", "token_type": "Bearer", "expires_in": 300}
    call["context"]["userId"] = "Practitioner/X"
    raw = json.dumps(call).replace("Practitioner/X", "Practitioner/\\ud800 caf\\u00e9").encode()

    recorded = recorded_body(raw, parse_exact_json(raw))

    assert recorded.isascii()
    assert b"opaque-token" not in recorded
    assert parse_exact_json(recorded)["context"]["userId"] == "Practitioner/\ud800 caf\u00e9"
    recorded.decode("utf-8")


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
