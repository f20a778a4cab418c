"""The running service's telemetry: /metrics after real decisions (by outcome, by route template, the audit
writer, the pool, the chain head), with nothing of a subject in any label; and its JSON log lines, each
naming its request."""

import io
import json
import uuid
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import assessment_body, subject_id
from tests.integration.conftest import UNKNOWN_KEY, bearer, caller_of

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
CLASSIFIER = "il6-enrichment@1.0.0"
VALUE = 4321.25
"""A value no bucket boundary or count shares, to look for in the rendered metrics."""


async def scrape(client: httpx.AsyncClient) -> tuple[str, Samples]:
    response = await client.get("/metrics")
    assert response.status_code == 200, response.text
    samples = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }
    return response.text, samples


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def decide(client: httpx.AsyncClient, body: dict[str, Any], key: str | None = None) -> httpx.Response:
    headers = {"content-type": "application/json"} | ({} if key is None else {"Idempotency-Key": key})
    response = await client.post("/v1/assessments", content=json.dumps(body), headers=headers)
    assert response.status_code == 201, response.text
    return response


async def test_decisions_are_counted_by_outcome_once_and_replays_apart(client: httpx.AsyncClient) -> None:
    key = str(uuid.uuid4())
    eligible_body = assessment_body(value=1.5, comparator="<")
    await decide(client, eligible_body, key)
    replayed = await decide(client, eligible_body, key)
    await decide(client, assessment_body(value=VALUE, comparator=None))
    last = await decide(client, assessment_body(value=20, comparator="<"))

    _, samples = await scrape(client)

    def recorded(eligibility: str, risk_group: str) -> float:
        labels = {"eligibility": eligibility, "risk_group": risk_group, "classifier": CLASSIFIER}
        return value(samples, "il6_decisions_recorded_total", **labels)

    assert replayed.headers["idempotent-replayed"] == "true"
    assert recorded("eligible", "low") == 1
    assert recorded("ineligible", "high") == 1
    assert recorded("indeterminate", "none") == 1
    assert value(samples, "il6_decisions_replayed_total") == 1
    assert value(samples, "il6_audit_records_appended_total") == 3
    assert value(samples, "il6_audit_batch_records_sum") == 3
    assert value(samples, "il6_audit_chain_head_seq") == last.json()["audit"]["seq"]
    committed = value(samples, "il6_audit_transaction_duration_seconds_count", outcome="committed")
    assert committed == 4  # one a request here, each alone: the replay's found its decision in one too
    assert value(samples, "il6_audit_transaction_duration_seconds_sum", outcome="committed") > 0
    assert value(samples, "il6_audit_transaction_duration_seconds_count", outcome="failed") == 0


async def test_requests_are_timed_by_route_template_and_counted_by_status(client: httpx.AsyncClient) -> None:
    subject = subject_id("METRICS")
    created = await decide(client, assessment_body(subject=subject, value=VALUE, comparator=None))
    decision_id = created.json()["id"]
    assert (await client.get(f"/v1/subjects/{subject}/assessments")).status_code == 200
    assert (await client.get(f"/v1/assessments/{decision_id}")).status_code == 200
    assert (await client.get(f"/v1/assessments/{uuid.uuid4()}")).status_code == 404
    assert (await client.get(f"/v2/subjects/{subject}")).status_code == 404
    invalid = await client.post("/v1/assessments", json=assessment_body(subject=subject, value="many"))
    assert invalid.status_code == 422

    text, samples = await scrape(client)

    def responses(method: str, route: str, status: int) -> float:
        return value(samples, "il6_http_responses_total", method=method, route=route, status=str(status))

    def timed(method: str, route: str) -> float:
        return value(samples, "il6_http_request_duration_seconds_count", method=method, route=route)

    assert timed("GET", "/v1/subjects/{subject_id}/assessments") == 1
    assert responses("GET", "/v1/subjects/{subject_id}/assessments", 200) == 1
    assert timed("GET", "/v1/assessments/{assessment_id}") == 2
    assert responses("GET", "/v1/assessments/{assessment_id}", 200) == 1
    assert responses("GET", "/v1/assessments/{assessment_id}", 404) == 1
    assert responses("GET", "<unmatched>", 404) == 1
    assert responses("POST", "/v1/assessments", 201) == 1
    assert responses("POST", "/v1/assessments", 422) == 1
    assert timed("POST", "/v1/assessments") == 2
    bucket = ("il6_http_request_duration_seconds_bucket", "GET", "/v1/assessments/{assessment_id}", "+Inf")
    assert value(samples, bucket[0], method=bucket[1], route=bucket[2], le=bucket[3]) == 2
    # Nothing of the subject, its decision, the value or the caller in any label.
    for secret in (subject, decision_id, str(VALUE), await caller_of(client)):
        assert secret not in text
    assert client.headers["Authorization"].removeprefix("Bearer ") not in text


async def test_the_database_pool_is_shown(client: httpx.AsyncClient, database_url: str) -> None:
    await decide(client, assessment_body())

    _, samples = await scrape(client)

    size = value(samples, "il6_db_pool_size")
    assert size == (10 if database_url.startswith("postgresql") else 5)  # IL6_DB_POOL_SIZE; SQLAlchemy's
    assert 0 <= value(samples, "il6_db_pool_checked_out") <= size
    assert value(samples, "il6_db_pool_checked_in") >= 1  # the decision's connection, back in the pool
    assert value(samples, "il6_db_pool_overflow") == 0


async def test_a_request_refused_before_routing_is_counted_as_unmatched(client: httpx.AsyncClient) -> None:
    refused = await client.get("/v1/assays", headers=bearer(UNKNOWN_KEY))
    assert refused.status_code == 401

    _, samples = await scrape(client)

    # Credentials are checked before any route is chosen (nothing is read for an unknown caller).
    assert value(samples, "il6_http_responses_total", method="GET", route="<unmatched>", status="401") == 1
    assert value(samples, "il6_auth_failures_total", stage="authentication", reason="unknown-key") == 1


async def test_json_log_lines_parse_and_name_their_request(
    client: httpx.AsyncClient, json_log: io.StringIO
) -> None:
    subject = subject_id("JSONLOG")
    body = json.dumps(assessment_body(subject=subject, value=VALUE, comparator=None))
    headers = {"content-type": "application/json", "x-request-id": "req-json-1"}
    created = await client.post("/v1/assessments", content=body, headers=headers)
    refused = await client.get("/v1/assays", headers=bearer(UNKNOWN_KEY) | {"x-request-id": "req-json-2"})
    assert (created.status_code, refused.status_code) == (201, 401)

    lines = [json.loads(line) for line in json_log.getvalue().splitlines()]
    service = [line for line in lines if line["logger"].startswith("app.")]

    by_request = {line["request_id"]: line for line in service if line["logger"] == "app.requests"}
    assert by_request["req-json-1"] | {"duration_ms": 0} == {
        "time": by_request["req-json-1"]["time"],
        "level": "INFO",
        "logger": "app.requests",
        "message": by_request["req-json-1"]["message"],
        "request_id": "req-json-1",
        "method": "POST",
        "route": "/v1/assessments",
        "status": 201,
        "duration_ms": 0,
        "caller": await caller_of(client),
    }
    assert by_request["req-json-2"]["status"] == 401
    refusal = [line for line in service if line["logger"] == "app.access"]
    assert refusal
    assert {line["request_id"] for line in refusal} == {"req-json-2"}
    assert all(line["time"].endswith("Z") for line in service)
    assert not [line for line in service if subject in json.dumps(line) or str(VALUE) in json.dumps(line)]
