"""Model-level acceptance: a 4-layer unit-scaled decoder keeps >= 95 % of all tensors
(activations, activation grads, weights, weight grads) at RMS in [1/2, 2]; its plain-torch
standard-parametrization twin has >= 20 % of tensors outside [1/8, 8]."""

import pytest
import torch

import unit_scaling.functional as U
import unit_scaling.nn as unn
from unit_scaling.analysis import assert_unit_scaled, scale_report
from unit_scaling.testing import SPTransformerDecoder

VOCAB, LAYERS, SEQ, BATCH = 256, 4, 64, 8


def _tokens():
    # token batches through the real embedding path: iid uniform token ids. (Natural text adds a
    # unigram component to the loss gradient that sums coherently over tokens, so weight
    # gradients at init grow with tokens x |unigram - uniform|: signal, not mis-scaling; the
    # README documents it.)
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, VOCAB, (BATCH, SEQ), generator=g)


def loss_u(logits, ids):
    return U.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def loss_sp(logits, ids):
    return torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), ids[:, 1:].flatten())


def _check(width):
    ids = _tokens()
    model = unn.TransformerDecoder(VOCAB, width, LAYERS, max(width // 64, 1))
    report = assert_unit_scaled(model, ids, 0.5, 2.0, 0.95, loss_fn=loss_u)
    wide = report.outside(1 / 8, 8)
    # documented exception: the readout logits have RMS width^-1/2 (μP 1/fan_in multiplier)
    assert all(r.name == "head" and r.kind == "activation" for r in wide), wide
    sp = SPTransformerDecoder(VOCAB, width, LAYERS, max(width // 64, 1))
    sp_report = scale_report(sp, ids, loss_sp)
    assert 1 - sp_report.fraction_within(1 / 8, 8) >= 0.2
    return report


@pytest.mark.parametrize("width", [64, 128])
def test_decoder_unit_scaled(width):
    report = _check(width)
    kinds = {r.kind for r in report}
    assert kinds == {"activation", "activation_grad", "weight", "weight_grad"}


@pytest.mark.slow
@pytest.mark.parametrize("width", [256, 512, 1024])
def test_decoder_unit_scaled_wide(width):
    _check(width)


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
