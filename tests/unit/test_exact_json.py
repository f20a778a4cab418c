"""A body nested deeper than MAX_JSON_DEPTH is refused by a scan of its bytes, before json.loads recurses."""

import json
import time
from decimal import Decimal
from typing import Any

import httpx
import pytest
from fastapi import APIRouter, Body, FastAPI
from hypothesis import given
from hypothesis import strategies as st

from app.api.exact_json import MAX_JSON_DEPTH, ExactJSONRoute, nested_too_deeply, parse_exact_json
from app.interop.fhir_documents import MAX_DEPTH, too_deep

TOO_DEEP = "the document is nested too deeply"


def arrays(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def objects(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


def test_the_limit_is_the_fhir_documents_limit() -> None:
    assert MAX_JSON_DEPTH == MAX_DEPTH == 64


@pytest.mark.parametrize("nested", [arrays, objects])
def test_nesting_up_to_the_limit_is_read(nested: Any) -> None:
    parse_exact_json(nested(MAX_JSON_DEPTH))


@pytest.mark.parametrize("nested", [arrays, objects])
def test_nesting_past_the_limit_is_refused(nested: Any) -> None:
    with pytest.raises(json.JSONDecodeError, match=TOO_DEEP):
        parse_exact_json(nested(MAX_JSON_DEPTH + 1))


def test_mixed_nesting_counts_objects_and_arrays_alike() -> None:
    document: Any = 1
    for level in range(MAX_JSON_DEPTH + 1):
        document = {"a": document} if level % 2 else [document]
    with pytest.raises(json.JSONDecodeError, match=TOO_DEEP):
        parse_exact_json(json.dumps(document).encode())
    parse_exact_json(json.dumps(document[0]).encode())


@pytest.mark.parametrize("body", [b"[" * 100_000, b'{"a":' * 100_000, arrays(100_000)])
def test_a_hostile_depth_is_refused_quickly_without_recursion(body: bytes) -> None:
    started = time.perf_counter()
    with pytest.raises(json.JSONDecodeError, match=TOO_DEEP) as refused:
        parse_exact_json(body)
    assert time.perf_counter() - started < 1
    assert refused.value.__context__ is None  # refused by the scan, not by a RecursionError from json.loads


@pytest.mark.parametrize(
    "text",
    [
        "[" * 200,
        "{" * 200,
        "]" * 10 + "[" * 200 + '\\"',
        '\\"' + "[" * 200,
        "\\\\" * 3 + "[" * 200 + '\\\\\\"' + "{" * 200,
        "\u00e9\U0001f9ea" + "[" * 200,
    ],
)
def test_brackets_inside_strings_do_not_count(text: str) -> None:
    body = json.dumps({"note": text, "values": [[text], {"k": text}], text: 1}).encode()
    assert parse_exact_json(body)["note"] == text


def test_an_escaped_backslash_ends_before_the_closing_quote() -> None:
    # "\\" is one backslash: the quote after it closes the string, and the brackets after that count.
    body = b'["\\\\", ' + arrays(MAX_JSON_DEPTH) + b"]"
    with pytest.raises(json.JSONDecodeError, match=TOO_DEEP):
        parse_exact_json(body)
    assert parse_exact_json(b'["\\\\", ' + arrays(MAX_JSON_DEPTH - 1) + b"]")[0] == "\\"


def test_an_unterminated_string_is_not_mistaken_for_depth() -> None:
    with pytest.raises(json.JSONDecodeError) as refused:
        parse_exact_json(b'["' + b"[" * 200 + b"]")
    assert refused.value.msg != TOO_DEEP


def test_numbers_stay_exact_after_the_scan() -> None:
    body = b'{"values": ' + b"[" * 60 + b"1.1" + b"]" * 60 + b', "n": "[[[["}'
    document = parse_exact_json(body)
    inner = document["values"]
    for _ in range(59):
        inner = inner[0]
    assert inner == [Decimal("1.1")]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='[]{}"\\ a\u00e9'),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='[]{}"\\ a', max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


@given(json_values, st.integers(min_value=0, max_value=8))
def test_the_scan_agrees_with_a_walk_of_the_parsed_document(document: Any, limit: int) -> None:
    assert nested_too_deeply(json.dumps(document).encode(), limit) == too_deep(document, limit)


async def test_a_too_deep_body_is_a_422_json_invalid_error() -> None:
    router = APIRouter(route_class=ExactJSONRoute)

    @router.post("/echo")
    async def echo(body: Any = Body()) -> Any:
        return body

    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        deep = await client.post(
            "/echo", content=arrays(MAX_JSON_DEPTH + 1), headers={"content-type": "application/json"}
        )
        fine = await client.post(
            "/echo", content=arrays(MAX_JSON_DEPTH), headers={"content-type": "application/json"}
        )

    assert deep.status_code == 422
    [error] = deep.json()["detail"]
    assert error["type"] == "json_invalid"
    assert error["ctx"] == {"error": TOO_DEEP}
    assert fine.status_code == 200


def loads_as_before(body: bytes) -> Any:
    """What parse_exact_json ran before its decoder was built once: json.loads with the same options."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({key for key, _ in pairs}) != len(pairs):
            raise ValueError("an object has a duplicate key")
        return dict(pairs)

    def no_constants(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number")

    return json.loads(
        body.decode("utf-8"),
        parse_float=Decimal,
        parse_int=int,
        parse_constant=no_constants,
        object_pairs_hook=no_duplicates,
    )


@pytest.mark.parametrize(
    "body",
    [
        b'{"value": 1.10, "n": 12, "big": 1e400, "list": [0.1, -0, 3E-2, true, null, "\\u00e9"]}',
        b'\xef\xbb\xbf{"a": 1}',  # a UTF-8 byte order mark
        b'{"a": 1, "a": 2}',
        b'[{"b": {"c": 1, "c": 1}}]',
        b'{"a": NaN}',
        b'{"a": 1} trailing',
        b"  [1, 2]  ",
    ],
)
def test_the_shared_decoder_reads_and_refuses_as_json_loads_did(body: bytes) -> None:
    try:
        expected: Any = loads_as_before(body)
    except ValueError:
        expected = ValueError
    try:
        parsed: Any = parse_exact_json(body)
    except ValueError:  # json.JSONDecodeError is one
        parsed = ValueError
    assert parsed == expected
    assert type(parsed) is type(expected)


def test_the_shared_decoder_is_not_changed_by_a_refusal() -> None:
    with pytest.raises(json.JSONDecodeError, match="duplicate"):
        parse_exact_json(b'{"x": {"k": 1, "k": 2}}')

    assert parse_exact_json(b'{"x": {"k": 1.5}, "k": 2}') == {"x": {"k": Decimal("1.5")}, "k": 2}


def test_a_byte_order_mark_is_refused_in_json_loads_words() -> None:
    body = b'\xef\xbb\xbf{"a": 1}'
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(body.decode("utf-8"))

    with pytest.raises(json.JSONDecodeError) as refused:
        parse_exact_json(body)

    assert (refused.value.msg, refused.value.pos) == (expected.value.msg, expected.value.pos)


@pytest.mark.parametrize(
    "body",
    [rb'{"a": "\u0000"}', rb'{"a\u0000": 1}', rb'["x\\\u0000"]', rb'{"a": "\u00001"}'],
    ids=["value", "key", "after-an-escaped-backslash", "followed-by-a-digit"],
)
def test_a_nul_is_refused(body: bytes) -> None:
    with pytest.raises(json.JSONDecodeError, match=r"U\+0000 \(NUL\)"):
        parse_exact_json(body)


@pytest.mark.parametrize(
    ("body", "read"),
    [(rb'{"a": "\\u0000"}', {"a": "\\u0000"}), (rb'{"a": "\u00e9 u0000"}', {"a": "\u00e9 u0000"})],
    ids=["the-text-backslash-u0000", "the-text-u0000"],
)
def test_text_that_only_looks_like_a_nul_is_read(body: bytes, read: Any) -> None:
    assert parse_exact_json(body) == read
