"""Attacks on the HTML report: every student-controlled string of a result document tries to
run script, leave its element, restyle the page, link to ``javascript:``, fetch from the
network or drive a terminal. Each must show as text.

Here the HTML is read back with a parser: one ``<script>`` per page (the report's own, the one
the Content-Security-Policy allows by hash), no event-handler attribute, no element a string
could have brought in (img, iframe, svg outside the charts), no ``javascript:`` link and no raw
control character. tests/test_report_browser.py renders the same class in Chromium and checks
that nothing ran and nothing was fetched.
"""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import IN_CI
from tests.report_helpers import ATTACKS, attack_code, attack_documents, write_documents

if not IN_CI:  # under CI=true a missing extra is a failure, never a skip
    pytest.importorskip("copydetect", reason="the report extra is not installed (pip install -e '.[report]')")

from grader.report import html as html_mod  # noqa: E402
from grader.report import model, site  # noqa: E402

OWN_CODE = (Path(__file__).resolve().parents[1] / "report_data" / "submissions" / "frank-own" / "locks.py").read_text()


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text of every script."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, list[tuple[str, str | None]]]] = []
        self.scripts: list[str] = []
        self._in_script = False
        self.svg_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, attrs))
        self._in_script = tag == "script"
        if self._in_script:
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


def build(tmp_path: Path) -> Path:
    klass = model.load_class(write_documents(tmp_path / "results", attack_documents()))
    out = tmp_path / "site"
    site.write(klass, out, code=attack_code(OWN_CODE), stub_code={})
    return out


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    out = build(tmp_path_factory.mktemp("report-attacks"))
    return {str(p.relative_to(out)): p.read_text() for p in sorted(out.rglob("*.html"))}


def test_every_page_was_written_inside_the_site(pages: dict[str, str]) -> None:
    assert {"index.html", "items.html", "hangs.html", "similarity.html", "students.html"} <= set(pages)
    students = [p for p in pages if p.startswith("students/")]
    assert len(students) == 3 and all(p.count("/") == 1 for p in students)


def test_no_string_brings_in_a_script_a_handler_or_an_element(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        parser = Tags()
        parser.feed(text)
        assert parser.scripts == [html_mod.SCRIPT], name  # exactly the report's own script
        for tag, attrs in parser.tags:
            assert tag not in {"img", "iframe", "object", "embed", "base", "form", "link", "meta"} or (
                tag == "meta" and dict(attrs).get("http-equiv") in (None, "Content-Security-Policy")), (name, tag)
            for key, value in attrs:
                assert not key.startswith("on"), (name, tag, key)
                if key in ("href", "src", "action", "formaction", "xlink:href"):
                    assert not (value or "").strip().lower().startswith(("javascript:", "data:", "http")), (
                        name, tag, value)
        assert "</style><style>" not in text  # a message never closes the report's style


def test_the_attacks_are_shown_as_text(pages: dict[str, str]) -> None:
    student = next(text for name, text in pages.items()
                   if name.startswith("students/") and "Mallory" in text)
    assert "&lt;script&gt;window.__pwned" in student  # the name, as text
    assert "&quot;&gt;&lt;img src=x onerror=" in student  # the id
    assert "&lt;/pre&gt;&lt;/details&gt;" in student  # the captured output
    assert "&lt;a href=&quot;javascript:" in student  # the message
    assert "&lt;iframe src=" in student  # the hint
    assert "&lt;script&gt;.py" in student  # a file name
    similarity = pages["similarity.html"]
    assert "&lt;/pre&gt;&lt;/div&gt;&lt;script&gt;" in similarity  # code in the side-by-side view
    assert "https://example.invalid" in similarity and "<img src=https" not in similarity


def test_terminal_escapes_and_bidi_overrides_are_visible_not_raw(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text, name
    student = next(t for n, t in pages.items() if n.startswith("students/") and "Mallory" in t)
    assert "\\x1b[2J" in student and "\\x1b]52;c;" in student and "\\u202etxt.exe" in student


def test_links_to_student_pages_stay_inside_the_site(pages: dict[str, str]) -> None:
    """An id like ``javascript:alert(1)`` or ``"><img ...`` names a page by a quoted, relative
    link to a file that exists; it never becomes a URL scheme or another attribute."""
    root_links = []
    for tag, attrs in (lambda p: (p.feed(pages["students.html"]), p.tags)[1])(Tags()):
        href = dict(attrs).get("href")
        if tag == "a" and href and href.startswith("students/"):
            root_links.append(href)
    from urllib.parse import unquote

    files = {n.split("/", 1)[1] for n in pages if n.startswith("students/")}
    assert sorted(unquote(h.split("/", 1)[1]) for h in root_links) == sorted(files)
    assert any(ATTACKS["id"][:2] not in h for h in root_links)


def test_every_page_forbids_the_network_and_foreign_scripts(pages: dict[str, str]) -> None:
    for name, text in pages.items():
        assert f'content="{html_mod.CSP}"' in text, name
    assert "default-src 'none'" in html_mod.CSP and "'unsafe-inline'" not in html_mod.CSP.split("script-src")[1]
