"""The report in a real browser: Debian's Chromium driven by Playwright, pages from file://.

The report of the committed real batch (tests/report_helpers.py: the bundled samples plus
correct, copied, honest, racy and deadlocking submissions, their code read through the
grading intake) must load with no network request and no console error (a violation of the
pages' Content-Security-Policy is one), show the batch's numbers in the histogram and the
tables, rank the copied pair first and not flag the honest pair, and sort its tables. A class
whose every string is an injection attempt must leave ``window.__pwned`` unset.

The screenshots docs/report-overview.png and docs/report-student.png (linked from the README)
are written by this test run. Playwright cannot download a browser here, so it drives
/usr/bin/chromium (``apt-get install chromium``; .ci/run installs it). Without it or without
Playwright these tests are skipped, except under CI=true, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import IN_CI, REPO
from tests.report_helpers import (
    ATTACKS,
    RESULTS,
    SUBMISSIONS,
    attack_code,
    attack_documents,
    write_documents,
)

CHROMIUM = os.environ.get("MPGRADE_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = REPO / "docs"


def _unavailable(why: str) -> None:
    if IN_CI:
        pytest.fail(f"CI=true but the browser tests cannot run: {why}")
    pytest.skip(why)


@pytest.fixture(scope="module")
def browser():
    """A headless Chromium from Debian's package; skipped without it, except under CI=true."""
    try:
        import copydetect  # noqa: F401
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        _unavailable(f"{exc.name} is not installed (pip install -e '.[dev,report]')")
    executable = CHROMIUM if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK) else None
    if executable is None and "MPGRADE_CHROMIUM" not in os.environ:
        executable = shutil.which("chromium")
    if executable is None:
        _unavailable(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=executable, headless=True)
        try:
            yield b
        finally:
            b.close()


class Visit:
    """A page opened from disk, with every request and console message it caused."""

    def __init__(self, browser: Any, site: Path, rel: str, *, width: int = 1280) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.context = browser.new_context(viewport={"width": width, "height": 900}, java_script_enabled=True)
        self.page = self.context.new_page()
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("console", lambda m: m.type in ("error", "warning") and self.errors.append(f"{m.type}: {m.text}"))
        self.page.on("pageerror", lambda e: self.errors.append(f"pageerror: {e}"))
        self.site = site
        self.page.goto((site / rel).as_uri(), wait_until="load")

    def check_offline_and_clean(self) -> None:
        root = self.site.resolve().as_uri()
        foreign = [u for u in self.requests if not u.startswith(root)]
        assert foreign == [], f"requests outside the report: {foreign}"
        assert self.errors == [], self.errors

    def close(self) -> None:
        self.context.close()


@pytest.fixture(scope="module")
def real_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The report of the committed batch, written by the command as an instructor runs it."""
    from click.testing import CliRunner

    from grader.cli.report import report_command

    out = tmp_path_factory.mktemp("report") / "site"
    result = CliRunner().invoke(report_command, [str(RESULTS), "--out", str(out), "--submissions",
                                                 str(SUBMISSIONS), "--assignment", str(REPO)])
    assert result.exit_code == 0, result.output
    return out


def _docs() -> list[dict[str, Any]]:
    return [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json"))]


def test_every_page_loads_offline_without_console_errors(browser: Any, real_site: Path) -> None:
    pages = sorted(p.relative_to(real_site).as_posix() for p in real_site.rglob("*.html"))
    assert len(pages) == 5 + len(_docs())
    for rel in pages:
        visit = Visit(browser, real_site, rel)
        try:
            visit.check_offline_and_clean()
            assert visit.page.locator("h1").count() == 1
        finally:
            visit.close()


def test_the_overview_shows_the_batch_numbers(browser: Any, real_site: Path) -> None:
    docs = _docs()
    scores = [d["score"] for d in docs]
    visit = Visit(browser, real_site, "index.html")
    try:
        page = visit.page
        assert page.locator("#mean-score").inner_text() == f"{statistics.fmean(scores):.1f}"
        assert page.locator("#median-score").inner_text() == f"{statistics.median(scores):.1f}"
        rows = page.locator("#histogram tbody tr").all_inner_texts()
        shown = {r.split("\t")[0]: int(r.split("\t")[1]) for r in rows}
        expected = {f"{10 * i}–{10 * (i + 1)}": 0 for i in range(10)}
        for s in scores:
            i = min(9, int(s // 10))
            expected[f"{10 * i}–{10 * (i + 1)}"] += 1
        assert shown == expected
        # The chart draws the same counts: each non-empty bar is labelled with its count.
        labels = [t.strip() for t in page.locator('svg[aria-label="Histogram of scores"] text').all_text_contents()]
        for count in {c for c in expected.values() if c}:
            assert str(count) in labels
        status = dict(r.split("\t") for r in page.locator("#status tbody tr").all_inner_texts())
        assert status == {"graded": str(len(docs)), "error": "0", "timeout": "0"}
        page.screenshot(path=str(SCREENSHOTS / "report-overview.png"), full_page=False)
        visit.check_offline_and_clean()
    finally:
        visit.close()


def test_items_hangs_and_students_show_the_batch(browser: Any, real_site: Path) -> None:
    docs = _docs()
    test_ids = {t["id"] for d in docs for t in d["tests"]}
    visit = Visit(browser, real_site, "items.html")
    try:
        assert visit.page.locator("table.items tbody tr").count() == len(test_ids)
        test_id = "04_locks/test_hidden.py::test_counter_is_exact"  # heidi's race loses increments
        having = [t for d in docs for t in d["tests"] if t["id"] == test_id]
        rate = round(100 * sum(t["outcome"] == "passed" for t in having) / len(having))
        row = visit.page.locator(f'tr[data-test="{test_id}"]')
        assert f"\t{rate}\t" in row.inner_text()
        groups = visit.page.locator(f'h3[id="t-{test_id}"] + table.messages').inner_text()
        assert "locked_counter(N, N): expected N, got N (N increments lost)" in groups
    finally:
        visit.close()
    visit = Visit(browser, real_site, "hangs.html")
    try:
        text = visit.page.locator("#hotspots").inner_text()
        assert "produce_consume" in text and "carol-deadlock" in text and "ivan-hangs" in text
    finally:
        visit.close()
    visit = Visit(browser, real_site, "students.html")
    try:
        page = visit.page
        assert page.locator("#students tbody tr").count() == len(docs)
        page.locator("#students th", has_text="score").first.click()  # sortable: ascending
        first = page.locator("#students tbody tr").first.get_attribute("data-id")
        assert first == min(docs, key=lambda d: (d["score"], d["submission"]["id"]))["submission"]["id"]
        page.locator("#students th", has_text="score").first.click()  # and descending
        assert page.locator("#students tbody tr").first.get_attribute("data-id") == "alice-full"
        visit.check_offline_and_clean()
    finally:
        visit.close()


def test_the_copied_pair_is_first_and_the_honest_pair_not_flagged(browser: Any, real_site: Path) -> None:
    visit = Visit(browser, real_site, "similarity.html")
    try:
        page = visit.page
        assert "a lead for a human, not a verdict" in page.locator("#lead").inner_text()
        first = page.locator("#pairs tbody tr").first
        assert {first.get_attribute("data-a"), first.get_attribute("data-b")} == {"frank-own", "grace-copy"}
        assert first.get_attribute("data-flagged") == "yes"
        honest = page.locator('tr.pair[data-a="frank-own"][data-b="judy-own"]')
        assert honest.count() >= 1
        assert all(honest.nth(i).get_attribute("data-flagged") == "no" for i in range(honest.count()))
        flagged = page.locator('tr.pair[data-flagged="yes"]')
        assert {frozenset((flagged.nth(i).get_attribute("data-a"), flagged.nth(i).get_attribute("data-b")))
                for i in range(flagged.count())} == {frozenset(("frank-own", "grace-copy"))}
        page.locator("#pairs tbody tr").first.locator("a", has_text="side by side").click()
        view = page.locator("section.pair-view").first
        assert view.locator("mark").count() > 0
        visit.check_offline_and_clean()
    finally:
        visit.close()


def test_a_student_page_is_complete_and_printable(browser: Any, real_site: Path) -> None:
    doc = json.loads((RESULTS / "carol-deadlock.json").read_text())
    visit = Visit(browser, real_site, "students.html")
    try:
        page = visit.page
        page.locator("#students a", has_text="carol-deadlock").click()
        page.wait_for_load_state("load")
        assert page.locator("#score").inner_text() == f"{doc['score']:g} / {doc['max_score']:g}"
        assert page.locator("#tests tbody tr").count() == len(doc["tests"])
        timeout = page.locator('div.test[data-outcome="timeout"]').first
        assert "did you join before draining" in timeout.inner_text()
        assert "peak memory" in timeout.inner_text()
        page.screenshot(path=str(SCREENSHOTS / "report-student.png"), full_page=False)
        page.emulate_media(media="print")
        assert page.locator("header").is_hidden()  # the print stylesheet drops the navigation
        pdf_ok = page.pdf(format="A4")  # prints without error
        assert pdf_ok[:4] == b"%PDF"
        visit.check_offline_and_clean()
    finally:
        visit.close()


def test_injection_attempts_stay_inert(browser: Any, tmp_path: Path) -> None:
    from grader.report import model, site

    own = (SUBMISSIONS / "frank-own" / "locks.py").read_text()
    klass = model.load_class(write_documents(tmp_path / "results", attack_documents()))
    out = tmp_path / "site"
    site.write(klass, out, code=attack_code(own), stub_code={})
    for rel in sorted(p.relative_to(out).as_posix() for p in out.rglob("*.html")):
        visit = Visit(browser, out, rel)
        try:
            page = visit.page
            for link in page.locator("a").all()[:20]:  # hovering and focusing runs no handler either
                link.hover()
            assert page.evaluate("window.__pwned === undefined"), rel
            assert page.locator("img, iframe, object, embed").count() == 0, rel
            assert page.evaluate("getComputedStyle(document.body).display") != "none", rel
            visit.check_offline_and_clean()
            if rel.startswith("students/") and "Mallory" in page.content():
                assert page.locator("h1").inner_text() == ATTACKS["name"]  # shown as written
                assert "\\x1b[2J" in page.locator("pre.output").first.inner_text()
        finally:
            visit.close()
