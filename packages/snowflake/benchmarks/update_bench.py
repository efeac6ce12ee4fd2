"""The PPO update alone (10 epochs x 8 minibatches of 256 out of 2048 transitions), by variant.

Same model, same random batch and the same minibatch order for every variant; per variant the
median wall time of ``--reps`` whole updates (``ppo_update``: advantage normalisation, the 80
minibatch steps, the one host sync for the diagnostics, explained variance, update norms and the
whole-update divergence), after one untimed update, and the time of the 80 steps alone.
Variants (``--variants``, comma-separated):

* ``foreach``: CUDA-graph steps with the multi-tensor Adam and the divergence pass in chunks of
  512 (the code before fused Adam: the reference);
* ``fused``: the same with fused Adam and one divergence pass over the batch (the default now);
* ``compile``: ``fused`` plus the minibatch forward + loss (and so its backward) compiled with
  ``torch.compile`` before the capture (``PPOConfig(compile=True)``);
* ``tf32``: ``fused`` with TF32 matmuls (changes rounding: not used by the package; shown for
  scale only);
* ``streams``: ``fused`` with the critic's half of every step on a second CUDA stream
  (``GraphedPPOStep(split_streams=True)``); ``compile+streams`` both;
* ``eager``: no graph, fused Adam.

Correctness: every variant's parameters after one update from the same start are compared with
the ``foreach`` variant's (max abs difference; float rounding only, so ~1e-6).

    python packages/snowflake/benchmarks/update_bench.py --device cuda --json upd.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import torch

from snowflake._graphs import GraphedPPOStep, capturable_adam
from snowflake._ppo import PPOConfig, ppo_update
from snowflake._trainer import build_agent


def make_batch(morph, n: int, device: str, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random rollout batch ``[n, …]`` shaped like the trainer's (normalised obs ~ N(0, 1))."""
    g = torch.Generator().manual_seed(seed)
    d, a = morph.obs_dim, len(morph.act_node)
    std = torch.full((n, a), 0.37)
    mean = 0.1 * torch.randn(n, a, generator=g)
    act = mean + std * torch.randn(n, a, generator=g)
    logp = (-((act - mean) ** 2) / (2 * std**2) - std.log() - 0.9189385332046727).sum(-1)
    batch = {
        "obs": torch.randn(n, d, generator=g),
        "actions": act,
        "logp": logp,
        "mean": mean,
        "std": std,
        "values": torch.randn(n, generator=g),
        "advantages": torch.randn(n, generator=g),
        "returns": torch.randn(n, generator=g),
    }
    return {k: v.to(device) for k, v in batch.items()}


def run_variant(name: str, a: argparse.Namespace) -> tuple[dict, dict[str, torch.Tensor]]:
    dev = torch.device(a.device)
    cfg = PPOConfig(
        env=a.env,
        policy=a.policy,
        rollout_steps=a.rollout_steps,
        minibatch_size=a.minibatch,
        epochs=a.epochs,
        device=a.device,
        compile="compile" in name,
    )
    tf32 = "tf32" in name
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32
    agent, spec, morph = build_agent(cfg.env, cfg.policy, 0, cfg.init_log_std, cfg.decoder_gain)
    agent.to(dev)
    agent.bind(morph)
    spec.apply(agent)
    trainable = [(n, p) for n, p in agent.named_parameters() if p.requires_grad]
    pi = [p for n, p in trainable if not n.startswith("critic")]
    v = [p for n, p in trainable if n.startswith("critic")]
    fused = name != "foreach" and dev.type == "cuda"
    graph = dev.type == "cuda" and name != "eager"
    if dev.type == "cuda":
        opt_pi = capturable_adam(pi, cfg, dev, fused=fused)
        opt_v = capturable_adam(v, cfg, dev, fused=fused)
    else:  # capturable Adam needs a GPU; the CPU is for smoke tests only
        opt_pi = torch.optim.Adam(pi, lr=cfg.lr, eps=cfg.adam_eps)
        opt_v = torch.optim.Adam(v, lr=cfg.lr, eps=cfg.adam_eps)
    batch = make_batch(morph, cfg.rollout_steps, a.device)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    t0 = time.perf_counter()
    graphed = None
    if graph:
        graphed = GraphedPPOStep(agent, opt_pi, opt_v, cfg, batch, cfg.compile, "streams" in name)
    sync()
    build_s = time.perf_counter() - t0
    if name == "foreach":  # the divergence pass as before: chunks of 512
        import snowflake._ppo as ppo_mod

        orig = ppo_mod.update_divergence
        ppo_mod.update_divergence = lambda ag, b, c: orig(ag, b, c, chunk=512)
    res_prof = None
    try:
        torch.manual_seed(1)  # same minibatch order for every variant
        ppo_update(agent, opt_pi, opt_v, batch, cfg, graphed)
        after_one = {n: p.detach().cpu().clone() for n, p in agent.named_parameters()}
        times, steps = [], []
        for _ in range(a.reps):
            ph: dict[str, float] = {}
            sync()
            t = time.perf_counter()
            ppo_update(agent, opt_pi, opt_v, batch, cfg, graphed, ph)
            sync()
            times.append(time.perf_counter() - t)
            steps.append(ph["update_steps"])
        # the 80 steps alone: issue and wait, without the diagnostics
        perm = torch.randperm(cfg.rollout_steps, device=dev)
        sync()
        t = time.perf_counter()
        for _ in range(cfg.epochs):
            for s in range(0, cfg.rollout_steps, cfg.minibatch_size):
                mb = perm[s : s + cfg.minibatch_size]
                if graphed is not None:
                    graphed.replay(mb)
                else:
                    from snowflake._ppo import minibatch_step

                    opt_pi.zero_grad(set_to_none=True)
                    opt_v.zero_grad(set_to_none=True)
                    minibatch_step(agent, opt_pi, opt_v, pi, v, mb, batch, cfg)
        sync()
        steps_alone = time.perf_counter() - t
        if a.profile:  # CPU: exercises the code, no kernels to count
            res_prof = profile_step(agent, opt_pi, opt_v, pi, v, perm, batch, cfg, graphed)
    finally:
        if name == "foreach":
            ppo_mod.update_divergence = orig
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = True
    n_mb = cfg.epochs * cfg.rollout_steps // cfg.minibatch_size
    prof = res_prof
    res = {
        "variant": name,
        "policy": a.policy,
        "env": a.env,
        "device": str(dev),
        "update_s_median": statistics.median(times),
        "update_s_all": times,
        "steps_alone_s": steps_alone,
        "ms_per_minibatch_step": 1e3 * steps_alone / n_mb,
        "build_s": build_s,
        "graph": graphed is not None,
        "fused_adam": fused,
    }
    if prof:
        res["profile"] = prof
    return res, after_one


def profile_step(agent, opt_pi, opt_v, pi, v, perm, batch, cfg, graphed) -> dict:
    """GPU kernels of ``reps`` eager minibatch steps (the ops a captured step replays): count,
    summed kernel time and the top kernels by time, per step. Uses the variant's compiled loss
    when it has one."""
    from torch.profiler import ProfilerActivity, profile

    from snowflake._ppo import minibatch_losses, minibatch_step

    losses = graphed.losses if graphed is not None else minibatch_losses
    reps = 3
    mbs = [perm[i * cfg.minibatch_size : (i + 1) * cfg.minibatch_size] for i in range(reps + 1)]

    def one(mb):
        opt_pi.zero_grad(set_to_none=True)
        opt_v.zero_grad(set_to_none=True)
        split = graphed.split if graphed is not None else None
        minibatch_step(agent, opt_pi, opt_v, pi, v, mb, batch, cfg, losses, split)

    one(mbs[-1])  # warm (lazy inits outside the profile)
    cuda = batch["obs"].is_cuda
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    sync()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=acts) as p:
        for mb in mbs[:reps]:
            one(mb)
        sync()
    kern: dict[str, list[float]] = {}
    for e in p.events():
        if str(getattr(e, "device_type", "")).endswith("CUDA"):
            k = kern.setdefault(e.name[:90], [0, 0.0])
            k[0] += 1
            k[1] += e.time_range.elapsed_us()
    n = sum(c for c, _ in kern.values()) / reps
    us = sum(t for _, t in kern.values()) / reps
    top = sorted(kern.items(), key=lambda kv: -kv[1][1])[:25]
    return {
        "kernels_per_step": n,
        "kernel_us_per_step": us,
        "top": [{"name": k, "per_step": c / reps, "us_per_step": t / reps} for k, (c, t) in top],
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="Centipede-20")
    p.add_argument("--policy", default="snowflake", choices=("mlp", "nervenet", "snowflake"))
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--variants", default="foreach,fused,streams,tf32,compile,compile+streams")
    p.add_argument("--rollout-steps", type=int, default=2048)
    p.add_argument("--minibatch", type=int, default=256)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--json", default="")
    p.add_argument("--profile", action="store_true", help="GPU kernels of eager steps")
    a = p.parse_args()
    out: dict = {"date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()), "variants": {}}
    if torch.cuda.is_available():
        out["gpu"] = torch.cuda.get_device_name()
    ref = None
    for name in a.variants.split(","):
        try:
            res, params = run_variant(name, a)
        except Exception as e:  # one failing variant must not sink the others
            out["variants"][name] = {"variant": name, "error": repr(e)[:500]}
            print(f"{a.policy} update {name}: FAILED {e!r}", flush=True)
            continue
        if ref is None:
            ref = params
        res["max_abs_param_diff_vs_first"] = max(
            float((params[k] - ref[k]).abs().max()) for k in ref
        )
        out["variants"][name] = res
        print(
            f"{a.policy} update {name}: {res['update_s_median'] * 1e3:.1f} ms per update "
            f"(steps alone {res['steps_alone_s'] * 1e3:.1f} ms, "
            f"{res['ms_per_minibatch_step']:.3f} ms each; build {res['build_s']:.1f} s; "
            f"params vs first variant {res['max_abs_param_diff_vs_first']:.2e})",
            flush=True,
        )
        if "profile" in res:
            pr = res["profile"]
            print(
                f"  {pr['kernels_per_step']:.0f} kernels per eager step, "
                f"{pr['kernel_us_per_step']:.0f} µs of kernel time; top: "
                + "; ".join(
                    f"{t['name'][:40]} x{t['per_step']:.0f} {t['us_per_step']:.0f} µs"
                    for t in pr["top"][:6]
                ),
                flush=True,
            )
        if a.json:
            with open(a.json, "w") as f:
                json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
