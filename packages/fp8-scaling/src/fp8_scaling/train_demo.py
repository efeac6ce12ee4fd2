"""Train a small GPT in high precision vs FP8 (JIT, delayed, constant) and plot the results.

Usage::

    python -m fp8_scaling.train_demo --steps 300 --out runs/demo
    python -m fp8_scaling.train_demo --device cuda --layers 12 --d-model 768 --steps 2000 \\
        --recipes bf16,jit,delayed,constant --inference --out runs/gpt12

The data is embedded: the bytes of this Python installation's standard-library sources (first
90 % for training, last 10 % for validation); the vocabulary is the 256 byte values. Writes
``losses.json``, ``loss_curves.png``, ``bias_distribution.png`` and ``bias_heatmap.png``.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import dataclasses
import json
import math
import os
import sys
import time

import torch

from ._convert import convert_to_float8
from ._gpt import GPT, GPTConfig, evaluate, stdlib_corpus, train_steps
from ._inference import quantize_for_inference
from ._plot import plot_bias_distribution, plot_bias_heatmap, plot_loss_curves
from ._recipes import ConstantScaling, DelayedScaling, JustInTimeScaling
from ._recorder import ScaleRecorder

__all__ = ["main", "run"]

RECIPES = {
    "jit": JustInTimeScaling(),
    "delayed": DelayedScaling(history_len=16),
    "constant": ConstantScaling(bias=4, grad_bias=14),
}


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m fp8_scaling.train_demo", description=__doc__.split("\n\n")[0]
    )
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--d-model", type=int, default=64)
    p.add_argument("--heads", type=int, default=4)
    p.add_argument("--seq-len", type=int, default=64)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument(
        "--recipes",
        default="hp,jit,delayed,constant",
        help="comma list of hp (fp32; bf16 autocast on CUDA; alias bf16), jit, delayed, constant",
    )
    p.add_argument("--device", default="cpu")
    p.add_argument("--bytes", type=int, default=3_000_000, help="corpus size in bytes")
    p.add_argument("--record-every", type=int, default=10)
    p.add_argument("--val-every", type=int, default=50)
    p.add_argument("--inference", action="store_true", help="also evaluate the quantize-once model")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--no-cuda-graph",
        action="store_true",
        help="on CUDA, run every step eagerly instead of replaying the forward and backward "
        "from CUDA graphs (telemetry steps always run eagerly)",
    )
    p.add_argument(
        "--max-seconds",
        type=float,
        default=0.0,
        help="stop training (and report the steps done) after this many seconds; 0: no limit",
    )
    p.add_argument(
        "--val-window",
        type=int,
        default=500,
        help="the compared validation loss is the mean over the last this many steps",
    )
    p.add_argument(
        "--merge",
        default="",
        help="comma list of output folders of earlier runs (e.g. one recipe per process) to "
        "merge into --out (gaps, loss curves); no training",
    )
    p.add_argument(
        "--fast-accum",
        default="",
        help="fast_accum of the FP8 recipes (e.g. 'all', 'grad_input+grad_weight'); default: "
        "the recipes' own ('none')",
    )
    p.add_argument("--out", default="fp8_train_demo")
    return p


def run(args: argparse.Namespace) -> dict:
    """Run the comparison described by ``args`` (see ``--help``); returns the summary dict."""
    os.makedirs(args.out, exist_ok=True)
    dev = torch.device(args.device)
    amp = torch.bfloat16 if dev.type == "cuda" else None
    data = stdlib_corpus(args.bytes)
    split = int(0.9 * data.numel())
    train, val = data[:split], data[split:]
    cfg = GPTConfig(
        n_layer=args.layers, d_model=args.d_model, n_head=args.heads, seq_len=args.seq_len
    )
    torch.manual_seed(args.seed)
    base = GPT(cfg).to(dev)
    names = [r.strip() for r in args.recipes.split(",") if r.strip()]
    bad = [n for n in names if n not in ("hp", "bf16", *RECIPES)]
    if bad:
        raise SystemExit(f"unknown recipe(s) {bad}; choose from hp, bf16, {', '.join(RECIPES)}")
    summary: dict = {"config": vars(args), "runs": {}}
    recorder = None
    try:
        from rich.progress import Progress
    except ImportError:  # pragma: no cover
        Progress = None
    deadline = time.monotonic() + args.max_seconds if args.max_seconds > 0 else None
    for name in names:
        model = copy.deepcopy(base)
        if name in RECIPES:
            recipe = RECIPES[name]
            if args.fast_accum:
                recipe = dataclasses.replace(recipe, fast_accum=args.fast_accum)
            convert_to_float8(model, recipe, auto_filter=False)
            rec = ScaleRecorder(model, every=args.record_every)
        else:
            rec = None
        t0 = time.perf_counter()
        bar = Progress(transient=True) if Progress is not None else contextlib.nullcontext()
        with bar:
            progress = None
            if Progress is not None:
                task = bar.add_task(f"{name}", total=args.steps)

                def progress(s, l, task=task, name=name, bar=bar):
                    bar.update(task, advance=1, description=f"{name} loss {l:.3f}")

            res = train_steps(
                model, train, args.steps, args.batch, args.lr, args.seed, dev, amp, None, val,
                args.val_every, progress, deadline, cuda_graph=not args.no_cuda_graph,
                recorder=rec,
            )  # fmt: skip
        dt = time.perf_counter() - t0
        tail = max(1, len(res["train"]) // 4)
        entry = {
            "final_train_loss": sum(res["train"][-tail:]) / tail,
            "final_val_loss": res["val"][-1] if res["val"] else float("nan"),
            "finite": all(math.isfinite(v) for v in res["train"] + res["val"]),
            "steps_done": len(res["train"]),
            "seconds": dt,
            **res,
        }
        if name in RECIPES:
            entry["fast_accum"] = recipe.fast_accum
        if name == "jit":
            recorder = rec
        if args.inference and name in ("hp", "bf16"):
            q = quantize_for_inference(copy.deepcopy(model))
            entry["inference_val_loss"] = evaluate(q, val, args.batch, dev, amp)
            entry["val_loss_same_batches"] = evaluate(model, val, args.batch, dev, amp)
            wq = sum(
                m.weight_fp8.numel() * m.weight_fp8.element_size()
                for m in q.modules()
                if hasattr(m, "weight_fp8")
            )
            wb = sum(
                m.weight.numel() * 2
                for m in model.modules()
                if type(m) is torch.nn.Linear and "lm_head" not in str(m)
            )
            entry["fp8_weight_bytes_over_bf16"] = wq / max(1, wb - model.lm_head.weight.numel() * 2)
        summary["runs"][name] = entry
        print(
            f"{name:>9}: final train loss {entry['final_train_loss']:.4f}  "
            f"val {entry['final_val_loss']:.4f}  "
            f"({dt:.1f} s)"
        )
    if recorder is not None and recorder.to_records():
        plot_bias_distribution(recorder, os.path.join(args.out, "bias_distribution.png"))
        plot_bias_heatmap(recorder, os.path.join(args.out, "bias_heatmap.png"), role="gradient")
    _finish(summary, args)
    return summary


def _val_window_mean(entry: dict, steps: int, window: int) -> float:
    start = steps - min(window, steps)
    vals = [v for s, v in zip(entry.get("val_steps", []), entry.get("val", [])) if s >= start]
    return sum(vals) / len(vals) if vals else float("nan")


def _finish(summary: dict, args: argparse.Namespace) -> None:
    """Gaps to the high-precision run, the loss-curve plot and ``losses.json`` in ``args.out``."""
    steps, window = summary["config"]["steps"], args.val_window
    for e in summary["runs"].values():
        e["val_window_mean"] = _val_window_mean(e, steps, window)
        e["val_window_steps"] = min(window, steps)
    hp = next((summary["runs"][n] for n in ("hp", "bf16") if n in summary["runs"]), None)
    if hp is not None:
        for e in summary["runs"].values():
            e["rel_gap_vs_hp"] = (e["final_train_loss"] - hp["final_train_loss"]) / hp[
                "final_train_loss"
            ]
            e["rel_val_gap_vs_hp"] = (e["val_window_mean"] - hp["val_window_mean"]) / hp[
                "val_window_mean"
            ]
    if "inference_val_loss" in (hp or {}):
        hp["inference_rel_gap"] = (hp["inference_val_loss"] - hp["val_loss_same_batches"]) / hp[
            "val_loss_same_batches"
        ]
    curves = {n: e["train"] for n, e in summary["runs"].items()}
    cfg = summary["config"]
    plot_loss_curves(
        curves,
        os.path.join(args.out, "loss_curves.png"),
        title=f"GPT {cfg['layers']}L d={cfg['d_model']}: high precision vs FP8",
    )
    with open(os.path.join(args.out, "losses.json"), "w") as f:
        json.dump(summary, f, indent=1)


def merge(args: argparse.Namespace) -> dict:
    """Merge the ``losses.json`` of the folders in ``args.merge`` into one in ``args.out``."""
    os.makedirs(args.out, exist_ok=True)
    summary: dict = {"config": None, "runs": {}}
    for folder in [f for f in args.merge.split(",") if f]:
        path = os.path.join(folder, "losses.json")
        if not os.path.exists(path):
            print(f"merge: {path} missing (run cut short?), skipped")
            continue
        with open(path) as f:
            part = json.load(f)
        summary["config"] = summary["config"] or part["config"]
        summary["runs"].update(part["runs"])
    if summary["config"] is None:
        raise SystemExit(f"merge: no losses.json in {args.merge}")
    summary["config"]["recipes"] = ",".join(summary["runs"])
    _finish(summary, args)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    args = _parser().parse_args(argv)
    merge(args) if args.merge else run(args)
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
