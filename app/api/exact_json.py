"""JSON request bodies parsed exactly: numbers as Decimal, no NaN or Infinity, no duplicate keys, UTF-8.

A clinical value must reach the rules as the laboratory wrote it: ``1.1`` is Decimal("1.1"), not the
nearest binary float; ``NaN`` is refused at parse time; ``{"value": 1, "value": 2}`` is ambiguous and refused.
"""

import json
import re
from array import array
from collections.abc import Callable, Coroutine
from decimal import Decimal
from itertools import accumulate
from typing import Any

from fastapi import HTTPException, Request, Response
from fastapi.routing import APIRoute

from app.interop.fhir_documents import MAX_DEPTH

JSON_MEDIA_TYPE = "application/json"

MAX_JSON_DEPTH = MAX_DEPTH
"""The deepest nesting of objects and arrays any JSON body may have (the FHIR documents' limit): no form the
service reads needs more, and ``json.loads`` recurses once per level."""

_NOT_QUOTE_OR_BRACKET = bytes(sorted(set(range(256)) - set(b'"[]{}')))
_DEPTH_STEP = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")
"""Each bracket's step in depth, as a signed byte: an opening one +1, a closing one -1."""


class _Refused(ValueError):
    pass


def _no_constants(name: str) -> Any:
    raise _Refused(f"{name} is not a JSON number")


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document = dict(pairs)
    if len(document) != len(pairs):
        raise _Refused("an object has a duplicate key")
    return document


_DECODER = json.JSONDecoder(
    parse_float=Decimal,
    parse_int=int,
    parse_constant=_no_constants,
    object_pairs_hook=_no_duplicates,
)
"""What ``json.loads`` with these options builds on every call, built once."""


def nested_too_deeply(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether objects and arrays nest more than ``limit`` levels deep in a JSON text, found without parsing
    it: the depth is the highest running count of opening minus closing brackets outside strings.

    Each step runs in C over the bytes (UTF-8 never puts an ASCII byte inside a multi-byte character), so a
    megabyte costs milliseconds. A stray closing bracket can take the count below zero, but only past the end
    of the first complete value, which is as far as ``json.loads`` reads before refusing the rest.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    # Without its escapes (an escaped backslash first), every quote left opens or closes a string.
    unescaped = body.replace(b"\\\\", b"").replace(b'\\"', b"")
    # Reduced to quotes and brackets, most strings are "" and are dropped at once; the few left hold brackets.
    skeleton = unescaped.translate(None, _NOT_QUOTE_OR_BRACKET).replace(b'""', b"")
    outside_strings = b"".join(skeleton.split(b'"')[::2])
    return max(accumulate(array("b", outside_strings.translate(_DEPTH_STEP))), default=0) > limit


_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")
"""The escape of U+0000 (after an even number of backslashes, so not the text \\u0000): the one character
JSON can carry that PostgreSQL's text and JSONB cannot hold. A raw one is no JSON at all."""


def parse_exact_json(body: bytes) -> Any:
    """Parse a UTF-8 JSON document exactly; raises ``json.JSONDecodeError`` with a safe message."""
    if nested_too_deeply(body):
        # Refused before json.loads, which would recurse once per level (and use the stack) to find out.
        raise json.JSONDecodeError("the document is nested too deeply", "", 0)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        raise json.JSONDecodeError("the body is not UTF-8", "", error.start) from None
    if text.startswith("\ufeff"):  # as json.loads refuses it
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    if "u0000" in text and _NUL_ESCAPE.search(text):
        raise json.JSONDecodeError("a string holds U+0000 (NUL), which the audit store cannot keep", "", 0)
    try:
        return _DECODER.decode(text)
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
