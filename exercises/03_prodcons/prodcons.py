"""Exercise 03 - queues: producers and consumers.

Replace every ``raise NotImplementedError`` with your code. Keep the function names and
signatures. Worker functions (the ``target=`` of a Process) must be defined at module level,
and nothing may run at import time: put any experiments under ``if __name__ == "__main__":``.
"""

import multiprocessing  # noqa: F401 - you will need these
from collections import Counter  # noqa: F401


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
    raise NotImplementedError


def word_count(lines: list[str], workers: int) -> dict[str, int]:
    """Count words in ``lines`` with ``workers`` processes; return ``{word: count}``.

    Worker ``i`` counts the words of ``lines[i::workers]``; words are what ``str.split()``
    returns (split on any run of whitespace, case-sensitive, punctuation kept). Each worker puts
    one dict of its counts on a ``multiprocessing.Queue``; the parent reads exactly one dict per
    worker, adds the counts up, joins every worker and returns the merged dict. Exactly
    ``workers`` processes are started, even when some get no lines. ``workers < 1`` raises
    ``ValueError``. ``[]`` returns ``{}``.
    """
    raise NotImplementedError


if __name__ == "__main__":
    # Try your functions here; this block does not run when the grader imports the module.
    print(produce_consume(list(range(10)), 2, 2))
