"""Worker for the fp8-scaling distributed check, launched with ``torchrun``.

A small model converted with ``convert_to_float8`` (just-in-time power-of-two scaling, amax
all-reduced with MAX over the data-parallel group) is trained for N steps, either in one process
on the whole global batch (``single``) or sharded with FSDP2 (``fully_shard``) over the ranks, each
rank taking a slice of the global batch. The model has deliberately awkward parameters for
sharding: an embedding of 257 rows (129/128 rows per rank: uneven) and a 1-output head whose
weight (1, 64) and bias (1,) leave rank 1 with an empty shard.

Every amax the FP8 casts use is logged (through the library's reduction hook); rank 0 writes
``<mode>.json`` with the loss per step, the number of FP8 layers and, under FSDP2, whether both
ranks used identical amaxes at every cast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

import fp8_scaling
from fp8_scaling import _linear_fn

VOCAB, SEQ, GLOBAL_BATCH, D = 257, 8, 16, 64


class Net(nn.Module):
    """Embedding → two FP8 linears (GELU) → mean over the sequence → 1-output head (B, 1)."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, D)
        self.fc1 = nn.Linear(D, 2 * D)
        self.fc2 = nn.Linear(2 * D, D)
        self.out = nn.Linear(D, 1)  # 1 output feature: FP8 cannot run it, kept high precision

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        h = self.embed(idx)  # (B, T, D)
        h = h + self.fc2(torch.nn.functional.gelu(self.fc1(h)))
        # (B, 1); squeezed by the caller: an FSDP2 root must not return a view of its output
        return self.out(h.mean(1))


def data(steps: int, seed: int = 7) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Global batches: token ids (GLOBAL_BATCH, SEQ) and a learnable regression target."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(VOCAB, generator=g)
    out = []
    for _ in range(steps):
        idx = torch.randint(0, VOCAB, (GLOBAL_BATCH, SEQ), generator=g)
        out.append((idx, w[idx].mean(1)))
    return out


def fully_shard_fn():
    try:
        from torch.distributed.fsdp import fully_shard  # torch >= 2.6
    except ImportError:  # torch 2.5
        from torch.distributed._composable.fsdp import fully_shard
    return fully_shard


def train(mode: str, backend: str, steps: int) -> dict:
    distributed = mode != "single"
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    torch.manual_seed(0)
    model = Net().to(device)
    group = dist.group.WORLD if distributed else None
    recipe = fp8_scaling.JustInTimeScaling(amax_group=group)
    # auto_filter=False: on Hopper the auto-filter would (rightly) keep these tiny layers in bf16,
    # and the check is about the FP8 path under FSDP2, so fc1 and fc2 must run FP8; the 1-wide
    # head, which FP8 GEMMs cannot run, is left out by name instead
    fp8_scaling.convert_to_float8(
        model, recipe=recipe, auto_filter=False, module_filter_fn=lambda m, name: name != "out"
    )
    n_fp8 = sum(isinstance(m, fp8_scaling.Float8Linear) for m in model.modules())
    if mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh

        fully_shard_fn()(model, mesh=init_device_mesh(device.type, (world,)))
        shard_numel = {n: p.to_local().numel() for n, p in model.named_parameters()}
    else:
        shard_numel = {n: p.numel() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    log: list[float] = []
    original = _linear_fn._reduce_amax

    def logged(a, grp):
        out = original(a, grp)
        log.append(float(out))
        return out

    _linear_fn._reduce_amax = logged
    per = GLOBAL_BATCH // world
    losses = []
    try:
        for idx, y in data(steps):
            idx = idx[rank * per : (rank + 1) * per].to(device)
            y = y[rank * per : (rank + 1) * per].to(device)
            loss = torch.nn.functional.mse_loss(model(idx)[:, 0], y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            val = loss.detach().clone()
            if distributed:
                dist.all_reduce(val)
                val /= world
            losses.append(float(val))
    finally:
        _linear_fn._reduce_amax = original

    same_amax = None
    if distributed:
        logs: list = [None] * world
        dist.all_gather_object(logs, log)
        same_amax = all(other == logs[0] for other in logs)
        shards: list = [None] * world
        dist.all_gather_object(shards, shard_numel)
        shard_numel = shards
    return {
        "mode": mode,
        "world_size": world,
        "backend": backend,
        "losses": losses,
        "n_fp8_layers": n_fp8,
        "n_amax_reductions": len(log),
        "same_amax_on_all_ranks": same_amax,
        "shard_numel": shard_numel,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["single", "fsdp2"], default="fsdp2")
    ap.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args()
    distributed = args.mode != "single"
    if distributed:
        dist.init_process_group(args.backend)
    record = train(args.mode, args.backend, args.steps)
    args.out.mkdir(parents=True, exist_ok=True)
    if not distributed or dist.get_rank() == 0:
        (args.out / f"{args.mode}.json").write_text(json.dumps(record, indent=1))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # leave without the interpreter's finalisation: a gloo worker thread still alive there can
    # abort the process ("terminate called without an active exception", seen once in CI on
    # torch's CPU wheel) after the work is done and the record written
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
