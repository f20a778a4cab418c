"""Deciding, recording and reading decisions through the API, on SQLite and PostgreSQL."""

import hashlib
import json
import uuid

import httpx
from sqlalchemy import Engine, text

from tests.factories import assessment_body, subject_id


async def post_json(client: httpx.AsyncClient, body: object) -> httpx.Response:
    return await client.post(
        "/v1/assessments", content=json.dumps(body), headers={"content-type": "application/json"}
    )


async def test_decision_is_recorded_and_answered(client: httpx.AsyncClient, db: Engine) -> None:
    body = assessment_body()
    raw = json.dumps(body).encode()

    response = await client.post("/v1/assessments", content=raw, headers={"content-type": "application/json"})

    assert response.status_code == 201
    decision = response.json()
    assert decision["subject_id"] == body["subject_id"]
    assert decision["site_id"] == "PIT"
    assert decision["eligibility"] == {
        "status": "eligible",
        "reasons": [
            {
                "code": "IL6_UNDETECTABLE",
                "message": "Serum IL6 is undetectable (below the assay's limit of detection, 1.5 pg/mL).",
            }
        ],
    }
    assert decision["risk"]["group"] == "low"
    assert decision["risk"]["cutoff_pg_per_ml"] == 17.85
    assert [r["code"] for r in decision["risk"]["reasons"]] == ["IL6_BELOW_CUTOFF"]
    assert decision["il6"] == {
        "pg_per_ml": 1.5,
        "comparator": "<",
        "detectable": False,
        "assay": "elecsys-il6",
        "lod_pg_per_ml": 1.5,
    }
    assert decision["classifier"]["name"] == "il6-enrichment"
    assert decision["classifier"]["version"] == "1.0.0"
    assert decision["classifier"]["digest"].startswith("sha256:")
    assert decision["recorded_at"].endswith("Z")
    assert response.headers["classifier-version"] == "il6-enrichment@1.0.0"
    assert response.headers["location"] == f"/v1/assessments/{decision['id']}"

    with db.connect() as connection:
        row = connection.execute(
            text(
                "SELECT request_sha256, request_body, request_media_type, classifier_digest, "
                "eligibility_status, risk_group FROM assessment WHERE subject_id = :s"
            ),
            {"s": body["subject_id"]},
        ).one()
    assert row.request_sha256 == hashlib.sha256(raw).hexdigest()
    assert row.request_body == raw.decode()
    assert row.request_media_type == "application/json"
    assert row.classifier_digest == decision["classifier"]["digest"]
    assert (row.eligibility_status, row.risk_group) == ("eligible", "low")


async def test_read_back_is_identical(client: httpx.AsyncClient) -> None:
    created = await post_json(client, assessment_body(value=20, comparator=None))
    assert created.status_code == 201

    fetched = await client.get(created.headers["location"])

    assert fetched.status_code == 200
    assert fetched.json() == created.json()
    assert fetched.json()["eligibility"]["status"] == "ineligible"
    assert fetched.json()["risk"]["group"] == "high"
    assert fetched.headers["classifier-version"] == "il6-enrichment@1.0.0"


async def test_units_convert_exactly(client: httpx.AsyncClient) -> None:
    response = await post_json(client, assessment_body(value=0.0015, unit="ng/mL", comparator=None))

    assert response.status_code == 201
    assert response.json()["il6"]["pg_per_ml"] == 1.5
    assert response.json()["il6"]["detectable"] is True
    assert response.json()["eligibility"]["status"] == "ineligible"


async def test_censored_above_limit_is_indeterminate(client: httpx.AsyncClient) -> None:
    response = await post_json(client, assessment_body(value=20, comparator="<"))

    assert response.status_code == 201
    decision = response.json()
    assert decision["eligibility"]["status"] == "indeterminate"
    assert [r["code"] for r in decision["eligibility"]["reasons"]] == ["IL6_CENSORED_ABOVE_LOD"]
    assert decision["risk"]["group"] is None
    assert [r["code"] for r in decision["risk"]["reasons"]] == ["IL6_STRADDLES_CUTOFF"]
    assert decision["il6"]["detectable"] is None


async def test_plasma_is_indeterminate(client: httpx.AsyncClient) -> None:
    response = await post_json(client, assessment_body(specimen_type="plasma"))

    assert response.status_code == 201
    assert response.json()["eligibility"]["status"] == "indeterminate"
    assert [r["code"] for r in response.json()["eligibility"]["reasons"]] == ["SPECIMEN_NOT_SERUM"]
    assert response.json()["risk"]["group"] is None


async def test_pinned_version_decides(client: httpx.AsyncClient) -> None:
    for pin in ("il6-enrichment@1.0.0", "il6-enrichment"):
        response = await post_json(client, assessment_body(classifier=pin))
        assert response.status_code == 201
        assert response.json()["classifier"]["version"] == "1.0.0"


async def test_unknown_assessment_is_404(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/assessments/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/not-found"


async def test_malformed_assessment_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/assessments/not-a-uuid")

    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "assessment_id"


async def test_subject_listing_is_newest_first_and_paginated(client: httpx.AsyncClient) -> None:
    subject = subject_id()
    created = []
    for value in (1, 2, 3):
        response = await post_json(client, assessment_body(subject=subject, value=value, comparator=None))
        assert response.status_code == 201
        created.append(response.json()["id"])

    first = await client.get(f"/v1/subjects/{subject}/assessments", params={"limit": 2})
    assert first.status_code == 200
    assert [item["id"] for item in first.json()["items"]] == [created[2], created[1]]
    cursor = first.json()["next_cursor"]
    assert cursor

    second = await client.get(f"/v1/subjects/{subject}/assessments", params={"limit": 2, "cursor": cursor})
    assert [item["id"] for item in second.json()["items"]] == [created[0]]
    assert second.json()["next_cursor"] is None


async def test_subject_listing_refuses_a_forged_cursor(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/subjects/{subject_id()}/assessments", params={"cursor": "bm9wZQ"})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"detail": "not a cursor this service issued", "parameter": "cursor"}
    ]


async def test_subject_listing_refuses_a_malformed_subject(client: httpx.AsyncClient) -> None:
    response = await client.get("/v1/subjects/-bad/assessments")

    assert response.status_code == 422
    assert response.json()["errors"][0]["parameter"] == "subject_id"


async def test_replay_reproduces_the_recorded_decision(client: httpx.AsyncClient) -> None:
    created = await post_json(client, assessment_body(value=17.85, comparator=None))

    replay = await client.post(f"{created.headers['location']}/replay")

    assert replay.status_code == 200
    assert replay.json()["matches"] is True
    assert replay.json()["recorded"] == created.json()
    assert replay.json()["replayed"]["risk"]["group"] == "high"
    assert replay.json()["replayed"]["classifier"] == created.json()["classifier"]


async def test_replay_of_unknown_assessment_is_404(client: httpx.AsyncClient) -> None:
    response = await client.post(f"/v1/assessments/{uuid.uuid4()}/replay")

    assert response.status_code == 404
