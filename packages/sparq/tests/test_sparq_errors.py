"""Bad input produces clear errors naming the argument."""

import pytest
import torch

import sparq


def _qkv(B=1, Hq=4, Hkv=2, S=8, dh=16):
    return torch.randn(B, Hq, 1, dh), torch.randn(B, Hkv, S, dh), torch.randn(B, Hkv, S, dh)


@pytest.mark.parametrize(
    ("mutate", "exc", "match"),
    [
        (lambda q, K, V: (q, K, V, {"r": 17, "k": 2}), ValueError, "r must"),
        (lambda q, K, V: (q, K, V, {"r": 2, "k": 0}), ValueError, "k must"),
        (lambda q, K, V: (q, K, V, {"r": 2.0, "k": 2}), TypeError, "r must be an int"),
        (lambda q, K, V: (q.repeat(1, 1, 2, 1), K, V, {}), ValueError, "query length 1"),
        (lambda q, K, V: (q[:, :3], K, V, {}), ValueError, "mismatched head counts"),
        (lambda q, K, V: (q, K.double(), V.double(), {}), TypeError, "dtype"),
        (lambda q, K, V: (q, K[..., :8], V[..., :8], {}), ValueError, "does not match"),
        (lambda q, K, V: (q[0], K, V, {}), ValueError, "4-D"),
        (
            lambda q, K, V: (q, K, V, {"K_t": K.transpose(-1, -2)}),
            ValueError,
            "K_t must be contiguous",
        ),
        (lambda q, K, V: (q, K, V, {"K_t": K.contiguous()}), ValueError, "K_t must have shape"),
        (
            lambda q, K, V: (q, K, V, {"K_t": K.transpose(-1, -2).half().contiguous()}),
            TypeError,
            "K_t has dtype",
        ),
        (lambda q, K, V: (q, K, V, {"seq_lens": torch.tensor([3, 4])}), ValueError, "seq_lens"),
        (lambda q, K, V: (q, K, V, {"seq_lens": torch.tensor([0])}), ValueError, r"\[1, S"),
        (
            lambda q, K, V: (q, K, V, {"seq_lens": torch.tensor([3], dtype=torch.int32)}),
            TypeError,
            "int64",
        ),
        (
            lambda q, K, V: (q, K, V, {"v_mean": torch.zeros(1, 2), "reallocation": True}),
            ValueError,
            "v_mean",
        ),
    ],
)
def test_bad_inputs(mutate, exc, match):
    q, K, V = _qkv()
    q, K, V, extra = mutate(q, K, V)
    kw = {"r": 4, "k": 3}
    kw.update(extra)
    with pytest.raises(exc, match=match):
        sparq.sparq_attention(q, K, V, **kw)


def test_prefill_rejects_too_many_rows():
    q = torch.randn(1, 2, 9, 16)
    K = torch.randn(1, 2, 8, 16)
    with pytest.raises(ValueError, match="T <= S"):
        sparq.sparq_attention_prefill(q, K, K, r=4, k=3)
