"""The class report (``grader.report``) of one course's results for an assignment, served by
``mpgrade serve`` behind the course token.

The report is built from the stored result documents (the latest of each student) into a
folder this object owns, and rebuilt only when the course's results changed. Pages are served
by name from what the build wrote, never by a path taken from the request. The service keeps
no submitted code, so the similarity page says that nothing was compared; ``mpgrade report
--submissions`` on an instructor's machine compares code.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import threading
from pathlib import Path
from typing import Any

from grader.service.store import Store

PAGE = re.compile(r"(?:students/)?[A-Za-z0-9][A-Za-z0-9._-]{0,200}\.html")
MAX_DOCUMENTS = 5000  # results read for one report (a course's assignment rarely has more)


class Reports:
    """Built reports per (course, assignment); ``close()`` removes every file of them."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._root = Path(tempfile.mkdtemp(prefix="mpgrade-reports-"))
        self._built: dict[tuple[str, str], tuple[tuple[Any, ...], Path, set[str]]] = {}
        self._lock = threading.Lock()  # one build at a time: a build is CPU-bound anyway

    def page(self, course: str, assignment: str, name: str) -> bytes | None:
        """The page ``name`` (``index.html``, ``students/<page>.html``...) of the report, or None
        when there are no results yet or no such page."""
        if not PAGE.fullmatch(name) or ".." in name:
            return None
        with self._lock:
            site = self._current(course, assignment)
            if site is None:
                return None
            folder, pages = site
            if name not in pages:
                return None
            return (folder / name).read_bytes()

    def _current(self, course: str, assignment: str) -> tuple[Path, set[str]] | None:
        rows = self.store.results(course, assignment, MAX_DOCUMENTS, 0)
        if not rows:
            return None
        key = (len(rows), rows[-1]["job_id"], rows[-1]["created_at"])
        built = self._built.get((course, assignment))
        if built is not None and built[0] == key:
            return built[1], built[2]
        latest: dict[str, str] = {}
        for row in rows:  # oldest first: a student's last result wins
            latest[str(row.get("student") or row["job_id"])] = row["job_id"]
        folder = self._build(latest.values())
        if built is not None:
            shutil.rmtree(built[1].parent, ignore_errors=True)
        pages = {str(p.relative_to(folder)) for p in folder.rglob("*.html")}
        self._built[(course, assignment)] = (key, folder, pages)
        return folder, pages

    def _build(self, job_ids: Any) -> Path:
        from grader.report.build import build

        work = Path(tempfile.mkdtemp(prefix="build-", dir=self._root))
        (work / "results").mkdir()
        for n, job_id in enumerate(job_ids):
            doc = self.store.result(job_id)
            if doc is not None:
                (work / "results" / f"{n:05d}.json").write_text(json.dumps(doc))
        build(work / "results", work / "site", parallel=False)
        return work / "site"

    def close(self) -> None:
        with self._lock:
            self._built.clear()
            shutil.rmtree(self._root, ignore_errors=True)
