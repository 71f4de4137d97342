"""LMS exports: result documents -> the formats Gradescope, LTI 1.3 platforms, Canvas and
PrairieLearn read.

The result document (README "The JSON result") is the only input; every export is a pure
function of validated documents, so what an LMS receives can never say more than the grader
decided. The target formats are kept as JSON Schemas in ``grader/schema/targets/`` (each names
where its format is documented) and the Canvas column rules are in ``docs/lms-exports.md``.

Identity: a document's student is ``submission.student`` when LMS ingestion filled it in
(``user_id``, ``name``, ``late``...), else the submission id (the folder or zip name).

Everything in a document that a student chose (ids, names, messages, output) is written
through ``grader.escaping``: CSV cells are neutralised for spreadsheets (OWASP CSV Injection),
JSON is always encodable (a lone surrogate becomes U+FFFD) with invisible and terminal
controlling characters escaped, and a folder named after an id is one safe path component. No
string a document may hold can make an export fail for the class or reach outside ``--out``.
"""

from __future__ import annotations

import csv
import io
import json
import re
import stat
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

from grader.assignment import Assignment
from grader.atomic import write_atomic
from grader.escaping import file_name, json_safe, json_text, spreadsheet_row
from grader.protocol import results
from grader.protocol.outputs import SUMMARY

TARGETS = Path(__file__).resolve().parent / "schema" / "targets"
TARGET_SCHEMAS = {
    "gradescope": "gradescope-results.schema.json",
    "lti": "lti-ags-score.schema.json",
    "prairielearn": "prairielearn-results.schema.json",
}
LTI_MEDIA_TYPE = "application/vnd.ims.lis.v1.score+json"
# Gradescope and PrairieLearn show these texts in a browser; a result can hold 20,000 characters
# per field and dozens of tests, PrairieLearn refuses results over 1 MB.
MAX_TEXT = 4000
GRADESCOPE_VISIBILITY = {"visible": "visible", "hidden": "hidden", "after_due_date": "after_due_date"}


class ExportError(ValueError):
    """An export that cannot be made as asked; the message says what to fix (one line)."""


class Withheld(ExportError):
    """A result that no export sends as a grade: its grading failed (``error``/``timeout``)."""


# --------------------------------------------------------------------------- one policy for error and timeout
#
# An ``error`` or ``timeout`` result is not a grade: it says the grading failed (a grader or
# sandbox problem, a submission that could not be read or ran past its limit), not what the
# student earned. So no export ever sends it as one: no 0, no LTI ``gradingProgress: Failed``
# (Canvas sets the score to nil for it), no Gradescope results.json (its score would be the
# active submission's). Whatever grade the platform holds, an earlier good one included, stays;
# every withheld result is listed (``not sent:``) and the export exits with status 1, so a
# TA regrades or decides by hand. Where a format has a "no grade" answer it is used:
# PrairieLearn's ``gradable: false`` (no score, the attempt not counted, the reason shown);
# the plain scores CSV keeps the row with an empty score. docs/lms-exports.md says the same.

GRADE_STATUS = "graded"


def withheld_reason(doc: dict[str, Any]) -> str | None:
    """Why a document is not sent as a grade (``<id>: <status>: <message>``), or None."""
    if doc["status"] == GRADE_STATUS:
        return None
    message = " ".join(str(doc.get("message") or "").split())
    return f"{doc['submission']['id']}: {doc['status']}: {message[:300]}"


def withheld(docs: Iterable[dict[str, Any]]) -> list[str]:
    """The reasons of every document of ``docs`` that no export sends as a grade."""
    return [r for r in map(withheld_reason, docs) if r is not None]


def _refuse_withheld(doc: dict[str, Any]) -> None:
    reason = withheld_reason(doc)
    if reason is not None:
        raise Withheld(f"{reason} (an {doc['status']} result is never sent as a grade)")


# --------------------------------------------------------------------------- input


def load_results(directory: Path) -> list[dict[str, Any]]:
    """Every ``<id>.json`` result document in a ``mpgrade grade --out`` folder, validated.

    ``summary.json`` is skipped. An unreadable, invalid or ``make check`` (public scope) file
    is not skipped silently: all such files are named in one ExportError, because an export
    that quietly leaves students out is worse than none. Sorted by submission id.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise ExportError(f"{directory} is not a folder (expected the --out folder of mpgrade grade)")
    docs: list[dict[str, Any]] = []
    problems: list[str] = []
    for path in sorted(directory.glob("*.json")):
        if path.name == SUMMARY or path.name.startswith("."):
            continue
        try:
            doc = results.parse(path.read_bytes())
        except (OSError, results.InvalidResult) as exc:
            problems.append(f"{path.name}: {exc}")
            continue
        if doc["scope"] != "all":
            problems.append(f"{path.name}: a {doc['scope']!r} result (make check), not a grade")
            continue
        docs.append(doc)
    if problems:
        raise ExportError(f"{len(problems)} invalid result file(s) in {directory}: " + "; ".join(problems))
    if not docs:
        raise ExportError(f"no result documents (<id>.json) in {directory}")
    seen: dict[str, int] = {}
    for doc in docs:
        seen[doc["submission"]["id"]] = seen.get(doc["submission"]["id"], 0) + 1
    twice = sorted(sid for sid, n in seen.items() if n > 1)
    if twice:
        raise ExportError(f"several result files for submission id(s) {', '.join(twice)} in {directory}")
    return sorted(docs, key=lambda d: d["submission"]["id"])


def submission_id(doc: dict[str, Any]) -> str:
    return doc["submission"]["id"]


def student_of(doc: dict[str, Any]) -> dict[str, Any]:
    """The LMS identity of a document: ``submission.student``, or the submission id as user id.

    The schema does not fix the fields of ``student``, so each is made what the exports expect
    (text or None, ``late`` a bool or None) whatever the document holds.
    """
    student = doc["submission"].get("student")
    student = student if isinstance(student, dict) else {}
    user_id = student.get("user_id") or submission_id(doc)
    late = student.get("late")
    return {
        "lms": _text_or_none(student.get("lms")),
        "user_id": str(user_id),
        "name": str(student.get("name") or ""),
        "submission_id": _text_or_none(student.get("submission_id")),
        "late": None if late is None else bool(late),
        "email": _text_or_none(student.get("email")),
    }


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


@cache
def target_schema(target: str) -> dict[str, Any]:
    """The JSON Schema of a target format ("gradescope", "lti", "prairielearn")."""
    return json.loads((TARGETS / TARGET_SCHEMAS[target]).read_text())


@cache
def _target_validator(target: str) -> Any:
    """The target's validator, its schema checked once: ``jsonschema.validate`` checks the
    schema and builds a validator on every call, 88 ms of a report page's 0.1 s (bench/course.py)."""
    import jsonschema

    schema = target_schema(target)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def validate_target(target: str, data: Any) -> Any:
    """Check an export against its target's schema: a bug here must never reach an LMS."""
    import jsonschema

    error = jsonschema.exceptions.best_match(_target_validator(target).iter_errors(data))
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "document"
        raise ExportError(f"{target} export does not match its schema at {where}: {error.message[:300]}")
    return data


def _clip(text: str | None, limit: int = MAX_TEXT) -> str:
    text = text or ""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n... ({len(text) - limit} more characters)"


def _num(x: float) -> str:
    return f"{float(x):g}"


def _exercise_line(ex: dict[str, Any]) -> str:
    tests = f" ({ex['tests_passed']}/{ex['tests_total']} tests)" if ex.get("tests_total") else ""
    return f"{ex['name']}: {_num(ex['score'])}/{_num(ex['max_score'])}{tests}"


def _summary_text(doc: dict[str, Any]) -> str:
    """What a student reads first: total, status, why, then one line per exercise."""
    a = doc["assignment"]
    lines = [f"{a['name']} {a['version']}: {_num(doc['score'])}/{_num(doc['max_score'])} ({doc['status']})"]
    if doc["message"]:
        lines.append(_clip(doc["message"], 1000))
    lines += [_exercise_line(ex) + (f" - {ex['message']}" if ex.get("message") and doc["status"] == "graded" else "")
              for ex in doc["exercises"]]
    return "\n".join(lines)


def _test_text(test: dict[str, Any]) -> str:
    """Message, hint and the student's own output of one test, for the LMS's per-test box."""
    parts = [f"{test['outcome']}: {_clip(test['message'])}" if test["message"] else test["outcome"]]
    if test.get("hint") and test["outcome"] != "passed":
        parts.append(f"Hint: {test['hint']}")
    if test.get("output"):
        parts.append("Output of your program:\n" + _clip(test["output"]))
    return "\n".join(parts)


def _duration(doc: dict[str, Any]) -> float:
    if "duration" in doc:
        return round(float(doc["duration"]), 3)
    try:
        span = _parse_time(doc["finished_at"]) - _parse_time(doc["started_at"])
    except (ValueError, OverflowError):
        return 0.0
    return max(0.0, round(span.total_seconds(), 3))


def _parse_time(text: str) -> datetime:
    t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return t if t.tzinfo else t.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- Gradescope


def gradescope_results(doc: dict[str, Any]) -> dict[str, Any]:
    """One document as Gradescope's ``results.json`` (autograder specifications, "Output format").

    The top-level ``score`` is set (it overrides the sum of the tests). An error or timeout
    result raises :class:`Withheld` (the one policy above): its 0 would become the score of
    the student's active submission. Texts are plain ``text`` format: a student's printed
    output must never be rendered as HTML. The ``run_autograder`` log (stdout) stays hidden
    from students: it is grader diagnostics.
    """
    _refuse_withheld(doc)
    doc = json_safe(doc)
    exercise_index = {ex["name"]: i + 1 for i, ex in enumerate(doc["exercises"])}
    counters: dict[str, int] = {}
    tests = []
    for t in doc["tests"]:
        ex = t["exercise"] or ""
        counters[ex] = counters.get(ex, 0) + 1
        tests.append({
            "name": f"{ex}: {t['name']}" if ex else t["name"],
            "number": f"{exercise_index.get(ex, 0)}.{counters[ex]}",
            "score": t["score"],
            "max_score": t["max_score"],
            "status": "passed" if t["outcome"] == "passed" else "failed",
            "output": _test_text(t),
            "output_format": "text",
            "visibility": GRADESCOPE_VISIBILITY[t["visibility"]],
            "tags": [ex, t["outcome"]] if ex else [t["outcome"]],
            "extra_data": {"id": t["id"], "outcome": t["outcome"]},
        })
    return validate_target("gradescope", {
        "score": doc["score"],
        "execution_time": _duration(doc),
        "output": _summary_text(doc),
        "output_format": "text",
        "test_output_format": "text",
        "visibility": "visible",
        "stdout_visibility": "hidden",
        "extra_data": {
            "submission_id": submission_id(doc),
            "hash": doc["submission"]["hash"],
            "status": doc["status"],
            "max_score": doc["max_score"],
            "assignment": doc["assignment"],
            "grader_version": doc["grader"]["version"],
        },
        "tests": tests,
    })


def _dump(data: Any) -> bytes:
    return json_text(data, indent=2).encode() + b"\n"


def write_gradescope(docs: Iterable[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``out_dir/<id>/results.json`` for every graded document; returns the files written.

    Error and timeout results get none (see :func:`withheld`, which lists them).
    """
    return _write_per_submission([d for d in docs if withheld_reason(d) is None], Path(out_dir),
                                 gradescope_results)


def write_gradescope_single(docs: list[dict[str, Any]], out_file: Path) -> Path:
    """The one document's results.json at ``out_file`` (what run_autograder needs)."""
    if len(docs) != 1:
        raise ExportError(f"--single needs exactly one result document, found {len(docs)}: "
                          + ", ".join(submission_id(d) for d in docs[:10]))
    reason = withheld_reason(docs[0])
    if reason is not None:
        raise Withheld(f"results.json not written: {reason}. An {docs[0]['status']} result is never "
                       "a score: Gradescope shows the autograder as failed; rerun it")
    out_file = Path(out_file)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_file, _dump(gradescope_results(docs[0])))
    return out_file


def _write_per_submission(docs: Iterable[dict[str, Any]], out_dir: Path, convert: Any) -> list[Path]:
    written = []
    for doc in docs:
        folder = out_dir / file_name(submission_id(doc))  # an id is no path: never "..", never "a/b"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "results.json"
        write_atomic(path, _dump(convert(doc)))
        written.append(path)
    return written


# --------------------------------------------------------------------------- Gradescope autograder

ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: the same bytes on every build
SOURCE = "/autograder/source"
VENV = "/opt/mpgrade"

STUDENT_USER = "mpgrade-student"  # who student code runs as inside Gradescope's container

SETUP_SH = f"""#!/usr/bin/env bash
# Gradescope runs this once, as root, while it builds the autograder image (Ubuntu).
# It installs Python 3.11+ and mpgrade (bundled in {SOURCE}/mpgrade) with its runtime
# dependencies into a venv at {VENV} (run_autograder puts it first on PATH), creates the
# unprivileged user student code runs as ({STUDENT_USER}), and closes {SOURCE}
# (the hidden tests) to everyone but root.
# With MPGRADE_WHEELHOUSE=DIR, pip installs from the wheels in DIR only (no network).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
usable() {{ "$1" -c 'import sys, venv, ensurepip; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; }}
PY=python3
if ! usable python3; then
    apt-get update
    apt-get install -y --no-install-recommends python3 python3-venv python3-pip ca-certificates
    if ! usable python3; then
        # Ubuntu 22.04 ships Python 3.10; mpgrade needs 3.11 (in the universe component).
        apt-get install -y --no-install-recommends python3.11 python3.11-venv
        PY=python3.11
    fi
fi
"$PY" -m venv {VENV}
if [ -n "${{MPGRADE_WHEELHOUSE:-}}" ]; then
    {VENV}/bin/python -m pip install --no-index --find-links "$MPGRADE_WHEELHOUSE" {SOURCE}/mpgrade
else
    {VENV}/bin/python -m pip install --upgrade pip
    {VENV}/bin/python -m pip install {SOURCE}/mpgrade
fi
{VENV}/bin/python -m grader --version
# Student code runs as this user: a system user with its own group, no home, no login.
if ! id -u {STUDENT_USER} >/dev/null 2>&1; then
    useradd --system --user-group --no-create-home --home-dir /nonexistent \\
        --shell /usr/sbin/nologin {STUDENT_USER}
fi
chown -R root:root {SOURCE}
chmod -R go-rwx {SOURCE}
"""

RUN_AUTOGRADER = f"""#!/usr/bin/env bash
# Gradescope runs this for every submission, as root, in /autograder, with the student's files
# in /autograder/submission; it must leave /autograder/results/results.json behind.
#
# Gradescope's container is the only sandbox, and root in it is ours: it is dropped for student
# code, which runs as {STUDENT_USER} (made by setup.sh). That user can read neither
# {SOURCE} (the hidden tests) nor the grader's job folders and cannot write
# /autograder/results; results.json is written by root once grading is over
# (`mpgrade export gradescope-run`, docs/lms-exports.md).
set -uo pipefail
export PATH="{VENV}/bin:$PATH"
chown root:root /autograder {SOURCE}
chmod 0755 /autograder
chmod -R go-rwx {SOURCE}
mkdir -p /autograder/results
chown root:root /autograder/results
chmod 0700 /autograder/results
# Gradescope's metadata (names and emails of the team, earlier submissions and their
# results, the assignment's dates) is for the grader, not for student code.
chmod 0600 /autograder/submission_metadata.json 2>/dev/null
python3 -m grader export gradescope-run --submission /autograder/submission \\
    --results /autograder/results/results.json --assignment {SOURCE}/course \\
    --student-user {STUDENT_USER}
echo "mpgrade exited with status $?"
"""


def package_root() -> Path:
    """The mpgrade source tree this module runs from (the autograder bundles it)."""
    root = Path(__file__).resolve().parent.parent
    for name in ("pyproject.toml", "README.md"):
        if not (root / name).is_file():
            raise ExportError(f"{root / name} not found: build the autograder from an mpgrade source checkout")
    return root


def autograder_members(assignment: Assignment) -> dict[str, tuple[bytes, int]]:
    """Zip member name -> (content, mode): scripts, grader source, the course's tests only.

    Reference solutions and mutants stay out: the zip is uploaded to Gradescope, where course
    staff can download it, and nothing in grading needs them (the grader sends a sandbox only
    the manifest, the tests and the submitted modules).
    """
    members: dict[str, tuple[bytes, int]] = {
        "setup.sh": (SETUP_SH.encode(), 0o755),
        "run_autograder": (RUN_AUTOGRADER.encode(), 0o755),
    }
    src = package_root()
    members["mpgrade/pyproject.toml"] = ((src / "pyproject.toml").read_bytes(), 0o644)
    members["mpgrade/README.md"] = ((src / "README.md").read_bytes(), 0o644)
    for path in sorted((src / "grader").rglob("*")):
        rel = path.relative_to(src)
        if (not path.is_file() or path.is_symlink() or "__pycache__" in rel.parts
                or any(p.startswith(".") for p in rel.parts) or path.suffix in (".pyc", ".pyo")):
            continue
        members[f"mpgrade/{rel.as_posix()}"] = (path.read_bytes(), 0o644)
    for path in assignment.grading_files():
        members[f"course/{path.relative_to(assignment.root).as_posix()}"] = (path.read_bytes(), 0o644)
    return dict(sorted(members.items()))


def gradescope_autograder(assignment_root: Path, out_zip: Path) -> list[str]:
    """Write Gradescope's autograder zip for the assignment at ``assignment_root``.

    Deterministic (sorted members, fixed timestamps, fixed modes), so the same sources give
    the same bytes and a changed zip means changed grading. Returns the member names.
    """
    from grader import assignment as assignment_mod

    try:
        assignment = assignment_mod.load(Path(assignment_root))
    except assignment_mod.AssignmentError as exc:
        raise ExportError(str(exc)) from None
    members = autograder_members(assignment)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, (data, mode) in members.items():
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.create_system = 3  # Unix, so that unzip honours the mode bits
            info.external_attr = (stat.S_IFREG | mode) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    out_zip = Path(out_zip)
    out_zip.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out_zip, buf.getvalue())
    return list(members)


# --------------------------------------------------------------------------- LTI 1.3 AGS


def lti_timestamp(text: str) -> str:
    """ISO 8601 with an explicit offset and milliseconds, as the AGS examples write it.

    The schema of a result says ``date-time`` but does not enforce it; a time that does not
    parse is the time of the export (when the tool last modified the score), never a
    traceback that would stop the export for every student.
    """
    try:
        when = _parse_time(text).astimezone(UTC)
    except (ValueError, OverflowError):
        when = datetime.now(UTC)
    return when.isoformat(timespec="milliseconds")


def lti_comment(doc: dict[str, Any]) -> str:
    """Short, one line: status, total, per exercise scores (the full feedback lives elsewhere)."""
    per = ", ".join(f"{ex['name']} {_num(ex['score'])}/{_num(ex['max_score'])}" for ex in doc["exercises"])
    text = f"{doc['status']} {_num(doc['score'])}/{_num(doc['max_score'])}: {per}"
    if doc["status"] != "graded" and doc["message"]:
        text += f". {doc['message']}"
    return _clip(" ".join(text.split()), 1000)


def lti_score(doc: dict[str, Any]) -> dict[str, Any]:
    """One graded document as an AGS Score (``application/vnd.ims.lis.v1.score+json``).

    Always ``FullyGraded``. An error or timeout result raises :class:`Withheld`: any Score for
    it would change the platform's grade (Canvas sets the score to nil for a Score that is
    not FullyGraded, wiping an earlier good grade), so none is sent (the one policy above).
    """
    _refuse_withheld(doc)
    doc = json_safe(doc)
    return validate_target("lti", {
        "userId": student_of(doc)["user_id"],
        "scoreGiven": doc["score"],
        "scoreMaximum": doc["max_score"],
        "comment": lti_comment(doc),
        "timestamp": lti_timestamp(doc["finished_at"]),
        "activityProgress": "Completed",
        "gradingProgress": "FullyGraded",
    })


def lti_scores(docs: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """One Score per graded student; two results for one student is an error, never a silent
    overwrite. Error and timeout results have none (:func:`withheld` lists them)."""
    scores = [lti_score(d) for d in docs if withheld_reason(d) is None]
    by_user: dict[str, int] = {}
    for s in scores:
        by_user[s["userId"]] = by_user.get(s["userId"], 0) + 1
    twice = sorted(u for u, n in by_user.items() if n > 1)
    if twice:
        raise ExportError(f"several results for LTI user id(s) {', '.join(twice[:10])}: keep one per student")
    return scores


def json_lines(items: Iterable[dict[str, Any]]) -> str:
    return "".join(json_text(i, sort_keys=True) + "\n" for i in items)


# --------------------------------------------------------------------------- scores.csv for any LMS

SCORES_COLUMNS = ("id", "name", "user_id", "score", "max_score", "status", "late")


def scores_csv(docs: Iterable[dict[str, Any]]) -> str:
    """id, name, user_id, score, max_score, status, late: the lowest common denominator.

    ``late`` is "true"/"false" when LMS ingestion said so, empty when unknown. The score of an
    error or timeout result is empty, never 0 (the one policy above), its status says why.
    Text cells (id, name, user id) are the students' and neutralised for spreadsheets; scores
    stay numbers.
    """
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(SCORES_COLUMNS)
    for doc in sorted(docs, key=submission_id):
        s = student_of(doc)
        late = "" if s["late"] is None else str(bool(s["late"])).lower()
        score = "" if withheld_reason(doc) else _num(doc["score"])
        writer.writerow(spreadsheet_row([submission_id(doc), s["name"], s["user_id"], score,
                                         _num(doc["max_score"]), doc["status"], late]))
    return buf.getvalue()


# --------------------------------------------------------------------------- Canvas gradebook

CANVAS_ID_COLUMNS = ("SIS User ID", "ID", "SIS Login ID")
CANVAS_FIXED = {
    "Student", "ID", "SIS User ID", "SIS Login ID", "Integration ID", "Root Account", "Section",
}
_CANVAS_ASSIGNMENT = re.compile(r"\(\d+\)\s*$")  # Canvas appends the assignment id: "HW 1 (4821)"


@dataclass
class CanvasReport:
    """What a gradebook fill did; nothing is dropped without appearing here."""

    column: str
    matched: list[str] = field(default_factory=list)
    unmatched_results: list[str] = field(default_factory=list)
    students_without_results: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)  # error/timeout: never written (one policy)


# Which gradebook columns a student key is looked up in, by where the key came from. A Canvas
# download's user id is the Canvas user id, i.e. the ``ID`` column, and only that: an SIS id
# that happens to be the same number is another student. Other keys (a Gradescope SID, a
# folder name) are the institution's: ``SIS User ID``, then ``SIS Login ID``, then ``ID``;
# the first column where the key is found decides.
CANVAS_KEY_COLUMNS = {"canvas": ("ID",)}
OTHER_KEY_COLUMNS = ("SIS User ID", "SIS Login ID", "ID")
_DECIMAL_COMMA = re.compile(r"^-?\d+,\d+$")


def canvas_number(x: float, *, decimal_comma: bool) -> str:
    """A score as a gradebook of this locale writes it: ``62.5``, or ``62,5``."""
    text = _num(x)
    return text.replace(".", ",") if decimal_comma else text


def _gradebook_dialect(text: str) -> str:
    """``,`` or ``;``: Canvas separates fields with ``;`` for comma-decimal locales (and when a
    user asks for it), so the header decides, outside quotes."""
    header = text.split("\n", 1)[0]
    outside = re.sub(r'"[^"]*"', "", header)
    return ";" if outside.count(";") > outside.count(",") else ","


def _norm(text: str) -> str:
    return " ".join(re.sub(r"[-_]+", " ", text).casefold().split())


def canvas_assignment_columns(header: list[str]) -> list[str]:
    """The header cells that are assignment columns (Canvas suffixes them with the id)."""
    marked = [h for h in header if _CANVAS_ASSIGNMENT.search(h)]
    return marked or [h for h in header if h.strip() and h.strip() not in CANVAS_FIXED]


def choose_canvas_column(header: list[str], assignment_name: str, column: str | None) -> str:
    """``column`` if it is a header cell, else the one assignment column naming the assignment."""
    candidates = canvas_assignment_columns(header)
    if column is not None:
        if column not in header:
            raise ExportError(f"no column {column!r} in the gradebook; assignment columns: "
                              + ", ".join(repr(c) for c in candidates))
        if column.strip() in CANVAS_FIXED:
            raise ExportError(f"{column!r} is a student column, not an assignment column")
        return column
    wanted = _norm(assignment_name)
    found = [h for h in candidates if wanted and wanted in _norm(h)]
    if len(found) == 1:
        return found[0]
    why = "several columns name" if found else "no column names"
    raise ExportError(f"{why} the assignment {assignment_name!r}; pass --column with one of: "
                      + ", ".join(repr(c) for c in (found or candidates)))


def canvas_gradebook(gradebook_csv: Path, docs: list[dict[str, Any]], column: str | None,
                     out: Path) -> CanvasReport:
    """Fill the assignment's column of a Canvas gradebook export, ready to import again.

    Everything else is kept as exported: the separator (``,``, or ``;`` in comma-decimal
    locales, whose scores are then written ``62,5``), the header, the rows before the first
    student ("Points Possible", "Manual Posting" / muted rows: any row with no ID, SIS User ID
    or SIS Login ID), every other column, and the cells of students without a result. A
    document's student key (``student.user_id``, else ``submission.id``) is looked up,
    case-insensitively, in the columns it belongs to (CANVAS_KEY_COLUMNS): a Canvas user id
    in ``ID`` only, any other key in ``SIS User ID``, ``SIS Login ID``, ``ID``, the first that
    has it deciding. A key matching several rows, or several documents matching one row,
    changes nothing and is reported. Error and timeout results are never written (the one
    policy above): the cell keeps the grade Canvas has, and they are listed in ``withheld``.
    Every cell written is neutralised for spreadsheets (a student's display name can be a
    formula); numbers, the scores among them, are written as they are.
    """
    try:
        raw = Path(gradebook_csv).read_bytes()
    except OSError as exc:
        raise ExportError(f"cannot read the gradebook {gradebook_csv}: {exc.strerror or exc}") from None
    bom = raw.startswith(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise ExportError(f"{gradebook_csv} is not UTF-8 (export the gradebook from Canvas again)") from None
    newline = "\r\n" if "\r\n" in text[:10000] else "\n"
    delimiter = _gradebook_dialect(text)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:  # a field over the csv module's limit, a NUL...: not a gradebook
        raise ExportError(f"{gradebook_csv} is not a gradebook mpgrade can read ({exc})") from None
    if not rows or not rows[0]:
        raise ExportError(f"{gradebook_csv} is empty")
    header = rows[0]
    id_cols = [header.index(c) for c in CANVAS_ID_COLUMNS if c in header]
    if not id_cols:
        raise ExportError(f"{gradebook_csv} has none of the columns {', '.join(CANVAS_ID_COLUMNS)}: "
                          "is it a Canvas gradebook export?")
    if not docs:
        raise ExportError("no result documents to put into the gradebook")
    names = {d["assignment"]["name"] for d in docs}
    if len(names) > 1:
        raise ExportError(f"results of several assignments ({', '.join(sorted(names))}): export them one by one")
    col_name = choose_canvas_column(header, names.pop(), column)
    col = header.index(col_name)
    report = CanvasReport(column=col_name)
    report.withheld = withheld(docs)
    docs = [d for d in docs if withheld_reason(d) is None]
    decimal_comma = delimiter == ";" or any(
        _DECIMAL_COMMA.match(c.strip()) for row in rows[1:] for c in row)

    def cell(row: list[str], i: int) -> str:
        return row[i].strip() if i < len(row) else ""

    def label(row: list[str]) -> str:
        who = cell(row, header.index("Student")) if "Student" in header else ""
        ids = [cell(row, header.index(c)) for c in ("ID", "SIS User ID", "SIS Login ID")
               if c in header and cell(row, header.index(c))]
        return f"{who} ({ids[0]})" if who else ids[0]

    student_rows: list[int] = []
    for n, row in enumerate(rows[1:], start=1):
        if any(cell(row, i) for i in id_cols):
            student_rows.append(n)
        elif "points possible" in " ".join(row).casefold():
            possible = cell(row, col).replace(",", ".") if decimal_comma else cell(row, col)
            maxima = {d["max_score"] for d in docs}
            if possible and maxima and all(_num(m) != _num(_to_float(possible)) for m in maxima):
                report.warnings.append(f"{col_name!r} is worth {possible} points in Canvas, the results "
                                       f"{'/'.join(_num(m) for m in sorted(maxima))}: scores are written unscaled")
    index: dict[str, dict[str, set[int]]] = {name: {} for name in CANVAS_ID_COLUMNS}
    for n in student_rows:
        for name in CANVAS_ID_COLUMNS:
            key = cell(rows[n], header.index(name)).casefold() if name in header else ""
            if key:
                index[name].setdefault(key, set()).add(n)
    claims: dict[int, list[dict[str, Any]]] = {}
    for doc in docs:
        student = student_of(doc)
        key = student["user_id"]
        columns = CANVAS_KEY_COLUMNS.get(student["lms"] or "", OTHER_KEY_COLUMNS)
        hits: set[int] = set()
        for name in columns:
            hits = index[name].get(key.strip().casefold(), set())
            if hits:
                break
        if len(hits) == 1:
            claims.setdefault(next(iter(hits)), []).append(doc)
        elif not hits:
            report.unmatched_results.append(
                f"{submission_id(doc)}: no student with {' or '.join(columns)} {key!r}")
        else:
            report.unmatched_results.append(
                f"{submission_id(doc)}: {key!r} matches several students: "
                + ", ".join(label(rows[n]) for n in sorted(hits)))
    for n in student_rows:
        mine = claims.get(n, [])
        if len(mine) > 1:
            ids = ", ".join(submission_id(d) for d in mine)
            report.unmatched_results += [f"{submission_id(d)}: {label(rows[n])} has several results ({ids})"
                                         for d in mine]
        elif mine:
            row = rows[n]
            row.extend([""] * (col + 1 - len(row)))
            row[col] = canvas_number(mine[0]["score"], decimal_comma=decimal_comma)
            report.matched.append(submission_id(mine[0]))
        else:
            report.students_without_results.append(label(rows[n]))
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator=newline).writerows(
        spreadsheet_row(row) for row in rows)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(out, (b"\xef\xbb\xbf" if bom else b"") + buf.getvalue().encode())
    return report


def _to_float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


# --------------------------------------------------------------------------- PrairieLearn


def prairielearn_results(doc: dict[str, Any]) -> dict[str, Any]:
    """One document as PrairieLearn's external grading ``results.json`` ("Grading results").

    ``gradable`` is false for every error and timeout result (the one policy above):
    PrairieLearn then neither scores it nor counts the attempt, so an earlier good score
    stands, and it shows the reason (``format_errors``). ``score`` is the fraction of
    ``max_score``.
    """
    doc = json_safe(doc)
    if withheld_reason(doc) is not None:
        return validate_target("prairielearn", {
            "gradable": False,
            "message": _clip(doc["message"], 1000),
            "format_errors": [_clip(doc["message"], 1000)],
            "tests": [],
        })
    fraction = doc["score"] / doc["max_score"] if doc["max_score"] else 0.0
    return validate_target("prairielearn", {
        "gradable": True,
        "score": round(min(1.0, max(0.0, fraction)), 6),
        "message": _summary_text(doc),
        "tests": _prairielearn_tests(doc),
    })


def _prairielearn_tests(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Visible tests one by one; hidden and after-due-date tests only as a total per exercise.

    PrairieLearn shows every test it receives to the student at once, so tests mpgrade keeps
    hidden (or hidden until the due date) must not be listed there by name and message.
    """
    tests: list[dict[str, Any]] = []
    hidden: dict[str, list[dict[str, Any]]] = {}
    for t in doc["tests"]:
        if t["visibility"] != "visible":
            hidden.setdefault(t["exercise"] or "", []).append(t)
            continue
        message = t["message"] or t["outcome"]
        if t.get("hint") and t["outcome"] != "passed":
            message += f"\nHint: {t['hint']}"
        tests.append({
            "name": f"{t['exercise']}: {t['name']}" if t["exercise"] else t["name"],
            "description": t["id"],
            "points": t["score"],
            "max_points": t["max_score"],
            "message": _clip(message),
            "output": _clip(t.get("output")),
        })
    for ex, group in hidden.items():
        passed = sum(t["outcome"] == "passed" for t in group)
        tests.append({
            "name": f"{ex}: hidden tests" if ex else "hidden tests",
            "description": f"{len(group)} tests whose details are not shown",
            "points": round(sum(t["score"] for t in group), 4),
            "max_points": round(sum(t["max_score"] for t in group), 4),
            "message": f"{passed} of {len(group)} hidden tests passed",
            "output": "",
        })
    return tests


def write_prairielearn(docs: Iterable[dict[str, Any]], out_dir: Path) -> list[Path]:
    """``out_dir/<id>/results.json`` for every document; returns the files written."""
    return _write_per_submission(docs, Path(out_dir), prairielearn_results)
