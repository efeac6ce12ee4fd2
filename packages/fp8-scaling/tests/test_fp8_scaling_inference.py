import pytest
import torch
from torch import nn

import fp8_scaling as fs


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 128), nn.GELU(), nn.Linear(128, 32))


def test_quantize_once_memory_and_accuracy(sqnr):
    m = _model()
    x = torch.randn(16, 64)
    ref = m(x).detach()
    q = fs.quantize_for_inference(m)
    assert isinstance(q[0], fs.Float8InferenceLinear)
    assert q[0].weight_fp8.dtype == torch.float8_e4m3fn
    w8 = sum(l.weight_fp8.numel() * l.weight_fp8.element_size() for l in (q[0], q[2]))
    bf16 = (64 * 128 + 128 * 32) * 2
    assert w8 / bf16 <= 0.52
    # the stored weight is exactly q(W * 2**b): dequantised it is within E4M3 rounding
    with torch.no_grad():
        y = q(x)
    assert sqnr(y, ref) > 22  # two E4M3 GEMMs in a row


def test_static_activations_calibrated_and_from_biases(sqnr):
    x = torch.randn(16, 64)
    ref = _model()(x).detach()
    q = fs.quantize_for_inference(_model(), activations="static", calibration_batches=[x, x * 0.5])
    assert not torch.isnan(q[0].act_bias)
    assert q[0].act_bias == fs.compute_bias(fs.amax(x), fs.E4M3)
    with torch.no_grad():
        assert sqnr(q(x), ref) > 22
    q2 = fs.quantize_for_inference(_model(), activations="static",
                                   activation_biases={"0": 4.0, "2": 3.0})  # fmt: skip
    assert q2[2].act_bias == 3.0
    with pytest.raises(ValueError, match="static activations need"):
        fs.quantize_for_inference(_model(), activations="static")
    with pytest.raises(ValueError, match="no static activation bias"):
        fs.quantize_for_inference(_model(), activations="static", activation_biases={"0": 1.0})


def test_save_load_round_trip(tmp_path):
    q = fs.quantize_for_inference(_model())
    path = tmp_path / "m.pt"
    fs.save_quantized(q, path)
    fresh = fs.load_quantized(_model(), path)
    assert isinstance(fresh[2], fs.Float8InferenceLinear)
    x = torch.randn(5, 64)
    with torch.no_grad():
        assert torch.equal(fresh(x), q(x))
    assert torch.equal(fresh[0].weight_fp8.view(torch.uint8), q[0].weight_fp8.view(torch.uint8))


def test_from_trained_float8_linear():
    m = fs.convert_to_float8(_model())
    q = fs.quantize_for_inference(m)
    assert isinstance(q[0], fs.Float8InferenceLinear)
    with pytest.raises(TypeError, match="floating"):
        q(torch.ones(2, 64, dtype=torch.int32))
