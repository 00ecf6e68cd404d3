"""Results folders: one writer at a time, files that are whole or absent, and only
files numbias wrote are ever replaced.

A run's files are written into a staging folder inside the results folder; then a
manifest naming the complete set (each file's SHA-256) is renamed into the staging
folder, which commits the set. Only then are the files moved into place and the
manifest after them. A run killed before the commit leaves the previous set (its
staging folder is removed by the next writer); one killed while moving is finished
by the next writer, or by :func:`settle`. So a folder holds one run's complete set,
or the previous one, whatever moment a run is killed at, and the manifest says which
files numbias owns: a file of the same name that it does not list, or whose digest
differs, is the user's and is replaced only with ``force``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

import filelock

from numbias.util.atomic import write_atomic
from numbias.util.errors import NumbiasError, first_line

LOCK = ".numbias.lock"
"""The lock file in a results folder; it holds the PID of the run that writes there."""
MANIFEST = ".numbias-manifest.json"
"""The results folder's manifest: the files numbias wrote there and their digests."""
STAGING = ".numbias-staging"
"""Where a run's files are written before they are switched into place."""
FORMAT = "numbias.manifest/1"


def make_folder(folder: str | Path) -> Path:
    """``folder``, created if needed; a path that is a file or cannot be made is a one-line error."""
    folder = checked_path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise NumbiasError(f"results folder {folder} is an existing file, not a folder") from None
    except OSError as exc:
        raise NumbiasError(f"cannot create results folder {folder}: {first_line(exc)}") from None
    return folder


def checked_path(folder: str | Path) -> Path:
    """``folder`` as a path; an empty one is an error (``Path('')`` would be the working folder)."""
    if not str(folder).strip():
        raise NumbiasError("the results folder is empty ('' given); name a folder, e.g. --out results")
    return Path(folder)


@contextmanager
def one_writer(folder: str | Path, *, wait: bool = False) -> Iterator[Path]:
    """Hold the folder's lock while a run works in it: a second run waits (``wait``) or
    stops with the holder's PID. A switch a killed run left half done is finished first."""
    folder = make_folder(folder)
    path = folder / LOCK
    lock = filelock.FileLock(path, timeout=-1 if wait else 0)
    try:
        lock.acquire()
    except filelock.Timeout:
        holder = _holder(path)
        raise NumbiasError(
            f"results folder {folder} is in use by another numbias run (PID {holder}); pass --wait "
            "to wait for it, or give another --out"
        ) from None
    except OSError as exc:
        raise NumbiasError(f"cannot lock results folder {folder}: {first_line(exc)}") from None
    try:
        (folder / f"{LOCK}.pid").write_text(str(os.getpid()), encoding="utf-8")
        settle(folder)
        yield folder
    finally:
        (folder / f"{LOCK}.pid").unlink(missing_ok=True)
        lock.release()


def _holder(path: Path) -> str:
    try:
        return (path.parent / f"{LOCK}.pid").read_text(encoding="utf-8").strip() or "unknown"
    except OSError:
        return "unknown"


def digest(path: Path) -> str:
    """A file's SHA-256, as the manifest records it."""
    sha = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def manifest(folder: str | Path) -> dict[str, str]:
    """The files numbias wrote in ``folder`` and their digests; none when the folder has
    no manifest or one numbias cannot read (then every file there counts as the user's)."""
    try:
        raw = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    files = raw.get("files") if isinstance(raw, dict) and raw.get("format") == FORMAT else None
    if not isinstance(files, dict):
        return {}
    return {str(k): str(v) for k, v in files.items()}


def foreign(folder: str | Path, names: Iterable[str]) -> list[str]:
    """Those of ``names`` present in ``folder`` that numbias did not write there (not in
    its manifest, or changed since)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    # A set committed but not yet moved into place (a killed switch) is numbias's too.
    owned = [manifest(folder), manifest(folder / STAGING)]
    found = []
    for name in names:
        path = folder / name
        if path.is_symlink() or path.exists():
            if not path.is_file() or path.is_symlink() or digest(path) not in {m.get(name) for m in owned}:
                found.append(name)
    return found


def claim(folder: str | Path, names: Iterable[str], *, force: bool = False) -> None:
    """Refuse, before any work, to replace files in ``folder`` that numbias did not write
    (``force``: replace them all the same)."""
    folder = checked_path(folder)
    if force or not (found := foreign(folder, names)):
        return
    shown = ", ".join(found[:4]) + (f" and {len(found) - 4} more" if len(found) > 4 else "")
    raise NumbiasError(
        f"{folder} holds {shown}, not written by numbias; numbias would replace "
        f"{'it' if len(found) == 1 else 'them'}: give another --out, or pass --force to replace"
    )


Writer = Callable[[Path], None]
"""Writes one file to the path it is given."""


def write_all(folder: str | Path, files: dict[str, Writer], *, force: bool = False) -> Path:
    """Write every file into the staging folder, commit the set with its manifest, then
    switch it into place (:func:`settle`); a file of the same name that numbias did not
    write is an error unless ``force``. The caller holds the folder's lock."""
    folder = make_folder(folder)
    settle(folder)
    claim(folder, files, force=force)
    stage = folder / STAGING
    try:
        stage.mkdir()
        entries = manifest(folder)
        for name, write in files.items():
            write(stage / name)
            os.chmod(stage / name, 0o644)
            entries[name] = digest(stage / name)
        _write_manifest(stage, entries)  # the commit point
    except OSError as exc:
        shutil.rmtree(stage, ignore_errors=True)
        raise NumbiasError(f"cannot write results to {folder}: {first_line(exc)}") from None
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    settle(folder)
    return folder


def _write_manifest(stage: Path, entries: dict[str, str]) -> None:
    """The manifest, renamed into ``stage`` whole."""
    write_atomic(stage / MANIFEST, text(json.dumps({"format": FORMAT, "files": entries}, indent=1, sort_keys=True)))


def settle(folder: str | Path) -> None:
    """Finish what a writer left in ``folder``: a committed set (its staging folder holds
    the manifest) is moved into place, manifest last; an uncommitted one is removed."""
    folder = Path(folder)
    stage = folder / STAGING
    if not stage.is_dir():
        return
    try:
        if (stage / MANIFEST).is_file():
            for path in sorted(stage.iterdir()):
                if path.name != MANIFEST and not path.name.endswith(".tmp"):
                    os.replace(path, folder / path.name)
            os.replace(stage / MANIFEST, folder / MANIFEST)
        shutil.rmtree(stage)
    except OSError as exc:
        raise NumbiasError(f"cannot finish the results in {folder}: {first_line(exc)}; move {stage} away") from None


def write_one(path: str | Path, write: Writer) -> Path:
    """One file written whole (a temporary beside it, renamed over it), no manifest: a
    file the user names (a saved judge)."""
    path = Path(path)
    try:
        return write_atomic(path, write)
    except OSError as exc:
        raise NumbiasError(f"cannot write {path}: {first_line(exc)}") from None


def text(content: str) -> Writer:
    """A writer of UTF-8 text."""

    def write(path: Path) -> None:
        path.write_text(content, encoding="utf-8")

    return write
