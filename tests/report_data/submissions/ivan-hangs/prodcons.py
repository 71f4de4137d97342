"""Ivan: joins the consumers before draining the results, and forgets the sentinels."""

import multiprocessing


def produce(q, part):
    for x in part:
        q.put(x)


def consume(q, results):
    while True:
        x = q.get()
        if x is None:
            break
        results.put(x * x)


def produce_consume(items: list[int], producers: int, consumers: int) -> list[int]:
    if producers < 1 or consumers < 1:
        raise ValueError("need producers and consumers")
    q = multiprocessing.Queue()
    results = multiprocessing.Queue()
    ps = [multiprocessing.Process(target=produce, args=(q, items[i::producers])) for i in range(producers)]
    cs = [multiprocessing.Process(target=consume, args=(q, results)) for _ in range(consumers)]
    for p in ps + cs:
        p.start()
    for p in ps:
        p.join()
    for c in cs:
        c.join()  # no sentinel was sent: every consumer waits in q.get() forever
    return sorted(results.get() for _ in items)


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    raise NotImplementedError
