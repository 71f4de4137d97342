"""Attacks on PrairieLearn's external grader image (#19 item 8).

PrairieLearn runs the image as root with the job folder at /grade: the question's tests in
/grade/tests, shared course files in /grade/serverFilesCourse, data.json with the question's
correct answers, and /grade/results, where whatever results.json is there when the container
exits becomes the student's grade. The submission here (prairielearn_grade_folder/prodcons.py)
tries, as it is imported, to read the hidden tests baked into the image and every file of
/grade, to list the grader's job folders, to write results.json or any file next to it, and to
change the entrypoint. Each must fail: it runs as the unprivileged student user, /grade and the
course are root's 0700, and root writes results.json once every student process is gone.
"""

from __future__ import annotations

import pytest

from tests.prairielearn_helpers import REPO, prairielearn_image, run_grader, valid_results  # noqa: F401

ATTACK = (REPO / "tests" / "attacks" / "prairielearn_grade_folder" / "prodcons.py").read_bytes()
SECRET = b"the hidden answer is 42\n"


@pytest.mark.docker
def test_a_submission_cannot_read_the_tests_or_write_the_results(docker_client, prairielearn_image,  # noqa: F811
                                                                 tmp_path):
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    out = run_grader(docker_client, prairielearn_image, {"prodcons.py": ATTACK},
                     tests={"secret.txt": SECRET}, server_files={"secret.txt": SECRET}, evidence=evidence)
    log_file = evidence / "attack-log.txt"
    assert log_file.is_file(), "the attacking module never ran: " + out["log"][-3000:]
    log = log_file.read_text()
    assert "SUCCEEDED" not in log, log
    for what in ("read the baked hidden tests", "list the baked course", "read the question's tests",
                 "read serverFilesCourse", "read data.json", "list /grade", "list the job folders",
                 "write results.json", "create a file in the results folder", "replace the entrypoint"):
        assert f"{what}: denied" in log, log
    assert "uid 0 " not in log and " gid 0\n" not in log, log
    assert sorted(p.name for p in evidence.iterdir()) == ["attack-log.txt"], "something leaked"
    assert out["status"] == 0 and out["results_files"] == ["results.json"], out["log"][-3000:]
    results = valid_results(out["results"])
    assert results["gradable"] is True and results["score"] < 1.0, results
    assert "pwned" not in str(results)
