"""Many results in one request: each decided and recorded exactly as if it had been sent alone.

The body is a JSON array of plain request bodies, or NDJSON (one per line). Each item is read, decided
and committed in its own transaction, in order; an item that fails gets its own problem (the same one
POST /v1/assessments would answer) and the items after it go on. Each item's audit record keeps the
item's own bytes and hash, and the reference ``batch-item:<index>``; the batch's X-Request-ID ties them.
"""

import dataclasses
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field

from app.api.deps import CallerDep, get_assessments
from app.api.exact_json import JSON_MEDIA_TYPE, ExactJSONRoute
from app.api.intake import PLAIN_JSON, Intake
from app.api.problems import (
    PAYLOAD_TOO_LARGE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.assessments import AssessmentOut
from app.service.assessments import AssessmentService, RawRequest

BATCH_PATH = "/v1/assessments/batch"
NDJSON_MEDIA_TYPE = "application/x-ndjson"
BATCH_KEY_PATTERN = r'^(?:"[\x21\x23-\x5b\x5d-\x7e]{1,200}"|[\x21\x23-\x5b\x5d-\x7e]{1,200})$'
"""As for a single decision, but at most 200 characters: each item's key is '<key>:<index>'."""

router = APIRouter(prefix="/v1", tags=["assessments"], route_class=ExactJSONRoute)


class BatchItemOut(BaseModel):
    index: int = Field(description="The item's position in the request (0-based; NDJSON: its line).")
    status: int = Field(description="201 when decided and recorded, else the problem's status.")
    assessment: AssessmentOut | None = None
    problem: dict[str, Any] | None = Field(
        None, description="The RFC 9457 problem POST /v1/assessments would have answered for this item."
    )


class BatchOut(BaseModel):
    created: int = Field(description="Items decided and recorded (or returned for a repeated key).")
    failed: int
    items: list[BatchItemOut]


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


async def _problem(request: Request, error: Exception) -> tuple[int, dict[str, Any]]:
    """The status and problem body the service's own handler gives for this error."""
    handlers = request.app.exception_handlers
    handler = next((handlers[kind] for kind in type(error).__mro__ if kind in handlers), None)
    if handler is None:
        raise error
    answer = await handler(request, error)
    return answer.status_code, json.loads(answer.body)


@router.post(
    "/assessments/batch",
    response_model=BatchOut,
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
    responses=responses(VALIDATION, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE),
)
async def create_batch(
    request: Request,
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
) -> BatchOut:
    """Decide and record each result of a batch as if it had been sent alone; per-item errors do not stop
    the rest. Answers 200 with one entry per item, in order."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type not in (JSON_MEDIA_TYPE, NDJSON_MEDIA_TYPE):
        raise HTTPException(415, f"Send a JSON array ({JSON_MEDIA_TYPE}) or NDJSON ({NDJSON_MEDIA_TYPE}).")
    body = await request.body()
    texts = _items(body, media_type, request.app.state.services.batch_max_items)
    key = None if idempotency_key is None else idempotency_key.strip('"')
    items: list[BatchItemOut] = []
    for index, text in enumerate(texts):
        raw = text.encode("utf-8")
        try:
            submission = dataclasses.replace(Intake.read(PLAIN_JSON, raw), reference=f"batch-item:{index}")
            outcome = await service.decide(
                submission,
                RawRequest(body=raw, media_type=JSON_MEDIA_TYPE),
                caller,
                None if key is None else f"{key}:{index}",
            )
        except Exception as error:  # mapped by the service's own handlers; anything else is re-raised
            status, problem = await _problem(request, error)
            items.append(BatchItemOut(index=index, status=status, problem=problem))
            continue
        items.append(
            BatchItemOut(index=index, status=201, assessment=AssessmentOut.from_record(outcome.recorded))
        )
    created = sum(item.status == 201 for item in items)
    return BatchOut(created=created, failed=len(items) - created, items=items)
