"""Writing the report: a folder of static pages that opens from disk with nothing to fetch.

``index.html`` (the class at a glance), ``items.html`` (item analysis), ``hangs.html`` (hang
hot spots), ``similarity.html`` (pairs alike, side by side), ``students.html`` (everyone, with
links) and ``students/<name>.html``, one printable page per student. Every page is whole in
itself: style, script and charts inline, no font, image or script from anywhere else.
Every file is written atomically, so a report being rebuilt is never read half-written.
"""

from __future__ import annotations

import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader.atomic import write_atomic
from grader.escaping import json_text
from grader.protocol.results import OUTCOMES
from grader.report import hangs as hangs_mod
from grader.report import items as items_mod
from grader.report import plots
from grader.report import similarity as similarity_mod
from grader.report.html import attr, cell, href, number, page, text
from grader.report.model import ClassResults, Student

STUDENTS_DIR = "students"
LEAD = ("Similarity is a lead for a human, not a verdict: read both submissions before "
        "concluding anything. Short exercises have few good solutions, and students may have "
        "worked from the same lecture example.")
MAX_PAIR_VIEWS = 30  # side-by-side views written (the flagged pairs first)
MAX_LINKED = 40  # student links listed in one table cell before "and N more"


@dataclass
class Report:
    """What was written, for the caller to print."""

    out_dir: Path
    pages: list[Path] = field(default_factory=list)
    students: int = 0
    flagged_pairs: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)


def _student_link(st_id: str, by_id: dict[str, Student], *, up: str = "") -> str:
    st = by_id.get(st_id)
    if st is None:
        return text(st_id)
    return f'<a href="{href(st.page, prefix=up + STUDENTS_DIR + "/")}">{text(st.name)}</a>'


def _links(ids: list[str], by_id: dict[str, Student]) -> str:
    shown = ", ".join(_student_link(i, by_id) for i in ids[:MAX_LINKED])
    if len(ids) > MAX_LINKED:
        shown += f" and {len(ids) - MAX_LINKED} more"
    return shown


def _outcome(outcome: str) -> str:
    safe = outcome if outcome in OUTCOMES else "error"
    return f'<span class="outcome o-{safe}">{text(outcome)}</span>'


def _mix(outcomes: Counter[str]) -> str:
    return ", ".join(f"{_outcome(o)} {n}" for o, n in outcomes.most_common())


def _card(value: str, label: str) -> str:
    return f'<div class="card"><div class="value">{value}</div><div class="label">{label}</div></div>'


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{caption}</figcaption></figure>"


# --------------------------------------------------------------------------- overview

def overview(klass: ClassResults, report_problems: list[tuple[str, str]]) -> str:
    """The class at a glance: counts, the score histogram, exercises, status, grading time."""
    n = len(klass.students)
    scores = klass.scores()
    durations = [st.duration for st in klass.students]
    status = klass.status_counts()
    top = klass.max_score
    mean = statistics.fmean(scores) if scores else None
    median = statistics.median(scores) if scores else None
    body = [f'<p class="muted">Assignment {text(klass.assignment)} {text(klass.version)}: '
            f"{n} submissions.</p>",
            '<div class="cards" id="totals">',
            _card(str(n), "submissions"),
            _card(f'<span id="mean-score">{number(mean)}</span>', f"mean score of {top:g}"),
            _card(f'<span id="median-score">{number(median)}</span>', f"median score of {top:g}"),
            *(_card(str(status.get(s, 0)), s) for s in ("graded", "error", "timeout")),
            _card(number(statistics.fmean(durations) if durations else None), "mean seconds per submission"),
            _card(number(sum(durations), 0), "seconds of grading in all"),
            "</div>"]
    charts = []
    if scores:
        charts.append(_figure(plots.histogram(scores, top),
                              "Score distribution: submissions per tenth of the maximum."))
        charts.append(_figure(plots.scatter(durations, scores, xlabel="grading time (s)", ylabel="score",
                                            label="Score against grading time"),
                              "Score against grading time: slow and low is where the hangs are."))
    exercises = klass.exercise_stats()
    if exercises:
        charts.append(_figure(
            plots.bars([e["name"] for e in exercises], [e["mean"] for e in exercises],
                       xlabel="mean points", limit=max(e["max_score"] for e in exercises) or None,
                       label="Mean points per exercise"),
            "Mean points per exercise."))
    body.append(f'<div class="charts">{"".join(charts)}</div>')
    body.append('<h2>Exercises</h2><table class="sortable" id="exercises"><thead><tr>'
                '<th>exercise</th><th>title</th><th class="num">mean</th><th class="num">median</th>'
                '<th class="num">max</th></tr></thead><tbody>')
    for e in exercises:
        body.append(f"<tr><td>{text(e['name'])}</td><td>{text(e['title'])}</td>{cell(e['mean'])}"
                    f"{cell(e['median'])}{cell(e['max_score'], 0)}</tr>")
    body.append("</tbody></table>")
    body.append('<h2>Status</h2><table id="status"><thead><tr><th>status</th><th class="num">submissions</th>'
                "</tr></thead><tbody>")
    for s, count in status.items():
        body.append(f"<tr><td>{text(s)}</td><td class=\"num\">{count}</td></tr>")
    body.append("</tbody></table>")
    counts, edges = _histogram_counts(scores, top)
    body.append('<h2>Score distribution</h2><table id="histogram"><thead><tr><th>range</th>'
                '<th class="num">submissions</th></tr></thead><tbody>')
    for i, count in enumerate(counts):
        body.append(f"<tr><td>{edges[i]:g}–{edges[i + 1]:g}</td><td class=\"num\">{count}</td></tr>")
    body.append("</tbody></table>")
    if report_problems:
        body.append("<h2>Files left out</h2><p>These files in the results folder are not valid result "
                    "documents and are in no number of this report:</p><ul>")
        body.extend(f"<li><code>{text(name)}</code>: {text(why)}</li>" for name, why in report_problems)
        body.append("</ul>")
    return page("Overview", "".join(body), current="index.html", heading="Class overview")


def _histogram_counts(scores: list[float], top: float, bins: int = 10) -> tuple[list[int], list[float]]:
    """The histogram's numbers as the chart draws them (the last bin includes the maximum)."""
    top = top or max(scores, default=1.0) or 1.0
    edges = [round(top * i / bins, 4) for i in range(bins + 1)]
    counts = [0] * bins
    for s in scores:
        i = min(bins - 1, max(0, int(s / top * bins))) if top else 0
        counts[i] += 1
    return counts, edges


# --------------------------------------------------------------------------- items

def items_page(klass: ClassResults, items: list[items_mod.Item]) -> str:
    """Item analysis: one table per exercise, then the failure messages of each test."""
    by_id = {st.id: st for st in klass.students}
    body = ['<p>Per test: how many students passed it, the mean points, and the '
            "<strong>discrimination</strong>, the correlation of the test's points with the "
            "students' total score (as PrairieLearn computes it). Near 1: strong students pass it "
            "and weak ones do not; near 0 or negative: it does not tell them apart (too easy, too "
            "hard, or flaky). – means undefined (everyone scored the same on it).</p>"]
    exercises = [e.name for e in klass.exercises] + sorted({i.exercise for i in items} - {
        e.name for e in klass.exercises})
    for ex in exercises:
        mine = [i for i in items if i.exercise == ex]
        if not mine:
            continue
        body.append(f'<h2 id="ex-{attr(ex)}">{text(ex)}</h2>')
        body.append(_figure(plots.bars([i.id.split("::")[-1] for i in mine], [i.pass_rate * 100 for i in mine],
                                       xlabel="pass rate (%)", limit=100, label=f"Pass rate per test of {ex}"),
                            "Pass rate per test."))
        body.append('<table class="sortable items"><thead><tr><th>test</th><th>visibility</th>'
                    '<th class="num">points</th><th class="num">students</th><th class="num">pass rate %</th>'
                    '<th class="num">mean points</th><th class="num">discrimination</th><th>outcomes</th>'
                    "</tr></thead><tbody>")
        for i in mine:
            body.append(
                f'<tr data-test="{attr(i.id)}"><td><a href="#t-{attr(i.id)}">{text(i.name)}</a><br>'
                f'<code class="muted">{text(i.id)}</code></td><td>{text(i.visibility)}</td>'
                f"{cell(i.max_score, 0)}{cell(i.students, 0)}{cell(i.pass_rate * 100, 0)}"
                f"{cell(i.mean_points, 2)}{cell(i.discrimination, 2)}<td>{_mix(i.outcomes)}</td></tr>")
        body.append("</tbody></table>")
        for i in mine:
            if not i.messages:
                continue
            body.append(f'<h3 id="t-{attr(i.id)}">{text(i.name)}</h3><table class="messages"><thead><tr>'
                        '<th class="num">students</th><th>message (numbers as N)</th><th>hint</th>'
                        "<th>who</th></tr></thead><tbody>")
            for g in i.messages:
                body.append(
                    f'<tr><td class="num">{g.count}</td><td><pre>{text(g.shape)}</pre>'
                    f'<details><summary>an example</summary><pre>{text(g.example)}</pre></details>'
                    f"{_mix(g.outcomes)}</td><td>{text(g.hint or '')}</td>"
                    f"<td>{_links(g.students, by_id)}</td></tr>")
            body.append("</tbody></table>")
    return page("Item analysis", "".join(body), current="items.html", heading="Item analysis")


# --------------------------------------------------------------------------- hangs

def hangs_page(klass: ClassResults, found: hangs_mod.Hangs) -> str:
    """The blocking places of the class's timed-out calls, the most students first."""
    by_id = {st.id: st for st in klass.students}
    body = [f"<p>{found.timed_out_calls} timed-out calls. When a call does not return in time, every "
            "process of it writes its stack; here they are counted by where the student's code was and "
            "what it was waiting in (PIDs and line numbers left out).</p>"]
    if found.spots:
        body.append('<table class="sortable" id="hotspots"><thead><tr><th class="num">students</th>'
                    "<th>exercise</th><th>call</th><th>process</th><th>where it was blocked</th>"
                    '<th class="num">processes</th><th>who</th></tr></thead><tbody>')
        for spot in found.spots:
            body.append(
                f'<tr><td class="num">{len(spot.students)}</td><td>{text(spot.exercise)}</td>'
                f"<td><code>{text(spot.called)}()</code></td><td>{text(spot.place.role)}</td>"
                f"<td><code>{text(spot.place.text())}</code></td><td class=\"num\">{spot.processes}</td>"
                f"<td>{_links(spot.students, by_id)}</td></tr>")
        body.append("</tbody></table>")
    else:
        body.append("<p>No call timed out.</p>")
    if found.whole_submission_timeouts:
        body.append("<h2>Whole submissions that timed out</h2><p>Their run was stopped as a whole, so "
                    f"there are no per-call stacks: {_links(found.whole_submission_timeouts, by_id)}</p>")
    return page("Hang hot spots", "".join(body), current="hangs.html", heading="Hang hot spots")


# --------------------------------------------------------------------------- similarity

def _marked(code: str, regions: list[tuple[int, int]]) -> str:
    """Code with its matching regions in ``<mark>``; every piece escaped on its own."""
    out, at = [], 0
    for start, end in regions:
        out.append(text(code[at:start]))
        out.append(f"<mark>{text(code[start:end])}</mark>")
        at = end
    out.append(text(code[at:]))
    return "".join(out)


def similarity_page(klass: ClassResults, sim: similarity_mod.Similarity | None,
                    without_code: list[str]) -> str:
    """The most similar pairs, per exercise, and a side-by-side view of the top ones."""
    by_id = {st.id: st for st in klass.students}
    body = [f'<p class="lead" id="lead">{text(LEAD)}</p>']
    if sim is None:
        body.append("<p>No code was available, so nothing was compared. Run <code>mpgrade report</code> "
                    "where the submissions' files are (the <code>source</code> of each result), or "
                    "pass <code>--submissions</code>.</p>")
        return page("Similarity", "".join(body), current="similarity.html", heading="Similarity")
    body.append(f"<p>Per exercise, each submission's code with the exercise's stub removed (the given "
                f"code never counts), compared with every other submission's by token fingerprints "
                f"(winnowing, as MOSS and JPlag do; copydetect). A pair is flagged when on average "
                f"{sim.threshold:.0%} or more of each side's own code matches the other. The "
                f"{similarity_mod.CANDIDATES} pairs per exercise that share the most fingerprints are "
                f"compared in full and listed.</p>")
    body.append('<table id="exercise-coverage"><thead><tr><th>exercise</th><th class="num">compared</th>'
                "<th>too little own code to compare</th></tr></thead><tbody>")
    for ex, n in sim.compared.items():
        body.append(f'<tr><td>{text(ex)}</td><td class="num">{n}</td>'
                    f"<td>{_links(sim.too_little.get(ex, []), by_id)}</td></tr>")
    body.append("</tbody></table>")
    if without_code:
        body.append(f"<p class=\"note\">Code not available (not compared): {_links(without_code, by_id)}</p>")
    top = sim.top(100)
    views = ([p for p in top if p.flagged(sim.threshold)] + [p for p in top if not p.flagged(sim.threshold)])
    views = views[:MAX_PAIR_VIEWS]
    anchor = {id(p): f"pair-{n}" for n, p in enumerate(views, 1)}
    body.append('<h2>Most similar pairs</h2><table class="sortable" id="pairs"><thead><tr>'
                '<th class="num">rank</th><th>exercise</th><th>submission A</th><th>submission B</th>'
                '<th class="num">similarity %</th><th class="num">of A %</th><th class="num">of B %</th>'
                "<th>flag</th><th>view</th></tr></thead><tbody>")
    for rank, p in enumerate(top, 1):
        flag = '<span class="flag">flagged</span>' if p.flagged(sim.threshold) else ""
        view = f'<a href="#{anchor[id(p)]}">side by side</a>' if id(p) in anchor else ""
        body.append(f'<tr class="pair" data-a="{attr(p.a)}" data-b="{attr(p.b)}" data-exercise="{attr(p.exercise)}"'
                    f' data-flagged="{"yes" if flag else "no"}"><td class="num">{rank}</td>'
                    f"<td>{text(p.exercise)}</td><td>{_student_link(p.a, by_id)}</td>"
                    f"<td>{_student_link(p.b, by_id)}</td>{cell(p.score * 100, 0)}"
                    f"{cell(p.similarity_a * 100, 0)}{cell(p.similarity_b * 100, 0)}<td>{flag}</td>"
                    f"<td>{view}</td></tr>")
    body.append("</tbody></table>")
    if not top:
        body.append("<p>No two submissions share enough code to be listed.</p>")
    for p in views:
        body.append(
            f'<section class="pair-view" id="{anchor[id(p)]}"><h2>{text(p.exercise)}: '
            f"{text(by_id[p.a].name if p.a in by_id else p.a)} and "
            f"{text(by_id[p.b].name if p.b in by_id else p.b)}, {p.score:.0%}</h2>"
            f'<p class="note">{text(LEAD)} Highlighted: code of each side that the other shares, '
            "the stub not counted.</p><div class=\"side\">"
            f"<div><h3>{_student_link(p.a, by_id)} ({p.similarity_a:.0%})</h3>"
            f"<pre>{_marked(p.code_a, p.regions_a)}</pre></div>"
            f"<div><h3>{_student_link(p.b, by_id)} ({p.similarity_b:.0%})</h3>"
            f"<pre>{_marked(p.code_b, p.regions_b)}</pre></div></div></section>")
    return page("Similarity", "".join(body), current="similarity.html", heading="Similarity")


# --------------------------------------------------------------------------- students

def students_page(klass: ClassResults) -> str:
    """Everyone in one sortable table, linked to their pages."""
    exercises = klass.exercises
    head = "".join(f'<th class="num">{text(e.name)}</th>' for e in exercises)
    body = ['<table class="sortable" id="students"><thead><tr><th>student</th><th>id</th>'
            f'<th class="num">score</th><th>status</th><th class="num">seconds</th>{head}</tr></thead><tbody>']
    for st in klass.students:
        per = "".join(cell(st.exercise_score(e.name), 1) for e in exercises)
        body.append(f'<tr data-id="{attr(st.id)}"><td><a href="{href(st.page, prefix=STUDENTS_DIR + "/")}">'
                    f"{text(st.name)}</a></td><td><code>{text(st.id)}</code></td>{cell(st.score)}"
                    f"<td>{text(st.status)}</td>{cell(st.duration)}{per}</tr>")
    body.append("</tbody></table>")
    return page("Students", "".join(body), current="students.html", heading="Students")


def _telemetry(test: dict[str, Any]) -> str:
    t = test.get("telemetry") or {}
    parts = []
    if "calls" in t:
        parts.append(f"{int(t['calls'])} calls")
    if "processes" in t:
        parts.append(f"{int(t['processes'])} processes started")
    if "peak_processes" in t:
        parts.append(f"at most {int(t['peak_processes'])} at once")
    if "peak_rss" in t:
        parts.append(f"peak memory {float(t['peak_rss']) / 2**20:.0f} MiB")
    if "cpu_time" in t and "wall_time" in t:
        parts.append(f"CPU {float(t['cpu_time']):.2f} s of {float(t['wall_time']):.2f} s wall")
    if test.get("duration") is not None:
        parts.append(f"test took {float(test['duration']):.2f} s")
    return "; ".join(parts)


def _test_card(test: dict[str, Any]) -> str:
    """A test that did not pass, in full: outcome, message, hint, captured output, telemetry."""
    out = [f'<div class="test" data-test="{attr(test["id"])}" data-outcome="{attr(test["outcome"])}">'
           f"<h3>{_outcome(test['outcome'])} {text(test['name'])} "
           f'<span class="muted">{test["score"]:g} / {test["max_score"]:g}</span></h3>'
           f'<div class="muted"><code>{text(test["id"])}</code>, {text(test.get("visibility", ""))}</div>']
    if test.get("message"):
        out.append(f'<pre class="message">{text(test["message"])}</pre>')
    if test.get("hint"):
        out.append(f'<p class="hint"><strong>Hint:</strong> {text(test["hint"])}</p>')
    if test.get("output"):
        out.append(f'<details open><summary>captured output</summary><pre class="output">'
                   f"{text(test['output'])}</pre></details>")
    tele = _telemetry(test)
    if tele:
        out.append(f'<p class="telemetry">{tele}</p>')
    out.append("</div>")
    return "".join(out)


def _previews(lms: list[tuple[str, str]]) -> str:
    if not lms:
        return ""
    rows = "".join(f"<tr><th>{text(name)}</th><td><pre>{text(sent)}</pre></td></tr>" for name, sent in lms)
    return f'<h2>What the LMS exports send</h2><table id="lms-previews"><tbody>{rows}</tbody></table>'


def student_page(st: Student, lms: list[tuple[str, str]] | None = None) -> str:
    """Everything about one submission, printable: the same as ``make check`` shows, and more.

    ``lms``: (export, what it would send) pairs (``report.previews``), shown at the end.
    """
    doc = st.doc
    sub = doc["submission"]
    body = ['<p><a class="noprint" href="../students.html">all students</a></p>',
            '<table id="summary"><tbody>',
            f"<tr><th>id</th><td><code>{text(st.id)}</code></td></tr>",
            f'<tr><th>score</th><td id="score">{doc["score"]:g} / {doc["max_score"]:g}</td></tr>',
            f"<tr><th>status</th><td>{text(doc['status'])}</td></tr>"]
    if doc.get("message"):
        body.append(f"<tr><th>message</th><td><pre>{text(doc['message'])}</pre></td></tr>")
    student = sub.get("student")
    if isinstance(student, dict) and student:
        body.append(f"<tr><th>LMS identity</th><td><pre>{text(json_text(student, indent=1))}</pre></td></tr>")
    body.append(f"<tr><th>files</th><td>{text(', '.join(sub.get('files') or []) or '(none)')}</td></tr>")
    if sub.get("missing"):
        body.append(f"<tr><th>missing</th><td>{text(', '.join(sub['missing']))}</td></tr>")
    for ignored in sub.get("ignored") or []:
        body.append(f"<tr><th>ignored</th><td><code>{text(ignored.get('path', ''))}</code>: "
                    f"{text(ignored.get('reason', ''))}</td></tr>")
    grader = doc["grader"]
    body.append(f"<tr><th>graded</th><td>{text(doc['started_at'])} – {text(doc['finished_at'])}, "
                f"{number(st.duration)} s, sandbox {text(grader.get('sandbox'))}, start method "
                f"{text(grader.get('start_method'))}, mpgrade {text(grader.get('version'))}</td></tr>")
    body.append(f"<tr><th>submission hash</th><td><code>{text(sub['hash'])}</code></td></tr></tbody></table>")
    body.append('<h2>Exercises</h2><table id="exercise-scores"><thead><tr><th>exercise</th><th class="num">score</th>'
                '<th class="num">tests passed</th><th>message</th></tr></thead><tbody>')
    for ex in doc["exercises"]:
        body.append(f"<tr><td>{text(ex['name'])}: {text(ex.get('title') or '')}</td>"
                    f'<td class="num">{ex["score"]:g} / {ex["max_score"]:g}</td>'
                    f'<td class="num">{ex.get("tests_passed", 0)} / {ex.get("tests_total", 0)}</td>'
                    f"<td>{text(ex.get('message') or '')}</td></tr>")
    body.append("</tbody></table>")
    problems = [t for t in doc["tests"] if t["outcome"] != "passed"]
    body.append(f"<h2>Tests that did not pass ({len(problems)})</h2>")
    if not problems:
        body.append("<p>Every test passed.</p>")
    for test in problems:
        body.append(_test_card(test))
    body.append('<h2>Every test</h2><table class="sortable" id="tests"><thead><tr><th>outcome</th>'
                '<th>test</th><th class="num">points</th><th>telemetry</th><th>output</th></tr></thead><tbody>')
    for test in doc["tests"]:
        output = (f'<details><summary>{len(test["output"])} characters</summary><pre class="output">'
                  f"{text(test['output'])}</pre></details>") if test.get("output") else ""
        body.append(
            f'<tr data-test="{attr(test["id"])}" data-outcome="{attr(test["outcome"])}">'
            f"<td>{_outcome(test['outcome'])}</td><td>{text(test['name'])}<br>"
            f'<code class="muted">{text(test["id"])}</code> <span class="muted">'
            f'{text(test.get("visibility", ""))}</span></td>'
            f'<td class="num" data-sort="{float(test["score"]):.6g}">{test["score"]:g} / {test["max_score"]:g}</td>'
            f'<td class="telemetry">{_telemetry(test)}</td><td>{output}</td></tr>')
    body.append("</tbody></table>")
    body.append(_previews(lms or []))
    return page(f"{st.name}: {doc['score']:g}/{doc['max_score']:g}", "".join(body),
                current="", heading=f"{st.name}", depth=1)


# --------------------------------------------------------------------------- the site

def _remove_stale_pages(folder: Path, current: set[str]) -> None:
    """A student page of an earlier report whose student is no longer in the results would
    still open from disk and look current: remove the pages this report did not write."""
    for path in folder.glob("*.html"):
        if path.name not in current and path.is_file() and not path.is_symlink():
            path.unlink(missing_ok=True)


def write(klass: ClassResults, out_dir: Path, *, code: dict[str, dict[str, str]] | None = None,
          stub_code: dict[str, str] | None = None,
          previews: dict[str, list[tuple[str, str]]] | None = None,
          threshold: float = similarity_mod.THRESHOLD, parallel: bool = False) -> Report:
    """Write every page of the report of ``klass`` into ``out_dir``.

    ``code`` is each submission's code per exercise (submission id -> exercise -> text), for
    the similarity page; ``stub_code`` the given code per exercise, removed before comparing.
    Without ``code`` the similarity page says that nothing was compared. ``previews``: per
    submission id, what each LMS export would send (``report.previews``). ``parallel``: the
    similarity's fingerprints in worker processes (``similarity.compare``).
    """
    out_dir = Path(out_dir)
    report = Report(out_dir=out_dir, students=len(klass.students), problems=list(klass.problems))
    items = items_mod.analyse(klass)
    found = hangs_mod.aggregate(klass)
    known = {st.id for st in klass.students}
    usable = {sid: per for sid, per in (code or {}).items() if sid in known and per}
    sim = similarity_mod.compare(usable, stub_code or {}, threshold=threshold, parallel=parallel) if usable else None
    without_code = [st.id for st in klass.students if st.id not in usable]
    report.flagged_pairs = len(sim.flagged()) if sim else 0

    def put(rel: str, html_text: str) -> None:
        path = out_dir / rel
        write_atomic(path, html_text.encode("utf-8", "replace"))
        report.pages.append(path)

    put("index.html", overview(klass, klass.problems))
    put("items.html", items_page(klass, items))
    put("hangs.html", hangs_page(klass, found))
    put("similarity.html", similarity_page(klass, sim, without_code if sim else []))
    put("students.html", students_page(klass))
    for st in klass.students:
        put(f"{STUDENTS_DIR}/{st.page}", student_page(st, (previews or {}).get(st.id)))
    _remove_stale_pages(out_dir / STUDENTS_DIR, {st.page for st in klass.students})
    data = {"students": len(klass.students), "status": klass.status_counts(),
            "flagged_pairs": report.flagged_pairs, "problems": [list(p) for p in klass.problems]}
    write_atomic(out_dir / "report.json", (json_text(data, indent=2) + "\n").encode())
    return report
