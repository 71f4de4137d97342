"""Spare children: the next call's child boots while the current call runs."""

from __future__ import annotations

import threading

from grader.harness.boundary.child import Child
from grader.protocol import wire


class SparePool:
    """Starts the next call's child while the current call runs, so it is booted when needed.

    Holds at most one waiting child per kind of call (interpreter, user, scratch folder,
    process cap, submission folder); ``close()`` kills it. One pool serves one grading run of one submission (the plugin keeps it for a pytest
    session), never two submissions: a spare is a process of the student user, and the calls
    it will run are that submission's. A spare left behind by a crashed grader exits by itself
    when its stdin closes.

    The spare is started before the current call's PID window opens (see ``_take_claims``),
    so its PID can never be claimed as one of that call's workers. When student code runs as
    another user, the current call's code must never find the spare open: either the kernel
    seals the spare at exec (an execute-only interpreter, see ``sealed_from_exec``), and its own
    "sealed" word is only checked when it is taken, a call later; or the current call is only
    sent its request once the spare has sealed itself, which costs the call the spare's boot
    (10-20 ms).
    """

    def __init__(self) -> None:
        self._spares: dict[tuple, Child] = {}
        self._lock = threading.Lock()
        self._unsealable = False  # a spare could not seal itself: stop making them
        self._trust_exec = True  # False once a spare said the kernel had not sealed it at exec

    def held(self) -> list[Child]:
        """The waiting children: the only processes of the student user allowed between calls."""
        with self._lock:
            return list(self._spares.values())

    def take(self, key: tuple) -> Child | None:
        with self._lock:
            child = self._spares.pop(key, None)
        if child is not None and not child.reset():
            child.discard()
            return None
        if child is None or not (child.sealed_from_exec and child.ready_fd is not None):
            return child
        sealed = child.wait_sealed()
        if sealed and child.seal_word == wire.SEAL_AT_EXEC:
            return child
        # Not sealed at exec after all (an ACL, a capability...): the previous call's code may
        # have reached it while it booted. From now on spares are waited for, or not made.
        child.discard()
        if sealed:
            self._trust_exec = False
        else:
            self._unsealable = True
        return None

    def prepare(self, key: tuple) -> None:
        with self._lock:
            if key in self._spares or self._unsealable:
                return
        try:
            child = Child(*key)
        except Exception:  # no process or thread to spare: only an optimisation is lost
            return
        user = key[1]
        if not self._trust_exec:
            child.sealed_from_exec = False
        if user is not None and not child.sealed_from_exec and not child.wait_sealed():
            child.discard()  # it never sealed itself: not safe to leave next to student code
            self._unsealable = True  # and the next one would not either: calls start cold
            return
        try:
            with self._lock:
                old = self._spares.pop(key, None)
                self._spares[key] = child
        except BaseException:
            child.discard()
            raise
        if old is not None:
            old.discard()

    def close(self) -> None:
        with self._lock:
            spares, self._spares = list(self._spares.values()), {}
        for child in spares:
            child.discard()
