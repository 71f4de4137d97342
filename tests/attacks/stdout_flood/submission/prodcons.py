import multiprocessing
import sys

LINE = "flood " * 10000 + "\n"


def _flood():
    for _ in range(16_000):  # ~1 GB
        sys.stdout.write(LINE)


def produce_consume(items, producers, consumers):
    p = multiprocessing.Process(target=_flood)
    p.start()
    _flood()
    p.join()
    return sorted(x * x for x in items)


def word_count(lines, workers):
    _flood()
    return {}
