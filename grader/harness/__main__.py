"""``python -m grader.harness``: the supervisor a sandbox runs in the job folder."""

import os
import sys

from grader.harness.supervisor import main

if __name__ == "__main__":
    # The document is written and every student process is gone: skip the interpreter's
    # teardown of pytest and its plugins, which the host would wait for (tens of milliseconds).
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
