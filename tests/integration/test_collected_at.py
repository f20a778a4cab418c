"""Through the API, in the plain and the FHIR form: a collection time that is not a full date-time with a
UTC offset is a 422 at its place, and nothing is recorded; once, "45612" and "2026" were recorded as
instants of 1970."""

import json

import httpx
import pytest
from sqlalchemy import Engine

from tests.factories import assessment_body
from tests.fhir_factories import observation
from tests.integration.conftest import count_rows


@pytest.mark.parametrize("text", ["45612", "1700000000", "2026", "2026-11-20", "2026-11-20 09:30:00Z"])
async def test_the_plain_form_refuses_what_is_not_a_date_time(
    client: httpx.AsyncClient, db: Engine, text: str
) -> None:
    before = count_rows(db)

    response = await client.post("/v1/assessments", json=assessment_body(collected_at=text))

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["pointer"] == "/specimen/collected_at"
    assert "RFC 3339 date-time with a time and a UTC offset" in error["detail"]
    assert count_rows(db) == before


@pytest.mark.parametrize("text", ["2026", "2026-11", "2026-11-20"])
async def test_the_fhir_form_refuses_a_partial_date(client: httpx.AsyncClient, db: Engine, text: str) -> None:
    before = count_rows(db)

    response = await client.post(
        "/v1/assessments",
        content=json.dumps(observation(effective=text)),
        headers={"content-type": "application/fhir+json"},
    )

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["pointer"] == "/effectiveDateTime"
    assert "partial date" in error["detail"]
    assert count_rows(db) == before


@pytest.mark.parametrize("text", ["2026-11-20T09:30:00Z", "2026-11-20T04:30:00.25-05:00"])
async def test_both_forms_read_a_full_date_time_alike(client: httpx.AsyncClient, text: str) -> None:
    plain = await client.post("/v1/assessments", json=assessment_body(collected_at=text))
    fhir = await client.post(
        "/v1/assessments",
        content=json.dumps(observation(effective=text)),
        headers={"content-type": "application/fhir+json"},
    )

    assert plain.status_code == fhir.status_code == 201
    assert plain.json()["specimen"] == fhir.json()["specimen"]
