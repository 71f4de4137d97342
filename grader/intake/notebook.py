"""Jupyter notebooks in and out: student notebooks per exercise, and notebooks handed in.

Students who work in Jupyter hand in ``.ipynb`` files, but the grader only ever imports module
files. So a notebook is turned into the module it stands for: its code cells, in order, with the
IPython-only syntax (``%magics``, ``%%cell magics``, ``!shell`` escapes, ``get_ipython()``)
dropped and each drop reported. Running the extracted module rather than the notebook also fixes
the classic notebook + ``spawn`` failure: a function defined in a notebook lives in the kernel's
``__main__``, which a spawned child cannot import, so it cannot be pickled as a ``Process``
target; defined in ``spawn.py`` it is ``spawn.worker`` and pickles by reference like any other.

A notebook is hostile input like everything a student hands in: anything that is not a valid
notebook raises :class:`NotebookError` with a short reason, never another exception. What it
costs to read one is bounded too, not only its bytes: the JSON is measured before it is decoded
(``grader.protocol.boundedjson``), outputs are dropped before nbformat sees the rest, the cells and the
code in them are capped, and the notes about dropped lines stop at :data:`MAX_NOTES` with a
count of the rest (a 16 MiB notebook of magic lines once cost the host 2.5 GB).
"""

from __future__ import annotations

import ast
import io
import json
import re
import tokenize
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import nbformat
from nbformat import v4

from grader.assignment import Assignment, Exercise
from grader.atomic import write_atomic
from grader.protocol import boundedjson

NOTEBOOK_MAX = 16 * 1024 * 1024  # outputs and images make notebooks far larger than modules
NOTEBOOK_MAX_VALUES = 500_000  # JSON values: 100,000 printed lines kept as outputs still fit
NOTEBOOK_MAX_DEPTH = 64  # widget state in the metadata nests ~10 levels
MAX_CELLS = 10_000
MAX_CODE = 2 * 1024 * 1024  # characters in all code cells, before the magics are dropped,
MAX_CODE_LINES = 100_000  # and their lines: tokenizing them costs ~2 us a token
MAX_AWAIT_PARSED = 256 * 1024  # characters of code parsed to find top-level await, per notebook
MAX_NOTES = 20  # notes about dropped lines per notebook; then one note counts the rest
MAX_MESSAGE = 200  # validation messages can quote the whole offending cell: keep them short
_SHOWN = 60  # how much of a dropped line a note quotes
_HEADING = re.compile(r"^## ", re.MULTILINE)


class NotebookError(ValueError):
    """A file that should be a notebook is not a usable one; the message says why, briefly."""


# --------------------------------------------------------------------------------------------
# Releasing: one student notebook per exercise module


def release_notebooks(assignment: Assignment, out_dir: Path) -> list[Path]:
    """Write one student notebook per exercise into ``out_dir`` and return their paths.

    A notebook is the exercise's statement (``README.md``, one markdown cell per ``##``
    section) followed by exactly one code cell holding the stub module, so that what the
    student hands back extracts to exactly that module. The output is byte-for-byte
    deterministic (fixed cell ids, sorted keys): releasing twice changes nothing in a course
    repository. An exercise with several module files gets one notebook per file,
    ``<exercise id>_<module stem>.ipynb``; with one file it is ``<exercise id>.ipynb``.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for ex in assignment.exercises:
        for module in ex.files:
            nb = student_notebook(assignment, ex, module)
            path = out_dir / _notebook_name(ex, module)
            write_atomic(path, nbformat.writes(nb).encode() + b"\n", mode=RELEASED_MODE)
            written.append(path)
    return written


RELEASED_MODE = 0o644  # handed out: readable by whoever copies, serves or opens them


def release_checkable(assignment: Assignment, out_dir: Path) -> list[Path]:
    """Write what a check from the notebooks in ``out_dir`` needs next to them, and return
    the paths: ``assignment.toml``, each exercise's public tests and statement (the folder
    ``exercises/NN_name/`` without the module files, whose stub the notebook holds: a stub
    next to the notebook would be what ``mpgrade check`` grades) and the helpers folder.
    Only regular files are copied, never the hidden tests or the solutions."""
    written = [out_dir / "assignment.toml"]
    write_atomic(written[0], (assignment.root / "assignment.toml").read_bytes(), mode=RELEASED_MODE)
    sources: list[tuple[Path, Path]] = []
    for ex in assignment.exercises:
        for path in sorted(ex.public_dir.iterdir()):
            if path.name in ex.files or path.name.startswith(".") or path in ex.other_tests():
                continue
            sources.append((path, out_dir / "exercises" / ex.id / path.name))
    # The instructor's helper modules, where the assignment has them (``[assignment] helpers``).
    for path in assignment.helper_files():
        sources.append((path, out_dir / path.relative_to(assignment.root)))
    for src, dest in sources:
        if src.is_file() and not src.is_symlink():
            write_atomic(dest, src.read_bytes(), mode=RELEASED_MODE)
            written.append(dest)
    return written


def _notebook_name(ex: Exercise, module: str) -> str:
    return f"{ex.id}.ipynb" if len(ex.files) == 1 else f"{ex.id}_{module[:-3]}.ipynb"


def student_notebook(assignment: Assignment, ex: Exercise, module: str) -> nbformat.NotebookNode:
    """The notebook for one module of one exercise, validated (``nbformat.validate``)."""
    readme = ex.public_dir / "README.md"
    statement = readme.read_text(encoding="utf-8") if readme.is_file() else f"# {ex.title}\n"
    stub = (ex.public_dir / module).read_text(encoding="utf-8")
    cells = [v4.new_markdown_cell(part, id=f"{ex.id}-statement-{i}")
             for i, part in enumerate(_sections(statement))]
    cells.append(v4.new_markdown_cell(_handin_note(ex, module), id=f"{ex.id}-handin"))
    cells.append(v4.new_code_cell(stub.rstrip("\n") + "\n", id=f"{ex.id}-code"))
    nb = v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"},
        "mpgrade": {"exercise": ex.id, "module": module, "assignment": assignment.name,
                    "version": assignment.version},
    })
    nbformat.validate(nb)
    return nb


def _sections(markdown: str) -> list[str]:
    """The statement cut before each ``## `` heading: short cells are easier to read."""
    starts = [0] + [m.start() for m in _HEADING.finditer(markdown) if m.start() > 0]
    parts = [markdown[a:b].strip("\n") for a, b in zip(starts, starts[1:] + [len(markdown)], strict=True)]
    return [p for p in parts if p.strip()]


def _handin_note(ex: Exercise, module: str) -> str:
    return (
        "## Handing in this notebook\n\n"
        f"Write your code in the code cell below (it becomes `{module}`): the grader takes the "
        "code cells of this notebook, in order, and nothing else. Lines starting with `%`, "
        "`%%` or `!` (IPython magics and shell commands) are dropped, and so are markdown "
        "cells, outputs and statements that `await` outside an `async def` (Jupyter runs them, "
        "a module cannot). Keep experiments under `if __name__ == \"__main__\":`.\n\n"
        "On macOS and Windows (start method `spawn`), a `Process` whose target is defined in "
        "this notebook fails *inside Jupyter* (the child cannot import the notebook). That is "
        f"a limitation of notebooks, not of your code: the grader runs the code as `{module}`, "
        "where it works.\n\n"
        "## Checking your work from this notebook\n\n"
        "Save the notebook (the check reads the saved file, as the grader will), then run in a "
        "new cell:\n\n"
        "```python\n"
        "%load_ext grader.notebook\n"
        f"%mpgrade check {ex.id}\n"
        "```\n\n"
        f"or, without the magic, `import grader.notebook; grader.notebook.check(\"{ex.id}\")`. "
        f"It runs the public tests on this notebook's code as `{module}`, under every start "
        "method, in separate processes with time limits, exactly as `mpgrade check` does in a "
        "terminal: a mistake cannot hang or crash your kernel. Keep that cell out of the "
        "handed-in code (the `%` lines are dropped anyway). It needs the folder this notebook "
        "was released in (`assignment.toml` and `exercises/` with the public tests) and "
        "mpgrade installed for the kernel's Python (`python -m pip install COURSE_FOLDER`, or "
        "a kernel started from the course's `.venv`). From a terminal in that folder: "
        f"`python -m grader check --notebook {_notebook_name(ex, module)}`."
    )


# --------------------------------------------------------------------------------------------
# Reading a notebook a student handed in


def load(data: bytes, filename: str) -> nbformat.NotebookNode:
    """Parse and validate a notebook (upgraded to v4); NotebookError says why it is unusable.

    Everything here runs a third-party parser over hostile bytes, so any exception (including
    a RecursionError from absurdly nested JSON) becomes a NotebookError.
    """
    return _validated(_parse(data, filename), filename)


def _parse(data: bytes, filename: str) -> Any:
    """The notebook's JSON, decoded within bounds (bytes, values, depth); NotebookError if not."""
    name = PurePosixPath(filename).name
    if len(data) > NOTEBOOK_MAX:
        raise NotebookError(f"{name} is larger than {NOTEBOOK_MAX // (1024 * 1024)} MiB")
    try:
        return boundedjson.loads(data, max_values=NOTEBOOK_MAX_VALUES, max_depth=NOTEBOOK_MAX_DEPTH)
    except (ValueError, RecursionError) as exc:
        raise NotebookError(f"{name} is not a notebook: {_json_problem(exc)}") from None


def _validated(raw: Any, filename: str) -> nbformat.NotebookNode:
    name = PurePosixPath(filename).name
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise NotebookError(f"{name} is not a notebook: no 'nbformat' field")
    cells = raw.get("cells")
    if isinstance(cells, list):
        if len(cells) > MAX_CELLS:
            raise NotebookError(f"{name} has {len(cells)} cells, more than the {MAX_CELLS} read")
        # Outputs are never used, and validating them is most of nbformat's cost: gone first.
        raw = {**raw, "cells": [{**c, "outputs": []} if isinstance(c, dict) and "outputs" in c else c
                                for c in cells]}
    sources = [_source(c) for c in cells if isinstance(c, dict) and c.get("cell_type") == "code"] \
        if isinstance(cells, list) else []
    if sum(map(len, sources)) > MAX_CODE:
        raise NotebookError(f"{name} holds more than {MAX_CODE // (1024 * 1024)} MiB of code")
    if sum(source.count("\n") for source in sources) > MAX_CODE_LINES:
        raise NotebookError(f"{name} holds more than {MAX_CODE_LINES} lines of code")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nb = nbformat.reads(json.dumps(raw), as_version=4)
            nbformat.validate(nb)
        except Exception as exc:  # noqa: BLE001 - hostile input: every failure is the same answer
            raise NotebookError(f"{name} is not a valid notebook: {_short(exc)}") from None
    return nb


def _source(cell: dict[str, Any]) -> str:
    source = cell.get("source")
    if isinstance(source, list):
        return "".join(line for line in source if isinstance(line, str))
    return source if isinstance(source, str) else ""


def _json_problem(exc: Exception) -> str:
    if isinstance(exc, boundedjson.TooComplex):
        return f"too {exc.kind} to read ({exc})"
    if not isinstance(exc, json.JSONDecodeError):
        return f"not valid JSON ({type(exc).__name__})"
    # A string that never closes ran into the end too (its position is where it began).
    if exc.pos >= len(exc.doc.rstrip()) or exc.msg.startswith("Unterminated string"):
        return f"not valid JSON: it ends early, at line {exc.lineno} (a truncated file?)"
    return f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"


def _short(exc: Exception) -> str:
    message = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    message = " ".join(str(message).split())
    path = list(getattr(exc, "absolute_path", []) or [])
    if path:
        message = f"{message} (at {'/'.join(map(str, path))})"
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 3] + "..."


def extract_module(data: bytes, filename: str) -> tuple[bytes, list[str]]:
    """The module source a notebook stands for, and one note per thing that was dropped.

    Code cells are concatenated in order (two blank lines apart, like top-level definitions);
    markdown and raw cells and all outputs are ignored. IPython-only syntax would be a
    SyntaxError in a module, so it is dropped: a cell that starts with a cell magic
    (``%%time``, ``%%bash``...) entirely, line magics (``%matplotlib``), shell escapes
    (``!pip``, ``x = !ls``) and ``get_ipython()`` lines one by one. A dropped line inside a
    block becomes ``pass`` so the block stays valid. A top-level ``await`` (``async for``,
    ``async with``), which Jupyter runs and a module cannot, is dropped as a statement, noted
    too; when the rest of the code uses a name only it set, the notebook is refused instead
    (NotebookError naming the cell and what to change). Raises NotebookError for anything that
    is not a valid notebook. After :data:`MAX_NOTES` notes, one more says how many were left out.
    """
    return _extract(load(data, filename), filename)


class _Notes:
    """The first MAX_NOTES notes, and a count of the rest: a million magics are one line."""

    def __init__(self) -> None:
        self.kept: list[str] = []
        self.more = 0

    def append(self, note: str) -> None:
        if len(self.kept) < MAX_NOTES:
            self.kept.append(note)
        else:
            self.more += 1

    def lines(self) -> list[str]:
        if not self.more:
            return list(self.kept)
        return [*self.kept, f"... and {self.more} more lines or cells dropped the same way (not listed)"]


def _extract(nb: nbformat.NotebookNode, filename: str) -> tuple[bytes, list[str]]:
    name = PurePosixPath(filename).name
    notes = _Notes()
    parts: list[str] = []
    awaited: list[_Awaited] = []
    budget = [MAX_AWAIT_PARSED]
    number = 0
    for cell in nb.cells:
        if cell.get("cell_type") != "code":
            continue
        number += 1
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        first = next((line.strip() for line in source.splitlines() if line.strip()), "")
        if first.startswith("%%"):
            notes.append(f"{name}, code cell {number}: cell magic {_quote(first)} dropped "
                         "(the whole cell)")
            continue
        cleaned = _drop_ipython_lines(source, f"{name}, code cell {number}", notes)
        cleaned = _drop_top_level_await(cleaned, f"{name}, code cell {number}", notes, awaited, budget)
        if cleaned.strip():
            parts.append(cleaned.strip("\n"))
    text = "\n\n\n".join(parts)
    if awaited:
        _refuse_lost_names(parts, awaited, [MAX_AWAIT_PARSED])
    return (text + "\n" if text else "").encode("utf-8"), notes.lines()


# --------------------------------------------------------------------------------------------
# Top-level await: valid in a Jupyter cell (IPython runs the cell in its event loop), a
# SyntaxError at the top level of a module. Such a statement is a cell's way of running
# something (``await main()``, ``async for``/``async with`` at the top), as experiments are: it
# is dropped with a note, like a magic. When it also binds a name that the rest of the code
# uses (``data = await fetch()``, then ``len(data)``), dropping it would only turn the
# SyntaxError into a NameError at import: the notebook is refused, saying what to change.

_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef)


@dataclass
class _Awaited:
    """A dropped top-level statement that awaits: where it was and the names it bound."""

    where: str
    line: int
    text: str
    names: set[str]


def _drop_top_level_await(source: str, where: str, notes: _Notes, awaited: list[_Awaited],
                          budget: list[int]) -> str:
    """``source`` without its top-level statements that await (each noted in ``notes`` and
    recorded in ``awaited``); unchanged when it is valid module code, or not valid even for
    Jupyter (the student then sees Python's own SyntaxError)."""
    if "await" not in source and "async" not in source:
        return source  # nothing that could await: spare it the parsing
    tree = _parsed(source, budget)  # parsed, not compiled: "await outside function" is the compiler's
    if tree is None:
        return source  # not Python even for Jupyter (or over budget): Python reports it in the sandbox
    lines: list[str | None] = list(source.splitlines())
    found = [stmt for stmt in tree.body if _awaits(stmt)]
    if not found:
        return source
    for stmt in found:
        first, last = stmt.lineno, stmt.end_lineno or stmt.lineno
        text = (lines[first - 1] or "").strip()
        notes.append(f"{where}: top-level await {_quote(text)} dropped (a module cannot await "
                     "outside an async def; Jupyter can)")
        awaited.append(_Awaited(where, first, text, _bound(stmt)))
        for n in range(first, last + 1):
            lines[n - 1] = None
    return "\n".join(line for line in lines if line is not None)


def _awaits(stmt: ast.stmt) -> bool:
    """Does the statement await outside any function (``await``, ``async for``/``with``, an
    async comprehension)? What is inside a def, lambda or class is not looked at."""
    if isinstance(stmt, _SCOPES):
        return False  # its body runs when called, not when the module is imported
    todo: list[ast.AST] = [stmt]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Await | ast.AsyncFor | ast.AsyncWith):
            return True
        if isinstance(node, ast.comprehension) and node.is_async:
            return True
        todo.extend(child for child in ast.iter_child_nodes(node) if not isinstance(child, _SCOPES))
    return False


def _bound(tree: ast.AST) -> set[str]:
    """Names a statement (or module) binds in its own scope: what a def, lambda or class binds
    inside stays there (only its own name counts)."""
    names: set[str] = set()
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar) and node.name:
            names.add(node.name)
        if isinstance(node, _SCOPES) and node is not tree:
            if not isinstance(node, ast.Lambda):
                names.add(node.name)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return names


def _function_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> set[str]:
    """A function's own names: its parameters and what its body binds, but not those it
    declares ``global``."""
    args = fn.args
    params = {a.arg for a in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg) if a}
    if isinstance(fn, ast.Lambda):
        return params
    declared = {name for node in ast.walk(fn) if isinstance(node, ast.Global) for name in node.names}
    body: set[str] = set()
    for stmt in fn.body:
        body |= _bound(stmt)
    return (params | body) - declared


def _globals_used(tree: ast.Module) -> set[str]:
    """Names the code reads that are not local to the function reading them: module names
    (or builtins) it needs when it runs."""
    used: set[str] = set()
    todo: list[tuple[ast.AST, frozenset[str]]] = [(tree, frozenset())]
    while todo:
        node, local = todo.pop()
        for child in ast.iter_child_nodes(node):
            inner = local
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                inner = local | _function_locals(child)
            elif isinstance(child, ast.Name) and isinstance(child.ctx, ast.Load) and child.id not in local:
                used.add(child.id)
            todo.append((child, inner))
    return used


def _parsed(source: str, budget: list[int]) -> ast.Module | None:
    """The code's tree, or None when it does not parse or the notebook's parsing budget
    (``budget[0]`` characters left, :data:`MAX_AWAIT_PARSED` to begin with) is spent: what
    parsing hostile code costs the host stays bounded, about a second per notebook."""
    if len(source) > budget[0]:
        return None
    budget[0] -= len(source)
    try:
        return ast.parse(source)
    except Exception:  # noqa: BLE001 - SyntaxError, or the parser's limits on hostile code
        return None


def _refuse_lost_names(parts: list[str], awaited: list[_Awaited], budget: list[int]) -> None:
    """NotebookError when a dropped statement bound a name the remaining code uses and that
    nothing else defines: the module would fail with a NameError that the note explains less
    well than this. Cell by cell, within the parsing budget (a cell beyond it is not looked
    at: the NameError then says it)."""
    used: set[str] = set()
    defined: set[str] = set()
    for part in parts:
        tree = _parsed(part, budget)
        if tree is not None:
            used |= _globals_used(tree)
            defined |= _bound(tree)
    for drop in awaited:
        lost = sorted((drop.names & used) - defined)
        if lost:
            raise NotebookError(
                f"{drop.where}, line {drop.line}: {_quote(drop.text)} awaits at the top level, which "
                f"a module cannot do (Jupyter can), and the code uses {', '.join(lost[:3])} that it "
                "sets. Move that code into an async def (async def main(): ...) and run it with "
                "asyncio.run(main()) under if __name__ == \"__main__\":, or compute it in a "
                "function the code calls")


@dataclass
class _Escape:
    kind: str
    first: int  # 1-based physical lines of the logical line
    last: int


def _drop_ipython_lines(source: str, where: str, notes: _Notes) -> str:
    if "%" not in source and "!" not in source and "get_ipython" not in source:
        return source  # nothing the tokenizer could find: spare it the work
    escapes = _escapes(source)
    if not escapes:
        return source
    lines: list[str | None] = list(source.splitlines())
    for esc in escapes:
        text = lines[esc.first - 1] or ""
        notes.append(f"{where}: {esc.kind} {_quote(text.strip())} dropped")
        indent = text[: len(text) - len(text.lstrip())]
        # Inside a block the statement becomes ``pass`` (an emptied block would not compile);
        # at the top level, and for continuation lines, it simply goes.
        lines[esc.first - 1] = f"{indent}pass" if indent else None
        for n in range(esc.first + 1, esc.last + 1):
            lines[n - 1] = None
    return "\n".join(line for line in lines if line is not None)


def _escapes(source: str) -> list[_Escape]:
    """IPython escapes that begin a logical line, found with the tokenizer.

    Going by tokens rather than by text keeps ``%`` and ``!`` that are Python (the modulo
    operator on a continuation line, a ``%s`` line inside a triple-quoted string) untouched.
    If the source does not tokenize, a plain line-by-line check is the fallback.
    """
    found: list[_Escape] = []
    try:
        logical: list[tokenize.TokenInfo] = []
        depth = 0
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.OP and tok.string in ("(", "[", "{"):
                depth += 1
            elif tok.type == tokenize.OP and tok.string in (")", "]", "}"):
                depth = max(0, depth - 1)
            if tok.type == tokenize.NEWLINE or (tok.type == tokenize.NL and depth == 0):
                _classify(logical, found)
                logical = []
            elif tok.type not in (tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT,
                                  tokenize.NL, tokenize.ENDMARKER):
                if not (tok.type == tokenize.ERRORTOKEN and not tok.string.strip()):
                    logical.append(tok)
        _classify(logical, found)
    except (tokenize.TokenError, SyntaxError):
        return _escapes_by_line(source)
    return found


def _classify(tokens: list[tokenize.TokenInfo], found: list[_Escape]) -> None:
    if not tokens:
        return
    kind = _escape_kind(tokens[0])
    if kind is None and len(tokens) >= 3 and tokens[0].type == tokenize.NAME \
            and tokens[1].string == "=":
        kind = _escape_kind(tokens[2])  # x = !ls, files = %sx ls
    if kind is None and any(t.type == tokenize.NAME and t.string == "get_ipython" for t in tokens):
        kind = "get_ipython() call"
    if kind is not None:
        found.append(_Escape(kind, tokens[0].start[0], tokens[-1].end[0]))


def _escape_kind(tok: tokenize.TokenInfo) -> str | None:
    if tok.string == "%":
        return "IPython magic"
    if tok.string == "!" or (tok.type == tokenize.ERRORTOKEN and tok.string.startswith("!")):
        return "shell escape"
    return None


def _escapes_by_line(source: str) -> list[_Escape]:
    found = []
    for i, line in enumerate(source.splitlines(), 1):
        stripped = line.lstrip()
        if stripped.startswith("%"):
            found.append(_Escape("IPython magic", i, i))
        elif stripped.startswith("!"):
            found.append(_Escape("shell escape", i, i))
        elif "get_ipython(" in stripped:
            found.append(_Escape("get_ipython() call", i, i))
    return found


def _quote(text: str) -> str:
    return repr(text if len(text) <= _SHOWN else text[: _SHOWN - 3] + "...")


# --------------------------------------------------------------------------------------------
# Which module a notebook stands for


def module_name_for(data: bytes, filename: str, assignment: Assignment) -> str | None:
    """The module file (``spawn.py``) a handed-in notebook stands for, or None.

    In order: the ``mpgrade.module`` metadata a released notebook carries (students rename
    files, rarely metadata); a file named after the module (``spawn.ipynb``); a file named
    after the exercise (``01_spawn.ipynb``, ``01_spawn-final.ipynb``). Only names of this
    assignment's module files are ever returned, so metadata cannot smuggle in
    ``conftest.py``.
    """
    return _module_for(_metadata(data), filename, assignment)


def _module_for(meta: Any, filename: str, assignment: Assignment) -> str | None:
    wanted = set(assignment.submitted_files)
    module = meta.get("module") if isinstance(meta, dict) else None
    if isinstance(module, str) and module in wanted:
        return module
    name = PurePosixPath(filename).name
    stem = name[: -len(".ipynb")] if name.lower().endswith(".ipynb") else name
    if f"{stem}.py" in wanted:
        return f"{stem}.py"
    matches = [ex for ex in assignment.exercises if ex.id.lower() in name.lower()]
    if len(matches) == 1 and len(matches[0].files) == 1:
        return matches[0].files[0]
    return None


def _metadata(data: bytes) -> Any:
    try:
        return _metadata_of(_parse(data, "notebook"))
    except NotebookError:
        return None


def _metadata_of(raw: Any) -> Any:
    if not isinstance(raw, dict) or not isinstance(raw.get("metadata"), dict):
        return None
    return raw["metadata"].get("mpgrade")


# --------------------------------------------------------------------------------------------
# One call for the discovery code


@dataclass
class Converted:
    """A handed-in notebook turned into a module candidate, or why it could not be."""

    module: str | None = None
    source: bytes | None = None
    ignored: list[dict[str, str]] = field(default_factory=list)


def convert(data: bytes, rel: str, assignment: Assignment, max_module: int) -> Converted:
    """Module name and source for a notebook found at ``rel``, plus ``ignored`` entries.

    The entries (``{"path", "reason"}``, the shape of ``Submission.ignored``) record every
    dropped magic and, when the notebook is not used at all, why: so a student whose notebook
    was invalid sees that, not just a missing module.
    """
    try:
        return _convert(data, rel, assignment, max_module)
    except Exception as exc:  # noqa: BLE001 - a surprise in a third-party parser: not this batch's
        return Converted(ignored=[{"path": rel, "reason": f"{PurePosixPath(rel).name} could not be "
                                                          f"read as a notebook ({type(exc).__name__})"}])


def _convert(data: bytes, rel: str, assignment: Assignment, max_module: int) -> Converted:
    out = Converted()
    try:  # parsed once: its metadata names the module, its cells are the module
        raw, problem = _parse(data, rel), None
    except NotebookError as exc:
        raw, problem = None, exc
    module = _module_for(_metadata_of(raw), rel, assignment)
    if module is None:
        out.ignored.append({"path": rel, "reason": "a notebook that names no module of this "
                                                   "assignment (by metadata, module or exercise)"})
        return out
    try:
        if problem is not None:
            raise problem
        source, notes = _extract(_validated(raw, rel), rel)
    except NotebookError as exc:
        out.ignored.append({"path": rel, "reason": str(exc)})
        return out
    if len(source) > max_module:
        out.ignored.append({"path": rel, "reason": f"its code is larger than {max_module} bytes"})
        return out
    out.module, out.source = module, source
    out.ignored.extend({"path": rel, "reason": note} for note in notes)
    return out
