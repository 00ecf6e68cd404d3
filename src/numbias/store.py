"""SQLite store of per-item distributions, keyed by judge identity and item (id and prompt).

Each finished item is committed at once (WAL), so a run killed at any point resumes
where it stopped and a finished configuration is re-analysed without the model."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from numbias.distribution import ScoreDistribution
from numbias.errors import NumbiasError, first_line
from numbias.prompt import Prompt


def judge_key(identity: Mapping[str, Any]) -> str:
    """Stable digest of everything that determines a judge's answers."""
    return hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]


def item_slot(item_id: str, prompt: Prompt) -> str:
    """An item's key in the store: its id and a digest of the prompt it was asked.
    Ids alone collide across data sets that number their rows alike (the MLQE-PE
    language pairs do), and a changed text must not reuse an old answer."""
    text = json.dumps([prompt.system, prompt.user, prompt.answer_prefix])
    return f"{item_id}#{hashlib.sha256(text.encode()).hexdigest()[:16]}"


class Store:
    """Per-item distributions under a judge key; ``with Store(path) as store`` closes it."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30)
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
        except sqlite3.DatabaseError as exc:
            raise NumbiasError(f"result store {self.path} is unusable: {exc}") from None
        except FileExistsError:
            raise NumbiasError(f"cannot create the result store {self.path}: {self.path.parent} is a file") from None
        except OSError as exc:
            raise NumbiasError(f"cannot create the result store {self.path}: {first_line(exc)}") from None

    def register(self, identity: Mapping[str, Any]) -> str:
        key = judge_key(identity)
        with self._db:
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
            if all(k in stored and stored[k] == v for k, v in want.items()) \
                    and all(stored[k] == v for k, v in maybe.items() if k in stored):
                keys.append(key)
        return keys

    def done(self, key: str, items: Iterable[str]) -> set[str]:
        wanted = set(items)
        rows = self._db.execute("SELECT item FROM items WHERE key = ?", (key,))
        return {r[0] for r in rows if r[0] in wanted}

    def put(self, key: str, item: str, dist: ScoreDistribution, n_tokens: int | None) -> None:
        with self._db:
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
