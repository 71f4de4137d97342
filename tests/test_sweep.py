"""Sweeping left-behind containers: a crashed run's go, a running batch's or worker's stay.

Every container the Docker sandbox makes carries an ``mpgrade.owner`` label naming the process
that made it (host, boot, pid, start). ``sweep`` removes those whose process is gone, so an
instructor's ``mpgrade grade`` does not kill the containers of a service grading on the same
engine, and two batches started at once do not remove each other's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import psutil
import pytest

from grader.sandbox import owner
from grader.sandbox.docker import FOREIGN_STALE, LABEL, OWNER_LABEL, sweep


@pytest.fixture
def sleeper():
    """A live process that is not this one: the owner of 'another batch still grading'."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.fixture
def exited():
    """The label of a process that has exited and been reaped: a crashed run's."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    label = owner.label_for(proc.pid)
    proc.wait()
    return label


def relabel(label: str, **parts: str) -> str:
    fields = dict(zip(("host", "boot", "pid", "start"), label.rsplit("/", 3), strict=True))
    return "/".join({**fields, **parts}.values())


def test_a_label_names_its_process_until_the_process_exits(sleeper):
    label = owner.label_for(sleeper.pid)
    assert owner.alive(label) is True
    sleeper.kill()
    sleeper.wait()
    assert owner.alive(label) is False


def test_an_unreaped_dead_owner_is_dead():
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    label = owner.label_for(proc.pid)
    try:
        deadline = time.monotonic() + 10
        while psutil.Process(proc.pid).status() != psutil.STATUS_ZOMBIE and time.monotonic() < deadline:
            time.sleep(0.01)
        assert owner.alive(label) is False  # a zombie cleans up nothing
    finally:
        proc.wait()


def test_a_reused_pid_or_a_reboot_is_not_the_owner():
    label = owner.label_for(os.getpid())
    assert owner.alive(label) is True
    start = label.rsplit("/", 1)[1]
    # The same pid, but a process that started at another time: the pid was reused since.
    assert owner.alive(relabel(label, start=str(int(start) + 1))) is False
    # The same pid and start, but another boot of the machine.
    assert owner.alive(relabel(label, boot="00000000-0000-0000-0000-000000000000")) is False


def test_a_clock_step_does_not_make_a_live_owner_look_dead(monkeypatch):
    """NTP stepping the clock, or a VM resuming, moves psutil's boot and create times."""
    label = owner.label_for(os.getpid())
    stepped = psutil.boot_time() + 5
    monkeypatch.setattr(psutil, "boot_time", lambda: stepped)
    assert owner.alive(label) is True


def test_an_owner_hidden_from_proc_is_not_taken_for_dead(monkeypatch, sleeper):
    """With /proc mounted hidepid=2 another user's processes have no /proc entry for us."""
    label = owner.label_for(sleeper.pid)
    monkeypatch.setattr(owner, "_proc_stat", lambda pid: None)
    assert owner.alive(label) is True
    sleeper.kill()
    sleeper.wait()
    assert owner.alive(label) is False


def test_another_host_cannot_be_told_from_here():
    label = owner.label_for(os.getpid())
    assert owner.alive(relabel(label, host=f"not-{socket.gethostname()}")) is None


@pytest.mark.parametrize("label", [None, "", "1", "host/boot/pid/start", "a/b/c"])
def test_a_missing_or_mangled_label_is_stale(label):
    assert owner.alive(label) is False


@pytest.mark.parametrize("pid", ["-1", "0", "nan"])
def test_a_label_with_an_impossible_pid_is_stale(pid):
    assert owner.alive(relabel(owner.label_for(os.getpid()), pid=pid)) is False


class FakeAPI:
    """The two low-level calls sweep makes, over an in-memory list of containers."""

    def __init__(self, containers: dict[str, dict]) -> None:
        self.listing = containers
        self.removed: list[str] = []

    def containers(self, all: bool, filters: dict) -> list[dict]:
        assert all and filters == {"label": [LABEL]}
        return [{"Id": cid, **entry} for cid, entry in self.listing.items()]

    def remove_container(self, cid: str, force: bool) -> None:
        if cid == "vanished":
            raise RuntimeError("404 No such container")  # removed in between by its own run
        self.removed.append(cid)


class FakeClient:
    def __init__(self, containers: dict[str, dict]) -> None:
        self.api = FakeAPI(containers)


def test_sweep_removes_only_containers_whose_owner_is_gone(sleeper, exited):
    now = time.time()
    mine = owner.label_for(os.getpid())
    elsewhere = relabel(mine, host="elsewhere")

    def entry(label: str | None, state: str = "running", age: float = 60.0) -> dict:
        labels = {LABEL: "1"} if label is None else {LABEL: "1", OWNER_LABEL: label}
        return {"Labels": labels, "State": state, "Created": int(now - age)}

    client = FakeClient({
        "mine": entry(mine),
        "running-batch": entry(owner.label_for(sleeper.pid)),
        "crashed": entry(exited),
        "old-version": entry(None),
        "vanished": entry(exited),
        "other-host-running": entry(elsewhere, age=2 * FOREIGN_STALE),
        "other-host-stopped-recently": entry(elsewhere, state="exited"),
        "other-host-stopped-long-ago": entry(elsewhere, state="exited", age=2 * FOREIGN_STALE),
    })
    assert sweep(client, now=now) == 3
    assert client.api.removed == ["crashed", "old-version", "other-host-stopped-long-ago"]


def test_an_owner_that_cannot_be_judged_keeps_its_container(monkeypatch):
    def broken(label):
        raise OSError("/proc unreadable")

    monkeypatch.setattr(owner, "alive", broken)
    client = FakeClient({"c": {"Labels": {LABEL: "1", OWNER_LABEL: "x"}, "State": "exited", "Created": 0}})
    assert sweep(client) == 0 and client.api.removed == []


@pytest.mark.docker
def test_a_second_run_on_the_same_engine_keeps_a_running_batchs_containers(
        docker_client, grading_image, course, sleeper, exited):
    """Real containers: make_sandbox (what `mpgrade grade` and `mpgrade serve` start with)
    sweeps only the one whose owner died."""
    from grader.cli.common import make_sandbox

    made = {}
    try:
        for name, label in (("running", owner.label_for(sleeper.pid)), ("crashed", exited)):
            made[name] = docker_client.api.create_container(
                grading_image, command=["true"], network_disabled=True,
                labels={LABEL: "1", OWNER_LABEL: label})["Id"]
        box = make_sandbox("docker", course, grading_image)
        box.close()
        left = {c["Id"] for c in docker_client.api.containers(all=True, filters={"label": LABEL})}
        assert made["running"] in left
        assert made["crashed"] not in left
    finally:
        for cid in made.values():
            try:
                docker_client.api.remove_container(cid, force=True)
            except Exception:
                pass
