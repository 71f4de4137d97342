"""Exercise 03 - queues (Frank's own solution)."""

import multiprocessing
from collections import Counter


def make_items(tasks, chunk):
    for item in chunk:
        tasks.put(item)


def square_items(tasks, results):
    while True:
        item = tasks.get()
        if item is None:
            results.put(None)
            break
        results.put(item * item)


def produce_consume(items: list[int], producers: int, consumers: int) -> list[int]:
    if producers < 1 or consumers < 1:
        raise ValueError("need at least one producer and one consumer")
    tasks = multiprocessing.Queue()
    results = multiprocessing.Queue()
    makers = [multiprocessing.Process(target=make_items, args=(tasks, items[i::producers]))
              for i in range(producers)]
    squarers = [multiprocessing.Process(target=square_items, args=(tasks, results))
                for i in range(consumers)]
    for proc in makers + squarers:
        proc.start()
    for proc in makers:
        proc.join()
    for i in range(consumers):
        tasks.put(None)
    finished = 0
    squares = []
    while finished < consumers:
        value = results.get()
        if value is None:
            finished = finished + 1
        else:
            squares.append(value)
    for proc in squarers:
        proc.join()
    return sorted(squares)


def count_words(lines, out):
    tally = Counter()
    for line in lines:
        tally.update(line.split())
    out.put(dict(tally))


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    if workers < 1:
        raise ValueError("need at least one worker")
    out = multiprocessing.Queue()
    procs = [multiprocessing.Process(target=count_words, args=(lines[i::workers], out))
             for i in range(workers)]
    for proc in procs:
        proc.start()
    merged = Counter()
    for i in range(workers):
        merged.update(out.get())
    for proc in procs:
        proc.join()
    return dict(merged)
