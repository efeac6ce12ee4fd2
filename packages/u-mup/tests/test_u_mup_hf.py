import pytest
import torch

from u_mup import UMupConfig

transformers = pytest.importorskip("transformers")
from u_mup.hf import export_to_sp, from_hf_config  # noqa: E402

ALPHAS = UMupConfig(
    alpha_attn_softmax=2.0,
    alpha_ffn_act=0.5,
    alpha_res=1.5,
    alpha_res_attn_ratio=0.7,
    alpha_loss_softmax=2.0,
)


@pytest.mark.parametrize("p", ["umup", "mup", "sp"])
@pytest.mark.parametrize("tied", [False, True])
def test_export_logits_match(tiny, p, tied):
    m = tiny(p, width=32, kv_groups=2, tied=tied, umup=ALPHAS, base_width=16)
    with torch.no_grad():  # non-trivial gains so the norm weights matter
        for q in m.parameters():
            if q.dim() == 1:
                q.add_(0.1 * torch.randn_like(q))
    idx = torch.randint(0, 64, (2, 12))
    hf = export_to_sp(m, seq_len=12)
    assert type(hf).__name__ == "LlamaForCausalLM"
    diff = (hf(idx).logits - m(idx)).abs().max().item()
    assert diff <= 1e-3  # the acceptance bound (fp32); folding is exact up to rounding and eps


def test_from_hf_config_round_trip():
    cfg = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
    )
    m = from_hf_config(cfg)
    assert (m.cfg.width, m.cfg.n_layers, m.cfg.n_kv_heads, m.cfg.ffn_dim) == (32, 2, 2, 64)
    hf = export_to_sp(m, seq_len=6)
    idx = torch.randint(0, 50, (1, 6))
    assert (hf(idx).logits - m(idx)).abs().max().item() <= 1e-3


def test_umup_export_needs_seq_len(tiny):
    with pytest.raises(ValueError, match="seq_len"):
        export_to_sp(tiny("umup"))
    with pytest.raises(TypeError, match="Decoder"):
        export_to_sp(torch.nn.Linear(2, 2))
