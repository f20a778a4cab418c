"""Many results in one request: each decided and recorded exactly as if it had been sent alone.

The body is a JSON array of plain request bodies, or NDJSON (one per line). Each item is read and decided
as a request of its own; the items of a chunk (``CHUNK``) go to the audit writer together, in item order,
so that they are committed in few transactions (app/service/chain_writer.py). While one chunk is being
recorded, the next is read and decided and the one before is answered, so that the service's work and the
database's overlap; a chunk goes to the writer only once the one before it has been recorded. An item that
fails gets its own problem (the same one POST /v1/assessments would answer) and the items after it go on.
Each item's audit record keeps the item's own bytes and hash, and the reference ``batch-item:<index>``; the
batch's X-Request-ID ties them.

Only the audit store becoming unavailable stops the batch: the items of later chunks would wait out their
deadline against a store that is down, so they are answered as not attempted instead (503, nothing
decided), and the answer carries the store's Retry-After; when no item was decided at all, the whole
request is a 503 problem.
"""

import asyncio
import dataclasses
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, TypeAdapter

from app.api.auth import requires
from app.api.deps import CallerDep, get_assessments
from app.api.exact_json import JSON_MEDIA_TYPE, ExactJSONRoute
from app.api.intake import PLAIN_JSON, Form, Intake, plain_submission
from app.api.problems import (
    PAYLOAD_TOO_LARGE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    Problem,
    handled,
    internal_error,
    problem_response,
    responses,
)
from app.api.request_log import code_location
from app.api.schemas.assessment_json import assessment_json
from app.api.schemas.assessments import AssessmentOut
from app.collector import collector_held
from app.domain.access import Scope
from app.service.assessments import (
    YIELD_EVERY,
    AssessmentService,
    DecisionRequest,
    Outcome,
    Prepared,
    RawRequest,
)
from app.service.chain_writer import MAX_BATCH
from app.service.errors import StoreUnavailable

logger = logging.getLogger(__name__)

BATCH_PATH = "/v1/assessments/batch"
CHUNK = MAX_BATCH
"""How many items are decided at once: as many as the audit writer commits in one transaction."""
NDJSON_MEDIA_TYPE = "application/x-ndjson"
BATCH_KEY_PATTERN = r'^(?:"[\x21\x23-\x5b\x5d-\x7e]{1,200}"|[\x21\x23-\x5b\x5d-\x7e]{1,200})$'
"""As for a single decision, but at most 200 characters: each item's key is '<key>:<index>'."""
NOT_ATTEMPTED = Problem(
    type=STORE_UNAVAILABLE.uri,
    title=STORE_UNAVAILABLE.title,
    status=STORE_UNAVAILABLE.status,
    detail="Not attempted: the audit store was unavailable for an earlier item, so the batch stopped there. "
    "Nothing was decided for this item; send it again after Retry-After seconds.",
).model_dump(exclude_none=True)

BATCH_INTAKE = Intake(PLAIN_JSON, Form(NDJSON_MEDIA_TYPE, plain_submission))
"""The batch's two forms: a JSON array, or NDJSON; each item (array element or line) is a plain body."""

router = APIRouter(prefix="/v1", tags=["assessments"], route_class=ExactJSONRoute)


class BatchItemOut(BaseModel):
    index: int = Field(description="The item's position in the request (0-based; NDJSON: its line).")
    status: int = Field(
        description="201 when decided and recorded (or returned for a repeated key), else the problem's "
        "status. 503 with an audit-store-unavailable problem: the store was down for this item, or for an "
        "earlier one and this item was not attempted (its detail says so); either way nothing was decided "
        "for it. 500: an unexpected error, logged."
    )
    replayed: bool = Field(
        False,
        description="True when the item's Idempotency-Key ('<key>:<index>') returned the decision an "
        "earlier request made, and nothing new was recorded.",
    )
    assessment: AssessmentOut | None = None
    problem: dict[str, Any] | None = Field(
        None, description="The RFC 9457 problem POST /v1/assessments would have answered for this item."
    )


class BatchOut(BaseModel):
    created: int = Field(description="Items decided and recorded (or returned for a repeated key).")
    failed: int = Field(description="Items not decided, the not attempted ones included.")
    not_attempted: int = Field(
        0, description="Items after an audit store failure, which the batch did not try (status 503)."
    )
    items: list[BatchItemOut]


_ITEM = TypeAdapter(BatchItemOut)
_ANSWER = TypeAdapter(BatchOut)


def _decided(index: int, outcome: Outcome) -> bytes:
    """A decided item's JSON: what ``_ITEM`` writes for it, the assessment written by ``assessment_json``
    (tests/unit/test_assessment_json.py compares the two)."""
    replayed = b"true" if outcome.replayed else b"false"
    return b'{"index":%d,"status":201,"replayed":%b,"assessment":%b,"problem":null}' % (
        index,
        replayed,
        assessment_json(outcome.recorded),
    )


def _answer(counts: BatchOut, items: list[bytes], response: Response) -> Response:
    """The 200 answer: ``counts`` (a BatchOut without its items) with the items' JSON spliced in, the
    very bytes FastAPI writes for the whole BatchOut (pydantic's JSON), and the headers set on
    ``response``, as FastAPI adds them.

    The body is copied once, by one join: the answer to a batch of 100,000 items is over 100 MB, and each
    further copy (a concatenation, a join per chunk) cost this process tens to hundreds of milliseconds.
    """
    envelope = _ANSWER.dump_json(counts)
    if counts.items or not envelope.endswith(b'"items":[]}'):  # items must be BatchOut's last field
        raise RuntimeError("the batch answer's envelope does not end with its (empty) items")
    opening, closing = envelope[:-2], b"]}"
    if len(items) < 2:
        body = opening + b"".join(items) + closing
    else:
        body = b",".join([opening + items[0], *items[1:-1], items[-1] + closing])
    answer = Response(content=body, media_type=JSON_MEDIA_TYPE)
    answer.headers.raw.extend(response.headers.raw)
    return answer


@dataclass(frozen=True)
class Chunk:
    """Items of a batch read and decided, not recorded yet."""

    indices: range
    reads: list[DecisionRequest | Exception]
    """Each item as a request, or the error reading it raised (its answer)."""
    prepared: Prepared
    """The requests' decisions, waiting to be recorded."""


def _retrieve(task: "asyncio.Task[list[Outcome | Exception]]") -> None:
    if not task.cancelled():
        task.exception()


def _items_of_array(text: str) -> Iterator[str]:
    """The exact text of each element of a top-level JSON array (the array itself checked by the caller)."""
    decoder = json.JSONDecoder(parse_float=Decimal)
    position = text.index("[") + 1
    while True:
        while position < len(text) and text[position] in " \t\r\n,":
            position += 1
        if position >= len(text) or text[position] == "]":
            return
        _, end = decoder.raw_decode(text, position)
        yield text[position:end]
        position = end


def _items(body: bytes, media_type: str, max_items: int) -> list[str]:
    """The items' own texts, after checking the whole body is one array (or NDJSON) of at most max_items."""
    if media_type == NDJSON_MEDIA_TYPE:
        try:
            lines = body.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = None
        items = None if lines is None else [line.rstrip("\r") for line in lines]
        if items is not None and items and items[-1] == "":
            items.pop()  # the newline that ends the last line
    else:
        document = Intake.parse(body)
        if not isinstance(document, list):
            raise RequestValidationError(
                [{"type": "list_type", "loc": ("body",), "msg": "Input should be a JSON array of results"}]
            )
        items = list(_items_of_array(body.decode("utf-8")))
    if items is None:
        raise RequestValidationError(
            [
                {
                    "type": "json_invalid",
                    "loc": ("body", 0),
                    "msg": "",
                    "ctx": {"error": "the body is not UTF-8"},
                }
            ]
        )
    if not items:
        raise RequestValidationError([{"type": "too_short", "loc": ("body",), "msg": "The batch is empty"}])
    if len(items) > max_items:
        raise RequestValidationError(
            [{"type": "too_long", "loc": ("body",), "msg": f"A batch holds at most {max_items} results"}]
        )
    return items


async def _problem(request: Request, error: Exception, index: int) -> Response:
    """The problem answer the service's own handler gives for this error; for an error no handler knows,
    the bare 500 a single request would get, logged by type and code location only (its message can quote
    the item's values). Never raised: the items decided before it must still be answered."""
    answer = await handled(request, error)
    if answer is None:
        logger.error(
            "unexpected %s at %s in batch item %d request_id=%s",
            type(error).__name__,
            code_location(error),
            index,
            request.scope.get("state", {}).get("request_id"),
        )
        return internal_error()
    return answer


@router.post(
    "/assessments/batch",
    response_model=BatchOut,
    dependencies=[Depends(requires(Scope.ASSESS))],
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "Results to decide: a JSON array of request bodies as POST /v1/assessments "
            "takes them, or NDJSON with one per line.",
            "content": {
                JSON_MEDIA_TYPE: {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/AssessmentIn"}}
                },
                # Each line one body: the schema is of the items, as the JSON array's.
                NDJSON_MEDIA_TYPE: {
                    "schema": {"type": "array", "items": {"$ref": "#/components/schemas/AssessmentIn"}}
                },
            },
        }
    },
    responses={
        200: {
            "description": "One entry per item, in order. When the audit store failed part-way, the items "
            "from then on are 503 and the answer carries Retry-After.",
            "headers": {
                "Retry-After": {
                    "description": "Only when some items were not decided because the audit store was "
                    "unavailable: seconds to wait before sending them again.",
                    "schema": {"type": "string"},
                }
            },
        },
        **responses(VALIDATION, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, STORE_UNAVAILABLE),
    },
)
async def create_batch(
    request: Request,
    response: Response,
    service: Annotated[AssessmentService, Depends(get_assessments)],
    caller: CallerDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=BATCH_KEY_PATTERN,
            description="Makes every item idempotent: item i uses the key '<key>:<i>', so a retried "
            "batch returns the decisions already made and decides only the rest.",
        ),
    ] = None,
) -> Response:
    """Decide and record each result of a batch as if it had been sent alone; per-item errors do not stop
    the rest, but the audit store failing does. Answers 200 with one entry per item, in order; 503 when
    the store failed before any item was decided."""
    media_type = BATCH_INTAKE.form_of(request).media_type  # 415 for another type or charset
    body = await request.body()
    texts = _items(body, media_type, request.app.state.services.batch_max_items)
    key = None if idempotency_key is None else idempotency_key.strip('"')
    answered: list[bytes] = []  # each item, as the answer's JSON holds it
    created = failed = 0
    store_failed: dict[str, str] | None = None  # when the audit store failed: its problem's Retry-After

    async def prepare(chunk: range) -> Chunk:
        """Read and decide a chunk's items, each as a request of its own (an item that cannot be read keeps
        the error a single request would get); nothing is recorded yet."""
        reads: list[DecisionRequest | Exception] = []
        for index in chunk:
            raw = texts[index].encode("utf-8")
            try:
                submission = Intake.read(PLAIN_JSON, raw)
            except Exception as error:
                reads.append(error)
            else:
                reads.append(
                    DecisionRequest(
                        dataclasses.replace(submission, reference=f"batch-item:{index}"),
                        RawRequest(body=raw, media_type=JSON_MEDIA_TYPE),
                        None if key is None else f"{key}:{index}",
                    )
                )
            if not (index + 1) % YIELD_EVERY:
                await asyncio.sleep(0)  # the writer goes on with the chunk before
        requests = [read for read in reads if isinstance(read, DecisionRequest)]
        return Chunk(chunk, reads, await service.prepare_many(requests, caller))

    def record(chunk: Chunk) -> "asyncio.Task[list[Outcome | Exception]]":
        recording = asyncio.ensure_future(service.record_many(chunk.prepared))
        recording.add_done_callback(_retrieve)  # observed even if this request goes away meanwhile
        return recording

    # A chunk's items go to the audit writer together, in item order: one commit for many. While it is
    # recorded, the next chunk is read and decided, and the one before is answered; the next is recorded
    # only once this one is, and not at all when the audit store failed for it.
    chunks = [range(start, min(start + CHUNK, len(texts))) for start in range(0, len(texts), CHUNK)]
    with collector_held():  # a chunk's objects live across awaits: see collector_held
        current = await prepare(chunks[0])
        recording = record(current)
        for number in range(len(chunks)):
            following = await prepare(chunks[number + 1]) if number + 1 < len(chunks) else None
            recorded = iter(await recording)
            outcomes = [
                next(recorded) if isinstance(read, DecisionRequest) else read for read in current.reads
            ]
            if following is not None and not any(
                isinstance(outcome, StoreUnavailable) for outcome in outcomes
            ):
                recording = record(following)
            # Kept as JSON, not as models: a batch of thousands would otherwise keep hundreds of thousands of
            # objects alive, for the garbage collector to scan again and again while the rest is decided.
            for index, outcome in zip(current.indices, outcomes, strict=True):
                if not (index + 1) % YIELD_EVERY:
                    await asyncio.sleep(0)  # the writer goes on with the next chunk
                if isinstance(outcome, Outcome):
                    answered.append(_decided(index, outcome))
                    created += 1
                    continue
                # Answered as the service's own handlers answer it, or as a 500.
                answer = await _problem(request, outcome, index)
                problem = json.loads(bytes(answer.body))
                item = BatchItemOut(index=index, status=answer.status_code, problem=problem)
                answered.append(_ITEM.dump_json(item))
                failed += 1
                if isinstance(outcome, StoreUnavailable) and store_failed is None:
                    retry_after = answer.headers.get("retry-after")
                    store_failed = {} if retry_after is None else {"Retry-After": retry_after}
            if store_failed is not None or following is None:
                break  # the rest would each wait out their own deadline against a store that is down
            current = following
    not_attempted = len(texts) - created - failed
    if store_failed is not None:
        if created == 0:
            return problem_response(
                STORE_UNAVAILABLE,
                detail="The audit store could not be reached, so no item of the batch was decided. Send "
                "the batch again after Retry-After seconds, with the same Idempotency-Key.",
                headers=store_failed,
            )
        logger.warning(
            "batch stopped by the audit store: %d of %d items not attempted", not_attempted, len(texts)
        )
        response.headers.update(store_failed)
        answered += [
            _ITEM.dump_json(BatchItemOut(index=index, status=STORE_UNAVAILABLE.status, problem=NOT_ATTEMPTED))
            for index in range(created + failed, len(texts))
        ]
    return _answer(
        BatchOut(created=created, failed=failed + not_attempted, not_attempted=not_attempted, items=[]),
        answered,
        response,
    )
