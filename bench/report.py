"""Benchmark: `mpgrade report` on a class of 300, end to end, as an instructor runs it.

    .venv/bin/python bench/report.py [--count 300] [--keep DIR]

Builds COUNT result documents from the real ones in tests/report_data/results (the bundled
samples and five graded submissions) with varied scores (every k-th passed test turned into a
failure with a message whose numbers differ), and a submission folder for each: per exercise
one of the real implementations (the reference, or Frank's, Judy's, Heidi's or Ivan's code)
with names renamed and a helper function of the student's own appended, so similarity has
300 distinct files per exercise to fingerprint and compare. Each document carries its folder's
real hash, so the command reads and compares every one of them through the grading intake.

Then it times ``mpgrade report RESULTS --out SITE --submissions SUBS`` (in-process, through
the click command) and prints the seconds, pages written and pairs flagged. The goal of issue
#20: under 10 s on this machine.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402

from grader import assignment as assignment_mod  # noqa: E402
from grader.cli.report import report_command  # noqa: E402
from grader.intake.submission import Submission  # noqa: E402
from grader.protocol import results  # noqa: E402

SEEDS = ROOT / "tests" / "report_data" / "results"
OWN = ROOT / "tests" / "report_data" / "submissions"
GOAL = 10.0


def implementations(course: assignment_mod.Assignment) -> dict[str, list[str]]:
    """Module file name -> the real implementations of it there are (reference first)."""
    out: dict[str, list[str]] = {}
    for ex in course.exercises:
        for name in ex.files:
            found = [(ex.hidden_dir / name).read_text()]
            found += [p.read_text() for p in sorted(OWN.glob(f"*/{name}")) if "grace" not in p.parent.name]
            out[name] = found
    return out


def own_helper(rng: random.Random, n: int) -> str:
    """A few lines of the student's own, different for everyone."""
    ops = ["+", "-", "*", "//", "%"]
    lines = [f"def _helper_{n}(values):", "    total = 0"]
    for i in range(rng.randint(3, 8)):
        lines.append(f"    for item in values[{i}::{rng.randint(2, 5)}]:")
        lines.append(f"        total = total {rng.choice(ops)} item {rng.choice(ops)} {rng.randint(1, 99)}")
        if rng.random() < 0.5:
            lines.append(f"        if total > {rng.randint(100, 9999)}:\n            total = {rng.randint(0, 9)}")
    lines.append("    return total")
    return "\n".join(lines) + "\n"


def varied(doc: dict, sub_id: str, rng: random.Random) -> dict:
    """A copy of a real document with some passed tests failed, the numbers all recomputed."""
    out = copy.deepcopy(doc)
    out["submission"]["id"] = sub_id
    fail_every = rng.choice([0, 2, 3, 5, 8, 13])
    for i, t in enumerate(out["tests"]):
        if fail_every and i % fail_every == 0 and t["outcome"] == "passed":
            t["outcome"], t["score"] = rng.choice(["failed", "failed", "timeout", "crashed"]), 0.0
            t["message"] = f"{t['id'].split('::')[-1]}: expected {i * 7}, got {rng.randint(0, 9999)}"
            t["hint"] = "compare with the example in the statement"
    for ex in out["exercises"]:
        mine = [t for t in out["tests"] if t["exercise"] == ex["name"]]
        if mine:
            ex["score"] = sum(t["score"] for t in mine)
            ex["tests_passed"] = sum(t["outcome"] == "passed" for t in mine)
    if out["status"] == "graded":
        out["score"] = sum(ex["score"] for ex in out["exercises"])
    out["duration"] = round(rng.uniform(5, 60), 2)
    return out


def build(count: int, where: Path, course: assignment_mod.Assignment) -> tuple[Path, Path]:
    rng = random.Random(20)
    seeds = [json.loads(p.read_text()) for p in sorted(SEEDS.glob("*.json"))]
    impls = implementations(course)
    res, subs = where / "results", where / "submissions"
    res.mkdir(parents=True)
    for n in range(count):
        sub_id = f"student-{n:03d}"
        folder = subs / sub_id
        folder.mkdir(parents=True)
        files = {}
        for name, options in impls.items():
            code = rng.choice(options).replace("def _", f"def _s{n}_").replace("(_", f"(_s{n}_")
            files[name] = (code + "\n\n" + own_helper(rng, n)).encode()
            (folder / name).write_bytes(files[name])
        doc = varied(rng.choice(seeds), sub_id, rng)
        doc["submission"].update(Submission(id=sub_id, source=str(folder), files=files).describe())
        results.validate(doc)
        (res / f"{sub_id}.json").write_text(json.dumps(doc))
    return res, subs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--keep", type=Path, default=None, help="write the site here and keep it")
    args = parser.parse_args()
    course = assignment_mod.load(ROOT)
    where = Path(tempfile.mkdtemp(prefix="mpgrade-bench-report-"))
    try:
        res, subs = build(args.count, where, course)
        site = args.keep or where / "site"
        start = time.perf_counter()
        result = CliRunner().invoke(report_command, [str(res), "--out", str(site), "--submissions", str(subs),
                                                     "--assignment", str(ROOT)])
        seconds = time.perf_counter() - start
        if result.exit_code != 0:
            print(result.output, file=sys.stderr)
            return 1
        print(result.output.strip())
        verdict = "met" if seconds < GOAL else "MISSED"
        print(f"report of {args.count} result documents: {seconds:.2f} s (goal < {GOAL:g} s: {verdict})")
        return 0 if seconds < GOAL else 1
    finally:
        shutil.rmtree(where, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
