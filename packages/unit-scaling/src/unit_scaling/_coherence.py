"""Effective token count for weight-gradient scales on natural text.

Unit Scaling (Blake et al. 2023, §5 and Table A.2) scales every weight gradient
``dW = Σ_t g_t x_tᵀ`` by B^-1/2: B independent rows (tokens) add in quadrature. In a language
model at initialisation both the row gradient g_t (fixed by the target, since the prediction is
near-uniform) and the row input x_t (fixed mostly by the input token) are functions of the
(input, target) pair. Rows that repeat a pair add *coherently*, so with n_p rows of pair p,
E|dW|² ∝ Σ_p n_p² rather than B = Σ_p n_p. Following the paper's logic (pick the scale that makes
the tensor unit-variance under the model of its inputs), the weight-gradient scale becomes
B_eff^-1/2 with B_eff = B²/Σ_p n_p², i.e. the B^-1/2 rule times ``κ^-1/2``, κ = Σ_p n_p²/B.
For independent uniform tokens κ ≈ 1 + B/V² ≈ 1 (no change); for bytes of source code κ ≈ 20.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["pair_coherence"]


def pair_coherence(inputs: Tensor, targets: Tensor, ignore_index: int = -100) -> Tensor:
    """κ = Σ_p n_p² / B over the (input, target) token pairs of a batch, as a 0-d fp32 tensor.

    Args:
        inputs: int64 token ids, any shape.
        targets: int64 target ids, same shape; entries equal to ``ignore_index`` are left out.

    Returns:
        κ >= 1 (1 when every pair is distinct). Computed with a sort and static shapes only,
        so it is traceable by ``torch.compile(fullgraph=True)`` and never synchronises.
    """
    if inputs.shape != targets.shape:
        raise ValueError(
            f"pair_coherence: inputs {tuple(inputs.shape)} and targets {tuple(targets.shape)} "
            "must have the same shape; pass input_ids[:, :-1] with labels input_ids[:, 1:]."
        )
    a, b = inputs.reshape(-1).long(), targets.reshape(-1).long()
    n = a.numel()
    if n == 0:
        return torch.ones((), dtype=torch.float32, device=a.device)
    valid = b != ignore_index
    pos = torch.arange(n, device=a.device)
    hi = torch.maximum(a.max(), b.max()).clamp_min(0) + 1
    # ignored rows get distinct negative keys, so they never form a repeated pair
    key = torch.where(valid, a.clamp_min(0) * hi + b.clamp_min(0), -1 - pos)
    k, _ = torch.sort(key)
    new_run = torch.ones(n, dtype=torch.bool, device=a.device)
    new_run[1:] = k[1:] != k[:-1]
    start = torch.cummax(torch.where(new_run, pos, torch.zeros_like(pos)), 0).values
    # Σ_runs n² = Σ_i (2·(i − start_i) + 1): each element adds 2j+1 for its rank j in its run
    sq = (2 * (pos - start) + 1).sum().to(torch.float32)
    count = valid.sum().to(torch.float32)
    ignored = n - count
    return ((sq - ignored) / count.clamp_min(1.0)).clamp_min(1.0)
