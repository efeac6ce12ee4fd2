"""A minimal random-init Llama-style decoder for the end-to-end decode benchmark.

RMSNorm, rotary embeddings, GQA attention, SwiGLU MLP; bf16 weights; a static KV cache holding K,
the S-contiguous copy K_t, V and the running mean of V per (sequence, KV head). One decode step is
CUDA-graph capturable: the write position and the live lengths live in device tensors.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
import triton
import triton.language as tl
from _skinny import CONFIGS, SkinnyMM, tune_skinny


@triton.jit
def _rms_norm_kernel(x_ptr, out_ptr, H, eps, BLOCK: tl.constexpr):
    """One row: ``x * rsqrt(mean(x^2) + eps)`` in fp32, stored in the output dtype."""
    row = tl.program_id(0).to(tl.int64)
    d = tl.arange(0, BLOCK)
    x = tl.load(x_ptr + row * H + d, mask=d < H, other=0.0).to(tl.float32)
    r = tl.rsqrt(tl.sum(x * x, axis=0) / H + eps)
    tl.store(out_ptr + row * H + d, (x * r).to(out_ptr.dtype.element_ty), mask=d < H)


@triton.jit
def _add_rms_kernel(x_ptr, y_ptr, out_ptr, H, eps, BLOCK: tl.constexpr):
    """One row: ``x += y`` (the residual add, rounded to x's dtype and stored back), then the
    RMSNorm of the new ``x`` into ``out`` (as :func:`_rms_norm_kernel`)."""
    row = tl.program_id(0).to(tl.int64)
    d = tl.arange(0, BLOCK)
    m = d < H
    x = tl.load(x_ptr + row * H + d, mask=m, other=0.0).to(tl.float32)
    y = tl.load(y_ptr + row * H + d, mask=m, other=0.0).to(tl.float32)
    x = (x + y).to(x_ptr.dtype.element_ty)
    tl.store(x_ptr + row * H + d, x, mask=m)
    xf = x.to(tl.float32)
    r = tl.rsqrt(tl.sum(xf * xf, axis=0) / H + eps)
    tl.store(out_ptr + row * H + d, (xf * r).to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _swiglu_kernel(gu_ptr, out_ptr, F_, BLOCK: tl.constexpr):
    """``silu(gate) * up`` of one row of ``[gate | up]`` (fp32 math, output dtype)."""
    row = tl.program_id(0).to(tl.int64)
    d = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    m = d < F_
    g = tl.load(gu_ptr + row * 2 * F_ + d, mask=m, other=0.0).to(tl.float32)
    u = tl.load(gu_ptr + row * 2 * F_ + F_ + d, mask=m, other=0.0).to(tl.float32)
    y = (g / (1.0 + tl.exp(-g))).to(out_ptr.dtype.element_ty).to(tl.float32) * u
    tl.store(out_ptr + row * F_ + d, y.to(out_ptr.dtype.element_ty), mask=m)


@triton.jit
def _rope_cache_kernel(
    qkv_ptr, cs_ptr, lens_ptr, q_ptr, k_ptr, v_ptr, kt_ptr, vm_ptr, S, HQ, HKV,
    DH: tl.constexpr, HALF: tl.constexpr,
):  # fmt: skip
    """Program (b, h): rotate query head h (h < HQ) into ``q``, or for KV head j = h - HQ rotate
    its key and write it into K and K_t at position ``lens[b]``, write the value into V and
    update the running mean of V (paper: the SparQ cache keeps mean(V))."""
    b = tl.program_id(0).to(tl.int64)
    h = tl.program_id(1)
    i = tl.arange(0, HALF)
    nqkv = HQ + 2 * HKV
    c = tl.load(cs_ptr + b * DH + 2 * i)
    s = tl.load(cs_ptr + b * DH + 2 * i + 1)
    base = qkv_ptr + b * nqkv * DH + h * DH
    xe = tl.load(base + 2 * i).to(tl.float32)
    xo = tl.load(base + 2 * i + 1).to(tl.float32)
    ye = (xe * c - xo * s).to(q_ptr.dtype.element_ty)
    yo = (xe * s + xo * c).to(q_ptr.dtype.element_ty)
    if h < HQ:
        qb = q_ptr + (b * HQ + h) * DH
        tl.store(qb + 2 * i, ye)
        tl.store(qb + 2 * i + 1, yo)
    else:
        j = h - HQ
        pos = tl.load(lens_ptr + b)
        row = (b * HKV + j) * S
        tl.store(k_ptr + (row + pos) * DH + 2 * i, ye)
        tl.store(k_ptr + (row + pos) * DH + 2 * i + 1, yo)
        tl.store(kt_ptr + row * DH + (2 * i) * S + pos, ye)
        tl.store(kt_ptr + row * DH + (2 * i + 1) * S + pos, yo)
        d = tl.arange(0, DH)
        v = tl.load(qkv_ptr + b * nqkv * DH + (HQ + HKV + j) * DH + d)
        tl.store(v_ptr + (row + pos) * DH + d, v)
        vm_row = vm_ptr + (b * HKV + j) * DH + d
        vm = tl.load(vm_row)
        tl.store(vm_row, vm + (v.to(tl.float32) - vm) / (pos + 1).to(tl.float32))


@dataclass
class LlamaShape:
    hidden: int = 4096
    heads: int = 32
    kv_heads: int = 8
    layers: int = 8
    ffn: int = 14336
    vocab: int = 32000


class TinyLlama:
    """Weights and a static cache; :meth:`step` runs one greedy decode step in place."""

    def __init__(
        self, shape: LlamaShape, batch: int, max_len: int, device, dtype=torch.bfloat16,
        fused: bool = False, add_rms: bool = False, weights_t: bool = False,
        gemm: str = "cublas",
    ):  # fmt: skip
        self.s, self.B, self.S = shape, batch, max_len
        # fused: RMSNorm, rotary + cache writes + running mean, and SwiGLU as one Triton kernel
        # each and the residual adds inside the GEMMs (same maths, fewer small kernels per step)
        self.fused = fused
        # add_rms (with fused): the residual adds as plain products plus one kernel that adds
        # and normalises (no copy of the residual into every addmm output)
        self.add_rms = add_rms
        self.dh = shape.hidden // shape.heads
        g = torch.Generator(device=device).manual_seed(0)

        def w(*size, std=0.02):
            return (torch.randn(*size, device=device, generator=g) * std).to(dtype)

        h, kvd = shape.hidden, shape.kv_heads * self.dh
        self.embed = w(shape.vocab, h, std=1.0)
        self.lm_head = w(shape.vocab, h)
        self.layers = [
            {
                "qkv": w(h + 2 * kvd, h),
                "o": w(h, h),
                "up": w(2 * shape.ffn, h),
                "down": w(h, shape.ffn),
            }
            for _ in range(shape.layers)
        ]
        if weights_t:
            # every weight stored transposed ((in, out) contiguous) behind an (out, in) view, so
            # that ``x @ W.T`` multiplies by a contiguous matrix (another GEMM layout, same maths)
            self.lm_head = self.lm_head.T.contiguous().T
            for L in self.layers:
                for name in L:
                    L[name] = L[name].T.contiguous().T
        self.gemm_tuning: list[dict] = []
        self._mm = self._choose_gemm(gemm)
        cshape = (batch, shape.kv_heads, max_len, self.dh)
        self.K = [torch.zeros(cshape, device=device, dtype=dtype) for _ in self.layers]
        self.V = [torch.zeros(cshape, device=device, dtype=dtype) for _ in self.layers]
        self.K_t = [
            torch.zeros(batch, shape.kv_heads, self.dh, max_len, device=device, dtype=dtype)
            for _ in self.layers
        ]
        self.v_mean = [
            torch.zeros(batch, shape.kv_heads, self.dh, device=device) for _ in self.layers
        ]
        self.lens = torch.zeros(batch, device=device, dtype=torch.int64)
        self.tok = torch.zeros(batch, device=device, dtype=torch.int64)
        inv = 1.0 / (10000 ** (torch.arange(0, self.dh, 2, device=device).float() / self.dh))
        self.inv_freq = inv

    def _choose_gemm(self, gemm: str):
        """The projections' GEMM: ``"cublas"`` (``x @ W.T`` / ``addmm``) or ``"triton"`` (the
        skinny kernel of ``_skinny.py``, the residual adds and SwiGLU fused into it, where it beats
        cuBLAS on this GPU, tuned here on the model's own weights; on CPU one fixed
        configuration, for tests)."""
        if gemm not in ("cublas", "triton"):
            raise ValueError(f"gemm must be 'cublas' or 'triton', got {gemm!r}")
        if gemm == "cublas":
            return None
        if not self.fused or self.add_rms:
            raise ValueError("gemm='triton' fuses the residual adds into the projections: "
                             "build with fused=True, add_rms=False")  # fmt: skip
        L0, dt = self.layers[0], self.embed.dtype
        problems = [(L0["qkv"], False, ""), (L0["o"], True, ""), (L0["up"], False, "swiglu"),
                    (L0["down"], True, ""), (self.lm_head, False, "")]  # fmt: skip
        if self.embed.device.type != "cuda":
            return SkinnyMM({(w.shape[0], w.shape[1], r, m): CONFIGS[0] for w, r, m in problems})
        g = torch.Generator(device=self.embed.device).manual_seed(2)
        probs = []
        for w, r, m in problems:
            x = torch.randn(self.B, w.shape[1], device=w.device, generator=g).to(dt)
            probs.append((x, w, r, m))
        mm, self.gemm_tuning = tune_skinny(probs)
        return mm

    def _cublas_mm(self, x, w, res=None, mode=""):
        """The projections with cuBLAS (``x @ W.T`` / ``addmm``), SwiGLU as its own Triton
        kernel: :meth:`_step_fused` without the skinny GEMM (same arguments as ``SkinnyMM``)."""
        y = x @ w.T if res is None else torch.addmm(res, x, w.T)
        if mode != "swiglu":
            return y
        B, F_ = y.shape[0], y.shape[1] // 2
        act = torch.empty(B, F_, device=y.device, dtype=y.dtype)
        _swiglu_kernel[(B, triton.cdiv(F_, 1024))](y, act, F_, BLOCK=1024)
        return act

    def prefill_random(self, length: int, seed: int = 1) -> None:
        """Fill positions ``[0, length)`` of every layer's cache with random K/V."""
        g = torch.Generator(device=self.lens.device).manual_seed(seed)
        for K, V, K_t, vm in zip(self.K, self.V, self.K_t, self.v_mean):
            K[:, :, :length].normal_(generator=g)
            V[:, :, :length].normal_(generator=g)
            K_t.copy_(K.transpose(-1, -2))
            vm.copy_(V[:, :, :length].float().mean(2))
        self.lens.fill_(length)

    @staticmethod
    def _rope(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
        """Rotary embedding of adjacent pairs as one complex product (fp32), ``x.dtype`` out."""
        xc = torch.view_as_complex(x.float().reshape(*x.shape[:-1], -1, 2))
        return torch.view_as_real(xc * cis).flatten(-2).to(x.dtype)

    def _rms(self, x: torch.Tensor) -> torch.Tensor:
        """RMSNorm without weight over the last dim (eps as ``F.rms_norm``: the dtype's eps)."""
        if not self.fused:
            return F.rms_norm(x, (x.shape[-1],))
        H = x.shape[-1]
        out = torch.empty_like(x)
        _rms_norm_kernel[(x.numel() // H,)](
            x, out, H, torch.finfo(x.dtype).eps, BLOCK=triton.next_power_of_2(H), num_warps=8
        )
        return out

    def _add_rms(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x += y`` in place, returns the RMSNorm of the new ``x`` (one kernel)."""
        H = x.shape[-1]
        out = torch.empty_like(x)
        _add_rms_kernel[(x.numel() // H,)](
            x, y, out, H, torch.finfo(x.dtype).eps, BLOCK=triton.next_power_of_2(H), num_warps=8
        )
        return out

    def _step_add_rms(self, attn) -> torch.Tensor:
        """:meth:`_step_fused` with each residual add fused into the following RMSNorm."""
        s, B, dh = self.s, self.B, self.dh
        pos = self.lens
        x = self.embed[self.tok]  # (B,h), a new tensor: updated in place below
        new_lens = self.lens + 1
        ang = pos.float()[:, None] * self.inv_freq  # (B,dh/2)
        cs = torch.view_as_real(torch.polar(torch.ones_like(ang), ang)).contiguous()  # (B,dh/2,2)
        h = self._rms(x)
        for L, K, V, K_t, vm in zip(self.layers, self.K, self.V, self.K_t, self.v_mean):
            qkv = h @ L["qkv"].T  # (B, (Hq+2Hkv)*dh)
            q = torch.empty(B, s.heads, 1, dh, device=x.device, dtype=x.dtype)
            _rope_cache_kernel[(B, s.heads + s.kv_heads)](
                qkv, cs, pos, q, K, V, K_t, vm, self.S, s.heads, s.kv_heads, DH=dh, HALF=dh // 2,
            )  # fmt: skip
            a = attn(q, K, V, K_t, vm, new_lens)  # (B,Hq,1,dh)
            h = self._add_rms(x, a.reshape(B, s.hidden) @ L["o"].T)
            gu = h @ L["up"].T  # (B, 2*ffn)
            act = torch.empty(B, s.ffn, device=x.device, dtype=x.dtype)
            _swiglu_kernel[(B, triton.cdiv(s.ffn, 1024))](gu, act, s.ffn, BLOCK=1024)
            h = self._add_rms(x, act @ L["down"].T)  # the next layer's (or the final) norm
        logits = h @ self.lm_head.T
        self.tok.copy_(logits.argmax(-1))
        self.lens.copy_(new_lens)
        return self.tok

    def _step_fused(self, attn) -> torch.Tensor:
        """:meth:`step` with the small per-layer operations fused into Triton kernels, and the
        projections on the skinny GEMM (``gemm="triton"``: SwiGLU and the residual adds in its
        epilogue) or on cuBLAS."""
        s, B, dh = self.s, self.B, self.dh
        mm = self._mm or self._cublas_mm
        pos = self.lens
        x = self.embed[self.tok]  # (B,h)
        new_lens = self.lens + 1
        ang = pos.float()[:, None] * self.inv_freq  # (B,dh/2)
        cs = torch.view_as_real(torch.polar(torch.ones_like(ang), ang)).contiguous()  # (B,dh/2,2)
        for L, K, V, K_t, vm in zip(self.layers, self.K, self.V, self.K_t, self.v_mean):
            qkv = mm(self._rms(x), L["qkv"])  # (B, (Hq+2Hkv)*dh)
            q = torch.empty(B, s.heads, 1, dh, device=x.device, dtype=x.dtype)
            _rope_cache_kernel[(B, s.heads + s.kv_heads)](
                qkv, cs, pos, q, K, V, K_t, vm, self.S, s.heads, s.kv_heads, DH=dh, HALF=dh // 2,
            )  # fmt: skip
            a = attn(q, K, V, K_t, vm, new_lens)  # (B,Hq,1,dh)
            x = mm(a.reshape(B, s.hidden), L["o"], res=x)
            act = mm(self._rms(x), L["up"], mode="swiglu")  # (B, ffn)
            x = mm(act, L["down"], res=x)
        logits = mm(self._rms(x), self.lm_head)
        self.tok.copy_(logits.argmax(-1))
        self.lens.copy_(new_lens)
        return self.tok

    def step(self, attn) -> torch.Tensor:
        """One decode step for ``self.tok``; ``attn(q, K, V, K_t, v_mean, lens)`` -> (B,Hq,1,dh)."""
        if self.fused:
            return self._step_add_rms(attn) if self.add_rms else self._step_fused(attn)
        s, B, dh = self.s, self.B, self.dh
        pos = self.lens  # position of the new token (uniform across the batch here)
        x = self.embed[self.tok][:, None, :]  # (B,1,h)
        new_lens = self.lens + 1
        ang = pos.float()[:, None, None, None] * self.inv_freq  # (B,1,1,dh/2), once per step
        cis = torch.polar(torch.ones_like(ang), ang)
        nqk = s.heads + s.kv_heads
        for L, K, V, K_t, vm in zip(self.layers, self.K, self.V, self.K_t, self.v_mean):
            hn = F.rms_norm(x, (s.hidden,))
            qkv = hn @ L["qkv"].T
            qk, v = qkv.split([nqk * dh, s.kv_heads * dh], dim=-1)
            # q and k heads rotated together: three small kernels instead of about twenty
            qk = self._rope(qk.reshape(B, nqk, 1, dh), cis)
            q, k = qk[:, : s.heads], qk[:, s.heads :]
            v = v.view(B, 1, s.kv_heads, dh).transpose(1, 2)
            idx = pos[:1]
            K.index_copy_(2, idx, k)
            V.index_copy_(2, idx, v)
            K_t.index_copy_(3, idx, k.transpose(-1, -2))
            vm.add_((v[:, :, 0].float() - vm) / new_lens.float()[:, None, None])
            a = attn(q, K, V, K_t, vm, new_lens)  # (B,Hq,1,dh)
            x = x + a.transpose(1, 2).reshape(B, 1, s.hidden) @ L["o"].T
            hn = F.rms_norm(x, (s.hidden,))
            gate, up = (hn @ L["up"].T).chunk(2, dim=-1)
            x = x + (F.silu(gate) * up) @ L["down"].T
        logits = F.rms_norm(x, (s.hidden,)) @ self.lm_head.T
        self.tok.copy_(logits[:, 0].argmax(-1))
        self.lens.copy_(new_lens)
        return self.tok


def fused_ops_agree(device, dtype, add_rms: bool = False) -> str | None:
    """Check the fused model operations against the plain PyTorch step on a small model: one
    decode step from the same state must give the same token and the same cache writes (to
    bf16 rounding). Returns ``None`` when they agree, else what differed."""
    from sparq.kernels import dense_decode

    shape = LlamaShape(hidden=256, heads=4, kv_heads=2, layers=2, ffn=512, vocab=512)
    models = [
        TinyLlama(shape, 2, 64, device, dtype, fused=f, add_rms=add_rms and f)
        for f in (False, True)
    ]
    for m in models:
        m.prefill_random(40)
        m.tok.copy_(torch.arange(2, device=device) * 7)

    def attn(q, K, V, K_t, vm, lens):
        return dense_decode(q, K, V, lens, q.shape[-1] ** -0.5)

    toks = [m.step(attn).clone() for m in models]
    if not torch.equal(toks[0], toks[1]):
        return f"tokens differ: {toks[0].tolist()} vs {toks[1].tolist()}"
    a, b = models
    new = {"K": (slice(None), slice(None), 40), "V": (slice(None), slice(None), 40),
           "K_t": (Ellipsis, 40), "v_mean": (Ellipsis,)}  # fmt: skip
    for name, at in new.items():
        for x, y in zip(getattr(a, name), getattr(b, name)):
            x, y = x.float(), y.float()
            # the fused norm rounds like torch's only up to an ulp, which the projection
            # spreads over the new key/value: normwise 2e-2 at the new position (bf16 ulp is
            # 2^-8..2^-7 relative); a write at a wrong position or a wrong rotation is O(1)
            err = (x[at] - y[at]).norm() / x[at].norm().clamp_min(1e-30)
            if not err <= 2e-2:
                return f"{name} differs at the new position (normwise {err.item():.3g})"
            x[at] = 0
            y[at] = 0
            if not torch.equal(x, y):
                return f"{name} differs away from the new position"
    return None
