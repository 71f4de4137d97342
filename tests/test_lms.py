"""LMS bulk downloads (Canvas, Moodle, Gradescope): one submission per student, hostile entries
confined to their student, and everything that is not an LMS download left to the ordinary
discovery."""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from pathlib import Path

import pytest

from grader import assignment as assignment_mod
from grader.intake import lms
from grader.intake.discovery import discover
from grader.intake.entries import MAX_TOTAL

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def course() -> assignment_mod.Assignment:
    return assignment_mod.load(REPO)


def zip_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, target)
    return buf.getvalue()


def write_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path.write_bytes(zip_bytes(members, links))
    return path


def write_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return root


def notebook_bytes(code: str, module: str | None = None) -> bytes:
    nb = {"cells": [{"cell_type": "markdown", "id": "m", "metadata": {}, "source": "# hi"},
                    {"cell_type": "code", "id": "c", "metadata": {}, "outputs": [],
                     "execution_count": None, "source": code}],
          "metadata": {"mpgrade": {"module": module}} if module else {},
          "nbformat": 4, "nbformat_minor": 5}
    return json.dumps(nb).encode()


def by_id(batch: lms.LmsBatch) -> dict:
    return {s.id: s for s in batch.submissions}


# --------------------------------------------------------------------------------------------
# Canvas


def canvas_download(tmp_path: Path) -> Path:
    """Two students: doejane on time (a re-upload and a zip), smithbob late (a notebook)."""
    work = zip_bytes({
        "hw/exercises/02_pingpong/pingpong.py": b"# pingpong, layout\n",
        "hw/old/pingpong.py": b"# pingpong, stray copy\n",
        "hw/conftest.py": b"import os\n",
        "__MACOSX/hw/._pingpong.py": b"\0\0",
    })
    return write_zip(tmp_path / "canvas-download.zip", {
        "doejane_1001_5001_spawn.py": b"# spawn v1\n",
        "doejane_1001_5002_spawn-1.py": b"# spawn v2\n",
        "doejane_1001_5003_work.zip": work,
        "smithbob_late_1002_6001_prodcons.py": b"# prodcons bob\n",
        "smithbob_late_1002_6002_01_spawn.ipynb": notebook_bytes("%matplotlib inline\nX = 1\n"),
        "__MACOSX/._doejane_1001_5001_spawn.py": b"\0",
    })


def test_canvas_students_ids_late_flags_and_chosen_files(tmp_path, course):
    batch = lms.discover_lms(canvas_download(tmp_path), course)
    assert batch is not None and batch.lms == "canvas" and batch.recognized
    subs = by_id(batch)
    assert sorted(subs) == ["canvas-1001", "canvas-1002"]
    jane, bob = subs["canvas-1001"], subs["canvas-1002"]
    assert jane.student == {"lms": "canvas", "user_id": "1001", "name": "doejane",
                            "submission_id": "5003", "late": False, "email": None}
    assert bob.student["late"] is True and bob.student["name"] == "smithbob"
    assert jane.error is None and bob.error is None
    # spawn-1.py is a later spawn.py; the zip's layout copy beats its stray copy.
    assert jane.files == {"spawn.py": b"# spawn v2\n", "pingpong.py": b"# pingpong, layout\n"}
    reasons = {i["path"]: i["reason"] for i in jane.ignored}
    assert "another spawn.py was used" in reasons["doejane_1001_5001_spawn.py"]
    assert "never used" in reasons["doejane_1001_5003_work.zip/hw/conftest.py"]
    assert "another pingpong.py" in reasons["doejane_1001_5003_work.zip/hw/old/pingpong.py"]
    assert sorted(jane.missing) == ["locks.py", "prodcons.py"]
    # A notebook stands for spawn.py (exercise id in its name); its magic is dropped and noted.
    assert bob.files == {"prodcons.py": b"# prodcons bob\n", "spawn.py": b"X = 1\n"}
    assert any("%matplotlib inline" in i["reason"] for i in bob.ignored)
    assert batch.skipped == [] and batch.warnings == []


def test_the_extracted_canvas_folder_gives_the_same_submissions(tmp_path, course):
    download = canvas_download(tmp_path)
    folder = tmp_path / "extracted"
    with zipfile.ZipFile(download) as zf:
        zf.extractall(folder)
    from_zip = by_id(lms.discover_lms(download, course))
    from_folder = by_id(lms.discover_lms(folder, course))
    assert sorted(from_folder) == sorted(from_zip)
    for sub_id, sub in from_zip.items():
        assert from_folder[sub_id].files == sub.files
        assert from_folder[sub_id].student == sub.student
        assert from_folder[sub_id].hash == sub.hash


def test_the_highest_resubmission_number_wins_and_lms_ids_order_different_uploads(tmp_path, course):
    path = write_zip(tmp_path / "c.zip", {
        "doejane_7_100_spawn.py": b"first\n",
        "doejane_7_103_spawn-2.py": b"third\n",
        "doejane_7_101_spawn-1.py": b"second\n",
        "doejane_7_102_work.zip": zip_bytes({"spawn.py": b"zipped\n", "locks.py": b"locks\n"}),
        "lee_8_200_spawn.py": b"older file\n",
        "lee_8_201_final.zip": zip_bytes({"spawn.py": b"later zip\n"}),
    })
    subs = by_id(lms.discover_lms(path, course))
    assert subs["canvas-7"].files == {"spawn.py": b"third\n", "locks.py": b"locks\n"}
    assert subs["canvas-8"].files == {"spawn.py": b"later zip\n"}


def test_hostile_canvas_entries_are_an_error_for_their_student_only(tmp_path, course):
    path = write_zip(tmp_path / "hostile.zip", {
        "goodann_1_11_spawn.py": b"# fine\n",
        "../../travis_2_21_spawn.py": b"import os\n",
        "evilzip_3_31_work.zip": zip_bytes({"../../../etc/spawn.py": b"x\n"}),
        "bombbob_4_41_spawn.py": b"0" * (MAX_TOTAL + 1024 * 1024),
        "nestbomb_5_51_w.zip": zip_bytes({"locks.py": b"0" * (MAX_TOTAL + 1024 * 1024)}),
    }, links={"linda_6_61_locks.py": "/etc/passwd"})
    batch = lms.discover_lms(path, course)
    subs = by_id(batch)
    assert subs["canvas-1"].error is None and subs["canvas-1"].files == {"spawn.py": b"# fine\n"}
    assert subs["canvas-2"].error.startswith("hostile.zip: the files of travis_2 were rejected")
    assert "outside the archive" in subs["canvas-2"].error
    assert "evilzip_3_31_work.zip was rejected" in subs["canvas-3"].error
    assert "outside the archive" in subs["canvas-3"].error
    assert "MiB" in subs["canvas-4"].error or "ratio" in subs["canvas-4"].error
    assert "MiB" in subs["canvas-5"].error or "ratio" in subs["canvas-5"].error
    assert "symbolic link" in subs["canvas-6"].error
    for sub_id in ("canvas-2", "canvas-3", "canvas-4", "canvas-5", "canvas-6"):
        assert subs[sub_id].files == {}, sub_id


def test_a_symlink_in_an_extracted_canvas_folder_is_not_followed(tmp_path, course):
    root = write_tree(tmp_path / "dl", {"goodann_1_11_spawn.py": b"ok\n"})
    secret = tmp_path / "secret.py"
    secret.write_text("SECRET = 1\n")
    os.symlink(secret, root / "linda_6_61_locks.py")
    subs = by_id(lms.discover_lms(root, course))
    assert subs["canvas-1"].files == {"spawn.py": b"ok\n"}
    assert "symbolic link" in subs["canvas-6"].error and subs["canvas-6"].files == {}


def test_symlinks_inside_a_students_own_zip_are_ignored_like_any_zip(tmp_path, course):
    path = write_zip(tmp_path / "c.zip", {
        "ann_1_11_hw.zip": zip_bytes({"spawn.py": b"ok\n"}, links={"locks.py": "/etc/passwd"}),
    })
    [sub] = lms.discover_lms(path, course).submissions
    assert sub.error is None and sub.files == {"spawn.py": b"ok\n"}
    assert any("symbolic links are never followed" in i["reason"] for i in sub.ignored)


def test_unreadable_nested_zip_and_stray_files(tmp_path, course):
    path = write_zip(tmp_path / "c.zip", {
        "ann_1_11_hw.zip": b"PK\x03\x04 not really",
        "bob_2_21_spawn.py": b"ok\n",
        "bob_2_text.html": b"<p>essay</p>",
        "grades.csv": b"x",
    })
    batch = lms.discover_lms(path, course)
    subs = by_id(batch)
    assert "not a readable zip" in subs["canvas-1"].error
    assert subs["canvas-2"].files == {"spawn.py": b"ok\n"}
    assert any("grades.csv" in m and "matches no student" in m for m in batch.skipped)
    assert batch.unmatched == ["grades.csv"]
    assert any("bob_2_text.html" in m and "text entry" in m for m in batch.skipped)


def test_corrupt_compressed_data_is_an_error_for_that_student_only(tmp_path, course):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("ann_1_11_spawn.py", b"ok\n")
        zf.writestr("bob_2_21_spawn.py", b"hello world " * 100)
    data = bytearray(buf.getvalue())
    start = data.index(b"bob_2_21_spawn.py") + len("bob_2_21_spawn.py") + 5
    data[start:start + 20] = bytes(b ^ 0xFF for b in data[start:start + 20])
    (tmp_path / "c.zip").write_bytes(bytes(data))
    subs = by_id(lms.discover_lms(tmp_path / "c.zip", course))
    assert subs["canvas-1"].files == {"spawn.py": b"ok\n"}
    assert "could not be read" in subs["canvas-2"].error


def patch_name(data: bytes, placeholder: bytes, raw: bytes) -> bytes:
    """Put raw bytes where a same-length ASCII placeholder name was (header and directory)."""
    assert len(placeholder) == len(raw) and data.count(placeholder) == 2
    return data.replace(placeholder, raw)


def test_non_utf8_member_names_do_not_crash(tmp_path, course):
    # Flag bit 11 unset and Latin-1 bytes: read as cp437, the student is still found.
    data = zip_bytes({"JosX GarcXa_42_assignsubmission_file_/spawn.py": b"ok\n",
                      "Ann Lee_43_assignsubmission_file_/spawn.py": b"ann\n"})
    path = tmp_path / "moodle.zip"
    path.write_bytes(patch_name(data, b"JosX GarcXa", "José García".encode("latin-1")))
    subs = by_id(lms.discover_lms(path, course))
    assert subs["moodle-42"].files == {"spawn.py": b"ok\n"}
    assert subs["moodle-42"].student["name"] == "José García".encode("latin-1").decode("cp437")
    # UTF-8 stored without the flag (common) is read as UTF-8.
    data = zip_bytes({"JosXX GarcXXa_44_assignsubmission_file_/spawn.py": b"ok\n"})
    path.write_bytes(patch_name(data, b"JosXX GarcXXa", "José García".encode()))
    [sub] = lms.discover_lms(path, course).submissions
    assert sub.student["name"] == "José García"


def test_a_zip_whose_flagged_utf8_names_are_not_utf8_is_left_to_the_ordinary_discovery(tmp_path, course):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ann_1_11_spawnX.py", b"x\n")
    data = bytearray(patch_name(buf.getvalue(), b"spawnX", b"spawn\xff"))
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set the UTF-8 flag
        at = data.index(signature) + offset
        data[at:at + 2] = (int.from_bytes(data[at:at + 2], "little") | 0x800).to_bytes(2, "little")
    path = tmp_path / "bad.zip"
    path.write_bytes(bytes(data))
    with pytest.raises(UnicodeDecodeError):
        zipfile.ZipFile(path)  # what zipfile does with it: the reason this case exists
    assert lms.discover_lms(path, course) is None


# --------------------------------------------------------------------------------------------
# Moodle


MOODLE_FILES = {
    "Jane Doe_12345_assignsubmission_file_/spawn.py": b"# jane spawn\n",
    "Jane Doe_12345_assignsubmission_onlinetext_/onlinetext.html": b"<p>see file</p>",
    "Bob van Smith_12346_assignsubmission_file_/hw.zip": zip_bytes({
        "hw/exercises/03_prodcons/prodcons.py": b"# bob prodcons\n",
        "hw/sitecustomize.py": b"import os\n",
    }),
    "Carol Text_12347_assignsubmission_onlinetext_/onlinetext.html": b"<p>no code</p>",
}


def check_moodle(batch: lms.LmsBatch) -> None:
    assert batch is not None and batch.lms == "moodle"
    subs = by_id(batch)
    assert sorted(subs) == ["moodle-12345", "moodle-12346"]
    assert subs["moodle-12345"].student == {"lms": "moodle", "user_id": "12345", "name": "Jane Doe",
                                            "submission_id": None, "late": False, "email": None}
    assert subs["moodle-12345"].files == {"spawn.py": b"# jane spawn\n"}
    assert subs["moodle-12346"].student["name"] == "Bob van Smith"
    assert subs["moodle-12346"].files == {"prodcons.py": b"# bob prodcons\n"}
    assert any("sitecustomize.py" in i["path"] for i in subs["moodle-12346"].ignored)
    assert any("Carol Text" in m and "online text only" in m for m in batch.skipped)


def test_moodle_folder(tmp_path, course):
    check_moodle(lms.discover_lms(write_tree(tmp_path / "moodle", MOODLE_FILES), course))


def test_moodle_zip_in_folders_and_flat(tmp_path, course):
    check_moodle(lms.discover_lms(write_zip(tmp_path / "m.zip", MOODLE_FILES), course))
    flat = {name.replace("_/", "_"): data for name, data in MOODLE_FILES.items()}
    check_moodle(lms.discover_lms(write_zip(tmp_path / "flat.zip", flat), course))


def test_moodle_4_folders_have_no_trailing_underscore(tmp_path, course):
    """Moodle 4.1+ names the folder ``<Full Name>_<id>_assignsubmission_file/``."""
    files = {name.replace("_/", "/"): data for name, data in MOODLE_FILES.items()}
    check_moodle(lms.discover_lms(write_zip(tmp_path / "m4.zip", files), course))
    check_moodle(lms.discover_lms(write_tree(tmp_path / "m4", files), course))


def test_moodles_prefix_is_the_first_match_and_the_rest_is_the_students_file_name(tmp_path, course):
    """Moodle turns every ``_`` of a name into a space, so the name ends at the first ``_``
    before ``<id>_assignsubmission_``; whatever follows is the uploaded file's name."""
    batch = lms.discover_lms(write_zip(tmp_path / "m.zip", {
        "Ann Lee_43_assignsubmission_file_hw_12_assignsubmission_file_work.zip":
            zip_bytes({"spawn.py": b"# ann\n"}),
        "Jane Doe_12_assignsubmission_file_/exercises/01_spawn/spawn.py": b"# jane\n",
    }), course)
    subs = by_id(batch)
    assert sorted(subs) == ["moodle-12", "moodle-43"]
    assert subs["moodle-43"].files == {"spawn.py": b"# ann\n"}
    assert subs["moodle-12"].files == {"spawn.py": b"# jane\n"} and not subs["moodle-12"].ignored


def test_a_folder_named_like_a_flat_moodle_file_is_skipped(tmp_path, course):
    batch = lms.discover_lms(write_zip(tmp_path / "m.zip", {
        "Jane Doe_12_assignsubmission_file_/spawn.py": b"# jane\n",
        "Jane Doe_12_assignsubmission_file_hw/pingpong.py": b"# not how Moodle names it\n",
    }), course)
    assert by_id(batch)["moodle-12"].files == {"spawn.py": b"# jane\n"}
    assert any("file_hw/pingpong.py" in m and "skipped" in m for m in batch.skipped)


# --------------------------------------------------------------------------------------------
# Gradescope

# The shape Gradescope writes (Ruby Psych): symbol keys, a group, an autograder output whose
# closing quote sits at column 0, and a `...` document marker between submissions.
GRADESCOPE_METADATA = """\
---
submission_111:
  :submitters:
  - :name: Jane Doe
    :sid: '2021001'
    :email: jane@example.edu
  :created_at: 2024-03-01 23:58:12.345678000 -08:00
  :score: 10.0
  :results:
    tests:
    - name: Check
      output: 'Don''t worry about this test
        :submitters:

'
      status: passed
  :history: []
...
submission_222:
  :submitters:
  - :name: Ann Lee
    :sid: '2021002'
    :email: ann@example.edu
  - :name: Raj Patel
    :sid: 2021003
    :email: raj@example.edu
  :created_at: 2024-03-02 09:00:00.000000000 -08:00
  :late?: true
  :score: !ruby/object:BigDecimal 18:0.1e2
submission_333:
  :submitters:
  - :name: No Files
    :sid: '2021004'
    :email:
"""


def gradescope_files() -> dict[str, bytes]:
    root = "assignment_999_export/"
    return {
        root + "submission_metadata.yml": GRADESCOPE_METADATA.encode(),
        root + "submission_111/spawn.py": b"# jane\n",
        root + "submission_222/exercises/04_locks/locks.py": b"# group locks\n",
        root + "submission_222/01_spawn.ipynb": notebook_bytes("!pip install x\nY = 2\n"),
        root + "submission_444/prodcons.py": b"# not in the metadata\n",
    }


def test_gradescope_export_with_metadata(tmp_path, course):
    batch = lms.discover_lms(write_zip(tmp_path / "gs.zip", gradescope_files()), course)
    assert batch is not None and batch.lms == "gradescope"
    subs = by_id(batch)
    assert sorted(subs) == ["gradescope-111", "gradescope-222", "gradescope-444", "gs-unmatched"]
    jane = subs["gradescope-111"]
    assert jane.student == {"lms": "gradescope", "user_id": "2021001", "name": "Jane Doe",
                            "submission_id": "111", "late": False, "email": "jane@example.edu",
                            "submitted_at": "2024-03-01 23:58:12.345678000 -08:00"}
    assert jane.files == {"spawn.py": b"# jane\n"}
    group = subs["gradescope-222"]
    assert group.student["late"] is True and group.student["user_id"] == "2021002"
    assert [m["user_id"] for m in group.student["members"]] == ["2021002", "2021003"]
    assert group.files == {"locks.py": b"# group locks\n", "spawn.py": b"Y = 2\n"}
    assert subs["gradescope-444"].student is None
    assert any("submission_444" in w for w in batch.warnings)
    assert any("submission_333" in m and "No Files" in m for m in batch.skipped)


def test_gradescope_metadata_parser_reads_only_what_it_needs():
    meta = lms.parse_gradescope_metadata(GRADESCOPE_METADATA)
    assert sorted(meta) == ["submission_111", "submission_222", "submission_333"]
    assert meta["submission_111"]["submitters"] == [
        {"name": "Jane Doe", "sid": "2021001", "email": "jane@example.edu"}]
    assert "late" not in meta["submission_111"]
    assert meta["submission_222"]["late"] is True
    assert meta["submission_333"]["submitters"] == [{"name": "No Files", "sid": "2021004",
                                                     "email": None}]
    lateness = "submission_1:\n  :submitters: []\n  :lateness: 00:12:03\n"
    assert lms.parse_gradescope_metadata(lateness)["submission_1"]["late"] is True
    for junk in ("", "- a\n- list\n", ":::\n  : :", "submission_1: [\n", "\x00\xff" * 50):
        lms.parse_gradescope_metadata(junk)  # never raises


def test_a_huge_results_block_is_skipped_without_holding_its_lines():
    """The ``:results:`` block is most of a real export: it is skipped, not split into lines
    (ten million tiny lines are half a gigabyte as a list)."""
    import tracemalloc

    results = "    ab\n" * 1_000_000 + "ab\n" * 3_000_000  # indented, and at column 0
    text = (GRADESCOPE_METADATA + "submission_444:\n  :results:\n" + results
            + "  :submitters:\n  - :name: After Results\n    :sid: '44'\n")
    tracemalloc.start()
    try:
        meta = lms.parse_gradescope_metadata(text)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 20 * 1024 * 1024, f"parsing held {peak / 1024 / 1024:.0f} MiB"
    assert meta["submission_111"]["submitters"][0]["sid"] == "2021001"
    assert meta["submission_444"]["submitters"] == [{"name": "After Results", "sid": "44"}]


def test_a_group_of_a_million_submitters_is_not_a_million_records():
    text = "submission_1:\n  :submitters:\n" + "  - :name: X\n    :sid: '1'\n" * 200_000
    (record,) = lms.parse_gradescope_metadata(text).values()
    assert len(record["submitters"]) == lms.METADATA_SUBMITTERS


def test_gradescope_folders_without_metadata_fall_back_with_a_warning(tmp_path, course):
    root = write_tree(tmp_path / "gs", {"submission_1/spawn.py": b"x\n",
                                        "submission_2/spawn.py": b"y\n"})
    batch = lms.discover_lms(root, course)
    assert batch is not None and not batch.recognized and batch.submissions == []
    assert "submission_metadata.yml" in batch.warnings[0]


# --------------------------------------------------------------------------------------------
# Not an LMS download


def test_a_plain_folder_of_submissions_is_not_an_lms_download(tmp_path, course):
    root = write_tree(tmp_path / "batch", {"alice/spawn.py": b"x\n", "bob/locks.py": b"y\n"})
    write_zip(root / "carol.zip", {"carol/prodcons.py": b"z\n"})
    assert lms.discover_lms(root, course) is None
    assert lms.discover_lms(root / "carol.zip", course) is None
    assert lms.discover_lms(root / "alice" / "spawn.py", course) is None
    assert lms.discover_lms(tmp_path / "missing", course) is None


def test_a_layout_that_only_partly_looks_like_canvas_falls_back_with_a_warning(tmp_path, course):
    root = write_tree(tmp_path / "mixed", {"doejane_1_2_spawn.py": b"x\n", "alice/spawn.py": b"x\n",
                                           "bob/spawn.py": b"x\n", "carol/spawn.py": b"x\n"})
    batch = lms.discover_lms(root, course)
    assert batch is not None and batch.lms is None and batch.submissions == []
    assert "Canvas" in batch.warnings[0]


def test_a_corrupt_zip_is_left_to_the_ordinary_discovery(tmp_path, course):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 nope")
    assert lms.discover_lms(tmp_path / "broken.zip", course) is None


def test_grade_discovery_takes_an_lms_download_as_it_comes(tmp_path, course):
    """``mpgrade grade canvas.zip`` and ``mpgrade grade canvas-folder/`` find the students."""
    download = canvas_download(tmp_path)
    extracted = tmp_path / "extracted"
    with zipfile.ZipFile(download) as zf:
        zf.extractall(extracted)
    for given in (download, extracted):
        subs, skipped = discover([given], course)
        assert sorted(s.id for s in subs) == ["canvas-1001", "canvas-1002"], skipped
        assert {s.id: s.student["late"] for s in subs} == {"canvas-1001": False, "canvas-1002": True}


def test_a_download_inside_a_folder_of_submissions_is_one_submission(tmp_path, course):
    """Only a path given to ``mpgrade grade`` is read as an LMS download: inside a folder of
    submissions, ``canvas-download.zip`` is one student's zip like any other (a student's zip
    must never be able to speak for other students)."""
    canvas_download(tmp_path)
    subs, _ = discover([tmp_path], course)
    assert [(s.id, s.student) for s in subs] == [("canvas-download", None)]


# --------------------------------------------------------------------------------------------
# Current naming (issue #19): what canvas-lms lib/content_zipper.rb and moodle
# mod/assign/classes/downloader.php write today, rules cited in docs/lms-ingestion.md


def test_current_canvas_naming_upper_case_late_mixed_case_and_underscores_in_names(tmp_path, course):
    """Canvas no longer lower-cases and writes ``_LATE_``; a sortable name keeps its ``_``
    (only ``_<digits>_`` is rewritten to ``-<digits>-``, content_zipper's sanitize_user_name)."""
    batch = lms.discover_lms(write_zip(tmp_path / "c.zip", {
        "DoeJane_LATE_1001_5001_spawn.py": b"# jane late\n",
        "van_dykeanna_1005_7001_spawn.py": b"# anna\n",
        "van_dykeanna_1005_7002_locks-1.py": b"# anna locks, re-uploaded\n",
        "o-brien_pat_LATE_1006_8001_prodcons.py": b"# pat\n",
        "lee-12-kim_1007_9001_spawn.py": b"# kim\n",
        "smithbob_late_1002_6001_spawn.py": b"# bob, older lower-case download\n",
    }), course)
    assert batch is not None and batch.lms == "canvas", batch
    subs = by_id(batch)
    assert sorted(subs) == ["canvas-1001", "canvas-1002", "canvas-1005", "canvas-1006", "canvas-1007"]
    assert subs["canvas-1001"].student == {"lms": "canvas", "user_id": "1001", "name": "DoeJane",
                                           "submission_id": "5001", "late": True, "email": None}
    assert subs["canvas-1005"].student["name"] == "van_dykeanna"
    assert subs["canvas-1005"].student["late"] is False
    assert subs["canvas-1005"].files == {"spawn.py": b"# anna\n", "locks.py": b"# anna locks, re-uploaded\n"}
    assert subs["canvas-1006"].student["name"] == "o-brien_pat" and subs["canvas-1006"].student["late"]
    assert subs["canvas-1007"].student["name"] == "lee-12-kim"
    assert subs["canvas-1002"].student["late"] is True
    assert batch.skipped == [] and batch.unmatched == []


def test_canvas_anonymous_grading_downloads_are_one_submission_per_anonymous_id(tmp_path, course):
    """With anonymous grading Canvas writes ``anon_<anonymous id>`` where the name and user id
    were; the anonymous id is the identity, never a user id nobody can match."""
    batch = lms.discover_lms(write_zip(tmp_path / "anon.zip", {
        "anon_xr4Gt_5001_spawn.py": b"# first\n",
        "anon_xr4Gt_5003_spawn-1.py": b"# first, again\n",
        "anon_Qm7pZ_LATE_5002_locks.py": b"# second\n",
        "anon_LATE_k9Ab2_5004_prodcons.py": b"# third\n",
    }), course)
    assert batch is not None and batch.lms == "canvas", batch
    subs = by_id(batch)
    assert sorted(subs) == ["canvas-anon-Qm7pZ", "canvas-anon-k9Ab2", "canvas-anon-xr4Gt"]
    first = subs["canvas-anon-xr4Gt"]
    assert first.student == {"lms": "canvas", "user_id": None, "anonymous_id": "xr4Gt",
                             "name": "anon_xr4Gt", "submission_id": "5003", "late": False,
                             "email": None}
    assert first.files == {"spawn.py": b"# first, again\n"}
    assert subs["canvas-anon-Qm7pZ"].student["late"] is True
    assert subs["canvas-anon-k9Ab2"].student["late"] is True
    assert subs["canvas-anon-k9Ab2"].files == {"prodcons.py": b"# third\n"}


def test_a_canvas_re_upload_alone_is_the_module_it_re_uploads(tmp_path, course):
    """A student's latest attempt may hold only ``spawn-1.py`` (Canvas renamed it because an
    earlier attempt's ``spawn.py`` was in their files): it is spawn.py."""
    subs = by_id(lms.discover_lms(write_zip(tmp_path / "c.zip", {
        "DoeJane_1001_5002_spawn-1.py": b"# v2\n",
        "van_dykeanna_LATE_1005_7003_spawn-2.py": b"# anna v3\n",
    }), course))
    assert subs["canvas-1001"].files == {"spawn.py": b"# v2\n"}
    assert subs["canvas-1005"].files == {"spawn.py": b"# anna v3\n"}


def test_moodle_blind_marking_gives_one_result_per_participant(tmp_path, course):
    """Blind marking names every folder ``Participant_<participant id>``: the id tells them apart."""
    files = {"Participant_12345_assignsubmission_file/spawn.py": b"# a\n",
             "Participant_12346_assignsubmission_file/spawn.py": b"# b\n",
             "Participant_12347_assignsubmission_file_/locks.py": b"# c, 3.x form\n",
             "Participant_12348_assignsubmission_file_prodcons.py": b"# d, files form\n"}
    batch = lms.discover_lms(write_zip(tmp_path / "blind.zip", files), course)
    subs = by_id(batch)
    assert sorted(subs) == ["moodle-12345", "moodle-12346", "moodle-12347", "moodle-12348"]
    assert {s.student["name"] for s in subs.values()} == {"Participant"}
    assert subs["moodle-12346"].files == {"spawn.py": b"# b\n"}
    assert subs["moodle-12348"].files == {"prodcons.py": b"# d, files form\n"}
    assert batch.unmatched == []


def test_moodle_team_downloads_are_one_result_per_group_and_the_default_group_is_loud(tmp_path, course):
    """A team assignment has one folder per group, ``<group name>_<group id>``; students in no
    group share ``Default group`` (no id), which names nobody and must not vanish."""
    batch = lms.discover_lms(write_zip(tmp_path / "teams.zip", {
        "Team A_42_assignsubmission_file/spawn.py": b"# team a\n",
        "Team B_43_assignsubmission_file/spawn.py": b"# team b\n",
        "Default group_assignsubmission_file/spawn.py": b"# nobody knows whose\n",
    }), course)
    subs = by_id(batch)
    assert subs["moodle-42"].student["name"] == "Team A"
    assert subs["moodle-43"].files == {"spawn.py": b"# team b\n"}
    assert batch.unmatched == ["Default group_assignsubmission_file/spawn.py"]
    [record] = [s for s in batch.submissions if s.id == "teams-unmatched"]
    assert record.student is None and record.files == {}
    assert "1 entry of teams.zip matches no student" in record.error
    assert "Default group_assignsubmission_file/spawn.py" in record.error


# --------------------------------------------------------------------------------------------
# A silent loss is the worst outcome: entries that match no student are listed, loudly


def test_entries_of_a_canvas_download_that_match_no_student_are_an_error_record(tmp_path, course):
    batch = lms.discover_lms(write_zip(tmp_path / "canvas.zip", {
        "DoeJane_1001_5001_spawn.py": b"# jane\n",
        "van_dykeanna_1005_7001_spawn.py": b"# anna\n",
        "notes.txt": b"instructor's notes",
        "extra/spawn.py": b"# whose?\n",
    }), course)
    assert batch.lms == "canvas"
    assert batch.unmatched == ["extra/spawn.py", "notes.txt"]
    subs = by_id(batch)
    assert sorted(subs) == ["canvas-1001", "canvas-1005", "canvas-unmatched"]
    record = subs["canvas-unmatched"]
    assert record.error.startswith("2 entries of canvas.zip match no student")
    assert "extra/spawn.py" in record.error and "notes.txt" in record.error
    assert any("match no student" in w for w in batch.warnings)


def test_gradescope_folders_missing_from_the_metadata_are_unmatched(tmp_path, course):
    batch = lms.discover_lms(write_zip(tmp_path / "gs.zip", gradescope_files()), course)
    assert batch.unmatched == ["submission_444"]
    assert "submission_444" in by_id(batch)["gs-unmatched"].error


def test_a_zip_that_only_partly_looks_like_an_lms_download_is_not_graded_quietly(tmp_path, course):
    """Three of four entries not named the Canvas way: perhaps a naming mpgrade does not know.
    Graded as one submission without a word, a class would become one student."""
    path = write_zip(tmp_path / "class.zip", {
        "doejane_1_2_spawn.py": b"x\n", "Jane Doe (1)/spawn.py": b"x\n",
        "Bob Lee (2)/spawn.py": b"y\n", "Ann Kim (3)/spawn.py": b"z\n"})
    found, skipped = discover([path], course)
    subs = {s.id: s for s in found}
    assert "class-unmatched" in subs, skipped
    assert "not read as an LMS download" in subs["class-unmatched"].error
    assert "Jane Doe (1)/spawn.py" in subs["class-unmatched"].error


def test_mpgrade_grade_exits_non_zero_and_lists_what_matched_no_student(tmp_path, course, capsys):
    from click.testing import CliRunner

    from grader.cli import main

    spawn = (REPO / "solutions" / "01_spawn" / "spawn.py").read_bytes()
    download = write_zip(tmp_path / "canvas.zip", {"DoeJane_1001_5001_spawn.py": spawn,
                                                   "Jane Roe (1002)/spawn.py": spawn,
                                                   "van_dykeanna_1005_7001_notes.txt": b"n\n"})
    out = CliRunner().invoke(main, ["grade", str(download), "--out", str(tmp_path / "out"),
                                    "--sandbox", "local", "--warm", "0", "--jobs", "1",
                                    "--assignment", str(course.root)])
    assert out.exit_code == 1, out.output
    printed = out.output + capsys.readouterr().err
    assert "matches no student" in printed and "Jane Roe (1002)/spawn.py" in printed
    record = json.loads((tmp_path / "out" / "canvas-unmatched.json").read_text())
    assert record["status"] == "error" and "Jane Roe (1002)/spawn.py" in record["message"]
    jane = json.loads((tmp_path / "out" / "canvas-1001.json").read_text())
    assert jane["status"] == "graded"
