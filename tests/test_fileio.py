"""Atomic writers on real folders: a failed block leaves no file and no folder it made, and nothing else goes."""

from __future__ import annotations

from pathlib import Path

import pytest

from rtmw_edge.errors import RtmwEdgeError
from rtmw_edge.fileio import atomic_dir, atomic_file, check_writable_dir, staged_files


class Boom(Exception):
    pass


def test_a_failed_atomic_file_removes_the_folders_it_made_and_only_those(tmp_path: Path) -> None:
    (tmp_path / "kept").mkdir()
    with pytest.raises(Boom), atomic_file(tmp_path / "kept" / "new" / "deeper" / "out.json") as tmp:
        tmp.write_text("half")
        raise Boom
    assert [p.name for p in tmp_path.iterdir()] == ["kept"]
    assert list((tmp_path / "kept").iterdir()) == []


def test_a_failed_atomic_dir_removes_the_folders_it_made(tmp_path: Path) -> None:
    with pytest.raises(Boom), atomic_dir(tmp_path / "out" / "artifact") as folder:
        (folder / "model.onnx").write_bytes(b"half")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_a_made_folder_that_holds_another_output_stays(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with atomic_file(out / "first.json") as first:
        first.write_text("{}")
        with pytest.raises(Boom), atomic_file(out / "second.json") as second:
            second.write_text("half")
            raise Boom
    assert [p.name for p in out.iterdir()] == ["first.json"]


def test_nested_writers_that_fail_together_leave_nothing(tmp_path: Path) -> None:
    with pytest.raises(Boom), atomic_file(tmp_path / "a" / "x") as x, atomic_file(tmp_path / "a" / "b" / "y") as y:
        x.write_text("x")
        y.write_text("y")
        raise Boom
    assert list(tmp_path.iterdir()) == []


def test_a_successful_block_keeps_its_result_and_folders(tmp_path: Path) -> None:
    with atomic_file(tmp_path / "new" / "out.json") as tmp:
        tmp.write_text("{}")
    assert [p.name for p in (tmp_path / "new").iterdir()] == ["out.json"]


def test_check_writable_dir_creates_nothing_and_refuses_a_file_on_the_way(tmp_path: Path) -> None:
    assert check_writable_dir(tmp_path / "a" / "b") == tmp_path / "a" / "b"
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "file").write_text("")
    with pytest.raises(RtmwEdgeError, match=r"file is not a folder"):
        check_writable_dir(tmp_path / "file" / "out")


def test_a_folder_that_appears_while_writing_is_kept_and_the_run_fails(tmp_path: Path) -> None:
    """Two runs without --overwrite: the one that finishes second fails instead of replacing the first's."""
    target = tmp_path / "artifact"
    with pytest.raises(RtmwEdgeError, match="appeared while this run was writing"), atomic_dir(target) as tmp:
        (tmp / "model.onnx").write_text("second")
        target.mkdir()
        (target / "model.onnx").write_text("first")
    assert (target / "model.onnx").read_text() == "first"
    assert [p.name for p in tmp_path.iterdir()] == ["artifact"]
    file = tmp_path / "predictions.json"
    with pytest.raises(RtmwEdgeError, match="appeared while this run was writing"), atomic_file(file) as tmp:
        tmp.write_text("second")
        file.write_text("first")
    assert file.read_text() == "first" and sorted(p.name for p in tmp_path.iterdir()) == ["artifact", file.name]


def test_staged_files_appear_together_in_their_folder_or_not_at_all(tmp_path: Path) -> None:
    out = tmp_path / "out" / "deeper"
    with pytest.raises(Boom), staged_files(out) as staging:
        (staging / "a.jpg").write_bytes(b"a")
        raise Boom
    assert list(tmp_path.iterdir()) == []
    with staged_files(out) as staging:
        (staging / "a.jpg").write_bytes(b"a")
        (staging / "b.json").write_text("[]")
    assert sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.json"]
    with pytest.raises(RtmwEdgeError, match="appeared while this run was writing"), staged_files(out) as staging:
        (staging / "b.json").write_text("second")
    assert (out / "b.json").read_text() == "[]" and sorted(p.name for p in out.iterdir()) == ["a.jpg", "b.json"]
    with staged_files(out, overwrite=True) as staging:
        (staging / "b.json").write_text("second")
    assert (out / "b.json").read_text() == "second"
