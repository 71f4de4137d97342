"""The class report: a static HTML site built from a results folder (``mpgrade report``).

An instructor has one result document per student after ``mpgrade grade``; this package turns
them into what a person reads to teach the next lecture: the score distribution, which tests
most students fail and how (item analysis), where hanging submissions were blocked (hang hot
spots), which submissions are near-copies (similarity, a lead for a human, never a verdict)
and one printable page per student.

One module per concept, each usable and tested on its own:

* ``model``: reading and validating the result documents (untrusted: they came out of sandboxes);
* ``items``: item analysis (pass rate, mean points, discrimination, failure messages by shape);
* ``hangs``: the blocking places of timed-out calls, aggregated across the class;
* ``similarity``: token/winnowing fingerprints (copydetect), the exercise stub not counted;
* ``plots``: inline SVG charts (matplotlib, Agg);
* ``html``: escaping and the page layout (inline style and script, a Content-Security-Policy);
* ``site``: writing the pages;
* ``sources``: each student's code, read through the grading intake (hash-checked);
* ``previews``: what each LMS export would send for a result;
* ``build``: results folder -> written site, the one call the CLI and ``grade --report`` use.

A report never grades, never starts a sandbox and never runs student code (``.importlinter``'s
``report-never-grades`` contract).
"""

from __future__ import annotations

MISSING_EXTRA = (
    "the report needs the optional 'report' dependencies (matplotlib, copydetect): "
    "pip install -e '.[report]'  (or: make venv)"
)


class ReportUnavailable(RuntimeError):
    """The optional ``report`` extra is not installed; the message says how to install it."""


def require_extra() -> None:
    """Raise ReportUnavailable, with the install command, when matplotlib or copydetect is missing.

    The CLI calls it first so that a missing extra is one line of advice, not a traceback.
    """
    import importlib.util

    missing = [name for name in ("matplotlib", "copydetect") if importlib.util.find_spec(name) is None]
    if missing:
        raise ReportUnavailable(f"{MISSING_EXTRA} [missing: {', '.join(missing)}]")
