"""Runs inside a warm container: start early, then run one job's command when its files arrive.

``python -m grader.harness.warmstart MODULE [ARG...]`` stands in for ``python -m MODULE
[ARG...]`` in a container the Docker sandbox starts *before* it has a job for it. It imports
MODULE (and calls its ``prewarm()`` if it has one, so the harness can import pytest and its
plugins now), then waits for the host to lay the job's files into the read-only ``/job`` mount
and to write the go file last. The go file holds the job's secret environment (the result
nonce), which the host could not put in the container's environment before it knew the job.
Then MODULE runs as ``__main__``, exactly as ``python -m`` would run it.

The container is still used for one job only and removed afterwards: starting it early moves
container start-up and imports off the submission's critical path, nothing else. No student
code runs before the go file exists. A container nobody sends a job exits by itself after
``MPGRADE_WARM_IDLE`` seconds, so a host that died does not leave it running for ever.

Standard library only besides MODULE: this runs in the image, before anything is known.
"""

from __future__ import annotations

import importlib
import os
import runpy
import sys

from grader.protocol.wire import IDLE_ENV, wait_for_go

EXIT_IDLE = 0  # nothing to report: the host removes idle containers without reading them


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: python -m grader.harness.warmstart MODULE [ARG...]", file=sys.stderr)
        return 2
    module_name, args = argv[0], argv[1:]
    try:
        module = importlib.import_module(module_name)
        prewarm = getattr(module, "prewarm", None)
        if callable(prewarm):
            prewarm()
    except Exception:  # only an optimisation: the job itself will run into it and say so
        pass
    secrets = wait_for_go(os.getcwd(), float(os.environ.pop(IDLE_ENV, "600")))
    if secrets is None:
        return EXIT_IDLE
    os.environ.update(secrets)
    importlib.invalidate_caches()  # the job's files arrived after the import system looked
    sys.argv = [module_name, *args]
    runpy.run_module(module_name, run_name="__main__", alter_sys=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
