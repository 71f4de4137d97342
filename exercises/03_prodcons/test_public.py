"""Public tests for exercise 03 (queues). Run them while you work."""

import pytest


@pytest.mark.points(2)
@pytest.mark.hint("One producer puts the items on the task queue, one consumer squares them onto "
                  "the result queue; a None sentinel stops the consumer.")
def test_produce_consume_small(student):
    """produce_consume([1, 2, 3, 4, 5], 1, 1) returns [1, 4, 9, 16, 25]"""
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.produce_consume([1, 2, 3, 4, 5], 1, 1)
    assert got == [1, 4, 9, 16, 25], f"expected [1, 4, 9, 16, 25], got {got!r}"


@pytest.mark.points(2)
@pytest.mark.hint("did you send one sentinel per consumer, after every producer has finished?")
def test_produce_consume_several_processes(student):
    """produce_consume(range(10), 2, 3) squares every item"""
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.produce_consume(list(range(10)), 2, 3)
    expected = [i * i for i in range(10)]
    assert got == expected, f"expected {expected}, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Split with str.split(), count per worker, add the workers' counts up.")
def test_word_count_small(student):
    """word_count(["a b a", "b c"], 2) counts every word"""
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.word_count(["a b a", "b c"], 2)
    assert got == {"a": 2, "b": 2, "c": 1}, f"expected {{'a': 2, 'b': 2, 'c': 1}}, got {got!r}"
