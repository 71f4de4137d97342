"""The attack corpus: each folder in tests/attacks/ is a hostile submission and what it must get.

``attack.toml`` says which exercise it attacks (or a list: the attack in one, and the reference
modules of the others, copied in at run time, graded after it), the honest score it may get (``max_score``,
or ``fails_matching`` / ``passes_matching`` for the honest part), the outcomes that must show
up, files that must be reported as ignored, and whether it is harmless enough to run in the
local sandbox too (signalling, fork, memory and disk attacks run only in containers).
Every attack must also leave the host untouched: no leaked hidden tests or nonce, no file
written by an unpickled payload, no connection to the host, no container left behind.
"""

from __future__ import annotations

import os
import shutil
import socket
import threading
import tomllib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from grader import grading
from grader.intake import submission
from grader.protocol import results

from .conftest import REPO

ATTACKS = sorted(p.parent for p in (Path(__file__).parent / "attacks").glob("*/attack.toml"))
SPECS = {p.name: tomllib.loads((p / "attack.toml").read_text()) for p in ATTACKS}
PWNED = Path("/tmp/mpgrade-pwned")


class Listener:
    """A TCP server on the host's loopback that records whether anyone connected."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self.connections += 1
                conn.close()
            except OSError:
                pass

    def close(self) -> None:
        self.stop.set()
        self.thread.join(timeout=2)
        self.sock.close()


def exercises(spec: dict) -> list[str]:
    return spec["exercise"] if isinstance(spec["exercise"], list) else [spec["exercise"]]


def materialize(name: str, dest: Path, listener: Listener | None) -> Path:
    src = REPO / "tests" / "attacks" / name / "submission"
    folder = dest / name
    shutil.copytree(src, folder) if src.is_dir() else folder.mkdir(parents=True)
    for link, target in SPECS[name].get("symlinks", {}).items():
        os.symlink(target.format(repo=REPO), folder / link)
    for path in folder.glob("*.py"):
        if listener is not None and not path.is_symlink():
            path.write_text(path.read_text().replace("{listener_port}", str(listener.port)))
    # The other exercises an attack lists get the reference (an attack's own modules and links
    # stay): the honest work graded after the attack, which must keep its points.
    for exercise in exercises(SPECS[name])[1:]:
        for module in (REPO / "solutions" / exercise).glob("*.py"):
            if not module.name.startswith("test_") and not os.path.lexists(folder / module.name):
                shutil.copy(module, folder / module.name)
    return folder


def run_attacks(course, sandbox, names: list[str], tmp: Path) -> dict[str, dict]:
    listener = Listener()
    PWNED.unlink(missing_ok=True)

    def one(name: str) -> tuple[str, dict]:
        spec = SPECS[name]
        sub = submission.from_folder(materialize(name, tmp, listener), course)
        options = grading.Options(exercises=tuple(exercises(spec)), timeout=spec.get("timeout"))
        doc = grading.grade(sandbox, course, sub, options)
        return name, doc

    try:
        with ThreadPoolExecutor(max_workers=2) as pool:
            docs = dict(pool.map(one, names))
    finally:
        listener.close()
    docs["__listener__"] = {"connections": listener.connections}
    return docs


def check(name: str, doc: dict, hidden_sources: list[str]) -> None:
    spec = SPECS[name]
    assert doc is not None
    results.validate(doc)
    assert doc["status"] == spec.get("status", "graded"), f"{name}: {doc['message']}"
    if "max_score" in spec:
        assert doc["score"] <= spec["max_score"], f"{name} scored {doc['score']}"
    for pattern in spec.get("fails_matching", []):
        hit = [t for t in doc["tests"] if pattern in t["id"]]
        assert hit and all(t["outcome"] != "passed" for t in hit), f"{name}: {pattern} tests must fail"
    for pattern in spec.get("passes_matching", []):
        hit = [t for t in doc["tests"] if pattern in t["id"]]
        assert hit and all(t["outcome"] == "passed" for t in hit), f"{name}: honest {pattern} tests must pass"
    if spec.get("outcomes"):
        seen = {t["outcome"] for t in doc["tests"]}
        assert seen & set(spec["outcomes"]), f"{name}: expected one of {spec['outcomes']}, saw {seen}"
    ignored = {i["path"] for i in doc["submission"]["ignored"]}
    assert set(spec.get("ignored", [])) <= ignored, f"{name}: not reported as ignored: {ignored}"
    text = str(doc)
    assert "MPGRADE_NONCE" not in text, f"{name}: the nonce variable reached student code"
    if spec.get("no_leak"):
        for source in hidden_sources:
            marker = source.split("def test_", 1)[1][:60]
            assert marker not in text, f"{name}: hidden test source leaked into the result"
    for t in doc["tests"]:
        assert t["outcome"] == "passed" or t["message"], f"{name}: {t['id']} failed without a message"


@pytest.fixture(scope="module")
def hidden_sources(course) -> list[str]:
    return [p.read_text() for ex in course.exercises for p in ex.hidden_tests()]


def test_the_corpus_covers_the_issue():
    expected = {"exit_at_import", "sys_exit_at_import", "exit_in_function", "monkeypatch_pytest",
                "fake_result_files", "print_fake_result", "read_hidden_tests", "conftest_and_sitecustomize",
                "symlinks", "fork_bomb", "memory_bomb", "stdout_flood", "fill_tmpfs", "sleep_forever",
                "orphans_and_daemons", "kill_everything", "network", "reduce_value", "steal_nonce",
                "escape_between_calls", "forge_report", "threads_as_workers", "zombie_leader",
                "deep_folder", "sysv_memory", "huge_result"}
    assert expected <= set(SPECS)


@pytest.mark.docker
def test_every_attack_in_docker(course, docker_client, grading_image, tmp_path, hidden_sources):
    from grader.sandbox.docker import LABEL, DockerSandbox

    # With warm containers, as `mpgrade grade` runs by default: the attacks then meet the
    # containers that were started before their submission was known.
    box = DockerSandbox(grading_image, client=docker_client, warm=2)
    warm_jobs = []
    hand_over = box._run_warm

    def counting(job, warm, stats, t0):
        warm_jobs.append(job)
        return hand_over(job, warm, stats, t0)

    box._run_warm = counting
    try:
        docs = run_attacks(course, box, sorted(SPECS), tmp_path)
    finally:
        box.close()
    assert len(warm_jobs) >= len(SPECS) - 4, "the attacks did not go through warm containers"
    problems = []
    for name in sorted(SPECS):
        try:
            check(name, docs[name], hidden_sources)
        except AssertionError as exc:
            problems.append(str(exc).splitlines()[0])
    assert not problems, "\n".join(problems)
    assert docs["__listener__"]["connections"] == 0, "a submission reached the host's loopback"
    assert not PWNED.exists(), "a payload ran on the host"
    assert docker_client.containers.list(all=True, filters={"label": LABEL}) == []


def test_harmless_attacks_in_the_local_sandbox(course, tmp_path, hidden_sources):
    from grader.sandbox.local import LocalSandbox

    names = [n for n, spec in SPECS.items() if spec.get("local")]
    docs = run_attacks(course, LocalSandbox(), names, tmp_path)
    for name in names:
        check(name, docs[name], hidden_sources)
    assert not PWNED.exists()
