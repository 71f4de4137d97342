"""Build the bundled sample submissions in examples/submissions/ from the course's own files.

Each sample is a zip, the way an LMS hands submissions over, made deterministically (fixed
timestamps) so that ``tests/test_examples.py`` can check the committed zips are current:

- alice-full: every reference solution (100/100)
- bob-partial: references for exercises 01 and 02, the untouched stubs for 03 and 04
- carol-deadlock: joins its processes before draining the result queue (hangs on big inputs)
- dave-import-crash: spawn.py raises while being imported
- erin-syntax-error: pingpong.py does not parse

Run: python examples/make_samples.py [OUT_DIR]
"""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STAMP = (2026, 1, 1, 0, 0, 0)
MODULES = {"01_spawn": "spawn.py", "02_pingpong": "pingpong.py", "03_prodcons": "prodcons.py", "04_locks": "locks.py"}


def reference(ex: str) -> bytes:
    return (ROOT / "solutions" / ex / MODULES[ex]).read_bytes()


def stub(ex: str) -> bytes:
    return (ROOT / "exercises" / ex / MODULES[ex]).read_bytes()


def mutant(mutant_id: str) -> bytes:
    from grader import assignment, validate

    course = assignment.load(ROOT)
    return next(m.source for m in validate.load_mutants(course) if m.id == mutant_id)


def samples() -> dict[str, dict[str, bytes]]:
    full = {ex: reference(ex) for ex in MODULES}
    return {
        "alice-full": full,
        "bob-partial": {**full, "03_prodcons": stub("03_prodcons"), "04_locks": stub("04_locks")},
        "carol-deadlock": {**full, "03_prodcons": mutant("prodcons_join_before_drain")},
        "dave-import-crash": {**full, "01_spawn": b'raise RuntimeError("configuration file not found")\n'
                              + reference("01_spawn")},
        "erin-syntax-error": {**full, "02_pingpong": b"def ping_pong(rounds)\n    return []\n"},
    }


def write(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, modules in samples().items():
        path = out / f"{name}.zip"
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for ex, data in sorted(modules.items()):
                info = zipfile.ZipInfo(f"{name}/exercises/{ex}/{MODULES[ex]}", STAMP)
                info.external_attr = 0o644 << 16
                info.compress_type = zipfile.ZIP_DEFLATED
                zf.writestr(info, data)
        written.append(path)
    return written


if __name__ == "__main__":
    for p in write(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "examples" / "submissions"):
        print(p)
