"""Exercise 03 - async def with a concurrency limit.

Replace every ``raise NotImplementedError`` with your code. Keep the names and signatures.
"""

import asyncio  # noqa: F401 - you will need it
from collections.abc import Awaitable, Callable
from typing import Any


async def gather_limited(func: Callable[[Any], Awaitable[Any]], items: list, limit: int) -> list:
    """``[await func(x) for x in items]``, but up to ``limit`` calls in flight at once.

    One ``asyncio.Semaphore(limit)`` shared by every call; each item gets a task, and
    ``asyncio.gather`` collects the results in the order of ``items`` (not the order they
    finished in). ``limit < 1`` raises ``ValueError``.
    """
    raise NotImplementedError


async def first_result(func: Callable[[Any], Awaitable[Any]], items: list, timeout: float) -> Any:
    """Run ``func(x)`` for every item at once; return the first result to arrive, and cancel
    the rest. Nothing arriving within ``timeout`` seconds raises ``TimeoutError``."""
    raise NotImplementedError
