"""Exercise 03 - queues (Grace)."""

import multiprocessing
from collections import Counter


def producer_fn(task_q, chunk):
    for item in chunk:
        task_q.put(item)


def consumer_fn(task_q, result_q):
    while True:
        item = task_q.get()
        if item is None:
            result_q.put(None)
            break
        result_q.put(item * item)


def produce_consume(items: list[int], producers: int, consumers: int) -> list[int]:
    # check the arguments first
    if producers < 1 or consumers < 1:
        raise ValueError("need at least one producer and one consumer")
    task_q = multiprocessing.Queue()
    result_q = multiprocessing.Queue()
    prod_processs = [multiprocessing.Process(target=producer_fn, args=(task_q, items[i::producers]))
              for i in range(producers)]
    cons_processs = [multiprocessing.Process(target=consumer_fn, args=(task_q, result_q))
                for i in range(consumers)]
    for process in prod_processs + cons_processs:
        process.start()
    for process in prod_processs:
        process.join()
    for i in range(consumers):
        task_q.put(None)
    nones_seen = 0
    output = []
    while nones_seen < consumers:
        value = result_q.get()
        if value is None:
            nones_seen = nones_seen + 1
        else:
            output.append(value)
    for process in cons_processs:
        process.join()
    return sorted(output)


def word_worker(lines, out):
    counts = Counter()
    for line in lines:
        counts.update(line.split())
    out.put(dict(counts))


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    if workers < 1:
        raise ValueError("need at least one worker")
    out = multiprocessing.Queue()
    processs = [multiprocessing.Process(target=word_worker, args=(lines[i::workers], out))
             for i in range(workers)]
    for process in processs:
        process.start()
    combined = Counter()
    for i in range(workers):
        combined.update(out.get())
    for process in processs:
        process.join()
    return dict(combined)
