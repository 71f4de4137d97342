"""bench/RESULTS.md is written by several benchmarks: each owns one marked section of it.

A section is the text between ``<!-- section:NAME -->`` and ``<!-- /section:NAME -->``. A
benchmark replaces only its own (``write``); bench/run.py, which writes the file's head, keeps
every section it finds (``kept``). So running one benchmark never erases another's numbers.
"""

from __future__ import annotations

import re
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"
_SECTION = re.compile(r"<!-- section:([\w-]+) -->\n.*?<!-- /section:\1 -->\n", re.S)


def _block(name: str, body: str) -> str:
    return f"<!-- section:{name} -->\n{body.rstrip()}\n<!-- /section:{name} -->\n"


def kept(path: Path = RESULTS) -> list[str]:
    """Every marked section of the file as it is, in order (none if there is no file)."""
    if not path.exists():
        return []
    return [m.group(0) for m in _SECTION.finditer(path.read_text())]


def write(name: str, body: str, path: Path = RESULTS) -> None:
    """Put ``body`` in section NAME: where it was, else right after the file's title line."""
    text = path.read_text() if path.exists() else "# Benchmark results\n"
    block = _block(name, body)
    pattern = re.compile(rf"<!-- section:{re.escape(name)} -->\n.*?<!-- /section:{re.escape(name)} -->\n", re.S)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text, count=1)
    else:
        head, sep, rest = text.partition("\n")
        text = head + sep + "\n" + block + "\n" + rest.lstrip("\n")
    path.write_text(text)
