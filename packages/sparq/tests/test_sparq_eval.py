"""The accuracy harness, the CLI and the committed models."""

import json
from importlib import resources

import pytest
import torch

from sparq import cli
from sparq import eval as sev
from sparq.baselines import METHODS

TINY_TASK = sev.RecallTask(n_keys=8, n_values=8, n_filler=4, n_pairs=4, n_queries=2, seq_len=24)


def _tiny_model():
    torch.manual_seed(0)
    cfg = sev.ModelConfig(vocab=TINY_TASK.vocab, d_model=16, n_layers=2, n_heads=2,
                          n_kv_heads=1, head_dim=16, d_ff=32, max_len=32)  # fmt: skip
    return sev.TinyLlama(cfg).eval()


def test_recall_sample_layout():
    ids, mask = TINY_TASK.sample(3, torch.Generator().manual_seed(0))
    assert ids.shape == (3, 24)
    assert mask.sum(1).tolist() == [2, 2, 2]
    # each answer is the value stored right after the queried key in the prompt
    for b in range(3):
        for t in mask[b].nonzero().flatten().tolist():
            key, ans = ids[b, t - 1].item(), ids[b, t].item()
            j = (ids[b, : TINY_TASK.prompt_len] == key).nonzero().flatten()[0].item()
            assert ids[b, j + 1].item() == ans


def test_harness_runs_every_method_and_dense_rows_agree():
    model = _tiny_model()
    rows = sev.evaluate_recall(model, TINY_TASK, compressions=(2,), n_samples=8)
    assert [r["method"] for r in rows] == ["dense", *[m for m in METHODS if m != "dense"]]
    assert all(0.0 <= r["accuracy"] <= 1.0 for r in rows)
    # the dense harness path equals the model's own causal attention
    ids, mask = TINY_TASK.sample(8, torch.Generator().manual_seed(2024))
    assert rows[0]["accuracy"] == pytest.approx(sev.recall_accuracy(model, ids, mask))


def test_fidelity_is_exact_at_full_budget():
    model = _tiny_model()
    ids, _ = TINY_TASK.sample(2, torch.Generator().manual_seed(1))
    fid, qst = sev.fidelity_and_q_stats(model, ids[:, :-1], t0=18, compressions=(1.0,))
    assert len(fid) == 2
    assert len(qst) == 2
    for f in fid:  # compression 1: r = dh, k >= S -> SparQ equals dense, alpha = true mass = 1
        assert f["cosine_median"] == pytest.approx(1.0, abs=1e-5)
        assert f["alpha_abs_err_mean"] < 1e-5


def test_checkpoint_roundtrip(tmp_path):
    model = _tiny_model()
    sev.save_checkpoint(tmp_path / "m.pt", model, {"kind": "recall", "task": TINY_TASK.to_dict()})
    m2, meta = sev.load_checkpoint(tmp_path / "m.pt")
    ids, _ = TINY_TASK.sample(2, torch.Generator().manual_seed(0))
    # fp16 storage: logits agree to fp16 weight rounding
    torch.testing.assert_close(m2(ids), model(ids), atol=2e-2, rtol=2e-2)
    assert meta["task"]["n_pairs"] == 4


def test_cli_cost(capsys):
    assert cli.main(["cost", "--S", "16384", "--B", "64", "--compression", "8"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["r"] == 16
    assert out["compression"] == pytest.approx(8, rel=0.02)


def test_cli_help_exits_cleanly():
    with pytest.raises(SystemExit) as e:
        cli.main(["--help"])
    assert e.value.code == 0


def test_stdlib_corpus_is_available():
    data = sev.stdlib_bytes(10_000)
    assert len(data) == 10_000
    assert b"def " in data


def _committed(kind):
    return (resources.files("sparq") / "data" / f"{kind}.pt").is_file()


@pytest.mark.slow
@pytest.mark.skipif(not _committed("recall"), reason="no committed recall model")
def test_demo_runs_and_passes():
    from sparq import _demo

    res = _demo.run()
    assert res["ok"], res["summary"]
