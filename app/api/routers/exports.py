"""Recorded decisions for data management, in the shapes its systems load: an SDTM-shaped LB dataset."""

import csv
import io
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import StreamingResponse

from app.api.auth import Reader
from app.api.deps import get_audit
from app.api.problems import STORE_UNAVAILABLE, VALIDATION, responses
from app.api.schemas.common import IDENTIFIER_PATTERN
from app.interop.sdtm_export import LB_COLUMNS, lb_rows
from app.service.audit import AuditService, ExportRange

CSV_MEDIA_TYPE = "text/csv"
SequenceNumber = Annotated[int, Query(ge=1, le=2**63 - 1)]
Audit = Annotated[AuditService, Depends(get_audit)]

SDTM_LB_DESCRIPTION = " ".join(
    (
        "One row per recorded decision, in record order, with a header row; empty cells for null.",
        "Standard LB variables: STUDYID (the configured IL6_STUDY_ID), DOMAIN 'LB', USUBJID (subject_id),",
        "LBSEQ (the subject's decisions numbered in record order over the whole audit trail, so that a",
        "row keeps its number in every export), LBTESTCD 'IL6', LBTEST 'Interleukin 6', LBORRES/LBORRESU",
        "(the value with its comparator, and the unit, as the request gave them),",
        "LBSTRESC/LBSTRESN/LBSTRESU (in pg/mL; a censored result keeps its sign in LBSTRESC and has an",
        "empty LBSTRESN), LBLLOQ (the deciding assay's limit of detection in pg/mL, as the decision",
        "recorded it), LBSPEC (SERUM, PLASMA, WHOLE BLOOD or BODY FLUID), LBLOINC (26881-3 for serum or",
        "plasma, empty otherwise), LBMETHOD (the assay id), LBDTC (the collection date-time). Columns",
        "that are not LB variables: SITEID (site_id), ELIGSTAT (eligibility status), IL6RISK (risk group,",
        "empty when none), CLASSIFIER (the name@version that decided), ASSESSID (the decision's id),",
        "AUDITSEQ (its audit sequence number), RECDTC (when it was recorded, UTC), SUPERSEDES (the id of",
        "the decision it corrects), SRCREF (the sender's own id for the result, e.g. 'LBSEQ:3').",
    )
)


def create_router(study_id: str) -> APIRouter:
    """The export routes, writing ``study_id`` as every row's STUDYID."""
    router = APIRouter(prefix="/v1/exports", tags=["exports"])

    @router.get(
        "/sdtm-lb.csv",
        responses={
            200: {
                "description": SDTM_LB_DESCRIPTION,
                "content": {CSV_MEDIA_TYPE: {"schema": {"type": "string"}}},
            },
            **responses(VALIDATION, STORE_UNAVAILABLE),
        },
        response_class=StreamingResponse,
    )
    async def export_sdtm_lb(
        audit: Audit,
        reader: Reader,
        from_seq: SequenceNumber = 1,
        to_seq: SequenceNumber | None = None,
        site_id: Annotated[
            str | None, Query(pattern=IDENTIFIER_PATTERN, description="Only this site's decisions.")
        ] = None,
    ) -> StreamingResponse:
        """Stream recorded decisions (audit sequence from_seq..to_seq) of the caller's sites as an
        SDTM-shaped LB dataset in CSV."""
        # Read from the chain's start whatever the range, so that LBSEQ does not depend on it.
        records = await audit.export(ExportRange(to_seq=to_seq))
        rows = lb_rows(records, study_id, from_seq=from_seq, site_id=site_id, visible=reader.sites.permits)
        return StreamingResponse(
            _csv(rows),
            media_type=CSV_MEDIA_TYPE,
            headers={"Content-Disposition": 'attachment; filename="lb.csv"'},
        )

    return router


async def _csv(rows: AsyncIterator[dict[str, str]]) -> AsyncIterator[bytes]:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=LB_COLUMNS, lineterminator="\r\n")
    writer.writeheader()
    async for row in rows:
        writer.writerow(row)
        if buffer.tell() > 65536:
            yield buffer.getvalue().encode("utf-8")
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue().encode("utf-8")
