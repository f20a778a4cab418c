"""The fast serialisation writes exactly what the rfc8785 package writes, or fails as it does."""

import math
from typing import Any

import rfc8785
from hypothesis import example, given, settings
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
