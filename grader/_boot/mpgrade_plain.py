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
# Special methods a test may reach on a student object (``len(obj)``, ``x in obj``,
# ``obj[k]``, ``with obj:``); every other name that starts with ``_`` is refused, so no test
# can walk from a handle to ``__class__``, ``__globals__`` or ``__reduce__``.
SPECIAL = frozenset({"__len__", "__contains__", "__getitem__", "__setitem__", "__delitem__",
                     "__call__", "__enter__", "__exit__", "__bool__"})
MAX_TAKE = 100_000


def reachable(name: str) -> bool:
    return isinstance(name, str) and name.isidentifier() and (not name.startswith("_") or name in SPECIAL)


class NotPlainData(TypeError):
    """A value that cannot cross the boundary as plain data."""


def encode(value: Any, other: Any = None) -> Any:
    """Turn plain data into JSON-able data, tagging what JSON would lose.

    ``other`` (a callable) is asked for what is not plain data, wherever it is nested, and
    returns its tagged reference (``{TAG: "handle", ...}`` or ``{TAG: "helper", ...}``): a
    session's objects that stay in the student process, a test's helper functions. Without
    it such values are refused. It is our code's, never the student's: the student side uses
    it only to put its own objects in the session's table.
    """
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
        plain = _as_plain(v)
        if plain is not None:
            return enc(plain, depth)
        if other is not None:
            return other(v)
        raise NotPlainData(
            f"a value of type {t.__module__}.{t.__qualname__} cannot be returned: "
            f"{_suggest(v)}return plain data (None, bool, int, float, str, list, tuple, dict, set)"
        )

    return enc(value, 0)


# The plain type a subclass converts to, and how: through the base type's own methods, so an
# override in the subclass cannot change what crosses. ``namedtuple``, ``Counter``,
# ``OrderedDict``, ``defaultdict``, ``IntEnum`` and ``str`` enums are such subclasses.
_BASES = (
    (dict, lambda v: dict(dict.items(v))),
    (list, lambda v: list(list.__iter__(v))),
    (tuple, lambda v: tuple(tuple.__iter__(v))),
    (frozenset, lambda v: set(frozenset.__iter__(v))),
    (set, lambda v: set(set.__iter__(v))),
    (str, lambda v: str.__str__(v)),
    (int, lambda v: int.__int__(v)),
    (float, lambda v: float.__float__(v)),
)


def _as_plain(v: Any) -> Any:
    """A subclass of a plain type as that plain type, when the two compare equal (a subclass
    whose value means something else, one that compares unequal, stays refused); None if not."""
    for base, convert in _BASES:
        if isinstance(v, base):
            try:
                plain = convert(v)
                same = bool(plain == v)
            except Exception:
                return None
            if not same:
                raise NotPlainData(
                    f"a value of type {type(v).__module__}.{type(v).__qualname__} (a {base.__name__} "
                    f"subclass) does not compare equal to {base.__name__}(value): return a plain "
                    f"{base.__name__} built from it")
            return plain
    return None


def _suggest(v: Any) -> str:
    """What to return instead, for the values students return most often by mistake."""
    t = type(v)
    name = f"{t.__module__}.{t.__qualname__}"
    if hasattr(v, "tolist"):
        return "return value.tolist() instead; "
    if name in ("builtins.dict_keys", "builtins.dict_values", "builtins.dict_items", "builtins.map",
                "builtins.filter", "builtins.range", "builtins.zip", "builtins.generator",
                "builtins.reversed", "collections.deque", "builtins.list_iterator"):
        return "return list(value) instead; "
    if t.__module__ == "multiprocessing.sharedctypes":
        return "return value.value (what it holds, read in the parent) instead; "
    if t.__module__.startswith("multiprocessing"):
        return "return the data itself (e.g. a list of what you received), never the queue, pipe, lock or process; "
    return ""


REFERENCES = ("handle", "helper")


def decode(data: Any, resolve: Any = None) -> Any:
    """Rebuild plain data from :func:`encode`'s output; never constructs other types.

    A reference (``handle``, ``helper``) is handed to ``resolve(tag, data)``, whose answer
    takes its place; without ``resolve`` a reference is malformed data.
    """

    def dec(data: Any) -> Any:
        if isinstance(data, list):
            return [dec(x) for x in data]
        if isinstance(data, dict):
            tag = data.get(TAG)
            if tag is None:
                return {k: dec(v) for k, v in data.items()}
            if tag in REFERENCES:
                if resolve is None:
                    raise ValueError(f"a {tag} reference where plain data was expected")
                return resolve(tag, data)
            items = data.get("v")
            if tag == "float" and items in ("nan", "inf", "-inf"):
                return float(items)
            if not isinstance(items, list):
                raise ValueError("malformed tagged value")
            if tag == "tuple":
                return tuple(dec(x) for x in items)
            if tag == "set":
                return {_hashable(dec(x)) for x in items}
            if tag == "dict":
                out = {}
                for pair in items:
                    if not (isinstance(pair, list) and len(pair) == 2):
                        raise ValueError("malformed tagged dict")
                    out[_hashable(dec(pair[0]))] = dec(pair[1])
                return out
            raise ValueError(f"unknown tag {tag!r}")
        if data is None or isinstance(data, bool | int | float | str):
            return data
        raise ValueError(f"not JSON data: {type(data).__name__}")

    return dec(data)


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
