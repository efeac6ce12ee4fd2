import json

import pytest

from u_mup import UMupConfig


def test_defaults_are_one_and_sqrt():
    c = UMupConfig()
    assert c.alphas == dict.fromkeys(c.alphas, 1.0)
    assert c.depth_rule == "sqrt"
    assert c.embedding_lr_rule == "fan_out^-1/2"


def test_json_round_trip(tmp_path):
    c = UMupConfig(alpha_res=2.0, alpha_ffn_act=0.5, depth_rule="completep", base_depth=2)
    assert UMupConfig.from_json(c.to_json()) == c
    p = tmp_path / "c.json"
    c.to_json(p)
    assert UMupConfig.from_json(p) == c
    assert json.loads(p.read_text())["alpha_res"] == 2.0


@pytest.mark.parametrize(
    ("kw", "exc"),
    [
        ({"alpha_res": 0.0}, ValueError),
        ({"alpha_res": float("nan")}, ValueError),
        ({"alpha_ffn_act": "1"}, TypeError),
        ({"depth_rule": "linear"}, ValueError),
        ({"embedding_lr_rule": "x"}, ValueError),
        ({"base_depth": 0}, ValueError),
    ],
)
def test_invalid_values_raise(kw, exc):
    with pytest.raises(exc, match=next(iter(kw))):
        UMupConfig(**kw)


def test_unknown_key_and_bad_json():
    with pytest.raises(ValueError, match="unknown UMupConfig field"):
        UMupConfig.from_dict({"alpha_typo": 1.0})
    with pytest.raises(ValueError, match="invalid JSON"):
        UMupConfig.from_json("{not json")
