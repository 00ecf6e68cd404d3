"""The one atomic write: the old file or the new one, never a part, whatever fails or
kills the writer midway."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from numbias.util.atomic import write_atomic

SRC = Path(__file__).resolve().parents[2] / "src"


def test_a_file_is_replaced_whole_flushed_and_readable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "a.json"
    path.write_text("old")
    synced: list[int] = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real(fd))[1])
    assert write_atomic(path, lambda tmp: tmp.write_text("new")) == path
    assert path.read_text() == "new" and oct(path.stat().st_mode & 0o777) == "0o644"
    assert synced  # flushed to disk before the rename
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = tmp_path / "a.json"
    path.write_text("old")

    def half(tmp: Path) -> None:
        tmp.write_text("ne")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_atomic(path, half)
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


@pytest.mark.subprocess
def test_a_writer_killed_mid_write_leaves_the_old_file(tmp_path: Path) -> None:
    """SIGKILL while the temporary is half written: no handler runs, and the file
    numbias reads is still the old one whole (the temporary is a dot-file beside it)."""
    path = tmp_path / "a.json"
    path.write_text("old")
    script = (
        "import os, signal, sys; from pathlib import Path; from numbias.util.atomic import write_atomic\n"
        "def half(tmp):\n    tmp.write_text('ne')\n    os.kill(os.getpid(), signal.SIGKILL)\n"
        "write_atomic(Path(sys.argv[1]), half)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(path)],
        env={**os.environ, "PYTHONPATH": str(SRC)},
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL
    assert path.read_text() == "old"
    assert [p.name.startswith(".a.json.") and p.name.endswith(".tmp") for p in sorted(tmp_path.iterdir())] == [
        True,
        False,
    ]


def test_a_new_file_appears_only_when_whole(tmp_path: Path) -> None:
    path = tmp_path / "b.bin"
    with pytest.raises(ValueError):
        write_atomic(path, lambda tmp: (tmp.write_bytes(b"x"), int("not a number")))
    assert not list(tmp_path.iterdir())
    write_atomic(path, lambda tmp: tmp.write_bytes(b"xyz"))
    assert path.read_bytes() == b"xyz"
