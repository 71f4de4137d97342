"""An assignment is data: ``assignment.toml`` plus exercise folders.

The bottom layer of the package: everything else asks this module which exercises exist, which
files a student submits, where the public and hidden tests are and what the limits are. Nothing
about multiprocessing is hard-coded anywhere in the grader.
"""

from __future__ import annotations

import ast
import hashlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

MANIFEST = "assignment.toml"
# The start methods of ``multiprocessing`` an assignment may pin; the one list every layer uses.
START_METHODS = ("fork", "spawn", "forkserver")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MODULE_FILE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\.py$")
_HELPERS = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]*")  # one folder at the root, no path


class AssignmentError(ValueError):
    """The manifest or the exercise folders are not usable; the message says what to fix."""


@dataclass(frozen=True)
class Limits:
    call_timeout: float = 8.0
    test_timeout: float = 60.0
    submission_timeout: float = 600.0
    output_limit: int = 8 * 1024 * 1024

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


@dataclass(frozen=True)
class Exercise:
    id: str
    title: str
    files: tuple[str, ...]
    points: float
    public_dir: Path
    hidden_dir: Path
    hints: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Hints by diagnosis for this exercise's tests (``grader.harness.diagnosis``)."""

    @property
    def modules(self) -> tuple[str, ...]:
        return tuple(f[:-3] for f in self.files)

    public_patterns: tuple[str, ...] = ()
    """The public test files (``public_tests`` of the exercise, glob patterns). Empty: its
    ``test_public.py`` when there is one, else every ``test_*.py`` of the folder."""

    def public_tests(self) -> list[Path]:
        """The assignment's public tests: never a test file a student added next to them (in
        the student's copy of the course, ``make check`` would collect it)."""
        if self.public_patterns:
            return sorted({p for pattern in self.public_patterns for p in self.public_dir.glob(pattern)
                           if p.is_file()})
        default = self.public_dir / "test_public.py"
        if default.is_file():
            return [default]
        return sorted(self.public_dir.glob("test_*.py"))

    def other_tests(self) -> list[Path]:
        """Test files in the exercise folder that are not the assignment's (a student's own)."""
        mine = set(self.public_tests())
        return sorted(p for p in self.public_dir.glob("test*.py") if p not in mine)

    def hidden_tests(self) -> list[Path]:
        return sorted(self.hidden_dir.glob("test_*.py")) if self.hidden_dir.is_dir() else []

    def points_problem(self, tests_worth: float) -> str | None:
        """What is wrong when this exercise's tests are worth other points than the manifest
        says, or None. The one check of it: grading applies it to the tests that ran (the
        grade is then an ``error``, never a score against the wrong total), and the author's
        commands to the tests' markers beforehand (:meth:`Assignment.points_problems`)."""
        if abs(tests_worth - self.points) <= 1e-6:
            return None
        return f"the tests of {self.id} are worth {tests_worth:g} points, the manifest says {self.points:g}"

    def public_points(self) -> float:
        """What the public tests are worth: the maximum of a ``make check`` of this exercise.

        Read from the test files' ``points`` markers, never by importing them, because the
        host needs it exactly when no report came back (a check that timed out or broke) and
        must then still claim only what a check can score. See :func:`declared_points`.
        """
        return sum(declared_points(path) for path in self.public_tests())


@dataclass(frozen=True)
class Assignment:
    root: Path
    name: str
    version: str
    title: str
    start_method: str
    limits: Limits
    exercises: tuple[Exercise, ...]
    sandbox: dict[str, Any] = field(default_factory=dict)
    start_methods: tuple[str, ...] = ()
    hints: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    """Hints by diagnosis for every test (``[hints]``; ``grader.harness.diagnosis`` names them)."""
    helpers: str = ""
    """The folder (``[assignment] helpers``) of instructor functions tests pass to student code
    (``student.helper("probes.square")``). Shipped to the student's processes, which can read
    it: nothing secret belongs there. Empty: none."""
    """Every start method student code must work under (``[assignment] start_methods``);
    ``make check`` runs the public tests under each. Empty: only ``start_method``."""

    @property
    def helpers_dir(self) -> Path | None:
        return self.root / self.helpers if self.helpers else None

    def helper_files(self) -> list[Path]:
        """The helper modules shipped with every job (``*.py`` directly in the folder)."""
        folder = self.helpers_dir
        return sorted(p for p in folder.glob("*.py") if p.is_file()) if folder else []

    @property
    def check_start_methods(self) -> tuple[str, ...]:
        """The start methods ``make check`` runs the public tests under, the default first."""
        rest = tuple(m for m in self.start_methods if m != self.start_method)
        return (self.start_method, *rest)

    def exercise(self, ex_id: str) -> Exercise:
        for ex in self.exercises:
            if ex.id == ex_id:
                return ex
        known = ", ".join(e.id for e in self.exercises)
        raise AssignmentError(f"no exercise {ex_id!r} in {self.name} (exercises: {known})")

    def exercise_of_file(self, filename: str) -> Exercise | None:
        for ex in self.exercises:
            if filename in ex.files:
                return ex
        return None

    @property
    def max_score(self) -> float:
        return sum(ex.points for ex in self.exercises)

    @property
    def submitted_files(self) -> tuple[str, ...]:
        return tuple(f for ex in self.exercises for f in ex.files)

    def grading_files(self) -> list[Path]:
        """Everything of the course that grading reads (``grading.make_job`` sends a sandbox
        these and the submitted modules): the manifest, the helper modules and every test file.
        What an LMS's grading container is given of the course: no reference solutions, no
        mutants."""
        files = [self.root / MANIFEST, *self.helper_files()]
        for ex in self.exercises:
            files += ex.public_tests() + ex.hidden_tests()
        return files

    def points_problems(self) -> list[str]:
        """Each exercise whose tests' ``points`` markers add up to other points than the
        manifest says (:meth:`Exercise.points_problem`), found before anything is graded: every
        grade of such an assignment would be an ``error`` worth 0. Only exercises whose hidden
        tests are here (the author's copy, ``solutions/``) are counted: a student's copy holds
        the public tests alone. Markers are read statically (:func:`declared_points`)."""
        found = []
        for ex in self.exercises:
            if not ex.hidden_dir.is_dir():
                continue
            worth = sum(declared_points(path) for path in ex.public_tests() + ex.hidden_tests())
            problem = ex.points_problem(worth)
            if problem:
                found.append(problem)
        return found

    def fingerprint(self) -> str:
        """Hash of the manifest and every test file: a changed test means results must be redone."""
        h = hashlib.sha256()
        h.update((self.root / MANIFEST).read_bytes())
        for ex in self.exercises:
            for path in ex.public_tests() + ex.hidden_tests():
                h.update(str(path.relative_to(self.root)).encode() + b"\0" + path.read_bytes())
        return h.hexdigest()[:16]


def find_root(start: Path) -> Path | None:
    """The nearest folder at or above ``start`` that holds an ``assignment.toml``.

    Discovery only (the current folder of a command, a test file's folder): a folder someone
    named goes through :func:`locate`, which never looks above it.
    """
    start = start.resolve()
    for folder in [start, *start.parents]:
        if (folder / MANIFEST).is_file():
            return folder
    return None


def locate(named: Path | str | None, *, cwd: Path | None = None) -> Path:
    """The assignment folder a command means: ``named`` itself, else the one found from ``cwd``.

    A named folder (``--assignment DIR``) must hold the manifest: a typo or a subfolder never
    falls through to a parent's assignment, which would grade with other tests. Only without a
    name is the current folder's nearest assignment at or above it taken (:func:`find_root`).
    Raises AssignmentError naming the missing file.
    """
    if named is not None:
        folder = Path(named)
        if not (folder / MANIFEST).is_file():
            raise AssignmentError(f"no {MANIFEST} in {folder}")
        return folder
    start = cwd or Path.cwd()
    found = find_root(start)
    if found is None:
        raise AssignmentError(f"no {MANIFEST} in {start} or above; pass --assignment DIR")
    return found


def declared_points(test_file: Path) -> float:
    """The points the tests of one file declare, read statically as the plugin counts them.

    Each ``test*`` function (or method of a ``Test*`` class) is worth its closest ``points``
    marker (function, then class, then the module's ``pytestmark``; 1 without one), once per
    case of its ``parametrize`` markers. Only literal marker arguments are understood (computed
    points count as the default 1, computed cases as one case): the file is never imported,
    since this runs on the host exactly when the report is missing.
    """
    try:
        tree = ast.parse(test_file.read_bytes(), filename=str(test_file))
    except (OSError, SyntaxError, ValueError):
        return 0.0
    module_marks = _assigned_marks(tree.body)
    total = 0.0
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name.startswith("test"):
            total += _test_points(node.decorator_list, [module_marks])
        elif isinstance(node, ast.ClassDef) and node.name.startswith("Test"):
            class_marks = [*node.decorator_list, *_assigned_marks(node.body)]
            for item in node.body:
                if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef) and item.name.startswith("test"):
                    total += _test_points(item.decorator_list, [class_marks, module_marks])
    return total


def _assigned_marks(body: list[ast.stmt]) -> list[ast.expr]:
    """The markers of a ``pytestmark = mark`` or ``pytestmark = [mark, ...]`` in ``body``."""
    marks: list[ast.expr] = []
    for node in body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "pytestmark"
                                                for t in node.targets):
            value = node.value
            marks += list(value.elts) if isinstance(value, ast.List | ast.Tuple) else [value]
    return marks


def _mark(node: ast.expr, name: str) -> ast.Call | None:
    """``node`` as a call of the marker ``name`` (``pytest.mark.name(...)``, ``mark.name(...)``)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == name):
        return None
    owner = node.func.value
    is_mark = (isinstance(owner, ast.Attribute) and owner.attr == "mark") or (
        isinstance(owner, ast.Name) and owner.id == "mark")
    return node if is_mark else None


def _test_points(decorators: list[ast.expr], outer: list[list[ast.expr]]) -> float:
    """One test's points: its closest ``points`` marker times its ``parametrize`` cases;
    ``outer`` are the markers of its class and module, nearest first."""
    points = 1.0
    for level in [decorators, *outer]:
        found = [call for call in (_mark(d, "points") for d in level) if call is not None]
        if found:
            arg = found[0].args[0] if found[0].args else None
            if isinstance(arg, ast.Constant) and isinstance(arg.value, int | float) \
                    and not isinstance(arg.value, bool):
                points = float(arg.value)
            break
    cases = 1
    for level in [decorators, *outer]:
        for call in filter(None, (_mark(d, "parametrize") for d in level)):
            values = call.args[1] if len(call.args) > 1 else None
            if isinstance(values, ast.List | ast.Tuple):
                cases *= len(values.elts)
    return points * cases


def load(root: Path) -> Assignment:
    """Read and check the manifest; every problem is one AssignmentError with the fix in it."""
    root = Path(root).resolve()
    path = root / MANIFEST
    try:
        data = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise AssignmentError(f"{path} not found: an assignment folder needs an {MANIFEST}") from None
    except tomllib.TOMLDecodeError as exc:
        raise AssignmentError(f"{path}: {exc}") from None
    meta = data.get("assignment", {})
    for key in ("name", "version"):
        if not isinstance(meta.get(key), str) or not meta[key]:
            raise AssignmentError(f"{path}: [assignment] needs a string {key!r}")
    start_method = meta.get("start_method", "fork")
    if start_method not in START_METHODS:
        raise AssignmentError(f"{path}: start_method must be fork, spawn or forkserver")
    start_methods = meta.get("start_methods", [])
    if not isinstance(start_methods, list) or not all(m in START_METHODS for m in start_methods):
        raise AssignmentError(f"{path}: start_methods must be a list of fork, spawn and forkserver")
    helpers = meta.get("helpers", "")
    if not isinstance(helpers, str) or (helpers and not _HELPERS.fullmatch(helpers)):
        raise AssignmentError(f"{path}: helpers must name a folder of the assignment, like 'helpers'")
    if helpers and not (root / helpers).is_dir():
        raise AssignmentError(f"{path}: helpers = {helpers!r}, but the assignment has no folder {helpers}/")
    raw_limits = data.get("limits", {})
    unknown = set(raw_limits) - set(Limits.__dataclass_fields__)
    if unknown:
        raise AssignmentError(f"{path}: unknown limits {sorted(unknown)}")
    try:
        limits = Limits(**{k: type(getattr(Limits, k))(v) for k, v in raw_limits.items()})
    except (TypeError, ValueError) as exc:
        raise AssignmentError(f"{path}: bad [limits]: {exc}") from None
    exercises = []
    seen_files: set[str] = set()
    for i, ex in enumerate(data.get("exercise", [])):
        ex_id = ex.get("id")
        if not isinstance(ex_id, str) or not _ID.match(ex_id):
            raise AssignmentError(f"{path}: exercise #{i + 1} needs an id like '01_spawn'")
        files = ex.get("files")
        if not files or not all(isinstance(f, str) and _MODULE_FILE.match(f) for f in files):
            raise AssignmentError(f"{path}: exercise {ex_id} needs files = ['module.py', ...]")
        clash = seen_files & set(files)
        if clash:
            raise AssignmentError(f"{path}: {sorted(clash)} belong to two exercises")
        seen_files |= set(files)
        exercises.append(Exercise(
            id=ex_id, title=str(ex.get("title", ex_id)), files=tuple(files),
            points=float(ex.get("points", 0)),
            public_dir=root / "exercises" / ex_id, hidden_dir=root / "solutions" / ex_id,
            hints=_hints(ex.get("hints"), f"{path}: exercise {ex_id}"),
            public_patterns=_patterns(ex.get("public_tests"), f"{path}: exercise {ex_id}"),
        ))
    if not exercises:
        raise AssignmentError(f"{path}: no [[exercise]] tables")
    return Assignment(
        root=root, name=meta["name"], version=meta["version"], title=str(meta.get("title", meta["name"])),
        start_method=start_method, limits=limits, exercises=tuple(exercises),
        sandbox=dict(data.get("sandbox", {})), start_methods=tuple(dict.fromkeys(start_methods)),
        hints=_hints(data.get("hints"), f"{path}: [hints]"), helpers=helpers,
    )


def _patterns(value: Any, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and "/" not in v and v for v in value):
        raise AssignmentError(f"{where}: public_tests must be a list of file names or patterns")
    return tuple(value)


def _hints(table: Any, where: str) -> dict[str, str]:
    """``diagnosis = "hint"`` pairs; which names exist is the harness's to check (its plugin
    refuses an unknown one before any test runs), since only it computes them."""
    if table is None:
        return {}
    if not isinstance(table, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in table.items()):
        raise AssignmentError(f"{where}: hints must be a table of diagnosis = \"hint\"")
    return dict(table)
