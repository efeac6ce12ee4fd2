import pytest
import torch
from torch import nn

import u_mup
from u_mup import ParamRole, UMupConfig, param_groups, register_role

D_IN, D, V, L = 16, 64, 100, 4  # fan-ins chosen so every rule gives a distinct number


class Toy(nn.Module):
    """One parameter per role, with known fan-ins; ``hidden``/``bias``/``norm`` sit in a stack
    of L layers."""

    def __init__(self, p="umup", m=2.0):
        super().__init__()
        self.emb = nn.Parameter(torch.randn(V, D))
        self.inp = nn.Parameter(torch.randn(D, D_IN))
        self.hidden = nn.Parameter(torch.randn(D, D))
        self.out = nn.Parameter(torch.randn(V, D))
        self.bias = nn.Parameter(torch.zeros(D))
        self.norm = nn.Parameter(torch.ones(D))
        kw = {"width_mult": m, "parametrization": p}
        register_role(self, "emb", "embedding", fan_in=V, fan_out=D, **kw)
        register_role(self, "inp", ParamRole.INPUT, **kw)
        register_role(self, "hidden", ParamRole.HIDDEN, depth=L, **kw)
        register_role(self, "out", ParamRole.OUTPUT, **kw)
        register_role(self, "bias", ParamRole.BIAS, depth=L, **kw)
        register_role(self, "norm", ParamRole.NORM, depth=L, **kw)


def _per_param(groups, key):
    return {n: g[key] for g in groups for n in g["names"]}


ETA, LAM = 0.37, 0.1
DEP = L**-0.5  # Depth-μP factor with base depth 1
EXPECTED_LR = {
    ("umup", "adam"): {
        "emb": D**-0.5,
        "inp": 1,
        "hidden": D**-0.5 * DEP,
        "out": 1,
        "bias": DEP,
        "norm": DEP,
    },
    ("umup", "sgd"): {
        "emb": D**-0.5,
        "inp": 1,
        "hidden": D**-0.5 * DEP,
        "out": 1,
        "bias": DEP,
        "norm": DEP,
    },
    ("mup", "adam"): {"emb": 1, "inp": 1, "hidden": 1 / 2.0, "out": 1, "bias": 1, "norm": 1},
    ("mup", "sgd"): {"emb": 2.0, "inp": 2.0, "hidden": 1, "out": 2.0, "bias": 2.0, "norm": 2.0},
    ("sp", "adam"): dict.fromkeys(("emb", "inp", "hidden", "out", "bias", "norm"), 1),
    ("sp", "sgd"): dict.fromkeys(("emb", "inp", "hidden", "out", "bias", "norm"), 1),
}


@pytest.mark.parametrize(("p", "opt"), list(EXPECTED_LR))
def test_exact_lr_and_independent_wd(p, opt):
    groups = param_groups(Toy(p), ETA, LAM, opt)
    lrs, wds = _per_param(groups, "lr"), _per_param(groups, "weight_decay")
    for name, c in EXPECTED_LR[(p, opt)].items():
        assert lrs[name] == pytest.approx(c * ETA, rel=1e-12), name
        # independent WD: lr_param · wd_param = λ exactly; bias and norm are not decayed
        want = 0.0 if name in ("bias", "norm") else LAM / (c * ETA)
        assert wds[name] == pytest.approx(want, rel=1e-12), name


def test_coupled_wd_and_const_embedding_rule_and_completep():
    cfg = UMupConfig(embedding_lr_rule="const", depth_rule="completep")
    g = param_groups(Toy(), ETA, LAM, config=cfg, independent_weight_decay=False)
    lrs, wds = _per_param(g, "lr"), _per_param(g, "weight_decay")
    assert lrs["emb"] == pytest.approx(ETA)
    assert lrs["hidden"] == pytest.approx(ETA * D**-0.5)  # CompleteP: no depth LR factor
    assert wds["hidden"] == LAM


def test_existing_groups_preserved():
    m = Toy()
    user = [
        {"params": [m.hidden, m.out], "lr": 0.01, "momentum_hint": 7},
        {"params": [m.emb], "weight_decay": 0.5},
    ]
    g = param_groups(m, ETA, LAM, groups=user)
    lrs = _per_param(g, "lr")
    assert set(lrs) == {"hidden", "out", "emb"}
    assert lrs["hidden"] == pytest.approx(0.01 * D**-0.5 * DEP)
    assert lrs["emb"] == pytest.approx(ETA * D**-0.5)
    assert all(gr["momentum_hint"] == 7 for gr in g if gr["names"][0] != "emb")
    assert _per_param(g, "weight_decay")["emb"] == pytest.approx(0.5 / (ETA * D**-0.5))


def test_wrappers_build_torch_optimizers_and_step():
    m = Toy()
    for make, cls in (
        (u_mup.Adam, torch.optim.Adam),
        (u_mup.AdamW, torch.optim.AdamW),
        (u_mup.SGD, torch.optim.SGD),
    ):
        opt = make(m, 0.1, 0.01)
        assert isinstance(opt, cls)
        before = m.hidden.detach().clone()
        (
            m.hidden.sum() + m.emb.sum() + m.out.sum() + m.inp.sum() + m.bias.sum() + m.norm.sum()
        ).backward()
        opt.step()
        opt.zero_grad()
        assert not torch.equal(before, m.hidden)


def test_missing_role_names_parameter():
    m = Toy()
    m.extra = nn.Parameter(torch.zeros(3))
    with pytest.raises(ValueError, match=r"'extra'.*register_role"):
        param_groups(m, 0.1)
    m.extra.requires_grad_(False)  # frozen parameters need no role
    assert param_groups(m, 0.1)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown parameter role 'weird'"):
        register_role(Toy(), "emb", "weird")
    with pytest.raises(ValueError, match="no direct parameter"):
        register_role(Toy(), "nope", "hidden")
    with pytest.raises(ValueError, match="lr must be"):
        param_groups(Toy(), -1.0)
    with pytest.raises(ValueError, match="optimizer must be"):
        param_groups(Toy(), 0.1, optimizer="lion")
