"""Append-only sweep results: one JSON object per line, flushed and fsynced per run, plus a CSV
mirror. An interrupted sweep resumes by skipping runs whose key is already stored."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["SweepStore"]

_CSV_COLS = ("parametrization", "width", "n_layers", "lr", "seed", "steps", "data", "fp8")


class SweepStore:
    """Results file for sweeps (``.jsonl``; a ``.csv`` with the same stem is kept in sync).

    Raises:
        ValueError: a line is not valid JSON or lacks ``spec``/``loss``, naming the file and line
            and how to fix it (completed lines are never rewritten or dropped).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if self.path.suffix == ".csv":
            self.path = self.path.with_suffix(".jsonl")
        self.records: list[dict[str, Any]] = []
        self._keys: set[str] = set()
        if self.path.exists():
            self._load()

    def _load(self) -> None:
        from ._train import RunSpec

        with self.path.open() as f:
            for i, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rec = json.loads(line)
                    if not isinstance(rec, dict) or "spec" not in rec or "loss" not in rec:
                        raise ValueError("missing 'spec' or 'loss'")
                    key = RunSpec.from_dict(rec["spec"]).key()
                except (ValueError, TypeError) as e:
                    raise ValueError(
                        f"sweep file {str(self.path)!r} line {i} is corrupt ({e}). The other "
                        f"lines are intact: delete line {i} (e.g. a run cut off mid-write) and "
                        "rerun the same command to redo just that run."
                    ) from None
                self.records.append(rec)
                self._keys.add(key)

    def __contains__(self, key: str) -> bool:
        return key in self._keys

    def __len__(self) -> int:
        return len(self.records)

    def append(self, rec: dict[str, Any]) -> None:
        """Store one finished run (durably) and refresh the CSV mirror."""
        from ._train import RunSpec

        key = RunSpec.from_dict(rec["spec"]).key()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(rec, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        self.records.append(rec)
        self._keys.add(key)
        self.write_csv()

    def write_csv(self) -> Path:
        """Rewrite ``<stem>.csv``: one row per run (spec columns, α's, loss, val_loss)."""
        out = self.path.with_suffix(".csv")
        alphas = sorted({k for r in self.records for k in r["spec"].get("alphas", {})})
        with out.open("w", newline="") as f:
            w = csv.writer(f)
            w.writerow([*_CSV_COLS, *alphas, "loss", "val_loss", "diverged", "seconds"])
            for r in self.records:
                s = r["spec"]
                w.writerow(
                    [s.get(c) for c in _CSV_COLS]
                    + [s.get("alphas", {}).get(a, 1.0) for a in alphas]
                    + [r["loss"], r.get("val_loss"), r.get("diverged"), r.get("seconds")]
                )
        return out
