"""SQLite store of per-item distributions, keyed by judge identity and item (id and prompt).

Each finished item is committed at once (WAL), so a run killed at any point resumes
where it stopped and a finished configuration is re-analysed without the model."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from numbias.core.distribution import ScoreDistribution
from numbias.data.prompt import Prompt
from numbias.util.errors import NumbiasError, first_line


def judge_key(identity: Mapping[str, Any]) -> str:
    """Stable digest of everything that determines a judge's answers."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def item_slot(item_id: str, prompt: Prompt) -> str:
    """An item's key in the store: its id and a digest of the prompt it was asked.
    Ids alone collide across data sets that number their rows alike (the MLQE-PE
    language pairs do), and a changed text must not reuse an old answer."""
    text = json.dumps([prompt.system, prompt.user, prompt.answer_prefix])
    return f"{item_id}#{hashlib.sha256(text.encode()).hexdigest()[:16]}"


TABLES = {"judges": ["key", "identity"], "items": ["key", "item", "dist", "n_tokens"]}
"""The store's tables and their columns: a database with other tables is not numbias's."""
RECOVER = "move it away (a new store is then started) or give another --out"


class Store:
    """Per-item distributions under a judge key; ``with Store(path) as store`` closes it.
    A file that is not a numbias store is refused before anything is written to it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
        except FileExistsError:
            raise NumbiasError(f"cannot create the result store {self.path}: {self.path.parent} is a file") from None
        except (OSError, sqlite3.Error) as exc:
            raise NumbiasError(f"cannot create the result store {self.path}: {first_line(exc)}") from None
        try:
            self._check()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(
                """
                CREATE TABLE IF NOT EXISTS judges (key TEXT PRIMARY KEY, identity TEXT NOT NULL);
                CREATE TABLE IF NOT EXISTS items (
                    key TEXT NOT NULL, item TEXT NOT NULL, dist TEXT NOT NULL, n_tokens INTEGER,
                    PRIMARY KEY (key, item));
                """
            )
        except sqlite3.Error as exc:
            self._db.close()
            raise NumbiasError(f"result store {self.path} is unusable ({first_line(exc)}); {RECOVER}") from None
        except NumbiasError:
            self._db.close()
            raise

    def _check(self) -> None:
        """Refuse a database whose tables are not the store's (reading it also tells a
        file that is no database at all)."""
        names = [
            r[0]
            for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not r[0].startswith("sqlite_")
        ]
        if not names:
            return
        found = {n: [r[1] for r in self._db.execute(f"PRAGMA table_info({json.dumps(n)})")] for n in names}
        if found != TABLES:
            raise NumbiasError(
                f"result store {self.path} is not a numbias store (it holds the table(s) "
                f"{', '.join(sorted(found))}); {RECOVER}"
            )

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """A write as one transaction; a failure (a full disk) rolls it back, so the store
        keeps every item stored before and stays readable."""
        try:
            with self._db:
                yield
        except sqlite3.Error as exc:
            raise NumbiasError(
                f"cannot write to the result store {self.path} ({first_line(exc)}); the items "
                "stored so far are kept: free space and run the same command to resume"
            ) from None

    def register(self, identity: Mapping[str, Any]) -> str:
        key = judge_key(identity)
        with self._writing():
            self._db.execute(
                "INSERT OR IGNORE INTO judges VALUES (?, ?)", (key, json.dumps(identity, sort_keys=True, default=str))
            )
        return key

    def matching(self, known: Mapping[str, Any], optional: Mapping[str, Any]) -> list[str]:
        """Keys whose stored identity holds every item of ``known`` and agrees with
        ``optional`` where it has those keys (a judge identified without starting it)."""
        want = json.loads(json.dumps(known, default=str))
        maybe = json.loads(json.dumps(optional, default=str))
        keys = []
        for key, text in self._db.execute("SELECT key, identity FROM judges"):
            stored = json.loads(text)
            if all(k in stored and stored[k] == v for k, v in want.items()) and all(
                stored[k] == v for k, v in maybe.items() if k in stored
            ):
                keys.append(key)
        return keys

    def done(self, key: str, items: Iterable[str]) -> set[str]:
        wanted = set(items)
        rows = self._db.execute("SELECT item FROM items WHERE key = ?", (key,))
        return {r[0] for r in rows if r[0] in wanted}

    def put(self, key: str, item: str, dist: ScoreDistribution, n_tokens: int | None) -> None:
        with self._writing():
            self._db.execute(
                "INSERT OR REPLACE INTO items VALUES (?, ?, ?, ?)",
                (key, item, json.dumps(dist.to_dict()), n_tokens),
            )

    def get(self, key: str, items: Iterable[str]) -> dict[str, ScoreDistribution]:
        wanted = set(items)
        rows = self._db.execute("SELECT item, dist FROM items WHERE key = ?", (key,))
        return {item: ScoreDistribution.from_dict(json.loads(d)) for item, d in rows if item in wanted}

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def count_items(path: str | Path) -> int | None:
    """How many finished items the store at ``path`` holds, read without changing it;
    None when there is no such store or it cannot be read."""
    path = Path(path)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            return int(db.execute("SELECT COUNT(*) FROM items").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None
