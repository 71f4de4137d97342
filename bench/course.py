"""Benchmark: the whole course graded at once, the floor, the student loop, the new surfaces.

    python bench/course.py [--count 30] [--subset 4] [--drop-caches]        (make bench)
    python bench/course.py --count 60 --subset 8 --drop-caches              (make bench-full)

Issue #21. One run, on one machine, ratios over absolute times:

1. A batch of COUNT whole-course submissions (every exercise's file): 60% correct (the
   references), 25% wrong (one exercise replaced by a mutant that fails), 8% hanging (one by
   a mutant that blocks), the rest hostile (one exercise replaced by an attack from
   tests/attacks/: a fork bomb, daemons and orphans, a daemon escaping its call, an output
   flood). Graded by the naive loop (unsandboxed pytest per submission, sequentially, on every
   exercise's public and hidden suites), and by mpgrade with the Docker sandbox at --jobs =
   CPUs on the whole batch; mpgrade Docker --jobs 1 and the local sandbox at --jobs 1 and
   CPUs on a stratified SUBSET of it (``--subset 0``: the whole batch; on this 2-core machine
   60 submissions five times take over an hour, see RESULTS.md), each compared with the
   naive loop on the same submissions (its per-submission times, summed: it is sequential).
   Hostile submissions run only in the Docker configurations, queued last.
2. The floor per configuration (the test calls' own wall time over the cores the
   configuration uses) and where the rest of the time goes, from the result documents and
   the sandbox's timings.
3. Peak RSS of the host process per configuration, and with a 16 MiB notebook in a batch.
4. bench/surfaces.py: ``mpgrade check`` cold and warm, one exercise and all, ``--watch``
   save-to-result; the call boundary (live-object method call, async def, plain call);
   ``mpgrade report`` on 300 result documents.
5. The goals of issue #21, printed as met / missed and written with everything else to the
   "course" section of bench/RESULTS.md (bench/sections.py), with plots beside it.

The deadline (the batch through the HTTP service) is bench/deadline.py's ``--course-batch``.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import platform
import random
import resource
import shutil
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import run as one  # noqa: E402  (bench/run.py: the one-exercise benchmark's building blocks)
import sections  # noqa: E402
import surfaces  # noqa: E402

from grader import assignment as assignment_mod  # noqa: E402
from grader import batch, image, validate  # noqa: E402
from grader.sandbox.local import LocalSandbox  # noqa: E402

# One attack per hostile submission, in turn: (attack folder, module it replaces).
HOSTILE = [("fork_bomb", "spawn.py"), ("orphans_and_daemons", "spawn.py"),
           ("escape_between_calls", "spawn.py"), ("stdout_flood", "prodcons.py"), ("memory_bomb", "pingpong.py")]
SHARES = {"wrong": 0.25, "hanging": 0.08, "hostile": 0.07}
NOTEBOOK_BYTES = 16 * 1024 * 1024 - 4096  # just under the intake's cap (grader.intake.notebook)


# --------------------------------------------------------------------------- the batch

def make_batch(course: assignment_mod.Assignment, count: int, out: Path, seed: int) -> dict[str, dict]:
    """COUNT whole-course submission folders; id -> {"kind", "what"} (what was changed)."""
    rng = random.Random(seed)
    refs = {f: (ex.hidden_dir / f).read_bytes() for ex in course.exercises for f in ex.files}
    mutants = validate.load_mutants(course)
    wrong = [m for m in mutants if m.id not in one.HANGING]
    hanging = [m for m in mutants if m.id in one.HANGING]
    n = {k: max(1, round(count * share)) for k, share in SHARES.items()}
    kinds = ["correct"] * (count - sum(n.values())) + [k for k in n for _ in range(n[k])]
    rng.shuffle(kinds)
    shutil.rmtree(out, ignore_errors=True)
    plan, hostile_turn = {}, 0
    for i, kind in enumerate(kinds):
        sid = f"c{i:03d}-{kind}"
        files, what = dict(refs), "references"
        if kind in ("wrong", "hanging"):
            m = rng.choice(wrong if kind == "wrong" else hanging)
            files[m.module], what = m.source, f"mutant {m.id}"
        elif kind == "hostile":
            name, module = HOSTILE[hostile_turn % len(HOSTILE)]
            hostile_turn += 1
            files[module], what = (ROOT / "tests" / "attacks" / name / "submission" / module).read_bytes(), f"attack {name}"
        (out / sid).mkdir(parents=True)
        for name, data in files.items():
            (out / sid / name).write_bytes(data)
        plan[sid] = {"kind": kind, "what": what}
    return plan


def subset(plan: dict[str, dict], size: int) -> list[str]:
    """A stratified part of the batch: each kind in proportion, at least one of each."""
    if size <= 0 or size >= len(plan):
        return list(plan)
    chosen = []
    for kind in ("correct", "wrong", "hanging", "hostile"):
        ids = [sid for sid, p in plan.items() if p["kind"] == kind]
        share = max(1, round(size * len(ids) / len(plan))) if ids else 0
        chosen += ids[:share]
    return [sid for sid in plan if sid in chosen]


def notebook_submission(course: assignment_mod.Assignment, folder: Path) -> None:
    """The references, 01_spawn as a 16 MiB notebook: its code and a large image output."""
    import nbformat
    from nbformat import v4

    folder.mkdir(parents=True)
    for ex in course.exercises[1:]:
        for f in ex.files:
            shutil.copy(ex.hidden_dir / f, folder / f)
    ex = course.exercises[0]
    cell = v4.new_code_cell((ex.hidden_dir / ex.files[0]).read_text())
    probe = nbformat.writes(v4.new_notebook(cells=[cell]))
    room = (NOTEBOOK_BYTES - len(probe) - 200) * 3 // 4
    cell.outputs = [v4.new_output("display_data", data={"image/png": base64.b64encode(os.urandom(room)).decode()})]
    (folder / f"{ex.id}.ipynb").write_text(nbformat.writes(v4.new_notebook(cells=[cell])))


# --------------------------------------------------------------------------- measuring

class RssSampler:
    """Peak resident memory of this process (the host process of in-process configurations)."""

    def __init__(self) -> None:
        self.proc = psutil.Process()
        self.base = self.peak = self.proc.memory_info().rss
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.05):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __enter__(self) -> RssSampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def busy_seconds() -> float:
    """Core-seconds the whole machine has spent busy since boot (every process's, the kernel's):
    on a quiet machine the difference over a configuration is that configuration's CPU use,
    the student processes included (no per-process account sees all of those)."""
    t = psutil.cpu_times()
    return sum(t) - t.idle - getattr(t, "iowait", 0.0)


class TimedSandbox:
    """A sandbox that records how long each job's ``run`` took, by submission id."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds: dict[str, float] = {}

    def run(self, job):
        started = time.monotonic()
        try:
            return self.inner.run(job)
        finally:
            self.seconds[job.labels.get("mpgrade.submission", "?")] = time.monotonic() - started

    def close(self) -> None:
        self.inner.close()


def run_naive(course: assignment_mod.Assignment, subs: Path, ids: list[str], work: Path) -> dict:
    """pytest on every exercise's public and hidden suites per submission, one after the other."""
    tests = [str(p) for ex in course.exercises for p in ex.public_tests() + ex.hidden_tests()]
    lat, rss, parts = {}, 0, {}
    for sid in ids:
        report = work / f"{sid}.json"
        started = time.monotonic()
        proc = subprocess.Popen(
            [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
             f"--mpgrade-submission={subs / sid}", "--json-report", f"--json-report-file={report}",
             f"--timeout={course.limits.test_timeout}"],
            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _, _, usage = os.wait4(proc.pid, 0)
        proc.returncode = 0
        lat[sid] = time.monotonic() - started
        rss = max(rss, usage.ru_maxrss * 1024)
        parts[sid] = naive_parts(report, lat[sid])
    return {"latencies": lat, "rss": rss, "parts": parts}


def naive_parts(report: Path, wall: float) -> dict[str, float]:
    """The naive run's seconds by part, from pytest-json-report (the plugin's telemetry in it)."""
    try:
        data = json.loads(report.read_text())
    except (OSError, ValueError):
        return {"calls": 0.0, "tests": 0.0, "session": wall, "sandbox": 0.0, "host": 0.0}
    calls = tests = 0.0
    for t in data.get("tests", []):
        tests += sum((t.get(phase) or {}).get("duration", 0.0) for phase in ("setup", "call", "teardown"))
        for prop in t.get("user_properties", []):
            tel = (prop.get("mpgrade") or {}).get("telemetry") if isinstance(prop, dict) else None
            calls += (tel or {}).get("wall_time", 0.0)
    return {"calls": calls, "tests": tests - calls, "session": wall - tests, "sandbox": 0.0, "host": 0.0}


def doc_parts(doc: dict, latency: float, run_seconds: float | None) -> dict[str, float]:
    """One graded submission's seconds by part (see PARTS)."""
    calls = sum((t.get("telemetry") or {}).get("wall_time", 0.0) for t in doc.get("tests", []))
    tests = sum(t.get("duration") or 0.0 for t in doc.get("tests", []))
    inside = doc.get("duration") or 0.0
    run_seconds = latency if run_seconds is None else run_seconds
    return {"calls": calls, "tests": tests - calls, "session": inside - tests,
            "sandbox": run_seconds - inside, "host": latency - run_seconds}


PARTS = [("calls", "the test calls themselves (telemetry wall_time: the floor's numerator)"),
         ("tests", "boundary: test bodies outside the calls (each call's child, pipes, JSON; fixtures, asserts)"),
         ("session", "collection: pytest in the sandbox (interpreter, imports, collecting, building the document)"),
         ("sandbox", "container: the sandbox around it (a warm container's or process's dispatch, collect, remove)"),
         ("host", "result checks: the host (the job's files, checking the document, writing it)"),
         ("idle", "pool: worker slots idle (jobs x wall - the submissions' latencies; the batch's tail)")]


def run_config(name: str, course, subs: Path, ids: list[str], plan: dict, box, jobs: int, out: Path,
               hostile: bool) -> dict:
    timed = TimedSandbox(box)
    order = {sid: p["kind"] for sid, p in plan.items() if sid in ids}
    with RssSampler() as mem:
        started, busy = time.monotonic(), busy_seconds()
        lat, docs, ordinary_wall = one.run_ours(course, None, subs, order, timed, jobs, out, hostile)
        wall, busy = time.monotonic() - started, busy_seconds() - busy
    graded = [sid for sid in ids if hostile or plan[sid]["kind"] != "hostile"]
    parts = {sid: doc_parts(docs[sid], lat[sid], timed.seconds.get(sid)) for sid in graded if sid in docs}
    return {"config": name, "jobs": jobs, "ids": graded, "latencies": lat, "wall": wall, "docs": docs,
            "ordinary_wall": ordinary_wall, "rss": mem.peak, "rss_base": mem.base, "parts": parts, "busy": busy}


def measure_naive(course, subs: Path, ids: list[str], plan: dict, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    ordinary = [sid for sid in ids if plan[sid]["kind"] != "hostile"]
    started, busy = time.monotonic(), busy_seconds()
    got = run_naive(course, subs, ordinary, work)
    wall, busy = time.monotonic() - started, busy_seconds() - busy
    return {"config": "naive pytest loop (sequential, unsandboxed)", "jobs": 1, "ids": ordinary,
            "latencies": got["latencies"], "wall": wall, "ordinary_wall": wall, "rss": got["rss"], "rss_base": 0,
            "parts": got["parts"], "docs": {}, "busy": busy}


def notebook_memory(course, docker_box, jobs: int, work: Path) -> dict:
    """Host RSS grading two submissions, with and without the 16 MiB notebook among them."""
    out = {}
    for label in ("plain", "notebook"):
        folder = work / f"memory-{label}"
        shutil.rmtree(folder, ignore_errors=True)
        (folder / "subs").mkdir(parents=True)
        for ex in course.exercises:
            (folder / "subs" / "m-correct").mkdir(exist_ok=True)
            for f in ex.files:
                shutil.copy(ex.hidden_dir / f, folder / "subs" / "m-correct" / f)
        if label == "notebook":
            notebook_submission(course, folder / "subs" / "m-notebook")
        with RssSampler() as mem:
            res = batch.run([folder / "subs"], folder / "out", course, docker_box, jobs=jobs, force=True)
        scores = {sid: d.get("score") for sid, d in res.documents.items()}
        out[label] = {"rss": mem.peak, "base": mem.base, "scores": scores}
    return out


# --------------------------------------------------------------------------- the numbers

def total_parts(c: dict) -> dict[str, float]:
    sums = {k: sum(p[k] for p in c["parts"].values()) for k, _ in PARTS if k != "idle"}
    sums["idle"] = max(0.0, c["jobs"] * c["wall"] - sum(c["latencies"][sid] for sid in c["parts"]))
    return sums


def floor(c: dict, cpus: int) -> float:
    """The calls' own time over the cores the configuration uses."""
    return sum(p["calls"] for p in c["parts"].values()) / max(1, min(c["jobs"], cpus))


def naive_on(naive: dict, ids: list[str]) -> float:
    """The sequential naive loop's wall time on these submissions: its times summed."""
    return sum(naive["latencies"][sid] for sid in ids if sid in naive["latencies"])


def limits_hit(doc: dict, course) -> float:
    """The per-call limits a submission ran into: the call limit for each test that timed out."""
    return sum(course.limits.call_timeout for t in doc.get("tests", []) if t.get("outcome") == "timeout")


def hostile_rows(c: dict, plan: dict, course) -> list[tuple[str, float, float, float]]:
    """(what, seconds, limit seconds, allowed = 2 x a correct one's median + limits)."""
    correct = [c["latencies"][sid] for sid in c["latencies"] if plan[sid]["kind"] == "correct"]
    if not correct:
        return []
    base = statistics.median(correct)
    rows = []
    for sid, lat in c["latencies"].items():
        if plan[sid]["kind"] == "hostile":
            lim = limits_hit(c["docs"].get(sid, {}), course)
            rows.append((plan[sid]["what"], lat, lim, 2 * base + lim))
    return rows


def pct(values: list[float], p: float) -> float:
    return one.percentile(values, p)


# --------------------------------------------------------------------------- RESULTS.md

def write(args, plan: dict, configs: list[dict], memory: dict, surf: dict, cpus: int, total: float,
          image_build: float, subset_ids: list[str], course) -> list[tuple[str, bool, str]]:
    naive = configs[0]
    kinds = {k: sum(p["kind"] == k for p in plan.values()) for k in ("correct", "wrong", "hanging", "hostile")}
    hostile_whats = sorted({p["what"] for p in plan.values() if p["kind"] == "hostile"})
    cmd = "python bench/course.py " + " ".join(sys.argv[1:])
    sub_kinds = ", ".join(f"{sum(plan[s]['kind'] == k for s in subset_ids)} {k}" for k in kinds)
    L = [
        "## The whole course (issue #21)", "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `{cmd.strip()}` ("
        + ("`make bench-full`" if (args.count, args.subset) == (60, 8) else
           "`make bench`, with `BENCH_ARGS` for the options") + "); it took "
        f"{total / 60:.1f} minutes ({image_build:.0f} s of it making sure the grading image exists).", "",
        f"Machine: **{cpus} CPUs** (cores), {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}. Everything below shares those {cpus} cores.", "",
        f"Batch: {len(plan)} whole-course submissions (all {len(course.exercises)} exercises' files, public + "
        f"hidden suites): {kinds['correct']} correct, {kinds['wrong']} wrong (one exercise a failing mutant), "
        f"{kinds['hanging']} hanging (one exercise a blocking mutant), {kinds['hostile']} hostile "
        f"({', '.join(hostile_whats)}). Hostile ones run only in the Docker configurations, queued last. "
        + (f"The --jobs 1 and local configurations grade a stratified subset of {len(subset_ids)} "
           f"({sub_kinds}),"
           " compared with the naive loop's times on the same submissions."
           if len(subset_ids) < len(plan) else ""), "",
        "| configuration | submissions | wall (s) | naive on the same (s) | vs naive | median (s) | p95 (s) "
        "| floor (s) | vs floor | host peak RSS (MiB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for c in configs:
        lats = [c["latencies"][s] for s in c["ids"] if s in c["latencies"]]
        ordinary = [s for s in c["ids"] if plan[s]["kind"] != "hostile"]
        same = naive_on(naive, ordinary)
        fl = floor(c, cpus)
        L.append(f"| {c['config']} | {len(c['ids'])} | {c['wall']:.1f} | {same:.1f} | "
                 f"{(c['ordinary_wall'] or c['wall']) / same:.2f}x | {statistics.median(lats):.2f} | "
                 f"{pct(lats, .95):.2f} | {fl:.1f} | {c['wall'] / fl:.2f}x | {c['rss'] / 2**20:.0f} |")
        if len(ordinary) < len(c["ids"]):
            L.append(f"| ... of which the naive loop's {len(ordinary)} (hostile ones queued last) | {len(ordinary)} "
                     f"| {c['ordinary_wall']:.1f} | {same:.1f} | {c['ordinary_wall'] / same:.2f}x | | | | | |")
    if len(subset_ids) < len(plan):
        full = sum(c["wall"] / len(c["ids"]) * (len(plan) if c["config"].startswith("mpgrade docker") else
                                                 sum(p["kind"] != "hostile" for p in plan.values()))
                   for c in configs if c["ids"])
        L += ["", f"All {len(configs)} configurations on the whole batch would take about {full / 60:.0f} minutes "
              "(each one's seconds per submission here, times the batch): beyond this machine's 20-minute "
              "goal for `make bench`, hence the subset (`--subset 0` runs it all)."]
    L += ["", "\"vs naive\" is like-for-like: the submissions the naive loop can run (not the hostile ones), "
          "against the naive loop's own seconds on exactly those. The floor is the test calls' own wall "
          "time (the result documents' telemetry; for the naive loop the plugin's, in pytest-json-report) "
          "over the cores the configuration uses (1 at --jobs 1). Host peak RSS: this process (the batch "
          "runs in it; for the naive loop the largest pytest process).", "",
          "Busy cores (the whole machine's CPU time over the configuration's wall time; everything else "
          "on the machine counts too): " + ", ".join(f"{c['config']} {c['busy'] / c['wall']:.2f}" for c in configs)
          + f" of {cpus}. The naive loop's CPU time over {cpus} cores, {naive['busy'] / cpus:.0f} s "
          f"({naive['busy'] / cpus / naive['wall']:.2f}x its wall time), is what the same work costs at the "
          "least on this machine if it were all computing; the rest of its time it waits (sleeps, "
          "timeouts, joins)."]
    dn = next((c for c in configs if c["config"] == f"mpgrade docker --jobs {cpus}"), None)
    if dn:
        own = [sid for sid in dn["parts"] if plan[sid]["kind"] != "hostile"]
        calls = sum(dn["parts"][sid]["calls"] for sid in own)
        same = naive_on(naive, own)
        L += [f"At --jobs {cpus} the calls of the naive loop's {len(own)} submissions took {calls:.0f} core-seconds "
              f"themselves (the naive loop's: {sum(naive['parts'][sid]['calls'] for sid in own):.0f}): over {cpus} "
              f"cores {calls / cpus:.0f} s, {calls / cpus / same:.2f}x the naive loop. That is the least any grader "
              f"could take at --jobs {cpus} with the calls as they were, before any cost of its own."]
    L += ["",
          "Where the time goes (core-seconds: jobs x wall, summed over the configuration's submissions):", "",
          "| configuration | " + " | ".join(k for k, _ in PARTS) + " | jobs x wall |",
          "|---|" + "---:|" * (len(PARTS) + 1)]
    for c in configs:
        tp = total_parts(c)
        whole = sum(tp.values()) or 1.0
        L.append(f"| {c['config']} | " + " | ".join(f"{tp[k]:.0f} ({100 * tp[k] / whole:.0f}%)" for k, _ in PARTS)
                 + f" | {c['jobs'] * c['wall']:.0f} |")
    L += [""] + [f"- **{k}**: {d}" for k, d in PARTS] + [""]
    docker_n = next((c for c in configs if c["config"] == f"mpgrade docker --jobs {cpus}"), None)
    hostile = hostile_rows(docker_n, plan, course) if docker_n else []
    docker_1 = next((c for c in configs if c["config"] == "mpgrade docker --jobs 1"), None)
    if docker_1:
        hostile += [(w + " (--jobs 1)", s, lim, allowed) for w, s, lim, allowed in hostile_rows(docker_1, plan, course)]
    if hostile:
        L += ["| hostile submission | seconds | limits it ran into (s) | allowed: 2x a correct one + limits (s) |",
              "|---|---:|---:|---:|"]
        L += [f"| {w} | {s:.1f} | {lim:.0f} | {a:.1f} |" for w, s, lim, a in hostile] + [""]
    if memory:
        p, nb = memory["plain"], memory["notebook"]
        L += [f"Memory with a 16 MiB notebook: grading the references alone, the host process peaked at "
              f"{p['rss'] / 2**20:.0f} MiB ({(p['rss'] - p['base']) / 2**20:.0f} MiB above its start); with "
              f"a {NOTEBOOK_BYTES / 2**20:.1f} MiB notebook (01_spawn's code and an image output) beside them, "
              f"{nb['rss'] / 2**20:.0f} MiB ({(nb['rss'] - nb['base']) / 2**20:.0f} MiB above its start); the "
              f"notebook's score: {nb['scores'].get('m-notebook')}.", ""]
    chk, bnd, rep = surf.get("check", {}), surf.get("boundary", {}), surf.get("report", {})
    if chk:
        L += ["| the student loop | seconds |", "|---|---:|",
              f"| `mpgrade check {args.exercise}` cold | {chk['one_cold']:.2f} |",
              f"| `mpgrade check {args.exercise}` warm (best of 3) | {chk['one_warm']:.2f} |",
              f"| `mpgrade check` (all) cold | {chk['all_cold']:.2f} |",
              f"| `mpgrade check` (all) warm (best of 3) | {chk['all_warm']:.2f} |",
              f"| `mpgrade check {args.exercise} --watch`: save to result written (median of 3) | {chk['watch']:.2f} |",
              "", "Cold: a fresh copy of the course (nothing of it compiled)"
              + ("; the page cache dropped before it." if chk.get("caches_dropped") else
                 "; the page cache not dropped (run with --drop-caches as root for that)."),
              "`make check` adds make's own start (a few ms) to these."
              + (f" The student calls themselves, as the check's result shows them: {chk['one_calls']:.2f} s "
                 f"over {chk['one_tests']} tests for one exercise, {chk['all_calls']:.2f} s over "
                 f"{chk['all_tests']} for all, in the default start method's run (each of the other two makes as many)."
                 if "one_calls" in chk else ""), ""]
    if bnd:
        L += ["| the call boundary (per call, median) | ms | vs a plain call |", "|---|---:|---:|"]
        for key, label in (("plain", "a plain function call: `student.module(\"m\").f()`"),
                           ("async", "an `async def` call"),
                           ("method", "a method call on a live object in a session: `obj.method()`"),
                           ("session_function", "a function call in a session: `s.module(\"m\").f()`"),
                           ("session_once", "a whole session for one call: open, construct, call, close")):
            L.append(f"| {label} | {bnd[key] * 1000:.2f} | {bnd[key] / bnd['plain']:.2f}x |")
        L += ["", "Through `grader.harness.boundary.StudentRunner` as the plugin makes it (fork, pre-started "
              "children), on the host: a plain call starts a fresh watched process; a session's operations "
              "reuse its one process.", ""]
    if rep:
        L += [f"`mpgrade report` on {rep['count']} result documents with their submissions (similarity on; "
              f"bench/report.py's class), the command in a new interpreter: {rep['seconds']:.2f} s, "
              f"{rep['pages']} pages.", ""]
    L += ["The deadline (this batch through the HTTP service, embedded worker and Celery workers, real "
          "grading: throughput, time to result, the wait at queue position N) is bench/deadline.py's "
          "(`make bench-deadline-course`), in its own section of this file, \"The deadline with real "
          "grading\"; the service's fair share between courses with a stand-in grading is "
          "\"Deadline simulation\" (`make bench-deadline`).", ""]
    goals = evaluate(configs, plan, surf, cpus, total, course, docker_n, subset_ids)
    L += ["| goal (issue #21) | met | measured |", "|---|---|---|"]
    L += [f"| {g} | {'yes' if ok else '**no**'} | {m} |" for g, ok, m in goals]
    L += ["", "![latency per configuration](course_latency.png)", "",
          "![where the time goes](course_parts.png)", "", "![the student loop and the boundary](course_student.png)",
          "", "![memory](course_memory.png)", ""]
    notes = BENCH / "COURSE_NOTES.md"
    if notes.exists():
        L += [notes.read_text()]
    sections.write("course", "\n".join(L))
    headline = {"configs": [{"config": c["config"], "n": len(c["ids"]), "wall": c["wall"],
                             "vs_naive": (c["ordinary_wall"] or c["wall"]) / (naive_on(naive, [
                                 s for s in c["ids"] if plan[s]["kind"] != "hostile"]) or 1),
                             "vs_floor": c["wall"] / (floor(c, cpus) or 1), "rss": c["rss"]} for c in configs],
                "surf": surf, "goals": goals, "minutes": total / 60, "count": len(plan), "subset": len(subset_ids)}
    (args.out / "headline.json").write_text(json.dumps(headline, indent=1, default=str))
    plots(configs, surf, memory)
    return goals


def evaluate(configs, plan, surf, cpus, total, course, docker_n, subset_ids) -> list[tuple[str, bool, str]]:
    goals = []
    naive = configs[0]
    if docker_n:
        ordinary = [s for s in docker_n["ids"] if plan[s]["kind"] != "hostile"]
        same = naive_on(naive, ordinary)
        goals.append((f"Docker --jobs {cpus} at most 0.5x the naive loop, like-for-like",
                      docker_n["ordinary_wall"] <= 0.5 * same,
                      f"{docker_n['ordinary_wall'] / same:.2f}x ({docker_n['ordinary_wall']:.1f} s vs {same:.1f} s, "
                      f"{len(ordinary)} submissions)"))
        fl = floor(docker_n, cpus)
        goals.append((f"Docker --jobs {cpus} at most 1.2x the floor", docker_n["wall"] <= 1.2 * fl,
                      f"{docker_n['wall'] / fl:.2f}x ({docker_n['wall']:.1f} s vs {fl:.1f} s)"))
        rows = hostile_rows(docker_n, plan, course)
        worst = max(rows, key=lambda r: r[1] / r[3], default=None)
        if worst:
            goals.append(("a hostile submission costs at most 2x a correct one plus its limits",
                          all(s <= a for _, s, _, a in rows),
                          f"worst: {worst[0]} {worst[1]:.1f} s, allowed {worst[3]:.1f} s"))
    chk, bnd, rep = surf.get("check", {}), surf.get("boundary", {}), surf.get("report", {})
    if chk:
        goals.append(("`check EX=...` warm under 0.5 s", chk["one_warm"] < 0.5, f"{chk['one_warm']:.2f} s"))
        goals.append(("`check` (whole course) warm under 3 s", chk["all_warm"] < 3.0, f"{chk['all_warm']:.2f} s"))
    if bnd:
        goals.append(("live-object method call at most 1.2x a plain call", bnd["method"] <= 1.2 * bnd["plain"],
                      f"{bnd['method'] / bnd['plain']:.3f}x ({bnd['method'] * 1000:.2f} ms vs "
                      f"{bnd['plain'] * 1000:.1f} ms)"))
    if rep:
        goals.append((f"report of {rep['count']} under 10 s", rep["seconds"] < 10, f"{rep['seconds']:.2f} s"))
    fresh = ("a fresh machine adds the virtual environment and the image build, about 20 s and 1 min "
             "(measured from scratch for the one-exercise benchmark, below)")
    if (len(plan), len(subset_ids)) == (DEFAULT_COUNT, min(DEFAULT_SUBSET, len(plan))):
        goals.append(("`make bench` under 20 minutes", total < 20 * 60 - 80,
                      f"{total / 60:.1f} min this run (`make bench` itself), with the grading image there; {fresh}"))
    else:
        minutes = default_minutes(configs, plan, total) / 60
        goals.append(("`make bench` under 20 minutes", minutes < 20 - 80 / 60,
                      f"about {minutes:.1f} min estimated for its default ({DEFAULT_COUNT} submissions, subset "
                      f"{DEFAULT_SUBSET}: each configuration's seconds per submission in this run times its "
                      f"share of that batch, plus this run's fixed parts); this run, {len(plan)} submissions, "
                      f"took {total / 60:.1f} min; {fresh}"))
    return goals


DEFAULT_COUNT, DEFAULT_SUBSET = 30, 4
"""``make bench``'s batch: what 2 cores grade five ways in under 20 minutes (the naive loop alone
takes about 16 s a whole-course submission here); ``make bench-full`` runs the 60 of issue #21."""


def default_minutes(configs: list[dict], plan: dict, total: float) -> float:
    """Seconds ``make bench`` at its default would take, from this run's per-submission seconds."""
    hostile = sum(p["kind"] == "hostile" for p in plan.values()) / max(1, len(plan))
    seconds = total - sum(c["wall"] for c in configs)  # image, surfaces, memory: the same at any size
    for c in configs:
        if not c["ids"]:
            continue
        if c["config"].startswith("naive"):
            n = DEFAULT_COUNT * (1 - hostile)
        elif c["config"] == f"mpgrade docker --jobs {os.cpu_count() or 1}":  # the one of the whole batch
            n = DEFAULT_COUNT
        else:
            n = DEFAULT_SUBSET
        seconds += c["wall"] / len(c["ids"]) * n
    return seconds


def plots(configs: list[dict], surf: dict, memory: dict) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plots (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(10, 4.5))
    ax.boxplot([[c["latencies"][s] for s in c["ids"] if s in c["latencies"]] for c in configs],
               orientation="horizontal", showfliers=True)
    ax.set_yticks(range(1, len(configs) + 1), [f"{c['config']} ({len(c['ids'])})" for c in configs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per whole-course submission")
    ax.set_title("Latency per configuration (whole course)")
    fig.tight_layout()
    fig.savefig(BENCH / "course_latency.png", dpi=100)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(10, 4.5))
    left = [0.0] * len(configs)
    for k, _ in PARTS:
        vals = [total_parts(c)[k] / max(1, len(c["parts"])) for c in configs]
        ax.barh(range(len(configs)), vals, left=left, label=k)
        left = [a + b for a, b in zip(left, vals, strict=True)]
    ax.set_yticks(range(len(configs)), [c["config"] for c in configs], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("core-seconds per submission")
    ax.set_title("Where the time goes (per submission)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(BENCH / "course_parts.png", dpi=100)
    plt.close(fig)

    if memory:
        fig, ax = plt.subplots(figsize=(10, 4))
        names = [c["config"] for c in configs] + ["docker: references", "docker: + a 16 MiB notebook"]
        vals = [c["rss"] / 2**20 for c in configs] + [memory["plain"]["rss"] / 2**20, memory["notebook"]["rss"] / 2**20]
        ax.barh(range(len(names)), vals, color="tab:purple")
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlabel("host process peak RSS (MiB)")
        ax.set_title("Memory of the host process")
        fig.tight_layout()
        fig.savefig(BENCH / "course_memory.png", dpi=100)
        plt.close(fig)
    chk, bnd = surf.get("check", {}), surf.get("boundary", {})
    if chk and bnd:
        fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(14, 4), gridspec_kw={"width_ratios": [5, 5, 1.5]})
        labels = ["one cold", "one warm", "all cold", "all warm", "watch"]
        vals = [chk["one_cold"], chk["one_warm"], chk["all_cold"], chk["all_warm"], chk["watch"]]
        a1.bar(labels, vals, color="tab:blue")
        a1.axhline(0.5, color="tab:red", ls="--", lw=1, label="goal: one warm 0.5 s")
        a1.axhline(3.0, color="tab:orange", ls="--", lw=1, label="goal: all warm 3 s")
        a1.set_ylabel("seconds")
        a1.set_title("mpgrade check")
        a1.legend(fontsize=8)
        keys = ["plain", "async", "method", "session_function", "session_once"]
        a2.bar(["plain", "async", "method", "session fn", "session once"], [bnd[k] * 1000 for k in keys],
               color="tab:green")
        a2.set_yscale("log")
        a2.set_ylabel("ms per call (log)")
        a2.set_title("the call boundary")
        rep = surf.get("report") or {}
        if rep:
            a3.bar(["report"], [rep["seconds"]], color="tab:brown")
            a3.axhline(10, color="tab:red", ls="--", lw=1, label="goal 10 s")
            a3.set_title(f"mpgrade report, {rep['count']}")
            a3.set_ylabel("seconds")
            a3.legend(fontsize=8)
        fig.tight_layout()
        fig.savefig(BENCH / "course_student.png", dpi=100)
        plt.close(fig)


# --------------------------------------------------------------------------- main

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=DEFAULT_COUNT,
                        help="whole-course submissions in the batch (default 30: make bench in under 20 "
                             "minutes on 2 cores; make bench-full runs 60)")
    parser.add_argument("--subset", type=int, default=DEFAULT_SUBSET,
                        help="submissions the --jobs 1 and local configurations grade (0: all)")
    parser.add_argument("--exercise", default="01_spawn", help="the exercise of `mpgrade check EX`")
    parser.add_argument("--out", type=Path, default=BENCH / "out" / "course")
    parser.add_argument("--seed", type=int, default=2121)
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker configurations")
    parser.add_argument("--drop-caches", action="store_true", help="cold checks after dropping the page cache (root)")
    parser.add_argument("--skip", action="append", default=[], choices=["surfaces", "memory", "subset"],
                        help="leave a part out (quick trials)")
    args = parser.parse_args()
    t0 = time.monotonic()
    course = assignment_mod.load(ROOT)
    cpus = os.cpu_count() or 1
    subs = args.out / "submissions"
    plan = make_batch(course, args.count, subs, args.seed)
    everyone = list(plan)
    part = subset(plan, args.subset)
    print(f"batch: {len(plan)} whole-course submissions; subset {len(part)}", flush=True)
    configs: list[dict] = []
    got: dict = {"memory": {}, "surf": {}, "image": 0.0, "goals": []}

    def save() -> None:
        """RESULTS.md after every step: a run cut short keeps what it measured."""
        got["goals"] = write(args, plan, configs, got["memory"], got["surf"], cpus, time.monotonic() - t0,
                             got["image"], part, course)

    def step(name: str, fn) -> None:
        print(f"-- {name}", flush=True)
        started = time.monotonic()
        configs.append(fn())
        print(f"   {time.monotonic() - started:.1f} s", flush=True)
        save()

    # The headline first (naive loop, Docker at --jobs CPUs, the student loop), then the rest.
    step("naive", lambda: measure_naive(course, subs, everyone, plan, args.out / "naive"))
    docker = None
    if not args.no_docker:
        from grader.sandbox.docker import DockerSandbox, connect

        client = connect()
        started = time.monotonic()
        tag = image.build_image(ROOT, offline=True, client=client, log=lambda m: None)
        got["image"] = time.monotonic() - started

        def docker(jobs: int, ids: list[str]) -> None:
            box = DockerSandbox(tag, client=client, warm=jobs)  # what `mpgrade grade --jobs N` does
            try:
                step(f"docker --jobs {jobs}", lambda: run_config(
                    f"mpgrade docker --jobs {jobs}", course, subs, ids, plan, box, jobs, args.out / f"docker-{jobs}",
                    True))
                if jobs == cpus and "memory" not in args.skip:
                    got["memory"] = notebook_memory(course, box, jobs, args.out)
            finally:
                box.close()

        docker(cpus, everyone)
    if "surfaces" not in args.skip:
        print("-- the student loop, the boundary, the report", flush=True)
        got["surf"] = {"check": surfaces.student_loop(args.exercise, caches=args.drop_caches),
                       "boundary": surfaces.boundary(), "report": surfaces.report()}
        save()
    if "subset" not in args.skip:
        if docker is not None:
            docker(1, part)
        for jobs in (cpus, 1):
            box = LocalSandbox(warm=jobs)
            try:
                step(f"local --jobs {jobs}", lambda jobs=jobs, box=box: run_config(
                    f"mpgrade local --jobs {jobs}", course, subs, part, plan, box, jobs, args.out / f"local-{jobs}",
                    False))
            finally:
                box.close()
    print("\n".join(f"{'met   ' if ok else 'MISSED'} {g}: {m}" for g, ok, m in got["goals"]))
    print(f"peak RSS of this process over the run: {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
