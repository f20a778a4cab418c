"""The model card of a classifier version: JSON by default, or an HTML page for a reader.

The page is answered with a Content-Security-Policy of its own (``app.api.cards.CONTENT_SECURITY_POLICY``),
which the security headers middleware leaves in place of its JSON-only one.
"""

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from fastapi.responses import HTMLResponse

from app.api.auth import requires
from app.api.cards import CONTENT_SECURITY_POLICY, card_document, render_card_html
from app.api.deps import get_registry
from app.api.problems import NOT_FOUND, VALIDATION, responses
from app.api.schemas.cards import ClassifierCard
from app.domain.access import Scope
from app.domain.classifiers.registry import ClassifierRegistry

# Read scope: a card shows the training cohort's IL6 histogram, whose cells can be small.
router = APIRouter(prefix="/v1", tags=["reference"], dependencies=[Depends(requires(Scope.READ))])
Registry = Annotated[ClassifierRegistry, Depends(get_registry)]

HTML_MEDIA_TYPE = "text/html"
JSON_MEDIA_TYPE = "application/json"
_QUALITY = re.compile(r"0(\.\d{0,3})?|1(\.0{0,3})?")


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """The quality Accept gives ``media_type`` by its most specific matching range (the highest, if several
    are as specific), and that range's specificity: 2 for the type itself, 1 for ``type/*``, 0 for ``*/*``."""
    major = media_type.partition("/")[0]
    best = (-1, 0.0)
    for item in accept.split(","):
        media_range, *parameters = (part.strip() for part in item.split(";"))
        specificity = {media_type: 2, f"{major}/*": 1, "*/*": 0}.get(media_range.lower())
        if specificity is None:
            continue
        quality = 1.0
        for parameter in parameters:
            name, _, value = (part.strip() for part in parameter.partition("="))
            if name.lower() == "q":
                quality = float(value) if _QUALITY.fullmatch(value) else 0.0
        best = max(best, (specificity, quality))
    return best[1], best[0]


def prefers_html(accept: str | None) -> bool:
    """Whether Accept ranks text/html above application/json (RFC 9110 section 12.5.1); a tie is JSON's,
    unless text/html is named outright against a wildcard (as browsers send it)."""
    if not accept:
        return False
    html, html_specificity = _quality(accept, HTML_MEDIA_TYPE)
    plain, plain_specificity = _quality(accept, JSON_MEDIA_TYPE)
    return html > 0 and (html > plain or (html == plain and html_specificity > plain_specificity))


@router.get(
    "/classifiers/{name}/{version}/card",
    response_model=ClassifierCard,
    responses={
        200: {
            "description": "The model card: JSON by default; an HTML page (its own Content-Security-Policy, "
            "no script) with ?format=html, or when Accept ranks text/html above application/json.",
            "content": {HTML_MEDIA_TYPE: {"schema": {"type": "string"}}},
        },
        **responses(NOT_FOUND, VALIDATION),
    },
)
async def get_classifier_card(
    name: str,
    version: str,
    request: Request,
    response: Response,
    registry: Registry,
    format_: Annotated[
        Literal["json", "html"] | None,
        Query(alias="format", description="Answer in this form, whatever Accept says."),
    ] = None,
) -> ClassifierCard | Response:
    """Show a classifier version's model card: intended use, training data, metrics, limitations, sources."""
    entry = registry.get(name, version)
    if entry is None:
        raise HTTPException(404, "No servable classifier version with this name and version.")
    card = card_document(entry, default=registry.resolve(None) is entry)
    response.headers["Vary"] = "Accept"
    if format_ == "html" or (format_ is None and prefers_html(request.headers.get("accept"))):
        return HTMLResponse(
            render_card_html(card),
            headers={"Vary": "Accept", "Content-Security-Policy": CONTENT_SECURITY_POLICY},
        )
    return ClassifierCard.model_validate(card)
