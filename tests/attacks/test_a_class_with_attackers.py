"""A whole class graded as an instructor grades it, with one student of each attack beside the
honest ones: ``mpgrade grade`` in Docker, then every export.

The batch must finish, every honest student keeps full marks, and ``summary.json``,
``scores.csv`` and every export hold every student, whatever the others handed in: every
attack of the corpus (each beside honest modules of the exercises it does not attack, which
keep full marks too), thousands of ignored files, a member twice in a zip, and ids made to
attack the terminal, the spreadsheet and the grader's own file names.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from grader.intake.submission import submission_id
from tests.conftest import REPO

ATTACKS = REPO / "tests" / "attacks"
MODULES = {ex: REPO / "solutions" / ex / f"{ex[3:]}.py" for ex in
           ("01_spawn", "02_pingpong", "03_prodcons", "04_locks")}
HONEST = ("alice", "summary", "=HYPERLINK(\"http:x\",\"y\")", "\x1b]0;pwned\x07eve")
# Every attack of the corpus (tests/attacks/*/attack.toml) but those that need a time limit of
# their own or links made at run time, with the honest modules of the exercises it does not
# attack: those must keep full marks, whatever the attack did before them in the container.
SPECS = {p.parent.name: tomllib.loads(p.read_text()) for p in sorted(ATTACKS.glob("*/attack.toml"))}
ATTACKERS = {name: spec for name, spec in SPECS.items()
             if "timeout" not in spec and "symlinks" not in spec and (ATTACKS / name / "submission").is_dir()}


def attacked(spec: dict) -> set[str]:
    return set(spec["exercise"]) if isinstance(spec["exercise"], list) else {spec["exercise"]}


def honest_files() -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in MODULES.values()}


def make_class(root: Path) -> set[str]:
    """The class folder; the ids it holds."""
    root.mkdir()
    for name in HONEST:
        folder = root / name
        folder.mkdir()
        for file, data in honest_files().items():
            (folder / file).write_bytes(data)
    for name in ATTACKERS:
        shutil.copytree(ATTACKS / name / "submission", root / name)
        for path in (root / name).glob("*.py"):  # the network attack's target: nobody there
            path.write_text(path.read_text().replace("{listener_port}", "9"))
        for file, data in honest_files().items():
            if not (root / name / file).exists():
                (root / name / file).write_bytes(data)
    buf = io.BytesIO()  # 1001 conftest.py beside honest modules: too much to list
    with zipfile.ZipFile(buf, "w") as zf:
        for file, data in honest_files().items():
            zf.writestr(file, data)
        for i in range(1001):
            zf.writestr(f"d{i}/conftest.py", "raise SystemExit\n")
    (root / "ignored_1001.zip").write_bytes(buf.getvalue())
    buf = io.BytesIO()  # the same member twice: what is graded must be what a TA sees
    with zipfile.ZipFile(buf, "w") as zf, pytest.warns(UserWarning):
        zf.writestr("spawn.py", "def worker_pids(n):\n    return []\n")
        zf.writestr("spawn.py", MODULES["01_spawn"].read_bytes())
    (root / "twice.zip").write_bytes(buf.getvalue())
    return {submission_id(n) for n in (*HONEST, *ATTACKERS, "ignored_1001", "twice")}


def mpgrade(*args: str, timeout: float = 1200) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-m", "grader", *args], capture_output=True, timeout=timeout,
                          env=env, cwd=REPO)


@pytest.mark.docker
def test_a_class_with_one_attacker_of_each_kind_is_graded_whole(grading_image, tmp_path):
    ids = make_class(tmp_path / "class")
    out = tmp_path / "results"
    run = mpgrade("grade", str(tmp_path / "class"), "--out", str(out), "--jobs", "2",
                  "--image", grading_image, "--timeout", "300")
    shown = run.stdout + run.stderr
    assert run.returncode in (0, 1), shown.decode(errors="replace")[-3000:]
    assert b"\x1b]0;pwned" not in shown and b"\x07" not in shown, "an id drove the terminal"

    summary = json.loads((out / "summary.json").read_text())
    rows = {r["id"]: r for r in summary["submissions"]}
    assert set(rows) == ids
    for name in map(submission_id, HONEST):
        assert rows[name]["score"] == 100, (name, rows[name])
    assert rows["twice"]["status"] == "error"
    problems = []
    for name, spec in ATTACKERS.items():
        doc = json.loads((out / rows[name]["file"]).read_text())
        assert doc["submission"]["id"] == name
        target = [e for e in doc["exercises"] if e["name"] in attacked(spec)]
        others = [e for e in doc["exercises"] if e["name"] not in attacked(spec)]
        if doc["status"] != "graded" or any(e["score"] != e["max_score"] for e in others):
            problems.append(f"{name}: {doc['status']} {doc['message'][:200]}, honest exercises "
                            f"{[(e['name'], e['score']) for e in others]}")
        if "max_score" in spec and sum(e["score"] for e in target) > spec["max_score"]:
            problems.append(f"{name} scored {[(e['name'], e['score']) for e in target]}")
    assert not problems, "\n".join(problems)
    assert rows["escape_between_calls"]["score"] == 100

    with (out / "scores.csv").open(newline="") as f:
        table = list(csv.DictReader(f))
    assert {r["id"].lstrip("'") for r in table} == ids
    assert all(not r["id"].startswith(("=", "+", "-", "@")) for r in table), "a formula in scores.csv"

    # Error and timeout results ("twice" at least) are never sent as grades (docs/lms-exports.md):
    # listed as "not sent", exit status 1, no Gradescope results.json and no LTI Score for them.
    graded = {sid for sid, r in rows.items() if r["status"] == "graded"}
    exported = tmp_path / "exports"
    for fmt, target in (("gradescope", "gs"), ("prairielearn", "pl"), ("scores", "scores.csv"),
                        ("lti", "lti.jsonl")):
        done = mpgrade("export", fmt, str(out), "--out", str(exported / target), timeout=120)
        assert done.returncode == (0 if graded == ids else 1), (fmt, done.stderr.decode(errors="replace")[-2000:])
        assert done.stderr.count(b"not sent: ") == len(ids - graded), fmt
    assert len(list((exported / "gs").glob("*/results.json"))) == len(graded)
    assert len(list((exported / "pl").glob("*/results.json"))) == len(ids)
    with (exported / "scores.csv").open(newline="") as f:
        assert len(list(csv.DictReader(f))) == len(ids)
    assert len((exported / "lti.jsonl").read_text().splitlines()) == len(graded)
