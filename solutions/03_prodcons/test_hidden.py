"""Hidden tests for exercise 03 (queues: producers and consumers)."""

import os
import random
from collections import Counter

import pytest

from grader.testing import Mistake, check_clean

pytestmark = pytest.mark.visibility("hidden")

rng = random.Random(os.urandom(16))

SENTINEL_HINT = "did you send one sentinel per consumer, and only after every producer has finished?"
DRAIN_HINT = ("did you join before draining the result queue? a child cannot exit while its queue "
              "feeder still holds unflushed data: read all results first, then join.")
SPLIT_HINT = ("did every item reach exactly one producer? items[i::producers] gives producer i "
              "its share without losing the remainder or repeating items.")
JOIN_HINT = ("did you join every producer and consumer? A process that was never joined stays a "
             "zombie, and one still running when your function returns was not waited for.")


def random_items(k):
    return [rng.randint(-1000, 1000) for _ in range(k)]


def describe(items):
    return repr(items) if len(items) <= 12 else f"{len(items)} items starting {items[:6]}"


def compare_squares(got, items, what):
    expected = sorted(x * x for x in items)
    if got == expected:
        return
    if not isinstance(got, list):
        raise AssertionError(f"{what}: expected a list of {len(expected)} squares, got {got!r}")
    missing = Counter(expected) - Counter(got)
    extra = Counter(got) - Counter(expected)
    if len(got) < len(expected) or missing and not extra:
        hint = SENTINEL_HINT if len(got) < len(expected) else SPLIT_HINT
    else:
        hint = SPLIT_HINT
    raise Mistake(f"{what}: expected {len(expected)} squares, got {len(got)} "
                  f"({sum(missing.values())} missing, {sum(extra.values())} unexpected or duplicated)",
                  hint=hint)




# --- produce_consume -------------------------------------------------------------------------


@pytest.mark.points(3)
@pytest.mark.hint(SPLIT_HINT)
def test_squares_are_complete(student):
    """produce_consume squares every item exactly once"""
    producers = 3
    k = rng.randint(50, 150) * producers + rng.choice([1, 2])  # not a multiple of producers
    items = random_items(k)
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.produce_consume(items, producers, 2)
    compare_squares(got, items, f"produce_consume({describe(items)}, {producers}, 2)")


@pytest.mark.points(2)
@pytest.mark.hint(SENTINEL_HINT)
def test_every_consumer_stops(student):
    """produce_consume stops every one of several consumers"""
    consumers = rng.randint(3, 4)
    items = random_items(rng.randint(20, 40))
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.produce_consume(items, 1, consumers)
    compare_squares(got, items, f"produce_consume({describe(items)}, 1, {consumers})")


@pytest.mark.points(2)
@pytest.mark.hint("Start `producers` producer processes and `consumers` consumer processes "
                  "(multiprocessing.Process, not threads, not direct calls).")
def test_processes_are_started(student):
    """produce_consume starts producers + consumers processes"""
    producers, consumers = rng.randint(2, 3), rng.randint(2, 3)
    items = random_items(30)
    prodcons = student.module("prodcons", timeout=5)
    prodcons.produce_consume(items, producers, consumers)
    call = student.last
    assert len(call.workers) == producers + consumers, (
        f"produce_consume(30 items, {producers}, {consumers}): expected {producers + consumers} "
        f"processes, got {len(call.workers)}")


@pytest.mark.points(1)
@pytest.mark.hint(JOIN_HINT)
def test_no_leftover_processes(student):
    """produce_consume joins every producer and consumer"""
    items = random_items(40)
    # Under fork (or spawn) the student's process is its workers' parent, so a worker never
    # joined stays its zombie; under forkserver the server reaps it and nothing shows.
    prodcons = student.module("prodcons", start_method="fork", timeout=5)
    prodcons.produce_consume(items, 2, 2)
    assert len(student.last.workers) >= 4, (
        f"produce_consume(40 items, 2, 2): expected 4 processes, saw {len(student.last.workers)}")
    check_clean(student.last, "produce_consume(40 items, 2, 2)", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("Check the arguments first: raise ValueError when producers < 1 or consumers < 1.")
def test_bad_counts_raise(student):
    """produce_consume with no producer or no consumer raises ValueError"""
    prodcons = student.module("prodcons", timeout=5)
    for producers, consumers in [(0, 1), (1, 0), (-2, 2)]:
        with pytest.raises(ValueError):
            prodcons.produce_consume([1, 2, 3], producers, consumers)


@pytest.mark.points(1)
@pytest.mark.hint("With no items the consumers still get their sentinels and stop: return [].")
def test_empty_items(student):
    """produce_consume([], 2, 2) returns []"""
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.produce_consume([], 2, 2)
    assert got == [], f"produce_consume([], 2, 2): expected [], got {got!r}"


@pytest.mark.points(3)
@pytest.mark.hint(DRAIN_HINT)
def test_large_input_no_deadlock(student):
    """produce_consume handles 100,000 items without deadlock"""
    items = random_items(100_000)
    prodcons = student.module("prodcons", timeout=25)
    got = prodcons.produce_consume(items, 2, 2)
    compare_squares(got, items, "produce_consume(100,000 items, 2, 2)")


@pytest.mark.points(1)
@pytest.mark.hint("Under spawn the targets must be module-level functions (no lambda, no nested "
                  "function) receiving the queues through args=.")
def test_produce_consume_under_spawn(student):
    """produce_consume works under the spawn start method"""
    items = random_items(30)
    prodcons = student.module("prodcons", start_method="spawn", timeout=10)
    got = prodcons.produce_consume(items, 2, 2)
    compare_squares(got, items, f"produce_consume({describe(items)}, 2, 2) under spawn")


# --- word_count ------------------------------------------------------------------------------

VOCAB = ["the", "a", "cat", "dog", "sat", "on", "mat", "The", "cat,", "42", "naïve", "x"]
SPACES = [" ", " ", " ", "  ", "\t", " \t "]


def random_lines(k):
    lines = []
    for _ in range(k):
        words = [rng.choice(VOCAB) for _ in range(rng.randint(0, 9))]
        line = ""
        for w in words:
            line += w + rng.choice(SPACES)
        lines.append(rng.choice(["", " "]) + line)
    if k >= 2:  # the first two lines go to different workers: make them share a word
        lines[0] = "cat " + lines[0]
        lines[1] = lines[1] + "\tcat"
    return lines


def expected_counts(lines):
    return dict(Counter(w for line in lines for w in line.split()))


@pytest.mark.points(2)
@pytest.mark.hint("Words are what str.split() returns (any run of spaces or tabs separates them); "
                  "merge the workers' dicts by ADDING the counts of the same word.")
def test_word_count_random(student):
    """word_count counts whitespace-separated words across workers"""
    workers = 3
    # Never a multiple of the workers, and the last lines hold words: a split into
    # len(lines) // workers chunks loses them, every run.
    lines = random_lines(rng.randint(10, 20) * workers + rng.choice([1, 2]))
    lines[-1] += " dog"
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.word_count(lines, workers)
    expected = expected_counts(lines)
    if got != expected:
        wrong = sorted(w for w in set(expected) | set(got or {}) if (got or {}).get(w) != expected.get(w))
        raise AssertionError(f"word_count({len(lines)} lines, {workers}): expected {expected}, got "
                             f"{got!r} (wrong for {wrong[:5]})")


@pytest.mark.points(1)
@pytest.mark.hint("Start exactly `workers` multiprocessing.Process workers, and join them all.")
def test_word_count_uses_workers(student):
    """word_count starts and joins exactly `workers` processes"""
    lines = random_lines(12)
    workers = rng.randint(3, 4)
    # fork: a worker never joined stays the student's zombie (forkserver's server reaps it).
    prodcons = student.module("prodcons", start_method="fork", timeout=5)
    prodcons.word_count(lines, workers)
    call = student.last
    assert len(call.workers) == workers, (f"word_count(12 lines, {workers}): expected {workers} "
                                          f"processes, got {len(call.workers)}")
    check_clean(call, f"word_count(12 lines, {workers})", hint=JOIN_HINT)


@pytest.mark.points(1)
@pytest.mark.hint("A worker may get no lines: it still sends an (empty) dict, and the parent reads "
                  "exactly one dict per worker.")
def test_word_count_more_workers_than_lines(student):
    """word_count works with more workers than lines"""
    lines = [" ".join(rng.choice(VOCAB[:6]) for _ in range(4)),
             "\t".join(rng.choice(VOCAB[6:]) for _ in range(4))]
    prodcons = student.module("prodcons", timeout=5)
    got = prodcons.word_count(lines, 5)
    expected = expected_counts(lines)
    assert got == expected, f"word_count({lines!r}, 5): expected {expected}, got {got!r}"


@pytest.mark.points(1)
@pytest.mark.hint("Check the argument first: raise ValueError when workers < 1.")
def test_word_count_bad_workers(student):
    """word_count with workers < 1 raises ValueError"""
    prodcons = student.module("prodcons", timeout=5)
    for workers in (0, -1):
        with pytest.raises(ValueError):
            prodcons.word_count(["a b"], workers)


@pytest.mark.points(1)
@pytest.mark.hint("Under spawn the target must be a module-level function receiving its lines and "
                  "the queue through args=.")
def test_word_count_under_spawn(student):
    """word_count works under the spawn start method"""
    lines = random_lines(10)
    prodcons = student.module("prodcons", start_method="spawn", timeout=8)
    got = prodcons.word_count(lines, 2)
    expected = expected_counts(lines)
    assert got == expected, f"word_count({lines!r}, 2) under spawn: expected {expected}, got {got!r}"
