"""Worker for the u-mup distributed check, launched with ``torchrun``.

Trains the same u-μP decoder for N steps on a fixed global batch stream, in one of three modes:

* ``single``: one process, the whole global batch;
* ``ddp``: ``DistributedDataParallel``, each rank a contiguous slice of the global batch;
* ``fsdp2``: ``fully_shard`` per block and at the root (FSDP2), same slicing.

Rank 0 writes a JSON record: the loss per step (averaged over ranks, i.e. the global-batch loss),
the learning rate and weight decay given to every parameter by ``u_mup.param_groups``, and the role
table. In ``fsdp2`` mode the final model is also saved as a distributed checkpoint
(``torch.distributed.checkpoint``) so that a single process can load it.

Usage (CPU, gloo):  python -m torch.distributed.run --standalone --nproc-per-node 2 \
    umup_dist_worker.py --mode ddp --backend gloo --out ddp.json
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import torch
import torch.distributed as dist

import u_mup
from u_mup.models import build_decoder

VOCAB, SEQ, GLOBAL_BATCH, WIDTH, LAYERS = 256, 32, 8, 64, 2


def batches(steps: int, seed: int = 1234) -> list[torch.Tensor]:
    """The global batch stream: ``steps`` LongTensors of shape (GLOBAL_BATCH, SEQ + 1)."""
    g = torch.Generator().manual_seed(seed)
    # A learnable stream: repeated random phrases, so the loss actually falls in 50 steps.
    phrases = torch.randint(0, VOCAB, (16, SEQ + 1), generator=g)
    out = []
    for _ in range(steps):
        idx = torch.randint(0, phrases.shape[0], (GLOBAL_BATCH,), generator=g)
        out.append(phrases[idx])
    return out


def fully_shard_fn():
    try:
        from torch.distributed.fsdp import fully_shard  # torch >= 2.6
    except ImportError:  # torch 2.5
        from torch.distributed._composable.fsdp import fully_shard
    return fully_shard


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["single", "ddp", "fsdp2"], required=True)
    ap.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--ckpt", type=Path, default=None)
    args = ap.parse_args()

    distributed = args.mode != "single"
    if distributed:
        dist.init_process_group(args.backend)
        rank, world = dist.get_rank(), dist.get_world_size()
    else:
        rank, world = 0, 1
    if args.backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    else:
        device = torch.device("cpu")
    torch.use_deterministic_algorithms(True, warn_only=True)

    model = build_decoder("umup", width=WIDTH, n_layers=LAYERS, seed=0, vocab_size=VOCAB)
    model = model.to(device)
    if args.mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh

        fully_shard = fully_shard_fn()
        mesh = init_device_mesh(device.type, (world,))
        for blk in model.layers:
            fully_shard(blk, mesh=mesh)
        fully_shard(model, mesh=mesh)
    roles_before = {n: i.to_dict() for n, i in u_mup.roles(model).items()}
    opt = u_mup.AdamW(model, lr=2e-2, weight_decay=1e-4)
    hparams = {
        name: {"lr": g["lr"], "weight_decay": g["weight_decay"], "role": g["role"]}
        for g in opt.param_groups
        for name in g["names"]
    }
    train = model
    if args.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        train = DistributedDataParallel(model)

    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.dtype == "bf16")
    per_rank = GLOBAL_BATCH // world
    losses = []
    for batch in batches(args.steps):
        local = batch[rank * per_rank : (rank + 1) * per_rank].to(device)
        x, y = local[:, :-1], local[:, 1:]
        with amp:
            logits = train(x)  # through the DDP wrapper, so its gradient hooks are armed
            loss = model.loss(x, y, logits=logits)  # value == F.cross_entropy; u-μP backward
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        val = loss.detach().clone()
        if distributed:
            dist.all_reduce(val)
            val /= world
        losses.append(float(val))

    record = {
        "mode": args.mode,
        "world_size": world,
        "backend": args.backend,
        "dtype": args.dtype,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "losses": losses,
        "hparams": hparams,
        "roles": roles_before,
        "roles_after": {n: i.to_dict() for n, i in u_mup.roles(model).items()},
    }
    if args.mode == "fsdp2" and args.ckpt is not None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        dcp.save(get_model_state_dict(model), checkpoint_id=str(args.ckpt))
    if rank == 0:
        args.out.write_text(json.dumps(record, indent=1))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
