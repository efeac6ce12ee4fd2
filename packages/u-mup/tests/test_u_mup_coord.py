import pytest
import torch

from u_mup._coord import coord_check
from u_mup.models import build_decoder


def _batches(step):
    g = torch.Generator().manual_seed(step)
    x = torch.randint(0, 64, (4, 16), generator=g)
    return x, torch.roll(x, -1, 1)


def _builder(p):
    return lambda w: build_decoder(p, w, 2, vocab_size=64, head_dim=8)


def test_coord_check_small_umup_passes_sp_fails(tmp_path):
    # widths 32 vs 128 and 1/3 steps keep this fast; the full 64 vs 512, 1/5/20 check is slow
    u = coord_check(_builder("umup"), [32, 128], (1, 3), 0.25, batches=_batches)
    s = coord_check(_builder("sp"), [32, 128], (1, 3), 2**-5, batches=_batches)
    assert u.passed, u.worst
    assert not s.passed
    assert s.max_ratio_by_step()[3] > u.max_ratio_by_step()[3]
    assert u.plot(tmp_path / "c.png").stat().st_size > 1000


def test_mismatched_widths_rejected():
    with pytest.raises(ValueError, match="distinct"):
        coord_check(_builder("umup"), [32], (1,), 0.1, batches=_batches)
    with pytest.raises(ValueError, match="builder"):
        coord_check(
            lambda w: build_decoder("umup", 32, 1, vocab_size=64, head_dim=8),
            [32, 64],
            (1,),
            0.1,
            batches=_batches,
        )


@pytest.mark.slow
def test_coord_check_acceptance_64_vs_512():
    # issue criterion: u-μP block RMS ratios in [1/1.3, 1.3] after 1/5/20 Adam steps;
    # SP shows a ratio >= 2 somewhere by step 5
    u = coord_check(_builder("umup"), [64, 512], (1, 5, 20), 0.25, batches=_batches)
    s = coord_check(_builder("sp"), [64, 512], (1, 5), 2**-6, batches=_batches)
    assert u.passed, u.worst
    assert max(s.max_ratio_by_step().values()) >= 2.0
