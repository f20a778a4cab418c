"""Request logs name the route and a request id, and never a subject id or an IL6 value."""

import json
import logging

import httpx
import pytest

from tests.factories import assessment_body, subject_id


async def test_request_log_hides_subject_and_value(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    subject = subject_id("CANARY")
    caplog.set_level(logging.DEBUG)

    created = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body(subject=subject, value=4321.25, comparator=None)),
        headers={"content-type": "application/json", "x-request-id": "req-123"},
    )
    listed = await client.get(f"/v1/subjects/{subject}/assessments")

    assert created.status_code == 201
    assert created.headers["x-request-id"] == "req-123"
    assert listed.headers["x-request-id"]
    # Everything the service logged, at every level; the test client's own httpx lines are not the service's.
    logged = "\n".join(
        record.getMessage() for record in caplog.records if not record.name.startswith(("httpx", "httpcore"))
    )
    assert "POST /v1/assessments 201" in logged
    assert "GET /v1/subjects/{subject_id}/assessments 200" in logged
    assert "request_id=req-123" in logged
    assert subject not in logged
    assert "4321.25" not in logged


async def test_unsafe_request_id_is_replaced(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz", headers={"x-request-id": "bad id\twith spaces"})

    assert response.headers["x-request-id"] != "bad id\twith spaces"
    assert len(response.headers["x-request-id"]) == 32
