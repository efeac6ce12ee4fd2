import itertools
import math

import pytest

from u_mup import UMupConfig, residual_contributions, residual_taus

# The invariants are algebraic identities, so they hold to float64 rounding; 1e-6 is the spec.
TOL = 1e-6


@pytest.mark.parametrize(
    ("n_layers", "a_res", "rho"),
    list(itertools.product([1, 2, 5, 12], [0.25, 1.0, 3.0], [0.5, 1.0, 2.0])),
)
def test_residual_rule_invariants(n_layers, a_res, rho):
    cfg = UMupConfig(alpha_res=a_res, alpha_res_attn_ratio=rho)
    emb, br = residual_contributions(residual_taus(n_layers, cfg))
    assert abs(emb + sum(br) - 1.0) < TOL  # total variance 1
    attn, mlp = br[0::2], br[1::2]
    assert max(attn) - min(attn) < TOL  # every attention branch contributes equally
    assert max(mlp) - min(mlp) < TOL
    # mean over branch types of the type's total variance, relative to the embedding's = α_res²
    assert abs(math.sqrt((sum(attn) + sum(mlp)) / 2 / emb) - a_res) < TOL
    assert abs(math.sqrt(sum(attn) / sum(mlp)) - rho) < TOL  # attention : MLP = ρ


def test_completep_branches_shrink_as_one_over_depth():
    cfg = UMupConfig(depth_rule="completep")
    per_branch = {}
    for n in (2, 8):
        emb, br = residual_contributions(residual_taus(n, cfg))
        per_branch[n] = math.sqrt(br[0] / emb)  # std of one branch relative to the embedding
    # CompleteP: branch multiplier ∝ 1/L, so 4× the depth gives 1/4 the relative branch std.
    assert abs(per_branch[2] / per_branch[8] - 4.0) < 1e-9


def test_bad_depth():
    with pytest.raises(ValueError, match="n_layers"):
        residual_taus(0)
