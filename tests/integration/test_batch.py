"""POST /v1/assessments/batch: each result decided and recorded as if alone; errors stay with their item."""

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, text

from app.settings import Environment, Settings
from tests.factories import assessment_body
from tests.integration.conftest import app_client, count_rows

JSON = {"content-type": "application/json"}
NDJSON = {"content-type": "application/x-ndjson"}


def stored(db: Engine, subject: str) -> Any:
    with db.connect() as connection:
        return (
            connection.execute(
                text("SELECT request_body, request_media_type, input FROM assessment WHERE subject_id = :s"),
                {"s": subject},
            )
            .mappings()
            .one()
        )


async def test_a_json_array_is_decided_item_by_item(client: httpx.AsyncClient, db: Engine) -> None:
    bodies = [assessment_body(), assessment_body(value=20, comparator=None), assessment_body()]
    bodies[1]["il6"]["unit"] = "furlongs"  # this item alone is refused
    texts = [json.dumps(body) for body in bodies]

    response = await client.post("/v1/assessments/batch", content="[" + ", ".join(texts) + "]", headers=JSON)

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["failed"]) == (2, 1)
    assert [item["index"] for item in result["items"]] == [0, 1, 2]
    assert [item["status"] for item in result["items"]] == [201, 422, 201]
    refused = result["items"][1]["problem"]
    assert refused["type"] == "/problems/validation-error"
    assert refused["errors"][0]["pointer"] == "/il6/unit"
    assert "furlongs" not in json.dumps(refused)
    for index in (0, 2):
        item = result["items"][index]
        assert item["assessment"]["subject_id"] == bodies[index]["subject_id"]
        row = stored(db, bodies[index]["subject_id"])
        assert row["request_body"] == texts[index]  # the item's own bytes, exactly
        assert row["request_media_type"] == "application/json"
        document = row["input"] if isinstance(row["input"], dict) else json.loads(row["input"])
        assert document["reference"] == f"batch-item:{index}"
    assert count_rows(db, bodies[1]["subject_id"]) == 0


async def test_ndjson_items_are_lines_and_a_bad_line_is_only_that_item(
    client: httpx.AsyncClient, db: Engine
) -> None:
    first, last = assessment_body(), assessment_body(value=0.02, unit="ng/mL", comparator=None)
    lines = [json.dumps(first), '{"subject_id": ', json.dumps(last)]

    response = await client.post("/v1/assessments/batch", content="\n".join(lines) + "\n", headers=NDJSON)

    assert response.status_code == 200, response.text
    items = response.json()["items"]
    assert [item["status"] for item in items] == [201, 422, 201]
    assert items[1]["problem"]["errors"][0]["detail"].startswith("The body is not valid JSON")
    assert items[2]["assessment"]["risk"]["group"] == "high"
    assert stored(db, last["subject_id"])["request_body"] == lines[2]


async def test_a_batch_item_is_decided_as_if_sent_alone(client: httpx.AsyncClient) -> None:
    alone_body = assessment_body(value=17.85, comparator=None)
    in_batch_body = {**alone_body, "subject_id": alone_body["subject_id"] + "B"}

    alone = await client.post("/v1/assessments", json=alone_body)
    batch = await client.post("/v1/assessments/batch", json=[in_batch_body])

    assert alone.status_code == 201
    decided = batch.json()["items"][0]["assessment"]
    for part in ("eligibility", "risk", "il6", "classifier"):
        assert decided[part] == alone.json()[part]


async def test_a_retried_batch_returns_the_decisions_already_made(
    client: httpx.AsyncClient, db: Engine
) -> None:
    bodies = [assessment_body(), assessment_body()]
    headers = {**JSON, "Idempotency-Key": "batch-7f3c"}

    first = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=headers)
    again = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=headers)

    ids = [item["assessment"]["id"] for item in first.json()["items"]]
    assert [item["assessment"]["id"] for item in again.json()["items"]] == ids
    assert [item["assessment"]["audit"]["idempotency_key"] for item in again.json()["items"]] == [
        "batch-7f3c:0",
        "batch-7f3c:1",
    ]
    assert all(count_rows(db, body["subject_id"]) == 1 for body in bodies)


@pytest.mark.parametrize(
    ("content", "pointer"),
    [
        ("", ""),
        ("{}", ""),
        ("[]", ""),
        ("[1, 2", ""),
    ],
)
async def test_a_body_that_is_not_a_batch_is_refused_whole(
    client: httpx.AsyncClient, db: Engine, content: str, pointer: str
) -> None:
    before = count_rows(db)

    response = await client.post("/v1/assessments/batch", content=content, headers=JSON)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["pointer"] == pointer
    assert count_rows(db) == before


async def test_a_batch_must_be_json_or_ndjson(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/assessments/batch", content="a,b\n", headers={"content-type": "text/csv"}
    )
    assert response.status_code == 415
    assert response.headers["content-type"] == "application/problem+json"


@pytest.fixture
async def small_batches(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        batch_max_items=2,
        max_batch_body_bytes=2048,
    )
    async for client in app_client(settings):
        yield client


async def test_a_batch_over_the_item_limit_is_refused_whole(
    small_batches: httpx.AsyncClient, db: Engine
) -> None:
    bodies = [assessment_body() for _ in range(3)]

    response = await small_batches.post("/v1/assessments/batch", json=bodies)

    assert response.status_code == 422
    assert "at most 2" in response.json()["errors"][0]["detail"]
    assert all(count_rows(db, body["subject_id"]) == 0 for body in bodies)


async def test_a_batch_over_its_byte_limit_is_413_declared_or_streamed(
    small_batches: httpx.AsyncClient,
) -> None:
    content = json.dumps([assessment_body() for _ in range(2)]) + " " * 2048

    declared = await small_batches.post("/v1/assessments/batch", content=content, headers=JSON)

    async def chunks() -> AsyncIterator[bytes]:
        yield content.encode()

    streamed = await small_batches.post("/v1/assessments/batch", content=chunks(), headers=JSON)
    assert declared.status_code == streamed.status_code == 413
    # The batch limit applies to the batch path only: single decisions keep their own limit.
    single = await small_batches.post("/v1/assessments", json=assessment_body())
    assert single.status_code == 201
