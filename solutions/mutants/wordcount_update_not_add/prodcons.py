"""Exercise 03 - queues: producers and consumers (MUTANT wordcount_update_not_add: word_count merges the workers' dicts with dict.update: counts of a word seen by several workers are overwritten, not added)."""

import multiprocessing
import sys
from collections import Counter


def _produce(chunk: list[int], tasks) -> None:
    """Producer: put every item of ``chunk`` on the task queue."""
    for item in chunk:
        tasks.put(item)


def _consume(tasks, results) -> None:
    """Consumer: square tasks until the sentinel ``None``; then put ``None`` on results."""
    while True:
        item = tasks.get()
        if item is None:
            break
        results.put(item * item)
    results.put(None)  # "this consumer is done"


def produce_consume(items: list[int], producers: int, consumers: int) -> list[int]:
    """Square ``items`` with ``producers`` producer and ``consumers`` consumer processes.

    Producer ``i`` puts ``items[i::producers]`` one by one on a task ``multiprocessing.Queue``.
    Each consumer takes items from the task queue and puts their squares on a result queue.
    When every producer has finished (joined), the parent puts one sentinel ``None`` per
    consumer on the task queue; a consumer that takes a sentinel puts ``None`` on the result
    queue ("I am done") and ends. The parent reads the result queue until it has seen one
    ``None`` per consumer, joins every consumer AFTER draining the result queue (a process
    cannot exit while its queue still holds unflushed data), and returns the squares sorted.

    Every item is squared exactly once: nothing lost, nothing duplicated. It must work for
    100,000 items. ``producers < 1`` or ``consumers < 1`` raises ``ValueError``. ``[]`` returns
    ``[]`` (the processes are still started and stopped).
    """
    if producers < 1 or consumers < 1:
        raise ValueError(
            f"need at least one producer and one consumer, got {producers} and {consumers}"
        )
    tasks = multiprocessing.Queue()
    results = multiprocessing.Queue()
    prods = [
        multiprocessing.Process(target=_produce, args=(items[i::producers], tasks))
        for i in range(producers)
    ]
    cons = [multiprocessing.Process(target=_consume, args=(tasks, results)) for _ in range(consumers)]
    for p in prods + cons:
        p.start()
    for p in prods:
        p.join()  # safe: the consumers keep draining the task queue meanwhile
    for _ in cons:
        tasks.put(None)
    squares = []
    done = 0
    while done < consumers:
        value = results.get()
        if value is None:
            done += 1
        else:
            squares.append(value)
    for c in cons:
        c.join()
    return sorted(squares)


def _count_words(chunk: list[str], results) -> None:
    """Worker: count the whitespace-separated words of ``chunk``; send the counts as a dict."""
    counts = Counter()
    for line in chunk:
        counts.update(line.split())
    results.put(dict(counts))


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    """Count words in ``lines`` with ``workers`` processes; return ``{word: count}``.

    Worker ``i`` counts the words of ``lines[i::workers]``; words are what ``str.split()``
    returns (split on any run of whitespace, case-sensitive, punctuation kept). Each worker puts
    one dict of its counts on a ``multiprocessing.Queue``; the parent reads exactly one dict per
    worker, adds the counts up, joins every worker and returns the merged dict. Exactly
    ``workers`` processes are started, even when some get no lines. ``workers < 1`` raises
    ``ValueError``. ``[]`` returns ``{}``.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    results = multiprocessing.Queue()
    procs = [
        multiprocessing.Process(target=_count_words, args=(lines[i::workers], results))
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    total = {}
    for _ in procs:
        total.update(results.get())
    for p in procs:
        p.join()
    return dict(total)


if __name__ == "__main__":
    import time

    method = sys.argv[1] if len(sys.argv) > 1 else None
    if method:
        multiprocessing.set_start_method(method)
    print(produce_consume(list(range(10)), 3, 2))
    t = time.perf_counter()
    out = produce_consume(list(range(100_000)), 2, 2)
    print(len(out), out == sorted(x * x for x in range(100_000)), time.perf_counter() - t)
    print(word_count(["a b  a", "b\tc", "", "a"], 3))
