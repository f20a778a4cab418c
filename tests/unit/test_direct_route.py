"""A DirectRoute answers exactly as FastAPI would answer the same declaration, without solving it."""

from types import SimpleNamespace
from typing import Annotated, Any

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, Query, Request, Response
from pydantic import BaseModel
from starlette.types import ASGIApp, Receive, Scope, Send

from app.api import problems
from app.api.auth import PRINCIPAL, requires
from app.api.direct_route import DirectRoute
from app.domain.access import Principal, SiteAccess
from app.domain.access import Scope as AccessScope

PATTERN = r"^[a-z]{1,8}$"


async def endpoint(
    request: Request,
    ticket: Annotated[str | None, Header(alias="Ticket", pattern=PATTERN)] = None,
    trace: Annotated[int, Header(alias="Trace", ge=0)] = 0,
) -> Response:
    return Response(f"{request.method} {ticket} {trace}".encode(), 201, media_type="text/plain")


class AsCaller:
    """Leaves the caller a test names (header ``As``) where the authentication middleware leaves one."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scopes = dict(scope["headers"]).get(b"as")
        if scopes is not None:
            principal = Principal(
                "tester",
                frozenset(AccessScope(name) for name in scopes.decode().split(",") if name),
                SiteAccess(None),
                "api-key",
            )
            scope.setdefault("state", {})[PRINCIPAL] = principal
        await self.app(scope, receive, send)


def app_routing(route_class: type | None) -> FastAPI:
    """The endpoint behind the protected routers' dependency and its own scope check, routed by FastAPI
    (``route_class`` None) or directly."""
    router = APIRouter(prefix="/v1")
    options: dict[str, Any] = {} if route_class is None else {"route_class_override": route_class}
    router.add_api_route(
        "/things", endpoint, methods=["POST"], dependencies=[Depends(requires(AccessScope.ASSESS))], **options
    )
    app = FastAPI()
    problems.install(app)
    app.state.access = SimpleNamespace(metrics=SimpleNamespace(authorisation_failed=lambda reason: None))
    app.include_router(router, dependencies=[Depends(requires(None))])
    app.add_middleware(AsCaller)
    return app


@pytest.fixture
def clients() -> tuple[httpx.AsyncClient, httpx.AsyncClient]:
    solved = httpx.AsyncClient(transport=httpx.ASGITransport(app_routing(None)), base_url="http://test")
    direct = httpx.AsyncClient(
        transport=httpx.ASGITransport(app_routing(DirectRoute)), base_url="http://test"
    )
    return solved, direct


CASES = {
    "no headers": {"As": "assess"},
    "valid headers": {"As": "assess", "Ticket": "abc", "Trace": "7"},
    "a header off its pattern": {"As": "assess", "Ticket": "ABC!"},
    "two bad headers": {"As": "assess", "Ticket": "x" * 9, "Trace": "-1"},
    "not a number": {"As": "assess", "Trace": "seven"},
    "without the route's scope": {"As": "read", "Ticket": "ABC!"},
    "no caller": {"Ticket": "abc"},
}


@pytest.mark.parametrize("headers", CASES.values(), ids=CASES.keys())
async def test_the_answer_is_the_one_fastapi_gives(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient], headers: dict[str, str]
) -> None:
    solved, direct = clients

    expected = await solved.post("/v1/things", headers=headers)
    answered = await direct.post("/v1/things", headers=headers)

    assert (answered.status_code, answered.content) == (expected.status_code, expected.content)
    assert answered.headers["content-type"] == expected.headers["content-type"]


async def test_the_cases_cover_each_kind_of_answer(
    clients: tuple[httpx.AsyncClient, httpx.AsyncClient],
) -> None:
    """Else the comparison above could pass with every case answered alike."""
    _, direct = clients

    statuses = {(await direct.post("/v1/things", headers=headers)).status_code for headers in CASES.values()}

    assert statuses == {201, 401, 403, 422}


async def other_dependency() -> None:
    """Anything but an admission check by ``requires``."""


async def with_a_query(request: Request, page: Annotated[int, Query()] = 1) -> Response:
    return Response(b"")


async def with_a_response(request: Request, response: Response) -> Response:
    return response


async def with_a_required_header(
    request: Request, ticket: Annotated[str, Header(alias="Ticket")]
) -> Response:
    return Response(b"")


async def with_a_header_of_many_values(
    request: Request, tickets: Annotated[list[str] | None, Header(alias="Ticket")] = None
) -> Response:
    return Response(b"")


class Ticket(BaseModel):
    number: int


async def with_a_header_model(
    request: Request, ticket: Annotated[Ticket | None, Header(alias="Ticket")] = None
) -> Response:
    return Response(b"")


async def with_a_header_named_by_its_parameter(
    request: Request, ticket: Annotated[str | None, Header()] = None
) -> Response:
    return Response(b"")


@pytest.mark.parametrize(
    ("endpoint_", "dependencies"),
    [
        (endpoint, [Depends(other_dependency)]),
        (with_a_query, []),
        (with_a_response, []),
        (with_a_required_header, []),
        (with_a_header_of_many_values, []),
        (with_a_header_model, []),
        (with_a_header_named_by_its_parameter, []),
    ],
    ids=[
        "another dependency",
        "a query parameter",
        "a Response parameter",
        "a required header",
        "a header of many values",
        "a header model",
        "a header without an alias",
    ],
)
async def test_what_it_cannot_run_as_fastapi_would_is_refused(
    endpoint_: Any, dependencies: list[Any]
) -> None:
    """Refused when the route is built: its own declaration at once, the inclusion's dependencies when
    FastAPI builds the included route (at its first request)."""
    with pytest.raises(TypeError, match="DirectRoute"):
        await route_and_call(endpoint_, dependencies)


async def route_and_call(endpoint_: Any, dependencies: list[Any]) -> None:
    router = APIRouter()
    router.add_api_route("/x", endpoint_, methods=["POST"], route_class_override=DirectRoute)
    app = FastAPI()
    app.include_router(router, dependencies=dependencies)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://test") as client:
        await client.post("/x")
