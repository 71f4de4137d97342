"""The Gradescope autograder in a container built the way Gradescope builds one (#19).

Gradescope's own layout (gradescope/autograder_samples, the base image's Dockerfile): the zip
unpacked in ``/autograder/source``, ``run_autograder`` copied to ``/autograder/run_autograder``,
``setup.sh`` run once as root at build time, then for each submission ``run_autograder`` as root
with the files in ``/autograder/submission``, 768 MB of memory, half a CPU and no network, and
``/autograder/results/results.json`` read afterwards. Base: the project's offline base image
(Debian bookworm + Python 3.11, ``grader.image.OFFLINE_BASE_IMAGE``); the wheels come from the
project's wheel cache, so building needs no network either.

Checked: the reference solution scores 100; a submission that tries to read the hidden tests,
list the sources or the grader's job folders, or write the results folder fails to, runs as a
user that is not root, and cannot put its own results.json in place of the grader's.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import tarfile
import uuid
import zipfile
from pathlib import Path

import pytest

from tests.conftest import IN_CI

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parent.parent
MODULES = {"01_spawn": "spawn.py", "02_pingpong": "pingpong.py", "03_prodcons": "prodcons.py",
           "04_locks": "locks.py"}
# What Gradescope gives a submission (its documented defaults for a programming assignment).
MEMORY, CPUS, RUN_TIMEOUT = "768m", 0.5, 900

DOCKERFILE = """\
FROM {base}
ADD source /autograder/source
ADD wheels /tmp/wheels
RUN mkdir -p /autograder/results /autograder/submission \\
 && cp /autograder/source/run_autograder /autograder/run_autograder \\
 && chmod +x /autograder/run_autograder \\
 && MPGRADE_WHEELHOUSE=/tmp/wheels bash /autograder/source/setup.sh \\
 && rm -rf /tmp/wheels \\
 && mkdir -m 1777 /evidence
"""

ATTACK = '''\
"""spawn.py that goes after the autograder instead of spawning anything."""
import glob
import os

LOG = "/evidence/attack-log.txt"  # not /tmp: the harness empties that of the student's files between calls


def _try(what, action):
    try:
        action()
        outcome = "SUCCEEDED"
    except Exception as exc:  # what the grader's user may not do fails with an OSError
        outcome = "denied " + type(exc).__name__
    with open(LOG, "a") as log:
        log.write(what + ": " + outcome + "\\n")


def _read_hidden():
    with open("/autograder/source/course/solutions/01_spawn/test_hidden.py") as f:
        open("/evidence/leaked-tests.py", "w").write(f.read())


def _job_folders():
    found = glob.glob("/tmp/mpgrade-job-*")
    if not found:
        raise FileNotFoundError("no job folder in sight")
    for folder in found:
        os.listdir(folder)


def _write_results():
    with open("/autograder/results/results.json", "w") as f:
        f.write('{"score": 1000.0, "output": "pwned"}')


_try("read the hidden tests", _read_hidden)
_try("list the sources", lambda: os.listdir("/autograder/source"))
_try("list the job folders", _job_folders)
_try("write results.json", _write_results)
_try("create a file in the results folder", lambda: open("/autograder/results/x", "w").close())
_try("replace run_autograder", lambda: open("/autograder/run_autograder", "a").close())
with open(LOG, "a") as log:
    log.write("uid " + str(os.getuid()) + " gid " + str(os.getgid()) + "\\n")


def worker_pids(n):
    return []


def exit_codes(codes):
    return []
'''


def tar_of(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def file_from(container, path: str) -> tuple[bytes, tarfile.TarInfo] | None:
    """A file of a (stopped) container, with its tar header (owner, mode), or None."""
    import docker

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.getmembers()[0]
        return tar.extractfile(member).read(), member


def runtime_wheels(dest: Path, arch: str) -> None:
    """mpgrade's runtime dependencies and build requirements as wheels for the image's Python,
    from the project's wheel cache (grader.image), downloaded into it only when missing."""
    import tomllib

    from grader import image

    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    wheelhouse, pinned = image.wheel_cache_dir()
    for spec, what in ((project["project"]["dependencies"], "mpgrade's dependencies"),
                       (project["build-system"]["requires"], "its build requirements")):
        image._fetch(list(spec), dest, wheelhouse=wheelhouse, pinned=pinned,
                     target=image._target_args(arch), what=f"fetching {what}", log=lambda _: None)


@pytest.fixture(scope="module")
def gradescope_image(docker_client, tmp_path_factory):
    from grader import export, image

    if not image.image_exists(docker_client, image.OFFLINE_BASE_IMAGE):
        if not IN_CI and not os.environ.get("MPGRADE_BUILD_IMAGE"):
            pytest.skip(f"{image.OFFLINE_BASE_IMAGE} not built (make image, or MPGRADE_BUILD_IMAGE=1)")
        image.ensure_offline_base(docker_client)
    context = tmp_path_factory.mktemp("gradescope")
    autograder = context / "autograder.zip"
    export.gradescope_autograder(REPO, autograder)
    with zipfile.ZipFile(autograder) as zf:
        for info in zf.infolist():
            target = context / "source" / info.filename
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))
            target.chmod((info.external_attr >> 16) & 0o777)
    autograder.unlink()
    runtime_wheels(context / "wheels", docker_client.info().get("Architecture", "x86_64"))
    (context / "Dockerfile").write_text(DOCKERFILE.format(base=image.OFFLINE_BASE_IMAGE))
    tag = f"mpgrade-gradescope-test:{uuid.uuid4().hex[:12]}"
    docker_client.images.build(path=str(context), tag=tag, network_mode="none", rm=True,
                               forcerm=True)
    shutil.rmtree(context, ignore_errors=True)
    try:
        yield tag
    finally:
        docker_client.images.remove(tag, force=True)


def run_autograder(client, tag: str, files: dict[str, bytes]) -> dict:
    """One submission as Gradescope grades it; what it left behind."""
    container = client.containers.create(
        tag, command=["/autograder/run_autograder"], working_dir="/autograder",
        network_mode="none", mem_limit=MEMORY, memswap_limit=MEMORY,
        nano_cpus=int(CPUS * 1e9), labels={"mpgrade.test": "gradescope"})
    try:
        assert container.put_archive("/autograder/submission", tar_of(files))
        container.start()
        status = container.wait(timeout=RUN_TIMEOUT)
        log = container.logs().decode(errors="replace")
        results = file_from(container, "/autograder/results/results.json")
        attack = file_from(container, "/evidence/attack-log.txt")
        return {"status": status["StatusCode"], "log": log, "results": results,
                "attack_log": attack[0].decode() if attack else None,
                "leaked": file_from(container, "/evidence/leaked-tests.py"),
                "stray": file_from(container, "/autograder/results/x")}
    finally:
        container.remove(force=True)


def test_the_reference_solution_scores_100_in_a_gradescope_like_container(docker_client, gradescope_image):
    files = {name: (REPO / "solutions" / ex / name).read_bytes() for ex, name in MODULES.items()}
    out = run_autograder(docker_client, gradescope_image, files)
    assert out["results"] is not None, out["log"]
    data, member = out["results"]
    results = json.loads(data)
    assert results["score"] == 100.0, out["log"]
    assert results["extra_data"]["status"] == "graded"
    assert (member.uid, member.gid) == (0, 0), "results.json is root's"


def test_a_submission_cannot_read_the_hidden_tests_or_write_the_results(docker_client, gradescope_image):
    out = run_autograder(docker_client, gradescope_image, {"spawn.py": ATTACK.encode()})
    log = out["attack_log"]
    assert log is not None, "the attacking module never ran: " + out["log"]
    assert "SUCCEEDED" not in log, log
    for what in ("read the hidden tests", "list the sources", "list the job folders",
                 "write results.json", "create a file in the results folder", "replace run_autograder"):
        assert f"{what}: denied" in log, log
    assert "uid 0 " not in log and "gid 0\n" not in log, log
    assert out["leaked"] is None and out["stray"] is None
    assert out["results"] is not None, out["log"]
    results = json.loads(out["results"][0])
    assert results["score"] < 100.0 and "pwned" not in json.dumps(results)
    assert results["extra_data"]["submission_id"] == "submission"
