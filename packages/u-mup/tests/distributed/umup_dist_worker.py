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
import sys
import warnings
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


def setup_device(backend: str) -> torch.device:
    if backend == "nccl":
        local = int(os.environ.get("LOCAL_RANK", 0))
        torch.cuda.set_device(local)
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        return torch.device("cuda", local)
    return torch.device("cpu")


def make_model(device: torch.device) -> torch.nn.Module:
    model = build_decoder("umup", width=WIDTH, n_layers=LAYERS, seed=0, vocab_size=VOCAB)
    return model.to(device)


def eval_batch() -> torch.Tensor:
    return batches(1, seed=999)[0]


@torch.no_grad()
def eval_loss(model: torch.nn.Module, device: torch.device) -> float:
    b = eval_batch().to(device)
    return float(model.loss(b[:, :-1], b[:, 1:]))


def train(
    mode: str, backend: str, steps: int, dtype: str = "fp32", ckpt: Path | None = None
) -> dict:
    """Train one model in ``mode`` and return the record (see the module docstring)."""
    distributed = mode != "single"
    rank, world = (dist.get_rank(), dist.get_world_size()) if distributed else (0, 1)
    device = setup_device(backend)
    model = make_model(device)
    if mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh

        fully_shard = fully_shard_fn()
        mesh = init_device_mesh(device.type, (world,))
        # The usual FSDP2 layout: one unit per transformer block, then the root (embedding,
        # final norm, head), so only one block's parameters are gathered at a time.
        for block in model.layers:
            fully_shard(block, mesh=mesh)
        fully_shard(model, mesh=mesh)
    # fully_shard swaps each unit's class for an ``FSDP<Class>`` subclass
    fsdp_units = sum(type(m).__name__.startswith("FSDP") for m in model.modules())
    roles_before = {n: i.to_dict() for n, i in u_mup.roles(model).items()}
    opt = u_mup.AdamW(model, lr=2e-2, weight_decay=1e-4)
    hparams = {
        name: {"lr": g["lr"], "weight_decay": g["weight_decay"], "role": g["role"]}
        for g in opt.param_groups
        for name in g["names"]
    }
    wrapped = model
    if mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        wrapped = DistributedDataParallel(model)

    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=dtype == "bf16")
    per_rank = GLOBAL_BATCH // world
    losses = []
    for batch in batches(steps):
        local = batch[rank * per_rank : (rank + 1) * per_rank].to(device)
        x, y = local[:, :-1], local[:, 1:]
        with amp:
            logits = wrapped(x)  # through the DDP wrapper, so its gradient hooks are armed
            loss = model.loss(x, y, logits=logits)  # value == F.cross_entropy; u-μP backward
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        val = loss.detach().float().clone()
        if distributed:
            dist.all_reduce(val)
            val /= world
        losses.append(float(val))

    record = {
        "mode": mode,
        "world_size": world,
        "backend": backend,
        "dtype": dtype,
        "fsdp_units": fsdp_units,
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "losses": losses,
        "eval_loss": eval_loss(model, device),
        "hparams": hparams,
        "roles": roles_before,
        "roles_after": {n: i.to_dict() for n, i in u_mup.roles(model).items()},
    }
    if mode == "fsdp2" and ckpt is not None:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        dcp.save(get_model_state_dict(model), checkpoint_id=str(ckpt))
    return record


def load_checkpoint_single(ckpt: Path, device: str = "cpu") -> torch.nn.Module:
    """Load a distributed checkpoint written by ``train("fsdp2", ...)`` in one process."""
    import torch.distributed.checkpoint as dcp

    model = make_model(torch.device(device))
    state = model.state_dict()
    with warnings.catch_warnings():
        # dcp warns that it loads in a single process when no process group exists: intended.
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(ckpt), no_dist=True)
    model.load_state_dict(state)
    return model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--modes", default="ddp,fsdp2", help="comma-separated: single, ddp, fsdp2")
    ap.add_argument("--backend", choices=["gloo", "nccl"], default="gloo")
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--out", type=Path, required=True, help="folder for <mode>.json")
    ap.add_argument("--ckpt", type=Path, default=None)
    args = ap.parse_args()
    modes = args.modes.split(",")
    distributed = any(m != "single" for m in modes)
    if distributed:
        dist.init_process_group(args.backend)
    torch.use_deterministic_algorithms(True, warn_only=True)
    args.out.mkdir(parents=True, exist_ok=True)
    for mode in modes:
        record = train(mode, args.backend, args.steps, args.dtype, args.ckpt)
        if not distributed or dist.get_rank() == 0:
            (args.out / f"{mode}_{args.dtype}.json").write_text(json.dumps(record, indent=1))
    if distributed:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
    # leave without the interpreter's finalisation: a gloo worker thread still alive there can
    # abort the process ("terminate called without an active exception") after the work is done
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
