"""The fast serialisation writes exactly what the rfc8785 package writes, or fails as it does."""

import json
import math
from typing import Any

import rfc8785
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from app.domain import canonical_json

SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**60), max_value=2**60)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.floats(min_value=1e-5, max_value=1e17)
    | st.text()
)
KEYS = st.text(max_size=8) | st.sampled_from(
    ["a", "b", "\u00e9", "\U0001f600", "\ufb01", "A", "_", "10", "9"]
)
DOCUMENTS = st.recursive(
    SCALARS,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(KEYS, children, max_size=5),
    max_leaves=20,
)


def outcome(serialise: Any, value: Any) -> bytes | type[BaseException]:
    try:
        result: bytes = serialise(value)
    except Exception as error:  # the kind of refusal is what must agree
        return type(error)
    return result


@settings(max_examples=500)
@given(DOCUMENTS)
@example({"b": 1, "a": [0.5, -0.0001, 1e16, 5.0, 2**53, -(2**53) + 1, '\u2028\x7f\x1f"\\/']})
@example({"\U0001f600": 1, "\ufb01": 2})  # UTF-16 order differs from code point order here
@example({"lone": "\ud800"})
@example([1e-4, 9.999999999999998e15, 0.1 + 0.2, 1e21, 1e-7, math.pi])
def test_the_fast_form_is_the_rfc8785_form(document: Any) -> None:
    assert outcome(canonical_json.dumps, document) == outcome(rfc8785.dumps, document)


def test_plain_documents_take_the_fast_path_and_others_do_not() -> None:
    assert canonical_json._plain({"a": [1, "x", None, True, 0.25]})
    assert not canonical_json._plain({"a": 5.0})
    assert not canonical_json._plain({"é": 1})
    assert not canonical_json._plain({"a": 2**53})
    assert not canonical_json._plain({"a": (1, 2)})


STDLIB = json.JSONEncoder(ensure_ascii=False, sort_keys=True, separators=(",", ":"), allow_nan=False)
"""What wrote the fast path before orjson did: the bytes must not have changed."""
PLAIN_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-canonical_json.MAX_SAFE_INTEGER, max_value=canonical_json.MAX_SAFE_INTEGER)
    | st.floats(min_value=1e-4, max_value=1e15).filter(lambda number: not number.is_integer())
    | st.text()
)
PLAIN_DOCUMENTS = st.recursive(
    PLAIN_SCALARS,
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(st.characters(max_codepoint=0x7F), max_size=8), children, max_size=5)
    ),
    max_leaves=20,
)
EVERY_ASCII = "".join(map(chr, range(0x80)))
AWKWARD = EVERY_ASCII + "\x80\x9f\xa0\u00e9\u2028\u2029\ufeff\uffff\U0001f600"


@settings(max_examples=500)
@given(PLAIN_DOCUMENTS)
@example({EVERY_ASCII: AWKWARD, "": [AWKWARD, {"B": 1, "a": 2, "_": 3, "~": 4, " ": 5}]})
@example({"seq": 2**53 - 1, "other": -(2**53) + 1, "half": 0.5, "small": 0.0001, "big": 999999999999999.9})
def test_the_fast_path_writes_what_the_standard_library_wrote(document: Any) -> None:
    assume(canonical_json._plain(document))
    expected = STDLIB.encode(document).encode("utf-8")
    assert canonical_json.dumps(document) == expected == rfc8785.dumps(document)


def test_nesting_deeper_than_orjson_goes_is_written_by_rfc8785() -> None:
    document: Any = "leaf"
    for _ in range(300):
        document = [document]

    assert canonical_json.dumps(document) == STDLIB.encode(document).encode() == rfc8785.dumps(document)


def test_a_lone_surrogate_on_the_fast_path_is_refused_as_rfc8785_refuses_it() -> None:
    document = {"a": "ok", "b": "\udc00"}
    assert canonical_json._plain(document)

    refused = outcome(canonical_json.dumps, document)
    assert isinstance(refused, type)
    assert issubclass(refused, Exception)
    assert refused == outcome(rfc8785.dumps, document)
