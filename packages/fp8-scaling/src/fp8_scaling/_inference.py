"""Inference with weights cast to FP8 once (Perez et al. 2023, Section 5, inference recipe).

Each linear layer stores its weight as FP8 (E4M3 by default) together with its integer scaling
bias; activations are scaled just in time (``"jit"``, per tensor, per call) or with a static bias
calibrated from a few batches or taken from biases recorded during training.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import torch
from torch import nn

from ._formats import E4M3, FP8Format, get_format
from ._linear import Float8Linear
from ._linear_fn import _mm, _shapes_ok, hardware_fp8_supported
from ._scaling import amax, compute_bias, quantize

__all__ = [
    "Float8InferenceLinear",
    "calibrate",
    "load_quantized",
    "quantize_for_inference",
    "save_quantized",
]


class Float8InferenceLinear(nn.Module):
    """Linear layer with an FP8 weight (cast once) for inference; no autograd.

    Buffers: ``weight_fp8`` (out, in) in ``fmt``'s dtype, ``weight_bias`` (float32 0-d integer
    scaling bias, weight ≈ ``weight_fp8 * 2**-weight_bias``), ``act_bias`` (static activation
    bias; NaN while uncalibrated) and the optional high-precision ``bias`` (out,).

    Args:
        in_features / out_features: sizes.
        has_bias: whether there is an additive bias.
        fmt: FP8 format of weights and activations.
        activations: ``"jit"`` (per-call amax) or ``"static"`` (use ``act_bias``).
        out_dtype: dtype of the output and of the additive bias.
        name: layer name for error messages.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        has_bias: bool = True,
        fmt: FP8Format | str = E4M3,
        activations: str = "jit",
        out_dtype: torch.dtype = torch.bfloat16,
        device=None,
        name: str = "",
    ) -> None:
        super().__init__()
        if activations not in ("jit", "static"):
            raise ValueError(f"activations must be 'jit' or 'static', got {activations!r}")
        self.in_features, self.out_features = in_features, out_features
        self.fmt = get_format(fmt)
        self.activations = activations
        self.out_dtype = out_dtype
        self.name = name
        self.register_buffer(
            "weight_fp8",
            torch.zeros(out_features, in_features, dtype=self.fmt.dtype, device=device),
        )
        self.register_buffer("weight_bias", torch.zeros((), device=device))
        self.register_buffer("act_bias", torch.full((), float("nan"), device=device))
        self.register_buffer(
            "bias", torch.zeros(out_features, dtype=out_dtype, device=device) if has_bias else None
        )

    @classmethod
    def from_linear(
        cls, mod: nn.Linear, fmt: FP8Format | str = E4M3, activations: str = "jit", name: str = ""
    ) -> Float8InferenceLinear:
        """Cast ``mod``'s weight to FP8 once (bias from its amax, §3) and keep its bias."""
        w = mod.weight.detach()
        new = cls(
            mod.in_features,
            mod.out_features,
            mod.bias is not None,
            fmt,
            activations,
            out_dtype=w.dtype,
            device=w.device,
            name=name,
        )
        b = compute_bias(amax(w), new.fmt)
        new.weight_bias.copy_(b)
        new.weight_fp8.copy_(quantize(w, torch.exp2(b), new.fmt))
        if mod.bias is not None:
            new.bias.copy_(mod.bias.detach())
        return new

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not x.is_floating_point():
            raise TypeError(
                f"Float8InferenceLinear {self.name}: input must be floating, got {x.dtype}"
            )
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.activations == "jit":
            xb = compute_bias(amax(x2), self.fmt)
        else:
            xb = self.act_bias
        x8 = quantize(x2, torch.exp2(xb), self.fmt)
        hw = hardware_fp8_supported(x.device) and _shapes_ok(*x2.shape, self.out_features)
        hw = hw and self.fmt.name == "e4m3"
        y = _mm(
            x8,
            self.weight_fp8.t(),
            torch.exp2(-xb),
            torch.exp2(-self.weight_bias),
            x.dtype,
            hw,
            True,
        )
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        a = self.activations
        return f"{self.in_features}->{self.out_features}, fmt={self.fmt.name}, activations={a}"


def _linears(model: nn.Module, skip: tuple[str, ...]):
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Linear) and not any(s in name for s in skip):
            yield name, mod


def _set(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def quantize_for_inference(
    model: nn.Module,
    fmt: FP8Format | str = E4M3,
    activations: str = "jit",
    activation_biases: Mapping[str, float] | None = None,
    calibration_batches: Iterable | None = None,
    skip: tuple[str, ...] = ("lm_head", "embed"),
) -> nn.Module:
    """Replace linear layers by :class:`Float8InferenceLinear` (in place).

    Args:
        model: module to quantize (returned).
        fmt: FP8 format of weights and activations (E4M3).
        activations: ``"jit"`` or ``"static"``. Static biases come from ``activation_biases``
            (layer name → bias, e.g. the minimum bias a :class:`ScaleRecorder` saw in training)
            or from :func:`calibrate` over ``calibration_batches``.
        skip: name substrings of layers kept in high precision.
    """
    if activations == "static" and activation_biases is None and calibration_batches is None:
        raise ValueError("static activations need activation_biases=... or calibration_batches=...")
    for name, mod in list(_linears(model, skip)):
        _set(model, name, Float8InferenceLinear.from_linear(mod, fmt, activations, name=name))
    if activation_biases is not None:
        for name, mod in model.named_modules():
            if isinstance(mod, Float8InferenceLinear) and name in activation_biases:
                mod.act_bias.fill_(float(activation_biases[name]))
    if calibration_batches is not None:
        calibrate(model, calibration_batches)
    if activations == "static":
        missing = [
            n
            for n, m in model.named_modules()
            if isinstance(m, Float8InferenceLinear) and torch.isnan(m.act_bias)
        ]
        if missing:
            raise ValueError(
                f"no static activation bias for layers {missing}; pass them or calibrate"
            )
    return model


@torch.no_grad()
def calibrate(model: nn.Module, batches: Iterable) -> dict[str, float]:
    """Set each layer's static activation bias from the max amax seen over ``batches``.

    Each batch is passed as ``model(batch)`` (or ``model(*batch)`` for tuples). Returns the biases.
    """
    seen: dict[str, torch.Tensor] = {}
    hooks = []
    modes = {}
    for name, mod in model.named_modules():
        if isinstance(mod, Float8InferenceLinear):

            def hook(m, args, name=name):
                a = amax(args[0])
                seen[name] = torch.maximum(seen.get(name, a), a)

            hooks.append(mod.register_forward_pre_hook(hook))
            modes[name] = mod.activations
            mod.activations = "jit"  # calibrate on the JIT path (static biases are unset yet)
    try:
        for b in batches:
            model(*b) if isinstance(b, tuple) else model(b)
    finally:
        for h in hooks:
            h.remove()
        for name, mod in model.named_modules():
            if name in modes and isinstance(mod, Float8InferenceLinear):
                mod.activations = modes[name]
    out = {}
    for name, mod in model.named_modules():
        if isinstance(mod, Float8InferenceLinear) and name in seen:
            mod.act_bias.copy_(compute_bias(seen[name], mod.fmt))
            out[name] = float(mod.act_bias)
    return out


def save_quantized(model: nn.Module, path: str | os.PathLike) -> None:
    """Save a model quantized by :func:`quantize_for_inference` (FP8 weights + biases + layout)."""
    layers = {
        n: {
            "in": m.in_features,
            "out": m.out_features,
            "has_bias": m.bias is not None,
            "fmt": m.fmt.name,
            "activations": m.activations,
        }
        for n, m in model.named_modules()
        if isinstance(m, Float8InferenceLinear)
    }
    torch.save({"layers": layers, "state_dict": model.state_dict()}, path)


def load_quantized(model: nn.Module, path: str | os.PathLike, map_location=None) -> nn.Module:
    """Load :func:`save_quantized` output into ``model`` (the same architecture, unquantized)."""
    blob = torch.load(path, map_location=map_location, weights_only=True)
    for name, cfg in blob["layers"].items():
        old = model.get_submodule(name)
        if not isinstance(old, (nn.Linear, Float8InferenceLinear)):
            raise ValueError(f"layer {name!r} of the saved model is a {type(old).__name__} here")
        dt = old.weight.dtype if isinstance(old, nn.Linear) else old.out_dtype
        dev = old.weight.device if isinstance(old, nn.Linear) else old.weight_fp8.device
        _set(
            model,
            name,
            Float8InferenceLinear(
                cfg["in"],
                cfg["out"],
                cfg["has_bias"],
                cfg["fmt"],
                cfg["activations"],
                dt,
                dev,
                name,
            ),
        )
    model.load_state_dict(blob["state_dict"])
    return model


_ = Float8Linear  # Float8Linear is an nn.Linear subclass: quantize_for_inference accepts it too
