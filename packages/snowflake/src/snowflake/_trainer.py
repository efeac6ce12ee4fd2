"""PPO training loop: vector-env rollouts, CSV/TensorBoard logging, checkpoints, exact resume."""

from __future__ import annotations

import copy
import csv
import json
import math
import os
import time
import warnings
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
import torch

from ._freeze import FreezeSpec
from ._graph import morphology_from_env
from ._graphs import GraphedPolicy, GraphedPPOStep, capturable_adam, set_lr
from ._pipeline import STATEFUL, EnvGroups
from ._policies import DECODER_GAIN, ActorCritic
from ._ppo import PPOConfig, compute_gae, ppo_update
from ._registry import make_env
from ._vector import make_vector_env

CKPT_VERSION = 1
_LOG_SQRT_2PI = math.log(math.sqrt(2 * math.pi))  # as in torch's Normal.log_prob


def build_agent(
    env_name: str,
    policy: str,
    seed: int = 0,
    init_log_std: float = 0.0,
    decoder_gain: float = DECODER_GAIN,
) -> tuple[ActorCritic, FreezeSpec, Any]:
    """Build the :class:`ActorCritic` for ``env_name`` with the ``policy`` preset (seeded init)."""
    spec = FreezeSpec.preset(policy)
    probe = make_env(env_name, disable_env_checker=True)
    morph = morphology_from_env(probe)
    probe.close()
    torch.manual_seed(seed)
    agent = ActorCritic(
        morph, actor=spec.actor, init_log_std=init_log_std, decoder_gain=decoder_gain
    )
    return agent, spec, morph


class Trainer:
    """PPO on a vectorised MuJoCo env with a (frozen-group) GNN or MLP policy.

    Args:
        cfg: :class:`PPOConfig`.
        out: run directory (``config.json``, ``metrics.csv``, ``ckpt_*.pt``, ``final.pt``) or
        ``None``.
    """

    def __init__(self, cfg: PPOConfig, out: str | Path | None = None) -> None:
        self.cfg = cfg
        self.out = Path(out) if out is not None else None
        self.device = torch.device(cfg.device)
        self.agent, self.freeze, self.morph = build_agent(
            cfg.env, cfg.policy, cfg.seed, cfg.init_log_std, cfg.decoder_gain
        )
        self.agent.to(self.device)
        self.agent.bind(self.morph)
        self.frozen = self.freeze.apply(self.agent)
        pi = [
            p
            for n, p in self.agent.named_parameters()
            if p.requires_grad and not n.startswith("critic")
        ]
        v = [
            p
            for n, p in self.agent.named_parameters()
            if p.requires_grad and n.startswith("critic")
        ]
        # On CUDA the minibatch step is captured as a graph (cfg.cuda_graph): Adam must be
        # capturable there, with its learning rate as a device tensor.
        self.use_graph = cfg.cuda_graph and self.device.type == "cuda"
        self.graph_error = self.policy_graph_error = self.compile_error = ""
        self._graphed: GraphedPPOStep | None = None
        self._graphed_policy: GraphedPolicy | None = None
        if self.use_graph:
            self.opt_pi = capturable_adam(pi, cfg, self.device)
            self.opt_v = capturable_adam(v, cfg, self.device)
        else:
            self.opt_pi = torch.optim.Adam(pi, lr=cfg.lr, eps=cfg.adam_eps)
            self.opt_v = torch.optim.Adam(v, lr=cfg.lr, eps=cfg.adam_eps)
        # Rollout copy of the model (cfg.rollout_device); the model itself when not set.
        self.roll_device = torch.device(cfg.rollout_device or cfg.device)
        self.roll_agent = self.agent
        if cfg.rollout_device:
            self.roll_agent = copy.deepcopy(self.agent).to(self.roll_device)
            # Its normaliser stays on the CPU, where the observations arrive: one update and one
            # normalisation per vector step in numpy instead of ~35 small kernels on a GPU.
            self.roll_agent.normalizer.to("cpu")
            self.roll_agent.bind(self.morph)
            self.roll_agent.requires_grad_(False)
        if cfg.pipeline > 1 and cfg.vector == "process":  # worker-process groups
            from ._procvec import ProcessVectorEnv

            self.envs = ProcessVectorEnv(
                cfg.env, cfg.num_envs, cfg.num_threads or None, groups=cfg.pipeline
            )
        elif cfg.pipeline > 1:  # env groups stepped in turn (policy overlaps physics)
            self.envs = EnvGroups(cfg.env, cfg.num_envs, cfg.pipeline, cfg.num_threads or None)
        else:
            self.envs = make_vector_env(cfg.env, cfg.num_envs, cfg.vector, cfg.num_threads or None)
        self.num_updates = cfg.total_steps // cfg.rollout_steps
        self.update_idx = 0
        self.global_step = 0
        self.episodes: list[tuple[float, int, int]] = []  # (return, length, global_step)
        self.ep_ret = np.zeros(cfg.num_envs)
        self.ep_len = np.zeros(cfg.num_envs, np.int64)
        # Reward scaling (cfg.norm_reward): running mean/var/count of the discounted return.
        self.ret_rms = np.array([0.0, 1.0, 1e-4])
        self.disc_ret = np.zeros(cfg.num_envs)
        self.next_obs, _ = self.envs.reset(seed=cfg.seed)
        self.envs.action_space.seed(cfg.seed)
        self.wall0 = 0.0
        self._env_s = 0.0
        self.phase_s: dict[str, float] = {}  # seconds per phase of the last iteration (step())
        self._columns: list[str] | None = None
        self._tb = None
        # worker processes: step t's bookkeeping while step t + 1's physics runs (benchmarks
        # turn it off to measure what it saves; results are the same either way)
        self._overlap = True
        # a captured GPU rollout policy: copies through pinned buffers (GraphedPolicy.to_host;
        # 226 instead of 285 µs per call on the H200 box, same numbers)
        self._pinned_io = True

    # ---------------------------------------------------------------- rollout
    def collect(self) -> dict[str, torch.Tensor]:
        """Collect ``rollout_steps`` transitions; flattened tensors incl. advantages/returns.

        One batched policy + critic call per vector step under ``torch.inference_mode``; rewards
        and done flags stay in numpy until the rollout ends (no per-step host↔tensor churn).
        On CPU the rollout runs torch with one intra-op thread: the small per-step batches gain
        little from more, and idle OpenMP workers spinning next to the physics threads slowed
        stepping by an order of magnitude when they shared cores.
        """
        if self.roll_agent.normalizer.mean.device.type != "cpu":  # no torch CPU work
            return self._collect()
        prev = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self._collect()
        finally:
            torch.set_num_threads(prev)

    def _collect(self) -> dict[str, torch.Tensor]:
        cfg, mdev = self.cfg, self.roll_device
        agent = self.roll_agent
        ndev = agent.normalizer.mean.device  # the CPU for a separate rollout copy
        # A separate rollout copy on a GPU (normaliser on the CPU): only the model's forward runs
        # there (one graph replay, one packed copy back); sampling, log-probabilities and the
        # rollout buffers stay on the CPU, as in the CPU rollout (no per-step kernel launches
        # for them, no per-step GPU stores). Otherwise everything runs on the rollout device.
        remote = mdev.type != "cpu" and ndev.type == "cpu"
        dev = ndev if remote else mdev  # where the rollout's tensors live
        t_len, k = cfg.rollout_steps // cfg.num_envs, cfg.num_envs
        d, a = self.morph.obs_dim, len(self.morph.act_node)
        obs_b = torch.zeros(t_len, k, d, device=dev)
        act_b = torch.zeros(t_len, k, a, device=dev)
        mean_b, std_b = torch.zeros(t_len, k, a, device=dev), torch.zeros(t_len, k, a, device=dev)
        logp_b, val_b, nval_b = (torch.zeros(t_len, k, device=dev) for _ in range(3))
        rew_b = np.zeros((t_len, k))
        term_b, trunc_b = np.zeros((t_len, k), bool), np.zeros((t_len, k), bool)
        low, high = self.envs.single_action_space.low, self.envs.single_action_space.high
        groups = self.envs.slices if cfg.pipeline > 1 else [slice(0, k)]
        graphed = self._policy_graph(k // len(groups))
        fast = agent.rollout_fn() if mdev.type == "cpu" else None

        def value(obs: torch.Tensor) -> torch.Tensor:
            return agent.value(obs.to(mdev)).to(dev)

        if remote:

            def fast(obs: torch.Tensor):  # the CPU path's variant: model on the GPU
                if graphed is not None and self._pinned_io:  # pinned, asynchronous copies
                    out = graphed.to_host(obs)
                    return out[:, :a], out[:, a : 2 * a].exp(), out[:, 2 * a]
                o = obs.to(mdev)
                if graphed is not None:
                    mean, log_std, val = graphed(o)
                else:
                    mean, log_std = agent.actor(o)
                    val = agent.value(o)
                out = torch.cat([mean, log_std, val[:, None]], 1).cpu()
                return out[:, :a], out[:, a : 2 * a].exp(), out[:, 2 * a]

        def normalize(raw: np.ndarray) -> torch.Tensor:
            return agent.normalize(torch.as_tensor(raw, device=ndev)).to(dev)

        # Seconds per part of the rollout (perf_counter, ≈ 0.1 µs a call; on a CUDA rollout device
        # "policy" only launches the kernels and the wait for them lands in "action_out").
        ph = dict.fromkeys(("normalize", "policy", "action_out", "env", "done", "bookkeeping"), 0.0)
        # V of the true successor of steps that ended an episode (final observation): one critic
        # call for the whole rollout instead of one per vector step with a finished env.
        fin_obs: list[torch.Tensor] = []
        fin_at: list[np.ndarray] = []  # flat [t * k + env] positions in nval_b
        clock = time.perf_counter

        # Work that does not decide the next actions (log-probabilities, buffer stores, reward
        # scaling, episode bookkeeping) can wait: with worker processes it runs while they step.
        later: list = []

        def act(t: int, sl: slice) -> np.ndarray:
            """Policy step for envs ``sl`` at time ``t``: return env actions; storing obs/action/…
            goes to ``later``."""
            c0 = clock()
            if ndev.type == "cpu":  # numpy: update + normalise, bit-equal to the torch path
                obs = agent.normalizer.update_normalize_np(self.next_obs[sl]).to(dev)
            else:
                raw = torch.as_tensor(self.next_obs[sl], device=ndev)
                agent.normalizer.update(raw)
                obs = agent.normalize(raw).to(dev)
            c1 = clock()
            if fast is not None:  # CPU: same maths as below, without module/distribution layers
                mean, std, value = fast(obs)
                eps = torch.randn(mean.shape, dtype=mean.dtype)  # contiguous, as Normal.sample
                action = mean + std * eps  # = Normal(mean, std).sample(), bit for bit

                def store() -> None:
                    logp = -((action - mean) ** 2) / (2 * std**2) - std.log() - _LOG_SQRT_2PI
                    obs_b[t, sl], act_b[t, sl], mean_b[t, sl], std_b[t, sl] = obs, action, mean, std
                    logp_b[t, sl], val_b[t, sl] = logp.sum(-1), value
            else:
                if graphed is None:
                    dist, value = agent.dist(obs), agent.value(obs)
                else:  # same maths, one graph replay instead of ~100 (GNN) kernel launches
                    mean, log_std, value = graphed(obs)
                    dist = torch.distributions.Normal(mean, log_std.exp(), validate_args=False)
                action = dist.sample()

                def store() -> None:
                    obs_b[t, sl], act_b[t, sl] = obs, action
                    mean_b[t, sl], std_b[t, sl] = dist.loc, dist.scale
                    logp_b[t, sl] = dist.log_prob(action).sum(-1)
                    val_b[t, sl] = value

            c2 = clock()
            env_act = np.clip(action.cpu().numpy().astype(np.float64), low, high)
            ph["normalize"] += c1 - c0
            ph["policy"] += c2 - c1
            ph["action_out"] += clock() - c2
            later.append(store)
            return env_act

        def observe(t: int, sl: slice, result) -> None:
            """The part of a step result the next actions need: the new observations, and the
            final observations of finished episodes normalised with the statistics of now
            (before the next update of the normaliser)."""
            c4 = clock()
            obs, _, term, trunc, info = result
            if sl.start == 0 and sl.stop == k:
                self.next_obs = obs
            else:
                self.next_obs[sl] = obs
            done = term | trunc
            if done.any():  # final observations, normalised now; their values after the loop
                idx = np.nonzero(done)[0]
                fin_obs.append(normalize(np.stack([info["final_obs"][i] for i in idx])))
                fin_at.append(t * k + sl.start + idx)
            ph["done"] += clock() - c4
            later.append(lambda: record(t, sl, result))

        def record(t: int, sl: slice, result) -> None:
            """Store the step result of envs ``sl`` at time ``t``; episode bookkeeping."""
            c4 = clock()
            _, rew, term, trunc, _ = result
            done = term | trunc
            rew_b[t, sl] = self._scale_reward(rew, done, sl)
            term_b[t, sl], trunc_b[t, sl] = term, trunc
            c5 = clock()
            self.ep_ret[sl] += rew
            self.ep_len[sl] += 1
            self.global_step += sl.stop - sl.start
            for i in np.nonzero(done)[0] + sl.start:
                self.episodes.append((float(self.ep_ret[i]), int(self.ep_len[i]), self.global_step))
                self.ep_ret[i], self.ep_len[i] = 0.0, 0
            ph["done"] += c5 - c4
            ph["bookkeeping"] += clock() - c5

        def catch_up() -> None:
            """Run the deferred work, in order."""
            for fn in later:
                fn()
            later.clear()

        # Worker processes (one group): send the actions of step t + 1 first, then do step t's
        # bookkeeping and step t + 1's stores while the workers run the physics. Same values in
        # the same order as stepping synchronously (a test compares it with the threaded env).
        from ._procvec import ProcessVectorEnv

        overlap = self._overlap and len(groups) == 1 and isinstance(self.envs, ProcessVectorEnv)

        with torch.inference_mode():
            if overlap:
                sl = groups[0]
                self.envs.step_async(0, act(0, sl))
                catch_up()
                for t in range(t_len):
                    c3 = clock()
                    result = self.envs.step_wait(0)
                    ph["env"] += clock() - c3
                    observe(t, sl, result)
                    if t + 1 < t_len:
                        # the deferred work of step t after step t + 1's actions are out
                        deferred, later[:] = list(later), []
                        self.envs.step_async(0, act(t + 1, sl))
                        later[:0] = deferred
                    catch_up()
            elif len(groups) == 1:
                for t in range(t_len):
                    env_act = act(t, groups[0])
                    catch_up()
                    c3 = clock()
                    result = self.envs.step(env_act)
                    ph["env"] += clock() - c3
                    observe(t, groups[0], result)
                    catch_up()
            else:  # group g's policy call runs while the other groups' physics runs
                self.next_obs = np.array(self.next_obs, copy=True)
                for g, sl in enumerate(groups):
                    self.envs.step_async(g, act(0, sl))
                    catch_up()  # (a graphed policy's outputs are overwritten by the next call)
                for t in range(t_len):
                    for g, sl in enumerate(groups):
                        c3 = clock()
                        result = self.envs.step_wait(g)
                        ph["env"] += clock() - c3
                        observe(t, sl, result)
                        if t + 1 < t_len:
                            self.envs.step_async(g, act(t + 1, sl))
                        catch_up()
            c0 = clock()
            if fin_obs:
                pos = torch.as_tensor(np.concatenate(fin_at), device=dev)
                nval_b.view(-1)[pos] = value(torch.cat(fin_obs))
            ph["done"] += clock() - c0
            c0 = clock()
            # Elsewhere the successor is the next stored observation: reuse its value.
            last = value(normalize(self.next_obs))
        # GAE on the CPU: its loop over the T vector steps is ~6 tiny operators per step, which
        # on a GPU rollout device would be ~800 kernel launches; the float32 arithmetic is the
        # same elementwise operations either way.
        rew_t = torch.as_tensor(rew_b, dtype=torch.float32)
        term_t = torch.as_tensor(term_b, dtype=torch.float32)
        trunc_t = torch.as_tensor(trunc_b, dtype=torch.float32)
        val_c = val_b.cpu()
        succ_val = torch.cat([val_c[1:], last.cpu()[None]])
        nval_c = torch.where((term_t + trunc_t) > 0, nval_b.cpu(), succ_val)
        adv, ret = compute_gae(rew_t, val_c, nval_c, term_t, trunc_t, cfg.gamma, cfg.lam)
        adv, ret = adv.to(dev), ret.to(dev)
        ph["gae"] = clock() - c0
        self._env_s += ph["env"]
        self.phase_s.update(ph)
        flat = lambda x: x.reshape(-1, *x.shape[2:])  # noqa: E731
        return {
            "obs": flat(obs_b),
            "actions": flat(act_b),
            "logp": flat(logp_b),
            "mean": flat(mean_b),
            "std": flat(std_b),
            "values": flat(val_b),
            "advantages": flat(adv),
            "returns": flat(ret),
        }

    def _scale_reward(
        self, rew: np.ndarray, done: np.ndarray, sl: slice | None = None
    ) -> np.ndarray:
        """``rew / σ(discounted return)`` when ``cfg.norm_reward`` (running statistics over all
        envs, Chan et al. merge), else ``rew``; the discounted return restarts after ``done``.
        ``rew``/``done`` are of the envs ``sl`` (default: all)."""
        if not self.cfg.norm_reward:
            return rew
        sl = slice(None) if sl is None else sl
        disc = self.disc_ret[sl] * self.cfg.gamma + rew
        mean, var, count = self.ret_rms
        b_mean, b_var, b = disc.mean(), disc.var(), disc.size
        delta, tot = b_mean - mean, count + b
        m2 = var * count + b_var * b + delta**2 * count * b / tot
        self.ret_rms = np.array([mean + delta * b / tot, m2 / tot, tot])
        disc[done] = 0.0
        self.disc_ret[sl] = disc
        return rew / np.sqrt(self.ret_rms[1] + 1e-8)

    # ---------------------------------------------------------------- update
    def step(self) -> dict[str, float]:
        """One PPO iteration (rollout + update); returns the metrics row."""
        cfg = self.cfg
        frac = 1.0 - self.update_idx / self.num_updates if cfg.anneal_lr else 1.0
        for opt in (self.opt_pi, self.opt_v):
            set_lr(opt, frac * cfg.lr)
        t0 = time.perf_counter()
        self._env_s = 0.0  # time inside envs.step during this rollout
        self.phase_s = {}
        batch = self.collect()
        tc = time.perf_counter()
        if self.roll_agent is not self.agent:  # rollout statistics → model, batch → its device
            self.agent.normalizer.load_state_dict(self.roll_agent.normalizer.state_dict())
            batch = {k: v.to(self.device) for k, v in batch.items()}
        t1 = time.perf_counter()
        self.phase_s["to_device"] = t1 - tc
        diag = ppo_update(
            self.agent, self.opt_pi, self.opt_v, batch, cfg, self._graph_for(batch), self.phase_s
        )
        ts = time.perf_counter()
        self._sync_rollout_agent()
        t2 = time.perf_counter()
        self.phase_s["sync_rollout_copy"] = t2 - ts
        self.update_idx += 1
        recent = self.episodes[-20:]
        rets = np.array([e[0] for e in recent]) if recent else np.array([np.nan])
        row = {
            "update": self.update_idx,
            "global_step": self.global_step,
            "wall_time": time.perf_counter() - self.wall0,
            "sps": cfg.rollout_steps / (t2 - t0),
            "rollout_s": t1 - t0,
            "rollout_env_s": self._env_s,
            "update_s": t2 - t1,
            **{f"time/{k}": v for k, v in self.phase_s.items()},
            "ep_return_mean": float(np.mean(rets)),
            "ep_return_std": float(np.std(rets)),
            "ep_return_min": float(np.min(rets)),
            "ep_return_max": float(np.max(rets)),
            "ep_len_mean": float(np.mean([e[1] for e in recent])) if recent else float("nan"),
            "episodes": len(self.episodes),
            "lr": frac * cfg.lr,
            **diag,
        }
        return row

    def _policy_graph(self, batch: int) -> GraphedPolicy | None:
        """Captured rollout inference on a CUDA rollout device (``cfg.cuda_graph``), else
        ``None``; a failed capture falls back to eager calls (``policy_graph_error``)."""
        if not (self.cfg.cuda_graph and self.roll_device.type == "cuda") or self.policy_graph_error:
            return None
        if self._graphed_policy is None:
            self._graphed_policy, self.policy_graph_error = _try_capture(
                lambda: GraphedPolicy(
                    self.roll_agent, batch, self.cfg.compile and self.roll_agent is not self.agent
                ),
                "the rollout policy",
            )
        return self._graphed_policy

    def _graph_for(self, batch: dict[str, torch.Tensor]) -> GraphedPPOStep | None:
        """The captured minibatch step (built on the first update), or ``None`` for eager
        steps: not on CUDA, ``cfg.cuda_graph`` off, or capture failed (``graph_error``)."""
        if not self.use_graph or self.graph_error:
            return None
        if self._graphed is None:  # on failure eager steps still work with capturable Adam
            cfg = self.cfg

            def build(compile_losses: bool) -> GraphedPPOStep:
                return GraphedPPOStep(
                    self.agent,
                    self.opt_pi,
                    self.opt_v,
                    cfg,
                    batch,
                    compile_losses,
                    cfg.split_streams,
                )

            self._graphed, self.graph_error = _try_capture(
                lambda: build(cfg.compile), "the PPO step"
            )
            if self._graphed is None and cfg.compile:  # retry without torch.compile
                self.compile_error = self.graph_error
                self._graphed, self.graph_error = _try_capture(lambda: build(False), "the PPO step")
        return self._graphed

    def _sync_rollout_agent(self) -> None:
        """Copy the model's weights and normaliser statistics to the rollout copy (if any)."""
        if self.roll_agent is not self.agent:
            self.roll_agent.load_state_dict(self.agent.state_dict())

    # ---------------------------------------------------------------- logging
    def _log(self, row: dict[str, float]) -> None:
        if self.out is None:
            return
        path = self.out / "metrics.csv"
        if self._columns is None:
            self._columns = list(row)
            if not path.exists():
                with open(path, "w", newline="") as f:
                    csv.writer(f).writerow(self._columns)
        with open(path, "a", newline="") as f:
            csv.writer(f).writerow([row.get(c, "") for c in self._columns])
            f.flush()
            os.fsync(f.fileno())
        if self._tb is not None:
            for k, v in row.items():
                self._tb.add_scalar(k, v, row["global_step"])

    def _write_config(self) -> None:
        assert self.out is not None
        self.out.mkdir(parents=True, exist_ok=True)
        cfg = {
            **self.cfg.to_dict(),
            "freeze": {"actor": self.freeze.actor, "frozen": list(self.freeze.frozen)},
            "frozen_params": self.frozen,
            "num_params": sum(p.numel() for p in self.agent.actor.parameters()),
            "trainable_actor_params": sum(
                p.numel() for p in self.agent.actor.parameters() if p.requires_grad
            ),
            "versions": {
                "torch": torch.__version__,
                "mujoco": mujoco.__version__,
                "gymnasium": gym.__version__,
            },
            "node_types": list(self.morph.type_names),
        }
        (self.out / "config.json").write_text(json.dumps(cfg, indent=2))
        if self.cfg.tensorboard and self._tb is None:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError as e:  # pragma: no cover - optional extra
                raise ImportError(
                    "TensorBoard logging needs `pip install snowflake[tensorboard]`."
                ) from e
            self._tb = SummaryWriter(str(self.out / "tb"))

    # ---------------------------------------------------------------- state
    def state_dict(self) -> dict[str, Any]:
        """All state to continue identically: model (+ normaliser), optimisers, RNGs, envs."""
        env_state = self.envs.get_state() if isinstance(self.envs, STATEFUL) else None
        return {
            "version": CKPT_VERSION,
            "config": self.cfg.to_dict(),
            "policy": self.cfg.policy,
            "actor": self.freeze.actor,
            "node_types": list(self.morph.type_names),
            "agent": self.agent.state_dict(),
            "opt_pi": self.opt_pi.state_dict(),
            "opt_v": self.opt_v.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "update_idx": self.update_idx,
            "global_step": self.global_step,
            "episodes": list(self.episodes),
            "ep_ret": self.ep_ret.copy(),
            "ep_len": self.ep_len.copy(),
            "ret_rms": self.ret_rms.copy(),
            "disc_ret": self.disc_ret.copy(),
            "next_obs": np.array(self.next_obs, copy=True),
            "env_state": env_state,
        }

    def load_state_dict(self, ckpt: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output; policy and env must match this trainer's config."""
        if ckpt.get("policy") != self.cfg.policy or ckpt["config"]["env"] != self.cfg.env:
            raise ValueError(
                f"checkpoint was trained with policy={ckpt.get('policy')!r} on "
                f"{ckpt['config']['env']!r}; "
                f"this run uses policy={self.cfg.policy!r} on {self.cfg.env!r}. "
                "Resume with the same "
                "--policy/--env, or start a new --out directory."
            )
        self.agent.load_state_dict(ckpt["agent"])
        self.opt_pi.load_state_dict(ckpt["opt_pi"])
        self.opt_v.load_state_dict(ckpt["opt_v"])
        torch.set_rng_state(ckpt["torch_rng"])
        self.update_idx, self.global_step = ckpt["update_idx"], ckpt["global_step"]
        self.episodes = list(ckpt["episodes"])
        self.ep_ret, self.ep_len = ckpt["ep_ret"].copy(), ckpt["ep_len"].copy()
        self.next_obs = ckpt["next_obs"].copy()
        self.ret_rms = np.array(ckpt.get("ret_rms", self.ret_rms), copy=True)
        self.disc_ret = np.array(ckpt.get("disc_ret", self.disc_ret), copy=True)
        if ckpt["env_state"] is not None and isinstance(self.envs, STATEFUL):
            self.envs.set_state(ckpt["env_state"])
        self._sync_rollout_agent()

    def save(self, path: str | Path) -> None:
        """Atomically write a checkpoint (``torch.save`` to a temp file, then rename)."""
        path = Path(path)
        tmp = path.with_suffix(".tmp")
        torch.save(self.state_dict(), tmp)
        os.replace(tmp, path)

    @classmethod
    def resume(cls, out: str | Path, **overrides: Any) -> Trainer:
        """Continue the run in ``out`` from ``ckpt_last.pt``; metrics rows after it are dropped and
        regenerated identically by the deterministic continuation."""
        out = Path(out)
        ckpt = torch.load(out / "ckpt_last.pt", weights_only=False)
        saved = {"norm_reward": False, **ckpt["config"]}  # runs saved before reward scaling
        cfg = PPOConfig(**{**saved, **overrides})
        tr = cls(cfg, out)
        tr.load_state_dict(ckpt)
        path = out / "metrics.csv"
        if path.exists():
            with open(path, newline="") as f:
                rows = list(csv.reader(f))
            keep = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) <= tr.update_idx]
            tmp = path.with_suffix(".tmp")
            with open(tmp, "w", newline="") as f:
                csv.writer(f).writerows(keep)
            os.replace(tmp, path)
            tr._columns = rows[0]
        return tr

    # ---------------------------------------------------------------- loop
    def train(
        self, progress: bool = True, max_updates: int | None = None
    ) -> list[dict[str, float]]:
        """Run until ``total_steps`` (or ``max_updates`` more updates); returns the metrics rows."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

        if self.out is not None:
            self._write_config()
        rows = []
        stop = (
            self.num_updates
            if max_updates is None
            else min(self.num_updates, self.update_idx + max_updates)
        )
        self.wall0 = time.perf_counter()
        cols = (
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.fields[info]}"),
            TimeRemainingColumn(),
        )
        with Progress(*cols, disable=not progress, transient=False) as bar:
            task = bar.add_task(
                f"{self.cfg.policy} {self.cfg.env}",
                total=self.num_updates,
                completed=self.update_idx,
                info="",
            )
            while self.update_idx < stop:
                row = self.step()
                rows.append(row)
                self._log(row)
                bar.update(
                    task,
                    completed=self.update_idx,
                    info=(
                        f"step {self.global_step:,} | {row['sps']:.0f} steps/s | return "
                        f"{row['ep_return_mean']:.1f} | kl {row['approx_kl']:.4f}"
                    ),
                )
                if self.out is not None and self.update_idx % self.cfg.checkpoint_every == 0:
                    self.save(self.out / "ckpt_last.pt")
        if self.out is not None:
            self.save(self.out / "ckpt_last.pt")
            if self.update_idx >= self.num_updates:
                self.save(self.out / "final.pt")
        return rows

    def close(self) -> None:
        self.envs.close()
        if self._tb is not None:
            self._tb.close()


def _try_capture(build, what: str):
    """``(build(), "")``, or ``(None, error text)`` with a warning when the CUDA-graph capture
    fails (the caller then runs eagerly). The error text is ``""`` exactly when ``build``
    succeeded, as ``Trainer.graph_error`` documents."""
    try:
        return build(), ""
    except Exception as e:
        warnings.warn(
            f"CUDA-graph capture of {what} failed, running eagerly: {e!r}",
            RuntimeWarning,
            stacklevel=3,
        )
        return None, repr(e)[:500]
