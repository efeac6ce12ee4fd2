"""A SQLite results store keyed by (rules hash, seed, solver version): resumable batch runs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

__all__ = ["ResultStore"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    rules_hash TEXT NOT NULL,
    seed INTEGER NOT NULL,
    version TEXT NOT NULL,
    game TEXT NOT NULL,
    status TEXT NOT NULL,
    seconds REAL NOT NULL,
    states INTEGER NOT NULL,
    finished REAL NOT NULL DEFAULT (julianday('now')),
    PRIMARY KEY (rules_hash, seed, version)
)
"""


class ResultStore:
    """Per-deal results of winnability runs. Each row is committed as soon as it arrives, so a
    killed run loses at most the deals in flight; ``INSERT OR IGNORE`` on the primary key
    makes every deal count once even if it is solved again after a restart."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        self.con = sqlite3.connect(self.path, timeout=60)
        self.con.execute("PRAGMA journal_mode=WAL")
        self.con.execute("PRAGMA synchronous=NORMAL")
        self.con.execute(_SCHEMA)
        self.con.commit()

    def add(
        self,
        rules_hash: str,
        seed: int,
        version: str,
        game: str,
        status: str,
        seconds: float,
        states: int,
    ) -> None:
        self.con.execute(
            "INSERT OR IGNORE INTO results (rules_hash, seed, version, game, status, seconds, "
            "states) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (rules_hash, int(seed), version, game, status, float(seconds), int(states)),
        )
        self.con.commit()

    def done(self, rules_hash: str, version: str) -> dict[int, tuple[str, float, int]]:
        """seed -> (status, seconds, states) of every stored deal of this rule set and version."""
        rows = self.con.execute(
            "SELECT seed, status, seconds, states FROM results WHERE rules_hash=? AND version=?",
            (rules_hash, version),
        )
        return {int(s): (st, float(t), int(n)) for s, st, t, n in rows}

    def close(self) -> None:
        self.con.close()
