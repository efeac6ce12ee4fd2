"""CUDA-graph capture of the PPO minibatch step (static shapes: minibatch of ``cfg.minibatch_size``
out of ``cfg.rollout_steps`` transitions).

With Snowflake's defaults an update is 10 epochs x 8 minibatches of 256; each step launches a few
hundred small kernels (GNN: 4 message rounds over 5 node types, forward and backward, two clipped
Adam steps), so on a GPU the update is bound by launch latency and Python, not by arithmetic.
Capturing the step once and replaying it per minibatch removes both.
"""

from __future__ import annotations

import torch

from ._ppo import PPOConfig, actor_losses, critic_loss, minibatch_losses, minibatch_step

KEYS = ("obs", "actions", "logp", "advantages", "returns", "mean", "std")


def capturable_adam(
    params, cfg: PPOConfig, device: torch.device, fused: bool | None = None
) -> torch.optim.Adam:
    """Adam that can run inside a CUDA graph: ``capturable=True`` and the learning rate as a
    device tensor (set it with :func:`set_lr`; a float would be baked into the graph).

    ``fused`` (default: on CUDA): one fused kernel per step for all tensors instead of the
    multi-tensor (``foreach``) sequence of about a dozen kernels; same Adam update (Kingma & Ba
    2015, Alg. 1) up to float rounding."""
    lr = torch.tensor(cfg.lr, dtype=torch.float32, device=device)
    if fused is None:
        fused = torch.device(device).type == "cuda"
    return torch.optim.Adam(params, lr=lr, eps=cfg.adam_eps, capturable=True, fused=fused or None)


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    """Set every group's learning rate in place (tensor learning rates keep their storage)."""
    for g in opt.param_groups:
        if isinstance(g["lr"], torch.Tensor):
            g["lr"].fill_(lr)
        else:
            g["lr"] = lr


class GraphedPPOStep:
    """:func:`minibatch_step` captured as one CUDA graph over static batch buffers.

    Args:
        agent: the :class:`ActorCritic` on a CUDA device.
        opt_pi, opt_v: its optimisers, built with :func:`capturable_adam`.
        cfg: the run's :class:`PPOConfig` (minibatch size, clip, grad-norm, …).
        batch: one rollout batch (``[N, …]`` tensors) fixing the buffer shapes.

    Capture needs a few eager warm-up steps; they run on copies of nothing: the parameters and
    the optimiser state are saved before and written back (in place) afterwards, so building
    this object leaves the model exactly as it was.
    """

    def __init__(
        self,
        agent,
        opt_pi,
        opt_v,
        cfg: PPOConfig,
        batch: dict[str, torch.Tensor],
        compile_losses: bool = False,
        split_streams: bool = False,
    ):
        dev = batch["obs"].device
        if dev.type != "cuda":
            raise ValueError(f"CUDA-graph PPO steps need a CUDA batch, got device {dev}.")
        for o in (opt_pi, opt_v):
            if not all(g.get("capturable") for g in o.param_groups):
                raise ValueError("build the optimisers with capturable_adam() to graph them.")
        self.agent, self.opt_pi, self.opt_v, self.cfg = agent, opt_pi, opt_v, cfg
        self.data = {k: torch.empty_like(batch[k]) for k in KEYS if k in batch}
        for k, v in self.data.items():
            v.copy_(batch[k])
        self.idx = torch.arange(cfg.minibatch_size, device=dev)
        self.pi_params = [p for g in opt_pi.param_groups for p in g["params"]]
        self.v_params = [p for g in opt_v.param_groups for p in g["params"]]
        # compile_losses: the forward + loss (and so its backward) as torch.compile'd kernels
        # (fewer, fused launches inside the graph); compiled during the warm-up steps
        self.losses = minibatch_losses
        if compile_losses:
            self.losses = torch.compile(minibatch_losses, dynamic=False)
        # split_streams: the critic's half of the step and the actor's diagnostics on two more
        # streams (fork/join inside the graph), so their kernels run beside the actor's
        self.split = None
        if split_streams:
            fns = (actor_losses, critic_loss)
            if compile_losses:
                fns = tuple(torch.compile(f, dynamic=False) for f in fns)
            self.split = (*fns, torch.cuda.Stream(dev), torch.cuda.Stream(dev))
        self.graph = torch.cuda.CUDAGraph()
        self._capture(dev)

    def _body(self) -> torch.Tensor:
        return minibatch_step(
            self.agent,
            self.opt_pi,
            self.opt_v,
            self.pi_params,
            self.v_params,
            self.idx,
            self.data,
            self.cfg,
            self.losses,
            self.split,
        )

    def _zero_grad(self) -> None:
        self.opt_pi.zero_grad(set_to_none=True)
        self.opt_v.zero_grad(set_to_none=True)

    def _capture(self, dev: torch.device) -> None:
        params = list(self.agent.parameters())
        saved_p = [p.detach().clone() for p in params]
        opts = (self.opt_pi, self.opt_v)
        saved_s = [
            {p: {k: v.clone() for k, v in o.state[p].items()} for p in o.state} for o in opts
        ]
        try:
            side = torch.cuda.Stream(dev)
            side.wait_stream(torch.cuda.current_stream(dev))
            with torch.cuda.stream(side):  # warm-up (lazy inits, cuBLAS handles) off the capture
                for _ in range(3):
                    self._zero_grad()
                    self._body()
            torch.cuda.current_stream(dev).wait_stream(side)
            self._zero_grad()
            with torch.cuda.graph(self.graph):
                self.row = self._body()
        finally:  # also after a failed capture, so that eager steps start from the same state
            self._restore(params, saved_p, opts, saved_s)

    def _restore(self, params, saved_p, opts, saved_s) -> None:
        torch.cuda.synchronize()
        with torch.no_grad():  # undo the warm-up: parameters and Adam state as before
            for p, s in zip(params, saved_p):
                p.copy_(s)
            for o, saved in zip(opts, saved_s):
                for p, st in o.state.items():
                    for k, v in st.items():
                        if p in saved and k in saved[p]:
                            v.copy_(saved[p][k])
                        else:  # no state before the warm-up = fresh state (step 0, zero moments)
                            v.zero_()

    def load(self, data: dict[str, torch.Tensor]) -> None:
        """Copy this update's batch (advantages already normalised) into the static buffers."""
        for k, v in self.data.items():
            v.copy_(data[k])

    def replay(self, mb: torch.Tensor) -> torch.Tensor:
        """One minibatch step on rows ``mb`` (``int64 [minibatch_size]``); returns a copy of the
        diagnostics row."""
        self.idx.copy_(mb)
        self.graph.replay()
        return self.row.clone()


class GraphedPolicy:
    """Rollout inference for a fixed batch: actor mean and log-std and the critic's value of
    normalised observations ``float32 [B, D]``, captured as one CUDA graph.

    The graph reads the model's parameters in place, so optimiser steps and
    ``load_state_dict`` (which copies in place) are seen by later replays. Outputs are static
    buffers, overwritten by the next call: ``(mean [B, nu], log_std [B, nu], value [B])``.
    ``compile``: capture the ``torch.compile``'d forward (fused kernels); if compiling or its
    capture fails, the plain forward is captured instead (``compile_error`` says why).
    """

    def __init__(self, agent, batch: int, compile: bool = False) -> None:
        dev = next(agent.parameters()).device
        if dev.type != "cuda":
            raise ValueError(f"a CUDA-graph policy needs the model on CUDA, got device {dev}.")
        self.obs = torch.zeros(batch, agent.morph.obs_dim, device=dev)
        self.compile_error = ""

        def forward(obs: torch.Tensor):
            mean, log_std = agent.actor(obs)
            return mean, log_std, agent.value(obs)

        if compile:
            try:
                self._capture(torch.compile(forward, dynamic=False), dev)
                return
            except Exception as e:  # plain forward below
                self.compile_error = repr(e)[:500]
        self._capture(forward, dev)

    def _capture(self, forward, dev: torch.device) -> None:
        self.graph = torch.cuda.CUDAGraph()
        side = torch.cuda.Stream(dev)
        side.wait_stream(torch.cuda.current_stream(dev))
        with torch.no_grad():
            with torch.cuda.stream(side):  # warm-up off the capture (pure: no state changes)
                for _ in range(2):
                    forward(self.obs)
            torch.cuda.current_stream(dev).wait_stream(side)
            with torch.cuda.graph(self.graph):
                self.mean, self.log_std, self.value = forward(self.obs)
                # the three outputs side by side, for one copy to the host
                self.packed = torch.cat([self.mean, self.log_std, self.value[:, None]], 1)
        self._host = None

    def to_host(self, obs: torch.Tensor) -> torch.Tensor:
        """One call from host to host: ``obs`` (CPU ``float32 [B, D]``) through a pinned buffer
        to the graph's input (asynchronous copy), one replay, and the packed outputs back
        through a pinned buffer → a new CPU tensor ``[B, 2·nu + 1]`` = ``mean ‖ log_std ‖
        value``, the same numbers as :meth:`__call__` gives."""
        if self._host is None:
            self._host = (
                torch.empty(self.obs.shape, pin_memory=True),
                torch.empty(self.packed.shape, pin_memory=True),
                torch.cuda.current_stream(self.obs.device),
            )
        h_in, h_out, stream = self._host
        h_in.copy_(obs)
        self.obs.copy_(h_in, non_blocking=True)
        self.graph.replay()
        h_out.copy_(self.packed, non_blocking=True)
        stream.synchronize()
        return h_out.clone()

    def __call__(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        self.obs.copy_(obs)
        self.graph.replay()
        return self.mean, self.log_std, self.value
