"""What hidden and public tests import (besides the ``student`` fixture)."""

from __future__ import annotations


class Mistake(AssertionError):
    """A failed expectation with a hint chosen at run time, for when one marker hint is not enough.

    ``raise Mistake(f"expected {n} results, got {len(got)}", hint="did you ...?")``
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint
