"""Committed-model loading, the full evaluation runs, JSON tables and PNG plots."""

from __future__ import annotations

import json
import platform
import time
from collections.abc import Callable, Sequence
from importlib import resources
from pathlib import Path

import torch

from sparq.baselines import METHODS
from sparq.eval._harness import (
    DEFAULT_COMPRESSIONS,
    evaluate_lm,
    evaluate_recall,
    fidelity_and_q_stats,
)
from sparq.eval._model import TinyLlama
from sparq.eval._tasks import RecallTask, stdlib_bytes
from sparq.eval._train import load_checkpoint

__all__ = ["load_model", "plot_rows", "run_lm_eval", "run_recall_eval"]


def load_model(kind: str, path: str | Path | None = None) -> tuple[TinyLlama, dict]:
    """Load the committed ``"recall"`` or ``"byte_lm"`` checkpoint (or one at ``path``)."""
    if kind not in ("recall", "byte_lm"):
        raise ValueError(f"kind must be 'recall' or 'byte_lm', got {kind!r}")
    if path is None:
        ref = resources.files("sparq") / "data" / f"{kind}.pt"
        with resources.as_file(ref) as p:
            if not Path(p).exists():
                raise FileNotFoundError(
                    f"no committed {kind} checkpoint at {p}; "
                    f"train one with `sparq eval train {kind}`"
                )
            return load_checkpoint(p)
    return load_checkpoint(path)


def plot_rows(rows: list[dict], metric: str, path: str | Path, title: str) -> None:
    """Line plot of ``metric`` vs compression, one line per method (dense as a horizontal line)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    dense = [r[metric] for r in rows if r["method"] == "dense"]
    if dense:
        ax.axhline(dense[0], color="black", ls="--", lw=1, label="dense")
    for m in METHODS:
        pts = sorted(
            (r["compression"], r[metric]) for r in rows if r["method"] == m and m != "dense"
        )
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=m)
    ax.set_xscale("log", base=2)
    xs = sorted({r["compression"] for r in rows if r["method"] != "dense"})
    ax.set_xticks(xs, [f"1/{x:g}" for x in xs])
    ax.set_xlabel("transfer budget (fraction of dense bytes)")
    ax.set_ylabel(metric)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(str(path), dpi=110)
    plt.close(fig)


def _meta(extra: dict) -> dict:
    return {
        "date": time.strftime("%Y-%m-%d"),
        "device": extra.pop("device", "cpu"),
        "torch": torch.__version__,
        "python": platform.python_version(),
        **extra,
    }


def run_recall_eval(
    out_dir: str | Path | None,
    *,
    checkpoint: str | Path | None = None,
    methods: Sequence[str] = METHODS,
    compressions: Sequence[float] = DEFAULT_COMPRESSIONS,
    n_samples: int = 256,
    progress: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> dict:
    """Recall accuracy table + SparQ fidelity + q statistics; writes JSON/PNG when ``out_dir``."""
    model, meta = load_model("recall", checkpoint)
    model.to(device)
    task = RecallTask(**meta["task"])
    rows = evaluate_recall(
        model, task, methods=methods, compressions=compressions, n_samples=n_samples,
        progress=progress,
    )  # fmt: skip
    ids, _ = task.sample(32, torch.Generator().manual_seed(7))
    fid, qst = fidelity_and_q_stats(
        model, ids[:, :-1], t0=task.prompt_len, compressions=compressions
    )
    result = {"meta": _meta({"task": task.to_dict(), "model": model.config.to_dict(),
                             "device": str(device), "samples": n_samples}),
              "rows": rows, "fidelity": fid, "q_stats": qst}  # fmt: skip
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval_recall.json").write_text(json.dumps(result, indent=1))
        plot_rows(rows, "accuracy", out / "eval_recall.png", "Multi-query associative recall")
    return result


def run_lm_eval(
    out_dir: str | Path | None,
    *,
    checkpoint: str | Path | None = None,
    methods: Sequence[str] = METHODS,
    compressions: Sequence[float] = DEFAULT_COMPRESSIONS,
    n_windows: int = 64,
    decode_len: int = 64,
    progress: Callable[[str], None] | None = None,
    device: str = "cpu",
) -> dict:
    """Bits per byte on held-out stdlib windows (last ``decode_len`` positions run the method)."""
    model, meta = load_model("byte_lm", checkpoint)
    model.to(device)
    L = meta["seq_len"]
    data = torch.frombuffer(bytearray(stdlib_bytes(meta["corpus_bytes"])), dtype=torch.uint8).long()
    held = data[int(meta["split"] * len(data)) :]
    step = (len(held) - L - 1) // n_windows
    windows = torch.stack([held[i * step : i * step + L] for i in range(n_windows)])
    t0 = L - 1 - decode_len
    rows = evaluate_lm(
        model, windows, t0=t0, methods=methods, compressions=compressions, progress=progress
    )
    fid, qst = fidelity_and_q_stats(model, windows[:16, :-1], t0=t0, compressions=compressions)
    result = {"meta": _meta({"model": model.config.to_dict(), "windows": n_windows,
                             "device": str(device),
                             "decode_positions": decode_len}),
              "rows": rows, "fidelity": fid, "q_stats": qst}  # fmt: skip
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "eval_byte_lm.json").write_text(json.dumps(result, indent=1))
        plot_rows(rows, "bpb", out / "eval_byte_lm.png", "Byte-level LM on stdlib sources")
    return result
