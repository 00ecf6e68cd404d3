"""Results folders: made or refused in one line, one writer at a time, stale temporaries gone.

(A failure mid-write leaving the previous set, and the lock between processes through
the CLI, are in tests/test_hardening.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from numbias.errors import NumbiasError
from numbias.output import LOCK, make_folder, one_writer, text, write_all


def test_make_folder_creates_parents_and_refuses_a_file(tmp_path: Path) -> None:
    assert make_folder(tmp_path / "a" / "b") == tmp_path / "a" / "b" and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "taken").write_text("x")
    with pytest.raises(NumbiasError, match=r"^results folder .*taken is an existing file, not a folder$"):
        make_folder(tmp_path / "taken")
    with pytest.raises(NumbiasError, match="^cannot create results folder "):
        make_folder(tmp_path / "taken" / "inside")


def test_one_writer_holds_the_folder_and_says_who(tmp_path: Path) -> None:
    pid_file = tmp_path / "out" / f"{LOCK}.pid"
    with one_writer(tmp_path / "out") as folder:
        assert folder == tmp_path / "out" and pid_file.read_text() == str(os.getpid())
        with pytest.raises(NumbiasError, match=rf"in use by another numbias run \(PID {os.getpid()}\); pass --wait"):
            with one_writer(tmp_path / "out"):
                pass
    assert not pid_file.exists()
    with one_writer(tmp_path / "out"):  # released: the next run takes it
        assert pid_file.exists()


def test_write_all_removes_a_killed_runs_temporaries(tmp_path: Path) -> None:
    (tmp_path / ".a.csv.x1y2.tmp").write_text("half of a killed run's file")
    (tmp_path / ".other.tmp").write_text("not one of ours")
    assert write_all(tmp_path, {"a.csv": text("id\n1\n"), "b.txt": text("naïve – ünïcode")}) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [".other.tmp", "a.csv", "b.txt"]
    assert (tmp_path / "a.csv").read_text() == "id\n1\n"
    assert (tmp_path / "b.txt").read_bytes() == "naïve – ünïcode".encode()
