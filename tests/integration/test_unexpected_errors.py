"""An unexpected failure is a bare 500 problem with its request id; its message goes nowhere."""

import json
import logging

import httpx
import pytest
from fastapi import FastAPI

from app.api.deps import get_assessments
from tests.factories import assessment_body

SECRET = "PIT-0042 IL6 4321.25"


class ExplodingService:
    async def decide(self, *_: object) -> None:
        raise RuntimeError(f"boom with {SECRET}")


async def test_unexpected_error_is_a_bare_500_with_request_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    app = transport.app
    assert isinstance(app, FastAPI)
    app.dependency_overrides[get_assessments] = ExplodingService
    caplog.set_level(logging.INFO)
    try:
        response = await client.post(
            "/v1/assessments",
            content=json.dumps(assessment_body()),
            headers={"content-type": "application/json", "x-request-id": "boom-1"},
        )
    finally:
        app.dependency_overrides.clear()

    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["x-request-id"] == "boom-1"
    assert response.json() == {
        "type": "/problems/internal-error",
        "title": "Internal error",
        "status": 500,
    }
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unexpected RuntimeError at" in logged
    assert "request_id=boom-1" in logged
    assert SECRET not in logged
    assert SECRET not in response.text
