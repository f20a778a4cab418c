"""An unexpected failure is a bare 500 problem with its request id; its message goes nowhere."""

import json
import logging
from dataclasses import replace
from typing import cast

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine
from starlette.types import Message

from app.service.assessments import AssessmentService
from tests.factories import assessment_body
from tests.integration.conftest import count_rows

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
    services = app.state.services
    app.state.services = replace(services, assessments=cast(AssessmentService, ExplodingService()))
    caplog.set_level(logging.INFO)
    try:
        response = await client.post(
            "/v1/assessments",
            content=json.dumps(assessment_body()),
            headers={"content-type": "application/json", "x-request-id": "boom-1"},
        )
    finally:
        app.state.services = services

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


async def test_a_client_gone_before_its_body_arrived_is_not_a_server_error(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, db: Engine
) -> None:
    """Read off the ASGI app directly: an HTTP client cannot leave halfway through its own body."""
    transport = client._transport
    assert isinstance(transport, httpx.ASGITransport)
    body = json.dumps(assessment_body()).encode()
    arriving: list[Message] = [
        {"type": "http.request", "body": body[:20], "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[Message] = []

    async def receive() -> Message:
        return arriving.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/assessments",
        "raw_path": b"/v1/assessments",
        "query_string": b"",
        "root_path": "",
        "headers": [
            (b"content-type", b"application/json"),
            (b"x-request-id", b"gone-1"),
            (b"authorization", client.headers["Authorization"].encode()),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("test", 80),
    }
    caplog.set_level(logging.INFO)

    await transport.app(scope, receive, send)

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 499
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "client disconnected before its request was read request_id=gone-1" in caplog.text
    assert count_rows(db, json.loads(body)["subject_id"]) == 0
