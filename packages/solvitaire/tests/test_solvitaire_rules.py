import json

import pytest

from solvitaire import RULES_SCHEMA, game_names, load_rules
from solvitaire._rules import rules_from_dict


def test_every_reference_rules_file_loads_unchanged(shared_dir):
    default = json.loads((shared_dir / "rules" / "default.json").read_text())
    files = sorted((shared_dir / "rules").glob("*.json"))
    assert len(files) == 81
    for f in files:
        raw = json.loads(f.read_text())
        r = load_rules(f)
        # defaults merged section by section, exactly like the reference
        for sec, val in default.items():
            expect = {**val, **raw.get(sec, {})} if isinstance(val, dict) else raw.get(sec, val)
            assert r.data[sec] == expect, (f.name, sec)


def test_presets_shipped_include_paper_games():
    names = game_names()
    assert len(names) == 85
    for g in ("klondike", "free-cell", "bakers-dozen", "martha", "penguin", "blind-alleys"):
        assert g in names
        assert load_rules(g).name == g
    assert load_rules("blind-alleys").redeals == 1
    assert load_rules("klondike").redeals == -1
    assert "$schema" in RULES_SCHEMA


def test_aliases_and_hash():
    assert load_rules("FreeCell") == load_rules("free-cell")
    assert load_rules("klondike").hash != load_rules("klondike-deal-1").hash


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"tableau piles": {"build policy": "diagonal"}}, "tableau piles.build policy"),
        ({"tableau piles": {"count": -1}}, "tableau piles.count"),
        ({"stock": {"size": 3, "colour": 1}}, "stock"),
        ({"max rank": 14}, "max rank"),
        ({"cells": {"count": 1, "pre-filled": 2}}, "cells.pre-filled"),
        ({"hole": {"present": True}}, "winning condition"),
        (
            {"stock": {"size": 24, "deal count": 1, "draw-one relaxation": True}},
            "stock.draw-one relaxation",
        ),
        (
            {"stock": {"size": 8, "deal type": "tableau piles", "draw-one relaxation": True}},
            "stock.draw-one relaxation",
        ),
        (
            {"tableau piles": {"arrangement relaxation": True}},  # FreeCell-like defaults
            "tableau piles.arrangement relaxation",
        ),
        (
            {
                "tableau piles": {
                    "build policy": "red-black",
                    "spaces policy": "kings",
                    "face up cards": "top",
                    "arrangement relaxation": True,
                },
                "stock": {"size": 24, "deal count": 3, "redeal": True, "redeals": 2},
            },
            "unlimited redeals",
        ),
        (
            {
                "tableau piles": {
                    "build policy": "red-black",
                    "spaces policy": "kings",
                    "face up cards": "top",
                    "arrangement relaxation": True,
                },
                "foundations": {"removable": False},
                "stock": {"size": 24, "deal count": 3, "redeal": True},
            },
            "foundations.removable",
        ),
    ],
)
def test_bad_rules_one_line_error_naming_the_field(raw, field):
    with pytest.raises(ValueError, match="rules from") as e:
        rules_from_dict(raw)
    msg = str(e.value)
    assert field in msg
    assert "\n" not in msg


def test_unknown_game_and_bad_files(tmp_path):
    with pytest.raises(ValueError, match="unknown game 'klondik'"):
        load_rules("klondik")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_rules(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_rules(tmp_path / "missing.json")
    with pytest.raises(TypeError):
        load_rules(3)
