"""Actor-critics: an MLP baseline and a NerveNet-style GNN actor (Snowflake, Blake et al. 2021)."""

from __future__ import annotations

import math

import torch
from torch import nn

from ._graph import Morphology
from ._normalizer import NodeObsNormalizer, bind_types

HIDDEN = 64
# Orthogonal gain of the decoder's output layer. With gain 1 the initial action means are random
# per-actuator offsets (rms ≈ 0.25) that a frozen (snowflake) decoder can never remove: on
# Centipede-6 its episodes then stay short (learning check, 30k steps: episode length 10.9 → 16.8).
# Gain 0.1 starts near zero (rms ≈ 0.025, like the MLP actor's 0.01) and still lets the trained
# GRU states reach |μ| of several tenths (same check: 27.2 → 48.7, last-10 return +31.9 vs +1.8).
DECODER_GAIN = 0.1


def _ortho(layer: nn.Linear, gain: float) -> nn.Linear:
    nn.init.orthogonal_(layer.weight, gain)
    nn.init.zeros_(layer.bias)
    return layer


def mlp(sizes: list[int], out_gain: float = 1.0) -> nn.Sequential:
    """tanh MLP with orthogonal init (hidden gain √2, output gain ``out_gain``)."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        last = i == len(sizes) - 2
        layers.append(_ortho(nn.Linear(sizes[i], sizes[i + 1]), out_gain if last else math.sqrt(2)))
        if not last:
            layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class MLPActor(nn.Module):
    """Gaussian MLP actor: flat normalised obs ``[B, D]`` → action mean ``[B, nu]`` (64-64 tanh).

    Log-std is one state-independent parameter per action. On an agent of another size the input is
    zero-padded/truncated and the output padded/truncated ("MLP with padding" transfer baseline).
    """

    groups = ("body", "log_std")

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        super().__init__()
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self.body = mlp([obs_dim, HIDDEN, HIDDEN, act_dim], out_gain=0.01)
        self.log_std = nn.Parameter(torch.zeros(act_dim))
        self._target_act = act_dim

    def bind(self, morph: Morphology) -> None:
        self._target_act = len(morph.act_node)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        d = obs.shape[-1]
        if d < self.obs_dim:
            obs = nn.functional.pad(obs, (0, self.obs_dim - d))
        mean = self.body(obs[..., : self.obs_dim])
        log_std = self.log_std
        a = self._target_act
        if a != self.act_dim:
            mean = nn.functional.pad(mean, (0, max(a - self.act_dim, 0)))[..., :a]
            log_std = nn.functional.pad(log_std, (0, max(a - self.act_dim, 0)))[:a]
        return mean, log_std.expand_as(mean)


class GNNActor(nn.Module):
    """NerveNet-style GNN actor with a size-independent parameter set.

    h⁰_v = [e_τ(v) ; tanh(W_in^τ(v) o_v + b)] (32 + 32 = 64), then T = 4 rounds of
    m̄_v = mean_{u∈N(v)} M(h_u) and h_v ← GRU_τ(v)(m̄_v, h_v); μ_j = F_out(h_j) for actuated
    nodes (shared decoder 64-64-1) and log σ_j = s_τ(j) (one entry per actuator type).
    Aggregation is a dense row-normalised adjacency ``[N, N]`` applied as a batched matmul.

    Groups (for freezing): ``encoder`` (F_in), ``embedding`` (e_τ), ``message`` (M), ``update``
    (GRUs),
    ``decoder`` (F_out; output layer at orthogonal gain ``decoder_gain``), ``log_std``.
    Input: flat normalised obs ``[B, D]``; output ``[B, nu]``.
    """

    groups = ("encoder", "embedding", "message", "update", "decoder", "log_std")

    def __init__(
        self,
        type_vocab: tuple[str, ...],
        feat_dim: int,
        hidden: int = HIDDEN,
        steps: int = 4,
        decoder_gain: float = DECODER_GAIN,
    ) -> None:
        super().__init__()
        self.type_vocab, self.feat_dim, self.hidden, self.steps = (
            tuple(type_vocab),
            feat_dim,
            hidden,
            steps,
        )
        t, half = len(self.type_vocab), hidden // 2
        self.encoder = nn.ModuleList(
            _ortho(nn.Linear(feat_dim, half), math.sqrt(2)) for _ in range(t)
        )
        emb = torch.randn(t, hidden - half)
        self.embedding = nn.Parameter(emb / emb.norm(dim=0, keepdim=True))
        self.message = mlp([hidden, hidden, hidden, hidden], out_gain=1.0)
        self.update = nn.ModuleList(nn.GRUCell(hidden, hidden) for _ in range(t))
        self.decoder = mlp([hidden, hidden, hidden, 1], out_gain=decoder_gain)
        self.log_std = nn.Parameter(torch.zeros(t))
        self.batched_types: bool | None = None  # None: batched over types on CUDA only

    def bind(self, morph: Morphology) -> None:
        """Attach graph tensors of ``morph`` (buffers, not in ``state_dict``).

        Nodes are stored sorted by type and node-major (``[N, B, H]``), so aggregation is a
        single ``[N, N] @ [N, B·H]`` matmul and the per-type weights are gathered once per
        forward; no gathers inside the propagation loop.
        """
        if morph.feat_dim > self.feat_dim:
            raise ValueError(
                f"morphology has {morph.feat_dim} features per node, model expects "
                f"≤ {self.feat_dim}."
            )
        types = bind_types(self.type_vocab, morph)
        dev = self.embedding.device
        perm = torch.argsort(types, stable=True)  # type-sorted node order
        inv = torch.argsort(perm)
        counts = torch.bincount(types, minlength=len(self.type_vocab))
        self._slices = [(t, int(c)) for t, c in enumerate(counts.tolist()) if c]
        adj = torch.as_tensor(morph.adjacency(True))[perm][:, perm]
        idx = torch.as_tensor(morph.obs_index)[perm]
        self.register_buffer("_types", types[perm].to(dev), persistent=False)
        self.register_buffer("_adj", adj.contiguous().to(dev), persistent=False)
        act = inv[torch.as_tensor(morph.act_node)]
        self.register_buffer("_act", act.to(dev), persistent=False)
        self.register_buffer("_act_type", types[torch.as_tensor(morph.act_node)].to(dev), False)
        self.register_buffer(
            "_idx", torch.where(idx < 0, morph.obs_dim, idx).T.contiguous().to(dev), False
        )
        self._obs_dim = morph.obs_dim

    def _node_weights(self) -> tuple[torch.Tensor, ...]:
        """Per-node copies of the per-type parameters, gathered once per forward: encoder
        ``[N, F, H/2]`` and ``[N, 1, H/2]``, GRU input/hidden weights ``[N, H, 3H]`` and biases
        ``[N, 1, 3H]`` (transposed for ``baddbmm``; gradients flow back to the type's tensors)."""
        ty = self._types

        def pick(ws: list[torch.Tensor]) -> torch.Tensor:
            return torch.stack(ws)[ty]

        enc_w = pick([e.weight for e in self.encoder]).transpose(1, 2)
        enc_b = pick([e.bias for e in self.encoder])[:, None]
        w_ih = pick([g.weight_ih for g in self.update]).transpose(1, 2)
        w_hh = pick([g.weight_hh for g in self.update]).transpose(1, 2)
        b_ih = pick([g.bias_ih for g in self.update])[:, None]
        b_hh = pick([g.bias_hh for g in self.update])[:, None]
        return enc_w, enc_b, w_ih, w_hh, b_ih, b_hh

    @staticmethod
    def _gru(gi: torch.Tensor, gh: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """GRU cell (``nn.GRUCell``'s equations) from precomputed gates ``[N, B, 3H]`` (input
        and hidden, biases included) and state ``[N, B, H]``; one fused kernel on CUDA."""
        if gi.is_cuda and not torch.compiler.is_compiling():  # compiled: inductor fuses below
            hid = h.shape[-1]
            out = torch.ops.aten._thnn_fused_gru_cell(
                gi.reshape(-1, 3 * hid), gh.reshape(-1, 3 * hid), h.reshape(-1, hid)
            )[0]
            return out.view_as(h)
        i_r, i_z, i_n = gi.chunk(3, -1)
        h_r, h_z, h_n = gh.chunk(3, -1)
        r = torch.sigmoid(i_r + h_r)
        z = torch.sigmoid(i_z + h_z)
        n = torch.tanh(i_n + r * h_n)
        return n + z * (h - n)  # = (1 − z)·n + z·h

    def _per_type(self, fn, *xs: torch.Tensor) -> torch.Tensor:
        """Apply ``fn(type, *slices)`` to the contiguous node slice ``[n_t, B, ·]`` of each type."""
        outs, start = [], 0
        for t, c in self._slices:
            outs.append(fn(t, *(x[start : start + c] for x in xs)))
            start += c
        return outs[0] if len(outs) == 1 else torch.cat(outs, dim=0)

    def forward(self, obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Action mean ``[B, nu]`` and log-std ``[B, nu]`` from flat normalised obs ``[B, D]``.

        Two schedules of the same maths: on CUDA (or with ``batched_types=True``) every node
        multiplies by its own type's encoder and GRU weights in one batched matmul (``baddbmm``
        over nodes, weights gathered once per forward) and the GRU gates run as one fused
        kernel, which cuts the operators (kernel launches) of a forward + backward about in
        half; on a CPU, per-type ``nn.Linear``/``nn.GRUCell`` calls on contiguous node slices
        are faster (larger GEMMs) and are used by default.
        """
        batched = self.batched_types if self.batched_types is not None else obs.is_cuda
        b, hid = obs.shape[0], self.hidden
        padded = torch.cat([obs, obs.new_zeros(b, 1)], dim=1).T  # [D+1, B]
        x = padded[self._idx].permute(1, 2, 0)  # [F', B] per node → [N, B, F']
        if x.shape[-1] < self.feat_dim:
            x = nn.functional.pad(x, (0, self.feat_dim - x.shape[-1]))
        if batched:
            enc_w, enc_b, w_ih, w_hh, b_ih, b_hh = self._node_weights()
            enc = torch.tanh(torch.baddbmm(enc_b, x, enc_w))  # [N, B, H/2]
        else:
            enc = self._per_type(lambda t, xt: torch.tanh(self.encoder[t](xt)), x)
        n = enc.shape[0]
        h = torch.cat([self.embedding[self._types][:, None].expand(n, b, -1), enc], dim=-1)

        def gru(t: int, a: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            c = a.shape[0]
            return self.update[t](a.reshape(c * b, hid), s.reshape(c * b, hid)).view(c, b, hid)

        for _ in range(self.steps):
            msg = self.message(h).reshape(n, b * hid)
            agg = torch.mm(self._adj, msg).view(n, b, hid)  # mean over neighbours
            if batched:
                h = self._gru(torch.baddbmm(b_ih, agg, w_ih), torch.baddbmm(b_hh, h, w_hh), h)
            else:
                h = self._per_type(gru, agg, h)
        mean = self.decoder(h[self._act]).squeeze(-1).T  # [nu, B] → [B, nu]
        return mean, self.log_std[self._act_type].expand_as(mean)


class ActorCritic(nn.Module):
    """Normaliser + actor (``"mlp"`` or ``"gnn"``) + MLP critic (64-64 tanh on the flat obs).

    ``decoder_gain``: orthogonal gain of the GNN decoder's output layer (see ``DECODER_GAIN``;
    1.0 is a plain orthogonal init as in NerveNet/Snowflake's code); unused by the MLP actor.

    ``obs`` arguments below are *normalised* flat observations ``float32 [B, D]``; use
    :meth:`normalize` on raw observations first.
    """

    def __init__(
        self,
        morph: Morphology,
        actor: str = "gnn",
        init_log_std: float = 0.0,
        decoder_gain: float = DECODER_GAIN,
    ) -> None:
        super().__init__()
        if actor not in ("gnn", "mlp"):
            raise ValueError(f"actor must be 'gnn' or 'mlp', got {actor!r}.")
        self.kind = actor
        self.normalizer = NodeObsNormalizer(morph.type_names, morph.feat_dim)
        if actor == "gnn":
            self.actor: nn.Module = GNNActor(
                morph.type_names, morph.feat_dim, decoder_gain=decoder_gain
            )
        else:
            self.actor = MLPActor(morph.obs_dim, len(morph.act_node))
        self.critic = mlp([morph.obs_dim, HIDDEN, HIDDEN, 1], out_gain=1.0)
        with torch.no_grad():
            self.actor.log_std.fill_(init_log_std)
        self.bind(morph)

    def bind(self, morph: Morphology) -> None:
        """Re-target the model to another agent (e.g. a larger Centipede); critic stays as built."""
        self.morph = morph
        self.normalizer.bind(morph)
        self.actor.bind(morph)

    def normalize(self, raw_obs: torch.Tensor) -> torch.Tensor:
        return self.normalizer.normalize(raw_obs)

    def dist(self, obs: torch.Tensor) -> torch.distributions.Normal:
        mean, log_std = self.actor(obs)
        return torch.distributions.Normal(mean, log_std.exp(), validate_args=False)

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs).squeeze(-1)

    def rollout_fn(self):
        """Per-step rollout inference ``obs [B, D] → (mean [B, nu], std [B, nu], value [B])``:
        the same operations as :meth:`dist` and :meth:`value` (bit for bit), with the MLP layers
        called as plain ``linear``/``tanh`` on the current weights instead of through modules,
        which is most of the cost of a 16-row step on a CPU. Build it again after the weights
        are replaced (in-place optimiser updates are seen)."""
        critic = _layers(self.critic)
        actor = None
        if isinstance(self.actor, MLPActor) and self.actor._target_act == self.actor.act_dim:
            actor = _layers(self.actor.body)
        log_std = self.actor.log_std if actor is not None else None
        d_in = self.actor.obs_dim if actor is not None else None

        def run(obs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            if actor is not None and obs.shape[-1] == d_in:
                mean = _apply(actor, obs)
                std = log_std.expand_as(mean).exp()
            else:
                mean, ls = self.actor(obs)
                std = ls.exp()
            return mean, std, _apply(critic, obs).squeeze(-1)

        return run

    def param_group(self, name: str) -> str:
        """Freezing group of a parameter name (``"critic"`` or an actor group)."""
        head, _, rest = name.partition(".")
        if head == "critic":
            return "critic"
        return rest.split(".")[0]


def _layers(seq: nn.Sequential) -> list[tuple[torch.Tensor, torch.Tensor, bool]]:
    """``(weight, bias, tanh after)`` per linear layer of a :func:`mlp`."""
    mods = list(seq)
    out = []
    for i, m in enumerate(mods):
        if isinstance(m, nn.Linear):
            nxt = mods[i + 1] if i + 1 < len(mods) else None
            out.append((m.weight, m.bias, isinstance(nxt, nn.Tanh)))
    return out


def _apply(layers: list[tuple[torch.Tensor, torch.Tensor, bool]], x: torch.Tensor) -> torch.Tensor:
    for w, b, act in layers:
        x = nn.functional.linear(x, w, b)
        if act:
            x = torch.tanh(x)
    return x
