"""Unit-scaled attention: scale rule under causal/padding/window masks, GQA equivalence.

Tolerance 0.1 as in the per-op tests (samples of >= 2^17 elements; model error < 5 %).
"""

import pytest
import torch
import torch.nn.functional as F

import unit_scaling.functional as U
from unit_scaling.testing import assert_scale, unit_backward


def qkv(b=2, hq=4, hkv=4, s=256, d=64):
    return (
        torch.randn(b, hq, s, d, requires_grad=True),
        torch.randn(b, hkv, s, d, requires_grad=True),
        torch.randn(b, hkv, s, d, requires_grad=True),
    )


def _padding_mask(b=2, s=256):
    m = torch.ones(b, 1, 1, s, dtype=torch.bool)
    m[0, ..., 100:] = False  # sequence 0 has 100 real tokens
    return m


MASKS = {
    "none": dict(),
    "causal": dict(is_causal=True),
    "padding": dict(attn_mask=_padding_mask()),
    "padding+causal": dict(attn_mask=_padding_mask(), is_causal=True),
    "window": dict(is_causal=True, window=32),
    "window-bidirectional": dict(window=16),
    "additive": dict(attn_mask=torch.where(_padding_mask(), 0.0, float("-inf"))),
}


@pytest.mark.parametrize("mask", list(MASKS))
@pytest.mark.parametrize("mult", [1.0, 4.0])
def test_unconstrained_unit_scale_with_masks(mask, mult):
    q, k, v = qkv()
    y = U.scaled_dot_product_attention(q, k, v, mult=mult, constraint=None, **MASKS[mask])
    unit_backward(y)
    for name, t in (("out", y), ("dq", q.grad), ("dk", k.grad), ("dv", v.grad)):
        assert_scale(t, 1.0, 0.1, name=f"{mask}/{name}")


@pytest.mark.parametrize("mask", ["causal", "padding", "window"])
def test_default_constraint_output_unit_and_exact_gradient(mask):
    q, k, v = qkv(s=128)
    y = U.scaled_dot_product_attention(
        q, k, v, **MASKS[mask] if mask != "padding" else dict(attn_mask=_padding_mask(s=128))
    )
    g = unit_backward(y)
    assert_scale(y, 1.0, 0.1)
    # constrained: exactly s * attention, so gradients are the true gradients of s * attention
    q2, k2, v2 = (t.detach().requires_grad_() for t in (q, k, v))
    s = (y.detach().pow(2).mean() / 1).sqrt()
    kw = dict(is_causal=True) if mask == "causal" else {}
    if mask == "window":
        kw = dict(attn_mask=U_mask(128, 32))
    if mask == "padding":
        kw = dict(attn_mask=_padding_mask(s=128))
    ref = F.scaled_dot_product_attention(q2, k2, v2, scale=1 / 64, **kw)
    factor = (y.detach() / ref.detach()).flatten()[0]
    torch.testing.assert_close(y.detach(), ref.detach() * factor, rtol=1e-4, atol=1e-5)
    (ref * factor).backward(g)
    for a, b in ((q.grad, q2.grad), (k.grad, k2.grad), (v.grad, v2.grad)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    assert s > 0


def U_mask(s, w):
    from unit_scaling._functional_attention import build_attention_mask

    return build_attention_mask(s, s, is_causal=True, window=w)


@pytest.mark.parametrize("hkv", [1, 2])
def test_gqa_equals_repeated_kv(hkv):
    q, k, v = qkv(hq=8, hkv=hkv, s=64, d=32)
    y = U.scaled_dot_product_attention(q, k, v, is_causal=True, constraint=None)
    g = unit_backward(y)
    k2, v2 = (t.detach().repeat_interleave(8 // hkv, dim=1).requires_grad_() for t in (k, v))
    q2 = q.detach().requires_grad_()
    y2 = U.scaled_dot_product_attention(q2, k2, v2, is_causal=True, constraint=None)
    # the unconstrained GQA backward scale for k/v includes the group size G; compare values
    # exactly and gradients after summing the repeated heads and undoing the sqrt(G) factor
    torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-6)
    y2.backward(g)
    torch.testing.assert_close(q.grad, q2.grad, rtol=1e-5, atol=1e-6)
    G = 8 // hkv
    k2g = k2.grad.unflatten(1, (hkv, G)).sum(2) / G**0.5
    torch.testing.assert_close(k.grad, k2g, rtol=1e-4, atol=1e-5)


def test_gqa_constrained_equals_repeated_kv_exactly():
    q, k, v = qkv(hq=8, hkv=2, s=64, d=32)
    y = U.scaled_dot_product_attention(q, k, v, is_causal=True)
    g = unit_backward(y)
    k2, v2 = (t.detach().repeat_interleave(4, dim=1).requires_grad_() for t in (k, v))
    q2 = q.detach().requires_grad_()
    y2 = U.scaled_dot_product_attention(q2, k2, v2, is_causal=True)
    torch.testing.assert_close(y, y2, rtol=1e-5, atol=1e-6)
    y2.backward(g)
    torch.testing.assert_close(q.grad, q2.grad, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(v.grad, v2.grad.unflatten(1, (2, 4)).sum(2), rtol=1e-4, atol=1e-5)


def test_mask_rule_uses_attended_keys():
    # a padding mask leaving 100 of 256 keys: the unit-scaled output must stay unit, while a rule
    # that only knows the sequence length (256) would be off by sqrt(256/100) = 1.6
    q, k, v = qkv()
    m = torch.zeros(1, 1, 1, 256, dtype=torch.bool)
    m[..., :100] = True
    y = U.scaled_dot_product_attention(q, k, v, attn_mask=m)
    assert_scale(y, 1.0, 0.1)


def test_bad_inputs():
    q, k, v = qkv(hq=6, hkv=4, s=8, d=8)
    with pytest.raises(ValueError, match="multiple"):
        U.scaled_dot_product_attention(q, k, v)
    q, k, v = qkv(s=8, d=8)
    with pytest.raises(ValueError, match="mult"):
        U.scaled_dot_product_attention(q, k, v, scale=0.1)
    with pytest.raises(ValueError, match="window"):
        U.scaled_dot_product_attention(q, k, v, window=0)


@pytest.mark.parametrize("kwargs", [{}, {"window": 5, "n_kv_heads": 1}, {"dropout_p": 0.0}])
def test_module_folds_output_scale_into_projection(kwargs):
    # nn.Attention applies the attention's output scale on the output projection's weight
    # instead of pre-scaling v; output and all gradients must equal the functional composition
    import unit_scaling.nn as unn

    torch.manual_seed(0)
    attn = unn.Attention(32, 4, **kwargs).double()
    x = torch.randn(2, 12, 32, dtype=torch.float64, requires_grad=True)
    y = attn(x)
    g = torch.randn_like(y)
    grads = torch.autograd.grad(y, [x, *attn.parameters()], g)

    b, s, _ = x.shape
    h, hkv, dh = attn.n_heads, attn.n_kv_heads, attn.head_size
    q, k, v = attn.qkv(x).split((h * dh, hkv * dh, hkv * dh), dim=-1)
    q = unn.apply_rope(q.view(b, s, h, dh).transpose(1, 2))
    k = unn.apply_rope(k.view(b, s, hkv, dh).transpose(1, 2))
    v = v.view(b, s, hkv, dh).transpose(1, 2)
    o = U.scaled_dot_product_attention(
        q, k, v, is_causal=True, window=attn.window, value_correlation=attn.value_correlation
    )
    ref = U.linear(o.transpose(1, 2).reshape(b, s, h * dh), attn.out.weight)
    ref_grads = torch.autograd.grad(ref, [x, *attn.parameters()], g)
    # float64: the two orders of the same products differ only by rounding (~1e-15 relative)
    torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(grads, ref_grads):
        torch.testing.assert_close(a, r, rtol=1e-12, atol=1e-12)
