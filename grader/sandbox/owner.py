"""Which process made a container, and whether that process still runs.

At start-up ``mpgrade grade``, ``serve`` and ``worker`` sweep the containers a crashed run left
behind, and must leave alone those of a batch, service or worker still grading on the same
engine. So every container is labelled with its maker: host name, boot, pid, and when that pid
started. The start tells a live owner from a later process that got the same pid; the boot
tells it from a process of an earlier boot.

On Linux the boot is the kernel's ``boot_id`` and the start is the process's start time in clock
ticks since boot (``/proc/<pid>/stat``): both stay fixed for the life of the process whatever
the wall clock does. Times derived from the wall clock (psutil's ``create_time``) move when the
clock is stepped (NTP, a resumed VM), and a moved start would make a live owner look dead.
Elsewhere (macOS, Windows) the label records no boot or start: a pid that exists, and is not a
zombie, counts as alive. That errs towards keeping a container, never towards removing the
container of a run that is still grading.
"""

from __future__ import annotations

import socket
from pathlib import Path

import psutil

BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
UNKNOWN = "-"  # no boot or start recorded (not Linux)


def label_for(pid: int) -> str:
    """The owner label for containers made by process ``pid`` (``host/boot/pid/start``)."""
    stat = _proc_stat(pid)
    start = stat[1] if stat is not None else UNKNOWN
    return f"{socket.gethostname()}/{_boot()}/{pid}/{start}"


def alive(label: str | None) -> bool | None:
    """Whether the process a label names still runs: True; False when it exited, its pid now
    belongs to another process, the machine rebooted since, or the label is missing or
    mangled (made before owners were recorded, or not by us); None when this host cannot tell
    (another host made it: a second machine, or a grader in a container sharing the engine)."""
    try:
        host, boot, pid_text, start = (label or "").rsplit("/", 3)
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:
        return False
    if host != socket.gethostname():
        return None
    if boot != _boot():
        return False
    stat = _proc_stat(pid)
    if stat is not None:
        state, ticks = stat
        return state not in "ZXx" and (start == UNKNOWN or ticks == start)
    # No /proc entry: gone, or hidden from us (/proc mounted with hidepid), or not Linux.
    if not psutil.pid_exists(pid):
        return False
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.Error:  # exists, and we may not look at it: keep its containers
        return True


def _boot() -> str:
    try:
        return BOOT_ID.read_text().strip() or UNKNOWN
    except OSError:
        return UNKNOWN


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time in clock ticks since boot) from ``/proc/<pid>/stat``, or None."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rfind(")") + 2:].split()  # the name, in parentheses, may hold spaces
    if len(fields) < 20:
        return None
    return fields[0], fields[19]
