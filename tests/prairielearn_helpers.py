"""Running the PrairieLearn external grader image as PrairieLearn's grader host does (#19).

PrairieLearn's grader host (apps/grader-host/src/index.ts) lays the job out in a folder it
bind-mounts at ``/grade`` (``student/``, ``tests/``, ``serverFilesCourse/``, ``data/data.json``),
creates the container with networking disabled, memory and pids limits and the question's
entrypoint, kills it once ``externalGradingOptions.timeout`` seconds have passed, and reads
``/grade/results/results.json`` only when the container exited by itself with status 0. Here
the same, with the Docker SDK: a killed container or a non-zero exit gives no results.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
MEMORY = "1g"  # what a PrairieLearn grader host typically allows a job (its graderDockerMemory)
PIDS = 1024


@pytest.fixture(scope="module")
def prairielearn_image(docker_client, grading_image) -> str:
    """The external grader image for this checkout's course: the grading image (built or reused
    by the conftest, never skipped under CI=true) plus the layer, itself reused when unchanged."""
    from grader import assignment, image

    course = assignment.load(REPO)
    return image.build_prairielearn_image(REPO, course, offline=True, client=docker_client,
                                          log=lambda _line: None, grader=grading_image)


def run_grader(client: Any, tag: str, student: dict[str, bytes] | None, *, timeout: float = 30.0,
               command: list[str] | None = None, tests: dict[str, bytes] | None = None,
               server_files: dict[str, bytes] | None = None, evidence: Path | None = None) -> dict[str, Any]:
    """One grading job as PrairieLearn runs it; what PrairieLearn would then have.

    ``student`` None: no ``/grade/student`` at all. ``command``: the question's
    ``externalGradingOptions.entrypoint``, given as the container's entrypoint as PrairieLearn
    does (default: none, the image's command runs). ``evidence``: a folder mounted at ``/evidence``, writable by all.
    Returns the container's exit status (None when it was killed at ``timeout``), its log, the
    parsed results (None where PrairieLearn would have none) and the job folder's listing.
    """
    job = Path(tempfile.mkdtemp(prefix="pl-job-"))
    try:
        if student is not None:
            _lay_out(job / "student", student)
        _lay_out(job / "tests", tests or {})
        _lay_out(job / "serverFilesCourse", server_files or {})
        _lay_out(job / "data", {"data.json": json.dumps({
            "params": {}, "correct_answers": {"secret": "the answer"}, "submitted_answers": {}}).encode()})
        volumes = {str(job): {"bind": "/grade", "mode": "rw"}}
        if evidence is not None:
            evidence.chmod(0o1777)
            volumes[str(evidence)] = {"bind": "/evidence", "mode": "rw"}
        container = client.containers.create(  # the question's entrypoint replaces the image's, as there
            tag, entrypoint=command, network_disabled=True, network_mode="none", volumes=volumes,
            mem_limit=MEMORY, memswap_limit=MEMORY, pids_limit=PIDS, ipc_mode="private",
            ulimits=[_core_ulimit()], labels={"mpgrade.test": "prairielearn"})
        try:
            container.start()
            status: int | None
            try:
                status = container.wait(timeout=timeout)["StatusCode"]
            except Exception:  # noqa: BLE001 - requests' timeout: PrairieLearn kills it here
                container.kill()
                container.wait(timeout=30)
                status = None
            log = container.logs().decode(errors="replace")
        finally:
            container.remove(force=True)
        results_file = job / "results" / "results.json"
        results = None
        if status == 0 and results_file.is_file():
            results = json.loads(results_file.read_text())
        stat = results_file.stat() if results_file.is_file() else None
        return {"status": status, "log": log, "results": results,
                "results_mode": None if stat is None else stat.st_mode & 0o7777,
                "grade_mode": (job.stat().st_mode & 0o7777),
                "results_files": sorted(p.name for p in (job / "results").iterdir())
                if (job / "results").is_dir() else []}
    finally:
        shutil.rmtree(job, ignore_errors=True)


def _lay_out(folder: Path, files: dict[str, bytes]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(data)


def _core_ulimit() -> Any:
    from docker.types import Ulimit

    return Ulimit(name="core", soft=0, hard=0)


def valid_results(results: dict[str, Any]) -> dict[str, Any]:
    """Check results.json against PrairieLearn's format ("Grading results") as mpgrade keeps it."""
    from grader import export

    return export.validate_target("prairielearn", results)
