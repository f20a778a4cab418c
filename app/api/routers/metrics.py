"""Prometheus metrics: for a reader of every site unless the deployment serves them openly on purpose.

The counts span sites (decisions by outcome, the chain's head), so a key limited to some sites does not
see them, as it does not see the audit trail."""

from fastapi import APIRouter, Depends, Request, Response

from app.api.auth import requires_every_site
from app.domain.access import Scope

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def create_router(*, public: bool) -> APIRouter:
    """``public``: no credentials needed (IL6_METRICS_PUBLIC, for a scraper on a private network)."""
    router = APIRouter(tags=["operations"])

    @router.get(
        "/metrics",
        response_class=Response,
        dependencies=[] if public else [Depends(requires_every_site(Scope.READ))],
        responses={200: {"description": "Prometheus text exposition.", "content": {PROMETHEUS_TEXT: {}}}},
    )
    async def metrics(request: Request) -> Response:
        """The service's metrics in Prometheus text format (no subject id, value or secret in any label)."""
        body, content_type = request.app.state.access.metrics.render()
        return Response(body, media_type=content_type)

    return router
