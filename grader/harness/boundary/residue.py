"""What the student uid leaves behind between calls: files, POSIX and System V IPC.

Removed without following links and without recursion, through directory descriptors, so a
race or a folder 3000 levels deep cannot turn the clean-up against the supervisor.
"""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

# Folders every process may write besides the scratch folder; emptied of the student uid's
# files between calls (see ``StudentRunner.clear_user``): POSIX shared memory and semaphores,
# POSIX message queues, and the system's world-writable folders. In a container the scratch
# folder is /tmp, but where it is not (the local sandbox with a student user, Gradescope's
# container) a call could otherwise leave files in /tmp for the next one.
SHARED_WRITABLE = ("/dev/shm", "/dev/mqueue", "/tmp", "/var/tmp", "/run/lock")


def user_ipc(uid: int) -> list[str]:
    """System V shared memory segments, semaphore sets and message queues of ``uid`` (owner or
    creator), as ``kind:id``. They outlive every process (a segment nobody has attached keeps
    its memory), and are not files: ``remove_entries`` cannot see them."""
    found = []
    for kind in ("shm", "sem", "msg"):
        try:
            with open(f"/proc/sysvipc/{kind}") as f:
                header, *rows = f.read().splitlines()
        except (OSError, ValueError):
            continue
        names = header.split()
        try:
            at_id, at_uid, at_cuid = 1, names.index("uid"), names.index("cuid")
        except ValueError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > max(at_uid, at_cuid) and str(uid) in (cols[at_uid], cols[at_cuid]):
                found.append(f"{kind}:{cols[at_id]}")
    return found


# Removes the System V objects named on its command line; run as their owner, since root
# without CAP_SYS_ADMIN (the supervisor in a container) may not remove another user's.
_IPC_REMOVER = """
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
for kind, ident in (a.split(":") for a in sys.argv[1:]):
    ident = int(ident)
    if kind == "shm":
        libc.shmctl(ident, 0, None)
    elif kind == "sem":
        libc.semctl(ident, 0, 0)
    else:
        libc.msgctl(ident, 0, None)
"""


def clear_user_ipc(user: tuple[int, int], python: str) -> None:
    """Remove ``user``'s System V IPC objects (see ``user_ipc``), by a short process of that
    user running only our code: started only when there is something to remove, so an honest
    call (multiprocessing uses POSIX semaphores and shared memory, files in /dev/shm) pays one
    read of /proc/sysvipc."""
    objects = user_ipc(user[0])
    if not objects:
        return
    try:
        subprocess.run([python, "-I", "-S", "-c", _IPC_REMOVER, *objects[:10_000]], env={},
                       user=user[0], group=user[1], extra_groups=[], stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        pass


def _remove_tree(parent: int, name: str) -> None:
    """Remove the folder ``name`` of the folder open as ``parent``, however deep it goes.

    ``shutil.rmtree`` recurses (a folder 3000 levels deep raises RecursionError) and holds a
    descriptor per level (EMFILE at about a thousand). Here each subfolder is first moved up
    into ``parent`` under a fresh name and removed in its turn: no recursion, two descriptors
    at most. Never follows a link, never opens anything but a folder (O_DIRECTORY: a FIFO put in
    a folder's place cannot block it).
    """
    todo, moved = [name], 0
    while todo:
        current = todo.pop()
        fd = os.open(current, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK, dir_fd=parent)
        try:
            for entry in os.listdir(fd):
                if stat.S_ISDIR(os.stat(entry, dir_fd=fd, follow_symlinks=False).st_mode):
                    moved += 1
                    target = f".mpgrade-removing-{os.getpid()}-{moved}-{os.urandom(4).hex()}"
                    os.rename(entry, target, src_dir_fd=fd, dst_dir_fd=parent)
                    todo.append(target)
                else:
                    os.unlink(entry, dir_fd=fd)
        finally:
            os.close(fd)
        os.rmdir(current, dir_fd=parent)


def remove_tree(path: Path) -> bool:
    """Remove a folder and everything in it (see ``_remove_tree``); False if it could not."""
    try:
        parent = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return False
    try:
        _remove_tree(parent, path.name)
        return True
    except OSError:
        return False
    finally:
        os.close(parent)


def remove_entries(folder: Path, keep: set[str] = frozenset(), owner: int | None = None) -> bool:
    """Remove the entries of ``folder`` (those of ``owner`` only, when given) but ``keep``.

    Used on folders the student user can write, once no process of that user but the waiting
    spares is alive, so nothing swaps an entry meanwhile; still every step works on directory
    descriptors and never follows a link (see ``_remove_tree``). False if ``folder`` is not a
    folder, or an entry could not be removed.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return False
    ok = True
    try:
        names = os.listdir(fd)
    except OSError:
        names, ok = [], False
    try:
        for name in names:
            if name in keep:
                continue
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if owner is not None and st.st_uid != owner:
                    continue
                if stat.S_ISDIR(st.st_mode):
                    _remove_tree(fd, name)
                else:
                    os.unlink(name, dir_fd=fd)
            except OSError:
                ok = False
    finally:
        os.close(fd)
    return ok
