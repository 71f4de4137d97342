"""Benchmark: mpgrade's batch grading against the naive way, on one synthetic batch, in one run.

    python bench/run.py [--count 60] [--exercise 01_spawn] [--out bench/out]      (make bench)

Generates COUNT submissions from the references, the mutant catalogue and the attack corpus
(60% correct, 25% wrong, 10% hanging, 5% hostile), then measures, on the same batch:

1. the naive baseline: a loop running pytest (with pytest-json-report and pytest-timeout) on
   the public + hidden suites for each submission, sequentially, unsandboxed;
2. mpgrade with the Docker sandbox, --jobs 1 and --jobs = CPUs;
3. mpgrade with the local sandbox, the same;
4. the container lifecycle against a suite with one empty test: ours (Docker SDK, one
   container per job) and the Otter-Grader way (a docker CLI process per step).

Hostile submissions (fork bomb, output flood) run only in the Docker configurations: running
them unsandboxed would be the very thing the grader exists to prevent. Each configuration's
numbers therefore also say how many submissions it graded; the Docker runs queue the hostile
ones last and also report the wall time of the naive loop's submissions alone, the
like-for-like comparison.

Writes bench/RESULTS.md (table, machine, date, goals) and bench/latency.png.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import assignment as assignment_mod  # noqa: E402
from grader import batch, grading, image, validate  # noqa: E402
from grader.protocol import wire  # noqa: E402
from grader.sandbox.local import LocalSandbox  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
import sections  # noqa: E402  (bench/sections.py: each benchmark's part of RESULTS.md)

# Mutants that hang (their calls run into the per-call limit) rather than answer wrongly.
HANGING = {"spawn_join_without_timeout", "spawn_import_time_demo", "pingpong_no_stop_message",
           "ring_join_in_start_loop", "prodcons_one_sentinel", "prodcons_join_before_drain",
           "locks_semaphore_never_released"}
HOSTILE = {"01_spawn": [("fork_bomb", "spawn.py")], "02_pingpong": [("memory_bomb", "pingpong.py")],
           "03_prodcons": [("stdout_flood", "prodcons.py")], "04_locks": [("fill_tmpfs", "locks.py")]}


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = (len(ordered) - 1) * p
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


class MemorySampler:
    """Peak of the machine's used memory while a configuration runs, above where it started."""

    def __init__(self) -> None:
        self.base = psutil.virtual_memory().used
        self.peak = self.base
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.wait(0.2):
            self.peak = max(self.peak, psutil.virtual_memory().used)

    def __enter__(self) -> MemorySampler:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def make_batch(course: assignment_mod.Assignment, ex_id: str, count: int, out: Path, seed: int) -> dict[str, str]:
    """COUNT submission folders; returns id -> kind (correct, wrong, hanging, hostile)."""
    rng = random.Random(seed)
    ex = course.exercise(ex_id)
    module = ex.files[0]
    reference = (ex.hidden_dir / module).read_bytes()
    mutants = [m for m in validate.load_mutants(course) if m.exercise == ex_id]
    wrong = [m for m in mutants if m.id not in HANGING] or mutants
    hanging = [m for m in mutants if m.id in HANGING] or mutants
    n_wrong, n_hang = round(count * 0.25), round(count * 0.10)
    n_hostile = max(1, round(count * 0.05))
    n_correct = count - n_wrong - n_hang - n_hostile
    kinds = ["correct"] * n_correct + ["wrong"] * n_wrong + ["hanging"] * n_hang + ["hostile"] * n_hostile
    rng.shuffle(kinds)
    shutil.rmtree(out, ignore_errors=True)
    plan = {}
    for i, kind in enumerate(kinds):
        sid = f"s{i:03d}-{kind}"
        folder = out / sid
        folder.mkdir(parents=True)
        if kind == "correct":
            source = reference
        elif kind == "wrong":
            source = rng.choice(wrong).source
        elif kind == "hanging":
            source = rng.choice(hanging).source
        else:
            name, mod = rng.choice(HOSTILE[ex_id])
            source = (ROOT / "tests" / "attacks" / name / "submission" / mod).read_bytes()
        (folder / module).write_bytes(source)
        plan[sid] = kind
    return plan


def run_naive(course: assignment_mod.Assignment, ex_id: str, subs: Path, plan: dict[str, str],
              work: Path) -> dict[str, float]:
    """What an instructor would script: pytest per submission, one after the other."""
    ex = course.exercise(ex_id)
    tests = [str(p) for p in ex.public_tests() + ex.hidden_tests()]
    latencies = {}
    for sid, kind in plan.items():
        if kind == "hostile":
            continue
        started = time.monotonic()
        subprocess.run(
            [sys.executable, "-m", "pytest", *tests, "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
             f"--mpgrade-submission={subs / sid}", "--json-report", f"--json-report-file={work / sid}.json",
             f"--timeout={course.limits.test_timeout}"],
            cwd=ROOT, capture_output=True, timeout=course.limits.submission_timeout,
        )
        latencies[sid] = time.monotonic() - started
    return latencies


def run_ours(course: assignment_mod.Assignment, ex_id: str, subs: Path, plan: dict[str, str], sandbox,
             jobs: int, out: Path, include_hostile: bool) -> tuple[dict[str, float], dict[str, dict], float]:
    """Latencies, documents, and the wall time until the last non-hostile submission was done.

    With hostile submissions included they are queued last, so that last figure is the wall
    time of the same work the naive loop does (it cannot run them); a hostile one starting
    while the last ordinary ones finish only makes it more pessimistic.
    """
    ordinary = [subs / sid for sid, kind in plan.items() if kind != "hostile"]
    hostile = [subs / sid for sid, kind in plan.items() if kind == "hostile"]
    paths = ordinary + (hostile if include_hostile else [])
    starts: dict[str, float] = {}
    latencies: dict[str, float] = {}
    ordinary_done: list[float] = []
    started = time.monotonic()

    def on_event(kind: str, sub, doc) -> None:
        if kind == "started":
            starts[sub.id] = time.monotonic()
        elif kind == "done":
            now = time.monotonic()
            latencies[sub.id] = now - starts[sub.id]
            if plan.get(sub.id) != "hostile":
                ordinary_done.append(now - started)

    result = batch.run(paths, out, course, sandbox, jobs=jobs, force=True, on_event=on_event,
                       options=grading.Options(exercises=(ex_id,) if ex_id else ()))
    return latencies, result.documents, max(ordinary_done, default=0.0)


def lifecycle_ours(course_dir: Path, client, tag: str, runs: int, warm: int) -> list[float]:
    """Per-job time outside the grading itself: wall minus the harness's own duration (so the
    container's create, start, input, collect and remove, plus the interpreter's start-up), for
    jobs one after the other. With ``warm=1`` (what `mpgrade grade --jobs 1` does), the next
    container starts while a job runs; an empty suite gives it the least time to get ready."""
    from grader.intake.submission import Submission
    from grader.sandbox.docker import DockerSandbox

    course = assignment_mod.load(course_dir)
    box = DockerSandbox(tag, client=client, warm=warm)
    sub = Submission(id="empty", source="bench", files={course.exercises[0].files[0]: b"x = 1\n"})
    overheads = []
    try:
        for _ in range(runs + 1):
            started = time.monotonic()
            doc = grading.grade(box, course, sub)
            wall = time.monotonic() - started
            overheads.append(wall - doc["duration"])
    finally:
        box.close()
    return overheads[1:]  # the first job cannot find a warm container: nothing was graded before


def lifecycle_otter(course_dir: Path, tag: str, runs: int) -> list[float]:
    """The same job done the Otter-Grader way: create, cp in, start, wait, logs, cp out, rm."""
    from grader.intake.submission import Submission

    course = assignment_mod.load(course_dir)
    sub = Submission(id="empty", source="bench", files={course.exercises[0].files[0]: b"x = 1\n"})
    overheads = []
    for _ in range(runs):
        nonce = os.urandom(8).hex()
        job = grading.make_job(course, sub, grading.Options(), nonce)
        with tempfile.TemporaryDirectory() as tmp:
            jobdir = Path(tmp) / "job"
            jobdir.mkdir()
            for rel, data in job.files.items():
                (jobdir / rel).parent.mkdir(parents=True, exist_ok=True)
                (jobdir / rel).write_bytes(data)
            started = time.monotonic()
            cid = subprocess.run(
                ["docker", "create", "--network", "none", "-w", "/job", "-e", f"{wire.NONCE_ENV}={nonce}",
                 tag, "/opt/mpgrade/bin/python", "-m", "grader.harness"],
                capture_output=True, text=True, check=True).stdout.strip()
            try:
                subprocess.run(["docker", "cp", f"{jobdir}/.", f"{cid}:/job"], check=True, capture_output=True)
                subprocess.run(["docker", "start", cid], check=True, capture_output=True)
                subprocess.run(["docker", "wait", cid], check=True, capture_output=True)
                logs = subprocess.run(["docker", "logs", cid], capture_output=True).stdout
                subprocess.run(["docker", "cp", f"{cid}:/job/job.json", str(Path(tmp) / "out.json")],
                               check=True, capture_output=True)
            finally:
                subprocess.run(["docker", "rm", "-f", cid], capture_output=True)
            wall = time.monotonic() - started
        doc = json.loads(wire.unframe(logs, nonce))
        overheads.append(wall - doc["duration"])
    return overheads


def empty_course(dest: Path) -> Path:
    """An assignment with one exercise and one test that never calls student code."""
    (dest / "exercises" / "00_empty").mkdir(parents=True)
    (dest / "assignment.toml").write_text(
        '[assignment]\nname = "empty"\nversion = "1"\n\n[[exercise]]\nid = "00_empty"\n'
        'files = ["empty.py"]\npoints = 1\n')
    (dest / "exercises" / "00_empty" / "test_public.py").write_text("def test_nothing():\n    pass\n")
    return dest


def time_check(course_dir: Path, ex_id: str) -> float:
    """Wall time of `mpgrade check EX` on a warm machine (best of three), with the reference."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "course"
        shutil.copytree(course_dir / "exercises", copy / "exercises")
        shutil.copy(course_dir / "assignment.toml", copy)
        ex = assignment_mod.load(course_dir).exercise(ex_id)
        for f in ex.files:
            shutil.copy(ex.hidden_dir / f, copy / "exercises" / ex_id / f)
        times = []
        for _ in range(3):
            started = time.monotonic()
            subprocess.run([sys.executable, "-m", "grader", "check", ex_id], cwd=copy, capture_output=True)
            times.append(time.monotonic() - started)
    return min(times)


def summarize(name: str, latencies: dict[str, float], wall: float, memory: int, graded: int) -> dict:
    values = list(latencies.values())
    return {"config": name, "graded": graded, "wall": wall, "per_minute": graded / wall * 60 if wall else 0,
            "median": statistics.median(values) if values else float("nan"),
            "p95": percentile(values, 0.95), "memory": memory, "latencies": latencies}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--exercise", default="01_spawn", help="exercise whose suites are run")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--seed", type=int, default=2026)
    parser.add_argument("--lifecycle-runs", type=int, default=10)
    parser.add_argument("--no-docker", action="store_true", help="skip the Docker configurations")
    args = parser.parse_args()
    run_started = time.monotonic()
    course = assignment_mod.load(ROOT)
    cpus = os.cpu_count() or 1
    subs = args.out / "submissions"
    plan = make_batch(course, args.exercise, args.count, subs, args.seed)
    print(f"batch: {len(plan)} submissions of {args.exercise}: "
          + ", ".join(f"{k} {sum(v == k for v in plan.values())}" for k in ("correct", "wrong", "hanging", "hostile")))
    configs = []

    def measure(name: str, fn, graded_count) -> None:
        print(f"-- {name}", flush=True)
        with MemorySampler() as mem:
            started = time.monotonic()
            latencies, docs, *ordinary_wall = fn()
            wall = time.monotonic() - started
        configs.append(summarize(name, latencies, wall, mem.peak - mem.base, graded_count))
        if docs:
            configs[-1]["docs"] = docs
        if ordinary_wall:
            configs[-1]["ordinary_wall"] = ordinary_wall[0]
        print(f"   {wall:.1f} s", flush=True)

    naive_work = args.out / "naive"
    naive_work.mkdir(parents=True, exist_ok=True)
    unsandboxed = sum(k != "hostile" for k in plan.values())
    measure("naive pytest loop (sequential, unsandboxed)",
            lambda: (run_naive(course, args.exercise, subs, plan, naive_work), {}), unsandboxed)
    client = tag = None
    image_build = 0.0
    if not args.no_docker:
        from grader.sandbox.docker import DockerSandbox, connect

        client = connect()
        started = time.monotonic()
        print("-- the grading image (built if missing: debootstrap base, wheels, docker build)", flush=True)
        tag = image.build_image(ROOT, offline=True, client=client, log=lambda m: None)
        image_build = time.monotonic() - started
        print(f"   {image_build:.1f} s", flush=True)
        for jobs in (1, cpus):
            box = DockerSandbox(tag, client=client, warm=jobs)  # what `mpgrade grade --jobs N` does
            measure(f"mpgrade docker --jobs {jobs}", lambda jobs=jobs, box=box: run_ours(
                course, args.exercise, subs, plan, box, jobs, args.out / f"docker-{jobs}", True), len(plan))
            box.close()
    for jobs in (1, cpus):
        box = LocalSandbox(warm=jobs)  # what `mpgrade grade --sandbox local --jobs N` does
        measure(f"mpgrade local --jobs {jobs}", lambda jobs=jobs, box=box: run_ours(
            course, args.exercise, subs, plan, box, jobs, args.out / f"local-{jobs}", False), unsandboxed)
        box.close()

    lifecycle = {}
    if client is not None:
        with tempfile.TemporaryDirectory() as tmp:
            empty = empty_course(Path(tmp))
            lifecycle["ours"] = lifecycle_ours(empty, client, tag, args.lifecycle_runs, warm=1)
            lifecycle["cold"] = lifecycle_ours(empty, client, tag, args.lifecycle_runs, warm=0)
            lifecycle["otter"] = lifecycle_otter(empty, tag, args.lifecycle_runs)
    check_time = time_check(ROOT, args.exercise)
    write_results(args, plan, configs, lifecycle, check_time, cpus, time.monotonic() - run_started,
                  image_build)
    return 0


def write_results(args, plan: dict[str, str], configs: list[dict], lifecycle: dict, check_time: float,
                  cpus: int, total: float, image_build: float = 0.0) -> None:
    naive = configs[0]
    docker_par = next((c for c in configs if c["config"] == f"mpgrade docker --jobs {cpus}"), None)
    floor_source = docker_par or configs[-1]
    call_seconds = sum((t.get("telemetry") or {}).get("wall_time", 0.0)
                       for d in floor_source.get("docs", {}).values() for t in d["tests"])
    floor = call_seconds / cpus
    hanging = [v for sid, v in floor_source["latencies"].items() if plan.get(sid) == "hanging"]
    lines = [
        "# Benchmark results", "",
        "## One exercise (`01_spawn`): `make bench-exercise`", "",
        f"Run on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC with `make bench-exercise` "
        f"(`python bench/run.py --count {args.count} --exercise {args.exercise}`); "
        f"the whole run took {total / 60:.1f} minutes ({image_build:.0f} s of it making sure the grading "
        "image exists: the first run on a machine builds it).", "",
        f"Machine: {cpus} CPUs, {psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.platform()}, "
        f"Python {platform.python_version()}.", "",
        f"Batch: {len(plan)} submissions of `{args.exercise}` (public + hidden suites): "
        + ", ".join(f"{sum(v == k for v in plan.values())} {k}" for k in ("correct", "wrong", "hanging", "hostile"))
        + ". Hostile ones run only in the Docker configurations.", "",
        "| configuration | graded | wall (s) | per minute | median (s) | p95 (s) | peak memory (MiB) | wall vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    unsandboxed = sum(k != "hostile" for k in plan.values())
    for c in configs:
        lines.append(f"| {c['config']} | {c['graded']} | {c['wall']:.1f} | {c['per_minute']:.1f} | "
                     f"{c['median']:.2f} | {c['p95']:.2f} | {c['memory'] / 2**20:.0f} | "
                     f"{c['wall'] / naive['wall']:.2f}x |")
        if c["graded"] > unsandboxed and c.get("ordinary_wall"):
            lines.append(f"| ... of which the naive loop's {unsandboxed} (hostile ones queued last) | "
                         f"{unsandboxed} | {c['ordinary_wall']:.1f} | "
                         f"{unsandboxed / c['ordinary_wall'] * 60:.1f} | | | | "
                         f"{c['ordinary_wall'] / naive['wall']:.2f}x |")
    lines += ["", f"Floor (the test calls' own wall time / {cpus} cores, from `{floor_source['config']}`): "
              f"{floor:.1f} s; that configuration took {floor_source['wall'] / floor:.2f}x the floor."
              if floor else "Floor: not measured.", ""]
    goals = []
    if docker_par:
        same = docker_par.get("ordinary_wall") or docker_par["wall"]
        goals.append(("Docker --jobs CPUs wall <= naive sequential wall, same submissions", same <= naive["wall"],
                      f"{same:.1f} s vs {naive['wall']:.1f} s ({unsandboxed} submissions; with the "
                      f"{len(plan) - unsandboxed} hostile ones the naive loop cannot run: "
                      f"{docker_par['wall']:.1f} s)"))
        goals.append(("within 1.5x of the floor", docker_par["wall"] <= 1.5 * floor if floor else False,
                      f"{docker_par['wall'] / floor:.2f}x" if floor else "no floor"))
    if lifecycle:
        ours_med, otter_med = statistics.median(lifecycle["ours"]), statistics.median(lifecycle["otter"])
        lines += ["| container lifecycle (empty suite) | median (s) | p95 (s) |", "|---|---:|---:|",
                  f"| mpgrade (Docker SDK, bind mount, logs; warm container, the default) | {ours_med:.3f} | "
                  f"{percentile(lifecycle['ours'], .95):.3f} |",
                  f"| mpgrade with `--warm 0` (container created and started per job) | "
                  f"{statistics.median(lifecycle['cold']):.3f} | {percentile(lifecycle['cold'], .95):.3f} |",
                  f"| Otter-style (docker CLI per step, cp in/out) | {otter_med:.3f} | "
                  f"{percentile(lifecycle['otter'], .95):.3f} |", ""]
        goals.append(("lifecycle overhead median <= 0.3 s", ours_med <= 0.3, f"{ours_med:.3f} s"))
        goals.append(("lifecycle below the Otter-style CLI", ours_med < otter_med,
                      f"{ours_med:.3f} s vs {otter_med:.3f} s"))
    if hanging:
        limit = assignment_mod.load(ROOT).limits.submission_timeout
        goals.append(("a hanging submission costs its per-call limits, not the submission limit",
                      max(hanging) < limit, f"slowest hanging submission {max(hanging):.1f} s (limit {limit:g} s)"))
    goals.append(("`make check` on one exercise under 2 s (warm)", check_time < 2.0, f"{check_time:.2f} s"))
    goals.append(("the whole run under 15 minutes", total < 15 * 60,
                  f"{total / 60:.1f} min (bench/run.py with the image build; the virtual environment is "
                  "`make bench`'s, before it)"))
    lines += ["| goal | met | measured |", "|---|---|---|"]
    lines += [f"| {g} | {'yes' if ok else '**no**'} | {m} |" for g, ok, m in goals]
    lines += ["", "![per-submission latency](latency.png)", ""]
    notes = ROOT / "bench" / "NOTES.md"
    if notes.exists():
        lines += [notes.read_text()]
    lines[2:2] = sections.kept()  # the other benchmarks' sections (bench/course.py...) stay
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines) + "\n")
    plot(configs, ROOT / "bench" / "latency.png")
    print("\n".join(lines))


def plot(configs: list[dict], path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot (pip install matplotlib)")
        return
    fig, ax = plt.subplots(figsize=(10, 5))
    data = [list(c["latencies"].values()) for c in configs]
    ax.boxplot(data, orientation="horizontal", showfliers=True)
    ax.set_yticks(range(1, len(configs) + 1), [c["config"] for c in configs], fontsize=8)
    ax.set_xlabel("seconds per submission")
    ax.set_title("Per-submission latency")
    fig.tight_layout()
    fig.savefig(path, dpi=100)


if __name__ == "__main__":
    sys.exit(main())
