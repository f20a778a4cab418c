"""Who may call what, on SQLite and PostgreSQL: a credential on every protected operation, scopes, sites (a
record of another site reads as one that does not exist), the caller the audit trail names, rate limits,
refusals counted and logged without secrets, CORS, security headers, and hostile bodies."""

import csv
import io
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import Engine, select

from app.settings import Environment, Settings
from app.store.migrations import PROJECT_ROOT
from app.store.models import Assessment
from tests.factories import assessment_body, subject_id
from tests.fhir_factories import hook_call, observation
from tests.integration.conftest import UNKNOWN_KEY, app_client, bearer, count_rows, key_headers

PROBLEM = "application/problem+json"
JSON = {"content-type": "application/json"}
OPENAPI: dict[str, Any] = json.loads((PROJECT_ROOT / "openapi" / "openapi.json").read_text(encoding="utf-8"))
OPERATIONS = {
    (method.upper(), path): operation
    for path, item in OPENAPI["paths"].items()
    for method, operation in item.items()
}
PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/problems/{slug}"),
    ("POST", "/v1/redcap/data-entry-trigger"),  # authenticated by its own trigger secret
}
PROTECTED = sorted(set(OPERATIONS) - PUBLIC)
PATH_VALUES = {
    "assessment_id": str(uuid.uuid4()),
    "subject_id": "PIT-0001",
    "key_id": "0123456789abcdef",
    "name": "il6-enrichment",
    "version": "1.0.0",
    "slug": "unauthenticated",
}
Answer = tuple[int, str | None, str | None, str | None]
"""Status, media type, problem type and challenge scheme of an answer."""
REFUSED: Answer = (401, PROBLEM, "/problems/unauthenticated", "Bearer")
CREDENTIALS: dict[str, dict[str, str] | None] = {
    "none": {},
    "basic": {"Authorization": "Basic dXNlcjpwYXNzd29yZA=="},
    "malformed": bearer("not-an-il6-key"),
    "unknown": bearer(UNKNOWN_KEY),
    "revoked": None,  # made by the test: a key with every scope for every site, revoked
}


async def send(
    client: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    content: bytes | AsyncIterator[bytes] | None = None,
) -> httpx.Response:
    """A request with ``headers`` in place of the client's own key (``{}``: no Authorization at all)."""
    request = client.build_request(
        method, path.format(**PATH_VALUES), content=content, headers=None if content is None else JSON
    )
    del request.headers["authorization"]
    request.headers.update(headers)
    return await client.send(request)


def summary(response: httpx.Response) -> Answer:
    media_type, challenge = response.headers.get("content-type"), response.headers.get("www-authenticate", "")
    kind = response.json().get("type") if media_type == PROBLEM else None
    return response.status_code, media_type, kind, challenge.split(" ", 1)[0] or None


def assert_problem(response: httpx.Response, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.json()["type"] == f"/problems/{slug}"


async def revoked_key(client: httpx.AsyncClient) -> dict[str, str]:
    """Headers carrying a key with every scope for every site, revoked."""
    body = {"name": f"tests-{uuid.uuid4().hex[:12]}", "scopes": ["assess", "read", "admin"], "sites": None}
    created = await client.post("/v1/keys", json=body)
    assert created.status_code == 201, created.text
    revoked = await client.post(f"/v1/keys/{created.json()['key_id']}/revoke", json={"reason": "tests"})
    assert revoked.status_code == 200, revoked.text
    return bearer(created.json()["secret"])


def counted(metrics: str, name: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Counter ``name``'s samples in Prometheus text, by the values of ``labels``."""
    return {
        tuple(sample.labels[label] for label in labels): sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == name
    }


def logged(caplog: pytest.LogCaptureFixture) -> str:
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("httpx", "httpcore")))


def settings_for(database_url: str, **changes: Any) -> Settings:
    return Settings(database_url=SecretStr(database_url), environment=Environment.TEST, **changes)


def test_the_document_marks_exactly_the_public_operations_as_needing_no_credential() -> None:
    assert {op for op, operation in OPERATIONS.items() if "security" not in operation} == PUBLIC
    assert all(OPERATIONS[op]["security"] == [{"bearer": []}] for op in PROTECTED)


async def not_refused(
    client: httpx.AsyncClient,
    headers: dict[str, str],
    body: bytes,
    methods: tuple[str, ...] = ("GET", "POST"),
) -> dict[str, Answer]:
    """Every protected operation (of ``methods``) that does not refuse a request with ``headers``, and how
    it answers instead; POSTs carry ``body``."""
    answers = {}
    for method, path in PROTECTED:
        if method in methods:
            answer = summary(await send(client, method, path, headers, body if method == "POST" else None))
            if answer != REFUSED:
                answers[f"{method} {path}"] = answer
    return answers


@pytest.mark.parametrize("credential", CREDENTIALS)
async def test_every_protected_operation_refuses_a_request_without_an_accepted_credential(
    client: httpx.AsyncClient, credential: str
) -> None:
    headers = CREDENTIALS[credential]
    if headers is None:
        headers = await revoked_key(client)

    assert await not_refused(client, headers, b"{}") == {}
    assert len(PROTECTED) >= 20


async def test_no_body_is_read_for_a_caller_without_credentials(client: httpx.AsyncClient) -> None:
    assert await not_refused(client, {}, b'{"unterminated": ', methods=("POST",)) == {}


async def test_public_operations_answer_without_credentials(client: httpx.AsyncClient) -> None:
    answers = {
        f"{method} {path}": (await send(client, method, path, {})).status_code
        for method, path in [*sorted(PUBLIC), ("GET", "/openapi.json"), ("GET", "/docs")]
    }

    assert answers == {
        "GET /healthz": 200,
        "GET /problems/{slug}": 200,
        "GET /readyz": 200,
        "POST /v1/redcap/data-entry-trigger": 404,  # the receiver is not configured here
        "GET /openapi.json": 200,
        "GET /docs": 200,
    }


async def test_an_assess_only_key_decides_but_reads_nothing(client: httpx.AsyncClient) -> None:
    decided = (await client.post("/v1/assessments", json=assessment_body())).json()
    assess = await key_headers(client, scopes=("assess",))
    reads: list[tuple[str, str, Any]] = [
        ("GET", f"/v1/assessments/{decided['id']}", None),
        ("GET", f"/v1/subjects/{decided['subject_id']}/assessments", None),
        ("POST", f"/v1/assessments/{decided['id']}/replay", {}),
        ("GET", "/v1/audit/verify", None),
        ("POST", "/v1/audit/verify", {"checkpoints": []}),
        ("GET", "/v1/audit/checkpoint", None),
        ("GET", "/v1/audit/export", None),
        ("GET", "/v1/exports/sdtm-lb.csv", None),
        ("GET", "/metrics", None),
    ]

    for method, path, body in reads:
        assert_problem(await client.request(method, path, json=body, headers=assess), 403, "forbidden")
    assert (await client.post("/v1/assessments", json=assessment_body(), headers=assess)).status_code == 201


async def test_a_read_only_key_reads_but_decides_nothing(client: httpx.AsyncClient, db: Engine) -> None:
    subject = subject_id()
    read = await key_headers(client, scopes=("read",))
    decisions = [
        ("/v1/assessments", assessment_body(subject=subject)),
        ("/v1/assessments/batch", [assessment_body(subject=subject)]),
        ("/cds-services/il6-eligibility", hook_call(observation(subject=None), subject=subject)),
    ]

    for path, body in decisions:
        assert_problem(await client.post(path, json=body, headers=read), 403, "forbidden")
    assert count_rows(db, subject) == 0
    assert (await client.get(f"/v1/subjects/{subject}/assessments", headers=read)).status_code == 200


@pytest.mark.parametrize("scope", ["assess", "read", "admin"])
async def test_reference_data_and_discovery_answer_any_key(client: httpx.AsyncClient, scope: str) -> None:
    headers = await key_headers(client, scopes=(scope,), sites=["PIT"])

    for path in ("/v1/classifiers", "/v1/classifiers/il6-enrichment/1.0.0", "/v1/assays", "/cds-services"):
        assert (await client.get(path, headers=headers)).status_code == 200, path


async def decide(client: httpx.AsyncClient, headers: dict[str, str], **fields: Any) -> dict[str, Any]:
    response = await client.post("/v1/assessments", json=assessment_body(**fields), headers=headers)
    assert response.status_code == 201, response.text
    decision: dict[str, Any] = response.json()
    return decision


def same_answer(response: httpx.Response) -> tuple[int, dict[str, str], bytes]:
    """Everything a caller can see of an answer but what is specific to its request."""
    headers = {name: value for name, value in response.headers.items() if name != "x-request-id"}
    return response.status_code, headers, response.content


async def test_another_sites_decision_reads_as_one_that_does_not_exist(client: httpx.AsyncClient) -> None:
    pit, upmc = await key_headers(client, sites=["PIT"]), await key_headers(client, sites=["UPMC"])
    theirs = await decide(client, upmc, site_id="UPMC")
    hidden, unknown = f"/v1/assessments/{theirs['id']}", f"/v1/assessments/{uuid.uuid4()}"

    read = await client.get(hidden, headers=pit)
    assert read.status_code == 404
    assert same_answer(read) == same_answer(await client.get(unknown, headers=pit))
    listed = await client.get(f"/v1/subjects/{theirs['subject_id']}/assessments", headers=pit)
    assert listed.json() == {"items": [], "next_cursor": None}
    assert same_answer(listed) == same_answer(
        await client.get(f"/v1/subjects/{subject_id()}/assessments", headers=pit)
    )
    replayed = await client.post(f"{hidden}/replay", headers=pit)
    assert_problem(replayed, 404, "not-found")
    assert same_answer(replayed) == same_answer(await client.post(f"{unknown}/replay", headers=pit))
    assert (await client.get(hidden, headers=upmc)).json() == theirs


async def test_a_correction_cannot_name_another_sites_decision(client: httpx.AsyncClient) -> None:
    pit, upmc = await key_headers(client, sites=["PIT"]), await key_headers(client, sites=["UPMC"])
    theirs = await decide(client, upmc, site_id="UPMC")

    async def correct(supersedes: str) -> httpx.Response:
        body = assessment_body(subject=theirs["subject_id"], site_id="PIT", value=3, comparator=None)
        body |= {"supersedes": supersedes, "correction_reason": "Re-reported by the laboratory."}
        return await client.post("/v1/assessments", json=body, headers=pit)

    named = await correct(theirs["id"])
    assert_problem(named, 422, "validation-error")
    assert same_answer(named) == same_answer(await correct(str(uuid.uuid4())))
    assert (await client.get(f"/v1/assessments/{theirs['id']}")).json()["superseded_by"] is None


async def test_exports_hold_only_the_callers_sites(client: httpx.AsyncClient) -> None:
    pit, upmc = await key_headers(client, sites=["PIT"]), await key_headers(client, sites=["UPMC"])
    ours, theirs = await decide(client, pit, site_id="PIT"), await decide(client, upmc, site_id="UPMC")

    export = await client.get("/v1/exports/sdtm-lb.csv", headers=pit)
    assert export.status_code == 200
    rows = list(csv.DictReader(io.StringIO(export.text)))
    assert ours["subject_id"] in {row["USUBJID"] for row in rows}
    assert {row["SITEID"] for row in rows} == {"PIT"}
    assert theirs["subject_id"] not in export.text
    asked_for_theirs = await client.get("/v1/exports/sdtm-lb.csv", params={"site_id": "UPMC"}, headers=pit)
    assert asked_for_theirs.text.count("\r\n") == 1  # the header row alone
    assert theirs["subject_id"] in (await client.get("/v1/exports/sdtm-lb.csv")).text
    every_site = await key_headers(client, scopes=("read",))
    # The chain spans every site: exporting or verifying it is for a caller with every site.
    for path in ("/v1/audit/export", "/v1/audit/verify", "/v1/audit/checkpoint"):
        assert_problem(await client.get(path, headers=pit), 403, "forbidden")
        assert (await client.get(path, headers=every_site)).status_code == 200, path


async def test_a_site_key_decides_only_for_its_site_alone_or_in_a_batch(
    client: httpx.AsyncClient, db: Engine
) -> None:
    pit = await key_headers(client, sites=["PIT"])
    ours, theirs, none = (assessment_body(site_id=site) for site in ("PIT", "UPMC", None))

    single = [await client.post("/v1/assessments", json=body, headers=pit) for body in (ours, theirs, none)]
    batch = await client.post(
        "/v1/assessments/batch", json=[ours | {"subject_id": subject_id()}, theirs], headers=pit
    )

    assert [answer.status_code for answer in single] == [201, 403, 403]
    for refused in single[1:]:
        assert_problem(refused, 403, "forbidden")
    assert batch.status_code == 200, batch.text
    items = batch.json()["items"]
    assert [item["status"] for item in items] == [201, 403]
    assert items[1]["problem"]["type"] == "/problems/forbidden"
    assert [count_rows(db, body["subject_id"]) for body in (ours, theirs, none)] == [1, 0, 0]


async def test_the_audit_record_names_the_key_never_a_self_asserted_client(
    client: httpx.AsyncClient, db: Engine
) -> None:
    name = f"lims-{uuid.uuid4().hex[:8]}"
    lims = await key_headers(client, name=name) | {"X-Client-ID": "someone-else"}

    single = await client.post("/v1/assessments", json=assessment_body(), headers=lims)
    batch = await client.post("/v1/assessments/batch", json=[assessment_body()], headers=lims)
    hook = await client.post("/cds-services/il6-eligibility", json=hook_call(observation()), headers=lims)

    decided = [single.json(), batch.json()["items"][0]["assessment"]]
    assert [decision["audit"]["client_id"] for decision in decided] == [name, name]
    ids = [uuid.UUID(decision["id"]) for decision in decided] + [uuid.UUID(hook.json()["cards"][0]["uuid"])]
    with db.connect() as connection:
        named = connection.execute(select(Assessment.client_id).where(Assessment.id.in_(ids))).scalars()
        assert list(named) == [name] * 3


async def test_a_caller_past_its_burst_is_throttled_alone(database_url: str) -> None:
    settings = settings_for(database_url, rate_limit_per_minute=60, rate_limit_burst=3)
    async for client in app_client(settings):
        first, second = await key_headers(client), await key_headers(client)  # the admin's 1st and 2nd

        answers = [await client.get("/v1/classifiers", headers=first) for _ in range(6)]

        statuses = [answer.status_code for answer in answers]
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses, statuses
        throttled = answers[statuses.index(429)]
        assert_problem(throttled, 429, "rate-limited")
        assert re.fullmatch(r"[1-9][0-9]*", throttled.headers["retry-after"])
        assert (await client.get("/v1/classifiers", headers=second)).status_code == 200
        metrics = (await client.get("/metrics")).text  # the admin's 3rd
        assert counted(metrics, "il6_rate_limited_total") == {(): statuses.count(429)}


async def test_metrics_need_the_read_scope_for_every_site_unless_made_public(
    client: httpx.AsyncClient, database_url: str
) -> None:
    assess, read = await key_headers(client, scopes=("assess",)), await key_headers(client, scopes=("read",))
    one_site = await key_headers(client, scopes=("read",), sites=["PIT"])

    assert summary(await send(client, "GET", "/metrics", {})) == REFUSED
    assert_problem(await client.get("/metrics", headers=assess), 403, "forbidden")
    # Decisions by outcome and the chain's head span sites: not for a key limited to some.
    assert_problem(await client.get("/metrics", headers=one_site), 403, "forbidden")
    assert (await client.get("/metrics", headers=read)).headers["content-type"].startswith("text/plain")
    async for public in app_client(settings_for(database_url, metrics_public=True)):
        answer = await send(public, "GET", "/metrics", {})
        assert answer.status_code == 200
        assert "il6_rate_limited_total" in answer.text


async def test_refusals_are_counted_by_reason_and_never_name_a_subject_or_a_secret(
    client: httpx.AsyncClient,
) -> None:
    subject = subject_id("CANARY")
    read_pit = await key_headers(client, scopes=("read",), sites=["PIT"])
    revoked = await revoked_key(client)
    for headers in ({}, {}, bearer("not-an-il6-key"), bearer(UNKNOWN_KEY), revoked):
        await send(client, "GET", "/v1/classifiers", headers)
    await client.post("/v1/assessments", json=assessment_body(subject=subject), headers=read_pit)
    await client.get("/v1/audit/export", headers=read_pit)

    metrics = (await client.get("/metrics")).text

    assert counted(metrics, "il6_auth_failures_total", "stage", "reason") == {
        ("authentication", "missing"): 2,
        ("authentication", "malformed-key"): 1,
        ("authentication", "unknown-key"): 1,
        ("authentication", "revoked"): 1,
        ("authorisation", "missing-scope"): 1,
        ("authorisation", "not-every-site"): 1,
    }
    for secret in (client.headers["authorization"], read_pit["Authorization"], revoked["Authorization"]):
        assert secret.removeprefix("Bearer ")[21:] not in metrics
    assert subject not in metrics


async def test_a_site_refusal_is_counted_and_logged(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pit = await key_headers(client, sites=["PIT"])

    refused = await client.post(
        "/v1/assessments", json=assessment_body(site_id="UPMC"), headers=pit | {"x-request-id": "req-site-1"}
    )
    batch = await client.post("/v1/assessments/batch", json=[assessment_body(site_id="UPMC")], headers=pit)

    assert refused.status_code == 403
    assert batch.json()["items"][0]["status"] == 403
    metrics = (await client.get("/metrics")).text
    assert counted(metrics, "il6_auth_failures_total", "stage", "reason") == {("authorisation", "site"): 2}
    assert re.search(r"authorisation refused: site caller=\S+ request_id=req-site-1", logged(caplog))


async def test_refusals_are_logged_by_reason_and_request_id_and_callers_by_name(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    revoked, name = await revoked_key(client), f"lims-{uuid.uuid4().hex[:8]}"
    named = await key_headers(client, name=name)

    await send(client, "GET", "/v1/classifiers", revoked | {"x-request-id": "req-revoked-1"})
    await send(client, "GET", "/v1/classifiers", bearer(UNKNOWN_KEY) | {"x-request-id": "req-unknown-1"})
    await client.get("/v1/classifiers", headers=named | {"x-request-id": "req-named-1"})

    lines = logged(caplog)
    assert "authentication refused: revoked request_id=req-revoked-1" in lines
    assert "authentication refused: unknown-key request_id=req-unknown-1" in lines
    assert re.search(r"GET \S+ 401 \S+ request_id=req-revoked-1 caller=-$", lines, re.MULTILINE)
    assert re.search(
        rf"GET /v1/classifiers 200 \S+ request_id=req-named-1 caller={name}$", lines, re.MULTILINE
    )
    for secret in (revoked["Authorization"], named["Authorization"], bearer(UNKNOWN_KEY)["Authorization"]):
        assert secret.removeprefix("Bearer ")[21:] not in lines


PREFLIGHT = {
    "Origin": "https://edc.example.org",
    "Access-Control-Request-Method": "POST",
    "Access-Control-Request-Headers": "authorization, content-type",
}


async def test_cors_is_off_unless_origins_are_configured_and_then_for_them_alone(
    client: httpx.AsyncClient, database_url: str
) -> None:
    origin, other = PREFLIGHT["Origin"], {"Origin": "https://evil.example"}
    for answer in (
        await client.options("/v1/assessments", headers=PREFLIGHT),
        await client.get("/v1/classifiers", headers={"Origin": origin}),
    ):
        assert "access-control-allow-origin" not in answer.headers
    async for configured in app_client(settings_for(database_url, cors_allow_origins=[origin])):
        preflight = await configured.options("/v1/assessments", headers=PREFLIGHT)
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == origin
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        simple = await configured.get("/v1/classifiers", headers={"Origin": origin})
        assert simple.headers["access-control-allow-origin"] == origin
        for answer in (
            await configured.options("/v1/assessments", headers=PREFLIGHT | other),
            await configured.get("/v1/classifiers", headers=other),
        ):
            assert "access-control-allow-origin" not in answer.headers


async def test_security_headers_are_on_every_answer(client: httpx.AsyncClient) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b" " * 4096

    answers = {
        "201": await client.post("/v1/assessments", json=assessment_body()),
        "401": await send(client, "GET", "/v1/classifiers", {}),
        "404": await client.get(f"/v1/assessments/{uuid.uuid4()}"),
        "413": await client.post("/v1/assessments", content=b" " * (64 * 1024 + 1), headers=JSON),
        # Chunked: no Content-Length, so the limit is met while the route reads the body.
        "413 chunked": await client.post("/v1/assessments", content=chunks(), headers=JSON),
    }

    assert [answer.status_code for answer in answers.values()] == [201, 401, 404, 413, 413]
    assert "content-length" not in answers["413 chunked"].request.headers
    for answer in answers.values():
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["cache-control"] == "no-store"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert "default-src 'none'" in answer.headers["content-security-policy"]


@pytest.mark.parametrize("path", ["/v1/assessments", "/v1/assessments/batch"])
async def test_deeply_nested_json_is_refused_at_once(
    client: httpx.AsyncClient, db: Engine, path: str
) -> None:
    body = assessment_body()
    nested = json.dumps(body).replace('"value": 1.5', '"value": ' + "[" * 10_000 + "]" * 10_000)
    started = time.perf_counter()

    content = f"[{nested}]" if path.endswith("batch") else nested
    response = await client.post(path, content=content, headers=JSON)

    assert time.perf_counter() - started < 2
    assert_problem(response, 422, "validation-error")
    assert response.json()["errors"][0]["detail"].endswith("nested too deeply")
    assert count_rows(db, body["subject_id"]) == 0
