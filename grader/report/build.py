"""One call from a results folder to a written report: what ``mpgrade report``, ``mpgrade grade
--report`` and the service share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from grader.assignment import Assignment
from grader.report import model, previews, similarity, site, sources


class ReportError(ValueError):
    """The report cannot be built from what was given (the message says why, for one line)."""


@dataclass
class Built:
    """The written report and what the caller should tell the person who asked for it."""

    report: site.Report
    notes: list[str] = field(default_factory=list)


def build(results_dir: Path, out_dir: Path, *, assignment: Assignment | None = None,
          submissions: Sequence[Path] = (), threshold: float | None = None,
          parallel: bool = True) -> Built:
    """Read ``results_dir`` (``mpgrade grade --out``), write the site into ``out_dir``.

    With ``assignment``, the code is read for the similarity page (from ``submissions`` or
    each result's own source); without it nothing is compared. ``parallel=False`` validates
    the documents in this process (for callers with threads of their own, like the service).
    """
    results_dir, out_dir = Path(results_dir), Path(out_dir)
    if not results_dir.is_dir():
        raise ReportError(f"{results_dir} is not a folder of results (mpgrade grade --out DIR)")
    if out_dir.resolve() == results_dir.resolve():
        raise ReportError("--out must be a folder of its own, not the results folder")
    klass = model.load_class(results_dir, parallel=parallel)
    if not klass.students:
        raise ReportError(f"no valid result documents in {results_dir}")
    notes = [f"left out: {name}: {why}" for name, why in klass.problems]
    code: dict[str, dict[str, str]] = {}
    stub_code: dict[str, str] = {}
    if assignment is not None:
        code, missed = sources.collect_code(klass, assignment, list(submissions))
        notes += [f"similarity: {line}" for line in missed]
        stub_code = similarity.stubs(assignment)
    # Each preview validates its export against the LMS's schema: 10 ms a student, in workers.
    lms = dict(zip([st.id for st in klass.students],
                   model.in_workers(previews.lms_previews, [st.doc for st in klass.students], parallel),
                   strict=True))
    written = site.write(klass, out_dir, code=code, stub_code=stub_code, previews=lms,
                         threshold=similarity.THRESHOLD if threshold is None else threshold, parallel=parallel)
    return Built(report=written, notes=notes)
