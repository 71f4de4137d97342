"""Runs inside the sandbox: the supervisor, the pytest plugin, the student-call boundary.

Nothing here imports host code (``cli``, ``service``, ``sandbox``, ``intake``, ``batch``...);
``make lint`` checks it.
"""


def prewarm() -> None:
    """Import what every job needs before there is a job (``grader.harness.warmstart`` calls it)."""
    from grader.harness.supervisor import prewarm as load

    load()
