"""Sweeping left-behind containers: a crashed run's go, a running batch's or worker's stay.

Every container the Docker sandbox makes carries an ``mpgrade.owner`` label naming the process
that made it (host, boot, pid, start time). ``sweep`` removes those whose process is gone, so an
instructor's ``mpgrade grade`` does not kill the containers of a service grading on the same
engine, and two batches started at once do not remove each other's.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from grader.sandbox.docker import LABEL, OWNER_LABEL, owner_alive, owner_of, sweep


@pytest.fixture
def sleeper():
    """A live process that is not this one: the owner of 'another batch still grading'."""
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield proc
    proc.kill()
    proc.wait()


def test_a_label_names_its_process_until_the_process_exits(sleeper):
    label = owner_of(sleeper.pid)
    assert owner_alive(label) is True
    sleeper.kill()
    sleeper.wait()
    assert owner_alive(label) is False


def test_a_reused_pid_or_a_reboot_is_not_the_owner():
    host, boot, pid, started = owner_of(os.getpid()).rsplit("/", 3)
    assert owner_alive(f"{host}/{boot}/{pid}/{started}") is True
    # The same pid, but a process that started earlier: the pid was reused since.
    assert owner_alive(f"{host}/{boot}/{pid}/{float(started) - 100:.2f}") is False
    # The same pid and start time, but an earlier boot of the machine.
    assert owner_alive(f"{host}/{float(boot) - 3600:.0f}/{pid}/{started}") is False


def test_another_host_cannot_be_told_from_here():
    _, boot, pid, started = owner_of(os.getpid()).rsplit("/", 3)
    assert owner_alive(f"not-{socket.gethostname()}/{boot}/{pid}/{started}") is None


@pytest.mark.parametrize("label", [None, "", "1", "host/boot/pid/start", "a/b/c"])
def test_a_missing_or_mangled_label_is_stale(label):
    assert owner_alive(label) is False


class FakeAPI:
    """The two low-level calls sweep makes, over an in-memory list of containers."""

    def __init__(self, containers: dict[str, dict[str, str]]) -> None:
        self.containers_by_id = containers
        self.removed: list[str] = []

    def containers(self, all: bool, filters: dict) -> list[dict]:
        assert all and filters == {"label": [LABEL]}
        return [{"Id": cid, "Labels": labels} for cid, labels in self.containers_by_id.items()]

    def remove_container(self, cid: str, force: bool) -> None:
        if cid == "vanished":
            raise RuntimeError("404 No such container")  # removed in between by its own run
        self.removed.append(cid)


class FakeClient:
    def __init__(self, containers: dict[str, dict[str, str]]) -> None:
        self.api = FakeAPI(containers)


def test_sweep_removes_only_containers_whose_owner_is_gone(sleeper):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_label = owner_of(dead.pid)
    dead.wait()
    _, boot, pid, started = owner_of(os.getpid()).rsplit("/", 3)
    client = FakeClient({
        "mine": {LABEL: "1", OWNER_LABEL: owner_of(os.getpid())},
        "running-batch": {LABEL: "1", OWNER_LABEL: owner_of(sleeper.pid)},
        "other-host": {LABEL: "1", OWNER_LABEL: f"elsewhere/{boot}/{pid}/{started}"},
        "crashed": {LABEL: "1", OWNER_LABEL: dead_label},
        "old-version": {LABEL: "1"},
        "vanished": {LABEL: "1", OWNER_LABEL: dead_label},
    })
    assert sweep(client) == 2
    assert client.api.removed == ["crashed", "old-version"]


@pytest.mark.docker
def test_a_second_run_on_the_same_engine_keeps_a_running_batchs_containers(
        docker_client, grading_image, course, sleeper):
    """Real containers: make_sandbox (what `mpgrade grade` and `mpgrade serve` start with)
    sweeps only the one whose owner died."""
    from grader.cli_common import make_sandbox

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    labels = {"running": owner_of(sleeper.pid), "crashed": owner_of(dead.pid)}
    dead.wait()
    made = {}
    try:
        for name, label in labels.items():
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

