"""Similarity: pairs of submissions whose code is unusually alike, per exercise.

The fingerprints are copydetect's (a maintained implementation of MOSS's winnowing, Schleimer,
Wilkerson and Aiken 2003): the code is tokenized by Pygments, names and strings are replaced
by placeholders (renaming variables changes nothing), every k-gram of tokens is hashed and
winnowing keeps a few of the hashes. The exercise **stub** is boilerplate: its k-grams are
removed from every submission, so the signatures, docstrings and imports every student was
given never count as alike.

Fingerprinting every file with Pygments and comparing all pairs with copydetect's
``compare_files`` would take most of a minute for 300 students and four exercises, so it is
done in two steps. First every file is tokenized with the standard library's tokenizer into
the same placeholder text copydetect's filter writes (:func:`quick_filter`), fingerprinted
with copydetect's own k-gram hashing and winnowing, and every pair is ranked by how many of
the smaller side's hashes the two share (one set intersection). Then only the top
``CANDIDATES`` pairs per exercise are fingerprinted and compared by copydetect itself, which
gives the score that is shown and decides the flag, and the matching regions.

A similar pair is a lead for a human to read, never a verdict: short exercises have few good
solutions, and students may have worked from the same lecture example.
"""

from __future__ import annotations

import builtins
import io
import itertools
import keyword
import re
from dataclasses import dataclass
from typing import Any

from grader.assignment import Assignment

NOISE = 25  # copydetect's default k: shorter matches are never reported
GUARANTEE = 30  # copydetect's default: matches this long are always found
WINDOW = GUARANTEE - NOISE + 1
THRESHOLD = 0.75  # flagged at or above: on average, each side shares this much of its own code
MIN_TOKENS = 60  # less of one's own code (stub removed) than this is too little to judge
CANDIDATES = 25  # pairs per exercise compared in full
PREFILTER = 0.15  # a pair sharing fewer of the smaller side's hashes is not a candidate


@dataclass
class Pair:
    """Two submissions' code for one exercise and how much of each the other shares."""

    exercise: str
    a: str
    b: str
    similarity_a: float  # the part of a's own code (stub removed) that b shares
    similarity_b: float
    code_a: str
    code_b: str
    regions_a: list[tuple[int, int]]  # character ranges of the matching code in code_a
    regions_b: list[tuple[int, int]]

    @property
    def score(self) -> float:
        """The mean of both sides (JPlag's "average similarity"): a short file contained in a
        long one is not called a copy of it on the short side's word alone."""
        return (self.similarity_a + self.similarity_b) / 2

    def flagged(self, threshold: float = THRESHOLD) -> bool:
        return self.score >= threshold


@dataclass
class Similarity:
    pairs: dict[str, list[Pair]]  # exercise -> compared pairs, most similar first
    compared: dict[str, int]  # exercise -> submissions with enough code of their own
    too_little: dict[str, list[str]]  # exercise -> ids with too little code of their own
    threshold: float

    def top(self, n: int = 20) -> list[Pair]:
        """The most similar pairs over every exercise."""
        every = [p for pairs in self.pairs.values() for p in pairs]
        return sorted(every, key=lambda p: (-p.score, p.exercise, p.a, p.b))[:n]

    def flagged(self) -> list[Pair]:
        return [p for p in self.top(10_000) if p.flagged(self.threshold)]


def stubs(assignment: Assignment) -> dict[str, str]:
    """Each exercise's given code (``exercises/NN_name/<module>.py``), joined like a submission's."""
    out = {}
    for ex in assignment.exercises:
        parts = []
        for name in ex.files:
            path = ex.public_dir / name
            if path.is_file():
                parts.append(path.read_text(errors="replace"))
        out[ex.id] = "\n".join(parts)
    return out


def exercise_code(assignment: Assignment, files: dict[str, str]) -> dict[str, str]:
    """A submission's files (module file name -> text) as one text per exercise."""
    out = {}
    for ex in assignment.exercises:
        parts = [files[name] for name in ex.files if name in files]
        if parts:
            out[ex.id] = "\n".join(parts)
    return out


def _fingerprint(code: str, boilerplate: Any) -> Any:
    """copydetect's own fingerprint (Pygments tokens): the score and regions that are shown."""
    from copydetect import CodeFingerprint

    return CodeFingerprint("submission.py", NOISE, WINDOW, boilerplate=boilerplate,
                           fp=io.StringIO(code), language="python")


def _boilerplate(stub: str, *, quick: bool = False) -> Any:
    """Every k-gram hash of the stub (window 1, as copydetect's boilerplate directories)."""
    import numpy as np
    from copydetect import CodeFingerprint
    from copydetect.utils import get_document_fingerprints

    if not stub.strip():
        return []
    if quick:
        every, _ = get_document_fingerprints(quick_filter(stub), NOISE, 1)
    else:
        every = CodeFingerprint("stub.py", NOISE, 1, fp=io.StringIO(stub), language="python").hashes
    return np.unique(np.array(sorted(every), dtype=np.int64))


_BUILTINS = frozenset(dir(builtins))
_KEYWORDS = frozenset(keyword.kwlist)
# One pass of C-level regex over the code: comments and layout skipped, strings (any prefix,
# triple-quoted too), names, numbers, then operators. Unlike ``tokenize`` it never refuses
# code, so a submission with a syntax error is still compared.
_TOKEN = re.compile(r"""
    (?P<skip>\#[^\n]*|\s+|\\\n)
  | (?P<string>[rRbBfFuU]{0,2}(?:\'\'\'[\s\S]*?\'\'\'|\"\"\"[\s\S]*?\"\"\"|'(?:\\.|[^'\\\n])*'?|"(?:\\.|[^"\\\n])*"?))
  | (?P<name>[^\W\d]\w*)
  | (?P<number>\.?\d[\w.]*)
  | (?P<op>\*\*=?|//=?|->|:=|<<=?|>>=?|[-+*/%&|^<>=!@]=|\S)
""", re.X)


def quick_filter(code: str) -> str:
    """The code as copydetect's filter writes it (names as V, a defined function F, a class O,
    strings S, comments and layout dropped, keywords, builtins, numbers and operators kept),
    from one regular expression instead of Pygments: many times faster, used only to rank
    the pairs; the scores shown are copydetect's own."""
    out: list[str] = []
    previous = ""
    for m in _TOKEN.finditer(code):
        kind = m.lastgroup
        if kind == "skip":
            continue
        text = m.group()
        if kind == "name":
            if text in _KEYWORDS or text in _BUILTINS:
                out.append(text)
            else:
                out.append("F" if previous == "def" else "O" if previous == "class" else "V")
        elif kind == "string":
            out.append("S")
        else:
            out.append(text)
        previous = text
    return "".join(out)


@dataclass
class _Quick:
    """Winnowed hashes of :func:`quick_filter`'s text, and how many tokens they cover."""

    hashes: set[int]
    coverage: float


def _quick_of(job: tuple[str, Any]) -> _Quick:
    """:func:`_quick` of one (code, boilerplate), for a worker process (forked: copydetect's
    k-gram hashes are Python's ``hash()``, salted per interpreter, and a fork keeps the salt)."""
    return _quick(*job)


def _quick(code: str, boilerplate: Any) -> _Quick:
    from copydetect.utils import get_document_fingerprints, get_token_coverage

    text = quick_filter(code)
    hashes, idx = get_document_fingerprints(text, NOISE, WINDOW, boilerplate)
    return _Quick(set(hashes), float(get_token_coverage(idx, NOISE, len(text))) if idx else 0.0)


def _regions(slices: Any, length: int) -> list[tuple[int, int]]:
    """copydetect's 2xN slice array as sorted, merged, in-range (start, end) pairs."""
    if len(slices) == 0 or len(slices[0]) == 0:
        return []
    spans = sorted((max(0, int(s)), min(length, int(e))) for s, e in zip(slices[0], slices[1], strict=True))
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if end <= start:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


MAX_MATRIX = 40_000_000  # cells of the files x hashes matrix; above it, pair by pair


def _rank(prints: dict[str, _Quick]) -> list[tuple[float, str, str]]:
    """Every pair sharing at least ``PREFILTER`` of the smaller side's hashes, with that ratio.

    The counts of shared hashes of all pairs at once are one matrix product (files x hashes,
    0/1) with numpy, a fraction of a second for a class of 300; for a very large class the
    same is counted pair by pair with set intersections.
    """
    import numpy as np

    ids = list(prints)
    columns: dict[int, int] = {}
    for fp in prints.values():
        for h in fp.hashes:
            columns.setdefault(h, len(columns))
    ranked = []
    if len(ids) * len(columns) <= MAX_MATRIX:
        matrix = np.zeros((len(ids), len(columns)), dtype=np.float32)
        for row, sid in enumerate(ids):
            matrix[row, [columns[h] for h in prints[sid].hashes]] = 1.0
        shared = matrix @ matrix.T
        sizes = matrix.sum(axis=1)
        smaller = np.minimum.outer(sizes, sizes)
        ratio = np.divide(shared, smaller, out=np.zeros_like(shared), where=smaller > 0)
        rows, cols = np.nonzero(np.triu(ratio >= PREFILTER, k=1))
        ranked = [(float(ratio[i, j]), ids[i], ids[j]) for i, j in zip(rows.tolist(), cols.tolist(), strict=True)]
    else:
        for a, b in itertools.combinations(ids, 2):
            ha, hb = prints[a].hashes, prints[b].hashes
            shared_count = len(ha & hb)
            if shared_count and shared_count / min(len(ha), len(hb)) >= PREFILTER:
                ranked.append((shared_count / min(len(ha), len(hb)), a, b))
    return ranked


def compare(code: dict[str, dict[str, str]], stub_code: dict[str, str], *,
            threshold: float = THRESHOLD, candidates: int = CANDIDATES, parallel: bool = False) -> Similarity:
    """Pairs per exercise from ``code`` (submission id -> exercise -> text).

    ``stub_code`` (exercise -> the stub's text) is removed from every submission first. A
    submission with fewer than ``MIN_TOKENS`` tokens of its own for an exercise (a stub
    handed back, a one-liner) is listed in ``too_little`` and not compared for it.
    ``parallel``: the quick fingerprints of a large class are made by forked workers
    (:func:`grader.report.model.in_workers`), a third of the comparison's time.
    """
    from copydetect import compare_files

    from grader.report.model import in_workers

    pairs: dict[str, list[Pair]] = {}
    compared: dict[str, int] = {}
    too_little: dict[str, list[str]] = {}
    exercises = sorted({ex for per in code.values() for ex in per})
    quick_boilerplates = {ex: _boilerplate(stub_code.get(ex, ""), quick=True) for ex in exercises}
    quick = iter(in_workers(_quick_of, [(code[sid][ex], quick_boilerplates[ex]) for ex in exercises
                                        for sid in sorted(code) if code[sid].get(ex) is not None], parallel))
    for ex in exercises:
        stub = stub_code.get(ex, "")
        prints: dict[str, _Quick] = {}
        little = []
        for sid in sorted(code):
            text = code[sid].get(ex)
            if text is None:
                continue
            fp = next(quick)
            if fp.coverage < MIN_TOKENS or not fp.hashes:
                little.append(sid)
            else:
                prints[sid] = fp
        too_little[ex] = little
        compared[ex] = len(prints)
        ranked = _rank(prints)
        ranked.sort(key=lambda r: (-r[0], r[1], r[2]))
        found = []
        boilerplate = _boilerplate(stub) if ranked else []
        full: dict[str, Any] = {}
        for _, a, b in ranked[:candidates]:
            for sid in (a, b):
                if sid not in full:
                    full[sid] = _fingerprint(code[sid][ex], boilerplate)
            fa, fb = full[a], full[b]
            if not fa.hashes or not fb.hashes:
                continue
            _, (sa, sb), (slices_a, slices_b) = compare_files(fa, fb)
            found.append(Pair(ex, a, b, min(1.0, float(sa)), min(1.0, float(sb)),
                              fa.raw_code, fb.raw_code,
                              _regions(slices_a, len(fa.raw_code)), _regions(slices_b, len(fb.raw_code))))
        found.sort(key=lambda p: (-p.score, p.a, p.b))
        pairs[ex] = found
    return Similarity(pairs, compared, too_little, threshold)
