"""The warm-container launcher, run as the Docker sandbox runs it, without Docker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from grader.protocol.wire import GO_FILE, IDLE_ENV, wait_for_go

from .conftest import REPO

PROBE = '''
import json, os, sys

WARMED = []


def prewarm():
    WARMED.append(True)


if __name__ == "__main__":
    import probe  # the copy warmstart imported (and prewarmed) before the job came
    with open("job.json") as f:
        job = json.load(f)
    print(json.dumps({"argv": sys.argv[1:], "secret": os.environ.get("SECRET"), "job": job,
                      "prewarmed": probe.WARMED == [True]}))
    sys.exit(7)
'''


def go(folder: Path, secrets: object) -> None:
    """Written the way the host writes it: complete, then renamed into place."""
    (folder / "go.tmp").write_text(json.dumps(secrets))
    (folder / "go.tmp").rename(folder / GO_FILE)


def launch(tmp_path: Path, idle: float = 30) -> subprocess.Popen:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "probe.py").write_text(PROBE)
    (tmp_path / "job").mkdir()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "lib"), str(REPO)]),
           IDLE_ENV: str(idle)}
    return subprocess.Popen([sys.executable, "-m", "grader.harness.warmstart", "probe", "--flag", "x"],
                            cwd=tmp_path / "job", env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_the_job_runs_as_main_once_its_go_file_arrives_with_the_secrets(tmp_path):
    proc = launch(tmp_path)
    try:
        time.sleep(0.5)
        assert proc.poll() is None, "it must wait for the go file"
        (tmp_path / "job" / "job.json").write_text('{"n": 1}')
        go(tmp_path / "job", {"SECRET": "nonce-123"})
        out, err = proc.communicate(timeout=20)
    finally:
        proc.kill()
    assert proc.returncode == 7, err.decode()
    assert json.loads(out) == {"argv": ["--flag", "x"], "secret": "nonce-123", "job": {"n": 1},
                               "prewarmed": True}


def test_a_container_without_a_job_exits_quietly_after_its_idle_time(tmp_path):
    proc = launch(tmp_path, idle=0.3)
    out, _ = proc.communicate(timeout=20)
    assert proc.returncode == 0 and out == b""


def test_a_malformed_go_file_runs_nothing(tmp_path):
    proc = launch(tmp_path)
    go(tmp_path / "job", {"SECRET": 1})
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1 and out == b"" and b"malformed go file" in err


def test_waiting_gives_up_after_the_idle_time(tmp_path):
    started = time.monotonic()
    assert wait_for_go(str(tmp_path), 0.2) is None
    assert time.monotonic() - started >= 0.2
