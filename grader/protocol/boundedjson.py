"""Decoding JSON that student code could have shaped: bounded in values and depth, not only bytes.

A byte cap alone does not bound what ``json.loads`` builds: 30 MB of ``[{},{},...]`` is ten
million dicts, well over a gigabyte once decoded and copied. So the text is measured before a
single object is made, with a few passes of C-speed byte operations, and refused when it would
hold more than ``max_values`` values or nest deeper than ``max_depth`` levels.

The measure is an upper bound, never an underestimate: every value or key but the first follows
one of ``, : [ {``, so their number (plus one) bounds the values. It is first taken over the raw
bytes, commas inside strings included; only when that is over the limit, or the brackets might
nest too deep, are the strings cut out (escapes first, then everything between two quotes) and
the structure counted exactly. Text that is not JSON at all may be refused here or by
``json.loads``; either way it raises a ``ValueError``.
"""

from __future__ import annotations

import itertools
import json
import operator
import re
from typing import Any

MAX_VALUES = 1_000_000  # defaults for callers with no better figure; each names its own
MAX_DEPTH = 64

_STRUCTURE = b'[]{}",:'
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
_STRING = re.compile(rb'"[^"]*"')  # after the escapes are gone, a string is quote to quote
_STEP = bytes.maketrans(b"[{]}", b"\x02\x02\x00\x00")


class TooComplex(ValueError):
    """JSON text refused before decoding; ``kind`` is "large" (values) or "deep" (nesting)."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


def check(data: bytes, *, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> None:
    """Raise TooComplex if ``data`` may hold more than ``max_values`` values or nest too deep."""
    opens = data.count(b"[") + data.count(b"{")
    upper = 1 + opens + data.count(b",") + data.count(b":")
    if upper <= max_values and opens <= max_depth:
        return  # the common case: no string needs to be looked at
    if upper > max_values and b'"' not in data:  # no strings: the count is exact
        raise _too_many(max_values)
    structure = data.replace(b"\\\\", b"").replace(b'\\"', b"").translate(None, _NOT_STRUCTURE)
    quotes = structure.count(b'"')
    if quotes // 2 > max_values:  # every string is a value or a key
        raise _too_many(max_values)
    if quotes:
        structure = _STRING.sub(b"", structure)
    opens = structure.count(b"[") + structure.count(b"{")
    if 1 + opens + structure.count(b",") + structure.count(b":") > max_values:
        raise _too_many(max_values)
    if opens <= max_depth:
        return
    brackets = structure.translate(None, b'",:')
    if len(brackets) > 2 * max_values:  # more closing brackets than opening ones: not JSON
        raise _too_many(max_values)
    # depth after k brackets = opens - closes = 2 * opens - k, the sum of the steps minus k
    depth = max(map(operator.sub, itertools.accumulate(brackets.translate(_STEP)), itertools.count(1)))
    if depth > max_depth:
        raise TooComplex(f"it is nested deeper than {max_depth} levels", "deep")


def _too_many(max_values: int) -> TooComplex:
    return TooComplex(f"it holds more than {max_values:,} values", "large")


def _not_a_number(name: str) -> Any:
    """``NaN``, ``Infinity``: Python's json reads them, JSON has no such numbers, and a document
    holding one would make every export that copies it invalid JSON."""
    raise ValueError(f"{name} is not a JSON number")


def loads(data: bytes | str, *, max_values: int = MAX_VALUES, max_depth: int = MAX_DEPTH) -> Any:
    """``json.loads`` of UTF-8 text, after :func:`check`; ValueError (or TooComplex) if not."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else bytes(data)
    check(raw, max_values=max_values, max_depth=max_depth)
    text = data if isinstance(data, str) else raw.decode("utf-8-sig")
    try:
        return json.loads(text, parse_constant=_not_a_number)
    except RecursionError:  # cannot happen within max_depth; kept so no caller ever sees one
        raise TooComplex(f"it is nested deeper than {max_depth} levels", "deep") from None
