"""Every malformed request gets an RFC 9457 problem, never a 500, never a stored row, never an echo."""

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine

from tests.factories import assessment_body, subject_id
from tests.integration.conftest import count_rows

MARKER = "SECRET-MARKER-7731"


def body_with(**changes: Any) -> str:
    """A valid body with fields replaced: keys are paths such as 'il6.value'; None deletes."""
    body = assessment_body()
    for path, value in changes.items():
        *parents, leaf = path.split(".")
        target = body
        for parent in parents:
            target = target[parent]
        if value is None:
            del target[leaf]
        else:
            target[leaf] = value
    return json.dumps(body)


def raw_value(literal: str) -> str:
    """A valid body whose il6.value is the given JSON text, verbatim."""
    return body_with(**{"il6.value": 999_999}).replace("999999", literal)


CASES: list[tuple[str, str | bytes, str, str | None]] = [
    # id, body, expected pointer (or "" for the whole body), detail fragment
    ("negative", body_with(**{"il6.value": -1}), "/il6/value", "greater than or equal to 0"),
    ("nan-literal", raw_value("NaN"), "", "not a JSON number"),
    ("infinity-literal", raw_value("Infinity"), "", "not a JSON number"),
    ("minus-infinity-literal", raw_value("-Infinity"), "", "not a JSON number"),
    ("nan-string", body_with(**{"il6.value": "NaN"}), "/il6/value", "JSON number"),
    ("infinity-string", body_with(**{"il6.value": "Infinity"}), "/il6/value", "JSON number"),
    ("number-as-string", body_with(**{"il6.value": "1.5"}), "/il6/value", "JSON number"),
    ("boolean", body_with(**{"il6.value": True}), "/il6/value", "JSON number"),
    ("null-value", body_with(**{"il6.value": "__null__"}).replace('"__null__"', "null"), "/il6/value", None),
    ("huge-exponent", raw_value("1e400"), "/il6/value", "less than or equal to 1e9"),
    ("huge-integer", raw_value("9" * 400), "/il6/value", "less than or equal to 1e9"),
    ("integer-past-digit-limit", raw_value("9" * 5000), "", "out of range"),
    ("exponent-past-decimal-range", raw_value("1e9999999999999999999999"), "", "out of range"),
    ("too-large", raw_value("1e10"), "/il6/value", "less than or equal to 1e9"),
    ("too-precise", raw_value("1.4999999999999999"), "/il6/value", "15 significant digits"),
    ("missing-il6", body_with(il6=None), "/il6", "Field required"),
    ("missing-subject", body_with(subject_id=None), "/subject_id", "Field required"),
    ("missing-value", body_with(**{"il6.value": None}), "/il6/value", "Field required"),
    ("missing-specimen", body_with(specimen=None), "/specimen", "Field required"),
    ("unknown-field", body_with(extra=MARKER), "", "Unknown field"),
    ("unknown-nested-field", body_with(**{"il6.note": MARKER}), "/il6", "Unknown field"),
    ("unknown-field-named-like-a-subject", body_with(**{MARKER: 1}), "", "Unknown field"),
    ("unknown-unit", body_with(**{"il6.unit": "mg/L"}), "/il6/unit", "'pg/mL', 'ng/L', 'ng/mL'"),
    ("lowercase-unit", body_with(**{"il6.unit": "pg/ml"}), "/il6/unit", "UCUM"),
    ("unknown-assay", body_with(**{"il6.assay": "acme-il6"}), "/il6/assay", "elecsys-il6"),
    ("unknown-comparator", body_with(**{"il6.comparator": "~"}), "/il6/comparator", None),
    ("less-than-zero", body_with(**{"il6.value": 0, "il6.comparator": "<"}), "/il6/value", "< 0"),
    ("unknown-version", body_with(classifier="il6-enrichment@9.9.9"), "/classifier", "servable"),
    ("unknown-classifier", body_with(classifier="other"), "/classifier", "servable"),
    ("malformed-pin", body_with(classifier="il6 enrichment"), "/classifier", "pattern"),
    ("malformed-subject", body_with(subject_id=f"-{MARKER}"), "/subject_id", "pattern"),
    ("subject-too-long", body_with(subject_id="A" * 65), "/subject_id", "pattern"),
    ("subject-not-string", body_with(subject_id=42), "/subject_id", "valid string"),
    ("malformed-site", body_with(site_id="P T"), "/site_id", "pattern"),
    ("unknown-specimen", body_with(**{"specimen.type": "urine"}), "/specimen/type", None),
    (
        "naive-timestamp",
        body_with(**{"specimen.collected_at": "2026-11-20T09:30:00"}),
        "/specimen/collected_at",
        "UTC offset",
    ),
    (
        "future-timestamp",
        body_with(**{"specimen.collected_at": "2999-01-01T00:00:00Z"}),
        "/specimen/collected_at",
        "future",
    ),
    (
        "numeric-timestamp",
        body_with(**{"specimen.collected_at": 1700000000}),
        "/specimen/collected_at",
        "RFC 3339",
    ),
    (
        "garbage-timestamp",
        body_with(**{"specimen.collected_at": "yesterday"}),
        "/specimen/collected_at",
        None,
    ),
    ("empty-body", "", "", "empty"),
    ("not-json", "subject=PIT-0042", "", "not valid JSON"),
    ("truncated-json", body_with()[:-5], "", "not valid JSON"),
    ("json-array", "[]", "", None),
    ("json-string", '"hello"', "", None),
    (
        "duplicate-key",
        body_with().replace('{"subject_id"', '{"subject_id": "A", "subject_id"', 1),
        "",
        "duplicate key",
    ),
    ("not-utf8", body_with().encode("utf-16"), "", "UTF-8"),
    ("nul-in-a-string", body_with(**{"site_id": "PIT\u0000"}), "", "U+0000"),
    ("deeply-nested", "[" * 20_000 + "]" * 20_000, "", "nested too deeply"),
]


@pytest.mark.parametrize(("body", "pointer", "fragment"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
async def test_bad_body_is_a_problem_and_stores_nothing(
    client: httpx.AsyncClient, db: Engine, body: str | bytes, pointer: str, fragment: str | None
) -> None:
    before = count_rows(db)

    response = await client.post(
        "/v1/assessments", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["type"] == "/problems/validation-error"
    assert problem["status"] == 422
    assert problem["title"]
    pointers = [error.get("pointer") for error in problem["errors"]]
    assert pointer in pointers, problem
    if fragment is not None:
        assert any(fragment in error["detail"] for error in problem["errors"]), problem
    assert MARKER not in response.text
    assert count_rows(db) == before


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/x-www-form-urlencoded", "application/json; charset=latin-1", None],
)
async def test_non_json_media_type_is_415(
    client: httpx.AsyncClient, db: Engine, content_type: str | None
) -> None:
    subject = subject_id()
    headers = {} if content_type is None else {"content-type": content_type}

    response = await client.post(
        "/v1/assessments", content=json.dumps(assessment_body(subject=subject)), headers=headers
    )

    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/unsupported-media-type"
    assert count_rows(db, subject) == 0


async def test_negative_zero_is_zero(client: httpx.AsyncClient) -> None:
    body = json.dumps(assessment_body(value=999_999, comparator=None)).replace("999999", "-0.0")

    response = await client.post(
        "/v1/assessments", content=body, headers={"content-type": "application/json"}
    )

    assert response.status_code == 201
    assert '"pg_per_ml":0.0,' in response.text, response.text
    assert '"pg_per_ml":-0' not in response.text


@pytest.mark.parametrize(
    "cursor_text",
    ["seq:99999999999999999999999999999", "seq:9223372036854775808", "seq:\uff11", "seq:0", "seq:-1", "nope"],
    ids=["overflow", "past-bigint", "non-ascii-digit", "zero", "negative", "not-a-cursor"],
)
async def test_forged_cursors_are_422(client: httpx.AsyncClient, cursor_text: str) -> None:
    cursor = base64.urlsafe_b64encode(cursor_text.encode()).decode().rstrip("=")

    response = await client.get(f"/v1/subjects/{subject_id()}/assessments", params={"cursor": cursor})

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"detail": "not a cursor this service issued", "parameter": "cursor"}
    ]


OUTSIDE_UTC_YEARS = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"]
"""Valid RFC 3339 moments whose UTC time falls before year 1 or after year 9999."""


@pytest.mark.parametrize("moment", OUTSIDE_UTC_YEARS, ids=["before-year-1", "after-year-9999"])
async def test_a_moment_the_store_cannot_hold_is_422(client: httpx.AsyncClient, moment: str) -> None:
    key = {"name": f"tests-{subject_id()}", "scopes": ["read"], "sites": ["PIT"], "expires_at": moment}
    answers = {
        ("parameter", "from_time"): await client.get("/v1/audit/export", params={"from_time": moment}),
        ("parameter", "to_time"): await client.get("/v1/audit/export", params={"to_time": moment}),
        ("pointer", "/expires_at"): await client.post("/v1/keys", json=key),
        ("pointer", "/to_time"): await client.post(
            "/v1/classifiers/il6-enrichment/1.0.0/impact", json={"to_time": moment}
        ),
    }

    for (where, name), answer in answers.items():
        assert answer.status_code == 422, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
        assert answer.json()["errors"] == [
            {"detail": "Input should be a moment within the years 1 to 9999 in UTC", where: name}
        ]


async def test_path_errors_do_not_echo_the_path(client: httpx.AsyncClient) -> None:
    response = await client.get(f"/v1/assessments/{MARKER}")

    assert response.status_code == 422
    assert response.json()["errors"] == [
        {"detail": "Input should be a valid UUID.", "parameter": "assessment_id"}
    ]
    assert MARKER not in response.text


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
async def test_oversized_body_is_413_and_stores_nothing(
    client: httpx.AsyncClient, db: Engine, chunked: bool
) -> None:
    subject = subject_id()
    body = json.dumps(assessment_body(subject=subject))
    padded = (body[:-1] + " " * 70_000 + "}").encode()

    async def stream() -> AsyncIterator[bytes]:
        for start in range(0, len(padded), 8192):
            yield padded[start : start + 8192]

    response = await client.post(
        "/v1/assessments",
        content=stream() if chunked else padded,
        headers={"content-type": "application/json"},
    )

    assert response.status_code == 413
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "/problems/payload-too-large"
    assert response.headers["x-request-id"]
    assert count_rows(db, subject) == 0


async def test_charset_utf8_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/assessments",
        content=json.dumps(assessment_body()),
        headers={"content-type": "application/json; charset=UTF-8"},
    )

    assert response.status_code == 201


async def test_unknown_route_and_method_are_problems(client: httpx.AsyncClient) -> None:
    missing = await client.get("/v1/nothing-here")
    wrong_method = await client.delete("/v1/assessments")

    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["content-type"] == "application/problem+json"
    assert wrong_method.json()["status"] == 405
