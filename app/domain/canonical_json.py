"""RFC 8785 (JSON Canonicalization Scheme) serialisation, fast for the documents the service writes.

Every audit record is hashed over its RFC 8785 form. The ``rfc8785`` package writes it in pure Python,
character by character; for documents whose keys are ASCII and whose numbers are integers within
±(2**53 - 1) or fractions written the same way by both schemes, orjson (compiled; sorted keys, no
whitespace, UTF-8 out) writes the very same bytes, many times faster: strings with only the escapes JSON
requires (the short forms of backspace, form feed, newline, carriage return and tab, a lowercase "u00xx"
escape for the other control characters), keys in code point order (which is UTF-16 order for ASCII
keys). Anything else (a float that ECMAScript and Python format differently, a non-ASCII key, whose order
RFC 8785 takes by UTF-16 code units, a type JSON lacks, or a string UTF-8 cannot hold) goes to ``rfc8785``
itself. tests/unit/test_canonical_json.py checks that both agree on generated documents, and that the
fast path writes what the standard library's serialiser, which it replaced, wrote.
"""

import math
from typing import Any

import orjson
import rfc8785

MAX_SAFE_INTEGER = 2**53 - 1
"""The largest integer RFC 8785 writes (IEEE 754 doubles hold every integer up to it)."""

_SORTED = orjson.OPT_SORT_KEYS

CanonicalizationError = rfc8785.CanonicalizationError
"""What ``dumps`` raises for a value RFC 8785 has no form for (an integer beyond ``MAX_SAFE_INTEGER``, a
non-finite number, a string UTF-8 cannot hold)."""


def dumps(value: Any) -> bytes:
    """The RFC 8785 serialisation of ``value``, UTF-8 encoded."""
    if _plain(value):
        try:
            return orjson.dumps(value, option=_SORTED)
        except orjson.JSONEncodeError:  # a lone surrogate (rfc8785 refuses it in its own words), or nesting
            pass  # deeper than orjson goes (rfc8785 writes it)
    return rfc8785.dumps(value)


def _plain(value: Any) -> bool:
    """Whether the standard library writes ``value`` exactly as RFC 8785 does."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int:
            if -MAX_SAFE_INTEGER <= item <= MAX_SAFE_INTEGER:
                continue
            return False
        if kind is float:
            # Both write a non-integral number in [1e-4, 1e16) in fixed notation with its shortest digits;
            # outside that, or for an integral float (ECMAScript writes 5.0 as 5), they differ.
            if math.isfinite(item) and 1e-4 <= abs(item) < 1e16 and not item.is_integer():
                continue
            return False
        if kind is dict:
            try:
                if not "".join(item).isascii():  # TypeError: a key that is no string
                    return False
            except TypeError:
                return False
            stack.extend(item.values())
            continue
        if kind is list:
            stack.extend(item)
            continue
        return False
    return True
