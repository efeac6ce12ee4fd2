"""Test helpers: backward with a unit-normal gradient, and scale assertions."""

from __future__ import annotations

import torch
from torch import Tensor

from ._reference import SPTransformerDecoder, SPTransformerLayer

__all__ = [
    "SPTransformerDecoder",
    "SPTransformerLayer",
    "assert_scale",
    "assert_unit_scaled",
    "rms",
    "stdlib_bytes",
    "unit_backward",
]

_STDLIB_FILES = ("argparse.py", "textwrap.py", "functools.py", "dataclasses.py", "inspect.py")


def stdlib_bytes(batch: int, seq: int, seed: int = 0) -> Tensor:
    """A batch of natural text: ``(batch, seq)`` int64 byte values (vocabulary 256) taken at
    random offsets from Python standard-library source files (no download needed).

    Source code is a realistic, low-entropy token stream (indentation, keywords, repeated
    bigrams), the case where scale rules derived for independent tokens are tested hardest.
    """
    import os
    import sysconfig

    if batch < 1 or seq < 1:
        raise ValueError(f"stdlib_bytes: batch and seq must be >= 1, got {batch} and {seq}.")
    root = sysconfig.get_paths()["stdlib"]
    data = bytearray()
    for name in _STDLIB_FILES:
        path = os.path.join(root, name)
        if os.path.exists(path):
            with open(path, "rb") as f:
                data += f.read()
    if len(data) <= seq:
        raise RuntimeError(f"stdlib_bytes: no Python sources found under {root!r}.")
    text = torch.frombuffer(data, dtype=torch.uint8).long()
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, len(text) - seq, (batch,), generator=g)
    return torch.stack([text[s : s + seq] for s in starts.tolist()])


def unit_backward(y: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """Backpropagate a N(0, 1) gradient (same shape/dtype as ``y``) through ``y``; returns it.

    This is the incoming gradient of the unit-scaling analysis (Unit Scaling §4): with it, each
    input gradient's std measures the op's backward scale directly.
    """
    if not isinstance(y, Tensor) or not y.requires_grad:
        raise ValueError(
            "unit_backward needs a tensor that requires grad (the output of a differentiable "
            "computation); make sure an input has requires_grad=True."
        )
    g = torch.randn(y.shape, dtype=y.dtype, device=y.device, generator=generator)
    y.backward(g)
    return g


def rms(t: Tensor) -> float:
    """Root-mean-square of ``t`` as a Python float (computed in fp32)."""
    return float(t.detach().float().pow(2).mean().sqrt())


def assert_scale(
    t: Tensor | None, target: float = 1.0, rel: float = 0.1, stat: str = "std", name: str = ""
) -> float:
    """Assert that ``stat(t)`` (``"std"`` or ``"rms"``) is within ``target · (1 ± rel)``.

    Returns the measured value. Raises ``AssertionError`` naming the tensor otherwise.
    """
    if t is None:
        raise AssertionError(f"{name or 'tensor'} is None (no gradient reached it?)")
    if stat not in ("std", "rms"):
        raise ValueError(f"stat must be 'std' or 'rms', got {stat!r}.")
    v = float(t.detach().float().std()) if stat == "std" else rms(t)
    if not abs(v - target) <= rel * abs(target):
        raise AssertionError(
            f"{name or 'tensor'}: {stat} = {v:.4g}, expected {target:.4g} ± {rel * 100:.0f}%"
        )
    return v


def assert_unit_scaled(*tensors: Tensor | None, rel: float = 0.1, stat: str = "std") -> None:
    """Assert that every tensor has ``stat`` 1 ± ``rel``."""
    for i, t in enumerate(tensors):
        assert_scale(t, 1.0, rel, stat, name=f"tensor {i}")
