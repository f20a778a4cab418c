"""The audit trail for inspectors: verify the chain, fetch a signed checkpoint, export records."""

import csv
import io
import json
from collections.abc import AsyncIterator
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse

from app.api.auth import requires_every_site
from app.api.deps import get_audit
from app.api.exact_json import ExactJSONRoute, require_json
from app.api.problems import (
    CHAIN_BROKEN,
    INVALID_CHECKPOINT,
    PAYLOAD_TOO_LARGE,
    STORE_UNAVAILABLE,
    UNSUPPORTED_MEDIA_TYPE,
    VALIDATION,
    responses,
)
from app.api.schemas.audit import CheckpointOut, VerificationOut, VerifyIn
from app.api.schemas.common import Moment
from app.domain.access import Scope
from app.domain.audit import RECORD_FIELDS
from app.service.audit import AuditService, ExportRange
from app.service.checkpoints import public_key_text

router = APIRouter(
    prefix="/v1/audit",
    tags=["audit"],
    route_class=ExactJSONRoute,
    # The chain spans every site: even its length and pace are not for a caller limited to some sites.
    dependencies=[Depends(requires_every_site(Scope.READ))],
)
Audit = Annotated[AuditService, Depends(get_audit)]
SequenceNumber = Annotated[int, Query(ge=1, le=2**63 - 1)]

EXPORT_COLUMNS = (*RECORD_FIELDS, "hash", "request_body")
NDJSON_MEDIA_TYPE = "application/x-ndjson"
CSV_MEDIA_TYPE = "text/csv"


class ExportFormat(StrEnum):
    NDJSON = "ndjson"
    CSV = "csv"


def _check_range(from_seq: int, to_seq: int | None, where: str) -> None:
    if to_seq is not None and to_seq < from_seq:
        raise RequestValidationError(
            [{"type": "range", "loc": (where, "to_seq"), "msg": "to_seq must not be before from_seq"}]
        )


@router.get(
    "/verify",
    response_model=VerificationOut,
    responses=responses(VALIDATION, STORE_UNAVAILABLE),
)
async def verify_chain(
    audit: Audit, from_seq: SequenceNumber = 1, to_seq: SequenceNumber | None = None
) -> VerificationOut:
    """Check the audit chain (or the range from_seq..to_seq) and report the first broken link."""
    _check_range(from_seq, to_seq, "query")
    verification = await audit.verify(from_seq=from_seq, to_seq=to_seq)
    return VerificationOut.from_verification(verification)


@router.post(
    "/verify",
    response_model=VerificationOut,
    dependencies=[Depends(require_json)],
    responses=responses(
        VALIDATION, INVALID_CHECKPOINT, PAYLOAD_TOO_LARGE, UNSUPPORTED_MEDIA_TYPE, STORE_UNAVAILABLE
    ),
)
async def verify_chain_against_checkpoints(body: VerifyIn, audit: Audit) -> VerificationOut:
    """Check the chain as GET does, and against signed checkpoints kept earlier: a checkpoint the chain no
    longer reaches shows a cut tail, one whose record differs shows a rewritten chain."""
    _check_range(body.from_seq, body.to_seq, "body")
    checkpoints = [checkpoint.to_signed() for checkpoint in body.checkpoints]
    verification = await audit.verify(from_seq=body.from_seq, to_seq=body.to_seq, checkpoints=checkpoints)
    return VerificationOut.from_verification(verification)


@router.get("/checkpoint", response_model=CheckpointOut, responses=responses(CHAIN_BROKEN, STORE_UNAVAILABLE))
async def checkpoint(audit: Audit) -> CheckpointOut:
    """The chain head now, signed with the service's Ed25519 key. Keep it outside the database."""
    signed = await audit.checkpoint()
    return CheckpointOut.from_signed(signed, public_key_text(audit.signer.public_key))


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return value


async def _ndjson(records: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    async for record in records:
        yield json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode("utf-8") + b"\n"


async def _csv(records: AsyncIterator[dict[str, Any]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(EXPORT_COLUMNS)
    async for record in records:
        writer.writerow([_csv_cell(record[column]) for column in EXPORT_COLUMNS])
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")


@router.get(
    "/export",
    responses={
        200: {
            "description": "Records in sequence order, with their chain fields and request bodies. "
            "NDJSON: one record per line. CSV: a header row, empty cells for null, input and decision "
            "as JSON text. Verify offline with `il6 audit verify-export FILE`.",
            "content": {
                NDJSON_MEDIA_TYPE: {"schema": {"type": "string"}},
                CSV_MEDIA_TYPE: {"schema": {"type": "string"}},
            },
        },
        **responses(VALIDATION, STORE_UNAVAILABLE),
    },
    response_class=StreamingResponse,
)
async def export(
    audit: Audit,
    format: ExportFormat = ExportFormat.NDJSON,
    from_seq: SequenceNumber = 1,
    to_seq: SequenceNumber | None = None,
    from_time: Annotated[Moment | None, Query(description="Records at or after (RFC 3339).")] = None,
    to_time: Annotated[Moment | None, Query(description="Records before (RFC 3339).")] = None,
) -> StreamingResponse:
    """Stream audit records for inspectors, up to the chain head as it was when the export began."""
    bounds = ExportRange(from_seq=from_seq, to_seq=to_seq, from_time=from_time, to_time=to_time)
    records = await audit.export(bounds)
    if format is ExportFormat.CSV:
        return StreamingResponse(_csv(records), media_type=CSV_MEDIA_TYPE)
    return StreamingResponse(_ndjson(records), media_type=NDJSON_MEDIA_TYPE)
