"""The one way numbias replaces a file: whole or not at all.

A file is written to a temporary beside it (the same folder, so the rename cannot cross
file systems), flushed to disk, and renamed over the old one; a reader, or a run killed
at any moment, sees the old file or the new one, never a part, and no temporary is left."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomic(path: str | Path, write: Callable[[Path], object], *, mode: int = 0o644) -> Path:
    """``path`` replaced by what ``write`` puts in the temporary path it is given. An
    exception from ``write`` (or a failing disk) leaves the old file as it was and
    propagates; the caller says what failed.

    >>> import tempfile
    >>> from pathlib import Path
    >>> from numbias.util.atomic import write_atomic
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_atomic(Path(tmp) / "a.txt", lambda p: p.write_text("new"))
    ...     print(path.read_text(), sorted(p.name for p in Path(tmp).iterdir()))
    new ['a.txt']
    """
    path = Path(path)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        write(Path(temp))
        _sync(temp)
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    with contextlib.suppress(OSError):  # the rename itself made durable where the system allows
        _sync(path.parent)
    return path


def _sync(path: str | Path) -> None:
    """Flush a file's (or a folder's) data to disk before it is trusted."""
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)
