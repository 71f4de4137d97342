"""Exercise 02 - a thread-safe bounded buffer.

Replace every ``raise NotImplementedError`` with your code. Keep the names and signatures.
Nothing may run at import time: put experiments under ``if __name__ == "__main__":``.
"""

import collections  # noqa: F401 - you will need these
import threading  # noqa: F401
from typing import Any


class BoundedBuffer:
    """A FIFO of at most ``capacity`` items, shared by threads.

    One ``threading.Condition`` guards the items: ``put`` waits while the buffer is full,
    ``get`` waits while it is empty, and each wakes the waiters of the other side.
    """

    def __init__(self, capacity: int) -> None:
        """Keep ``capacity`` as an attribute; ``capacity < 1`` raises ``ValueError``."""
        raise NotImplementedError

    def put(self, item: Any, timeout: float | None = None) -> bool:
        """Add ``item`` at the end, waiting while the buffer is full (at most ``timeout``
        seconds: then give up and return False). True once the item is in."""
        raise NotImplementedError

    def get(self, timeout: float | None = None) -> Any:
        """Remove and return the oldest item, waiting while the buffer is empty (at most
        ``timeout`` seconds: then raise ``TimeoutError``)."""
        raise NotImplementedError

    def __len__(self) -> int:
        """How many items are in the buffer now."""
        raise NotImplementedError


def pipeline(capacity: int, producers: int, consumers: int, items: int) -> list:
    """Move ``producers * items`` numbers through one ``BoundedBuffer(capacity)`` with threads.

    Producer thread ``p`` puts ``p * items ... p * items + items - 1``; the ``consumers``
    consumer threads get ``producers * items`` items between them (as evenly as possible:
    consumer ``c`` gets ``total // consumers`` items, plus one for the first
    ``total % consumers``) and append each to one shared list under a lock. Every thread is
    started, then every thread joined; the sorted list is returned.
    """
    raise NotImplementedError
