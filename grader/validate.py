"""``mpgrade validate``: proof that an assignment's tests can be trusted before it is released.

Three claims, each checked by grading real submissions through the normal path:

- the reference solutions score full marks under every start method, ``repeat`` times, with
  the runs going concurrently so the machine is busy (a test that ever fails is flaky);
- the stubs score zero;
- every mutant in ``solutions/mutants/`` (a copy of the reference with one realistic mistake)
  loses points in its own exercise, fails exactly the tests its ``mutant.toml`` lists when it
  lists them, and loses nothing anywhere else, in each of its ``repeat`` runs (a mistake the
  tests catch only sometimes, a race, is not caught).
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from grader import grading
from grader.assignment import START_METHODS, Assignment
from grader.intake.submission import Submission
from grader.protocol import results
from grader.sandbox.base import Sandbox
from grader.sandbox.local import LocalSandbox


@dataclass
class Mutant:
    id: str
    exercise: str
    module: str
    description: str
    source: bytes
    fails: list[str] | None = None
    may_fail: list[str] = field(default_factory=list)  # catch it only some runs (a race): allowed


def apply_changes(reference: str, changes: list[dict[str, str]], where: str) -> str:
    """The reference with each ``old`` text (found exactly once) replaced by ``new``, in order.

    Mutants are stored as these few-line changes, not as copies: the mistake is what the file
    shows, and a change to the reference that a mutant no longer fits is an error, not a
    silently stale copy.
    """
    text = reference
    for i, change in enumerate(changes, 1):
        old, new = change.get("old"), change.get("new")
        if not isinstance(old, str) or not isinstance(new, str) or not old:
            raise ValueError(f"{where}: change #{i} needs the strings old and new")
        count = text.count(old)
        if count != 1:
            raise ValueError(f"{where}: change #{i} matches the reference {count} times (must be once); "
                             "did the reference change?")
        text = text.replace(old, new)
    return text


def load_mutants(assignment: Assignment, folder: Path | None = None) -> list[Mutant]:
    """Every ``<id>/mutant.toml`` under the mutants folder: its ``[[change]]`` list applied to
    the reference module, or a whole module file next to it."""
    folder = folder or assignment.root / "solutions" / "mutants"
    mutants = []
    for spec_path in sorted(folder.glob("*/mutant.toml")):
        spec = tomllib.loads(spec_path.read_text())
        ex = assignment.exercise(spec["exercise"])
        module = spec.get("module") or ex.files[0]
        if module not in ex.files:
            raise ValueError(f"{spec_path}: {module} is not a file of {ex.id}")
        if (spec_path.parent / module).is_file():
            source = (spec_path.parent / module).read_bytes()
        else:
            reference_text = (ex.hidden_dir / module).read_text()
            source = apply_changes(reference_text, spec.get("change", []), str(spec_path)).encode()
        mutants.append(Mutant(
            id=spec_path.parent.name, exercise=ex.id, module=module,
            description=str(spec.get("description", "")),
            source=source,
            fails=list(spec["fails"]) if "fails" in spec else None,
            may_fail=list(spec.get("may_fail", [])),
        ))
    return mutants


def reference(assignment: Assignment, sub_id: str = "reference") -> Submission:
    sub = Submission(id=sub_id, source=str(assignment.root / "solutions"))
    for ex in assignment.exercises:
        for name in ex.files:
            sub.files[name] = (ex.hidden_dir / name).read_bytes()
    return sub


def stubs(assignment: Assignment) -> Submission:
    sub = Submission(id="stubs", source=str(assignment.root / "exercises"))
    for ex in assignment.exercises:
        for name in ex.files:
            sub.files[name] = (ex.public_dir / name).read_bytes()
    return sub


def _test_function(test_id: str) -> str:
    return test_id.split("::", 1)[-1].split("[", 1)[0]


def _exercises_using(assignment: Assignment, module: str) -> tuple[str, ...]:
    """Exercises whose tests name the module: only they can lose points through it."""
    stem = module[:-3]
    using = []
    for ex in assignment.exercises:
        for path in ex.public_tests() + ex.hidden_tests():
            text = path.read_text()
            if f'"{stem}"' in text or f"'{stem}'" in text:
                using.append(ex.id)
                break
    return tuple(using)


@dataclass
class Report:
    references: list[dict[str, Any]] = field(default_factory=list)
    flaky: list[dict[str, Any]] = field(default_factory=list)
    stubs: dict[str, Any] = field(default_factory=dict)
    mutants: list[dict[str, Any]] = field(default_factory=list)
    sandbox: str = "local"  # what the proof holds for: the sandbox every trial was graded in

    @property
    def ok(self) -> bool:
        return (all(r["ok"] for r in self.references) and not self.flaky
                and bool(self.stubs.get("ok")) and all(m["ok"] for m in self.mutants))

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "sandbox": self.sandbox, "references": self.references, "flaky": self.flaky,
                "stubs": self.stubs, "mutants": self.mutants, "finished_at": results.now()}


Progress = Callable[[str], None]


@dataclass(frozen=True)
class Trial:
    """One grading ``run`` does: a reference under a start method (its ``run``-th time), the
    stubs, or a mutant; named fields instead of a (kind, argument) pair whose argument changed
    shape with the kind."""

    kind: str  # "reference", "stubs" or "mutant"
    start_method: str | None = None  # reference only
    run: int = 0  # reference or mutant: which repetition, from 0
    mutant: Mutant | None = field(default=None, hash=False)  # mutant only


def run(
    assignment: Assignment,
    *,
    repeat: int = 5,
    start_methods: tuple[str, ...] = START_METHODS,
    jobs: int = 2,
    mutants: list[Mutant] | None = None,
    progress: Progress | None = None,
    sandbox: Sandbox | None = None,
) -> Report:
    """Grade references, stubs and mutants concurrently and say whether the tests hold.

    ``sandbox`` is where: it should be the one the grading will use (``mpgrade validate``
    picks Docker when an engine answers), since a proof made in another does not carry over
    (a test that student code of another uid cannot follow passes only locally). It is
    closed at the end; without one, a LocalSandbox keeping ``jobs`` harnesses started ahead.
    """
    say = progress or (lambda message: None)
    mutants = load_mutants(assignment) if mutants is None else mutants
    sandbox = LocalSandbox(warm=max(1, jobs)) if sandbox is None else sandbox
    report = Report(sandbox=sandbox.name)

    def grade(sub: Submission, **options: Any) -> dict[str, Any]:
        doc = grading.grade(sandbox, assignment, sub, grading.Options(**options))
        assert doc is not None  # never cancelled here
        return doc

    work = [Trial("reference", start_method=m, run=i) for m in start_methods for i in range(repeat)]
    work.append(Trial("stubs"))
    # Each mutant ``repeat`` times too: a mutant caught one run in three (a race the tests
    # only sometimes see) is not caught.
    work += [Trial("mutant", mutant=m, run=i) for m in mutants for i in range(repeat)]

    def one(item: Trial) -> tuple[Trial, dict[str, Any]]:
        if item.kind == "reference":
            method, i = item.start_method, item.run
            doc = grade(reference(assignment, f"reference-{method}-{i}"), start_method=method)
            say(f"reference {method} #{i + 1}: {doc['score']:g}/{doc['max_score']:g}")
        elif item.kind == "stubs":
            doc = grade(stubs(assignment))
            say(f"stubs: {doc['score']:g}/{doc['max_score']:g}")
        else:
            mutant = item.mutant
            assert mutant is not None
            sub = reference(assignment, mutant.id)
            sub.files[mutant.module] = mutant.source
            doc = grade(sub, exercises=_exercises_using(assignment, mutant.module) or (mutant.exercise,))
            again = f" #{item.run + 1}" if repeat > 1 else ""
            say(f"mutant {mutant.id}{again}: {doc['score']:g}/{doc['max_score']:g}")
        return item, doc

    with sandbox, ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = list(pool.map(one, work))

    failures: dict[tuple[str, str], list[str]] = {}
    runs: dict[str, int] = {}
    judged: dict[str, list[dict[str, Any]]] = {}
    for item, doc in outcomes:
        if item.kind == "reference":
            method = str(item.start_method)
            runs[method] = runs.get(method, 0) + 1
            bad = [t for t in doc["tests"] if t["outcome"] != "passed"]
            for t in bad:
                failures.setdefault((method, t["id"]), []).append(f"{t['outcome']}: {t['message'][:200]}")
            report.references.append({
                "start_method": method, "run": item.run + 1, "score": doc["score"],
                "max_score": doc["max_score"], "status": doc["status"], "message": doc["message"],
                "ok": doc["status"] == "graded" and doc["score"] == doc["max_score"],
            })
        elif item.kind == "stubs":
            report.stubs = {"score": doc["score"], "max_score": doc["max_score"], "status": doc["status"],
                            "ok": doc["status"] == "graded" and doc["score"] == 0,
                            "passing_tests": [t["id"] for t in doc["tests"] if t["outcome"] == "passed"]}
        elif item.mutant is not None:
            judged.setdefault(item.mutant.id, []).append(_judge_mutant(assignment, item.mutant, doc))
    report.mutants = [_every_run(verdicts) for verdicts in judged.values()]
    for (method, test_id), messages in sorted(failures.items()):
        report.flaky.append({"test": test_id, "start_method": method, "failures": len(messages),
                             "runs": runs[method], "rate": round(len(messages) / runs[method], 3),
                             "example": messages[0]})
    return report


def _every_run(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    """One mutant's verdict over its runs: it holds only if every run held. The first run
    that did not hold is the one shown (its problems, tests and messages), with how many did."""
    bad = [v for v in verdicts if not v["ok"]]
    shown = dict(bad[0] if bad else verdicts[0])
    shown["runs"], shown["runs_ok"] = len(verdicts), len(verdicts) - len(bad)
    if bad and len(verdicts) > 1:
        shown["problems"] = [f"{len(bad)} of {len(verdicts)} runs: {p}" for p in shown["problems"]]
    return shown


def _judge_mutant(assignment: Assignment, mutant: Mutant, doc: dict[str, Any]) -> dict[str, Any]:
    failed = sorted({_test_function(t["id"]) for t in doc["tests"]
                     if t["outcome"] != "passed" and t["exercise"] == mutant.exercise})
    elsewhere = sorted({t["id"] for t in doc["tests"]
                        if t["outcome"] != "passed" and t["exercise"] != mutant.exercise})
    own = next((e for e in doc["exercises"] if e["name"] == mutant.exercise), None)
    lost = own is not None and own["score"] < own["max_score"]
    problems = []
    if doc["status"] != "graded":
        problems.append(f"not graded: {doc['message']}")
    if not lost:
        problems.append("not caught: it loses no points in its own exercise")
    if elsewhere:
        problems.append(f"loses points outside {mutant.exercise}: {', '.join(elsewhere[:5])}")
    ran = {_test_function(t["id"]) for t in doc["tests"] if t["exercise"] == mutant.exercise}
    listed = set(mutant.fails or []) | set(mutant.may_fail)
    unknown = sorted(listed - ran) if ran else []  # nothing ran: "not graded" says enough
    if unknown:  # a misspelt may_fail would otherwise quietly allow nothing, or hide a rename
        problems.append(f"lists tests {mutant.exercise} does not have: {', '.join(unknown)}")
    if mutant.fails is not None:
        missing = sorted(set(mutant.fails) - set(failed))
        extra = sorted(set(failed) - set(mutant.fails) - set(mutant.may_fail))
        if missing or extra:
            problems.append(f"fails other tests than listed (missing {missing}, unexpected {extra})")
    hints = {t["id"]: t.get("hint") for t in doc["tests"] if t["outcome"] != "passed"}
    unhinted = [tid for tid, hint in hints.items() if not hint]
    if unhinted:
        problems.append(f"failing tests without a hint: {', '.join(unhinted[:5])}")
    return {
        "id": mutant.id, "exercise": mutant.exercise, "description": mutant.description,
        "score": own["score"] if own else None, "max_score": own["max_score"] if own else None,
        "failed_tests": failed, "ok": not problems, "problems": problems,
        **mutant_evidence(doc, mutant.exercise),
    }


MAX_EVIDENCE_MESSAGE = 300  # characters of a failing test's message kept per mutant


def mutant_evidence(doc: dict[str, Any], exercise: str) -> dict[str, Any]:
    """What the grading of a mutant showed, so an author sees why without grading it by hand:
    each test that did not pass (anywhere) with its outcome, start method and the start of
    its message, and the tests of the mutant's own exercise that passed (all of them, for a
    mutant that was not caught)."""
    failures = [{"test": t["id"], "outcome": t["outcome"], "start_method": t.get("start_method"),
                 "message": (t.get("message") or "")[:MAX_EVIDENCE_MESSAGE]}
                for t in doc["tests"] if t["outcome"] != "passed"]
    passed = [t["id"] for t in doc["tests"] if t["outcome"] == "passed" and t["exercise"] == exercise]
    return {"failures": failures, "passed_tests": passed}
