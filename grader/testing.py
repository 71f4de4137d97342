"""What hidden and public tests import (besides the ``student`` fixture)."""

from __future__ import annotations


class Mistake(AssertionError):
    """A failed expectation with a hint chosen at run time, for when one marker hint is not enough.

    ``raise Mistake(f"expected {n} results, got {len(got)}", hint="did you ...?")``
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint


def check_clean(call, what: str, *, hint: str) -> None:
    """Fail with ``hint`` if workers of a call are still running or were never joined.

    ``call`` is ``student.last``; ``what`` names the call in the message ("ping_pong(3)").
    """
    if call.leftover:
        raise Mistake(f"expected no process still running after {what} returned, got "
                      f"{len(call.leftover)} still running", hint=hint)
    if call.zombies:
        raise Mistake(f"expected every child of {what} to be joined, got {len(call.zombies)} "
                      "never joined (zombies)", hint=hint)
