"""Exercise 02 - a thread-safe bounded buffer (reference solution)."""

import collections
import threading
from typing import Any


class BoundedBuffer:
    """A FIFO of at most ``capacity`` items, shared by threads.

    One ``threading.Condition`` guards the items: ``put`` waits while the buffer is full,
    ``get`` waits while it is empty, and each wakes the waiters of the other side.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity must be at least 1, got {capacity}")
        self.capacity = capacity
        self._items: collections.deque = collections.deque()
        self._cond = threading.Condition()

    def put(self, item: Any, timeout: float | None = None) -> bool:
        """Add ``item`` at the end, waiting while the buffer is full (at most ``timeout``
        seconds: then give up and return False). True once the item is in."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) < self.capacity, timeout):
                return False
            self._items.append(item)
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None) -> Any:
        """Remove and return the oldest item, waiting while the buffer is empty (at most
        ``timeout`` seconds: then raise ``TimeoutError``)."""
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._items) > 0, timeout):
                raise TimeoutError("the buffer stayed empty")
            item = self._items.popleft()
            self._cond.notify_all()
            return item

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)


def _produce(buf: BoundedBuffer, start: int, count: int) -> None:
    for i in range(start, start + count):
        buf.put(i)


def _consume(buf: BoundedBuffer, count: int, out: list, lock: threading.Lock) -> None:
    for _ in range(count):
        item = buf.get()
        with lock:
            out.append(item)


def pipeline(capacity: int, producers: int, consumers: int, items: int) -> list:
    """Move ``producers * items`` numbers through one ``BoundedBuffer(capacity)`` with threads.

    Producer thread ``p`` puts ``p * items ... p * items + items - 1``; the ``consumers``
    consumer threads get ``producers * items`` items between them (as evenly as possible:
    consumer ``c`` gets ``total // consumers`` items, plus one for the first
    ``total % consumers``) and append each to one shared list under a lock. Every thread is
    started, then every thread joined; the sorted list is returned.
    """
    buf = BoundedBuffer(capacity)
    total = producers * items
    out: list = []
    lock = threading.Lock()
    threads = [threading.Thread(target=_produce, args=(buf, p * items, items)) for p in range(producers)]
    share, extra = divmod(total, consumers)
    threads += [threading.Thread(target=_consume, args=(buf, share + (c < extra), out, lock))
                for c in range(consumers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sorted(out)
