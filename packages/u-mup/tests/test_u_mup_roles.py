import copy
import io

import pytest
import torch
import torch.nn.functional as F

from u_mup import ParamRole, param_groups, role_of, roles
from u_mup.models import Decoder


def _snapshot(model):
    return {n: (i.role, i.fan_in, i.fan_out, i.depth) for n, i in roles(model).items()}


def test_every_parameter_has_a_role(tiny):
    m = tiny("umup", tied=False)
    names = {n for n, _ in m.named_parameters()}
    assert set(roles(m)) == names
    assert role_of(m, "head.weight").role is ParamRole.OUTPUT
    assert role_of(m, "layers.1.wq").depth == 2
    assert role_of(m, "embed.weight").depth is None


def test_roles_survive_deepcopy(tiny):
    m = tiny()
    assert _snapshot(copy.deepcopy(m)) == _snapshot(m)


def test_roles_survive_state_dict_round_trip_into_meta_model(tiny):
    m = tiny("umup")
    buf = io.BytesIO()
    torch.save(m.state_dict(), buf)
    # A model built on the meta device, then materialised and loaded: roles come with it.
    fresh = Decoder(m.cfg, m.umup_config, device="meta")
    for mod in fresh.modules():  # wipe the constructor's registry to prove the load restores it
        mod.__dict__.pop("_umup_roles", None)
    fresh.to_empty(device="cpu")
    buf.seek(0)
    fresh.load_state_dict(torch.load(buf, weights_only=False))
    assert _snapshot(fresh) == _snapshot(m)
    idx = torch.randint(0, 64, (2, 8))
    torch.testing.assert_close(fresh(idx), m(idx), rtol=0, atol=0)


def test_roles_survive_compile_wrapper(tiny):
    m = tiny()
    c = torch.compile(m, backend="eager")
    assert {k.removeprefix("_orig_mod."): v for k, v in _snapshot(c).items()} == _snapshot(m)
    g = param_groups(c, 0.5)
    assert sum(len(x["params"]) for x in g) == len(list(m.parameters()))


def test_meta_init_then_reset_matches_eager_init(tiny):
    m = tiny("sp")
    meta = Decoder(m.cfg, m.umup_config, device="meta", seed=m.seed)
    meta.to_empty(device="cpu")
    meta.reset_parameters()
    for (n, a), (_, b) in zip(m.named_parameters(), meta.named_parameters()):
        assert torch.equal(a, b), n


@pytest.mark.slow
def test_compiled_forward_matches_eager(tiny):
    m = tiny("umup")
    idx = torch.randint(0, 64, (2, 8))
    c = torch.compile(m, backend="eager", fullgraph=True)
    torch.testing.assert_close(c(idx), m(idx))
    # loss value equals plain cross-entropy of the logits (unit scaling changes only backward)
    want = F.cross_entropy(m(idx).reshape(-1, 64), idx.reshape(-1))
    torch.testing.assert_close(m.loss(idx, idx), want)


def test_unregistered_parameter_error_names_it(tiny):
    m = tiny()
    with pytest.raises(ValueError, match=r"layers\.0\.wq"):
        role_of(m, "layers.0.wq.nope")
    m.layers[0].extra = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match=r"layers\.0\.extra"):
        param_groups(m, 0.1)
