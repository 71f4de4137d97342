"""The report's library: item analysis, message shapes, hang hot spots, similarity, the model.

Numbers are checked against hand-computed values; similarity against committed submissions
(a copied pair, an honest pair) and the real exercise stub. Browser checks are in
tests/test_report_browser.py, injection attempts in tests/attacks/test_report_attacks.py.
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from tests.conftest import IN_CI
from tests.report_helpers import DATA, SUBMISSIONS, document, entry, write_documents

REPO = Path(__file__).resolve().parent.parent

if not IN_CI:  # under CI=true a missing extra is a failure, never a skip
    pytest.importorskip("copydetect", reason="the report extra is not installed (pip install -e '.[report]')")

from grader.report import hangs, items, model, similarity, site  # noqa: E402


def _class(tmp_path: Path, docs: list[dict]) -> model.ClassResults:
    return model.load_class(write_documents(tmp_path / "results", docs))


# --------------------------------------------------------------------------- item analysis

def test_discrimination_is_the_correlation_of_a_test_with_the_total(tmp_path: Path) -> None:
    """Four students; test T (1 point) passed by the two strongest. Totals 10, 8, 4, 2.

    By hand: x = (1, 1, 0, 0), y = (10, 8, 4, 2); x - 0.5 = (.5, .5, -.5, -.5), y - 6 =
    (4, 2, -2, -4); sum of products 6, sum of squares 1 and 40: r = 6 / sqrt(40) = 0.9487.
    """
    docs = []
    for sid, t_passes, others in (("s1", True, 9), ("s2", True, 7), ("s3", False, 4), ("s4", False, 2)):
        tests = [entry("ex/test_a.py::T", "ex", outcome="passed" if t_passes else "failed",
                            message="" if t_passes else "wrong")]
        tests += [entry(f"ex/test_a.py::U{i}", "ex", outcome="passed" if i < others else "failed",
                             message="" if i < others else "no")
                  for i in range(9)]
        docs.append(document(sid, tests))
    found = {i.id: i for i in items.analyse(_class(tmp_path, docs))}
    t = found["ex/test_a.py::T"]
    assert t.discrimination == pytest.approx(6 / math.sqrt(40))
    assert t.pass_rate == 0.5 and t.mean_points == 0.5 and t.students == 4
    assert t.outcomes == {"passed": 2, "failed": 2}
    # U0 and U1 are passed by everyone: no spread, so no correlation (undefined, not 0)
    assert found["ex/test_a.py::U0"].discrimination is None


def test_failure_messages_are_grouped_by_shape_with_hint_and_count(tmp_path: Path) -> None:
    msgs = ["locked_counter(4, 10000) returned 31245, expected 40000\nTraceback: line 12",
            "locked_counter(4, 10000) returned 29876, expected 40000",
            "worker 14241 exited with code 1",
            "locked_counter(4, 10000) returned 38001, expected 40000"]
    docs = [document(f"s{n}", [entry("ex/t.py::race", "ex", outcome="failed", message=m,
                                          hint="hold the lock around +=")])
            for n, m in enumerate(msgs)]
    docs.append(document("ok", [entry("ex/t.py::race", "ex")]))
    (item,) = items.analyse(_class(tmp_path, docs))
    top, other = item.messages
    assert top.shape == "locked_counter(N, N) returned N, expected N"
    assert top.count == 3 and top.hint == "hold the lock around +=" and top.students == ["s0", "s1", "s3"]
    assert other.shape == "worker N exited with code N" and other.count == 1
    assert item.pass_rate == pytest.approx(0.2)


@pytest.mark.parametrize(("message", "shape"), [
    ("got [3, 1, 2, 5] instead of [1, 2, 3, 5]", "got [N, N, …] instead of [N, N, …]"),
    ("object at 0x7f3a2c0d1e90 is not plain data", "object at 0x… is not plain data"),
    ("took 2.51 s, limit 2 s", "took N s, limit N s"),
    ("", "(no message)"),
    ("v2_queue() failed", "v2_queue() failed"),  # names keep their digits
])
def test_message_shapes(message: str, shape: str) -> None:
    assert items.message_shape(message) == shape


# --------------------------------------------------------------------------- hangs

def _timeout(pid: int, line: int, worker_place: str) -> str:
    return (f"prodcons.produce_consume() did not return within 25 s (start method fork). Where each "
            f"process was, as its own stack dump says:\n"
            f"  caller {pid}: prodcons.py:{line} in produce_consume(), waiting in threading.py:327 in wait()\n"
            f"  worker {pid + 1}: {worker_place}\n  worker {pid + 2}: no stack available")


def test_hangs_are_aggregated_across_students_without_pids_and_line_numbers(tmp_path: Path) -> None:
    docs = [
        document("a", [entry("03/t.py::big", "03", outcome="timeout",
                                  message=_timeout(100, 57, "prodcons.py:20 in consumer(), waiting in queues.py:103 in get()"))]),
        document("b", [entry("03/t.py::big", "03", outcome="timeout",
                                  message=_timeout(9000, 61, "prodcons.py:24 in consumer(), waiting in queues.py:103 in get()")),
                       entry("03/t.py::small", "03", outcome="timeout",
                                  message=_timeout(9100, 61, "waiting in queues.py:103 in get()"))]),
        document("c", [entry("03/t.py::big", "03")]),
        document("d", [], status="timeout", message="the submission did not finish within 600 s"),
    ]
    found = hangs.aggregate(_class(tmp_path, docs))
    assert found.timed_out_calls == 3
    assert found.whole_submission_timeouts == ["d"]
    by_text = {(s.place.role, s.place.text()): s for s in found.spots}
    caller = by_text[("caller", "produce_consume() in prodcons.py, waiting in wait() in threading.py")]
    assert caller.students == ["a", "b"] and caller.processes == 3 and caller.called == "prodcons.produce_consume"
    consumer = by_text[("worker", "consumer() in prodcons.py, waiting in get() in queues.py")]
    assert consumer.students == ["a", "b"] and consumer.tests == ["03/t.py::big"]
    assert by_text[("worker", "waiting in get() in queues.py")].students == ["b"]
    assert by_text[("worker", "no stack available")].processes == 3
    assert found.spots[0].students == ["a", "b"]  # the most students first


def test_a_message_that_only_looks_like_a_dump_is_not_parsed_as_one() -> None:
    called, found = hangs.places("my own text\n  caller 1: <script>x</script>\nnothing")
    assert called is None
    assert [p.text() for p in found] == ["no stack available"]


# --------------------------------------------------------------------------- similarity

@pytest.fixture(scope="module")
def course() -> assignment_mod.Assignment:
    return assignment_mod.load(REPO)


def _code(course: assignment_mod.Assignment, name: str) -> dict[str, str]:
    folder = SUBMISSIONS / name
    return similarity.exercise_code(course, {p.name: p.read_text() for p in folder.glob("*.py")})


def test_the_copied_pair_is_high_and_the_honest_pair_low(course: assignment_mod.Assignment) -> None:
    code = {n: _code(course, n) for n in ("frank-own", "grace-copy", "judy-own")}
    sim = similarity.compare(code, similarity.stubs(course))
    top = sim.top(1)[0]
    assert {top.a, top.b} == {"frank-own", "grace-copy"} and top.score > 0.9
    for ex in ("03_prodcons", "04_locks"):
        pairs = {frozenset((p.a, p.b)): p for p in sim.pairs[ex]}
        assert pairs[frozenset(("frank-own", "grace-copy"))].flagged(sim.threshold)
        honest = pairs.get(frozenset(("frank-own", "judy-own")))
        assert honest is None or (honest.score < 0.5 and not honest.flagged(sim.threshold))
    copied = next(p for p in sim.pairs["04_locks"] if {p.a, p.b} == {"frank-own", "grace-copy"})
    assert copied.regions_a and copied.regions_b  # the side-by-side view has something to mark
    assert all(0 <= s < e <= len(copied.code_a) for s, e in copied.regions_a)


def test_the_stub_does_not_count(course: assignment_mod.Assignment) -> None:
    """Two students who keep the whole stub (docstrings, signatures) and add different code
    are not alike; a stub handed back unchanged is too little own code to compare."""
    stub = (course.exercise("04_locks").public_dir / "locks.py").read_text()
    frank = (SUBMISSIONS / "frank-own" / "locks.py").read_text()
    judy = (SUBMISSIONS / "judy-own" / "locks.py").read_text()
    code = {"x": {"04_locks": stub + "\n" + frank}, "y": {"04_locks": stub + "\n" + judy},
            "lazy": {"04_locks": stub}}
    with_stub = similarity.compare(code, similarity.stubs(course))
    without = similarity.compare(code, {})
    assert with_stub.too_little["04_locks"] == ["lazy"]
    def score(sim: similarity.Similarity) -> float:
        return max((p.score for p in sim.pairs["04_locks"] if {p.a, p.b} == {"x", "y"}), default=0.0)
    assert score(without) > score(with_stub)
    assert score(with_stub) < 0.5
    assert any({p.a, p.b} == {"x", "lazy"} for p in without.pairs["04_locks"])  # the stub alone matches


# --------------------------------------------------------------------------- model and site

def test_invalid_files_are_problems_and_summary_is_not_a_document(tmp_path: Path) -> None:
    folder = write_documents(tmp_path / "r", [document("a", [entry("e/t.py::x", "e")])])
    (folder / "summary.json").write_text("{}")
    (folder / "broken.json").write_text("{not json")
    forged = document("b", [entry("e/t.py::x", "e")])
    forged["score"] = 99
    (folder / "forged.json").write_text(json.dumps(forged))
    (folder / "again.json").write_text((folder / "doc0000.json").read_text())
    klass = model.load_class(folder)
    assert [st.id for st in klass.students] == ["a"]
    problems = dict(klass.problems)
    assert sorted(problems) == ["broken.json", "doc0000.json", "forged.json"]  # files in name order
    assert "a second document" in problems["doc0000.json"] and "score" in problems["forged.json"]


def test_a_large_class_is_read_by_worker_processes_with_the_same_result(tmp_path: Path) -> None:
    docs = [document(f"s{n:03d}", [entry("e/t.py::x", "e", outcome="passed" if n % 3 else "failed",
                                         message="no")]) for n in range(model.PARALLEL_FROM + 2)]
    folder = write_documents(tmp_path / "r", docs)
    (folder / "zz-broken.json").write_text("[]")
    klass = model.load_class(folder)
    assert [st.id for st in klass.students] == [d["submission"]["id"] for d in docs]
    assert [name for name, _ in klass.problems] == ["zz-broken.json"]


@pytest.mark.parametrize("sub_id", ["../../etc/passwd", "Alice", "alice", "con", "a/b", "x%2Fy", ".hidden",
                                    "é" * 300, "a\nb"])
def test_page_names_are_one_safe_component_and_distinct(sub_id: str) -> None:
    name = model.page_name(sub_id)
    assert "/" not in name and "\\" not in name and not name.startswith(".") and name.endswith(".html")
    assert len(name.encode()) < 255 and name.isprintable()
    assert model.page_name("Alice") != model.page_name("alice")


def test_the_site_holds_the_numbers_of_the_batch(tmp_path: Path) -> None:
    docs = [document(f"s{n}", [entry("e/t.py::x", "e", points=10.0,
                                          outcome="passed" if n % 2 else "failed", message="no")])
            for n in range(6)]
    klass = _class(tmp_path, docs)
    report = site.write(klass, tmp_path / "site")
    index = (tmp_path / "site" / "index.html").read_text()
    assert '<span id="mean-score">5.0</span>' in index and '<span id="median-score">5.0</span>' in index
    assert "<td>0–1</td><td class=\"num\">3</td>" in index and "<td>9–10</td><td class=\"num\">3</td>" in index
    assert len(list((tmp_path / "site" / "students").glob("*.html"))) == 6
    assert report.flagged_pairs == 0
    assert "No code was available" in (tmp_path / "site" / "similarity.html").read_text()


def test_a_student_page_shows_what_each_lms_export_sends(tmp_path: Path) -> None:
    """The TA sees the export's own payload for a graded result, and the policy for an error."""
    from grader.report.build import build

    write_documents(tmp_path / "results", [document("ok", [entry("t1", "01_spawn")]),
                                           document("broken", [entry("t1", "01_spawn", outcome="failed")], status="error",
                                                    message="the sandbox broke")])
    built = build(tmp_path / "results", tmp_path / "site")
    pages = {p.name: p.read_text() for p in (tmp_path / "site" / "students").glob("*.html")}
    ok = next(text for name, text in pages.items() if name.startswith("ok"))
    broken = next(text for name, text in pages.items() if name.startswith("broken"))
    assert built.report.students == 2
    assert "What the LMS exports send" in ok and "FullyGraded" in ok
    assert "not sent:" in broken and "never sent as a grade" in broken


def test_without_the_extra_the_command_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path) -> None:
    from click.testing import CliRunner

    from grader.cli.report import report_command

    monkeypatch.setitem(sys.modules, "copydetect", None)
    result = CliRunner().invoke(report_command, [str(tmp_path), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2 and result.exception is None or isinstance(result.exception, SystemExit)
    assert "pip install -e '.[report]'" in result.output and "Traceback" not in result.output


def test_the_command_on_the_committed_batch_reads_the_graded_code(tmp_path: Path) -> None:
    """With --submissions, the code is read through the grading intake and compared only when
    its hash is the graded one: the copied pair is flagged, the honest one is not."""
    from click.testing import CliRunner

    from grader.cli.report import report_command

    out = tmp_path / "site"
    result = CliRunner().invoke(report_command, [str(DATA / "results"), "--out", str(out),
                                                 "--submissions", str(SUBMISSIONS), "--assignment", str(REPO)])
    assert result.exit_code == 0, result.output
    page = (out / "similarity.html").read_text()
    first = page.index('class="pair"')
    assert 'data-a="frank-own" data-b="grace-copy"' in page[first:first + 200]
    assert 'data-a="frank-own" data-b="judy-own" data-exercise="03_prodcons" data-flagged="no"' in page


def test_by_default_the_code_is_read_from_each_result_source(tmp_path: Path) -> None:
    """The bundled samples' documents name their zips (examples/submissions/...) as source;
    the samples all hand in the reference solution where they do an exercise, so the report
    flags those pairs at 100%: identical code is found whichever way it came."""
    from click.testing import CliRunner

    from grader.cli.report import report_command

    results_dir = tmp_path / "results"
    results_dir.mkdir()
    for path in (DATA / "results").glob("*.json"):
        if json.loads(path.read_text())["submission"]["source"].startswith("examples/"):
            (results_dir / path.name).write_text(path.read_text())
    out = tmp_path / "site"
    (out / "students").mkdir(parents=True)
    (out / "students" / "gone-0123456789.html").write_text("an earlier report's student")
    result = CliRunner().invoke(report_command, [str(results_dir), "--out", str(out), "--assignment", str(REPO)])
    assert result.exit_code == 0, result.output
    page = (out / "similarity.html").read_text()
    assert "Code not available" not in page
    assert page.count('data-flagged="yes"') >= 4 and "<td class=\"num\" data-sort=\"100\">100</td>" in page
    assert not (out / "students" / "gone-0123456789.html").exists()
    same = CliRunner().invoke(report_command, [str(results_dir), "--out", str(results_dir)])
    assert same.exit_code == 2 and "folder of its own" in same.output
