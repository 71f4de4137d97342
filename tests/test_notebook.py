"""Student notebooks out (one per exercise) and handed-in notebooks back to modules."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from grader import assignment as assignment_mod
from grader.intake import notebook

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def course() -> assignment_mod.Assignment:
    return assignment_mod.load(REPO)


@pytest.fixture(scope="module")
def released(course, tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("released")
    return {p.stem: p for p in notebook.release_notebooks(course, out)}


def code_notebook(*cells: str, metadata: dict | None = None) -> bytes:
    nb = nbformat.v4.new_notebook(metadata=metadata or {})
    nb.cells = [nbformat.v4.new_code_cell(src, id=f"c{i}") for i, src in enumerate(cells)]
    return nbformat.writes(nb).encode()


def test_one_valid_notebook_per_exercise_with_metadata(course, released):
    assert sorted(released) == [ex.id for ex in course.exercises]
    for ex in course.exercises:
        nb = nbformat.read(released[ex.id], as_version=4)
        nbformat.validate(nb)
        assert nb.metadata["mpgrade"] == {"exercise": ex.id, "module": ex.files[0],
                                          "assignment": course.name, "version": course.version}
        code = [c for c in nb.cells if c.cell_type == "code"]
        assert len(code) == 1  # what the student writes is exactly the module
        assert code[0].source == (ex.public_dir / ex.files[0]).read_text()
        markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
        assert ex.title in markdown or ex.id in markdown
        assert "Handing in" in markdown


def test_release_is_deterministic(course, released, tmp_path):
    again = {p.stem: p for p in notebook.release_notebooks(course, tmp_path)}
    for ex_id, path in released.items():
        assert again[ex_id].read_bytes() == path.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.suffix != ".ipynb"]  # no temp files left


@pytest.mark.parametrize("ex_id", ["01_spawn", "02_pingpong", "03_prodcons", "04_locks"])
def test_round_trip_with_the_reference_solution(course, released, ex_id):
    ex = course.exercise(ex_id)
    reference = (REPO / "solutions" / ex_id / ex.files[0]).read_text()
    nb = nbformat.read(released[ex_id], as_version=4)
    [cell] = [c for c in nb.cells if c.cell_type == "code"]
    cell.source = reference
    data = nbformat.writes(nb).encode()
    source, notes = notebook.extract_module(data, f"{ex_id}.ipynb")
    assert source.decode().rstrip("\n") == reference.rstrip("\n")
    assert notes == []
    compile(source, ex.files[0], "exec")
    # Renamed by the student: the metadata still says which module it is.
    assert notebook.module_name_for(data, "my homework (1).ipynb", course) == ex.files[0]


def test_magics_and_shell_escapes_are_dropped_with_a_note():
    data = code_notebook(
        "%%time\nimport this_would_fail\n",
        "%matplotlib inline\nimport os\n!pip install numpy\nfiles = !ls\n",
        "def f(n):\n    %time g(n)\n    get_ipython().run_line_magic(\n        'who', '')\n"
        "    return (n\n            % 3)\n",
        'TEMPLATE = """\n%s items\n!important\n"""\n',
    )
    source, notes = notebook.extract_module(data, "work.ipynb")
    text = source.decode()
    assert text == ("import os\n\n\n"
                    "def f(n):\n    pass\n    pass\n    return (n\n            % 3)\n\n\n"
                    'TEMPLATE = """\n%s items\n!important\n"""\n')
    compile(source, "work.py", "exec")
    assert len(notes) == 6
    assert notes[0] == "work.ipynb, code cell 1: cell magic '%%time' dropped (the whole cell)"
    assert any("IPython magic '%matplotlib inline'" in n for n in notes)
    assert any("shell escape '!pip install numpy'" in n for n in notes)
    assert any("shell escape 'files = !ls'" in n for n in notes)
    assert any("IPython magic '%time g(n)'" in n for n in notes)
    assert any("get_ipython() call" in n for n in notes)


def test_markdown_raw_and_empty_cells_are_not_code():
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("x = 1", id="m"),
                nbformat.v4.new_raw_cell("y = 2", id="r"),
                nbformat.v4.new_code_cell("", id="e"),
                nbformat.v4.new_code_cell("z = 3\n\n", id="c")]
    source, notes = notebook.extract_module(nbformat.writes(nb).encode(), "a.ipynb")
    assert source == b"z = 3\n" and notes == []


def test_a_notebook_saved_without_cell_ids_is_fine():
    raw = {"cells": [{"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": 1,
                      "source": ["a = 1\n", "b = 2"]}],
           "metadata": {}, "nbformat": 4, "nbformat_minor": 4}
    source, _ = notebook.extract_module(json.dumps(raw).encode(), "old.ipynb")
    assert source == b"a = 1\nb = 2\n"


@pytest.mark.parametrize(("data", "expected"), [
    (b"{this is not json", "not valid JSON"),
    (b"\xff\xfe\x00garbage", "not valid JSON"),
    (b"[1, 2, 3]", "no 'nbformat' field"),
    (b'{"nbformat": 4, "nbformat_minor": 5, "cells": [{"cell_type": "code"}], "metadata": {}}',
     "is not a valid notebook"),
    (b'{"nbformat": 99, "nbformat_minor": 0, "cells": [], "metadata": {}}', "is not a valid notebook"),
    (b"[" * 200_000, "nested deeper than 64 levels"),
])
def test_invalid_notebooks_raise_a_short_clear_error(data, expected):
    with pytest.raises(notebook.NotebookError) as info:
        notebook.extract_module(data, "hw/spawn.ipynb")
    message = str(info.value)
    assert expected in message and message.startswith("spawn.ipynb ")
    assert len(message) < 300


def test_a_truncated_notebook_says_so(released):
    data = released["01_spawn"].read_bytes()
    with pytest.raises(notebook.NotebookError, match="truncated"):
        notebook.extract_module(data[: len(data) // 2], "01_spawn.ipynb")


def test_a_huge_notebook_is_refused_before_parsing():
    with pytest.raises(notebook.NotebookError, match="larger than"):
        notebook.extract_module(b" " * (notebook.NOTEBOOK_MAX + 1), "big.ipynb")


def test_module_name_for(course):
    meta = code_notebook("x = 1", metadata={"mpgrade": {"module": "locks.py"}})
    plain = code_notebook("x = 1")
    assert notebook.module_name_for(meta, "anything.ipynb", course) == "locks.py"
    assert notebook.module_name_for(plain, "pingpong.ipynb", course) == "pingpong.py"
    assert notebook.module_name_for(plain, "01_spawn.ipynb", course) == "spawn.py"
    assert notebook.module_name_for(plain, "hw/03_prodcons-final.ipynb", course) == "prodcons.py"
    assert notebook.module_name_for(plain, "homework.ipynb", course) is None
    # Metadata can only name this assignment's modules, never e.g. conftest.py.
    evil = code_notebook("x = 1", metadata={"mpgrade": {"module": "conftest.py"}})
    assert notebook.module_name_for(evil, "conftest.ipynb", course) is None
    assert notebook.module_name_for(b"not json", "spawn.ipynb", course) == "spawn.py"


def test_convert_reports_why_a_notebook_was_not_used(course):
    bad = notebook.convert(b"{", "alice/spawn.ipynb", course, 1024)
    assert bad.module is None and "not valid JSON" in bad.ignored[0]["reason"]
    unnamed = notebook.convert(code_notebook("x = 1"), "notes.ipynb", course, 1024)
    assert unnamed.module is None and "names no module" in unnamed.ignored[0]["reason"]
    ok = notebook.convert(code_notebook("!ls\nx = 1"), "spawn.ipynb", course, 1024)
    assert ok.module == "spawn.py" and ok.source == b"x = 1\n"
    assert ok.ignored == [{"path": "spawn.ipynb",
                           "reason": "spawn.ipynb, code cell 1: shell escape '!ls' dropped"}]
    big = notebook.convert(code_notebook("x = 1\n" * 100), "spawn.ipynb", course, 100)
    assert big.module is None and "larger than 100 bytes" in big.ignored[0]["reason"]


# --- top-level await: valid in Jupyter, a SyntaxError in a module (#17) --------------------------

ASYNC_DEF = "import asyncio\n\n\nasync def limited(n):\n    await asyncio.sleep(0)\n    return n"


def test_a_cell_that_awaits_at_the_top_level_is_dropped_and_the_module_compiles(course):
    data = code_notebook(
        ASYNC_DEF,
        "print(await limited(3))",  # a cell trying the function, as Jupyter allows
        "async with asyncio.timeout(1):\n    await limited(1)\nx = 2",
        "values = [v async for v in gen()]\nprint('kept')",
    )
    conv = notebook.convert(data, "spawn.ipynb", course, 100_000)
    assert conv.module == "spawn.py", conv.ignored
    source = conv.source.decode()
    compile(source, "spawn.py", "exec", dont_inherit=True)  # before: 'await' outside function
    assert "async def limited(n):\n    await asyncio.sleep(0)" in source  # an async def stays
    assert "x = 2" in source and "print('kept')" in source and "await limited(1)" not in source
    reasons = [entry["reason"] for entry in conv.ignored]
    assert reasons == [
        "spawn.ipynb, code cell 2: top-level await 'print(await limited(3))' dropped (a module "
        "cannot await outside an async def; Jupyter can)",
        "spawn.ipynb, code cell 3: top-level await 'async with asyncio.timeout(1):' dropped (a "
        "module cannot await outside an async def; Jupyter can)",
        "spawn.ipynb, code cell 4: top-level await 'values = [v async for v in gen()]' dropped (a "
        "module cannot await outside an async def; Jupyter can)",
    ]


def test_a_name_only_a_top_level_await_sets_refuses_the_notebook_saying_what_to_change(course):
    data = code_notebook(ASYNC_DEF, "n = await limited(3)", "def twice():\n    return 2 * n")
    conv = notebook.convert(data, "spawn.ipynb", course, 100_000)
    assert conv.module is None and conv.source is None
    reason = conv.ignored[-1]["reason"]
    assert reason.startswith("spawn.ipynb, code cell 2, line 1: 'n = await limited(3)' awaits at the top level")
    assert "uses n that it sets" in reason and "asyncio.run(main())" in reason
    with pytest.raises(notebook.NotebookError, match="code cell 2, line 1"):
        notebook.extract_module(data, "spawn.ipynb")


def test_a_name_set_elsewhere_too_is_not_a_reason_to_refuse(course):
    data = code_notebook(ASYNC_DEF, "n = 0", "n = await limited(3)", "def twice():\n    return 2 * n")
    conv = notebook.convert(data, "spawn.ipynb", course, 100_000)
    assert conv.module == "spawn.py" and b"n = 0" in conv.source and b"await limited(3)" not in conv.source


def test_a_real_syntax_error_next_to_an_await_is_left_for_python_to_report(course):
    data = code_notebook("await x\ndef broken(:\n    pass")
    conv = notebook.convert(data, "spawn.ipynb", course, 100_000)
    assert conv.module == "spawn.py" and b"def broken(:" in conv.source and b"await x" in conv.source
