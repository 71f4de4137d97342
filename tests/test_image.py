"""Tests for grader/image.py and the docker/ build inputs.

Pure tests run everywhere. Tests marked ``docker`` build the real grading
image offline (debootstrap base, cached after the first run: ~1-2 min once,
then seconds) and look inside it; they skip when no Docker engine is
reachable, except under ``CI=true`` where that is a failure.
"""

from __future__ import annotations

import os
import re
import shutil
import time
from pathlib import Path

import pytest

from grader import image as image_mod
from grader.image import (
    DEFAULT_IMAGE_REPO,
    ImageBuildError,
    build_image,
    checkout_root,
    collect_wheels,
    ensure_offline_base,
    image_exists,
    image_tag,
    wheel_cache_dir,
)

REPO = Path(__file__).resolve().parents[1]
TAG_RE = re.compile(rf"^{DEFAULT_IMAGE_REPO}:[0-9a-f]{{12}}$")
IMPORTS = "import grader, pytest, pytest_jsonreport, pytest_timeout, psutil, jsonschema"


# ------------------------------------------------------------------ fixtures


def _copy_checkout(dest: Path) -> Path:
    """Copy the files the tag depends on into ``dest`` (not the whole repo)."""
    (dest / "docker").mkdir(parents=True)
    for rel in ("docker/Dockerfile", "docker/requirements.txt", "pyproject.toml"):
        shutil.copy2(REPO / rel, dest / rel)
    shutil.copytree(REPO / "grader", dest / "grader", ignore=shutil.ignore_patterns("__pycache__"))
    return dest


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return _copy_checkout(tmp_path / "repo")


class _FakeImages:
    def get(self, tag: str) -> None:
        from docker.errors import ImageNotFound

        raise ImageNotFound(f"no such image: {tag}")


class _FakeClient:
    """Just enough of DockerClient for image_exists(): every image is missing."""

    images = _FakeImages()


@pytest.fixture(scope="module")
def docker_client():
    """A reachable Docker engine; skip without one, but fail under CI=true."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as exc:  # noqa: BLE001 - any failure means "no engine"
        msg = f"Docker engine not reachable: {exc}"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    yield client
    client.close()


@pytest.fixture(scope="module")
def grader_image(docker_client) -> str:
    """Build (or reuse) the offline grading image of this checkout."""
    return build_image(REPO, offline=True, client=docker_client, log=lambda _line: None)


# ---------------------------------------------------------------- tag (pure)


def test_tag_format_and_stable(checkout: Path) -> None:
    tag = image_tag(checkout)
    assert TAG_RE.match(tag), tag
    assert image_tag(checkout) == tag


def test_tag_does_not_depend_on_location(checkout: Path, tmp_path: Path) -> None:
    other = _copy_checkout(tmp_path / "elsewhere" / "repo")
    assert image_tag(other) == image_tag(checkout)


def test_tag_changes_when_grader_file_changes(checkout: Path) -> None:
    before = image_tag(checkout)
    init = checkout / "grader" / "__init__.py"
    original = init.read_bytes()
    init.write_bytes(original + b"\n# changed\n")
    changed = image_tag(checkout)
    assert changed != before
    init.write_bytes(original)
    assert image_tag(checkout) == before


def test_tag_changes_when_grader_file_added(checkout: Path) -> None:
    before = image_tag(checkout)
    (checkout / "grader" / "_boot" / "extra.py").write_text("X = 1\n")
    assert image_tag(checkout) != before


@pytest.mark.parametrize("rel", ["docker/Dockerfile", "docker/requirements.txt", "pyproject.toml"])
def test_tag_changes_with_build_inputs(checkout: Path, rel: str) -> None:
    before = image_tag(checkout)
    with (checkout / rel).open("a") as fh:
        fh.write("\n# changed\n")
    assert image_tag(checkout) != before


def test_tag_ignores_bytecode(checkout: Path) -> None:
    before = image_tag(checkout)
    cache = checkout / "grader" / "__pycache__"
    cache.mkdir(exist_ok=True)
    (cache / "__init__.cpython-311.pyc").write_bytes(b"\0" * 16)
    (checkout / "grader" / "stray.pyc").write_bytes(b"\0" * 16)
    assert image_tag(checkout) == before


def test_tag_ignores_files_outside_inputs(checkout: Path) -> None:
    before = image_tag(checkout)
    (checkout / "README.md").write_text("docs only\n")
    (checkout / "docker" / "notes.txt").write_text("not in the image\n")
    assert image_tag(checkout) == before


def test_tag_of_incomplete_checkout_is_an_error(checkout: Path) -> None:
    (checkout / "docker" / "Dockerfile").unlink()
    with pytest.raises(ImageBuildError, match="Dockerfile"):
        image_tag(checkout)


def test_checkout_root_from_inside_the_package() -> None:
    assert checkout_root(REPO / "grader" / "image.py") == REPO


# ------------------------------------------------------- build inputs (pure)


def _requirements() -> dict[str, str]:
    pins: dict[str, str] = {}
    for raw in (REPO / "docker" / "requirements.txt").read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        name, sep, version = line.partition("==")
        assert sep and version, f"not pinned with ==: {raw!r}"
        pins[name.strip().lower().replace("_", "-")] = version.strip()
    return pins


def test_requirements_are_pinned_and_container_only() -> None:
    pins = _requirements()
    needed = {
        "pytest", "pytest-json-report", "pytest-timeout", "psutil", "jsonschema",
        "attrs", "referencing", "rpds-py", "jsonschema-specifications", "typing-extensions",
        "iniconfig", "packaging", "pluggy",
    }  # fmt: skip
    assert needed <= pins.keys()
    assert not {"click", "rich", "docker", "nbformat", "mpgrade"} & pins.keys()


def test_dockerfile_contract() -> None:
    text = (REPO / "docker" / "Dockerfile").read_text()
    lines = [
        ln.strip() for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")
    ]
    assert lines[0] == "ARG BASE=python:3.11-slim"
    assert lines[1].startswith("FROM ${BASE}")
    assert not any(ln.upper().startswith("USER ") for ln in lines), (
        "the harness drops privileges itself"
    )
    assert "PYTHONDONTWRITEBYTECODE=1" in text
    assert "--no-index" in text and "--no-deps" in text


def test_target_args_select_cpython311_manylinux() -> None:
    args = image_mod._target_args("x86_64")
    assert "--only-binary=:all:" in args
    assert args[args.index("--python-version") + 1] == "3.11"
    platforms = {args[i + 1] for i, a in enumerate(args) if a == "--platform"}
    assert {"manylinux_2_36_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64"} <= platforms
    assert "manylinux_2_37_x86_64" not in platforms  # bookworm's glibc is 2.36


# --------------------------------------------------------- wheelhouse (pure)


def test_wheel_cache_dir_default_and_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("MPGRADE_WHEELHOUSE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert wheel_cache_dir() == (tmp_path / "cache" / "mpgrade" / "wheels", False)
    monkeypatch.setenv("MPGRADE_WHEELHOUSE", str(tmp_path / "lab"))
    assert wheel_cache_dir() == (tmp_path / "lab", True)


def test_empty_pinned_wheelhouse_fails_without_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """MPGRADE_WHEELHOUSE means --no-index only: a missing wheel is an error, not a download."""
    (tmp_path / "lab").mkdir()
    monkeypatch.setenv("MPGRADE_WHEELHOUSE", str(tmp_path / "lab"))
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # ignore this machine's find-links
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    with pytest.raises(ImageBuildError, match="MPGRADE_WHEELHOUSE") as info:
        collect_wheels(REPO, tmp_path / "wheels", arch="x86_64", log=lambda _line: None)
    assert "\n" not in str(info.value)
    assert not list((tmp_path / "lab").iterdir()), "nothing may be downloaded into it"


# ------------------------------------------------------------ errors (pure)


def test_unreachable_docker_is_an_actionable_error(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such-docker.sock")
    with pytest.raises(ImageBuildError, match="Docker engine not reachable") as info:
        build_image(REPO, offline=True, log=lambda _line: None)
    assert "\n" not in str(info.value)


def test_unreachable_given_client_is_an_actionable_error(tmp_path: Path) -> None:
    import docker

    client = docker.DockerClient(base_url=f"unix://{tmp_path}/no-such.sock", version="1.41")
    with pytest.raises(ImageBuildError, match="Docker engine not reachable"):
        build_image(REPO, offline=True, client=client, log=lambda _line: None)


def test_missing_debootstrap_is_an_actionable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_mod, "_find_debootstrap", lambda: None)
    with pytest.raises(ImageBuildError, match="apt-get install debootstrap"):
        ensure_offline_base(_FakeClient(), log=lambda _line: None)  # type: ignore[arg-type]


def test_debootstrap_needs_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(image_mod, "_find_debootstrap", lambda: "/usr/sbin/debootstrap")
    monkeypatch.setattr(image_mod.os, "geteuid", lambda: 1000)
    with pytest.raises(ImageBuildError, match="root"):
        ensure_offline_base(_FakeClient(), log=lambda _line: None)  # type: ignore[arg-type]


def test_offline_build_with_absent_base_does_not_pull(monkeypatch: pytest.MonkeyPatch) -> None:
    class Client(_FakeClient):
        def ping(self) -> bool:
            return True

    with pytest.raises(ImageBuildError, match="not present locally"):
        build_image(REPO, offline=True, base="no-such/base:1", client=Client(), log=lambda _l: None)  # type: ignore[arg-type]


# ------------------------------------------------------------- docker image


def _run(client, tag: str, command: list[str], **kwargs) -> str:
    out = client.containers.run(
        tag,
        command,
        network_mode="none",
        read_only=True,
        remove=True,
        stdout=True,
        stderr=True,
        **kwargs,
    )
    return out.decode()


@pytest.mark.docker
def test_image_runs_the_grader_stack_read_only(docker_client, grader_image: str) -> None:
    assert TAG_RE.match(grader_image)
    assert image_exists(docker_client, grader_image)
    probe = (
        f"{IMPORTS}; import importlib.util, os, sys; "
        "assert sys.flags.dont_write_bytecode; "
        "assert sys.prefix == '/opt/mpgrade', sys.prefix; "
        "assert os.path.exists(importlib.util.cache_from_source(grader.__file__)); "
        "assert os.path.exists(importlib.util.cache_from_source(pytest.__file__)); "
        "assert os.path.isdir('/job') and os.path.isdir('/work'); "
        "print('ok', sys.version_info[:2])"
    )
    out = _run(docker_client, grader_image, ["/opt/mpgrade/bin/python", "-c", probe])
    assert out.strip() == "ok (3, 11)"


@pytest.mark.docker
def test_image_is_usable_by_the_student_uid(docker_client, grader_image: str) -> None:
    out = _run(
        docker_client,
        grader_image,
        ["/opt/mpgrade/bin/python", "-c", f"{IMPORTS}; import os; print(os.getuid())"],
        user="10001:10001",
        cap_drop=["ALL"],
    )
    assert out.strip() == "10001"


@pytest.mark.docker
def test_image_metadata(docker_client, grader_image: str) -> None:
    img = docker_client.images.get(grader_image)
    config = img.attrs["Config"]
    assert not config.get("User"), "no USER: the harness starts as root and drops to 10001"
    assert "PYTHONDONTWRITEBYTECODE=1" in config["Env"]
    assert config["WorkingDir"] == "/job"
    assert img.labels["mpgrade.source-hash"] == grader_image.partition(":")[2]


@pytest.mark.docker
def test_second_build_reuses_the_image(docker_client, grader_image: str) -> None:
    lines: list[str] = []
    started = time.monotonic()
    tag = build_image(REPO, offline=True, client=docker_client, log=lines.append)
    elapsed = time.monotonic() - started
    assert tag == grader_image
    assert any("up to date" in line for line in lines), lines
    assert not any(line.startswith("building") for line in lines), lines
    assert elapsed < 10, f"reuse took {elapsed:.1f}s"
