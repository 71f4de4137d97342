"""Judy's queues: one function per role, sentinels counted with a dict."""

import multiprocessing as mp
from collections import Counter

STOP = None


def producer(q, share):
    list(map(q.put, share))


def consumer(q, out):
    for x in iter(q.get, STOP):
        out.put(x ** 2)
    out.put(STOP)


def produce_consume(items: list[int], producers: int, consumers: int) -> list[int]:
    if min(producers, consumers) < 1:
        raise ValueError(f"produce_consume needs >= 1 of each, got {producers}/{consumers}")
    q, out = mp.Queue(), mp.Queue()
    prods = {k: mp.Process(target=producer, args=(q, items[k::producers])) for k in range(producers)}
    cons = {k: mp.Process(target=consumer, args=(q, out)) for k in range(consumers)}
    for p in [*prods.values(), *cons.values()]:
        p.start()
    for p in prods.values():
        p.join()
    for _ in cons:
        q.put(STOP)
    done, got = 0, []
    while done != len(cons):
        x = out.get()
        done += x is STOP
        if x is not STOP:
            got.append(x)
    for p in cons.values():
        p.join()
    got.sort()
    return got


def _words(part, out):
    out.put(Counter(w for line in part for w in line.split()))


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    if workers < 1:
        raise ValueError("workers < 1")
    out = mp.Queue()
    ps = [mp.Process(target=_words, args=(lines[k::workers], out)) for k in range(workers)]
    for p in ps:
        p.start()
    total = sum((out.get() for _ in ps), Counter())
    for p in ps:
        p.join()
    return dict(total)
