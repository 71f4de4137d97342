"""Plain-data codec for the student-call boundary.

Values cross between the grader and student processes as JSON text only, never as pickles:
unpickling bytes that student code produced would let it run code in the grader. JSON cannot
tell a tuple from a list or carry non-string dict keys, so those are tagged. Anything that is
not plain data is refused on the way out, with a message a student can act on.

This file is standalone (no imports from ``grader``) because it is loaded inside the student's
child process from the boot directory.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_DEPTH = 64
MAX_ITEMS = 2_000_000
TAG = "$mpgrade"


class NotPlainData(TypeError):
    """A value that cannot cross the boundary as plain data."""


def encode(value: Any) -> Any:
    """Turn plain data into JSON-able data, tagging what JSON would lose."""
    budget = [MAX_ITEMS]

    def enc(v: Any, depth: int) -> Any:
        budget[0] -= 1
        if budget[0] < 0:
            raise NotPlainData(f"value has more than {MAX_ITEMS} items")
        if depth > MAX_DEPTH:
            raise NotPlainData(f"value is nested deeper than {MAX_DEPTH} levels")
        t = type(v)
        if v is None or t is bool or t is int or t is str:
            return v
        if t is float:
            if math.isfinite(v):
                return v
            return {TAG: "float", "v": repr(v)}
        if t is list:
            return [enc(x, depth + 1) for x in v]
        if t is tuple:
            return {TAG: "tuple", "v": [enc(x, depth + 1) for x in v]}
        if t is set or t is frozenset:
            return {TAG: "set", "v": [enc(x, depth + 1) for x in v]}
        if t is dict:
            if all(type(k) is str for k in v) and TAG not in v:
                return {k: enc(x, depth + 1) for k, x in v.items()}
            return {TAG: "dict", "v": [[enc(k, depth + 1), enc(x, depth + 1)] for k, x in v.items()]}
        raise NotPlainData(
            f"a value of type {t.__module__}.{t.__qualname__} cannot be returned: "
            "return plain data (None, bool, int, float, str, list, tuple, dict, set)"
        )

    return enc(value, 0)


def decode(data: Any) -> Any:
    """Rebuild plain data from :func:`encode`'s output; never constructs other types."""
    if isinstance(data, list):
        return [decode(x) for x in data]
    if isinstance(data, dict):
        tag = data.get(TAG)
        if tag is None:
            return {k: decode(v) for k, v in data.items()}
        items = data.get("v")
        if tag == "float" and items in ("nan", "inf", "-inf"):
            return float(items)
        if not isinstance(items, list):
            raise ValueError("malformed tagged value")
        if tag == "tuple":
            return tuple(decode(x) for x in items)
        if tag == "set":
            return {_hashable(decode(x)) for x in items}
        if tag == "dict":
            out = {}
            for pair in items:
                if not (isinstance(pair, list) and len(pair) == 2):
                    raise ValueError("malformed tagged dict")
                out[_hashable(decode(pair[0]))] = decode(pair[1])
            return out
        raise ValueError(f"unknown tag {tag!r}")
    if data is None or isinstance(data, bool | int | float | str):
        return data
    raise ValueError(f"not JSON data: {type(data).__name__}")


def _hashable(value: Any) -> Any:
    try:
        hash(value)
    except TypeError:
        raise ValueError("unhashable key in tagged data") from None
    return value


def dumps(value: Any) -> str:
    return json.dumps(encode(value), separators=(",", ":"), allow_nan=False)


def loads(text: str | bytes) -> Any:
    return decode(json.loads(text))
