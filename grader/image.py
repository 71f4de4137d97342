"""Build (or reuse) the Docker image that grading containers run.

Why this module exists, and the choices it makes:

* **Content-addressed tags.** :func:`image_tag` hashes everything that ends up
  in the image (Dockerfile, pinned container requirements, ``pyproject.toml``
  and the ``grader`` package source), so an unchanged checkout reuses its image
  and any change to the grader yields a new tag. The sandbox asks the same
  function which image to run, so host and container code never drift apart.
* **No network inside ``docker build``.** Grading hosts often have a Docker
  daemon that cannot reach PyPI (proxies, TLS interception, ``--bridge=none``).
  All wheels are therefore resolved on the host, for CPython 3.11 on manylinux,
  into a cache (``~/.cache/mpgrade/wheels``), copied into a throw-away build
  context, and installed with ``pip --no-index``. The build runs with
  ``network_mode="none"``.
* **Offline base image.** Where no image registry is reachable,
  ``offline=True`` makes the base image from Debian packages with
  ``debootstrap`` (bookworm, ``python3`` + ``python3-venv``) and imports it as
  :data:`OFFLINE_BASE_IMAGE`; it is made once and reused.
* **Air-gapped labs.** Set ``MPGRADE_WHEELHOUSE=/path/to/wheels`` to a
  directory pre-filled with the wheels of ``docker/requirements.txt`` (for
  CPython 3.11, manylinux) plus the build requirements of ``pyproject.toml``
  (setuptools); it is then used with ``--no-index`` only and nothing is
  downloaded. Copying a filled ``~/.cache/mpgrade/wheels`` is the easy way.

Everything a user can fix is raised as :class:`ImageBuildError` with a
one-line message; callers (the CLI) print it and exit.

``docker`` (the SDK) is imported lazily: this module ships inside the image
too, where the SDK is deliberately not installed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - typing only
    from docker import DockerClient

    from grader.assignment import Assignment

__all__ = [
    "DEFAULT_BASE_IMAGE",
    "DEFAULT_IMAGE_REPO",
    "OFFLINE_BASE_IMAGE",
    "WHEELHOUSE_ENV",
    "ImageBuildError",
    "build_image",
    "build_prairielearn_image",
    "checkout_root",
    "ensure_offline_base",
    "image_exists",
    "image_tag",
    "prairielearn_tag",
    "wheel_cache_dir",
]

DEFAULT_IMAGE_REPO = "mpgrade-grader"
"""Repository part of every grading image tag."""

DEFAULT_BASE_IMAGE = "python:3.11-slim"
"""Base for online builds (pulled by the daemon if missing); the Dockerfile default."""

OFFLINE_BASE_IMAGE = "mpgrade-base:bookworm-py3"
"""Base made by :func:`ensure_offline_base`: Debian bookworm minbase + python3 + python3-venv."""

WHEELHOUSE_ENV = "MPGRADE_WHEELHOUSE"
"""Env var naming a pre-filled wheel directory used with ``--no-index`` only (no download)."""

DEBIAN_SUITE = "bookworm"
DEBIAN_MIRROR_ENV = "MPGRADE_DEBIAN_MIRROR"
DEFAULT_DEBIAN_MIRROR = "http://deb.debian.org/debian"

#: Python of the image: bookworm's python3 and python:3.11-slim are both 3.11.
IMAGE_PYTHON_VERSION = "3.11"
#: Newest glibc the wheels may need: bookworm's (the oldest base we support).
_MAX_GLIBC_MINOR = 36

_HASHED_FILES = ("docker/Dockerfile", "docker/requirements.txt", "pyproject.toml")
_HASHED_TREES = ("grader",)
_IGNORED_DIRS = frozenset({"__pycache__"})
_IGNORED_SUFFIXES = (".pyc", ".pyo")
_PROJECT_FILES = ("pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in")


class ImageBuildError(RuntimeError):
    """The image could not be built; ``str(exc)`` is one actionable line."""


Log = Callable[[str], None]


# --------------------------------------------------------------------------- tags


def checkout_root(start: Path | None = None) -> Path:
    """Return the mpgrade checkout containing ``start`` (default: this file).

    The image is built from a source checkout (it needs ``docker/``), so the
    CLI and the sandbox need a way to find it without being told.
    """
    here = (start or Path(__file__)).resolve()
    for candidate in (here, *here.parents):
        if (candidate / "docker" / "Dockerfile").is_file() and (candidate / "grader").is_dir():
            return candidate
    raise ImageBuildError(
        f"no mpgrade checkout (docker/Dockerfile + grader/) found above {here}: "
        "run from the mpgrade source tree"
    )


def _hashed_paths(root: Path) -> list[str]:
    """Relative POSIX paths of every file that goes into the image, sorted."""
    paths: list[str] = []
    for rel in _HASHED_FILES:
        if not (root / rel).is_file():
            raise ImageBuildError(f"{root / rel} is missing: is {root} an mpgrade checkout?")
        paths.append(rel)
    for tree in _HASHED_TREES:
        base = root / tree
        if not base.is_dir():
            raise ImageBuildError(f"{base} is missing: is {root} an mpgrade checkout?")
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = [d for d in dirnames if d not in _IGNORED_DIRS]
            for name in filenames:
                if name.endswith(_IGNORED_SUFFIXES):
                    continue
                paths.append((Path(dirpath) / name).relative_to(root).as_posix())
    return sorted(paths)


def _content_hash(root: Path) -> str:
    """sha256 over (path, size, bytes) of every hashed file; path-independent of ``root``."""
    digest = hashlib.sha256()
    for rel in _hashed_paths(root):
        data = (root / rel).read_bytes()
        digest.update(rel.encode())
        digest.update(b"\0")
        digest.update(str(len(data)).encode())
        digest.update(b"\0")
        digest.update(data)
    return digest.hexdigest()


def image_tag(root: Path) -> str:
    """Return ``mpgrade-grader:<hash12>`` for the checkout at ``root``.

    The hash covers ``docker/Dockerfile``, ``docker/requirements.txt``,
    ``pyproject.toml`` (packages, entry points and package data shape the
    wheel) and every file of the ``grader`` package (``__pycache__`` and
    ``*.pyc`` ignored). Same sources, same tag: the image is not rebuilt.
    """
    return f"{DEFAULT_IMAGE_REPO}:{_content_hash(Path(root))[:12]}"


# ------------------------------------------------------------------------- docker


def _connect(client: DockerClient | None) -> DockerClient:
    """Return a working client, or raise an actionable error."""
    try:
        import docker  # lazy: not installed inside the grading image
        from docker.errors import DockerException
        from requests.exceptions import RequestException
    except ImportError as exc:  # pragma: no cover - docker is a host dependency
        raise ImageBuildError(
            f"the Docker SDK for Python is not installed ({exc}): pip install 'docker>=7'"
        ) from exc
    try:
        if client is None:
            client = docker.from_env()
        client.ping()
    except (DockerException, RequestException, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageBuildError(
            f"Docker engine not reachable ({first}): start dockerd or set DOCKER_HOST"
        ) from exc
    return client


def image_exists(client: DockerClient, tag: str) -> bool:
    """True when the daemon has an image named ``tag`` locally (never pulls)."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(tag)
    except ImageNotFound:
        return False
    return True


def _daemon_arch(client: DockerClient) -> str:
    """Machine name (``x86_64``/``aarch64``) of the daemon: wheels are for *its* CPU."""
    arch = str(client.info().get("Architecture") or os.uname().machine)
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(arch, arch)


# ------------------------------------------------------------------------- wheels


def wheel_cache_dir() -> tuple[Path, bool]:
    """Return ``(directory, pinned)`` where wheels are looked up.

    ``pinned`` is True when :data:`WHEELHOUSE_ENV` is set: that directory is
    then the only source (``--no-index``), nothing is downloaded. Otherwise the
    per-user cache ``$XDG_CACHE_HOME/mpgrade/wheels`` is used and filled on demand.
    """
    pinned = os.environ.get(WHEELHOUSE_ENV)
    if pinned:
        return Path(pinned).expanduser(), True
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mpgrade" / "wheels", False


def _target_args(arch: str) -> list[str]:
    """pip options selecting wheels for the image (CPython 3.11, glibc <= bookworm's).

    pip does not expand ``manylinux_2_X`` to older glibc levels by itself, so
    every level is listed.
    """
    args = [
        "--only-binary=:all:",
        "--implementation", "cp",
        "--python-version", IMAGE_PYTHON_VERSION,
        "--abi", "cp" + IMAGE_PYTHON_VERSION.replace(".", ""),
    ]  # fmt: skip
    platforms = [f"manylinux_2_{m}_{arch}" for m in range(_MAX_GLIBC_MINOR, 16, -1)]
    platforms.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        platforms += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    for plat in platforms:
        args += ["--platform", plat]
    return args


def _pip_error_line(output: str) -> str:
    """The most useful single line of a failed pip run."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    if errors:
        return errors[0].removeprefix("ERROR:").strip()
    useful = [ln for ln in lines if not ln.startswith("WARNING:")]
    return (useful or lines or ["no output"])[-1]


def _pip(args: Iterable[str], *, what: str) -> None:
    """Run the host's ``python -m pip``; raise ImageBuildError(``what``: reason) on failure."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", *args]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise ImageBuildError(f"{what}: cannot run pip ({exc})") from exc
    if proc.returncode != 0:
        raise ImageBuildError(f"{what}: {_pip_error_line(proc.stdout + proc.stderr)}")


def _build_requires(root: Path) -> list[str]:
    """``[build-system].requires`` of pyproject.toml (what ``pip wheel`` needs)."""
    try:
        data = tomllib.loads((root / "pyproject.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImageBuildError(f"cannot read {root / 'pyproject.toml'}: {exc}") from exc
    requires = data.get("build-system", {}).get("requires") or ["setuptools>=40.8.0", "wheel"]
    return [str(r) for r in requires]


def _fetch(
    spec: list[str],
    dest: Path,
    *,
    wheelhouse: Path,
    pinned: bool,
    target: list[str],
    what: str,
    log: Log,
) -> None:
    """Put the wheels for ``spec`` into ``dest``, from the wheelhouse first.

    A no-index attempt avoids any network use when the cache is already
    filled; only if it fails (and no pinned wheelhouse is configured) are the
    wheels downloaded into the cache, then copied again.
    """
    wheelhouse.mkdir(parents=True, exist_ok=True)
    local = [
        "download",
        "--no-index",
        "--find-links",
        str(wheelhouse),
        *target,
        *spec,
        "-d",
        str(dest),
    ]
    try:
        _pip(local, what=what)
        return
    except ImageBuildError as exc:
        if pinned:
            raise ImageBuildError(
                f"{WHEELHOUSE_ENV}={wheelhouse} lacks wheels ({exc}); fill it with "
                f"`pip download` for CPython {IMAGE_PYTHON_VERSION} manylinux, or unset it"
            ) from exc
    log(f"{what}: downloading into {wheelhouse} ...")
    _pip(["download", *target, *spec, "-d", str(wheelhouse)], what=f"{what} (pip download)")
    _pip(local, what=what)


def _copy_project_source(root: Path, dest: Path) -> None:
    """Copy what ``pip wheel`` needs (pyproject, README, ``grader/``) to ``dest``.

    Building from a copy keeps ``build/`` and ``*.egg-info`` out of the
    checkout and makes the wheel match exactly the files :func:`image_tag` hashed.
    """
    dest.mkdir(parents=True)
    for name in _PROJECT_FILES:
        if (root / name).is_file():
            shutil.copy2(root / name, dest / name)
    for readme in root.glob("README*"):
        if readme.is_file():
            shutil.copy2(readme, dest / readme.name)
    for license_file in root.glob("LICEN[CS]E*"):
        if license_file.is_file():
            shutil.copy2(license_file, dest / license_file.name)
    for tree in _HASHED_TREES:
        shutil.copytree(
            root / tree,
            dest / tree,
            ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.pyo"),
        )


def collect_wheels(root: Path, dest: Path, *, arch: str, log: Log = print) -> None:
    """Fill ``dest`` with every wheel the image installs, mpgrade's own included.

    Requirement wheels are resolved for the image's platform (``arch``), the
    mpgrade wheel is built from a copy of the source with ``--no-index``
    against the wheelhouse (so air-gapped builds work too).
    """
    wheelhouse, pinned = wheel_cache_dir()
    dest.mkdir(parents=True, exist_ok=True)
    common = {"wheelhouse": wheelhouse, "pinned": pinned, "log": log}
    _fetch(
        ["-r", str(root / "docker" / "requirements.txt")],
        dest,
        target=_target_args(arch),
        what="fetching the image's wheels (docker/requirements.txt)",
        **common,
    )
    # Build requirements run on the host, so no platform options; they only
    # need to be in the wheelhouse (pip download into it is a no-op copy).
    _fetch(
        ["--only-binary=:all:", *_build_requires(root)],
        wheelhouse,
        target=[],
        what="fetching the build requirements of pyproject.toml",
        **common,
    )
    with tempfile.TemporaryDirectory(prefix="mpgrade-src-") as tmp:
        src = Path(tmp) / "src"
        _copy_project_source(root, src)
        _pip(
            [
                "wheel",
                "--no-deps",
                "--no-index",
                "--find-links",
                str(wheelhouse),
                str(src),
                "-w",
                str(dest),
            ],
            what="building the mpgrade wheel (pip wheel)",
        )
    if not list(dest.glob("mpgrade-*.whl")):
        raise ImageBuildError(
            "pip wheel produced no mpgrade-*.whl: check pyproject.toml's [project] name"
        )


def prepare_context(root: Path, context: Path, *, arch: str, log: Log = print) -> None:
    """Lay out the build context described at the top of docker/Dockerfile."""
    context.mkdir(parents=True, exist_ok=True)
    shutil.copy2(root / "docker" / "Dockerfile", context / "Dockerfile")
    shutil.copy2(root / "docker" / "requirements.txt", context / "requirements.txt")
    collect_wheels(root, context / "wheels", arch=arch, log=log)


# ---------------------------------------------------------------- offline base


def _find_debootstrap() -> str | None:
    """debootstrap lives in /usr/sbin, which a non-root PATH often lacks."""
    return shutil.which("debootstrap") or next(
        (p for p in ("/usr/sbin/debootstrap", "/sbin/debootstrap") if os.access(p, os.X_OK)),
        None,
    )


def _mounts_under(path: Path) -> list[str]:
    """Mount points below ``path`` (debootstrap mounts proc/sys in the target)."""
    prefix = str(path.resolve()).rstrip("/") + "/"
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return []
    points = []
    for line in lines:
        fields = line.split()
        if len(fields) > 1:
            point = fields[1].replace("\\040", " ")
            if point.startswith(prefix):
                points.append(point)
    return sorted(points, reverse=True)


def _remove_tree(path: Path, log: Log) -> None:
    """Delete a debootstrap dir, never following into a still-mounted /proc or /sys."""
    for point in _mounts_under(path):
        subprocess.run(["umount", "-l", point], capture_output=True, check=False)
    left = _mounts_under(path)
    if left:
        log(f"warning: not removing {path}: still mounted: {', '.join(left)}")
        return
    shutil.rmtree(path, ignore_errors=True)


def _slim_rootfs(rootfs: Path) -> None:
    """Drop apt caches/lists, docs, man pages and translations from the rootfs."""
    for rel in (
        "var/cache/apt",
        "var/lib/apt/lists",
        "usr/share/doc",
        "usr/share/man",
        "usr/share/info",
        "usr/share/locale",
        "var/log",
        "tmp",
        "debootstrap",
    ):
        target = rootfs / rel
        if not target.is_dir():
            continue
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child, ignore_errors=True)
            else:
                child.unlink(missing_ok=True)
    (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
    (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True, exist_ok=True)


def _tail(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    return lines[-1] if lines else "no output"


def ensure_offline_base(
    client: DockerClient,
    *,
    log: Log = print,
    mirror: str | None = None,
    force: bool = False,
) -> str:
    """Return :data:`OFFLINE_BASE_IMAGE`, making it with debootstrap if missing.

    Needs root and ``debootstrap`` on the host and a reachable Debian mirror
    (``$MPGRADE_DEBIAN_MIRROR``, default deb.debian.org), but no image registry.
    Takes about a minute once; later builds reuse the image.
    """
    if not force and image_exists(client, OFFLINE_BASE_IMAGE):
        log(f"base image {OFFLINE_BASE_IMAGE} present, reusing it")
        return OFFLINE_BASE_IMAGE
    exe = _find_debootstrap()
    if exe is None:
        raise ImageBuildError(
            "debootstrap not found (needed once for --offline): apt-get install debootstrap"
        )
    if os.geteuid() != 0:
        raise ImageBuildError(
            "debootstrap must run as root: run the offline image build as root once, "
            "or pass --base IMAGE with python3 3.11 and python3-venv"
        )
    mirror = mirror or os.environ.get(DEBIAN_MIRROR_ENV) or DEFAULT_DEBIAN_MIRROR
    tmp = Path(tempfile.mkdtemp(prefix="mpgrade-debootstrap-"))
    rootfs = tmp / "rootfs"
    output = tmp / "debootstrap.log"
    try:
        log(f"making {OFFLINE_BASE_IMAGE} with debootstrap ({DEBIAN_SUITE}, {mirror}); ~1 min ...")
        started = time.monotonic()
        with output.open("wb") as out:
            proc = subprocess.run(
                [
                    exe,
                    "--variant=minbase",
                    "--include=python3,python3-venv",
                    DEBIAN_SUITE,
                    str(rootfs),
                    mirror,
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                check=False,
            )
        if proc.returncode != 0:
            raise ImageBuildError(
                f"debootstrap failed (exit {proc.returncode}): {_tail(output)}; "
                f"check that {mirror} is reachable or set {DEBIAN_MIRROR_ENV}"
            )
        log(f"debootstrap done in {time.monotonic() - started:.0f}s; importing into Docker ...")
        _slim_rootfs(rootfs)
        tarball = tmp / "rootfs.tar"
        tar = subprocess.run(
            ["tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tarball), "."],
            capture_output=True,
            text=True,
            check=False,
        )
        if tar.returncode != 0:
            raise ImageBuildError(
                f"tar of the debootstrap rootfs failed: {_pip_error_line(tar.stderr)}"
            )
        repository, _, tag = OFFLINE_BASE_IMAGE.partition(":")
        from docker.errors import DockerException

        try:
            client.api.import_image_from_file(
                str(tarball),
                repository=repository,
                tag=tag,
                changes=[
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "ENV LANG=C.UTF-8",
                    'CMD ["/bin/bash"]',
                ],
            )
        except DockerException as exc:
            raise ImageBuildError(f"docker import of the base image failed: {exc}") from exc
        if not image_exists(client, OFFLINE_BASE_IMAGE):
            raise ImageBuildError(f"docker import did not create {OFFLINE_BASE_IMAGE}")
        log(f"base image {OFFLINE_BASE_IMAGE} ready ({time.monotonic() - started:.0f}s)")
        return OFFLINE_BASE_IMAGE
    finally:
        _remove_tree(tmp, log)


# ------------------------------------------------------------------------- build


def _stream_build(client: DockerClient, **kwargs: Any) -> Iterator[str]:
    """Yield build output lines; raise ImageBuildError on the daemon's error."""
    from docker.errors import DockerException
    from requests.exceptions import RequestException

    try:
        for chunk in client.api.build(decode=True, **kwargs):
            if "error" in chunk:
                detail = str(chunk.get("error") or "").strip().splitlines()
                raise ImageBuildError(
                    f"docker build failed: {detail[-1] if detail else 'unknown error'}"
                )
            text = chunk.get("stream")
            if text:
                for line in str(text).splitlines():
                    if line.strip():
                        yield line.rstrip()
    except (DockerException, RequestException) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ImageBuildError(f"docker build failed: {first}") from exc


def build_image(
    root: Path,
    *,
    offline: bool,
    base: str | None = None,
    client: DockerClient | None = None,
    log: Log = print,
    force: bool = False,
) -> str:
    """Make sure the grading image for ``root`` exists; return its tag.

    * Returns at once when :func:`image_tag` already exists (unless ``force``).
    * ``offline=False``: builds ``FROM base`` (default ``python:3.11-slim``),
      which the daemon pulls if it does not have it yet.
    * ``offline=True``: never pulls. Without ``base`` the Debian base
      :data:`OFFLINE_BASE_IMAGE` is made with debootstrap (once); a given
      ``base`` must already be present locally.

    Wheels are always prepared on the host (see module docstring) and the
    build itself runs without network.
    """
    root = Path(root).resolve()
    tag = image_tag(root)
    client = _connect(client)
    if not force and image_exists(client, tag):
        log(f"image {tag} is up to date")
        return tag

    started = time.monotonic()
    if offline:
        if base is None:
            base = ensure_offline_base(client, log=log)
        elif not image_exists(client, base):
            raise ImageBuildError(
                f"base image {base} not present locally and offline builds do not pull: "
                f"docker load/import it, or drop --base to make {OFFLINE_BASE_IMAGE}"
            )
    else:
        base = base or DEFAULT_BASE_IMAGE
        if not image_exists(client, base):
            log(f"base image {base} not present locally; the daemon will pull it")

    arch = _daemon_arch(client)
    with tempfile.TemporaryDirectory(prefix="mpgrade-context-") as tmp:
        context = Path(tmp)
        log(f"preparing build context (wheels for CPython {IMAGE_PYTHON_VERSION}/{arch}) ...")
        prepare_context(root, context, arch=arch, log=log)
        log(f"building {tag} FROM {base} ...")
        try:
            for line in _stream_build(
                client,
                path=str(context),
                tag=tag,
                buildargs={"BASE": base},
                labels={"mpgrade.base": base, "mpgrade.source-hash": tag.partition(":")[2]},
                rm=True,
                forcerm=True,
                pull=False,
                network_mode="none",
                timeout=None,
            ):
                log(f"  {line}")
        except ImageBuildError as exc:
            if not offline and not image_exists(client, base):
                raise ImageBuildError(f"{exc} (could not get base {base}; try --offline)") from exc
            raise
    if not image_exists(client, tag):
        raise ImageBuildError(f"docker build finished but {tag} does not exist")
    log(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag


# ----------------------------------------------------------------- PrairieLearn

PRAIRIELEARN_REPO = "mpgrade-prairielearn"
"""Repository part of the PrairieLearn external grader's tag."""

_PL_FILES = {  # build context name -> file of the checkout
    "Dockerfile": "docker/prairielearn.Dockerfile",
    "requirements.txt": "docker/prairielearn-requirements.txt",
    "entrypoint.sh": "docker/prairielearn-entrypoint.sh",
}


def _course_files(assignment: Assignment) -> dict[str, bytes]:
    """``course/<path>`` -> bytes: what grading reads of the course (``grading_files``)."""
    return {f"course/{p.relative_to(assignment.root).as_posix()}": p.read_bytes()
            for p in assignment.grading_files()}


def prairielearn_tag(root: Path, assignment: Assignment, grader: str | None = None) -> str:
    """``mpgrade-prairielearn:<hash12>`` of the grading image's tag (``grader``, default
    :func:`image_tag`), the layer's files and the course baked in: a changed test or grader
    means a new tag (PrairieLearn pulls by name, so push it under a name of yours:
    docs/prairielearn.md)."""
    root = Path(root)
    digest = hashlib.sha256((grader or image_tag(root)).encode() + b"\0")
    files = {name: (root / rel).read_bytes() for name, rel in _PL_FILES.items()}
    for name, data in sorted({**files, **_course_files(assignment)}.items()):
        digest.update(f"{name}\0{len(data)}\0".encode() + data)
    return f"{PRAIRIELEARN_REPO}:{digest.hexdigest()[:12]}"


def build_prairielearn_image(
    root: Path,
    assignment: Assignment,
    *,
    offline: bool,
    base: str | None = None,
    client: DockerClient | None = None,
    log: Log = print,
    force: bool = False,
    grader: str | None = None,
) -> str:
    """Make sure PrairieLearn's external grader image for ``assignment`` exists; return its tag.

    ``grader``: a grading image already built to build on (a test session's); default: the
    one :func:`build_image` builds or reuses for ``root``.

    It is the grading image (:func:`build_image`, built or reused first) plus one layer: the
    command line's few packages (``docker/prairielearn-requirements.txt``, wheels fetched on the
    host like every other), the course's manifest, helpers and tests in ``/opt/mpgrade-course``
    (root's only) and the entrypoint. The build runs without network, like the grading image's.
    """
    root = Path(root).resolve()
    for rel in _PL_FILES.values():
        if not (root / rel).is_file():
            raise ImageBuildError(f"{root / rel} is missing: is {root} an mpgrade checkout?")
    client = _connect(client)
    if grader is None:
        grader = build_image(root, offline=offline, base=base, client=client, log=log, force=force)
    elif not image_exists(client, grader):
        raise ImageBuildError(f"grading image {grader} not found: build it first (mpgrade image build)")
    tag = prairielearn_tag(root, assignment, grader)  # the image it is built FROM, whatever changed since
    if not force and image_exists(client, tag):
        log(f"image {tag} is up to date")
        return tag
    started = time.monotonic()
    wheelhouse, pinned = wheel_cache_dir()
    with tempfile.TemporaryDirectory(prefix="mpgrade-pl-context-") as tmp:
        context = Path(tmp)
        for name, rel in _PL_FILES.items():
            shutil.copy2(root / rel, context / name)
        for name, data in _course_files(assignment).items():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            (context / name).write_bytes(data)
        _fetch(["-r", str(context / "requirements.txt")], context / "wheels", wheelhouse=wheelhouse,
               pinned=pinned, target=_target_args(_daemon_arch(client)),
               what="fetching the PrairieLearn layer's wheels (docker/prairielearn-requirements.txt)", log=log)
        log(f"building {tag} FROM {grader} with {assignment.name} {assignment.version} ...")
        for line in _stream_build(
            client,
            path=str(context),
            tag=tag,
            buildargs={"GRADER": grader},
            labels={"mpgrade.grader-image": grader, "mpgrade.assignment": f"{assignment.name} {assignment.version}"},
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            timeout=None,
        ):
            log(f"  {line}")
    if not image_exists(client, tag):
        raise ImageBuildError(f"docker build finished but {tag} does not exist")
    log(f"built {tag} in {time.monotonic() - started:.0f}s")
    return tag
