"""FHIR through the API, on SQLite and PostgreSQL: an Observation in gets the plain request's decision and is
recorded as sent; a decision out, with Accept: application/fhir+json, is a Bundle fhir.resources accepts. In
FHIR R5 where the client asks for it (fhirVersion=5.0), with the same decisions and the same refusals."""

import hashlib
import json
import uuid
from typing import Any

import httpx
import pytest
from fhir.resources.bundle import Bundle as R5Bundle
from fhir.resources.guidanceresponse import GuidanceResponse as R5GuidanceResponse
from fhir.resources.parameters import Parameters as R5Parameters
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.guidanceresponse import GuidanceResponse
from fhir.resources.R4B.parameters import Parameters
from fhir.resources.R4B.riskassessment import RiskAssessment
from fhir.resources.riskassessment import RiskAssessment as R5RiskAssessment
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.fhir_factories import bundle, hook_call, observation, patient, specimen
from tests.integration.conftest import app_client, count_rows

FHIR = "application/fhir+json"
FHIR_R4B_ANSWER = "application/fhir+json; fhirVersion=4.3"
"""The Content-Type of a decision answered as FHIR R4B: it names the release."""
FHIR_R5 = "application/fhir+json; fhirVersion=5.0"
"""Content-Type of a result sent in FHIR R5, Accept asking for an answer in R5, the answer's Content-Type,
and the media type an R5 result is recorded under."""
DECIDED = ("eligibility", "risk", "il6", "classifier", "specimen")


async def post(
    client: httpx.AsyncClient, document: Any, media_type: str = FHIR, **headers: str
) -> httpx.Response:
    return await client.post(
        "/v1/assessments", content=json.dumps(document), headers={"content-type": media_type, **headers}
    )


def stored(db: Engine, assessment_id: str) -> Any:
    with db.connect() as connection:
        return connection.execute(
            text(
                "SELECT request_media_type, request_sha256, request_body, input, subject_id, site_id "
                "FROM assessment WHERE id = :id"
            ),
            {"id": assessment_id if db.dialect.name == "postgresql" else uuid.UUID(assessment_id).hex},
        ).one()


def fhir_resources(response: httpx.Response) -> tuple[Bundle, GuidanceResponse, Parameters, RiskAssessment]:
    sent = Bundle.model_validate(response.json())
    guidance, parameters, risk = (entry.resource for entry in sent.entry or ())
    assert isinstance(guidance, GuidanceResponse)
    assert isinstance(parameters, Parameters)
    assert isinstance(risk, RiskAssessment)
    return sent, guidance, parameters, risk


SAME_RESULTS = [
    pytest.param({}, {}, id="below-limit"),
    pytest.param({"value": 20, "comparator": None}, {"value": 20, "comparator": None}, id="detectable-high"),
    pytest.param(
        {"value": 0.0015, "unit": "ng/mL", "comparator": None},
        {"value": 0.0015, "unit": "ng/mL", "comparator": None},
        id="ng-per-ml",
    ),
    pytest.param({"value": 20, "comparator": "<"}, {"value": 20, "comparator": "<"}, id="censored-above-lod"),
]
"""One result as an Observation's changes and as the plain body's, for comparing their decisions."""


@pytest.mark.parametrize(
    ("result", "plain"),
    SAME_RESULTS,
)
async def test_an_observation_gets_the_plain_requests_decision(
    client: httpx.AsyncClient, result: dict[str, Any], plain: dict[str, Any]
) -> None:
    subject = subject_id("FHIR")
    as_fhir = await post(client, observation(subject=subject, **result))
    as_plain = await post(client, assessment_body(subject=subject, site_id=None, **plain), "application/json")

    assert as_fhir.status_code == as_plain.status_code == 201
    assert {key: as_fhir.json()[key] for key in DECIDED} == {key: as_plain.json()[key] for key in DECIDED}
    assert as_fhir.json()["subject_id"] == subject
    assert as_fhir.json()["site_id"] is None
    assert as_fhir.headers["content-type"] == "application/json"
    assert as_fhir.headers["classifier-version"] == "il6-enrichment@1.0.0"


async def test_the_fhir_body_is_recorded_as_sent(client: httpx.AsyncClient, db: Engine) -> None:
    raw = json.dumps(observation(subject=subject_id("FHIR")), indent=1).encode()

    response = await client.post("/v1/assessments", content=raw, headers={"content-type": FHIR})

    assert response.status_code == 201
    row = stored(db, response.json()["id"])
    assert row.request_media_type == FHIR
    assert row.request_sha256 == hashlib.sha256(raw).hexdigest()
    assert row.request_body == raw.decode()
    document = json.loads(row.input) if isinstance(row.input, str) else row.input
    assert document["reference"] == "Observation/il6-result-1"
    assert document["il6"] == {"value": "1.5", "unit": "pg/mL", "comparator": "<", "assay": "elecsys-il6"}


async def test_a_bundle_is_decided_like_its_observation(client: httpx.AsyncClient) -> None:
    subject = subject_id("FHIR")
    result = observation(subject=subject, contained=None, specimen={"reference": "Specimen/s1"})

    response = await post(client, bundle(result, specimen(), kind="searchset"))
    alone = await post(client, observation(subject=subject))

    assert response.status_code == 201
    assert {key: response.json()[key] for key in DECIDED} == {key: alone.json()[key] for key in DECIDED}


async def test_fhir_out_when_asked(client: httpx.AsyncClient) -> None:
    subject = subject_id("FHIR")

    response = await post(client, observation(subject=subject), accept=FHIR)

    assert response.status_code == 201
    assert response.headers["content-type"] == FHIR_R4B_ANSWER
    assert response.headers["classifier-version"] == "il6-enrichment@1.0.0"
    location = response.headers["location"]
    assessment_id = location.removeprefix("/v1/assessments/")
    sent, guidance, parameters, risk = fhir_resources(response)
    assert sent.type == "collection"
    assert guidance.status == "success"
    assert guidance.moduleCanonical == "https://il6-eligibility/classifiers/il6-enrichment|1.0.0"
    for resource in (guidance, risk):
        assert [i.value for i in resource.identifier or ()] == [f"urn:uuid:{assessment_id}"]
        assert resource.subject is not None
        assert resource.subject.identifier is not None
        assert resource.subject.identifier.value == subject
    values = {p.name: p.valueCoding.code for p in parameters.parameter or () if p.valueCoding}
    assert values["eligibility"] == "eligible"
    assert values["risk-group"] == "low"
    assert [b.reference for b in risk.basis or ()] == ["Observation/il6-result-1"]
    [prediction] = risk.prediction or []
    assert prediction.qualitativeRisk is not None
    assert [c.code for c in prediction.qualitativeRisk.coding or ()] == ["low"]

    plain = await client.get(location)
    again = await client.get(location, headers={"accept": FHIR})

    assert again.status_code == 200
    assert again.headers["content-type"] == FHIR_R4B_ANSWER
    assert again.headers["classifier-version"] == "il6-enrichment@1.0.0"
    assert again.content == response.content
    assert guidance.occurrenceDateTime is not None
    assert plain.json()["recorded_at"].startswith(guidance.occurrenceDateTime.isoformat()[:19])


@pytest.mark.parametrize("accept", ["*/*", "application/json", "application/json, application/fhir+json"])
async def test_plain_json_stays_the_default(client: httpx.AsyncClient, accept: str) -> None:
    response = await post(client, observation(subject=subject_id("FHIR")), accept=accept)

    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json()["eligibility"]["status"] == "eligible"
    fetched = await client.get(response.headers["location"], headers={"accept": accept})
    assert fetched.json() == response.json()


async def test_a_plain_decision_read_as_fhir_has_no_basis(client: httpx.AsyncClient) -> None:
    created = await post(client, assessment_body(value=30, comparator="<"), "application/json")

    response = await client.get(created.headers["location"], headers={"accept": FHIR})

    _, _, parameters, risk = fhir_resources(response)
    assert risk.basis is None
    assert risk.prediction is None
    assert risk.note
    values = {p.name: p.valueCoding.code for p in parameters.parameter or () if p.valueCoding}
    assert values["eligibility"] == "indeterminate"
    assert "risk-group" not in values


async def test_a_retry_is_answered_as_fhir_too(client: httpx.AsyncClient) -> None:
    document = observation(subject=subject_id("FHIR"))
    key = str(uuid.uuid4())

    first = await post(client, document, **{"accept": FHIR, "idempotency-key": key})
    retry = await post(client, document, **{"accept": FHIR, "idempotency-key": key})

    assert retry.status_code == 201
    assert retry.headers["idempotent-replayed"] == "true"
    assert retry.headers["location"] == first.headers["location"]
    assert retry.content == first.content


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        pytest.param(observation(method={"text": "unknown-assay"}), "/method", id="unknown-assay"),
        pytest.param(
            bundle(observation(method={"text": "unknown-assay"})), "/entry/0/resource/method", id="bundled"
        ),
        pytest.param(observation(value=0, comparator="<"), "/valueQuantity/value", id="below-zero"),
        pytest.param({**observation(), "status": "preliminary"}, "/status", id="preliminary"),
        pytest.param(observation(specimen=None), "/specimen", id="no-specimen"),
        pytest.param({**observation(), "unknownElement": 1}, "", id="unknown-element"),
    ],
)
async def test_refusals_are_problems_pointing_into_the_fhir_document(
    client: httpx.AsyncClient, db: Engine, document: dict[str, Any], pointer: str
) -> None:
    before = count_rows(db)

    response = await post(client, document, accept=FHIR)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in response.json()["errors"]] == [pointer]
    assert count_rows(db) == before


async def test_the_subject_is_the_trial_id_never_the_ehr_id(client: httpx.AsyncClient, db: Engine) -> None:
    subject, ehr_id = subject_id("FHIR"), subject_id("ehr")
    result = observation(subject=None, patient=ehr_id, contained=None, specimen={"reference": "Specimen/s1"})

    response = await post(client, bundle(result, specimen(), patient(ehr_id, subject)))
    by_ehr_id_only = await post(client, observation(subject=None, patient=subject))

    assert response.status_code == 201
    assert response.json()["subject_id"] == subject
    assert stored(db, response.json()["id"]).subject_id == subject
    assert by_ehr_id_only.status_code == 422
    assert [error["pointer"] for error in by_ehr_id_only.json()["errors"]] == ["/subject"]
    assert count_rows(db, ehr_id) == 0


async def test_the_subject_system_is_a_setting(database_url: str) -> None:
    site_system = "https://trial.example/subject"
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        fhir_subject_system=site_system,
    )
    subject = subject_id("FHIR")
    document = observation(subject=None) | {
        "subject": {"identifier": {"system": site_system, "value": subject}}
    }
    site_patient = patient("ehr-1001", None) | {"identifier": [{"system": site_system, "value": subject}]}
    async for site in app_client(settings):
        accepted = await post(site, document)
        default_system = await post(site, observation(subject=subject))
        hook = await site.post(
            "/cds-services/il6-eligibility",
            json=hook_call(observation(subject=None), prefetched_patient=site_patient),
        )

    assert accepted.status_code == 201
    assert accepted.json()["subject_id"] == subject
    assert default_system.status_code == 422
    assert hook.status_code == 200
    assert len(hook.json()["cards"]) == 1


@pytest.mark.parametrize("version", ["4.0", "4.3", '"4.3"'])
async def test_an_r4_or_r4b_fhir_version_is_read(client: httpx.AsyncClient, db: Engine, version: str) -> None:
    response = await post(client, observation(subject=subject_id("FHIR")), f"{FHIR}; fhirVersion={version}")

    assert response.status_code == 201
    assert stored(db, response.json()["id"]).request_media_type == FHIR


@pytest.mark.parametrize("version", ["5.0.0", "3.0", "4.0.1", "6.0", "R6", ""])
async def test_another_fhir_version_is_refused(client: httpx.AsyncClient, db: Engine, version: str) -> None:
    before = count_rows(db)

    response = await post(client, observation(), f"{FHIR}; fhirVersion={version}")

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert "fhirVersion 4.0, 4.3 or 5.0" in response.json()["detail"]
    if version:
        assert version not in response.json()["detail"]
    assert count_rows(db) == before


@pytest.mark.parametrize("effective", ["2026", "2026-11", "2026-11-20"])
async def test_a_partial_date_is_refused_not_read_as_a_timestamp(
    client: httpx.AsyncClient, db: Engine, effective: str
) -> None:
    """ "2026" is a valid FHIR dateTime, and was once recorded as 1970-01-01T00:33:46Z."""
    before = count_rows(db)

    response = await post(client, observation(effective=effective))

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["pointer"] == "/effectiveDateTime"
    assert "partial date" in error["detail"]
    assert count_rows(db) == before


async def test_a_document_nested_too_deeply_is_a_problem_not_a_crash(client: httpx.AsyncClient) -> None:
    extension: dict[str, Any] = {"url": "http://example.org/x", "valueString": "a"}
    for _ in range(200):
        extension = {"url": "http://example.org/x", "extension": [extension]}

    response = await post(client, observation(extension=[extension]))

    assert response.status_code == 422
    assert [error["pointer"] for error in response.json()["errors"]] == [""]


async def test_a_fhir_body_in_another_charset_is_refused(client: httpx.AsyncClient) -> None:
    response = await post(client, observation(), f"{FHIR}; charset=latin-1")

    assert response.status_code == 415
    assert FHIR in response.json()["detail"]


async def test_the_contract_shows_both_forms(client: httpx.AsyncClient) -> None:
    document = (await client.get("/openapi.json")).json()

    create = document["paths"]["/v1/assessments"]["post"]
    read = document["paths"]["/v1/assessments/{assessment_id}"]["get"]
    assert FHIR in create["requestBody"]["content"]
    assert set(create["responses"]["201"]["content"]) >= {"application/json", FHIR}
    assert set(read["responses"]["200"]["content"]) >= {"application/json", FHIR}


# FHIR R5, where the client asks for it


@pytest.mark.parametrize(
    ("result", "plain"),
    SAME_RESULTS,
)
async def test_an_r5_observation_gets_the_r4b_and_plain_requests_decision(
    client: httpx.AsyncClient, result: dict[str, Any], plain: dict[str, Any]
) -> None:
    subject = subject_id("FHIR5")
    as_r5 = await post(client, observation(subject=subject, **result), FHIR_R5)
    as_r4b = await post(client, observation(subject=subject, **result))
    as_plain = await post(client, assessment_body(subject=subject, site_id=None, **plain), "application/json")

    assert as_r5.status_code == as_r4b.status_code == as_plain.status_code == 201
    decided = {key: as_r5.json()[key] for key in DECIDED}
    assert decided == {key: as_r4b.json()[key] for key in DECIDED}
    assert decided == {key: as_plain.json()[key] for key in DECIDED}
    assert as_r5.json()["subject_id"] == subject
    assert as_r5.json()["site_id"] is None
    assert as_r5.headers["content-type"] == "application/json"


async def test_an_r5_bundle_is_decided_like_its_r4b_twin(client: httpx.AsyncClient) -> None:
    subject, ehr_id = subject_id("FHIR5"), subject_id("ehr")
    result = observation(subject=None, patient=ehr_id, contained=None, specimen={"reference": "Specimen/s1"})
    document = bundle(result, specimen(), patient(ehr_id, subject), kind="searchset")

    as_r5 = await post(client, document, FHIR_R5)
    as_r4b = await post(client, document)

    assert as_r5.status_code == as_r4b.status_code == 201
    assert as_r5.json()["subject_id"] == subject
    assert {key: as_r5.json()[key] for key in DECIDED} == {key: as_r4b.json()[key] for key in DECIDED}


@pytest.mark.parametrize("version", ["5.0", '"5.0"'])
async def test_an_r5_body_is_recorded_as_sent_under_its_version(
    client: httpx.AsyncClient, db: Engine, version: str
) -> None:
    raw = json.dumps(observation(subject=subject_id("FHIR5")), indent=1).encode()

    response = await client.post(
        "/v1/assessments", content=raw, headers={"content-type": f"{FHIR};fhirVersion={version}"}
    )

    assert response.status_code == 201
    row = stored(db, response.json()["id"])
    assert row.request_media_type == FHIR_R5
    assert row.request_sha256 == hashlib.sha256(raw).hexdigest()
    assert row.request_body == raw.decode()
    document = json.loads(row.input) if isinstance(row.input, str) else row.input
    assert document["reference"] == "Observation/il6-result-1"


def _pooled() -> dict[str, Any]:
    document = observation()
    document["contained"][0]["combined"] = "pooled"
    return document


@pytest.mark.parametrize(
    ("document", "pointer"),
    [
        pytest.param(observation(method={"text": "unknown-assay"}), "/method", id="unknown-assay"),
        pytest.param(
            bundle(observation(method={"text": "unknown-assay"})), "/entry/0/resource/method", id="bundled"
        ),
        pytest.param(observation(value=0, comparator="<"), "/valueQuantity/value", id="below-zero"),
        pytest.param(observation(comparator="ad"), "/valueQuantity/comparator", id="comparator-ad"),
        pytest.param({**observation(), "status": "preliminary"}, "/status", id="preliminary"),
        pytest.param(observation(specimen={"reference": "Group/g1"}), "/specimen/reference", id="a-group"),
        pytest.param(_pooled(), "/contained/0/combined", id="pooled"),
        pytest.param(
            bundle(observation()) | {"issues": {"resourceType": "OperationOutcome", "issue": []}},
            "/issues",
            id="bundle-with-issues",
        ),
        pytest.param({**observation(), "unknownElement": 1}, "", id="unknown-element"),
    ],
)
async def test_r5_refusals_are_problems_pointing_into_the_fhir_document(
    client: httpx.AsyncClient, db: Engine, document: dict[str, Any], pointer: str
) -> None:
    before = count_rows(db)

    response = await post(client, document, FHIR_R5, accept=FHIR_R5)

    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert [error["pointer"] for error in response.json()["errors"]] == [pointer]
    assert count_rows(db) == before


async def test_fhir_out_in_r5_when_asked(client: httpx.AsyncClient) -> None:
    subject = subject_id("FHIR5")

    response = await post(client, observation(subject=subject), FHIR_R5, accept=FHIR_R5)

    assert response.status_code == 201
    assert response.headers["content-type"] == FHIR_R5
    sent = R5Bundle.model_validate(response.json())
    guidance, parameters, risk = (entry.resource for entry in sent.entry or ())
    assert isinstance(guidance, R5GuidanceResponse)
    assert isinstance(parameters, R5Parameters)
    assert isinstance(risk, R5RiskAssessment)
    assert guidance.moduleCanonical == "https://il6-eligibility/classifiers/il6-enrichment|1.0.0"
    values = {p.name: p.valueCoding.code for p in parameters.parameter or () if p.valueCoding}
    assert (values["eligibility"], values["risk-group"]) == ("eligible", "low")
    assert [b.reference for b in risk.basis or ()] == ["Observation/il6-result-1"]

    location = response.headers["location"]
    again = await client.get(location, headers={"accept": FHIR_R5})
    in_r4b = await client.get(location, headers={"accept": FHIR})

    assert again.headers["content-type"] == FHIR_R5
    assert again.content == response.content
    assert in_r4b.headers["content-type"] == FHIR_R4B_ANSWER
    assert in_r4b.content == response.content  # the same resources, written alike in either release
    fhir_resources(in_r4b)


@pytest.mark.parametrize(
    "accept", [f"{FHIR}; fhirVersion=3.0", f"{FHIR}; fhirVersion=5.0;q=0.5, {FHIR}; fhirVersion=4.3"]
)
async def test_an_answer_in_another_release_is_r4b(client: httpx.AsyncClient, accept: str) -> None:
    response = await post(client, observation(subject=subject_id("FHIR")), FHIR_R5, accept=accept)

    assert response.status_code == 201
    assert response.headers["content-type"] == FHIR_R4B_ANSWER
    fhir_resources(response)
