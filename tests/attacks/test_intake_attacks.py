"""Attacks on intake: who a file belongs to, which copy of a file is graded, whose caps a
student's files count against, and where a submission's result is written.

Each test builds what an instructor would be handed (an LMS download, a folder of zips) with
one hostile student in it, and checks that the hostile student cannot change another
student's grade, hide from the exports, or take the class down with them.
"""

from __future__ import annotations

import csv
import io
import json
import random
import struct
import tracemalloc
import warnings
import zipfile
from pathlib import Path

import pytest

from grader import batch, export
from grader.intake import lms, notebook
from grader.intake.discovery import discover
from grader.intake.entries import MAX_MEMBERS
from grader.sandbox.local import LocalSandbox

REPO = Path(__file__).resolve().parents[2]
SPAWN = (REPO / "solutions" / "01_spawn" / "spawn.py").read_bytes()
PINGPONG = (REPO / "solutions" / "02_pingpong" / "pingpong.py").read_bytes()


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip with exactly these members, in this order (the same name twice if asked)."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # zipfile warns about a duplicate name, and writes it
        with zipfile.ZipFile(buf, "w", compression) as zf:
            for name, data in members:
                zf.writestr(name, data)
    return buf.getvalue()


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def by_id(subs) -> dict:
    return {s.id: s for s in subs}


# --------------------------------------------------------------------------------------------
# Identities: a student's own file name never files it under another student


def moodle_flat_download() -> dict[str, bytes]:
    """Moodle without "download in folders": Ann (43) names a file after Jane's (42) prefix."""
    return {
        "Jane Doe_42_assignsubmission_file_spawn.py": b"# jane's spawn\n",
        "Ann Lee_43_assignsubmission_file_notes_42_assignsubmission_file_spawn.py": b"# ann's\n",
        "Ann Lee_43_assignsubmission_file_pingpong.py": b"# ann's pingpong\n",
    }


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_a_file_named_after_another_students_moodle_prefix_stays_with_its_owner(tmp_path, course, form):
    files = moodle_flat_download()
    if form == "zip":
        path = tmp_path / "moodle.zip"
        path.write_bytes(zip_bytes(list(files.items())))
    else:
        path = write_tree(tmp_path / "moodle", files)
    subs = by_id(lms.discover_lms(path, course).submissions)
    assert sorted(subs) == ["moodle-42", "moodle-43"]
    jane, ann = subs["moodle-42"], subs["moodle-43"]
    assert jane.student["name"] == "Jane Doe" and ann.student["name"] == "Ann Lee"
    assert jane.files == {"spawn.py": b"# jane's spawn\n"}  # Jane's module is Jane's
    assert not jane.ignored, "nothing of Ann's is even considered for Jane"
    assert ann.files == {"pingpong.py": b"# ann's pingpong\n"}  # her notes file is no module
    assert "spawn.py" in ann.missing


# --------------------------------------------------------------------------------------------
# What is graded is what a TA sees: a name twice in a zip is refused, never one copy picked


@pytest.mark.parametrize("first, second", [
    ("a/spawn.py", "a/spawn.py"),  # the same name twice: unzip keeps the last
    ("a\\spawn.py", "a/spawn.py"),  # unzip reads backslashes as folders
    ("./spawn.py", "spawn.py"),
    ("Spawn.py", "spawn.py"),  # one file on macOS and Windows
])
def test_a_zip_with_a_member_twice_is_an_error_for_that_submission_only(tmp_path, course, first, second):
    subs_dir = tmp_path / "subs"
    subs_dir.mkdir()
    (subs_dir / "mallory.zip").write_bytes(zip_bytes([(first, SPAWN), (second, b"# what a TA sees\n")]))
    (subs_dir / "bob.zip").write_bytes(zip_bytes([("spawn.py", SPAWN)]))
    found, _ = discover([subs_dir], course)
    subs = by_id(found)
    assert subs["mallory"].error and "twice" in subs["mallory"].error
    assert "spawn.py" in subs["mallory"].error
    assert subs["mallory"].files == {}
    assert subs["bob"].error is None and subs["bob"].files == {"spawn.py": SPAWN}


def test_a_students_zip_in_an_lms_download_with_a_member_twice_is_their_error_only(tmp_path, course):
    hw = zip_bytes([("hw/spawn.py", SPAWN), ("hw/spawn.py", b"# the copy unzip keeps\n")])
    path = tmp_path / "canvas.zip"
    path.write_bytes(zip_bytes([("mallory_1001_5001_hw.zip", hw),
                                ("doebob_1002_6001_spawn.py", SPAWN)]))
    subs = by_id(lms.discover_lms(path, course).submissions)
    assert subs["canvas-1001"].error and "twice" in subs["canvas-1001"].error
    assert subs["canvas-1001"].files == {}
    assert subs["canvas-1002"].error is None and subs["canvas-1002"].files == {"spawn.py": SPAWN}


def test_two_moodle_entries_that_are_the_same_file_are_refused_for_that_student(tmp_path, course):
    """The folder form and the flat form of one student: both are ``spawn.py``."""
    path = tmp_path / "moodle.zip"
    path.write_bytes(zip_bytes([
        ("Mal Lory_41_assignsubmission_file_/spawn.py", SPAWN),
        ("Mal Lory_41_assignsubmission_file_spawn.py", b"# the other one\n"),
        ("Jane Doe_42_assignsubmission_file_/spawn.py", SPAWN),
    ]))
    subs = by_id(lms.discover_lms(path, course).submissions)
    assert subs["moodle-41"].error and "spawn.py" in subs["moodle-41"].error
    assert subs["moodle-41"].files == {}
    assert subs["moodle-42"].error is None and subs["moodle-42"].files == {"spawn.py": SPAWN}


# --------------------------------------------------------------------------------------------
# Caps are per student: one student's huge folder is their error, everyone else is graded


def gradescope_metadata() -> bytes:
    return (b"submission_111:\n  :submitters:\n  - :name: Mal Lory\n    :sid: '1'\n"
            b"submission_222:\n  :submitters:\n  - :name: Jane Doe\n    :sid: '2'\n")


HOG = 100_001  # more files than a whole class's download used to be allowed


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_one_students_100000_cache_files_in_a_gradescope_export_are_their_error_only(tmp_path, course, form):
    hog = [(f"export/submission_111/build/cache/{i}.bin", b"") for i in range(HOG)]
    honest = [("export/submission_111/spawn.py", SPAWN),
              ("export/submission_222/spawn.py", SPAWN),
              ("export/submission_222/pingpong.py", PINGPONG),
              ("export/submission_metadata.yml", gradescope_metadata())]
    if form == "zip":
        path = tmp_path / "gradescope.zip"
        path.write_bytes(zip_bytes(honest + hog, zipfile.ZIP_STORED))
    else:
        path = write_tree(tmp_path / "gradescope", dict(honest))
        cache = path / "export" / "submission_111" / "build" / "cache"
        cache.mkdir(parents=True)
        for i in range(HOG):
            (cache / f"{i}.bin").touch()
    found, skipped = discover([path], course)
    subs = by_id(found)
    assert sorted(subs) == ["gradescope-111", "gradescope-222"], skipped
    assert subs["gradescope-111"].error and str(MAX_MEMBERS) in subs["gradescope-111"].error
    jane = subs["gradescope-222"]
    assert jane.error is None and jane.student["name"] == "Jane Doe"
    assert jane.files == {"spawn.py": SPAWN, "pingpong.py": PINGPONG}


# --------------------------------------------------------------------------------------------
# Archive errors: a corrupt LZMA member is an error for its submission, not for the batch


def corrupt_lzma_zip(members: list[tuple[str, bytes]] | None = None, bad: str = "spawn.py") -> bytes:
    """A zip of LZMA members, ``bad``'s with invalid properties: reading it raises lzma.LZMAError."""
    data = bytearray(zip_bytes(members or [("spawn.py", SPAWN)], zipfile.ZIP_LZMA))
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        offset = zf.getinfo(bad).header_offset
    name_len, extra_len = struct.unpack_from("<HH", data, offset + 26)
    start = offset + 30 + name_len + extra_len  # LZMA in zip: 4 header bytes, then properties
    data[start + 4] = 0xFF  # lc/lp/pb out of range
    return bytes(data)


def test_a_corrupt_lzma_member_in_a_plain_zip_is_an_error_for_that_submission_only(tmp_path, course):
    subs_dir = tmp_path / "subs"
    subs_dir.mkdir()
    (subs_dir / "mallory.zip").write_bytes(corrupt_lzma_zip())
    (subs_dir / "bob.zip").write_bytes(zip_bytes([("spawn.py", SPAWN)]))
    found, _ = discover([subs_dir], course)
    subs = by_id(found)
    assert "not a readable zip" in subs["mallory"].error
    assert subs["bob"].error is None and subs["bob"].files == {"spawn.py": SPAWN}


def test_a_corrupt_lzma_member_of_an_lms_download_is_an_error_for_that_student_only(tmp_path, course):
    """The same list of archive errors serves every reader: the download's own members and
    the zips students uploaded into it, not only a plain zip."""
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(corrupt_lzma_zip([("doejane_1001_5001_spawn.py", SPAWN),
                                           ("mallory_1002_6001_spawn.py", SPAWN),
                                           ("eve_1003_7001_work.zip", corrupt_lzma_zip())],
                                          bad="mallory_1002_6001_spawn.py"))
    found, skipped = discover([download], course)
    subs = by_id(found)
    assert sorted(subs) == ["canvas-1001", "canvas-1002", "canvas-1003"], skipped
    assert subs["canvas-1001"].error is None and subs["canvas-1001"].files == {"spawn.py": SPAWN}
    assert "mallory_1002_6001_spawn.py could not be read" in subs["canvas-1002"].error
    assert "eve_1003_7001_work.zip/spawn.py could not be read" in subs["canvas-1003"].error
    assert subs["canvas-1002"].files == subs["canvas-1003"].files == {}


# --------------------------------------------------------------------------------------------
# Ids never collide with the grader's own files, nor with each other


def test_submissions_named_summary_and_scores_are_in_the_summary_the_csv_and_every_export(tmp_path, course):
    subs_dir = tmp_path / "subs"
    for name in ("summary", "scores", "alice"):
        write_tree(subs_dir / name, {"pingpong.py": PINGPONG})
    out = tmp_path / "out"

    def grade() -> batch.Batch:
        box = LocalSandbox()
        try:
            result = batch.run([subs_dir], out, course, box, jobs=3)
        finally:
            box.close()
        batch.write_outputs(result, course)
        return result

    first = grade()
    ids = {"summary", "scores", "alice"}
    assert set(first.documents) == ids
    assert all(d["status"] == "graded" and d["score"] > 0 for d in first.documents.values())

    summary = json.loads((out / "summary.json").read_text())
    assert "batch_id" in summary, "summary.json is the batch's summary, not a result"
    assert {r["id"] for r in summary["submissions"]} == ids
    with (out / "scores.csv").open(newline="") as fh:
        assert {row["id"] for row in csv.DictReader(fh)} == ids

    docs = export.load_results(out)  # what every export starts from
    assert {export.submission_id(d) for d in docs} == ids
    assert {row["id"] for row in csv.DictReader(io.StringIO(export.scores_csv(docs)))} == ids
    assert {s["userId"] for s in export.lti_scores(docs)} == ids
    written = export.write_gradescope(docs, tmp_path / "gradescope")
    assert {p.parent.name for p in written} == ids
    written = export.write_prairielearn(docs, tmp_path / "pl")
    assert {p.parent.name for p in written} == ids

    files = [r["file"] for r in summary["submissions"]]
    assert len({f.casefold() for f in files}) == len(files), "no two results share a file"
    assert {f.casefold() for f in files}.isdisjoint({"summary.json", "scores.csv"})
    for row in summary["submissions"]:
        assert json.loads((out / row["file"]).read_text())["submission"]["id"] == row["id"]

    second = grade()  # resuming: nothing changed, nothing is graded again
    assert second.reused == ids and set(second.documents) == ids
    assert json.loads((out / "summary.json").read_text())["totals"]["reused"] == len(ids)


def test_ids_that_differ_only_in_case_do_not_share_a_result_file(tmp_path, course):
    """``Carol/`` and ``carol/`` are two files on Linux, one on macOS and Windows (and in a
    results folder copied there): the second gets its own id."""
    subs_dir = tmp_path / "subs"
    write_tree(subs_dir / "Carol", {"spawn.py": b"# Carol\n"})
    write_tree(subs_dir / "carol", {"spawn.py": b"# carol\n"})
    found, _ = discover([subs_dir], course)
    files = {s.id.casefold(): s.files["spawn.py"] for s in found}
    assert sorted(files.values()) == [b"# Carol\n", b"# carol\n"]


def test_a_folder_named_like_a_renamed_duplicate_keeps_its_own_id(tmp_path, course):
    """``alice/`` and ``alice.zip`` make ``alice`` and ``alice-2``: a folder really named
    ``alice-2`` must not then share that id (and its result file)."""
    subs_dir = tmp_path / "subs"
    write_tree(subs_dir / "alice", {"spawn.py": b"# folder\n"})
    write_tree(subs_dir / "alice-2", {"spawn.py": b"# alice-2\n"})
    (subs_dir / "alice.zip").write_bytes(zip_bytes([("spawn.py", b"# zip\n")]))
    found, _ = discover([subs_dir], course)
    ids = [s.id for s in found]
    assert len({i.casefold() for i in ids}) == len(ids) == 3
    assert by_id(found)["alice-2"].files == {"spawn.py": b"# alice-2\n"}


def test_result_file_names_never_meet_the_grader_files_even_ignoring_case():
    """The results folder is copied, zipped and unpacked on case-insensitive systems too
    (ids of one batch are unique ignoring case, see the test above)."""
    ids = ("Summary", "SCORES", "scores.v2", "nul", "_summary", "summary-2", "alice")
    names = [batch.result_file(i).casefold() for i in ids]
    assert len(set(names)) == len(ids)
    assert not set(names) & {batch.SUMMARY, batch.SCORES, "scores.json", "nul.json"}
    assert batch.result_file("alice") == "alice.json"  # ordinary ids keep their file name


def test_a_zip_whose_name_is_not_utf8_is_graded_next_to_the_others(tmp_path, course):
    """A file name is bytes on Linux: ``\\xff.zip`` must not stop the batch (its id holds a lone
    surrogate, which a strict ``encode()`` refuses), nor lose the other students."""
    subs_dir = tmp_path / "subs"
    subs_dir.mkdir()
    (subs_dir / "bob.zip").write_bytes(zip_bytes([("pingpong.py", PINGPONG)]))
    with open(bytes(subs_dir) + b"/\xff.zip", "wb") as f:
        f.write(zip_bytes([("pingpong.py", PINGPONG)]))
    out = tmp_path / "out"
    box = LocalSandbox()
    try:
        result = batch.run([subs_dir], out, course, box, jobs=2)
    finally:
        box.close()
    batch.write_outputs(result, course)
    assert len(result.documents) == 2
    assert result.documents["bob"]["status"] == "graded" and result.documents["bob"]["score"] > 0
    (odd,) = [d for i, d in result.documents.items() if i != "bob"]
    assert odd["status"] == "graded" and odd["score"] == result.documents["bob"]["score"]
    summary = json.loads((out / "summary.json").read_text())
    assert len(summary["submissions"]) == 2
    docs = export.load_results(out)
    assert len(docs) == 2
    assert len(export.write_gradescope(docs, tmp_path / "gradescope")) == 2


def test_a_submission_that_cannot_be_read_is_its_own_error(tmp_path, course, monkeypatch):
    """An I/O error reading one student's folder (a vanished file, a bad disk block) is an
    ``error`` result for that student, not a traceback that stops the batch before it starts."""
    import grader.intake.submission as submission_mod

    subs_dir = tmp_path / "subs"
    for name in ("alice", "bob"):
        write_tree(subs_dir / name, {"pingpong.py": PINGPONG})
    real = submission_mod.from_folder

    def flaky(path, assignment, sub_id=None):
        if path.name == "alice":
            raise OSError(5, "Input/output error")
        return real(path, assignment, sub_id)

    monkeypatch.setattr(submission_mod, "from_folder", flaky)
    found, _ = discover([subs_dir], course)
    subs = by_id(found)
    assert set(subs) == {"alice", "bob"}
    assert "could not be read: Input/output error" in subs["alice"].error
    assert subs["bob"].error is None


# --------------------------------------------------------------------------------------------
# A student's own zip or folder is never read as an LMS download


def gradescope_lookalike(impersonated: str) -> dict[str, bytes]:
    """What Eve hands in: a Gradescope export of two submissions, both "by" a classmate."""
    meta = (f"submission_1:\n  :submitters:\n  - :name: Bob\n    :sid: {impersonated}\n"
            f"    :email: bob@example.edu\nsubmission_2:\n  :submitters:\n  - :name: Bob\n"
            f"    :sid: {impersonated}\n").encode()
    return {"submission_metadata.yml": meta,
            "submission_1/spawn.py": b'raise SystemExit("sabotage")\n',
            "submission_2/spawn.py": SPAWN}


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_a_students_zip_laid_out_like_a_gradescope_export_is_just_their_submission(tmp_path, course, form):
    subs_dir = tmp_path / "subs"
    for name in ("alice", "bob"):
        write_tree(subs_dir / name, {"spawn.py": SPAWN})
    files = gradescope_lookalike("bob")
    if form == "zip":
        (subs_dir / "eve.zip").write_bytes(zip_bytes(list(files.items())))
    else:
        write_tree(subs_dir / "eve", files)
    found, skipped = discover([subs_dir], course)
    subs = by_id(found)
    assert sorted(subs) == ["alice", "bob", "eve"], skipped
    assert all(s.student is None for s in found), "nobody in a folder of submissions has an LMS identity"
    assert subs["eve"].error is None and "spawn.py" in subs["eve"].files
    assert not any("gradescope" in m.lower() for m in skipped)


def test_an_lms_download_given_on_the_command_line_is_still_read_as_one(tmp_path, course):
    download = tmp_path / "gradescope-export.zip"
    download.write_bytes(zip_bytes(list(gradescope_lookalike("2021001").items())))
    found, _ = discover([download], course)
    assert sorted(s.id for s in found) == ["gradescope-1", "gradescope-2"]
    assert all(s.student["user_id"] == "2021001" for s in found)


# --------------------------------------------------------------------------------------------
# Nothing in one student's files stops the batch before it starts


def test_a_canvas_file_name_with_a_huge_number_is_only_that_students_problem(tmp_path, course):
    """``spawn-<4301 nines>.py``: Python refuses to turn more than 4300 digits into an int."""
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(zip_bytes([
        ("doejane_1001_5001_spawn.py", SPAWN),
        ("smithbob_1002_6001_spawn.py", SPAWN),
        ("evel_1003_7001_spawn-" + "9" * 4301 + ".py", SPAWN),
        ("evem_1004_" + "7" * 4400 + "_spawn.py", SPAWN),
    ]))
    found, skipped = discover([download], course)
    subs = by_id(found)
    assert {"canvas-1001", "canvas-1002", "canvas-1003"} <= set(subs), skipped
    assert subs["canvas-1001"].files == {"spawn.py": SPAWN}
    assert subs["canvas-1002"].files == {"spawn.py": SPAWN}
    assert "spawn.py" in subs["canvas-1003"].missing  # not a re-upload of spawn.py, just a file


@pytest.mark.parametrize("late", ["'  '", "''", "' \t '"])
def test_a_blank_lateness_in_gradescope_metadata_is_not_late(tmp_path, course, late):
    download = tmp_path / "gradescope-export.zip"
    download.write_bytes(zip_bytes([
        ("submission_metadata.yml", f"submission_1:\n  :late?: {late}\n".encode()),
        ("submission_1/spawn.py", SPAWN),
    ]))
    found, skipped = discover([download], course)
    assert [(s.id, s.student["late"], s.error) for s in found] == [("gradescope-1", False, None)], skipped


def test_a_surprise_while_reading_one_student_of_a_download_is_that_students_error(tmp_path, course, monkeypatch):
    """Whatever fails while one student's files are read (here a bug nobody foresaw, in the
    notebook reader) is an ``error`` for that student; the class is graded."""
    real = notebook.convert

    def buggy(data, rel, assignment, limit):
        if "evel" in rel:
            raise KeyError("cells")
        return real(data, rel, assignment, limit)

    monkeypatch.setattr(notebook, "convert", buggy)
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(zip_bytes([("doejane_1001_5001_spawn.py", SPAWN),
                                    ("evel_1003_7001_spawn.ipynb", b"{}")]))
    found, skipped = discover([download], course)
    subs = by_id(found)
    assert sorted(subs) == ["canvas-1001", "canvas-1003"], skipped
    assert subs["canvas-1001"].error is None and subs["canvas-1001"].files == {"spawn.py": SPAWN}
    assert "KeyError" in subs["canvas-1003"].error and subs["canvas-1003"].files == {}


def test_a_surprise_while_reading_a_whole_download_falls_back_to_the_ordinary_discovery(tmp_path, course, monkeypatch):
    def buggy(*args):
        raise IndexError("list index out of range")

    monkeypatch.setattr(lms, "_canvas", buggy)
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(zip_bytes([("doejane_1001_5001_spawn.py", SPAWN)]))
    found, skipped = discover([download], course)
    assert [s.id for s in found] == ["canvas-download"]
    assert any("could not be read as an LMS download" in m and "IndexError" in m for m in skipped)


def test_a_surprise_while_reading_one_entry_of_a_folder_is_that_entrys_error(tmp_path, course, monkeypatch):
    import grader.intake.submission as submission_mod

    subs_dir = tmp_path / "subs"
    write_tree(subs_dir / "alice", {"spawn.py": SPAWN})
    (subs_dir / "eve.zip").write_bytes(zip_bytes([("spawn.py", SPAWN)]))
    real = submission_mod.from_zip

    def buggy(path, assignment, sub_id=None):
        if path.name == "eve.zip":
            raise RecursionError("maximum recursion depth exceeded")
        return real(path, assignment, sub_id)

    monkeypatch.setattr(submission_mod, "from_zip", buggy)
    found, _ = discover([subs_dir], course)
    subs = by_id(found)
    assert sorted(subs) == ["alice", "eve"]
    assert subs["alice"].error is None
    assert "RecursionError" in subs["eve"].error


# --------------------------------------------------------------------------------------------
# Memory: one budget per student, whatever their files are packed in

MiB = 1024 * 1024
ONE_MIB_MODULE = b"#" * MiB  # exactly the largest module taken


def peak_mib(fn):
    """``fn()``, and the most memory Python held while it ran, in MiB."""
    tracemalloc.start()
    try:
        result = fn()
        return result, tracemalloc.get_traced_memory()[1] / MiB
    finally:
        tracemalloc.stop()


def test_many_small_zips_of_one_student_share_one_budget(tmp_path, course):
    """Forty 33 KB zips, each 3 MiB of copies of spawn.py and random padding so that no
    zip's compression ratio gives it away: 120 MiB in all for one student, each zip well
    within what one zip may hold."""
    rng = random.Random(0)
    members = [("doejane_1001_5001_spawn.py", SPAWN)]
    for k in range(40):
        inner = zip_bytes([(f"d{i}/spawn.py", ONE_MIB_MODULE) for i in range(3)]
                          + [("notes.bin", rng.randbytes(30 * 1024))])
        members.append((f"evel_1003_{7000 + k}_w{k}.zip", inner))
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(zip_bytes(members, zipfile.ZIP_STORED))
    (found, skipped), peak = peak_mib(lambda: discover([download], course))
    assert peak < 100, f"intake held {peak:.0f} MiB"
    subs = by_id(found)
    assert subs["canvas-1001"].error is None and subs["canvas-1001"].files == {"spawn.py": SPAWN}
    assert "64 MiB" in subs["canvas-1003"].error and subs["canvas-1003"].files == {}


def test_zips_of_exact_size_modules_that_compress_too_well_are_refused(tmp_path, course):
    """Sixty members of exactly 1 MiB each in a 68 KB zip: no member is over the size the
    per-member ratio check looks at, the zip as a whole is a bomb."""
    inner = zip_bytes([(f"d{i:02d}/spawn.py", ONE_MIB_MODULE) for i in range(60)])
    members = [("doejane_1001_5001_spawn.py", SPAWN)]
    members += [(f"evel_1003_{7000 + k}_w{k}.zip", inner) for k in range(6)]
    download = tmp_path / "canvas-download.zip"
    download.write_bytes(zip_bytes(members))
    (found, _), peak = peak_mib(lambda: discover([download], course))
    assert peak < 100, f"intake held {peak:.0f} MiB"
    subs = by_id(found)
    assert subs["canvas-1001"].error is None
    assert "compression ratio" in subs["canvas-1003"].error
    (tmp_path / "eve.zip").write_bytes(inner)  # the same zip handed in alone
    (eve,), _ = discover([tmp_path / "eve.zip"], course)
    assert "compression ratio" in eve.error


def test_a_folder_with_over_a_hundred_copies_of_a_module_is_over_budget(tmp_path, course):
    subs_dir = tmp_path / "subs"
    write_tree(subs_dir / "alice", {"spawn.py": SPAWN})
    write_tree(subs_dir / "eve", {f"d{i:03d}/spawn.py": ONE_MIB_MODULE for i in range(120)})
    (found, _), peak = peak_mib(lambda: discover([subs_dir], course))
    assert peak < 100, f"intake held {peak:.0f} MiB"
    subs = by_id(found)
    assert subs["alice"].error is None and subs["alice"].files == {"spawn.py": SPAWN}
    assert "64 MiB" in subs["eve"].error and subs["eve"].files == {}


def test_a_folder_with_more_files_than_a_zip_may_hold_is_an_error(tmp_path, course):
    subs_dir = tmp_path / "subs"
    write_tree(subs_dir / "alice", {"spawn.py": SPAWN})
    write_tree(subs_dir / "eve", {f"junk/{i}.txt": b"" for i in range(MAX_MEMBERS + 1)}
               | {"spawn.py": SPAWN})
    subs = by_id(discover([subs_dir], course)[0])
    assert subs["alice"].error is None
    assert str(MAX_MEMBERS) in subs["eve"].error


# --------------------------------------------------------------------------------------------
# Current Canvas naming (#19): a student's own file name never moves it, nothing vanishes


@pytest.mark.parametrize("form", ["zip", "folder"])
def test_a_canvas_file_named_like_another_students_entry_stays_with_its_uploader(tmp_path, course, form):
    """Ann uploads ``DoeJane_LATE_1001_5001_spawn.py``; Canvas prefixes it with her own name and
    ids. The first ``_<digits>_`` is the user id (Canvas rewrites any in a name), so it is Ann's."""
    files = {"DoeJane_1001_5001_spawn.py": b"# jane\n",
             "lee_ann_1002_6001_DoeJane_LATE_1001_5002_spawn-9.py": b"# ann, posing as jane\n"}
    path = write_tree(tmp_path / "dl", files) if form == "folder" else tmp_path / "dl.zip"
    if form == "zip":
        path.write_bytes(zip_bytes(list(files.items())))
    found, skipped = discover([path], course)
    subs = by_id(found)
    assert sorted(subs) == ["canvas-1001", "canvas-1002"], skipped
    assert subs["canvas-1001"].files == {"spawn.py": b"# jane\n"}
    assert subs["canvas-1001"].student["late"] is False
    assert subs["canvas-1002"].student["name"] == "lee_ann"
    assert subs["canvas-1002"].files == {}  # her file is not named spawn.py


def test_an_anonymous_students_file_named_like_another_anonymous_entry_stays_theirs(tmp_path, course):
    download = tmp_path / "anon.zip"
    download.write_bytes(zip_bytes([("anon_abc12_5001_spawn.py", b"# abc12\n"),
                                    ("anon_Zq9x1_5002_anon_abc12_5003_spawn.py", b"# Zq9x1\n")]))
    subs = by_id(discover([download], course)[0])
    assert sorted(subs) == ["canvas-anon-Zq9x1", "canvas-anon-abc12"]
    assert subs["canvas-anon-abc12"].files == {"spawn.py": b"# abc12\n"}
    assert subs["canvas-anon-Zq9x1"].student["user_id"] is None


def test_an_anonymous_looking_file_in_an_ordinary_canvas_download_is_unmatched_not_dropped(tmp_path, course):
    download = tmp_path / "canvas.zip"
    download.write_bytes(zip_bytes([("DoeJane_1001_5001_spawn.py", SPAWN),
                                    ("smithbob_1002_6001_spawn.py", SPAWN),
                                    ("anon_xr4Gt_5001_spawn.py", SPAWN)]))
    found, skipped = discover([download], course)
    subs = by_id(found)
    assert sorted(subs) == ["canvas-1001", "canvas-1002", "canvas-unmatched"]
    assert "anon_xr4Gt_5001_spawn.py" in subs["canvas-unmatched"].error
    assert any("match" in m and "anon_xr4Gt_5001_spawn.py" in m for m in skipped)


def test_ten_thousand_stray_entries_are_counted_not_listed_one_by_one(tmp_path, course):
    download = tmp_path / "canvas.zip"
    download.write_bytes(zip_bytes([("DoeJane_1001_5001_spawn.py", SPAWN),
                                    *((f"junk{i:05}.txt", b"") for i in range(10_000)),
                                    *((f"s{i}_{i}_{i}_spawn.py", SPAWN) for i in range(10_000))]))
    found, _ = discover([download], course)
    record = by_id(found)["canvas-unmatched"]
    assert record.error.startswith("10000 entries of canvas.zip match no student")
    assert record.error.count("junk") == lms.UNMATCHED_LISTED and "and 9950 more" in record.error
    assert len(record.error) < 5000


def _code_notebook(*cells: str) -> bytes:
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(src, id=f"c{i}") for i, src in enumerate(cells)]
    return nbformat.writes(nb).encode()


def test_top_level_awaits_in_bulk_cost_the_host_a_bounded_parse(course, monkeypatch):
    """Finding top-level await parses the cells on the host (#17): 100,000 awaiting lines in 20
    cells (the most code a notebook may hold) are parsed only up to the notebook's budget, the
    rest left as it is for Python to refuse in the sandbox."""
    import ast

    parsed: list[int] = []
    real = ast.parse

    def counting(source, *args, **kwargs):
        parsed.append(len(source))
        return real(source, *args, **kwargs)

    monkeypatch.setattr(ast, "parse", counting)
    cells = ["x = await y\n" * 5000 for _ in range(20)]
    conv = notebook.convert(_code_notebook(*cells), "spawn.ipynb", course, 4 * 1024 * 1024)
    assert sum(parsed) <= 2 * notebook.MAX_AWAIT_PARSED
    assert conv.module is not None or conv.ignored  # an answer either way, never an exception
    assert len(conv.ignored) <= notebook.MAX_NOTES + 1


@pytest.mark.parametrize("cell", [
    "await (" + "(" * 5000 + ")" * 5000 + ")",  # deeper than the parser allows
    "x = " + "-" * 200_000 + "1\nawait y",  # deep enough to exhaust a recursive walk
    "await y\n" + "if x:\n" + "".join(" " * i + "if x:\n" for i in range(1, 99)) + " " * 99 + "pass\n",
])
def test_hostile_awaiting_cells_never_crash_the_intake(course, cell):
    conv = notebook.convert(_code_notebook(cell), "spawn.ipynb", course, 4 * 1024 * 1024)
    assert conv.module == "spawn.py" or conv.ignored
