import pytest
import torch


@pytest.fixture(autouse=True)
def _seed_and_threads():
    torch.manual_seed(0)
    n = torch.get_num_threads()
    torch.set_num_threads(1)  # CI boxes are small; one thread avoids oversubscription
    yield
    torch.set_num_threads(n)


@pytest.fixture
def tiny():
    """Builder of a tiny decoder: tiny(parametrization, width=32, **kw)."""
    from u_mup.models import build_decoder

    def make(p="umup", width=32, n_layers=2, **kw):
        kw.setdefault("vocab_size", 64)
        kw.setdefault("head_dim", 8)
        return build_decoder(p, width, n_layers, **kw)

    return make
