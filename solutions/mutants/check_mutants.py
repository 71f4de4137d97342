"""Check the mutants: each must fail exactly the tests listed in its mutant.toml.

Usage (from the repository root):
    .venv/bin/python solutions/mutants/check_mutants.py [MUTANT_ID ...]   # default: all

A test function counts as failing when any of its parametrized cases fails (or errors).
Runs under the assignment's default start method; tests pinned to a start method run under it.
"""

import subprocess
import sys
import time
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MUTANTS = ROOT / "solutions" / "mutants"


def run(submission: Path, exercise: str, report: Path) -> tuple[set[str], set[str]]:
    """(failing, passing) test function names of the exercise's public + hidden suites."""
    cmd = [sys.executable, "-m", "pytest", f"solutions/{exercise}", f"exercises/{exercise}", "-q",
           "-p", "no:cacheprovider", "--mpgrade-submission", str(submission),
           f"--junitxml={report}"]
    subprocess.run(cmd, cwd=ROOT, capture_output=True)
    fails, passes = set(), set()
    for case in ET.parse(report).iter("testcase"):
        name = case.get("name").split("[")[0]
        bad = any(child.tag in ("failure", "error") for child in case)
        (fails if bad else passes).add(name)
    return fails, passes - fails


def main(ids: list[str]) -> int:
    ids = ids or sorted(p.name for p in MUTANTS.iterdir() if (p / "mutant.toml").exists())
    bad = 0
    for mid in ids:
        folder = MUTANTS / mid
        cfg = tomllib.loads((folder / "mutant.toml").read_text())
        started = time.monotonic()
        report = Path(f"/tmp/mpgrade-mutant-{mid}.xml")
        fails, _ = run(folder, cfg["exercise"], report)
        expected = set(cfg["fails"])
        ok = fails == expected
        bad += not ok
        line = f"{'OK ' if ok else 'BAD'} {mid} ({time.monotonic() - started:.0f} s)"
        if not ok:
            line += (f"\n    missing failures: {sorted(expected - fails)}"
                     f"\n    unexpected failures: {sorted(fails - expected)}")
        print(line, flush=True)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
