"""FastAPI's own OpenTelemetry instrumentation stays off: its spans and metrics would name request paths,
which carry subject ids, and the service names routes only by their template (app/api/request_log.py)."""

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.trace import NoOpTracer, Tracer, TracerProvider

from tests.factories import assessment_body


class RecordingTracerProvider(TracerProvider):
    """A configured tracer provider (neither OpenTelemetry's deferred default nor its no-op one): it records
    who asks it for a tracer."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def get_tracer(self, instrumenting_module_name: str, *args: Any, **kwargs: Any) -> Tracer:
        self.asked.append(instrumenting_module_name)
        return NoOpTracer()


@pytest.fixture
def provider(monkeypatch: pytest.MonkeyPatch) -> RecordingTracerProvider:
    recording = RecordingTracerProvider()
    monkeypatch.setattr(trace, "get_tracer_provider", lambda: recording)
    return recording


async def test_a_configured_tracer_provider_gets_no_spans_from_the_service(
    client: httpx.AsyncClient, provider: RecordingTracerProvider
) -> None:
    response = await client.post("/v1/assessments", json=assessment_body())

    assert response.status_code == 201, response.text
    assert provider.asked == []


async def test_fastapi_left_as_it_is_would_trace_with_it(provider: RecordingTracerProvider) -> None:
    """Else the test above could pass with no provider in reach."""
    app = FastAPI()

    @app.get("/ping")
    async def ping() -> dict[str, str]:
        return {"pong": "yes"}

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as bare:
        assert (await bare.get("/ping")).status_code == 200

    assert provider.asked == ["fastapi"]
