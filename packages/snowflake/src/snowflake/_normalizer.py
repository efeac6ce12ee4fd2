"""Running observation normaliser with statistics shared per (node type, feature slot)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ._graph import Morphology


def bind_types(type_vocab: tuple[str, ...], morph: Morphology) -> torch.Tensor:
    """Map the morphology's node types to indices of ``type_vocab`` → ``int64 [N]``.

    Raises:
        ValueError: the morphology has a node type the model was not built with.
    """
    missing = [t for t in morph.type_names if t not in type_vocab]
    if missing:
        raise ValueError(
            f"node types {missing} are unknown to this model (built for {list(type_vocab)}); "
            "a checkpoint only transfers between agents with the same node types, e.g. Centipede-n."
        )
    lut = torch.tensor([type_vocab.index(t) for t in morph.type_names], dtype=torch.long)
    return lut[torch.as_tensor(morph.node_type)]


class NodeObsNormalizer(nn.Module):
    """Observation normaliser whose mean/var live per node type and feature slot (``[T, F]``).

    A flat index takes the statistics of the (type, slot) of the first node that observes it, so
    the state is independent of the agent size and a Centipede-6 normaliser runs on Centipede-100.
    ``normalize`` returns ``clip((x − μ) / sqrt(σ² + 1e-8), −10, 10)`` (float32).
    """

    def __init__(self, type_vocab: tuple[str, ...], feat_dim: int, clip: float = 10.0) -> None:
        super().__init__()
        self.type_vocab = tuple(type_vocab)
        self.feat_dim = int(feat_dim)
        self.clip = float(clip)
        t = len(self.type_vocab)
        self.register_buffer("mean", torch.zeros(t, feat_dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(t, feat_dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros(t, feat_dim, dtype=torch.float64))

    def bind(self, morph: Morphology) -> None:
        """Attach the index maps of ``morph`` (not saved in ``state_dict``)."""
        types = bind_types(self.type_vocab, morph)
        if morph.feat_dim > self.feat_dim:
            raise ValueError(
                f"morphology has {morph.feat_dim} features per node, normaliser was built for "
                f"{self.feat_dim}."
            )
        idx = torch.as_tensor(morph.obs_index)
        mask = idx >= 0
        key_t = torch.zeros(morph.obs_dim, dtype=torch.long)
        key_f = torch.zeros(morph.obs_dim, dtype=torch.long)
        seen = torch.zeros(morph.obs_dim, dtype=torch.bool)
        for v in range(idx.shape[0]):
            for f in range(idx.shape[1]):
                i = int(idx[v, f])
                if i >= 0 and not seen[i]:
                    seen[i] = True
                    key_t[i], key_f[i] = types[v], f
        onehot = torch.nn.functional.one_hot(types, len(self.type_vocab)).T.double()  # [T, N]
        dev = self.mean.device
        self.register_buffer("_idx", idx.clamp(min=0).to(dev), persistent=False)
        self.register_buffer("_mask", mask.double().to(dev), persistent=False)
        self.register_buffer("_onehot", onehot.to(dev), persistent=False)
        self.register_buffer("_key_t", key_t.to(dev), persistent=False)
        self.register_buffer("_key_f", key_f.to(dev), persistent=False)
        self._pad = self.feat_dim - morph.feat_dim
        self._flat = None
        # CPU fast path (rollouts call update + normalize once per vector step, with caches cold
        # from the physics): per (node, slot) read, the flat index it reads (src) and its
        # (type, slot) group (dst), so both per-group sums are two bincounts; the flat index's
        # cell of the [T, F] buffers (lin) for the per-index statistics.
        fp = morph.feat_dim
        self._src_np = idx[mask].numpy()
        self._dst_np = (types[:, None] * fp + torch.arange(fp)[None, :])[mask].numpy()
        self._lin_np = (key_t * self.feat_dim + key_f).numpy()
        self._cnt_np = (onehot @ mask.double()).numpy()  # [T, F'] reads per sample
        self._np_views = None

    @torch.no_grad()
    def update(self, obs: torch.Tensor) -> None:
        """Merge raw observations ``[B, D]`` into the running statistics (Chan et al.).

        Per-flat-index sums over the batch are gathered into (node, slot) and summed per type,
        which equals summing the node-structured ``[B, N, F]`` view per type without building it.
        """
        if obs.device.type == "cpu":
            self._update_np(obs.detach().double().numpy())
            return
        x = obs.double()
        s1f, s2f = x.sum(0), (x * x).sum(0)  # [D]
        n_b = obs.shape[0] * (self._onehot @ self._mask)  # [T, F']
        s1 = self._onehot @ (s1f[self._idx] * self._mask)
        sq = self._onehot @ (s2f[self._idx] * self._mask)
        mean_b = s1 / n_b.clamp(min=1)
        var_b = (sq / n_b.clamp(min=1) - mean_b**2).clamp(min=0)
        fp = self.mean.shape[1] - self._pad
        m_a, v_a, n_a = self.mean[:, :fp], self.var[:, :fp], self.count[:, :fp]
        tot = n_a + n_b
        delta = mean_b - m_a
        new_mean = m_a + delta * n_b / tot.clamp(min=1)
        m2 = v_a * n_a + var_b * n_b + delta**2 * n_a * n_b / tot.clamp(min=1)
        has = n_b > 0
        self.mean[:, :fp] = torch.where(has, new_mean, m_a)
        self.var[:, :fp] = torch.where(has, m2 / tot.clamp(min=1), v_a)
        self.count[:, :fp] = tot
        self._flat = None

    def _update_np(self, x: np.ndarray) -> None:
        """:meth:`update` for CPU tensors in numpy (same merge; float64 sums in another order),
        writing into the buffers' memory."""
        t, fp = self._cnt_np.shape
        src, dst = self._src_np, self._dst_np
        s1 = np.bincount(dst, weights=x.sum(0)[src], minlength=t * fp).reshape(t, fp)
        sq = np.bincount(dst, weights=(x * x).sum(0)[src], minlength=t * fp).reshape(t, fp)
        n_b = x.shape[0] * self._cnt_np
        n_c = np.maximum(n_b, 1)
        mean_b = s1 / n_c
        var_b = np.maximum(sq / n_c - mean_b**2, 0)
        mean, var, count = self._views()
        m_a, v_a, n_a = mean[:, :fp], var[:, :fp], count[:, :fp]
        tot = n_a + n_b
        tot_c = np.maximum(tot, 1)
        delta = mean_b - m_a
        new_mean = m_a + delta * n_b / tot_c
        m2 = v_a * n_a + var_b * n_b + delta**2 * n_a * n_b / tot_c
        has = n_b > 0
        mean[:, :fp] = np.where(has, new_mean, m_a)
        var[:, :fp] = np.where(has, m2 / tot_c, v_a)
        count[:, :fp] = tot
        self._flat = None

    def update_normalize_np(self, raw: np.ndarray) -> torch.Tensor:
        """:meth:`update` with raw observations ``float64 [B, D]`` (numpy, CPU buffers), then
        :meth:`normalize` them → float32 ``[B, D]`` tensor. The same float64 operations as the
        torch path (bit-equal result), as a handful of numpy calls: the rollout's per-step
        path, where the policy waits for it."""
        raw = np.asarray(raw, dtype=np.float64)
        self._update_np(raw)
        mu, sd = self._flat_stats()
        out = np.clip((raw - mu.numpy()) / sd.numpy(), -self.clip, self.clip)
        return torch.from_numpy(out.astype(np.float32))

    def _views(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """numpy views of the CPU buffers ``mean``, ``var``, ``count`` (in-place loads keep
        them valid; moving the module drops them)."""
        mean = self.mean
        views = getattr(self, "_np_views", None)
        # A copied module (deepcopy, pickling) carries copies, not views: check the memory.
        if views is None or views[0].ctypes.data != mean.data_ptr():
            views = self._np_views = (mean.numpy(), self.var.numpy(), self.count.numpy())
        return views

    def _flat_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(μ, sqrt(σ² + 1e-8))`` per flat index ``[D]``, cached until the statistics change."""
        if getattr(self, "_flat", None) is None and self.mean.device.type == "cpu":
            mean, var, _ = self._views()  # same gathers, sum and sqrt as below, in numpy
            mu = mean.ravel().take(self._lin_np)
            sd = np.sqrt(var.ravel().take(self._lin_np) + 1e-8)
            self._flat = (torch.from_numpy(mu), torch.from_numpy(sd))
        if getattr(self, "_flat", None) is None:
            with torch.inference_mode(False), torch.no_grad():
                mu = self.mean[self._key_t, self._key_f].clone()
                sd = torch.sqrt(self.var[self._key_t, self._key_f] + 1e-8)
            self._flat = (mu, sd)
        return self._flat

    def _load_from_state_dict(self, *args, **kwargs) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._flat = None

    def _apply(self, fn, *args, **kwargs):
        self._flat = self._np_views = None
        return super()._apply(fn, *args, **kwargs)

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        """Normalise raw flat observations ``[B, D]`` → float32 ``[B, D]``."""
        mu, sd = self._flat_stats()
        return ((obs.double() - mu) / sd).clamp(-self.clip, self.clip).float()
