"""The launch page: the student's latest result and feedback, as text, under a strict CSP.

Everything on the page that is not the page's own markup came from someone else: the name
and roles from the platform's id_token, test names, messages and hints from the result (and
so, in part, from the student's code). All of it goes through ``grader.report.html.text``
(escaped, controls made visible), never into an attribute or a URL. The page has no script;
its CSP (sent as a header: browsers ignore ``frame-ancestors`` in a meta tag) forbids
scripts, forms, plugins and base URLs, and lets only the platform's own origins frame it (an
LMS shows a launch in an iframe), see :func:`csp`.

Only what students may see is shown: the score, each exercise's score and the tests whose
visibility is ``visible``; hidden and after-due-date tests appear only inside the exercise
totals, as in every other export. A result that failed on the grader's side
(``jobs.fault_of``: infrastructure) says so without its message (grader diagnostics).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

from grader.report.html import text
from grader.service.jobs import fault_of
from grader.service.lti.registry import Platform

MAX_MESSAGE = 2000
_STYLE = ("body{font:15px/1.45 system-ui,sans-serif;max-width:52rem;margin:1.5rem auto;padding:0 1rem;color:#222}"
          "table{border-collapse:collapse;width:100%;margin:.8rem 0}td,th{border-bottom:1px solid #ddd;"
          "padding:.3rem .5rem;text-align:left;vertical-align:top}pre{white-space:pre-wrap;background:#f6f6f6;"
          "padding:.4rem;margin:.2rem 0}.passed{color:#17612b}.failed,.error{color:#a01414}.note{color:#555}")


def csp(platform: Platform, framed_by: Sequence[str] = ()) -> str:
    """No script, no form, no plugin; framed only by the platform's origins: its issuer's, its
    login URL's, the registration's ``frame_origins`` and ``framed_by`` (from the signed
    launch: Canvas frames the tool from the school's own host, not its issuer's)."""
    wanted = (platform.issuer, platform.auth_login_url, *platform.frame_origins, *framed_by)
    origins = sorted({_origin(u) for u in wanted if _origin(u)})
    return ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'; "
            f"frame-ancestors {' '.join(origins) or chr(39) + 'none' + chr(39)}")


def _origin(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return ""
    if any(c in parts.netloc for c in " ;,'\"*"):
        return ""
    return f"{parts.scheme}://{parts.netloc}"


def _num(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else text(value)


def render(name: str, assignment: str, doc: dict[str, Any] | None, policy: str) -> str:
    """The whole page for one launch."""
    who = text(name or "student", multiline=False)
    parts = [f"<h1>{text(assignment, multiline=False)}</h1>", f"<p>Signed in through the LMS as {who}.</p>"]
    if doc is None:
        parts.append("<p>No result yet: nothing of yours has been graded for this assignment.</p>")
    else:
        parts.append(_result(doc))
    body = "\n".join(parts)
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{text(policy, multiline=False)}\">"
            "<meta name=\"referrer\" content=\"no-referrer\">"
            f"<title>mpgrade: {text(assignment, multiline=False)}</title><style>{_STYLE}</style></head>"
            f"<body>\n{body}\n</body></html>\n")


def _result(doc: dict[str, Any]) -> str:
    status = str(doc.get("status"))
    out = []
    if status == "graded":
        out.append(f"<p><strong>Score: {_num(doc.get('score'))} / {_num(doc.get('max_score'))}</strong> "
                   f"<span class=\"note\">(graded {text(doc.get('finished_at') or '', multiline=False)})</span></p>")
    elif fault_of(doc) == "infrastructure":  # ours: the details are grader diagnostics, not feedback
        out.append("<p class=\"error\"><strong>Your latest submission could not be graded: the grader failed"
                   " on our side, not because of your code.</strong> A grade you had before is kept; send it"
                   " again later or ask your teacher.</p>")
    else:
        out.append(f"<p class=\"error\"><strong>Your latest submission could not be graded ({text(status)}).</strong>"
                   " A grade you had before is kept.</p>")
        if doc.get("message"):
            out.append(f"<pre>{text(str(doc['message'])[:MAX_MESSAGE])}</pre>")
    rows = "".join(f"<tr><td>{text(ex.get('title') or ex.get('name'), multiline=False)}</td>"
                   f"<td>{_num(ex.get('score'))} / {_num(ex.get('max_score'))}</td></tr>"
                   for ex in doc.get("exercises", []))
    if rows:
        out.append(f"<table><tr><th>Exercise</th><th>Points</th></tr>{rows}</table>")
    tests = [t for t in doc.get("tests", []) if t.get("visibility") == "visible"]
    if tests:
        out.append("<h2>Feedback</h2><table><tr><th>Test</th><th>Result</th><th>Details</th></tr>")
        for t in tests:
            outcome = str(t.get("outcome"))
            details = ""
            if t.get("message") and outcome != "passed":
                details += f"<pre>{text(str(t['message'])[:MAX_MESSAGE])}</pre>"
            if t.get("hint") and outcome != "passed":
                details += f"<p>Hint: {text(t['hint'])}</p>"
            klass = "passed" if outcome == "passed" else "failed"
            out.append(f"<tr><td>{text(t.get('name'), multiline=False)}</td>"
                       f"<td class=\"{klass}\">{text(outcome, multiline=False)} ({_num(t.get('score'))}/"
                       f"{_num(t.get('max_score'))})</td><td>{details}</td></tr>")
        out.append("</table>")
    return "\n".join(out)
