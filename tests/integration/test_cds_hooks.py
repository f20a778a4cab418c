"""CDS Hooks through the API, on SQLite and PostgreSQL: discovery, and a patient-view call decided for the
trial subject its prefetched Patient names, recorded with its hookInstance and Observation, and answered
with a card."""

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, text

from tests.factories import subject_id
from tests.fhir_factories import bundle, hook_call, observation, patient, specimen, trial_id
from tests.integration.conftest import count_rows

SERVICE = "/cds-services/il6-eligibility"
FHIR = "application/fhir+json"
CDS_HOOKS = "application/cds-hooks+json"


def _nested(depth: int) -> dict[str, Any]:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(depth):
        extension = {"url": "http://example.org/x", "extension": [extension]}
    return extension


async def call(
    client: httpx.AsyncClient, document: Any, media_type: str = "application/json"
) -> httpx.Response:
    return await client.post(SERVICE, content=json.dumps(document), headers={"content-type": media_type})


def recorded(db: Engine, reference: str) -> Any:
    """The audit record whose input names ``reference``."""
    with db.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT id, request_media_type, request_sha256, request_body, input, subject_id "
                "FROM assessment"
            )
        ).all()
    found = [row for row in rows if reference in str(row.input)]
    assert len(found) == 1
    return found[0]


async def test_discovery(client: httpx.AsyncClient) -> None:
    response = await client.get("/cds-services")

    assert response.status_code == 200
    [service] = response.json()["services"]
    assert service["hook"] == "patient-view"
    assert service["id"] == "il6-eligibility"
    assert set(service) == {"hook", "id", "title", "description", "prefetch"}
    assert service["prefetch"]["il6"].startswith(
        "Observation?patient={{context.patientId}}&code=http://loinc.org|26881-3&_sort=-date&_count=1"
    )
    assert service["prefetch"]["patient"] == "Patient/{{context.patientId}}"


async def test_an_undetectable_il6_is_an_eligible_card_recorded_with_its_hook_instance(
    client: httpx.AsyncClient, db: Engine
) -> None:
    subject, ehr_id = subject_id("CDS"), subject_id("ehr")
    document = hook_call(observation(subject=None, patient=ehr_id), patient_id=ehr_id, subject=subject)
    raw = json.dumps(document).encode()

    response = await client.post(SERVICE, content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 200
    [card] = response.json()["cards"]
    assert set(card) == {"uuid", "summary", "detail", "indicator", "source"}
    assert card["indicator"] == "info"
    assert card["summary"].startswith("Eligible")
    assert len(card["summary"]) < 140
    assert "**Eligibility (NCT01488318, biomarker-enrichment stage):** eligible" in card["detail"]
    assert "**IL6 risk group:** low" in card["detail"]
    assert card["source"]["label"] == "IL6 eligibility service: NCT01488318, classifier il6-enrichment@1.0.0"
    row = recorded(db, f"hookInstance:{document['hookInstance']}")
    assert uuid.UUID(card["uuid"]) == uuid.UUID(str(row.id))
    assert row.subject_id == subject  # the trial's id from the Patient, not the EHR's patientId
    assert row.request_media_type == CDS_HOOKS
    assert row.request_body == raw.decode()
    assert row.request_sha256 == hashlib.sha256(raw).hexdigest()
    stored = json.loads(row.input) if isinstance(row.input, str) else row.input
    assert stored["reference"] == f"hookInstance:{document['hookInstance']} Observation/il6-result-1"
    decision = await client.get(f"/v1/assessments/{card['uuid']}")
    assert decision.json()["eligibility"]["status"] == "eligible"
    assert decision.json()["subject_id"] == subject


async def test_a_hook_decision_read_as_fhir_has_the_observation_as_its_basis(
    client: httpx.AsyncClient,
) -> None:
    response = await call(client, hook_call(observation()))
    [card] = response.json()["cards"]

    bundle_ = (await client.get(f"/v1/assessments/{card['uuid']}", headers={"accept": FHIR})).json()

    [risk] = [
        entry["resource"]
        for entry in bundle_["entry"]
        if entry["resource"]["resourceType"] == "RiskAssessment"
    ]
    assert risk["basis"] == [{"reference": "Observation/il6-result-1"}]


async def test_a_retried_hook_call_is_answered_from_its_first_decision(
    client: httpx.AsyncClient, db: Engine
) -> None:
    subject = subject_id("CDS")
    document = hook_call(observation(subject=None), subject=subject)

    first = await call(client, document)
    again = await call(client, document)

    assert first.status_code == again.status_code == 200
    assert again.json()["cards"][0]["uuid"] == first.json()["cards"][0]["uuid"]
    assert count_rows(db, subject) == 1


@pytest.mark.parametrize(
    ("result", "indicator", "status"),
    [
        pytest.param({"value": 30, "comparator": None}, "info", "ineligible", id="detectable"),
        pytest.param({"value": 30, "comparator": "<"}, "warning", "indeterminate", id="censored-above-lod"),
    ],
)
async def test_other_results_give_their_cards(
    client: httpx.AsyncClient, result: dict[str, Any], indicator: str, status: str
) -> None:
    response = await call(client, hook_call(observation(**result)))

    assert response.status_code == 200
    [card] = response.json()["cards"]
    assert card["indicator"] == indicator
    assert f"biomarker-enrichment stage):** {status}" in card["detail"]


async def test_a_searchset_prefetch_with_its_specimen(client: httpx.AsyncClient) -> None:
    result = observation(subject=None, contained=None, specimen={"reference": "Specimen/s1"})

    response = await call(client, hook_call(bundle(result, specimen(), kind="searchset")))

    assert response.status_code == 200
    assert response.json()["cards"][0]["summary"].startswith("Eligible")


async def test_the_access_token_is_never_recorded(client: httpx.AsyncClient, db: Engine) -> None:
    document = hook_call(observation(), fhirServer="https://ehr.example/fhir")
    document["fhirAuthorization"] = {
        "access_token": "opaque-token-abc",
        "token_type": "Bearer",
        "expires_in": 300,
        "scope": "patient/Observation.read",
        "subject": "il6-eligibility",
    }

    response = await call(client, document)

    assert response.status_code == 200
    row = recorded(db, f"hookInstance:{document['hookInstance']}")
    assert "opaque-token-abc" not in row.request_body
    assert row.request_sha256 == hashlib.sha256(row.request_body.encode()).hexdigest()
    kept = json.loads(row.request_body)
    assert kept == {key: value for key, value in document.items() if key != "fhirAuthorization"}


async def test_a_lone_surrogate_in_a_call_with_a_token_is_recorded(
    client: httpx.AsyncClient, db: Engine
) -> None:
    document = hook_call(observation(), fhirServer="https://ehr.example/fhir")
    document["fhirAuthorization"] = {"access_token": "opaque", "token_type": "Bearer", "expires_in": 300}
    document["context"]["userId"] = "Practitioner/X"
    raw = json.dumps(document).replace("Practitioner/X", "Practitioner/\\ud800")

    response = await client.post(SERVICE, content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 200
    row = recorded(db, f"hookInstance:{document['hookInstance']}")
    assert "\\ud800" in row.request_body
    assert "opaque" not in row.request_body
    assert row.request_sha256 == hashlib.sha256(row.request_body.encode()).hexdigest()


async def test_no_result_for_the_patient_is_no_card_and_no_record(
    client: httpx.AsyncClient, db: Engine
) -> None:
    before = count_rows(db)

    nothing = await call(client, hook_call(None))
    empty = await call(client, hook_call({"resourceType": "Bundle", "type": "searchset", "total": 0}))

    assert nothing.status_code == empty.status_code == 200
    assert nothing.json() == empty.json() == {"cards": []}
    assert count_rows(db) == before


OUTCOME = {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing"}]}


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(hook_call(...), id="no-prefetch"),
        pytest.param(hook_call(OUTCOME), id="result-an-operation-outcome"),
        pytest.param(hook_call(observation(), prefetched_patient=...), id="no-patient"),
        pytest.param(hook_call(observation(), prefetched_patient=OUTCOME), id="patient-an-operation-outcome"),
    ],
)
async def test_without_the_prefetch_the_precondition_fails(
    client: httpx.AsyncClient, db: Engine, document: dict[str, Any]
) -> None:
    before = count_rows(db)

    response = await call(client, document)

    assert response.status_code == 412
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["title"] == "Precondition Failed"
    assert count_rows(db) == before


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        pytest.param(
            hook_call({**observation(), "code": {"coding": [{"system": "http://loinc.org", "code": "1-8"}]}}),
            "/prefetch/il6/code",
            id="another-test",
        ),
        pytest.param(
            hook_call(observation(patient="OTHER-1"), patient_id="ehr-1001"),
            "/prefetch/il6/subject/reference",
            id="another-patient",
        ),
        pytest.param(
            hook_call(
                observation(patient=None)
                | {"subject": {"reference": "https://ehr.example/fhir/Patient/OTHER-1"}}
            ),
            "/prefetch/il6/subject/reference",
            id="another-patient-absolute",
        ),
        pytest.param(
            hook_call(observation(patient=None) | {"subject": {"reference": "Patient/OTHER-1/_history/3"}}),
            "/prefetch/il6/subject/reference",
            id="another-patient-versioned",
        ),
        pytest.param(
            hook_call(observation(patient=None) | {"subject": {"identifier": trial_id("OTHER-1")}}),
            "/prefetch/il6/subject",
            id="identifier-only",
        ),
        pytest.param(
            hook_call(observation(patient=None) | {"subject": {"reference": "Group/ehr-1001"}}),
            "/prefetch/il6/subject/reference",
            id="a-group",
        ),
        pytest.param(
            hook_call(observation(subject=None, patient=None)), "/prefetch/il6/subject", id="no-subject"
        ),
        pytest.param(
            hook_call(observation(subject=None), prefetched_patient=patient("ehr-1001", None)),
            "/prefetch/patient/identifier",
            id="patient-without-trial-id",
        ),
        pytest.param(
            hook_call(observation(), prefetched_patient=patient("OTHER-1", "PIT-0042")),
            "/prefetch/patient/id",
            id="prefetched-patient-another",
        ),
        pytest.param(
            hook_call(observation(extension=[_nested(100)])),
            "",
            id="nested-too-deeply",
        ),
        pytest.param(
            hook_call(observation(method={"text": "unknown-assay"})),
            "/prefetch/il6/method",
            id="unknown-assay",
        ),
        pytest.param(
            hook_call(observation(subject=None), patient_id="not an id"),
            "/context/patientId",
            id="patient-not-an-id",
        ),
        pytest.param(hook_call(observation(), hookInstance="1"), "/hookInstance", id="hook-instance"),
        pytest.param(hook_call(observation(), hook="order-select"), "/hook", id="another-hook"),
        pytest.param(hook_call("not a resource"), "/prefetch/il6", id="prefetch-not-a-resource"),
    ],
)
async def test_an_invalid_call_is_a_problem_pointing_into_it(
    client: httpx.AsyncClient, db: Engine, document: dict[str, Any], pointer: str
) -> None:
    before = count_rows(db)

    response = await call(client, document)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in response.json()["errors"]] == [pointer]
    assert count_rows(db) == before


async def test_a_call_must_be_json(client: httpx.AsyncClient) -> None:
    response = await call(client, hook_call(observation()), "text/plain")

    assert response.status_code == 415
