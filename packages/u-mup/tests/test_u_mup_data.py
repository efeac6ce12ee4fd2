import pytest
import torch

from u_mup._data import ByteCorpus, MarkovSource, make_source


def test_text_file_source_is_deterministic(tmp_path):
    f = tmp_path / "t.txt"
    f.write_bytes(bytes(range(256)) * 20)
    c = ByteCorpus.from_file(f, seed=3)
    x1, y1 = c.batch(5, 4, 16)
    x2, _ = make_source(str(f), seed=3).batch(5, 4, 16)
    assert torch.equal(x1, x2)
    assert torch.equal(x1[:, 1:], y1[:, :-1])  # targets are the next bytes
    assert not torch.equal(c.batch(6, 4, 16)[0], x1)
    assert c.val.numel() == len(bytes(range(256)) * 20) - c.train.numel()


def test_markov_source_entropy_and_support():
    m = MarkovSource(vocab_size=16, order=1, branching=2, chain_seed=0)
    assert 0 < m.entropy_rate < torch.log(torch.tensor(2.0)).item() + 1e-6  # ≤ log(branching)
    x, y = m.batch(0, 8, 32)
    # every transition is one of the context's allowed successors
    allowed = m.succ[x.flatten()]
    assert (allowed == y.flatten()[:, None]).any(1).all()


def test_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        ByteCorpus.from_file(tmp_path / "missing.txt")
    f = tmp_path / "tiny.txt"
    f.write_bytes(b"abc" * 10)
    with pytest.raises(ValueError, match="split"):
        ByteCorpus.from_file(f).batch(0, 1, 4, "test")
