"""Deadline simulation: how long students wait for the service when a whole class submits at once.

    python bench/deadline.py [--big 80] [--small 20] [--grade-seconds 0.4]      (make bench-deadline)

What it measures. Two courses submit through the HTTP API (`mpgrade serve`'s app, in-process
through FastAPI's TestClient, every request a real POST with a course token): course ``big``
posts all its students' submissions in a two-second burst, course ``small`` starts posting a
second later, spread over three seconds (so in arrival order it is behind most of the burst).
A fifth of the students resubmit once or twice during the run and two of ``big``'s resubmit
every 1.5 s for 20 s (a newer submission replaces the same student's queued one). The same
seeded scenario is replayed against four configurations:

1. the embedded worker (``mpgrade serve`` without ``--broker``, one grading thread);
2. one Celery worker (``mpgrade serve --broker`` with a real redis-server on loopback);
3. two Celery workers;
4. one Celery worker with every job handed to the broker at once (``--dispatch-ahead`` larger
   than the class): the broker's first-in, first-out order, as the service had before its fair
   share reached broker mode. The baseline the fair share is measured against.

Grading is a stand-in: a grader (``jobs.Grader`` with ``grade`` replaced) that sleeps
``--grade-seconds`` and returns a valid result document for the job's files, in the API's
process (embedded) or in each Celery worker's (started by this script, ``worker`` sub-command).
So the run measures the service (queueing, fair share, dispatch, result collection), not the
sandbox (bench/run.py measures that), and takes a few minutes. The stand-in sleeps rather than
computes: on this machine's 2 cores, two workers of a CPU-bound grading would gain less than
two sleeping ones.

For each configuration: throughput (jobs graded per minute, first POST to last result), the
queue wait (POST received to grading started) p50/p95 per course and by the queue position
the POST's answer told the student, how many submissions were superseded, and a plot of wait
against position (bench/deadline.png). Writes its section of bench/RESULTS.md ("Deadline
simulation", the marked section ``deadline``: see bench/sections.py), leaving the rest as it is.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import assignment as assignment_mod  # noqa: E402
from grader.protocol import results  # noqa: E402
from grader.service import jobs  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402  (bench/sections.py: each benchmark's part of RESULTS.md)

SECTION = "## Deadline simulation"
POSITION_BUCKETS = ((1, 20), (21, 40), (41, 60), (61, 80), (81, 10**9))
HAMMERS = ("big-000", "big-001")  # the two students who resubmit every 1.5 s


class StandInGrader(jobs.Grader):
    """Grades in ``seconds`` of sleep: a valid, graded result document for the job's files."""

    seconds: float = 0.4

    def grade(self, payload: Any) -> dict[str, Any] | None:
        started = results.now()
        time.sleep(self.seconds)
        assignment = self.assignments[payload["assignment"]["name"]]
        return results.validate(results.error_document(
            assignment, jobs.submission_of(payload).describe(), status="graded",
            message="bench: a stand-in grading", sandbox="local", start_method=assignment.start_method,
            started_at=started))


def stand_in(assignment: assignment_mod.Assignment, seconds: float) -> StandInGrader:
    from grader.sandbox.local import LocalSandbox

    grader = StandInGrader({assignment.name: assignment}, LocalSandbox())
    grader.seconds = seconds
    return grader


# --------------------------------------------------------------------------- the scenario


@dataclass(frozen=True)
class Post:
    at: float  # seconds after the start
    course: str
    student: str
    version: int  # 0: first submission; n: the n-th resubmission (other files)


def scenario(big: int, small: int, seed: int = 22) -> list[Post]:
    """The deadline, the same for every configuration (seeded)."""
    rng = random.Random(seed)
    posts = [Post(rng.uniform(0, 2), "big", f"big-{i:03d}", 0) for i in range(big)]
    posts += [Post(rng.uniform(1, 4), "small", f"small-{i:03d}", 0) for i in range(small)]
    firsts = list(posts)
    for first in firsts:
        if rng.random() < 0.2:  # fixes something and submits again, once or twice
            for n in range(1, rng.choice((1, 2)) + 1):
                posts.append(Post(first.at + rng.uniform(2, 15) * n, first.course, first.student, n))
    for hammer in HAMMERS:  # resubmits every 1.5 s for 20 s
        posts += [Post(1.5 * k, "big", hammer, 100 + k) for k in range(1, 14)]
    return sorted(posts, key=lambda p: p.at)


def source(post: Post) -> bytes:
    return f"# {post.student} version {post.version}\nimport multiprocessing\n".encode()


# --------------------------------------------------------------------------- one run


@dataclass
class Outcome:
    name: str
    jobs: list[dict[str, Any]] = field(default_factory=list)  # graded: course, position, wait, ...
    superseded: int = 0
    failed: int = 0
    wall: float = 0.0
    note: str = ""


def _stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def replay(name: str, config_kwargs: dict[str, Any], posts: list[Post], assignment: assignment_mod.Assignment,
           work: Path, seconds: float, embedded: bool) -> Outcome:
    """Post the scenario to a fresh API, wait until every job is finished, read the numbers."""
    from fastapi.testclient import TestClient

    from grader.service import auth
    from grader.service.api import ServiceConfig, create_app

    folder = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    tokens_file = folder / "tokens.json"
    heads = {c: {"Authorization": f"Bearer {auth.add_token(tokens_file, c, [assignment.name])}"}
             for c in ("big", "small")}
    config = ServiceConfig(assignments={assignment.name: assignment}, tokens_file=tokens_file,
                           database=folder / "service.db", min_free=0, **config_kwargs)
    app = create_app(config)
    if embedded:  # the embedded worker grades with the stand-in (the Grader is its seam)
        app.state.dispatcher.grader = stand_in(assignment, seconds)
    posted: list[tuple[str, Post, int | None]] = []
    out = Outcome(name)
    file_name = assignment.submitted_files[0]
    with TestClient(app) as client:
        start = time.monotonic()
        for post in posts:
            time.sleep(max(0.0, start + post.at - time.monotonic()))
            response = client.post(f"/v1/assignments/{assignment.name}/submissions", headers=heads[post.course],
                                   data={"student": post.student}, files=[("file", (file_name, source(post)))])
            if response.status_code not in (200, 202):
                raise RuntimeError(f"{name}: POST answered {response.status_code}: {response.text[:300]}")
            body = response.json()
            posted.append((body["job_id"], post, (body.get("queue") or {}).get("position")))
        store = config.store
        deadline = time.monotonic() + 900
        while any(store.job(job_id).status not in ("done", "failed") for job_id, _, _ in posted):
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name}: jobs still unfinished after 15 minutes")
            time.sleep(0.25)
        out.wall = time.monotonic() - start
        for job_id, post, position in posted:
            job = store.job(job_id)
            if job.status == "failed":
                if "superseded" in (job.message or ""):
                    out.superseded += 1
                else:
                    out.failed += 1
                continue
            doc = store.result(job_id)
            received = _stamp(job.created_at)
            out.jobs.append({"course": post.course, "student": post.student, "position": position or 1,
                             "again": bool(post.version),
                             "wait": _stamp(doc["started_at"]) - received,
                             "total": _stamp(doc["finished_at"]) - received,
                             "received": received, "finished": _stamp(doc["finished_at"])})
    return out


# --------------------------------------------------------------------------- Celery


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Redis:
    """A throwaway redis-server on loopback, no persistence."""

    def __init__(self, folder: Path) -> None:
        exe = shutil.which("redis-server")
        if exe is None:
            raise FileNotFoundError("redis-server is not installed (apt-get install redis-server)")
        self.port = free_port()
        self.proc = subprocess.Popen([exe, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                                      "--appendonly", "no", "--dir", str(folder)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import redis

        r = redis.Redis(host="127.0.0.1", port=self.port)
        for _ in range(150):
            try:
                if r.ping():
                    break
            except Exception:
                time.sleep(0.1)
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()

    def close(self) -> None:
        self.proc.kill()
        self.proc.wait(timeout=10)


def start_workers(broker: str, count: int, seconds: float, folder: Path) -> list[subprocess.Popen]:
    procs = []
    for i in range(count):
        log = folder / f"worker-{i}.log"
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "worker", "--broker", broker,
                                 "--grade-seconds", str(seconds), "--name", f"bench-{i}@deadline"],
                                stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        deadline = time.monotonic() + 120
        while "ready" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"worker {i} did not start: {log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.2)
    return procs


def stop_workers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        proc.kill()
    for proc in procs:
        proc.wait(timeout=30)


def worker_main(broker: str, seconds: float, name: str) -> None:
    """A Celery worker (one at a time, as `mpgrade worker --concurrency 1`) grading with the stand-in."""
    from grader.service.tasks import make_celery

    assignment = assignment_mod.load(ROOT)
    app = make_celery(broker, grader=stand_in(assignment, seconds))
    app.worker_main(["worker", "--pool=threads", "--concurrency=1", "--loglevel=INFO", "--without-gossip",
                     "--without-mingle", "--without-heartbeat", "--queues=mpgrade", f"--hostname={name}"])


# --------------------------------------------------------------------------- numbers and the report


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def throughput(out: Outcome) -> float:
    """Jobs graded per minute while the burst's backlog lasted: from the first POST until every
    first submission (not a resubmission) was graded, so the rate of the resubmissions that
    trickle in afterwards does not dilute it."""
    firsts = [j for j in out.jobs if not j["again"]]
    if not firsts:
        return 0.0
    t0, t1 = min(j["received"] for j in out.jobs), max(j["finished"] for j in firsts)
    done = sum(1 for j in out.jobs if j["finished"] <= t1)
    return 60.0 * done / (t1 - t0) if t1 > t0 else 0.0


def table(outcomes: list[Outcome]) -> list[str]:
    lines = ["| configuration | graded | superseded | wall (s) | graded per minute (burst) | big wait p50 / p95 (s) "
             "| small wait p50 / p95 (s) | small's last started (s) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for out in outcomes:
        cells = []
        for course in ("big", "small"):
            waits = [j["wait"] for j in out.jobs if j["course"] == course]
            cells.append(f"{pct(waits, 50):.1f} / {pct(waits, 95):.1f}")
        small_max = max((j["wait"] for j in out.jobs if j["course"] == "small"), default=float("nan"))
        lines.append(f"| {out.name} | {len(out.jobs)} | {out.superseded} | {out.wall:.1f} | "
                     f"{throughput(out):.1f} | {cells[0]} | {cells[1]} | {small_max:.1f} |")
    return lines


def position_table(outcomes: list[Outcome]) -> list[str]:
    heads = [f"{lo}-{hi}" if hi < 10**9 else f"{lo}+" for lo, hi in POSITION_BUCKETS]
    lines = ["| configuration | " + " | ".join(f"position {h}: p50 / p95 (s)" for h in heads) + " |",
             "|---|" + "---:|" * len(heads)]
    for out in outcomes:
        cells = []
        for lo, hi in POSITION_BUCKETS:
            waits = [j["wait"] for j in out.jobs if lo <= j["position"] <= hi]
            cells.append(f"{pct(waits, 50):.1f} / {pct(waits, 95):.1f} (n={len(waits)})" if waits else "-")
        lines.append(f"| {out.name} | " + " | ".join(cells) + " |")
    return lines


def plot(outcomes: list[Outcome], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, axes = plt.subplots(1, len(outcomes), figsize=(4.2 * len(outcomes), 3.8), sharey=True, squeeze=False)
    for ax, out in zip(axes[0], outcomes, strict=True):
        for course, colour in (("big", "tab:blue"), ("small", "tab:orange")):
            pts = [(j["position"], j["wait"]) for j in out.jobs if j["course"] == course]
            if pts:
                ax.scatter(*zip(*pts, strict=True), s=10, alpha=0.7, color=colour, label=f"course {course}")
        ax.set_title(out.name, fontsize=9)
        ax.set_xlabel("queue position when submitted")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("queue wait (s)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def findings(outcomes: list[Outcome], posts: list[Post]) -> list[str]:
    """The comparisons the tables hold, in words, with this run's numbers."""
    by = {out.name: out for out in outcomes}

    def last_small(out: Outcome) -> float:
        return max((j["wait"] for j in out.jobs if j["course"] == "small"), default=float("nan"))

    def waits(out: Outcome, course: str) -> list[float]:
        return [j["wait"] for j in out.jobs if j["course"] == course]

    out = []
    fair, fifo = by.get("1 Celery worker"), by.get("1 Celery worker, broker order (no fair share)")
    embedded, two = by.get("embedded worker (1 thread)"), by.get("2 Celery workers")
    if fair and fifo:
        out.append(
            f"- **Fair share with Celery.** With one worker, course small's last submission started "
            f"{last_small(fair):.1f} s after it arrived (median wait {pct(waits(fair, 'small'), 50):.1f} s); "
            f"in the broker's arrival order it waited {last_small(fifo):.1f} s (median "
            f"{pct(waits(fifo, 'small'), 50):.1f} s), behind the whole burst. Fair share is an equal share, "
            f"not a priority: small's own {sum(1 for p in posts if p.course == 'small' and not p.version)} first "
            f"submissions in 3 s come faster than half a worker grades them, so they queue among themselves. Course big pays for it: median {pct(waits(fair, 'big'), 50):.1f} s "
            f"instead of {pct(waits(fifo, 'big'), 50):.1f} s.")
    if fair and embedded:
        out.append(
            f"- **Broker mode shares like the embedded worker.** One Celery worker and the embedded worker "
            f"give the same waits within noise (small p95 {pct(waits(fair, 'small'), 95):.1f} s and "
            f"{pct(waits(embedded, 'small'), 95):.1f} s; {throughput(fair):.0f} and "
            f"{throughput(embedded):.0f} graded per minute): handing Redis one job at a time as the worker "
            f"takes one costs no throughput.")
    if fair and two:
        out.append(
            f"- **Two workers.** {throughput(two):.0f} graded per minute against {throughput(fair):.0f} "
            f"({throughput(two) / throughput(fair):.2f}x) while the burst lasted; the stand-in sleeps, so on "
            f"these 2 cores a CPU-bound grading would gain less. The fair share holds with both workers "
            f"taking from the broker (small p95 {pct(waits(two, 'small'), 95):.1f} s).")
    hammer = [(o.name, sum(1 for j in o.jobs if j["student"] in HAMMERS)) for o in outcomes]
    out.append(
        "- **Resubmissions.** A newer submission replaces the same student's queued one: "
        + ", ".join(f"{n} superseded ({name})" for name, n in ((o.name, o.superseded) for o in outcomes))
        + f". The two students who resubmit every 1.5 s posted {sum(1 for p in posts if p.student in HAMMERS)} "
        "times and held one place each: "
        + ", ".join(f"{n} of their POSTs graded ({name})" for name, n in hammer) + ".")
    out.append(
        "- **Position is not a promise.** The wait grows with the position for the course that burst; "
        "small's submissions, told positions behind the burst, start far sooner than their position "
        "(the plot's orange points): `queue.position` counts every job queued before, and fair share "
        "takes another course's job sooner.")
    return out


def report(outcomes: list[Outcome], args: argparse.Namespace, posts: list[Post], took: float,
           plotted: bool, load: float) -> str:
    resubmissions = sum(1 for p in posts if p.version)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        SECTION, "",
        f"Run on {when} with `make bench-deadline` (`python bench/deadline.py --big {args.big} --small "
        f"{args.small} --grade-seconds {args.grade_seconds}`); the whole run took {took / 60:.1f} minutes. "
        f"Machine: {os.cpu_count()} cores, shared with other work while it ran (load average {load:.1f} at the "
        f"start), Python {platform.python_version()}; the API, Redis and the workers all ran on it.",
        "",
        f"The scenario (bench/deadline.py's docstring): course big posts {args.big} submissions in a 2 s burst, "
        f"course small {args.small} spread over 1-4 s; {resubmissions} resubmissions on top (a fifth of the "
        "students once or twice, two of big's every 1.5 s for 20 s), "
        f"{len(posts)} POSTs in all. Grading is a stand-in that sleeps {args.grade_seconds} s and returns a valid "
        "document, so this measures the service's queueing and dispatch, not the sandbox; with a CPU-bound "
        "grading, two workers on these 2 cores would gain less than the stand-in's two. Wait is from the "
        "POST's arrival to the start of its grading; position is what the POST's answer said "
        "(`queue.position`).",
        "",
        *table(outcomes), "",
        "Queue wait by the position the student was told (both courses):", "",
        *position_table(outcomes), "",
    ]
    for out in outcomes:
        if out.note:
            lines.append(f"- {out.name}: {out.note}")
    if plotted:
        lines += ["", "![queue wait against queue position](deadline.png)", ""]
    lines += ["What it shows:", "", *findings(outcomes, posts), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    w = sub.add_parser("worker", help="(used by the simulation) a Celery worker grading with the stand-in")
    w.add_argument("--broker", required=True)
    w.add_argument("--grade-seconds", type=float, default=0.4)
    w.add_argument("--name", default="bench@deadline")
    parser.add_argument("--big", type=int, default=80, help="students of the course that bursts (default 80)")
    parser.add_argument("--small", type=int, default=20, help="students of the other course (default 20)")
    parser.add_argument("--grade-seconds", type=float, default=0.4, help="the stand-in grading's time (0.4)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "deadline")
    parser.add_argument("--results", type=Path, default=ROOT / "bench" / "RESULTS.md")
    args = parser.parse_args(argv)
    if args.command == "worker":
        worker_main(args.broker, args.grade_seconds, args.name)
        return 0

    started, load = time.monotonic(), os.getloadavg()[0]
    args.out.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="deadline-", dir=args.out))
    assignment = assignment_mod.load(ROOT)
    posts = scenario(args.big, args.small)
    print(f"{len(posts)} POSTs, {args.grade_seconds} s per grading", flush=True)
    outcomes = [replay("embedded worker (1 thread)", {"sandbox": stand_in(assignment, args.grade_seconds).sandbox},
                       posts, assignment, work, args.grade_seconds, embedded=True)]
    print(f"  {outcomes[-1].name}: {outcomes[-1].wall:.1f} s", flush=True)
    try:
        redis = Redis(work)
    except FileNotFoundError as exc:
        print(f"  Celery configurations skipped: {exc}", flush=True)
        redis = None
    if redis is not None:
        celery = (("1 Celery worker", 1, 4), ("2 Celery workers", 2, 4),
                  ("1 Celery worker, broker order (no fair share)", 1, 100000))
        try:
            for name, count, ahead in celery:
                redis.flush()
                procs = start_workers(redis.url, count, args.grade_seconds, work)
                try:
                    outcomes.append(replay(name, {"broker": redis.url, "poll_interval": 0.2,
                                                  "dispatch_ahead": ahead},
                                           posts, assignment, work, args.grade_seconds, embedded=False))
                finally:
                    stop_workers(procs)
                outcomes[-1].note = f"--dispatch-ahead {ahead}"
                print(f"  {outcomes[-1].name}: {outcomes[-1].wall:.1f} s", flush=True)
        finally:
            redis.close()
    plotted = plot(outcomes, args.results.parent / "deadline.png")
    text = report(outcomes, args, posts, time.monotonic() - started, plotted, load)
    sections.write("deadline", text, args.results)
    print(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
