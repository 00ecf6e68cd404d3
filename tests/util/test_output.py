"""Results folders: made or refused in one line, one writer at a time, a killed run's staging
gone or finished, files numbias did not write kept.

(A failure mid-write leaving the previous set, and the lock between processes through
the CLI, are in tests/test_hardening.py.)"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from numbias.util.errors import NumbiasError
from numbias.util.output import (
    LOCK,
    MANIFEST,
    STAGING,
    claim,
    digest,
    foreign,
    make_folder,
    manifest,
    one_writer,
    text,
    write_all,
)


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


def test_write_all_removes_a_killed_runs_staging(tmp_path: Path) -> None:
    (tmp_path / STAGING).mkdir()
    (tmp_path / STAGING / "a.csv").write_text("half of a killed run's file")
    (tmp_path / ".other.tmp").write_text("not one of ours")
    assert write_all(tmp_path, {"a.csv": text("id\n1\n"), "b.txt": text("naïve – ünïcode")}) == tmp_path
    assert sorted(p.name for p in tmp_path.iterdir()) == [".numbias-manifest.json", ".other.tmp", "a.csv", "b.txt"]
    assert (tmp_path / "a.csv").read_text() == "id\n1\n"
    assert (tmp_path / "b.txt").read_bytes() == "naïve – ünïcode".encode()


def test_the_manifest_names_what_numbias_wrote(tmp_path: Path) -> None:
    write_all(tmp_path, {"a.csv": text("1"), "b.txt": text("2")})
    assert manifest(tmp_path) == {"a.csv": digest(tmp_path / "a.csv"), "b.txt": digest(tmp_path / "b.txt")}
    write_all(tmp_path, {"a.csv": text("3")})  # its own files are replaced; the others stay listed
    assert (tmp_path / "a.csv").read_text() == "3" and set(manifest(tmp_path)) == {"a.csv", "b.txt"}
    assert foreign(tmp_path, ["a.csv", "b.txt", "c.json"]) == []


def test_a_file_numbias_did_not_write_is_kept_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "items.csv").write_text("the user's data")
    with pytest.raises(NumbiasError, match=r"holds items.csv, not written by numbias; .*pass --force"):
        write_all(tmp_path, {"items.csv": text("results"), "summary.json": text("{}")})
    assert (tmp_path / "items.csv").read_text() == "the user's data"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["items.csv"]
    write_all(tmp_path, {"summary.json": text("{}")})
    (tmp_path / "summary.json").write_text("edited by hand")  # changed since: the user's now
    with pytest.raises(NumbiasError, match="holds summary.json, not written"):
        claim(tmp_path, ["summary.json"])
    write_all(tmp_path, {"items.csv": text("results")}, force=True)
    assert (tmp_path / "items.csv").read_text() == "results"


def test_an_empty_folder_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(NumbiasError, match=r"the results folder is empty \(\'\' given\)"):
        make_folder("")
    with pytest.raises(NumbiasError, match="the results folder is empty"):
        claim("", ["items.csv"])


def test_a_committed_set_is_finished_by_the_next_writer(tmp_path: Path) -> None:
    """A set whose manifest reached the staging folder is moved into place by whoever
    comes next (the moves a killed run did not make)."""
    write_all(tmp_path, {"a.csv": text("old a"), "b.csv": text("old b")})
    stage = tmp_path / STAGING
    stage.mkdir()
    (stage / "b.csv").write_text("new b")
    (tmp_path / "a.csv").write_text("new a")  # moved before the kill
    entries = {"a.csv": digest(tmp_path / "a.csv"), "b.csv": digest(stage / "b.csv")}
    (stage / MANIFEST).write_text(json.dumps({"format": "numbias.manifest/1", "files": entries}))
    assert foreign(tmp_path, ["a.csv", "b.csv"]) == []  # the committed set is numbias's already
    with one_writer(tmp_path):
        pass
    assert (tmp_path / "a.csv").read_text() == "new a" and (tmp_path / "b.csv").read_text() == "new b"
    assert manifest(tmp_path) == entries and not stage.exists()
