"""Token sources that need no download: the standard library's own source as bytes, a synthetic
sparse Markov chain of known entropy, or any text file.

Every source yields ``batch(step, batch_size, seq_len, split) -> (idx, targets)`` as
``LongTensor[B, S]`` pairs that depend only on ``(seed, step, split)``, so runs that share a seed
see the same data in the same order whatever their parametrization or width.
"""

from __future__ import annotations

import sysconfig
import zlib
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["ByteCorpus", "MarkovSource", "make_source", "stdlib_corpus"]


class ByteCorpus:
    """Byte-level corpus (vocab 256) with a fixed train/validation split.

    Args:
        train, val: ``uint8`` tensors of bytes. seed: data-order seed.
    """

    vocab_size = 256

    def __init__(self, train: Tensor, val: Tensor, seed: int = 0, name: str = "bytes") -> None:
        if train.numel() < 2 or val.numel() < 2:
            raise ValueError(
                f"corpus too small: {train.numel()} train / {val.numel()} val bytes; "
                "use a larger text file"
            )
        self.train, self.val, self.seed, self.name = train, val, seed, name

    @classmethod
    def from_file(cls, path: str | Path, val_fraction: float = 0.1, seed: int = 0) -> ByteCorpus:
        """Any file as bytes; the last ``val_fraction`` is the validation split."""
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"text file {str(p)!r} does not exist; pass an existing file path")
        data = torch.frombuffer(bytearray(p.read_bytes()), dtype=torch.uint8)
        cut = int(len(data) * (1 - val_fraction))
        return cls(data[:cut].clone(), data[cut:].clone(), seed, name=p.name)

    def batch(
        self, step: int, batch_size: int, seq_len: int, split: str = "train"
    ) -> tuple[Tensor, Tensor]:
        """Random windows of ``seq_len + 1`` bytes; returns ``(idx, targets)`` int64 ``[B, S]``."""
        data = {"train": self.train, "val": self.val}.get(split)
        if data is None:
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        n = data.numel() - seq_len - 1
        if n < 1:
            raise ValueError(f"{split} split ({data.numel()} bytes) is shorter than seq_len+1")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 2 + (split == "val"))
        start = torch.randint(0, n, (batch_size, 1), generator=g)
        win = data[start + torch.arange(seq_len + 1)].long()
        return win[:, :-1], win[:, 1:]


def stdlib_corpus(max_bytes: int = 4_000_000, seed: int = 0) -> ByteCorpus:
    """The Python standard library's ``.py`` files as one byte stream (no download).

    Files are taken in sorted path order (tests and site-packages skipped) up to ``max_bytes``;
    a file goes to validation when ``crc32(relative path) % 10 == 0`` (about 10 %), so the split
    is fixed for a given Python version.
    """
    root = Path(sysconfig.get_paths()["stdlib"])
    train: list[bytes] = []
    val: list[bytes] = []
    total = 0
    for f in sorted(root.rglob("*.py")):
        rel = f.relative_to(root).as_posix()
        if rel.startswith(("site-packages", "test", "idlelib")) or "/test" in rel:
            continue
        try:
            b = f.read_bytes()
        except OSError:
            continue
        (val if zlib.crc32(rel.encode()) % 10 == 0 else train).append(b)
        total += len(b)
        if total >= max_bytes and train and val:  # both splits non-empty, whatever the cap
            break
    if not train or not val:
        raise ValueError(f"found too few standard-library sources under {root} for a split")

    def cat(bs: list[bytes]) -> Tensor:
        return torch.frombuffer(bytearray(b"".join(bs)), dtype=torch.uint8).clone()

    return ByteCorpus(cat(train), cat(val), seed, name="stdlib")


class MarkovSource:
    """A random sparse Markov chain of order ``order`` over ``vocab_size`` symbols.

    Each context (the previous ``order`` symbols) has ``branching`` possible successors with
    Dirichlet(``concentration``) probabilities. :attr:`entropy_rate` (nats/token) is the exact
    lower bound of the achievable loss (computed from the stationary distribution when tractable,
    else the uniform-context average).
    """

    def __init__(
        self,
        vocab_size: int = 64,
        order: int = 2,
        branching: int = 4,
        concentration: float = 0.5,
        chain_seed: int = 1234,
        seed: int = 0,
    ) -> None:
        if vocab_size < 2 or order < 1 or not 1 <= branching <= vocab_size:
            raise ValueError(
                f"need vocab_size >= 2, order >= 1, 1 <= branching <= vocab_size; got "
                f"{vocab_size}, {order}, {branching}"
            )
        self.vocab_size, self.order, self.seed = vocab_size, order, seed
        self.name = f"markov{order}"
        g = torch.Generator().manual_seed(chain_seed)
        n_ctx = vocab_size**order
        self.succ = torch.stack(
            [torch.randperm(vocab_size, generator=g)[:branching] for _ in range(n_ctx)]
        )
        probs = torch._standard_gamma(torch.full((n_ctx, branching), concentration), generator=g)
        self.probs = probs / probs.sum(-1, keepdim=True)
        self.cum = self.probs.cumsum(-1)
        ent = -(self.probs * self.probs.clamp_min(1e-30).log()).sum(-1)
        self.entropy_rate = float(self._stationary(ent))

    def _stationary(self, ent: Tensor) -> float:
        # Empirical stationary weights from a long vectorised walk.
        ctx = self._walk(torch.Generator().manual_seed(7), 256, 256)[1]
        return float(ent[ctx].mean()) if ctx.numel() else float(ent.mean())

    def _walk(self, g: torch.Generator, b: int, s: int) -> tuple[Tensor, Tensor]:
        v, o = self.vocab_size, self.order
        seq = torch.randint(0, v, (b, s + o), generator=g)
        ctxs = []
        for t in range(o, s + o):
            ctx = torch.zeros(b, dtype=torch.long)
            for j in range(o):
                ctx = ctx * v + seq[:, t - o + j]
            u = torch.rand(b, 1, generator=g)
            k = torch.searchsorted(self.cum[ctx], u).clamp_max(self.cum.shape[1] - 1)
            seq[:, t] = self.succ[ctx, k.squeeze(1)]
            ctxs.append(ctx)
        return seq[:, o:], torch.stack(ctxs[s // 2 :], 1).flatten()

    def batch(
        self, step: int, batch_size: int, seq_len: int, split: str = "train"
    ) -> tuple[Tensor, Tensor]:
        """Fresh chain samples (``split`` only changes the seed stream)."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be 'train' or 'val', got {split!r}")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 2 + (split == "val"))
        seq, _ = self._walk(g, batch_size, seq_len + 1)
        return seq[:, :-1].contiguous(), seq[:, 1:].contiguous()


def make_source(spec: str = "stdlib", seed: int = 0):
    """``"stdlib"``, ``"markov"`` (order-2, vocab 64) or a path to a text file."""
    if spec == "stdlib":
        return stdlib_corpus(seed=seed)
    if spec == "markov":
        return MarkovSource(seed=seed)
    if spec.startswith("markov"):
        return MarkovSource(order=int(spec[6:] or 2), seed=seed)
    return ByteCorpus.from_file(spec, seed=seed)
