"""Benchmark: what a student and a test author wait for, one surface at a time.

    python bench/surfaces.py [--drop-caches] [--calls 40]       (part of bench/course.py)

1. The student loop: ``mpgrade check EX`` and ``mpgrade check`` (every exercise) on a copy
   of the course with the references as the student's files, cold (a fresh copy, nothing of
   it compiled; with ``--drop-caches`` also the kernel's page cache dropped first, root only)
   and warm (the best of three runs after that); and ``mpgrade check EX --watch``: the time
   from saving the file to the new result written.
2. The call boundary, through ``grader.harness.boundary.StudentRunner`` as the plugin makes it
   (pre-started children, a SparePool): a plain function call, an ``async def`` call, and in
   a session a method call on a live object and a function call, per call.
3. ``mpgrade report`` on a class of 300 result documents (bench/report.py builds them), run
   as an instructor runs it: the command in a new interpreter.

Each part returns plain numbers; bench/course.py puts them in RESULTS.md with its goals.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from grader import assignment as assignment_mod  # noqa: E402

PROBE = '''
import asyncio


class Counter:
    def __init__(self):
        self.n = 0

    def bump(self, k=1):
        self.n += k
        return self.n


def bump(k=1):
    return k


async def abump(k=1):
    await asyncio.sleep(0)
    return k
'''


def drop_caches() -> bool:
    """Drop the kernel's page cache (root only): the next start reads Python from disk."""
    try:
        os.sync()
        Path("/proc/sys/vm/drop_caches").write_text("3\n")
        return True
    except OSError:
        return False


def course_copy(dest: Path) -> Path:
    """The course as a student has it, with the references as the student's files."""
    course = assignment_mod.load(ROOT)
    shutil.copytree(ROOT / "exercises", dest / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "assignment.toml", dest)
    if (ROOT / "helpers").is_dir():
        shutil.copytree(ROOT / "helpers", dest / "helpers", ignore=shutil.ignore_patterns("__pycache__"))
    for ex in course.exercises:
        for f in ex.files:
            shutil.copy(ex.hidden_dir / f, dest / "exercises" / ex.id / f)
    return dest


def _check(folder: Path, args: list[str]) -> float:
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "grader", "check", *args], cwd=folder, capture_output=True,
                          timeout=600)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"mpgrade check {' '.join(args)} failed on the references:\n"
                           + proc.stdout.decode(errors="replace")[-2000:])
    return seconds


def student_loop(exercise: str, *, caches: bool = False, runs: int = 3) -> dict[str, float | bool]:
    """Cold and warm ``mpgrade check`` on one exercise and on all; the save-to-result time."""
    out: dict[str, float | bool] = {}
    with tempfile.TemporaryDirectory(prefix="mpgrade-bench-check-") as tmp:
        for key, args in (("one", [exercise]), ("all", [])):
            folder = course_copy(Path(tmp) / key)
            out["caches_dropped"] = drop_caches() if caches else False
            out[f"{key}_cold"] = _check(folder, args)
            out[f"{key}_warm"] = min(_check(folder, args) for _ in range(runs))
            doc = json.loads((folder / ".mpgrade" / "check.json").read_text())
            out[f"{key}_calls"] = sum((t.get("telemetry") or {}).get("wall_time", 0.0) for t in doc["tests"])
            out[f"{key}_tests"] = len(doc["tests"])
        out["watch"] = statistics.median(watch_times(Path(tmp) / "one", exercise, runs))
    return out


def watch_times(folder: Path, exercise: str, saves: int) -> list[float]:
    """Seconds from writing the exercise's file to ``mpgrade check --watch`` writing its result."""
    course = assignment_mod.load(folder)
    source = course.exercise(exercise).public_dir / course.exercise(exercise).files[0]
    result = folder / ".mpgrade" / "watch.json"
    result.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "grader", "check", exercise, "--watch", "--json", str(result)],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    times = []
    try:
        stamp = _wait_for(result, None, 120)
        for n in range(saves):
            time.sleep(0.5)  # the watcher is polling again
            text = source.read_text()
            started = time.monotonic()
            source.write_text(text + f"\n# saved {n}\n")
            stamp = _wait_for(result, stamp, 120)
            times.append(time.monotonic() - started)
    finally:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return times


def _wait_for(path: Path, old: int | None, timeout: float) -> int:
    """The file's mtime once it differs from ``old`` (polled every 5 ms)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            stamp = path.stat().st_mtime_ns
            if stamp != old:
                return stamp
        except FileNotFoundError:
            pass
        time.sleep(0.005)
    raise TimeoutError(f"{path} was not written within {timeout:g} s")


def boundary(calls: int = 40) -> dict[str, float]:
    """Median seconds per call of each kind, through the runner the plugin makes."""
    from grader.harness.boundary import StudentRunner
    from grader.harness.boundary.pool import SparePool

    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="mpgrade-bench-boundary-") as tmp:
        (Path(tmp) / "probe.py").write_text(PROBE)
        pool = SparePool()
        runner = StudentRunner(path=Path(tmp), start_method="fork", call_timeout=10, spares=pool)
        try:
            def timed(fn) -> list[float]:
                values = []
                for _ in range(calls):
                    started = time.perf_counter()
                    fn()
                    values.append(time.perf_counter() - started)
                return values

            probe = runner.module("probe")
            probe.bump(1)  # the first call has no spare yet
            out["plain"] = statistics.median(timed(lambda: probe.bump(1)))
            out["async"] = statistics.median(timed(lambda: probe.abump(1)))

            def one_object() -> None:
                with runner.session() as s:
                    s.module("probe").Counter().bump(1)

            out["session_once"] = statistics.median(timed(one_object))
            with runner.session() as s:
                mod = s.module("probe")
                obj = mod.Counter()
                obj.bump(1)  # the method is looked up once and remembered
                out["method"] = statistics.median(timed(lambda: obj.bump(1)))
                mod.bump(1)
                out["session_function"] = statistics.median(timed(lambda: mod.bump(1)))
        finally:
            pool.close()
    return out


def report(count: int = 300) -> dict[str, float | int]:
    """``mpgrade report`` on COUNT result documents with their submissions (similarity on)."""
    sys.path.insert(0, str(ROOT / "bench"))
    import report as report_bench  # bench/report.py: the class it builds

    course = assignment_mod.load(ROOT)
    with tempfile.TemporaryDirectory(prefix="mpgrade-bench-report-") as tmp:
        res, subs = report_bench.build(count, Path(tmp), course)
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "grader", "report", str(res), "--out", str(Path(tmp) / "site"),
                               "--submissions", str(subs), "--assignment", str(ROOT)],
                              capture_output=True, timeout=600)
        seconds = time.monotonic() - started
        if proc.returncode != 0:
            raise RuntimeError("mpgrade report failed:\n" + proc.stderr.decode(errors="replace")[-2000:])
        pages = sum(1 for _ in (Path(tmp) / "site").rglob("*.html"))
    return {"count": count, "seconds": seconds, "pages": pages}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--exercise", default="01_spawn")
    parser.add_argument("--calls", type=int, default=40, help="calls per kind in the boundary part")
    parser.add_argument("--drop-caches", action="store_true", help="cold checks after dropping the page cache (root)")
    parser.add_argument("--only", choices=["check", "boundary", "report"], action="append")
    args = parser.parse_args()
    parts = args.only or ["check", "boundary", "report"]
    out = {}
    if "check" in parts:
        out["check"] = student_loop(args.exercise, caches=args.drop_caches)
    if "boundary" in parts:
        out["boundary"] = boundary(args.calls)
    if "report" in parts:
        out["report"] = report()
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
