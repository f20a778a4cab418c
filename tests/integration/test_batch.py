"""POST /v1/assessments/batch: each result decided and recorded as if alone; errors stay with their item."""

import gc
import json
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

import httpx
import pytest
from pydantic import SecretStr, TypeAdapter
from sqlalchemy import Engine, text

from app.api.routers import batch
from app.api.routers.batch import BatchOut
from app.domain.access import ALL_SITES, Principal, Scope
from app.domain.classifiers.registry import RegisteredVersion
from app.service.access import KeyService
from app.service.assessments import AssessmentService
from app.service.chain_writer import Answer, ChainWriter
from app.service.classifiers import ClassifierCatalog
from app.service.documents import Submission
from app.service.pending_decisions import Pending
from app.settings import Environment, Settings
from tests.factories import assessment_body, subject_id
from tests.integration.conftest import app_client, count_rows
from tests.integration.test_store_failures import (
    FAILING_SUBJECT,
    POSTGRES_COMMIT_FAILS,
    POSTGRES_UNDO,
    SQLITE_UNDO,
    SQLITE_WRITE_FAILS,
)

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


def assert_written_as_a_batch_out(response: httpx.Response) -> None:
    """The answer is the very JSON FastAPI writes for a BatchOut (the batch assembles it from its items')."""
    assert response.headers["content-type"] == "application/json"
    assert response.content == TypeAdapter(BatchOut).dump_json(BatchOut.model_validate_json(response.content))


async def test_a_json_array_is_decided_item_by_item(client: httpx.AsyncClient, db: Engine) -> None:
    bodies = [assessment_body(), assessment_body(value=20, comparator=None), assessment_body()]
    bodies[1]["il6"]["unit"] = "furlongs"  # this item alone is refused
    texts = [json.dumps(body) for body in bodies]

    response = await client.post("/v1/assessments/batch", content="[" + ", ".join(texts) + "]", headers=JSON)

    assert response.status_code == 200, response.text
    assert_written_as_a_batch_out(response)
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
    assert [item["replayed"] for item in first.json()["items"]] == [False, False]
    assert [item["replayed"] for item in again.json()["items"]] == [True, True]


async def test_a_retry_with_one_more_item_replays_the_rest_and_decides_it(
    client: httpx.AsyncClient, db: Engine
) -> None:
    bodies = [assessment_body(), assessment_body()]
    headers = {**JSON, "Idempotency-Key": "batch-grown"}
    await client.post("/v1/assessments/batch", content=json.dumps(bodies[:1]), headers=headers)

    again = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=headers)

    assert [(item["status"], item["replayed"]) for item in again.json()["items"]] == [
        (201, True),
        (201, False),
    ]
    assert count_rows(db, bodies[1]["subject_id"]) == 1


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


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=iso-8859-1",
        "application/x-ndjson; charset=utf-16",
        "application/json;charset=latin1",
    ],
)
async def test_a_batch_in_another_charset_is_415_as_a_single_request_is(
    client: httpx.AsyncClient, db: Engine, content_type: str
) -> None:
    body = assessment_body()
    headers = {"content-type": content_type}

    batch = await client.post("/v1/assessments/batch", content=json.dumps([body]), headers=headers)
    single = await client.post("/v1/assessments", content=json.dumps(body), headers=headers)

    assert batch.status_code == single.status_code == 415
    assert batch.headers["content-type"] == "application/problem+json"
    assert count_rows(db, body["subject_id"]) == 0


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"'])
async def test_a_batch_declared_utf8_is_accepted(client: httpx.AsyncClient, charset: str) -> None:
    response = await client.post(
        "/v1/assessments/batch",
        content=json.dumps([assessment_body()]),
        headers={"content-type": f"application/json; charset={charset}"},
    )

    assert response.status_code == 200, response.text


SECRET = "PIT-0042 IL6 4321.25"


async def test_an_unexpected_error_is_that_items_500_and_the_rest_are_answered(
    client: httpx.AsyncClient, db: Engine, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    bodies = [assessment_body(), assessment_body(subject=subject_id("EXPLODES")), assessment_body()]
    decide = AssessmentService._decide

    def exploding_for_one(submission: Submission, version: RegisteredVersion) -> dict[str, Any]:
        if submission.subject_id.startswith("EXPLODES"):
            raise RuntimeError(f"boom with {SECRET}")
        return decide(submission, version)

    # Deciding is where a batch item meets the rules: an unexpected error there is that item's own.
    monkeypatch.setattr(AssessmentService, "_decide", staticmethod(exploding_for_one))
    caplog.set_level(logging.INFO)

    response = await client.post(
        "/v1/assessments/batch",
        content=json.dumps(bodies),
        headers={**JSON, "x-request-id": "batch-boom-1"},
    )

    assert response.status_code == 200, response.text
    result = response.json()
    assert (result["created"], result["failed"], result["not_attempted"]) == (2, 1, 0)
    assert [item["status"] for item in result["items"]] == [201, 500, 201]
    assert result["items"][1]["problem"] == {
        "type": "/problems/internal-error",
        "title": "Internal error",
        "status": 500,
    }
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 0, 1]
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unexpected RuntimeError at" in logged
    assert "batch item 1 request_id=batch-boom-1" in logged
    assert SECRET not in logged
    assert bodies[1]["subject_id"] not in logged
    assert SECRET not in response.text


@pytest.fixture
def refusing_store(db: Engine) -> Iterator[None]:
    """The store refuses to record FAILING_SUBJECT, as tests/integration/test_store_failures.py makes it."""
    postgres = db.dialect.name == "postgresql"
    with db.begin() as connection:
        for statement in POSTGRES_COMMIT_FAILS if postgres else SQLITE_WRITE_FAILS:
            connection.execute(text(statement))
    yield
    with db.begin() as connection:
        for statement in POSTGRES_UNDO if postgres else SQLITE_UNDO:
            connection.execute(text(statement))


@pytest.mark.usefixtures("refusing_store")
async def test_the_audit_store_failing_stops_the_batch_and_the_rest_is_not_attempted(
    client: httpx.AsyncClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two items a chunk: the failure is in the first chunk, whose other item is recorded, and the second
    # chunk is not attempted.
    monkeypatch.setattr(batch, "CHUNK", 2)
    bodies = [
        assessment_body(),
        assessment_body(subject=FAILING_SUBJECT),
        assessment_body(),
        assessment_body(),
    ]

    response = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["retry-after"] == "5"
    result = response.json()
    assert (result["created"], result["failed"], result["not_attempted"]) == (1, 3, 2)
    assert [item["status"] for item in result["items"]] == [201, 503, 503, 503]
    failed, *not_attempted = (item["problem"] for item in result["items"][1:])
    assert failed["type"] == "/problems/audit-store-unavailable"
    assert not failed["detail"].startswith("Not attempted")
    for problem in not_attempted:
        assert problem["type"] == "/problems/audit-store-unavailable"
        assert problem["detail"].startswith("Not attempted")
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 0, 0, 0]


@pytest.mark.usefixtures("refusing_store")
async def test_the_audit_store_failing_in_a_later_chunk_keeps_the_chunks_before_and_stops_there(
    client: httpx.AsyncClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two items a chunk: the first chunk is recorded, the second fails for its second item (its first is
    # recorded alone), and the third, read and decided while the second was being recorded, is not
    # attempted: nothing of it is recorded.
    monkeypatch.setattr(batch, "CHUNK", 2)
    bodies = [assessment_body() for _ in range(6)]
    bodies[3] = assessment_body(subject=FAILING_SUBJECT)

    response = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=JSON)

    assert response.status_code == 200, response.text
    assert response.headers["retry-after"] == "5"
    result = response.json()
    assert (result["created"], result["failed"], result["not_attempted"]) == (3, 3, 2)
    assert [item["status"] for item in result["items"]] == [201, 201, 201, 503, 503, 503]
    assert [item["index"] for item in result["items"]] == list(range(6))
    assert not result["items"][3]["problem"]["detail"].startswith("Not attempted")
    assert all(item["problem"]["detail"].startswith("Not attempted") for item in result["items"][4:])
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 1, 1, 0, 0, 0]
    seqs = [item["assessment"]["audit"]["seq"] for item in result["items"][:3]]
    assert seqs == list(range(seqs[0], seqs[0] + 3))  # recorded in item order
    assert_written_as_a_batch_out(response)
    assert gc.isenabled()  # a batch stopped early turns the collector back on as well


async def test_a_batch_of_many_chunks_is_recorded_in_item_order_and_retried_as_a_whole(
    client: httpx.AsyncClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CHUNK", 3)
    bodies = [assessment_body() for _ in range(10)]
    bodies[4]["il6"]["unit"] = "furlongs"  # refused alone, in the middle of a chunk
    headers = {**JSON, "Idempotency-Key": "batch-chunks"}

    answers = [
        await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=headers)
        for _ in range(2)
    ]
    for answer in answers:
        assert_written_as_a_batch_out(answer)
    first, again = (answer.json() for answer in answers)

    statuses = [201] * 10
    statuses[4] = 422
    assert [item["status"] for item in first["items"]] == statuses
    assert [item["status"] for item in again["items"]] == statuses
    decided = [item for item in first["items"] if item["status"] == 201]
    seqs = [item["assessment"]["audit"]["seq"] for item in decided]
    assert seqs == list(range(seqs[0], seqs[0] + 9))  # one chain, in item order, across the chunks
    assert [item["assessment"]["subject_id"] for item in decided] == [
        body["subject_id"] for index, body in enumerate(bodies) if index != 4
    ]
    assert [item["assessment"]["audit"]["idempotency_key"] for item in decided] == [
        f"batch-chunks:{index}" for index in range(10) if index != 4
    ]
    replayed = [item for item in again["items"] if item["status"] == 201]
    assert [item["assessment"]["id"] for item in replayed] == [item["assessment"]["id"] for item in decided]
    assert all(item["replayed"] for item in replayed)
    assert [count_rows(db, body["subject_id"]) for body in bodies] == [1, 1, 1, 1, 0, 1, 1, 1, 1, 1]


async def test_the_collector_is_held_off_while_a_batch_is_decided_and_on_after(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CHUNK", 2)
    collecting: list[bool] = []
    prepare_many = AssessmentService.prepare_many

    async def watched(self: AssessmentService, *args: Any, **kwargs: Any) -> Any:
        collecting.append(gc.isenabled())
        return await prepare_many(self, *args, **kwargs)

    monkeypatch.setattr(AssessmentService, "prepare_many", watched)
    assert gc.isenabled()

    response = await client.post(
        "/v1/assessments/batch", content=json.dumps([assessment_body() for _ in range(5)]), headers=JSON
    )

    assert response.status_code == 200, response.text
    assert response.json()["created"] == 5
    assert collecting == [False, False, False]  # each chunk's items decided with the collector off
    assert gc.isenabled()


@pytest.mark.usefixtures("refusing_store")
async def test_the_audit_store_failing_before_any_decision_is_a_503_for_the_batch(
    client: httpx.AsyncClient, db: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(batch, "CHUNK", 1)  # the first item's failure stops the batch before the second
    bodies = [assessment_body(subject=FAILING_SUBJECT), assessment_body()]

    response = await client.post("/v1/assessments/batch", content=json.dumps(bodies), headers=JSON)

    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "/problems/audit-store-unavailable"
    assert "refused" not in response.text
    assert count_rows(db, bodies[1]["subject_id"]) == 0


async def test_an_unreachable_store_is_one_503_not_one_wait_per_item() -> None:
    settings = Settings(
        database_url=SecretStr("postgresql+psycopg://postgres@127.0.0.1:9/none"),
        environment=Environment.TEST,
        db_connect_timeout_s=1,
    )
    transactions = loads = 0
    transaction = ChainWriter._transaction
    first_load = ClassifierCatalog._first_load

    async def counting_loads(self: ClassifierCatalog) -> None:
        nonlocal loads
        loads += 1
        await first_load(self)

    async def counting(self: ChainWriter, batch: Sequence[Pending], committed: list[Answer]) -> None:
        nonlocal transactions
        transactions += 1
        await transaction(self, batch, committed)

    async def any_key_is_an_assessor(_self: KeyService, _presented: str) -> Principal:
        return Principal("tests-batch", frozenset(Scope), ALL_SITES, method="api-key")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(ChainWriter, "_transaction", counting)
        patch.setattr(ClassifierCatalog, "_first_load", counting_loads)
        # The keys live in the unreachable store too: let the caller in, to see what the batch does.
        patch.setattr(KeyService, "authenticate", any_key_is_an_assessor)
        async for client in app_client(settings, with_key=False):
            loads_at_start = loads
            response = await client.post("/v1/assessments/batch", json=[assessment_body() for _ in range(20)])

    assert response.status_code == 503
    assert response.headers["retry-after"] == "5"
    assert response.json()["type"] == "/problems/audit-store-unavailable"
    # The classifier versions live in the store too: the items waited out one attempt to read them
    # together, and none reached the writer.
    assert (loads_at_start, loads, transactions) == (1, 2, 0)


SINGLE_LIMIT, BATCH_LIMIT = 1024, 4096


@pytest.fixture
async def small_batches(database_url: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        database_url=SecretStr(database_url),
        environment=Environment.TEST,
        batch_max_items=2,
        max_body_bytes=SINGLE_LIMIT,
        max_batch_body_bytes=BATCH_LIMIT,
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
    small_batches: httpx.AsyncClient, db: Engine
) -> None:
    content = json.dumps([assessment_body() for _ in range(2)]) + " " * BATCH_LIMIT

    declared = await small_batches.post("/v1/assessments/batch", content=content, headers=JSON)

    async def chunks() -> AsyncIterator[bytes]:
        yield content.encode()

    streamed = await small_batches.post("/v1/assessments/batch", content=chunks(), headers=JSON)
    assert declared.status_code == streamed.status_code == 413

    # The batch limit applies to the batch path only: single decisions keep their own, smaller, limit.
    body = assessment_body()
    padded = json.dumps(body) + " " * (2 * SINGLE_LIMIT)  # between the two limits
    assert SINGLE_LIMIT < len(padded) < BATCH_LIMIT
    single = await small_batches.post("/v1/assessments", content=padded, headers=JSON)
    assert single.status_code == 413
    assert count_rows(db, body["subject_id"]) == 0
    batch = await small_batches.post("/v1/assessments/batch", content=f"[{padded}]", headers=JSON)
    assert batch.status_code == 200, batch.text
    assert batch.json()["items"][0]["status"] == 201
    assert count_rows(db, body["subject_id"]) == 1
