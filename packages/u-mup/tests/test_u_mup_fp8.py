import torch

from u_mup._fp8 import FP8Sim, quantise


def test_quantise_is_torch_cast_and_saturates():
    x = torch.randn(4096) * 30
    for dt in (torch.float8_e4m3fn, torch.float8_e5m2):
        m = torch.finfo(dt).max
        assert torch.equal(quantise(x, dt), x.clamp(-m, m).to(dt).float())
    assert quantise(torch.tensor([1e6]), torch.float8_e4m3fn).item() == 448.0


def test_fp8_sim_counts_flushes(tiny):
    m = tiny("sp")
    m.fp8 = FP8Sim(track=True)
    idx = torch.randint(0, 64, (2, 8))
    m.loss(idx, idx).backward()
    ff = m.fp8.flush_fraction()
    assert 0.0 <= ff["fwd"] <= 1.0
    assert ff["bwd"] > 0.0  # SP's tiny gradients underflow E5M2 with a static scale of 1
    assert all(p.grad is not None for p in m.parameters())
