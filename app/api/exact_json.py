"""JSON request bodies parsed exactly: numbers as Decimal, no NaN or Infinity, no duplicate keys, UTF-8.

A clinical value must reach the rules as the laboratory wrote it: ``1.1`` is Decimal("1.1"), not the
nearest binary float; ``NaN`` is refused at parse time; ``{"value": 1, "value": 2}`` is ambiguous and refused.
"""

import json
from collections.abc import Callable, Coroutine
from decimal import Decimal
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

JSON_MEDIA_TYPE = "application/json"


class _Refused(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _Refused("an object has a duplicate key")
        document[key] = value
    return document


def parse_exact_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON document exactly; raises ``json.JSONDecodeError`` with a safe message."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError("the body is not UTF-8", "", error.start) from None
    try:
        return json.loads(
            text,
            parse_float=Decimal,
            parse_int=int,
            parse_constant=_no_constants,
            object_pairs_hook=_no_duplicates,
        )
    except json.JSONDecodeError:
        raise
    except _Refused as error:
        raise json.JSONDecodeError(str(error), "", 0) from None
    except RecursionError:
        raise json.JSONDecodeError("the document is nested too deeply", "", 0) from None
    except (ValueError, ArithmeticError):
        # An integer past Python's digit limit, or an exponent past Decimal's range.
        raise json.JSONDecodeError("a number is out of range", "", 0) from None


class ExactJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_exact_json(await self.body())
        return self._json


class ExactJSONRoute(APIRoute):
    """A route whose JSON body is parsed by ``parse_exact_json``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def exact_json_handler(request: Request) -> Response:
            return await handler(ExactJSONRequest(request.scope, request.receive))

        return exact_json_handler


async def require_json(request: Request) -> None:
    """Refuse a body that is not declared as UTF-8 JSON with 415, before it is validated."""
    content_type = request.headers.get("content-type", "")
    media_type, _, parameters = content_type.partition(";")
    charset = next(
        (
            value.strip().strip('"').lower()
            for name, _, value in (p.partition("=") for p in parameters.split(";"))
            if name.strip().lower() == "charset"
        ),
        "utf-8",
    )
    if media_type.strip().lower() != JSON_MEDIA_TYPE or charset != "utf-8":
        raise HTTPException(415, f"Send the body as {JSON_MEDIA_TYPE} in UTF-8.")


async def require_json_if_body(request: Request) -> None:
    """``require_json`` for a route whose body is optional: only when a body is sent."""
    if await request.body():
        await require_json(request)
