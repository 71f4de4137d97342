"""HTML for the report: escaping every student string, and the one page layout.

Every string that came from a result document (ids, names, messages, hints, captured output,
code, file names) is student-controlled: it goes through :func:`text` (element content) or
:func:`attr` (attribute values), which escape ``& < > " '`` after ``grader.escaping.terminal``
has made controls, bidi overrides and lone surrogates visible (``\\x1b``): a ``<script>`` in a
name is shown as text, and a U+202E cannot turn a line around. Links point only at pages this
package wrote, with names made by ``model.page_name`` and URL-quoted (:func:`href`).

Defence in depth: each page carries a Content-Security-Policy that allows no network at all
(``default-src 'none'``), inline styles, images only as ``data:`` and exactly one script, the
sorting script below, by its SHA-256. Had escaping a string failed somewhere, an injected
script would still not run, and the page could still fetch nothing.
"""

from __future__ import annotations

import base64
import hashlib
import html
from urllib.parse import quote

from grader.escaping import terminal, valid_unicode

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d9dde5; --bg-alt: #f5f7fa; --accent: #3b6ea8;
  --pass: #1f7a3a; --fail: #b3261e; --warn: #8a5a00; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
  margin: 0; }
header { background: #243b55; color: #fff; padding: .6rem 1.2rem; }
header a { color: #fff; margin-right: 1rem; text-decoration: none; }
header a[aria-current] { text-decoration: underline; font-weight: 600; }
header .title { font-weight: 600; margin-right: 2rem; }
main { max-width: 1200px; margin: 0 auto; padding: 1rem 1.2rem 3rem; }
h1 { font-size: 1.5rem; margin: .6rem 0; } h2 { font-size: 1.2rem; margin-top: 1.8rem; }
h3 { font-size: 1rem; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border-bottom: 1px solid var(--line); padding: .3rem .5rem; text-align: left;
  vertical-align: top; }
th { background: var(--bg-alt); position: sticky; top: 0; }
th.sortable { cursor: pointer; user-select: none; }
th.sortable::after { content: " \\2195"; color: var(--muted); }
th[aria-sort=ascending]::after { content: " \\2191"; } th[aria-sort=descending]::after { content: " \\2193"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr:nth-child(even) td { background: #fbfcfd; }
.cards { display: flex; flex-wrap: wrap; gap: .8rem; margin: .8rem 0; }
.card { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .9rem; min-width: 9rem; }
.card .value { font-size: 1.4rem; font-weight: 600; }
.card .label { color: var(--muted); font-size: .85rem; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(420px, 1fr)); gap: 1rem; }
figure { margin: 0; } figcaption { color: var(--muted); font-size: .85rem; }
svg { max-width: 100%; height: auto; }
pre { background: var(--bg-alt); border: 1px solid var(--line); padding: .5rem; overflow-x: auto;
  white-space: pre-wrap; word-break: break-word; font-size: 12px; margin: .3rem 0; }
.outcome { font-weight: 600; } .o-passed { color: var(--pass); } .o-skipped { color: var(--muted); }
.o-failed, .o-error, .o-crashed { color: var(--fail); }
.o-timeout, .o-memory_limit, .o-process_limit, .o-output_limit, .o-not_implemented { color: var(--warn); }
.note, .muted { color: var(--muted); }
.lead { border-left: 4px solid var(--warn); background: #fff8e6; padding: .6rem .9rem; }
.flag { color: var(--fail); font-weight: 600; }
.side { display: grid; grid-template-columns: 1fr 1fr; gap: .8rem; }
mark { background: #ffe08a; }
details { margin: .3rem 0; } summary { cursor: pointer; }
.test { border: 1px solid var(--line); border-radius: 6px; padding: .5rem .8rem; margin: .6rem 0;
  break-inside: avoid; }
.test h3 { margin: 0 0 .2rem; }
.telemetry { color: var(--muted); font-size: .85rem; }
@media print {
  header, .noprint { display: none; }
  body { font-size: 11pt; } main { max-width: none; padding: 0; }
  a { color: inherit; text-decoration: none; }
  th { position: static; } pre { white-space: pre-wrap; max-height: none; }
  details > *:not(summary) { display: block; }
  .charts { display: block; } figure { break-inside: avoid; }
  table, .test, .side { break-inside: auto; } tr { break-inside: avoid; }
}
"""

# The one script of every page: sortable tables. It only reorders existing rows and reads
# data-sort attributes and textContent; it never writes HTML.
SCRIPT = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead ? table.tHead.rows[0].cells : [];
  Array.prototype.forEach.call(heads, function (th, col) {
    th.classList.add("sortable");
    th.tabIndex = 0;
    function sort() {
      var desc = th.getAttribute("aria-sort") === "ascending";
      Array.prototype.forEach.call(heads, function (h) { h.removeAttribute("aria-sort"); });
      th.setAttribute("aria-sort", desc ? "descending" : "ascending");
      var body = table.tBodies[0];
      var rows = Array.prototype.slice.call(body.rows);
      function key(row) {
        var cell = row.cells[col];
        if (!cell) { return ""; }
        var v = cell.getAttribute("data-sort");
        if (v === null) { v = cell.textContent.trim(); }
        var n = parseFloat(v);
        return (v !== "" && !isNaN(n) && isFinite(v)) ? n : v.toLowerCase();
      }
      rows.sort(function (a, b) {
        var x = key(a), y = key(b);
        if (typeof x !== typeof y) { x = String(x); y = String(y); }
        var r = x < y ? -1 : (x > y ? 1 : 0);
        return desc ? -r : r;
      });
      rows.forEach(function (row) { body.appendChild(row); });
    }
    th.addEventListener("click", sort);
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sort(); } });
  });
});
"""

SCRIPT_HASH = base64.b64encode(hashlib.sha256(SCRIPT.encode()).digest()).decode()
CSP = (f"default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
       f"script-src 'sha256-{SCRIPT_HASH}'; base-uri 'none'; form-action 'none'")

NAV = (("index.html", "Overview"), ("items.html", "Item analysis"), ("hangs.html", "Hang hot spots"),
       ("similarity.html", "Similarity"), ("students.html", "Students"))


def text(value: object, *, multiline: bool = True) -> str:
    """Student-controlled text as HTML element content: shown, never parsed or obeyed."""
    shown = terminal(valid_unicode(value if isinstance(value, str) else str(value)), multiline=multiline)
    return html.escape(shown, quote=True)


def attr(value: object) -> str:
    """Student-controlled text as an attribute value (inside double quotes): one line, escaped."""
    return text(value, multiline=False)


def href(page: str, *, prefix: str = "") -> str:
    """A link to a page this package wrote: URL-quoted (so ``%`` and ``#`` in a name stay in
    the name), then attribute-escaped."""
    return attr(prefix + quote(page, safe=""))


def number(value: float | None, digits: int = 1) -> str:
    """A number for a table cell (None as an en dash)."""
    if value is None:
        return "–"
    return f"{value:.{digits}f}"


def cell(value: float | None, digits: int = 1) -> str:
    """A numeric ``<td>`` that sorts by its value."""
    sort = "" if value is None else f"{value:.6g}"
    return f'<td class="num" data-sort="{sort}">{number(value, digits)}</td>'


def page(title: str, body: str, *, current: str, heading: str, depth: int = 0) -> str:
    """A whole page: the layout, the navigation, inline style and script, the CSP.

    ``title`` and ``heading`` may hold student text (a student's page) and are escaped here;
    ``body`` is HTML the caller built with :func:`text` and :func:`attr`. ``depth`` is how many
    folders below the site's root the page lies (student pages: 1).
    """
    up = "../" * depth
    here = ' aria-current="page"'
    links = "".join(
        f'<a href="{href(target, prefix=up)}"{here if target == current else ""}>{label}</a>'
        for target, label in NAV
    )
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        '<meta name="referrer" content="no-referrer">'
        f"<title>{text(title, multiline=False)}</title><style>{CSS}</style></head><body>"
        f'<header><span class="title">mpgrade report</span><nav>{links}</nav></header>'
        f"<main><h1>{text(heading, multiline=False)}</h1>{body}</main>"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
