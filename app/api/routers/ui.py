"""The monitoring page, ``GET /ui``: a server-rendered HTML page (inline SVG plots, no script) for readers.

It is answered with a Content-Security-Policy of its own (``app.api.ui_page.CONTENT_SECURITY_POLICY``),
which the security headers middleware leaves in place of its JSON-only one. A page for people, not part of
the API's contract: it is left out of the OpenAPI document.
"""

from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import HTMLResponse

from app.api.auth import Reader
from app.api.deps import get_monitoring
from app.api.ui_page import CONTENT_SECURITY_POLICY, render_monitoring_page
from app.service.monitoring import MonitoringService

UI_PATH = "/ui"
ROUTE_NAME = "monitoring_page"
MAX_DAYS = 90


router = APIRouter(tags=["monitoring"])
Monitoring = Annotated[MonitoringService, Depends(get_monitoring)]


@router.get(UI_PATH, name=ROUTE_NAME, response_class=HTMLResponse, include_in_schema=False)
async def monitoring_page(
    reader: Reader,
    monitoring: Monitoring,
    days: Annotated[int, Query(ge=1, le=MAX_DAYS, description="The window, in UTC days.")] = 30,
) -> HTMLResponse:
    """Show what the service has been deciding, within the caller's sites."""
    overview = await monitoring.overview(reader.sites, days=days)
    return HTMLResponse(
        render_monitoring_page(overview, reader.name),
        headers={"Content-Security-Policy": CONTENT_SECURITY_POLICY},
    )
