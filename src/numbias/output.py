"""Results folders: one writer at a time, and files that are whole or absent.

Every result file is written to a temporary file in its folder and renamed over the
old one only when all of a run's files are written, so a folder holds one run's
complete set, or the previous one, whatever moment a run is killed at."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from numbias.errors import NumbiasError, first_line

LOCK = ".numbias.lock"
"""The lock file in a results folder; it holds the PID of the run that writes there."""


def make_folder(folder: str | Path) -> Path:
    """``folder``, created if needed; a path that is a file or cannot be made is a one-line error."""
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NumbiasError(f"results folder {folder} is an existing file, not a folder") from None
    except OSError as exc:
        raise NumbiasError(f"cannot create results folder {folder}: {first_line(exc)}") from None
    return folder


@contextmanager
def one_writer(folder: str | Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold the folder's lock while a run works in it: a second run waits (``wait``) or
    stops with the holder's PID."""
    folder = make_folder(folder)
    path = folder / LOCK
    lock = filelock.FileLock(path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = _holder(path)
        raise NumbiasError(f"results folder {folder} is in use by another numbias run (PID {holder}); pass --wait "
                           "to wait for it, or give another --out") from None
    except OSError as exc:
        raise NumbiasError(f"cannot lock results folder {folder}: {first_line(exc)}") from None
    try:
        (folder / f"{LOCK}.pid").write_text(str(os.getpid()), encoding="utf-8")
        yield folder
    finally:
        (folder / f"{LOCK}.pid").unlink(missing_ok=True)
        lock.release()


def _holder(path: Path) -> str:
    try:
        return (path.parent / f"{LOCK}.pid").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


Writer = Callable[[Path], None]
"""Writes one file to the path it is given."""


def write_all(folder: str | Path, files: dict[str, Writer]) -> Path:
    """Write every file to a temporary name in ``folder``, then rename them all into
    place: a kill leaves the previous complete set. Temporaries a killed run left are
    removed first (the caller holds the folder's lock)."""
    folder = make_folder(folder)
    staged: list[tuple[Path, Path]] = []
    try:
        for name in files:
            for stale in folder.glob(f".{name}.*.tmp"):
                stale.unlink()
        for name, write in files.items():
            handle, temp = tempfile.mkstemp(dir=folder, prefix=f".{name}.", suffix=".tmp")
            os.close(handle)
            staged.append((Path(temp), folder / name))
            write(Path(temp))
            os.chmod(temp, 0o644)  # mkstemp makes files private; results are for reading
        for temp, final in staged:
            os.replace(temp, final)
    except OSError as exc:
        raise NumbiasError(f"cannot write results to {folder}: {first_line(exc)}") from None
    finally:
        for temp, _ in staged:
            temp.unlink(missing_ok=True)
    return folder


def text(content: str) -> Writer:
    """A writer of UTF-8 text."""
    return lambda path: path.write_text(content, encoding="utf-8")
