"""What each LMS export would send for one result, shown on the student's page.

The same functions ``mpgrade export`` uses, so a TA sees exactly what the LMS will get, and,
for an ``error``/``timeout`` result, that no export sends it as a grade (docs/lms-exports.md).
"""

from __future__ import annotations

from typing import Any

from grader import export
from grader.escaping import json_text

TARGETS = (
    ("Gradescope results.json", export.gradescope_results),
    ("LTI 1.3 AGS score", export.lti_score),
    ("PrairieLearn results.json", export.prairielearn_results),
)


def lms_previews(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(export, what it sends or why it sends nothing) for each export with one payload per result."""
    out: list[tuple[str, str]] = []
    for name, convert in TARGETS:
        try:
            out.append((name, json_text(convert(doc), indent=1)))
        except export.ExportError as exc:  # Withheld included: the policy, said as such
            out.append((name, f"not sent: {exc}"))
    return out
