"""Helpers shared by the service tests: a tiny assignment, tokens, a loopback callback receiver."""

from __future__ import annotations

import io
import json
import threading
import time
import zipfile
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

TINY_MANIFEST = """\
[assignment]
name = "tiny"
version = "1"
title = "One function, for the service tests"
start_method = "fork"

[limits]
call_timeout = 30.0
test_timeout = 40.0
submission_timeout = 90.0

[[exercise]]
id = "01_add"
title = "Adding"
files = ["add.py"]
points = 10
"""

TINY_PUBLIC = '''\
import pytest


@pytest.mark.points(4)
@pytest.mark.hint("return a + b")
def test_add_small(student):
    """add(1, 2) is 3"""
    assert student.module("add").add(1, 2) == 3
'''

TINY_HIDDEN = '''\
import pytest

pytestmark = pytest.mark.visibility("hidden")


@pytest.mark.points(6)
@pytest.mark.hint("return a + b")
def test_add_large(student):
    """add(10**12, 1) is 10**12 + 1"""
    assert student.module("add").add(10**12, 1) == 10**12 + 1
'''

RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"


def slow(seconds: float) -> str:
    """A right answer that takes ``seconds`` per call (long enough to kill a worker meanwhile)."""
    return f"import time\n\n\ndef add(a, b):\n    time.sleep({seconds})\n    return a + b\n"


def make_tiny_course(root: Path) -> Path:
    (root / "exercises" / "01_add").mkdir(parents=True)
    (root / "solutions" / "01_add").mkdir(parents=True)
    (root / "assignment.toml").write_text(TINY_MANIFEST)
    (root / "exercises" / "01_add" / "test_public.py").write_text(TINY_PUBLIC)
    (root / "solutions" / "01_add" / "test_hidden.py").write_text(TINY_HIDDEN)
    (root / "solutions" / "01_add" / "add.py").write_text(RIGHT)
    return root


def zip_of(files: dict[str, str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return buf.getvalue()


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "it") -> Any:
    """Poll until ``check()`` is truthy; fail the test after ``timeout`` seconds (never hang)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


class Received(NamedTuple):
    """One POST the stand-in LMS got."""

    path: str
    content_type: str
    body: Any


class Receiver:
    """An LMS stand-in on 127.0.0.1: records every POST body (and its headers) it gets.

    ``statuses`` are the HTTP statuses it answers with, in turn (then 200)."""

    def __init__(self, statuses: tuple[int, ...] = ()) -> None:
        self.received: list[Received] = []
        self.headers: list[dict[str, str]] = []
        self.statuses = list(statuses)
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                outer.headers.append(dict(self.headers.items()))
                outer.received.append(Received(self.path, self.headers.get("Content-Type", ""), body))
                self.send_response(outer.statuses.pop(0) if outer.statuses else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()
