"""A reference to a function of the assignment's helpers folder, for tests to pass to student code."""

from __future__ import annotations

from typing import Any, Protocol


class _Session(Protocol):
    def call_helper(self, helper: Helper, args: tuple, kwargs: dict) -> Any: ...


class Helper:
    """A function from the assignment's helpers folder, named ``"module.function"``.

    Passed as an argument, it crosses as its name and the student's process imports it
    there (a ``Pool.map`` target, a callback, a ``Process`` subclass's work): helpers are
    shipped to the student's process, so the student's code can read them; nothing secret
    belongs in them. Called in a session (``s.helper(name)(...)``), it runs there.
    """

    def __init__(self, name: str, session: _Session | None = None) -> None:
        if not all(part.isidentifier() for part in name.split(".")) or "." not in name:
            raise ValueError(f"a helper is named module.function, not {name!r}")
        if name.rpartition(".")[2].startswith("_"):
            raise ValueError(f"helper {name!r}: names starting with _ are not reachable")
        self.name, self._session = name, session

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self._session is None:
            raise TypeError(f"helper {self.name} runs in a session: s.helper({self.name!r})(...)")
        return self._session.call_helper(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<helper {self.name}>"

    def reference(self) -> dict[str, str]:
        """How it crosses the boundary: by name only (the student's process imports it)."""
        return {"$mpgrade": "helper", "name": self.name}
