"""Offline tasks: multi-query associative recall (MQAR) and a byte corpus of the stdlib sources."""

from __future__ import annotations

import sysconfig
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

__all__ = ["RecallTask", "stdlib_bytes"]


@dataclass
class RecallTask:
    """Key→value pairs, random filler, then queries (the answer is the value bound to the key).

    Layout of one sequence of length ``seq_len``::

        BOS k1 v1 … kN vN  f f f … f  SEP  q1 a1 q2 a2 … qM aM

    Keys are distinct within a sequence; queries are drawn from the stored keys. The model must
    predict ``a_i`` at the position of ``q_i``: a retrieval over the whole context that the local
    window cannot serve. Token ids: keys ``[0, n_keys)``, values ``[n_keys, n_keys + n_values)``,
    filler after that, then BOS and SEP.
    """

    n_keys: int = 64
    n_values: int = 64
    n_filler: int = 32
    n_pairs: int = 24
    n_queries: int = 12
    seq_len: int = 192

    @property
    def vocab(self) -> int:
        """Number of token ids used."""
        return self.n_keys + self.n_values + self.n_filler + 2

    @property
    def prompt_len(self) -> int:
        """Index of the first query token: everything before it is the (dense) prefill."""
        return self.seq_len - 2 * self.n_queries

    def to_dict(self) -> dict:
        """Plain dict (stored with the checkpoint)."""
        return asdict(self)

    def sample(
        self, batch: int, generator: torch.Generator, n_fill: int | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``ids`` int64 ``(batch, L)`` and ``answer_mask`` bool ``(batch, L)``.

        ``answer_mask[b, t]`` marks the answer tokens (targets predicted at ``t - 1``). ``L`` is
        ``seq_len`` unless ``n_fill`` overrides the number of filler tokens (training curriculum).
        """
        full = self.prompt_len - 1 - 2 * self.n_pairs - 1
        n_fill = full if n_fill is None else n_fill
        if n_fill < 0:
            raise ValueError(f"seq_len={self.seq_len} too short for {self.n_pairs} pairs")
        g = generator
        keys = torch.argsort(torch.rand(batch, self.n_keys, generator=g), dim=1)[:, : self.n_pairs]
        vals = torch.randint(self.n_values, (batch, self.n_pairs), generator=g) + self.n_keys
        pairs = torch.stack([keys, vals], dim=2).reshape(batch, -1)
        f0 = self.n_keys + self.n_values
        fill = torch.randint(self.n_filler, (batch, n_fill), generator=g) + f0
        bos = torch.full((batch, 1), f0 + self.n_filler)
        sep = torch.full((batch, 1), f0 + self.n_filler + 1)
        pick = torch.argsort(torch.rand(batch, self.n_pairs, generator=g), dim=1)[
            :, : self.n_queries
        ]
        qk = keys.gather(1, pick)
        qv = vals.gather(1, pick)
        qa = torch.stack([qk, qv], dim=2).reshape(batch, -1)
        ids = torch.cat([bos, pairs, fill, sep, qa], dim=1)
        mask = torch.zeros_like(ids, dtype=torch.bool)
        mask[:, ids.shape[1] - 2 * self.n_queries + 1 :: 2] = True  # the answers
        return ids, mask


def stdlib_bytes(max_bytes: int = 4_000_000) -> bytes:
    """Concatenated ``.py`` sources of this interpreter's standard library (sorted, deterministic).

    Present on every Python install, so the byte-level LM task needs no download.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    out = bytearray()
    for p in sorted(root.glob("*.py")):
        try:
            out += p.read_bytes()
        except OSError:  # pragma: no cover - unreadable file
            continue
        if len(out) >= max_bytes:
            break
    if not out:
        raise RuntimeError(f"no standard-library sources found under {root}")
    return bytes(out[:max_bytes])
