"""Everything ``mpgrade`` shows, in one place: messages, progress bars, tables, histograms.

The command modules call these and hold no rich code of their own, so every command body is
a few lines over the library, and every text that came from a student (file and folder
names, ids, exception messages, output) goes through ``grader.escaping`` here and is never
read as markup.

Messages (errors, warnings, notes, ``wrote ...``) go to stderr, one line each; tables and
results go to stdout, so a script reads the files and a person reads the terminal.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

from rich.console import Console
from rich.padding import Padding
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from grader.escaping import joined, shown, terminal

EXIT_USAGE = 2
_BLANKS = re.compile(r"[ \t\n\r\f\v]+")
err = Console(stderr=True)

# --------------------------------------------------------------------------- messages (stderr)


def one_line(message: str) -> str:
    """Line breaks and runs of blanks as one space; every other control stays, to be escaped."""
    return " ".join(_BLANKS.split(message)).strip()


def fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    """Print one line on stderr and exit: a user-facing problem is never a traceback.

    The message often quotes a student's file name, id or error, so it is printed escaped and
    never read as markup (``grader.escaping``).
    """
    err.print(joined(("error:", "bold red"), " ", one_line(message)), highlight=False, soft_wrap=True)
    sys.exit(code)


def warn(message: str) -> None:
    """One ``warning:`` line on stderr, escaped like :func:`fail`."""
    err.print(joined(("warning:", "yellow"), " ", message), highlight=False, soft_wrap=True)


def note(label: str, style: str, message: str) -> None:
    """One ``label message`` line on stderr (``skipped:``, ``not imported:``), escaped like :func:`fail`."""
    err.print(joined((label, style), " ", message), highlight=False, soft_wrap=True)


def done(*parts: object) -> None:
    """A closing line on stderr (``wrote ...``, ``mpgrade serve: ...``); paths and names in it
    are escaped (``grader.escaping.joined``)."""
    err.print(joined(*parts), highlight=False, soft_wrap=True)


def log(message: str) -> None:
    """A line of a long job's log (the image build) on stderr, escaped, line breaks kept."""
    err.print(shown(message, multiline=True), highlight=False)


def local_sandbox_warning() -> None:
    """Said loudly whenever ``--sandbox local`` grades: it is no security boundary."""
    err.print("[bold yellow]warning:[/] --sandbox local runs submissions as child processes on this "
              "machine. It is NOT a security boundary: never use it for untrusted code.")


def interrupted(out_dir: Path) -> None:
    """What Ctrl-C (or SIGTERM) during ``mpgrade grade`` leaves, and how to go on."""
    err.print(joined(("interrupted:", "bold yellow"), " running submissions were stopped; finished "
                     "results are in ", out_dir, " (run the same command to go on)."))


# --------------------------------------------------------------------------- progress


@contextmanager
def grading_progress(console: Console) -> Iterator[Callable[[str, Any, dict[str, Any] | None], None]]:
    """A progress bar for ``grader.batch.run``: yields its ``on_event``, which counts found
    submissions into the total and done / errors / timeouts / up to date as they end."""
    counts = {"done": 0, "error": 0, "timeout": 0, "reused": 0}
    with Progress(TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("eta"),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("grade", total=0, counts="")

        def on_event(kind: str, sub: Any, doc: dict[str, Any] | None) -> None:
            if kind == "found":
                progress.update(task, total=(progress.tasks[0].total or 0) + 1)
            elif kind in ("done", "reused") and doc is not None:
                counts["done"] += 1
                counts["reused"] += kind == "reused"
                counts["error"] += doc["status"] == "error"
                counts["timeout"] += doc["status"] == "timeout"
                text = (f"done {counts['done']} · errors {counts['error']} · timeouts {counts['timeout']}"
                        + (f" · up to date {counts['reused']}" if counts["reused"] else ""))
                progress.update(task, advance=1, counts=text)

        yield on_event


@contextmanager
def counting_progress(label: str, total: int, console: Console) -> Iterator[Callable[[Any], None]]:
    """A plain ``label [bar] n/total elapsed`` bar; yields the callback that advances it by one."""
    with Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task(label, total=total)
        yield lambda _message: progress.update(task, advance=1)


# --------------------------------------------------------------------------- mpgrade check


def check_result(doc: dict[str, Any], assignment: Any, console: Console, json_path: Path,
                 notebook: Path | None = None) -> None:
    """The student's table and failures, and where the JSON is. Messages, hints and output come
    from the student's code (an exception can say anything): every text is escaped. For a
    notebook's check, ``notebook`` is the notebook: the module it became is named as it is."""
    from grader.check import all_public_passed

    table = Table(title=shown(f"{assignment.title} — public tests"), title_justify="left")
    table.add_column("Exercise", overflow="fold")
    table.add_column("Public points", justify="right", no_wrap=True)
    table.add_column("Tests", justify="right", no_wrap=True)
    table.add_column("Still to be graded", justify="right")
    table.add_column("Status", overflow="fold", ratio=1)
    hidden_total = 0.0
    for ex in doc["exercises"]:
        hidden = max(ex.get("points", 0) - ex["max_score"], 0)
        hidden_total += hidden
        ok = ex["tests_total"] and ex["tests_passed"] == ex["tests_total"]
        # The whole message is under the table: one short line keeps a narrow table readable.
        message = (ex.get("message") or "failing tests").split("\n", 1)[0]
        message = message if len(message) <= 60 else message[:57] + "..."
        status = shown("ok", "green") if ok else shown(message, "red")
        table.add_row(shown(f"{ex['name']} {ex.get('title', '')}"), f"{ex['score']:g} / {ex['max_score']:g}",
                      f"{ex['tests_passed']}/{ex['tests_total']}", f"{hidden:g} pts (hidden)", status)
    console.print(table)
    methods = doc.get("grader", {}).get("start_methods") or [doc.get("grader", {}).get("start_method")]
    methods = [m for m in methods if m]
    if methods:
        console.print(shown(f"Start methods: {', '.join(methods)} (every public test ran under each)"
                            if len(methods) > 1 else f"Start method: {methods[0]}"), highlight=False)
    ignored = doc.get("submission", {}).get("ignored", [])
    for item in ignored[:5]:
        console.print(joined(("not run: ", "yellow"), item.get("path", ""), (" — ", ""), item.get("reason", "")),
                      highlight=False)
    if len(ignored) > 5:
        console.print(f"not run: {len(ignored) - 5} more files (submission.ignored in the JSON result)",
                      highlight=False)
    if notebook is not None:
        modules = ", ".join(sorted(doc.get("submission", {}).get("files", []) or ["the module"]))
        console.print(joined(("Checked: ", ""), notebook, (f" (its code cells, in order, as {modules}: "
                             "line numbers count from the first code cell)", "")), highlight=False)
    for t in doc["tests"]:
        if t["outcome"] != "passed":
            failed_test(t, assignment, console, student_paths=notebook is None)
    if doc["status"] != "graded":
        console.print(shown(f"The check could not run: {doc['message']}", "bold red"))
    passed = sum(t["outcome"] == "passed" for t in doc["tests"])
    summary = (f"Public tests: {passed}/{len(doc['tests'])} passed, {doc['score']:g}/{doc['max_score']:g} points. "
               f"Hidden tests worth {hidden_total:g} more points run only when your work is graded.")
    style = "green" if all_public_passed(doc) else "red"
    console.print(Text(summary, style=style))
    console.print(joined(("JSON result: ", ""), json_path), highlight=False)


def _indented(console: Console, text: str, style: str = "", indent: int = 4, multiline: bool = False) -> None:
    """A line (or block) that wraps under its own indentation, never back to column 0."""
    console.print(Padding(shown(text, style, multiline=multiline), (0, 0, 0, indent)), highlight=False)


def failed_test(t: dict[str, Any], assignment: Any, console: Console, student_paths: bool = True) -> None:
    """One failing test of ``make check``: its name, outcome and start method, the message, what
    each of the student's processes raised and printed, the hint, and ``file:line: message``
    lines an editor jumps to. Paths are the student's (``exercises/01_spawn/spawn.py``; left as
    the module's name when ``student_paths`` is false: a notebook's code)."""
    from grader import check as check_mod

    if student_paths:
        t = {**t, "message": check_mod.student_paths(t.get("message") or "", assignment, t.get("exercise")),
             "output": check_mod.student_paths(t.get("output") or "", assignment, t.get("exercise"))}
    else:
        t = {**t, "message": t.get("message") or "", "output": t.get("output") or ""}
    how = t["outcome"] + (f" under {t['start_method']}" if t.get("start_method") else "")
    # A grid: a long name wraps under itself, never back under the mark.
    title = Table.grid(padding=(0, 1))
    title.add_column(no_wrap=True)
    title.add_column()
    title.add_row(shown("✗", "bold red"), shown(f"{t['exercise']}: {t['name']}  [{how}]", "bold red"))
    console.print(title)
    for line in check_mod.shorter_paths(t["message"]).splitlines()[:12]:
        text = line.lstrip(" ")
        _indented(console, text, indent=4 + min(len(line) - len(text), 12))
    raised = check_mod.crashes(t["output"])
    if raised:
        _indented(console, "your processes raised:", "bold")
        for crash in raised[:check_mod.MAX_CRASHES]:
            times = f" ({crash.count} processes)" if crash.count > 1 else ""
            _indented(console, f"{crash.error}{times}", "red", indent=6)
            for line in crash.tail[:-1]:
                _indented(console, line, indent=6)
        if len(raised) > check_mod.MAX_CRASHES:
            _indented(console, f"... and {len(raised) - check_mod.MAX_CRASHES} other tracebacks "
                      "(all of them: tests[].output in the JSON result)", indent=6)
    printed, more = check_mod.printed_lines(t["output"])
    if printed:
        _indented(console, "your processes printed:", "bold")
        for line in printed:
            _indented(console, line, "dim", indent=6)
        if more:
            _indented(console, f"... and {more} more lines (tests[].output in the JSON result)", indent=6)
    if t.get("hint"):
        hint = Table.grid(padding=(0, 1))
        hint.add_column(no_wrap=True)
        hint.add_column()
        hint.add_row(shown("hint:", "yellow"), shown(t["hint"], "yellow"))
        console.print(Padding(hint, (0, 0, 0, 4)))
    for line in check_mod.editor_lines(t):
        # Column 0 and never wrapped by us: the ``file:line: message`` form editors read.
        console.print(shown(line), highlight=False, soft_wrap=True)


# --------------------------------------------------------------------------- mpgrade grade


def grade_summary(summary: dict[str, Any], console: Console, out_dir: Path) -> None:
    """The final tables of ``mpgrade grade``: every submission, the score distribution, the
    totals and where the files are. Ids and messages are the students' (folder and member
    names, exception texts): every cell is a Text, escaped and never read as markup."""
    table = Table(title="Submissions", title_justify="left")
    for col in ("id", "score", "status", "seconds", "message"):
        table.add_column(col, justify="right" if col in ("score", "seconds") else "left")
    for row in summary["submissions"]:
        style = {"graded": "", "error": "red", "timeout": "yellow"}[row["status"]]
        table.add_row(shown(row["id"]), f"{row['score']:g}/{row['max_score']:g}", shown(row["status"]),
                      f"{row['duration']:.1f}" + (" (cached)" if row["reused"] else ""),
                      shown(row["message"][:70]), style=style)
    console.print(table)
    console.print(histogram([row["score"] for row in summary["submissions"]], summary["totals"]["max_score"]))
    t = summary["totals"]
    console.print(f"{t['submissions']} submissions: {t['graded']} graded, {t['error']} errors, "
                  f"{t['timeout']} timeouts; mean {t['mean']}, median {t['median']} of {t['max_score']:g}",
                  highlight=False)
    where = terminal(out_dir)
    console.print(joined(("Results: ", ""), f"{where}/<id>.json, {where}/summary.json, {where}/scores.csv"),
                  highlight=False)


def histogram(scores: list[float], top: float, buckets: int = 5) -> Table:
    """The score distribution: ``buckets`` equal ranges of 0..``top``, a count and a bar each."""
    counts = [0] * buckets
    top = top or 1
    for score in scores:
        counts[min(int(score / top * buckets), buckets - 1)] += 1
    dist = Table(title="Score distribution", title_justify="left")
    dist.add_column("range")
    dist.add_column("n", justify="right")
    dist.add_column("")
    for i, n in enumerate(counts):
        lo, hi = i * top / buckets, (i + 1) * top / buckets
        dist.add_row(f"{lo:g}–{hi:g}", str(n), "█" * n)
    return dist


# --------------------------------------------------------------------------- mpgrade validate


def mutant_evidence(m: dict[str, Any], console: Console) -> None:
    """Under a mutant that failed validation: the tests it failed, with their messages, and
    for one not caught the tests that passed (``grader.validate.mutant_evidence``)."""
    console.print(joined((f"mutant {m['id']}:", "red"), (" " + "; ".join(m["problems"]), "")), highlight=False)
    for f in m.get("failures", []):
        how = f["outcome"] + (f" under {f['start_method']}" if f.get("start_method") else "")
        _indented(console, f"✗ {f['test']} ({how}): {f['message'] or '(no message)'}", indent=4)
    if not m.get("failures"):
        _indented(console, "no test failed", "yellow", indent=4)
    not_caught = not m.get("failures") or any("not caught" in p for p in m["problems"])
    if not_caught and m.get("passed_tests"):
        _indented(console, "passed: " + ", ".join(m["passed_tests"]), indent=4)


def validation_report(report: Any, console: Console, json_path: Path) -> None:
    """References per start method, flaky tests, stubs, mutants, the verdict and the report's
    file. Mutant descriptions and problems quote test output: escaped."""
    table = Table(title="References", title_justify="left")
    for col in ("start method", "runs", "full marks", "status"):
        table.add_column(col)
    methods: dict[str, list[dict[str, Any]]] = {}
    for r in report.references:
        methods.setdefault(r["start_method"], []).append(r)
    for method, rows in methods.items():
        good = sum(r["ok"] for r in rows)
        table.add_row(shown(method), str(len(rows)), f"{good}/{len(rows)}",
                      "[green]ok[/]" if good == len(rows) else "[red]FAILS[/]")
    console.print(table)
    for f in report.flaky:
        console.print(joined(("flaky:", "red"), f" {f['test']} under {f['start_method']}: failed "
                             f"{f['failures']}/{f['runs']} runs ({f['example']})"), highlight=False)
    stubs = report.stubs
    console.print(joined((f"Stubs: {stubs['score']:g}/{stubs['max_score']:g} ", ""),
                         ("ok", "green") if stubs["ok"] else ("should be 0 ", "red"),
                         "" if stubs["ok"] else str(stubs["passing_tests"][:5])))
    mt = Table(title="Mutants", title_justify="left")
    for col in ("mutant", "exercise", "score", "caught", "description / problem"):
        mt.add_column(col)
    for m in report.mutants:
        mt.add_row(shown(m["id"]), shown(m["exercise"]),
                   f"{m['score']:g}/{m['max_score']:g}" if m["score"] is not None else "-",
                   "[green]yes[/]" if m["ok"] else "[red]NO[/]",
                   shown(m["description"] if m["ok"] else "; ".join(m["problems"])))
    console.print(mt)
    for m in report.mutants:
        if not m["ok"]:
            mutant_evidence(m, console)
    console.print(joined(("Sandbox: ", ""), report.sandbox), highlight=False)
    console.print("[bold green]All claims hold.[/]" if report.ok else "[bold red]Validation failed.[/]")
    console.print(joined(("Report: ", ""), json_path), highlight=False)
