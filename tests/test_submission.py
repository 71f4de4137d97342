"""Finding submissions in folders, zips and files; hostile input is reported, never fatal."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest

from grader.intake import entries
from grader.intake import submission as sub_mod
from grader.intake.discovery import discover

from .test_lms import zip_bytes


def make_zip(path: Path, members: dict[str, bytes], links: dict[str, str] | None = None) -> Path:
    path.write_bytes(zip_bytes(members, links))
    return path


def test_a_flat_folder_is_one_submission(tmp_path, course):
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / "spawn.py").write_text("x = 1\n")
    (alice / "notes.txt").write_text("hi")
    subs, skipped = discover([alice], course)
    assert [s.id for s in subs] == ["alice"] and skipped == []
    assert subs[0].files == {"spawn.py": b"x = 1\n"}
    assert set(subs[0].missing) == {"pingpong.py", "prodcons.py", "locks.py"}


def test_the_course_layout_is_found_and_preferred_over_stray_copies(tmp_path, course):
    bob = tmp_path / "bob"
    (bob / "exercises" / "01_spawn").mkdir(parents=True)
    (bob / "exercises" / "01_spawn" / "spawn.py").write_text("real = True\n")
    (bob / "old").mkdir()
    (bob / "old" / "spawn.py").write_text("real = False\n")
    [sub], _ = discover([bob], course)
    assert sub.files["spawn.py"] == b"real = True\n"
    assert any(i["path"] == "old/spawn.py" for i in sub.ignored)


def test_a_folder_of_submissions_and_junk(tmp_path, course):
    root = tmp_path / "batch"
    (root / "carol").mkdir(parents=True)
    (root / "carol" / "locks.py").write_text("pass\n")
    make_zip(root / "dave.zip", {"dave/prodcons.py": b"pass\n"})
    (root / "erin_pingpong.txt").write_text("not python")
    (tmp_path / "pingpong.py").write_text("pass\n")  # a lone module file, given by name
    subs, skipped = discover([root, tmp_path / "pingpong.py"], course)
    assert sorted(s.id for s in subs) == ["carol", "dave", "pingpong"]
    assert any("erin_pingpong.txt" in m for m in skipped)
    assert {s.id: sorted(s.files) for s in subs}["dave"] == ["prodcons.py"]


def test_dangerous_files_and_symlinks_are_ignored_and_reported(tmp_path, course):
    eve = tmp_path / "eve"
    eve.mkdir()
    (eve / "spawn.py").write_text("pass\n")
    for name in ("conftest.py", "sitecustomize.py", "pytest.ini", "evil.pth"):
        (eve / name).write_text("import os\n")
    os.symlink("/etc/passwd", eve / "locks.py")
    [sub], _ = discover([eve], course)
    assert sorted(sub.files) == ["spawn.py"]
    reasons = {i["path"]: i["reason"] for i in sub.ignored}
    assert set(reasons) == {"conftest.py", "sitecustomize.py", "pytest.ini", "evil.pth", "locks.py"}
    assert "symbolic link" in reasons["locks.py"]


def test_zip_with_path_traversal_is_rejected(tmp_path, course):
    path = make_zip(tmp_path / "mallory.zip", {"../../etc/spawn.py": b"pass\n"})
    [sub], _ = discover([path], course)
    assert sub.error and "outside the archive" in sub.error and not sub.files


def test_zip_bomb_is_rejected(tmp_path, course):
    path = make_zip(tmp_path / "bomb.zip", {"spawn.py": b"0" * (80 * 1024 * 1024)})
    [sub], _ = discover([path], course)
    assert sub.error and ("MiB" in sub.error or "ratio" in sub.error)


def test_zip_symlink_members_are_not_followed(tmp_path, course):
    path = make_zip(tmp_path / "link.zip", {"locks.py": b"pass\n"}, links={"spawn.py": "/etc/passwd"})
    [sub], _ = discover([path], course)
    assert sorted(sub.files) == ["locks.py"]
    assert any("symbolic link" in i["reason"] for i in sub.ignored)


def test_a_corrupt_zip_is_an_error_for_that_submission(tmp_path, course):
    (tmp_path / "broken.zip").write_bytes(b"PK\x03\x04 nope")
    [sub], _ = discover([tmp_path / "broken.zip"], course)
    assert "not a readable zip" in sub.error


def test_same_ids_do_not_overwrite_each_other(tmp_path, course):
    (tmp_path / "frank").mkdir()
    (tmp_path / "frank" / "spawn.py").write_text("a = 1\n")
    make_zip(tmp_path / "frank.zip", {"spawn.py": b"a = 2\n"})
    subs, _ = discover([tmp_path], course)
    assert sorted(s.id for s in subs) == ["frank", "frank-2"]


def test_copies_of_a_module_in_different_folders_of_a_zip_are_not_duplicates(tmp_path, course):
    make_zip(tmp_path / "gina.zip", {"exercises/01_spawn/spawn.py": b"a = 1\n", "old/spawn.py": b"a = 0\n",
                                     "exercises/01_spawn/": b""})
    sub = sub_mod.from_zip(tmp_path / "gina.zip", course)
    assert sub.error is None and sub.files == {"spawn.py": b"a = 1\n"}
    assert [i["path"] for i in sub.ignored] == ["old/spawn.py"]


def test_check_archive_refuses_a_name_twice():
    infos = [zipfile.ZipInfo("a/b.py"), zipfile.ZipInfo("c.py"), zipfile.ZipInfo("A/./B.py")]
    assert "twice" in entries.check_archive(infos) and "'A/./B.py'" in entries.check_archive(infos)
    assert entries.check_archive(infos[:2]) is None


def test_hash_depends_on_content_only(tmp_path, course):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spawn.py").write_text("same\n")
    a, b = (sub_mod.from_folder(tmp_path / n, course) for n in ("a", "b"))
    assert a.hash == b.hash
    (tmp_path / "b" / "spawn.py").write_text("changed\n")
    assert sub_mod.from_folder(tmp_path / "b", course).hash != a.hash


def test_missing_paths_are_reported(tmp_path, course):
    subs, skipped = discover([tmp_path / "nope"], course)
    assert subs == [] and "does not exist" in skipped[0]


@pytest.mark.parametrize("name", ["../x", "/abs/spawn.py", "C:/win/spawn.py"])
def test_check_archive_names(name):
    info = zipfile.ZipInfo(name)
    assert "outside" in entries.check_archive([info])


def test_in_memory_zip_helper_round_trip(tmp_path, course):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("exercises/04_locks/locks.py", "x = 3\n")
    (tmp_path / "gina.zip").write_bytes(buf.getvalue())
    [sub], _ = discover([tmp_path / "gina.zip"], course)
    assert sub.files == {"locks.py": b"x = 3\n"} and sub.id == "gina"


def test_a_hidden_entry_of_a_folder_of_submissions_is_reported_not_dropped(tmp_path, course):
    for name in ("alice", "..x", ".bob"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "spawn.py").write_text("x = 1\n")
    (tmp_path / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")
    (tmp_path / ".git").mkdir()
    subs, skipped = discover([tmp_path], course)
    assert [s.id for s in subs] == ["alice"]
    assert sorted(m.split(":")[0].rsplit("/", 1)[-1] for m in skipped) == ["..x", ".bob"]
    assert all("starts with a dot" in m for m in skipped)


def test_read_nofollow_refuses_a_symlink_and_a_fifo_and_reads_at_most_n_bytes(tmp_path):
    """A student's file swapped after the listing for a link (to the grader's files) or a FIFO
    (whose open would wait forever) is an OSError, which is that submission's error."""
    real = tmp_path / "spawn.py"
    real.write_bytes(b"x = 1\n" * 10)
    assert entries.read_nofollow(real, 6) == b"x = 1\n"
    os.symlink(real, tmp_path / "link.py")
    os.mkfifo(tmp_path / "fifo.py")
    for name in ("link.py", "fifo.py"):
        with pytest.raises(OSError):
            entries.read_nofollow(tmp_path / name, 100)


def test_a_module_swapped_for_a_fifo_after_the_listing_is_that_submissions_error(tmp_path, course, monkeypatch):
    alice = tmp_path / "alice"
    alice.mkdir()
    (alice / "spawn.py").write_text("x = 1\n")
    real = entries.read_nofollow

    def swapped(path, n):
        path.unlink()
        os.mkfifo(path)
        return real(path, n)

    monkeypatch.setattr(entries, "read_nofollow", swapped)
    [sub], _ = discover([alice], course)
    assert sub.id == "alice" and "could not be read" in sub.error and sub.files == {}
