"""Hugging Face integration on tiny random-init configs (no downloads)."""

import pytest
import torch

import sparq

tr = pytest.importorskip("transformers")
import sparq.hf  # noqa: E402


def _config(name):
    common = {
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "max_position_embeddings": 128,
        "pad_token_id": 0,
    }
    if name == "llama":
        return tr.LlamaConfig(num_attention_heads=4, num_key_value_heads=2, **common)
    if name == "mistral":
        return tr.MistralConfig(
            num_attention_heads=4, num_key_value_heads=1, sliding_window=None, **common
        )
    if name == "qwen2":
        return tr.Qwen2Config(num_attention_heads=4, num_key_value_heads=2, **common)
    if name == "gemma":  # Gemma's wide heads (dh = 256) and its own query scaling
        return tr.GemmaConfig(num_attention_heads=2, num_key_value_heads=1, head_dim=256, **common)
    if name == "gpt_neox":  # MHA, partial rotary: reallocation is on by default here
        return tr.GPTNeoXConfig(num_attention_heads=4, rotary_pct=0.5, **common)
    raise AssertionError(name)


def _head_dim(c):
    return getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads


def _inputs(seed=0):
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 64, (2, 13), generator=gen)
    mask = torch.ones_like(ids)
    ids[1, :5] = 0  # second prompt is 5 tokens shorter (left padding)
    mask[1, :5] = 0
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "max_new_tokens": 6,
        "do_sample": False,
        "pad_token_id": 0,
    }


def _model(name):
    torch.manual_seed(0)
    return tr.AutoModelForCausalLM.from_config(_config(name)).eval()


def _check_family(name):
    model = _model(name)
    kw = _inputs()
    ref = model.generate(**kw)
    dh = _head_dim(model.config)
    cfg = sparq.SparQConfig(r=dh, k=10_000, local_window=2, sink_tokens=1, dense_fallback=False)
    sparq.hf.patch(model, cfg)
    assert sparq.hf.is_patched(model)
    out = model.generate(**kw)
    assert torch.equal(out, ref)  # r = dh and k >= S: SparQ is exactly dense
    sparq.hf.unpatch(model)
    sparq.hf.patch(model, sparq.SparQConfig(compression=4, local_window=2))
    out4 = model.generate(**kw)
    assert out4.shape == ref.shape
    sparq.hf.unpatch(model)
    assert torch.equal(model.generate(**kw), ref)


def test_llama_patched_generate_equals_dense():
    _check_family("llama")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["mistral", "qwen2", "gemma", "gpt_neox"])
def test_family_patched_generate_equals_dense(name):
    _check_family(name)


def test_sparq_path_runs_with_k_t_and_running_mean():
    model = _model("gpt_neox")
    calls = []
    real = sparq.hf.sparq_attention

    def spy(*a, **kw):
        calls.append(kw)
        return real(*a, **kw)

    sparq.hf.patch(model, sparq.SparQConfig(r=4, k=3, local_window=1, dense_fallback=False))
    kw = _inputs(1)
    try:
        sparq.hf.sparq_attention = spy
        model.generate(**kw)
    finally:
        sparq.hf.sparq_attention = real
    assert calls, "decode steps did not reach SparQ"
    assert all(c["K_t"] is not None for c in calls)
    assert all(c["reallocation"] for c in calls)  # MHA default
    # the running mean handed to SparQ equals the masked mean of the valid V rows
    last = calls[-1]
    assert last["attention_mask"] is not None  # ragged batch reached the reference with a mask


def test_running_v_mean_matches_masked_mean():
    B, H, dh = 2, 3, 8

    class C:
        def __init__(self):
            self.sparq_vsum, self.sparq_vcount, self.sparq_seen = {}, {}, {}

    cache = C()
    V = torch.randn(B, H, 10, dh)
    valid = torch.ones(B, 10, dtype=torch.bool)
    valid[1, :4] = False
    m1 = sparq.hf._running_v_mean(cache, 0, V[:, :, :7], valid[:, :7])
    m2 = sparq.hf._running_v_mean(cache, 0, V, valid)
    for b in range(B):
        torch.testing.assert_close(m1[b], V[b, :, :7][:, valid[b, :7]].mean(1))
        torch.testing.assert_close(m2[b], V[b][:, valid[b]].mean(1))


def test_patch_rejects_bad_config():
    model = _model("llama")
    with pytest.raises(TypeError, match="SparQConfig"):
        sparq.hf.patch(model, {"compression": 8})
