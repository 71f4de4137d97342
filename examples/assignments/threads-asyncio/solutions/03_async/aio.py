"""Exercise 03 - async def with a concurrency limit (reference solution)."""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


async def gather_limited(func: Callable[[Any], Awaitable[Any]], items: list, limit: int) -> list:
    """``[await func(x) for x in items]``, but up to ``limit`` calls in flight at once.

    One ``asyncio.Semaphore(limit)`` shared by every call; each item gets a task, and
    ``asyncio.gather`` collects the results in the order of ``items`` (not the order they
    finished in). ``limit < 1`` raises ``ValueError``.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    semaphore = asyncio.Semaphore(limit)

    async def one(item: Any) -> Any:
        async with semaphore:
            return await func(item)

    return await asyncio.gather(*(one(item) for item in items))


async def first_result(func: Callable[[Any], Awaitable[Any]], items: list, timeout: float) -> Any:
    """Run ``func(x)`` for every item at once; return the first result to arrive, and cancel
    the rest. Nothing arriving within ``timeout`` seconds raises ``TimeoutError``."""
    tasks = [asyncio.ensure_future(func(item)) for item in items]
    try:
        done, _pending = await asyncio.wait(tasks, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if not done:
            raise TimeoutError(f"no result within {timeout} s")
        return done.pop().result()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
