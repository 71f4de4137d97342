"""Shared fixtures of the grader's own tests."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from grader import assignment as assignment_mod

REPO = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() == "true"


@pytest.fixture(scope="session")
def course() -> assignment_mod.Assignment:
    """The bundled multiprocessing assignment."""
    return assignment_mod.load(REPO)


@pytest.fixture
def make_module(tmp_path: Path):
    """Write a student module into a fresh folder: ``make_module("name", source) -> folder``."""

    def make(name: str, source: str) -> Path:
        folder = tmp_path / "student"
        folder.mkdir(exist_ok=True)
        (folder / f"{name}.py").write_text(source)
        return folder

    return make


@pytest.fixture
def course_copy(tmp_path: Path) -> Path:
    """A throwaway copy of the course repository's assignment (manifest, exercises, solutions)."""
    dest = tmp_path / "course"
    dest.mkdir()
    shutil.copy(REPO / "assignment.toml", dest)
    shutil.copytree(REPO / "exercises", dest / "exercises", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "solutions", dest / "solutions", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture(scope="session")
def docker_client():
    """A Docker client; skipped without an engine, except under CI=true where that is a failure."""
    from grader.sandbox.base import SandboxUnavailable
    from grader.sandbox.docker import connect

    try:
        return connect(timeout=30)
    except SandboxUnavailable as exc:
        if IN_CI:
            pytest.fail(f"CI=true but Docker is not usable: {exc}")
        pytest.skip(f"no Docker engine: {exc}")


@pytest.fixture(scope="session")
def grading_image(docker_client) -> str:
    """The grading image for the current sources, built offline if it is missing."""
    from grader import image

    root = image.find_root(REPO)
    tag = image.image_tag(root)
    if not image.image_exists(docker_client, tag):
        if not IN_CI and not os.environ.get("MPGRADE_BUILD_IMAGE"):
            pytest.skip(f"grading image {tag} not built (make image, or set MPGRADE_BUILD_IMAGE=1)")
        image.build_image(root, offline=True, client=docker_client)
    return tag
