"""The plain-data codec: what may cross the student boundary, and nothing else."""

import math

import pytest

from grader._boot import mpgrade_plain as plain


@pytest.mark.parametrize("value", [
    None, True, 0, -3, 2**80, 1.5, "héllo", [1, [2, [3]]], (1, "a", (2,)),
    {"a": 1, "b": [1, 2]}, {1: "one", (2, 3): "pair"}, {1, 2, 3}, frozenset({"x"}),
    {"$mpgrade": "not a tag"}, [], (), {},
])
def test_plain_values_round_trip_exactly(value):
    back = plain.loads(plain.dumps(value))
    assert back == value
    assert type(back) is (set if isinstance(value, frozenset) else type(value))


def test_non_finite_floats_survive():
    assert math.isnan(plain.loads(plain.dumps(float("nan"))))
    assert plain.loads(plain.dumps([float("inf"), -math.inf])) == [math.inf, -math.inf]


class Evil:
    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("value", [object(), Evil(), [1, Evil()], {"k": b"bytes"}, lambda: 1])
def test_anything_else_is_refused_with_a_message(value):
    with pytest.raises(plain.NotPlainData, match="plain data"):
        plain.encode(value)


def test_decoding_never_builds_other_types():
    with pytest.raises(ValueError):
        plain.decode({"$mpgrade": "object", "v": ["os.system", "id"]})
    with pytest.raises(ValueError):
        plain.decode({"$mpgrade": "set", "v": [[1, 2]]})  # a list cannot be a set member


def test_depth_is_capped():
    deep = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(plain.NotPlainData, match="nested"):
        plain.encode(deep)


def test_unhashable_members_hidden_in_tuples_are_refused():
    with pytest.raises(ValueError, match="unhashable"):
        plain.decode({"$mpgrade": "set", "v": [{"$mpgrade": "tuple", "v": [[1]]}]})
