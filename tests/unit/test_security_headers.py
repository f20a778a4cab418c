"""Every response carries the security headers, errors included; the docs pages go without a CSP."""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI, Response
from starlette.types import ASGIApp

from app.api.request_log import RequestLogMiddleware
from app.api.security_headers import DOCS_PATHS, SecurityHeadersMiddleware

EXPECTED = {
    "x-content-type-options": "nosniff",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cross-origin-resource-policy": "same-origin",
    "strict-transport-security": "max-age=63072000; includeSubDomains",
}
CSP = "default-src 'none'; frame-ancestors 'none'"


def tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/ok")
    async def ok() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("an unexpected failure")

    @app.get("/cached")
    async def cached() -> Response:
        return Response(
            "public", headers={"Cache-Control": "public, max-age=60", "Content-Security-Policy": "sandbox"}
        )

    return app


def as_deployed() -> FastAPI:
    """As create_app stacks them: the security headers outside the middleware that answers a crash."""
    app = tiny_app()
    app.add_middleware(RequestLogMiddleware)
    app.add_middleware(SecurityHeadersMiddleware, exempt_csp_paths=DOCS_PATHS)
    return app


async def client_for(app: ASGIApp) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield client


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(as_deployed()):
        yield client


def assert_secured(response: httpx.Response, *, csp: bool = True) -> None:
    for name, value in EXPECTED.items():
        assert response.headers.get_list(name) == [value], name
    assert response.headers.get_list("content-security-policy") == ([CSP] if csp else [])


@pytest.mark.parametrize(("path", "status"), [("/ok", 200), ("/nowhere", 404), ("/boom", 500)])
async def test_every_response_carries_the_headers(client: httpx.AsyncClient, path: str, status: int) -> None:
    response = await client.get(path)

    assert response.status_code == status
    assert_secured(response)


async def test_a_crash_answered_by_starlette_itself_carries_them_when_the_whole_app_is_wrapped() -> None:
    async for client in client_for(SecurityHeadersMiddleware(tiny_app())):
        response = await client.get("/boom")

    assert response.status_code == 500
    assert_secured(response)


async def test_a_header_the_app_set_is_kept(client: httpx.AsyncClient) -> None:
    response = await client.get("/cached")

    assert response.headers.get_list("cache-control") == ["public, max-age=60"]
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/docs/oauth2-redirect"])
async def test_the_docs_pages_get_no_csp_but_the_rest(client: httpx.AsyncClient, path: str) -> None:
    response = await client.get(path)

    assert response.status_code == 200
    assert_secured(response, csp=False)


async def test_the_openapi_document_keeps_the_csp(client: httpx.AsyncClient) -> None:
    response = await client.get("/openapi.json")

    assert response.status_code == 200
    assert_secured(response)


async def test_docs_behind_a_path_prefix_are_recognised() -> None:
    transport = httpx.ASGITransport(app=as_deployed(), root_path="/il6")
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        docs = await client.get("/il6/docs")
        ok = await client.get("/il6/ok")

    assert docs.status_code == ok.status_code == 200
    assert_secured(docs, csp=False)
    assert_secured(ok)
