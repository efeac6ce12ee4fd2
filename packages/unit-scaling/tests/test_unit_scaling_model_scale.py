"""Model-level acceptance: a 4-layer unit-scaled decoder keeps >= 95 % of all tensors
(activations, activation grads, weights, weight grads) at RMS in [1/2, 2]; its plain-torch
standard-parametrization twin has >= 20 % of tensors outside [1/8, 8]."""

import pytest
import torch

import unit_scaling.functional as U
import unit_scaling.nn as unn
from unit_scaling.analysis import assert_unit_scaled, scale_report
from unit_scaling.testing import SPTransformerDecoder, stdlib_bytes

VOCAB, LAYERS, SEQ, BATCH = 256, 4, 64, 8


def _tokens():
    # natural text: bytes of Python standard-library sources (a peaked, repetitive
    # distribution; the decoder's pair-coherence weight-gradient rule handles it)
    return stdlib_bytes(BATCH, SEQ)


def _random_tokens():
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)


def loss_u(logits, ids):
    return U.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def loss_sp(logits, ids):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def _check(width, ids=None):
    ids = _tokens() if ids is None else ids
    model = unn.TransformerDecoder(VOCAB, width, LAYERS, max(width // 64, 1))
    report = assert_unit_scaled(model, ids, 0.5, 2.0, 0.95, loss_fn=loss_u)
    wide = report.outside(1 / 8, 8)
    # documented exception: the readout logits have RMS width^-1/2 (μP 1/fan_in multiplier)
    assert all(r.name == "head" and r.kind == "activation" for r in wide), wide
    sp = SPTransformerDecoder(VOCAB, width, LAYERS, max(width // 64, 1))
    sp_report = scale_report(sp, ids, loss_sp)
    assert 1 - sp_report.fraction_within(1 / 8, 8) >= 0.2
    return report


@pytest.mark.parametrize("width", [64])
def test_decoder_unit_scaled(width):
    report = _check(width)
    kinds = {r.kind for r in report}
    assert kinds == {"activation", "activation_grad", "weight", "weight_grad"}


@pytest.mark.slow
@pytest.mark.parametrize("width", [128, 256, 512, 1024])
def test_decoder_unit_scaled_wide(width):
    _check(width)


def test_decoder_unit_scaled_random_tokens():
    _check(64, _random_tokens())


def test_without_pair_rule_natural_text_weight_grads_are_large():
    # the cause the pair-coherence rule removes: on natural text the plain B^-1/2 rule leaves
    # weight gradients several times above unit (κ^1/2 ≈ 4.6 for this batch)
    torch.manual_seed(0)
    model = unn.TransformerDecoder(VOCAB, 64, LAYERS, 1, pair_grad_scale=False)
    report = scale_report(model, _tokens(), loss_u)
    grads = sorted(r.rms for r in report if r.kind == "weight_grad")
    assert grads[len(grads) // 2] > 2.0


def test_pair_coherence_matches_bincount():
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 5, (6, 11), generator=g)
    b = torch.randint(0, 5, (6, 11), generator=g)
    b[0, :4] = -100
    keep = b != -100
    n = torch.bincount((a * 5 + b)[keep]).double()
    expected = float((n * n).sum() / keep.sum())
    # exact integer counts in fp32: equal to rounding of the final division
    assert abs(float(unn.pair_coherence(a, b)) - expected) < 1e-5 * expected
    distinct = torch.arange(40).view(4, 10)
    assert float(unn.pair_coherence(distinct, distinct)) == 1.0


def _grads(model, ids, **kw):
    model.zero_grad(set_to_none=True)
    model.loss(ids, **kw).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_decoder_precomputed_kappa_matches_inline():
    # κ computed once outside the step (tensor or Python float) gives the same gradients as the
    # decoder computing it inline; κ = 1 gives the plain B^-1/2 rule (pair_grad_scale=False)
    torch.manual_seed(0)
    model = unn.TransformerDecoder(VOCAB, 32, 2, 1)
    ids = _tokens()[:4]
    kappa = unn.pair_coherence(ids[:, :-1], ids[:, 1:])
    assert float(kappa) > 2.0  # natural text: the check below is not trivially κ ≈ 1
    inline, pre = _grads(model, ids), _grads(model, ids, kappa=kappa)
    pre_f = _grads(model, ids, kappa=float(kappa))
    one = _grads(model, ids, kappa=1.0)
    model.pair_grad_scale = False
    plain = _grads(model, ids)
    for n in inline:
        # same ops in the same order, fp32: identical up to the fp32 rounding of κ^-1/2
        torch.testing.assert_close(pre[n], inline[n], rtol=1e-6, atol=0.0)
        torch.testing.assert_close(pre_f[n], inline[n], rtol=1e-6, atol=0.0)
        torch.testing.assert_close(one[n], plain[n], rtol=1e-6, atol=0.0)
    # and κ really changes the weight gradients, by κ^-1/2
    w = "head.weight"
    ratio = float(inline[w].norm() / plain[w].norm())
    assert abs(ratio - float(kappa) ** -0.5) < 1e-4


@pytest.mark.parametrize(
    ("kappa", "err"),
    [(0.5, ValueError), (float("nan"), ValueError), ("2", TypeError), (torch.ones(2), TypeError)],
)
def test_decoder_bad_kappa(kappa, err):
    model = unn.TransformerDecoder(VOCAB, 16, 1, 1)
    with pytest.raises(err, match="kappa"):
        model.loss(_random_tokens()[:2], kappa=kappa)


def test_assert_unit_scaled_lists_offenders():
    sp = SPTransformerDecoder(VOCAB, 64, 2, 1)
    with pytest.raises(AssertionError, match=r"(?s)offending tensors:.*weight_grad"):
        assert_unit_scaled(sp, _tokens(), loss_fn=loss_sp)


@pytest.mark.gpu
def test_decoder_unit_scaled_cuda_bf16():
    ids = _tokens().cuda()
    model = unn.TransformerDecoder(VOCAB, 512, LAYERS, 8).cuda()
    with torch.autocast("cuda", dtype=torch.bfloat16):
        report = assert_unit_scaled(model, ids, 0.5, 2.0, 0.95, loss_fn=loss_u)
    assert len(report) > 100
