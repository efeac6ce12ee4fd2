"""The CUDA-graph training loop's bookkeeping, on the CPU.

``torch.cuda.make_graphed_callables`` is replaced by a stand-in with the same observable
behaviour except the replay: it runs the warm-up iterations the real one runs (forward plus
``autograd.grad``, which push amaxes into the delayed recipe's histories and fire the recorder's
hooks), refuses an autocast weight cache as the real one does, and returns a module that runs
the model. A graphed run must then be bit-identical to an eager run: same losses, same amax
histories, same telemetry rows, with the telemetry steps taken eagerly.
"""

import copy

import pytest
import torch

import fp8_scaling as fs
from fp8_scaling import _gpt
from fp8_scaling._gpt import GPT, GPTConfig, stdlib_corpus, train_steps


class _FakeGraphed(torch.nn.Module):
    def __init__(self, wrapper, log):
        super().__init__()
        self.wrapper, self.log = wrapper, log

    def forward(self, idx):
        self.log.append("replay")
        return self.wrapper(idx)


def _fake_make_graphed_callables(log):
    def make(module, sample_args, num_warmup_iters=3, **kw):
        assert not module._forward_pre_hooks
        assert not module._forward_hooks
        if torch.is_autocast_enabled("cpu"):
            assert not torch.is_autocast_cache_enabled(), "capture needs cache_enabled=False"
        params = [p for p in module.parameters() if p.requires_grad]
        for _ in range(num_warmup_iters):
            out = module(*sample_args)
            torch.autograd.grad(out, params, torch.ones_like(out), allow_unused=True)
        log.append("captured")
        return _FakeGraphed(module, log)

    return make


def test_graphed_loop_matches_eager_loop(monkeypatch):
    recipe = fs.DelayedScaling(history_len=4)  # stateful: warm-up pushes must be undone
    torch.manual_seed(0)
    data = stdlib_corpus(20_000)
    base = GPT(GPTConfig(n_layer=1, d_model=32, n_head=2, seq_len=16))
    runs = []
    log: list[str] = []
    for graph in (False, True):
        model = fs.convert_to_float8(copy.deepcopy(base), recipe, auto_filter=False)
        rec = fs.ScaleRecorder(model, every=3)
        if graph:
            monkeypatch.setattr(_gpt, "_graph_capable", lambda device: True)
            monkeypatch.setattr(
                torch.cuda, "make_graphed_callables", _fake_make_graphed_callables(log)
            )
        res = train_steps(model, data, 6, batch_size=2, lr=1e-3, autocast_dtype=torch.bfloat16,
                          val_data=data[-2000:], val_every=5, cuda_graph=graph,
                          recorder=rec)  # fmt: skip
        hist = [m.fp8_amax_history for m in model.modules() if isinstance(m, fs.Float8Linear)]
        runs.append((res, rec.to_records(), hist))
    (eager, rec_e, hist_e), (graphed, rec_g, hist_g) = runs
    assert not eager["cuda_graph"]
    assert graphed["cuda_graph"]
    assert graphed["train"] == eager["train"]  # bit-identical (same ops in the same order)
    assert graphed["val"] == eager["val"]
    assert rec_g == rec_e  # nothing recorded during warm-up; steps 0 and 3 recorded
    assert sorted({r["step"] for r in rec_g}) == [0, 3]
    for a, b in zip(hist_e, hist_g):
        assert torch.equal(a, b)  # warm-up pushes were undone
    # captured once; 4 of 6 training steps replayed (0 and 3 are telemetry steps, eager), plus
    # the 4 validation batches at steps 0 and 5
    assert log.count("captured") == 1
    assert log.count("replay") == 4 + 2 * 4


def test_graphed_loop_ignored_on_cpu():
    torch.manual_seed(0)
    data = stdlib_corpus(20_000)
    model = GPT(GPTConfig(n_layer=1, d_model=16, n_head=2, seq_len=16))
    res = train_steps(model, data, 2, batch_size=2, cuda_graph=True)
    assert not res["cuda_graph"]
    assert len(res["train"]) == 2


def test_recorder_paused_records_nothing():
    model = torch.nn.Sequential(torch.nn.Linear(16, 16))
    rec = fs.ScaleRecorder(model, every=1)
    with rec.paused():
        assert not rec.active
        model(torch.randn(4, 16)).sum().backward()
    assert rec.active
    assert rec.to_records() == []
    model(torch.randn(4, 16)).sum().backward()
    assert {r["role"] for r in rec.to_records()} == {"weight", "activation", "gradient"}


def test_failed_capture_falls_back_to_eager(monkeypatch):
    torch.manual_seed(0)
    data = stdlib_corpus(20_000)
    model = fs.convert_to_float8(
        GPT(GPTConfig(n_layer=1, d_model=16, n_head=2, seq_len=16)),
        fs.DelayedScaling(history_len=2),
        auto_filter=False,
    )

    def broken(module, sample_args, num_warmup_iters=3, **kw):
        module(*sample_args)  # a warm-up forward pushes amaxes, then the capture fails
        raise RuntimeError("operation not permitted when stream is capturing")

    monkeypatch.setattr(_gpt, "_graph_capable", lambda device: True)
    monkeypatch.setattr(torch.cuda, "make_graphed_callables", broken)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda: None)
    with pytest.warns(UserWarning, match="training eagerly"):
        res = train_steps(model, data, 1, batch_size=2, cuda_graph=True)
    assert not res["cuda_graph"]
    assert "not permitted" in res["cuda_graph_error"]
    assert len(res["train"]) == 1
    hist = model.blocks[0].fc1.fp8_amax_history
    assert (hist[:, 1:] == 0).all()  # only the real step's amaxes, the warm-up's were undone


def test_stream_mismatch_warning_quiet_only_inside_graphed_blocks(monkeypatch):
    # the process-global switch goes off for the outermost block and back on when it ends
    calls = []
    monkeypatch.setattr(
        torch._C, "_set_warn_on_accumulate_grad_stream_mismatch", calls.append, raising=False
    )
    with _gpt._quiet_grad_stream_mismatch():
        with _gpt._quiet_grad_stream_mismatch():  # capture inside the graphed training loop
            pass
        assert calls == [False, False]
    assert calls == [False, False, True]
    with pytest.raises(RuntimeError), _gpt._quiet_grad_stream_mismatch():
        raise RuntimeError("capture failed")
    assert calls[-1] is True
