"""``python -m grader`` is ``mpgrade``: the entry that needs no ``make`` (macOS, WSL).

Run with a Python that lacks mpgrade's packages (outside the course's ``.venv``), it says
which package is missing and how to install it, in a line, instead of a traceback.
"""

import sys

# mpgrade's own packages (pyproject's dependencies): a missing one is an install problem.
_DEPENDENCIES = {"pytest", "pytest_jsonreport", "pytest_timeout", "psutil", "click", "rich",
                 "jsonschema", "docker", "nbformat"}


def _missing(exc: ModuleNotFoundError) -> None:
    top = (exc.name or "").split(".")[0]
    if top not in _DEPENDENCIES:
        raise exc
    venv = ".venv\\Scripts\\python" if sys.platform == "win32" else ".venv/bin/python"
    sys.stderr.write(
        f"error: mpgrade needs the package {top!r}, which this Python ({sys.executable}) does "
        f"not have. Use the course's virtual environment ({venv} -m grader ...; `make check` "
        f"creates it), or install mpgrade for this Python: {sys.executable} -m pip install -e .\n")
    sys.exit(2)


try:
    from grader.cli import main
except ModuleNotFoundError as exc:
    _missing(exc)

try:
    main()
except ModuleNotFoundError as exc:  # a command imports some packages only when it runs
    _missing(exc)
