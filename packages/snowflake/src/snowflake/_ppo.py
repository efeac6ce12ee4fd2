"""PPO pieces (Schulman et al. 2017) with Snowflake's defaults: config, GAE, one update phase."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, fields, replace

import numpy as np
import torch
from torch import nn


@dataclass(frozen=True)
class PPOConfig:
    """Training configuration; defaults follow Snowflake's code (Blake et al. 2021, App. /
    `config.py`).

    ``rollout_steps`` transitions are collected per update over all envs (2048), split into
    minibatches of 256 for 10 epochs; clip 0.1; Adam lr 3e-4 decayed linearly to 0; γ 0.99,
    λ 0.95; gradient-norm clip 5.0 (policy and critic have separate Adam optimisers).
    ``init_log_std`` = −1 (σ ≈ 0.37) keeps the initial control cost of Centipede below the alive
    bonus, so that early learning favours staying alive over ending episodes quickly.
    ``norm_reward`` (on by default; not in Snowflake's table) divides rewards for GAE and the
    critic (logged returns stay raw) by the running standard deviation of the discounted return,
    as gymnasium/cleanrl's ``NormalizeReward`` and SB3's ``VecNormalize`` do, so value targets are
    O(1): on the 30k-step Centipede-6 check it lifts `snowflake` from 1.8× to 4.6× longer
    episodes.
    ``decoder_gain`` (GNN actors): orthogonal gain of the decoder's output layer; 0.1 by default
    (see ``snowflake._policies.DECODER_GAIN``), 1.0 for a plain orthogonal init.
    ``device`` holds the model and runs the PPO update; ``rollout_device`` (default: the same)
    runs the rollout's policy calls on a copy of the model that is refreshed after every update,
    e.g. ``device="cuda", rollout_device="cpu"``: the update's large minibatches go to the GPU
    while the rollout's small per-step batches avoid a GPU round trip per env step.
    ``pipeline`` (≥ 2): the envs form that many groups with their own threads (``vector=
    "thread"``) or worker processes (``vector="process"``), and the rollout computes one group's
    actions while the other groups' physics runs, hiding the per-step policy time behind
    stepping (same PPO samples; the order of random draws and of normaliser updates differs, so
    runs are not bit-identical to ``pipeline=1``).
    ``cuda_graph`` (on a CUDA ``device``): each minibatch step of the update is one replay of a
    captured CUDA graph (same algorithm; the step is otherwise bound by kernel-launch latency).
    ``compile`` (with ``cuda_graph`` on CUDA): the minibatch forward + loss, and so its backward,
    and the forward of a separate rollout copy on a GPU (``rollout_device="cuda"``) are
    ``torch.compile``'d before their capture (fused kernels, fewer launches; same maths up to
    float rounding; compiling takes tens of seconds at the first iteration).
    ``split_streams`` (with ``cuda_graph`` on CUDA): the critic's loss, backward, clipping and
    Adam step run on a second stream inside the graph, beside the actor's (they share no
    parameters: same updates).
    """

    env: str = "Centipede-6"
    policy: str = "snowflake"
    total_steps: int = 1_000_000
    num_envs: int = 16
    seed: int = 0
    rollout_steps: int = 2048
    minibatch_size: int = 256
    epochs: int = 10
    clip: float = 0.1
    lr: float = 3e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    lam: float = 0.95
    max_grad_norm: float = 5.0
    ent_coef: float = 0.0
    init_log_std: float = -1.0
    decoder_gain: float = 0.1
    adam_eps: float = 1e-8
    norm_adv: bool = True
    norm_reward: bool = True
    vector: str = "thread"
    num_threads: int = 0
    pipeline: int = 1
    device: str = "cpu"
    rollout_device: str = ""
    cuda_graph: bool = True
    compile: bool = False
    split_streams: bool = False
    checkpoint_every: int = 10
    tensorboard: bool = False

    def __post_init__(self) -> None:
        if self.rollout_steps % self.num_envs:
            raise ValueError(
                f"rollout_steps ({self.rollout_steps}) must be divisible by num_envs "
                f"({self.num_envs})."
            )
        if self.rollout_steps % self.minibatch_size:
            raise ValueError(
                f"rollout_steps ({self.rollout_steps}) must be divisible by minibatch_size "
                f"({self.minibatch_size})."
            )
        if self.pipeline < 1 or self.num_envs % self.pipeline:
            raise ValueError(
                f"pipeline ({self.pipeline}) must be >= 1 and divide num_envs ({self.num_envs})."
            )
        if self.pipeline > 1 and self.vector not in ("thread", "process"):
            raise ValueError(
                f"pipeline={self.pipeline} needs vector='thread' or 'process' (got "
                f"{self.vector!r}): only those env groups can step in the background."
            )
        if self.total_steps < self.rollout_steps:
            raise ValueError(
                f"total_steps ({self.total_steps}) must be >= rollout_steps ({self.rollout_steps})."
            )

    @classmethod
    def preset(cls, name: str = "snowflake", **overrides) -> PPOConfig:
        """``"snowflake"`` (defaults above) or ``"cleanrl"`` (2048 steps per env, 32 minibatches,
        clip 0.2, grad-norm 0.5, Adam eps 1e-5), then ``overrides``."""
        base = cls()
        if name == "cleanrl":
            n = overrides.get("num_envs", base.num_envs)
            batch = 2048 * n
            base = replace(
                base,
                rollout_steps=batch,
                minibatch_size=batch // 32,
                clip=0.2,
                max_grad_norm=0.5,
                adam_eps=1e-5,
                init_log_std=0.0,
                total_steps=max(base.total_steps, batch),
            )
        elif name != "snowflake":
            raise ValueError(f"unknown PPO preset {name!r}; choose 'snowflake' or 'cleanrl'.")
        valid = {f.name for f in fields(cls)}
        bad = set(overrides) - valid
        if bad:
            raise ValueError(f"unknown config keys {sorted(bad)}; valid: {sorted(valid)}.")
        return replace(base, **overrides)

    def to_dict(self) -> dict:
        return asdict(self)


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    next_values: torch.Tensor,
    terminated: torch.Tensor,
    truncated: torch.Tensor,
    gamma: float,
    lam: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016, eq. 16) over ``[T, B]`` tensors.

    ``next_values[t]`` is V of the true successor of step t (the final observation when the
    episode ended there). δ_t = r_t + γ V(s'_t)(1 − terminated_t) − V(s_t); the recursion
    A_t = δ_t + γλ(1 − done_t) A_{t+1} is cut at both termination and truncation, while a
    truncated step still bootstraps from V(s'_t). Returns ``(advantages, returns)``.
    """
    term = terminated.float()
    done = torch.maximum(term, truncated.float())
    # δ and the per-step decay for all t at once (elementwise: the same float32 operations as
    # step by step); only the recursion itself loops, in numpy on CPU tensors (two calls per
    # step instead of about ten torch operators: ~1 ms instead of ~8 ms for T = 128).
    delta = rewards + gamma * next_values * (1.0 - term) - values
    decay = gamma * lam * (1.0 - done)
    if delta.device.type == "cpu":
        d, c = delta.numpy(), decay.numpy()
        out = np.empty_like(d)
        last = np.zeros_like(d[0])
        for t in reversed(range(d.shape[0])):
            last = d[t] + c[t] * last
            out[t] = last
        adv = torch.from_numpy(out)
    else:
        adv = torch.zeros_like(rewards)
        last = torch.zeros_like(rewards[0])
        for t in reversed(range(rewards.shape[0])):
            last = delta[t] + decay[t] * last
            adv[t] = last
    return adv, adv + values


def explained_variance(pred: torch.Tensor, target: torch.Tensor) -> float:
    """1 − Var[target − pred] / Var[target] (NaN when the target is constant)."""
    var = target.var()
    return float("nan") if var == 0 else float(1 - (target - pred).var() / var)


def actor_losses(agent, mb, data, clip: float, ent_coef: float, diag: bool = True):
    """Actor part of :func:`minibatch_losses`: ``(pg − ent_coef·entropy, diagnostics)`` with the
    diagnostics row ``[4]`` or ``[6]`` (no value loss); with ``diag=False`` the second item is
    the tuple of inputs of :func:`actor_diagnostics` instead (to compute it elsewhere)."""
    obs = data["obs"][mb]
    dist = agent.dist(obs)
    logp = dist.log_prob(data["actions"][mb]).sum(-1)
    log_ratio = logp - data["logp"][mb]
    ratio = log_ratio.exp()
    entropy = dist.entropy().sum(-1).mean()
    a = data["advantages"][mb]
    pg = torch.max(-a * ratio, -a * ratio.clamp(1 - clip, 1 + clip)).mean()
    terms = (ratio, log_ratio, entropy, pg, dist.loc, dist.scale)
    loss = pg - ent_coef * entropy
    if not diag:
        return loss, terms
    return loss, actor_diagnostics(mb, data, clip, *terms)


@torch.no_grad()
def actor_diagnostics(mb, data, clip, ratio, log_ratio, entropy, pg, loc, scale) -> torch.Tensor:
    """Approx-KL, clip fraction, entropy, policy loss (+ closed-form KL and active clip fraction
    when ``data`` holds the rollout's ``mean``/``std``) of one minibatch → float32 ``[4]`` or
    ``[6]``."""
    row = [
        ((ratio - 1) - log_ratio).mean(),
        ((ratio - 1).abs() > clip).float().mean(),
        entropy.detach(),
        pg.detach(),
    ]
    if "mean" in data and "std" in data:
        a = data["advantages"][mb]
        m0, s0 = data["mean"][mb], data["std"][mb]
        kl = torch.log(scale / s0) + (s0**2 + (m0 - loc) ** 2) / (2 * scale**2) - 0.5
        active = ((ratio > 1 + clip) & (a > 0)) | ((ratio < 1 - clip) & (a < 0))
        row += [kl.sum(-1).mean(), active.float().mean()]
    return torch.stack(row)


def critic_loss(agent, mb, data) -> torch.Tensor:
    """Value loss ½·mean (V(s) − R)² on the minibatch ``mb`` (scalar)."""
    return 0.5 * (agent.value(data["obs"][mb]) - data["returns"][mb]).pow(2).mean()


def _join_row(row_pi: torch.Tensor, v_loss: torch.Tensor) -> torch.Tensor:
    return torch.cat([row_pi[:4], v_loss.detach()[None], row_pi[4:]])


def minibatch_losses(agent, mb, data, clip: float, ent_coef: float):
    """Forward part of :func:`minibatch_step` on the minibatch ``mb`` (``int64 [M]``): returns
    ``(loss, diagnostics [5] or [7])``; the loss is what :func:`minibatch_step` back-propagates.
    No host sync and no Python state, so it can be compiled (``torch.compile``) as one piece."""
    loss_pi, row_pi = actor_losses(agent, mb, data, clip, ent_coef)
    v_loss = critic_loss(agent, mb, data)
    return loss_pi + v_loss, _join_row(row_pi, v_loss)


def minibatch_step(
    agent, opt_pi, opt_v, pi_params, v_params, mb, data, cfg, losses=minibatch_losses, split=None
) -> torch.Tensor:
    """One clipped-surrogate PPO step on the minibatch ``mb`` (``int64 [M]`` indices into the
    flat batch ``data``): loss, backward, gradient-norm clipping, both Adam steps.

    Returns the diagnostics row (float32 ``[5]`` or ``[7]`` on the device): approx-KL, clip
    fraction, entropy, policy loss, value loss (+ closed-form KL and active clip fraction when
    ``data`` holds ``mean``/``std``), all on the minibatch just before its optimiser step.
    Gradients are expected to be cleared (``None``) on entry and are left in place; no host sync,
    so the same call can be captured in a CUDA graph (:class:`GraphedPPOStep`). ``losses``: the
    forward part (:func:`minibatch_losses`, or a compiled version of it).

    ``split`` = ``(actor_fn, critic_fn, stream, diag_stream)`` (CUDA): the critic's loss,
    backward, clipping and Adam step run on ``stream`` and the actor's diagnostics on
    ``diag_stream``, while the actor's loss, backward, clipping and Adam step run on the current
    stream. Actor and critic share no parameters, so every gradient and update is the one of the
    summed loss. (Tensors shared between streams stay referenced here until the join.)
    """
    if split is not None:
        actor_fn, critic_fn, side, diag_s = split
        main = torch.cuda.current_stream()
        side.wait_stream(main)
        with torch.cuda.stream(side):
            v_loss = critic_fn(agent, mb, data)
            v_loss.backward()
            nn.utils.clip_grad_norm_(v_params, cfg.max_grad_norm)
            opt_v.step()
        loss_pi, terms = actor_fn(agent, mb, data, cfg.clip, cfg.ent_coef, False)
        diag_s.wait_stream(main)
        with torch.cuda.stream(diag_s):
            row_pi = actor_diagnostics(mb, data, cfg.clip, *terms)
        loss_pi.backward()
        nn.utils.clip_grad_norm_(pi_params, cfg.max_grad_norm)
        opt_pi.step()
        main.wait_stream(side)
        main.wait_stream(diag_s)
        row = _join_row(row_pi, v_loss)
        del terms
        return row
    loss, row = losses(agent, mb, data, cfg.clip, cfg.ent_coef)
    loss.backward()
    nn.utils.clip_grad_norm_(pi_params, cfg.max_grad_norm)
    nn.utils.clip_grad_norm_(v_params, cfg.max_grad_norm)
    opt_pi.step()
    opt_v.step()
    return row


def update_divergence(
    agent, batch: dict[str, torch.Tensor], cfg: PPOConfig, chunk: int = 2048
) -> dict[str, float]:
    """How far one whole update moved the policy: π_old (the rollout's ``mean``/``std`` ``[N,
    nu]``) against the current weights, on every sample of the batch (no gradients; ``chunk``
    samples per forward).

    ``kl_update`` = closed-form Gaussian KL(π_old ‖ π_new) summed over action dimensions,
    ``approx_kl_update`` = mean of the sample estimator (r − 1) − log r, ``clip_frac_update`` =
    share of samples with |r − 1| > clip, all means over the batch. Unlike the per-minibatch
    diagnostics of :func:`ppo_update` (values just before each optimiser step, averaged over the
    80 steps, so they include the early, near-zero steps of every epoch), these are the size of
    the step from one policy to the next: the "KL per update" of PPO analyses (Schulman et al.
    2017, §4 adaptive-KL; Snowflake's Fig. on policy divergence, as we read it).
    """
    n = batch["obs"].shape[0]
    sums = []  # float64 sums per chunk, kept on the device: one host sync at the end
    with torch.no_grad():
        for s in range(0, n, chunk):
            sl = slice(s, s + chunk)
            d = agent.dist(batch["obs"][sl])
            m0, s0 = batch["mean"][sl], batch["std"][sl]
            k = torch.log(d.scale / s0) + (s0**2 + (m0 - d.loc) ** 2) / (2 * d.scale**2) - 0.5
            log_r = d.log_prob(batch["actions"][sl]).sum(-1) - batch["logp"][sl]
            r = log_r.exp()
            sums.append(
                torch.stack(
                    [
                        k.sum(-1).double().sum(),
                        ((r - 1) - log_r).double().sum(),
                        ((r - 1).abs() > cfg.clip).double().sum(),
                    ]
                )
            )
    kl, akl, clip = torch.stack(sums).sum(0).cpu().tolist()
    return {"kl_update": kl / n, "approx_kl_update": akl / n, "clip_frac_update": clip / n}


def ppo_update(
    agent,
    opt_pi,
    opt_v,
    batch: dict[str, torch.Tensor],
    cfg: PPOConfig,
    graphed=None,
    timings: dict[str, float] | None = None,
) -> dict[str, float]:
    """Run ``cfg.epochs`` epochs of clipped-surrogate PPO on one rollout ``batch`` (flattened ``[N,
    …]``).

    Returns diagnostics, each the mean over all minibatches of all epochs, computed on the
    minibatch just before its optimiser step (as cleanrl does): ``approx_kl`` (the sample
    estimator (r − 1) − log r of KL(π_old ‖ π)), ``clip_frac`` (share of samples with
    |r − 1| > clip), ``clip_frac_first`` (the very first minibatch, 0 by construction), entropy,
    losses, explained variance and the L2 norm of the parameter change per freezing group
    (``update_norm/<group>``). When the batch also holds the rollout policy's ``mean`` ``[N, nu]``
    and ``std`` ``[N, nu]``, two diagnostics as Snowflake's code defines them are added:
    ``kl_exact`` (closed-form Gaussian KL(π_old ‖ π) summed over action dimensions) and
    ``clip_frac_active`` (share of samples whose clipping zeroes the gradient: r > 1 + clip
    with A > 0, or r < 1 − clip with A < 0), and the size of the whole update from
    :func:`update_divergence` (``kl_update``, ``approx_kl_update``, ``clip_frac_update``).

    ``graphed``: a :class:`GraphedPPOStep` built for these optimisers and this batch layout; each
    minibatch step is then one CUDA-graph replay instead of a few hundred kernel launches (same
    minibatches, same arithmetic up to float rounding).

    ``timings``: if given, receives seconds spent in ``update_prep`` (advantage normalisation,
    parameter snapshot, graph buffer load), ``update_steps`` (the minibatch steps as issued from
    Python; on a GPU they run asynchronously) and ``update_diag`` (the one host sync that fetches
    the diagnostics, i.e. waiting for the queued steps, plus explained variance and update norms).
    """
    clock = time.perf_counter
    c0 = clock()
    data = dict(batch)
    val, ret = batch["values"], batch["returns"]
    if cfg.norm_adv:
        adv = batch["advantages"]
        data["advantages"] = (adv - adv.mean()) / (adv.std() + 1e-8)
    pi_params = [p for g in opt_pi.param_groups for p in g["params"]]
    v_params = [p for g in opt_v.param_groups for p in g["params"]]
    before = {n: p.detach().clone() for n, p in agent.named_parameters()}
    stats: list[torch.Tensor] = []
    exact = "mean" in batch and "std" in batch
    n = batch["obs"].shape[0]
    if graphed is not None:
        graphed.load(data)
    c1 = clock()
    for _ in range(cfg.epochs):
        perm = torch.randperm(n, device=batch["obs"].device)
        for s in range(0, n, cfg.minibatch_size):
            mb = perm[s : s + cfg.minibatch_size]
            if graphed is not None:
                stats.append(graphed.replay(mb))
                continue
            opt_pi.zero_grad(set_to_none=True)
            opt_v.zero_grad(set_to_none=True)
            # kept on the device: one host sync per update, not per step
            stats.append(minibatch_step(agent, opt_pi, opt_v, pi_params, v_params, mb, data, cfg))
    c2 = clock()
    # float32 per minibatch, averaged in float64 (as Python floats would be)
    cols = torch.stack(stats).cpu().double().numpy().T
    kls, fracs, ents, pls, vls = cols[:5]
    out = {
        "approx_kl": float(np.mean(kls)),
        "clip_frac": float(np.mean(fracs)),
        "clip_frac_first": float(fracs[0]),
        "entropy": float(np.mean(ents)),
        "policy_loss": float(np.mean(pls)),
        "value_loss": float(np.mean(vls)),
        "explained_var": explained_variance(val, ret),
    }
    if exact:
        out["kl_exact"], out["clip_frac_active"] = float(np.mean(cols[5])), float(np.mean(cols[6]))
        out.update(update_divergence(agent, batch, cfg))
    norms: dict[str, float] = {}
    with torch.no_grad():  # squared change per tensor, fetched in one host sync
        named = list(agent.named_parameters())
        sq = torch.stack([(p - before[name]).pow(2).sum() for name, p in named]).double().cpu()
        for (name, _), v in zip(named, sq.tolist()):
            g = agent.param_group(name)
            norms[g] = norms.get(g, 0.0) + v
    out.update({f"update_norm/{g}": v**0.5 for g, v in sorted(norms.items())})
    if timings is not None:
        timings.update(update_prep=c1 - c0, update_steps=c2 - c1, update_diag=clock() - c2)
    return out
