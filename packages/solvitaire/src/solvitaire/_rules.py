"""Rule sets: JSON schema, default merging, presets and the :class:`Rules` object."""

from __future__ import annotations

import copy
import hashlib
import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

__all__ = ["RULES_SCHEMA", "Rules", "game_names", "load_rules"]

_BUILD = ["any-suit", "red-black", "same-suit", "no-build"]
#: ``tableau piles.search order`` values and the compiled core's code for each (a search hint:
#: the order in which tableau moves are tried; it never changes an answer). Shortest pile
#: first breaks ties between piles of one length by their cards, bottom or top card first.
SEARCH_ORDERS = {
    "last-pile-first": 0,
    "shortest-pile-first": 1,
    "shortest-pile-first-top-ties": 3,
    "reference": 4,
}
_RANK_NAMES = ["A", "J", "Q", "K"] + [str(i) for i in range(1, 14)]
_CARD_PATTERN = r"^(A|J|Q|K|[2-9]|10|1[0-3]?)[CHSD]$"


def _obj(props: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "additionalProperties": False, "properties": props}


#: JSON schema (draft 2020-12) of a rules file: every reference field, plus extensions
#: (``stock.redeals``, ``foundations.direction``, ``tableau piles.kings to bottom``,
#: ``tableau piles.built group placement``, ``tableau piles.search order``, ``meta``).
RULES_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    **_obj(
        {
            "tableau piles": _obj(
                {
                    "count": {"type": "integer", "minimum": 0, "maximum": 40},
                    "build policy": {"enum": _BUILD},
                    "spaces policy": {
                        "enum": [
                            "any",
                            "no-build",
                            "kings",
                            "auto-reserve-then-any",
                            "auto-reserve-then-waste",
                            "auto-waste-then-stock",
                        ]
                    },
                    "diagonal deal": {"type": "boolean"},
                    "move built group": {
                        "enum": [
                            "yes",
                            "no",
                            "whole-pile",
                            "maximal-group",
                            "partial-if-card-above-buildable",
                        ]
                    },
                    "move built group policy": {"enum": ["same-as-build", *_BUILD]},
                    "face up cards": {"enum": ["all", "top"]},
                    "kings to bottom": {"type": "boolean"},
                    "built group placement": {"enum": ["build-policy", "group-policy"]},
                    # a search hint (never changes an answer): the order tableau moves are tried
                    # (one order, "both" = the first two, or 2-3 orders run in alternation)
                    "search order": {
                        "oneOf": [
                            {"enum": [*SEARCH_ORDERS, "both"]},
                            {
                                "type": "array",
                                "items": {"enum": list(SEARCH_ORDERS)},
                                "minItems": 2,
                                "maxItems": 3,
                            },
                        ]
                    },
                    # a search hint (never changes an answer): > 0 adds a depth-limited search
                    # (restarted 4x deeper each time it runs out of moves) beside the others
                    "search depth limit": {"type": "integer", "minimum": 0},
                    # a search hint: nodes the first order searches alone before the others
                    # start (default 512)
                    "search head start": {"type": "integer", "minimum": 0},
                    # a search hint (never changes an answer): one more search, in
                    # alternation, keys cards by rank and colour only (a streamliner: only a
                    # solution of it answers)
                    "colour streamliner": {"type": "boolean"},
                    # a search hint (never changes an answer): one more search, in
                    # alternation, of a game that forgets where the face-up tableau cards lie
                    # (a relaxation: only its proof that the deal is lost answers)
                    "arrangement relaxation": {"type": "boolean"},
                }
            ),
            "foundations": _obj(
                {
                    "present": {"type": "boolean"},
                    "initial cards": {"enum": ["none", "one", "all"]},
                    "base card": {"type": "string", "enum": [*_RANK_NAMES, "random"]},
                    "removable": {"type": "boolean"},
                    "only complete pile moves": {"type": "boolean"},
                    "direction": {"enum": ["up", "down"]},
                }
            ),
            "hole": _obj(
                {
                    "present": {"type": "boolean"},
                    "base card": {
                        "type": "string",
                        "anyOf": [{"pattern": _CARD_PATTERN}, {"const": "random"}],
                    },
                    "build loops": {"type": "boolean"},
                }
            ),
            "cells": _obj(
                {
                    "count": {"type": "integer", "minimum": 0, "maximum": 16},
                    "pre-filled": {"type": "integer", "minimum": 0, "maximum": 16},
                }
            ),
            "stock": _obj(
                {
                    "size": {"type": "integer", "minimum": 0, "maximum": 104},
                    "deal type": {"enum": ["waste", "tableau piles", "hole"]},
                    "deal count": {"type": "integer", "minimum": 1, "maximum": 104},
                    "redeal": {"type": "boolean"},
                    "redeals": {
                        "anyOf": [{"type": "integer", "minimum": 0}, {"const": "unlimited"}]
                    },
                    # a search hint (never changes an answer): one more search, in
                    # alternation, of the same deal with the stock dealt one card at a time
                    # (a relaxation: only its proof that the deal is lost answers)
                    "draw-one relaxation": {"type": "boolean"},
                }
            ),
            "reserve": _obj(
                {
                    "size": {"type": "integer", "minimum": 0, "maximum": 104},
                    "stacked": {"type": "boolean"},
                }
            ),
            "accordion": _obj(
                {
                    "size": {"type": "integer", "minimum": 0, "maximum": 104},
                    "moves": {
                        "type": "array",
                        "items": {"type": "string", "pattern": "^[LR][0-9]+$"},
                    },
                    "build policies": {
                        "type": "array",
                        "items": {"enum": ["same-suit", "same-rank", "red-black", "any-suit"]},
                    },
                }
            ),
            "sequences": _obj(
                {
                    "count": {"type": "integer", "minimum": 0, "maximum": 8},
                    "direction": {"enum": ["L", "R", "LR"]},
                    "build policy": {"enum": _BUILD},
                    "fixed suit": {"type": "boolean"},
                }
            ),
            "max rank": {"type": "integer", "minimum": 1, "maximum": 13},
            "two decks": {"type": "boolean"},
            "meta": _obj(
                {
                    "name": {"type": "string"},
                    "aliases": {"type": "array", "items": {"type": "string"}},
                    "description": {"type": "string"},
                }
            ),
        }
    ),
}

_VALIDATOR = jsonschema.Draft202012Validator(RULES_SCHEMA)


def _preset_dir():
    return resources.files("solvitaire").joinpath("presets")


def _read_preset(name: str) -> dict[str, Any]:
    return json.loads(_preset_dir().joinpath(f"{name}.json").read_text())


def game_names() -> list[str]:
    """Names of every shipped preset (sorted), e.g. ``["accordion", ..., "klondike", ...]``."""
    return sorted(p.name[:-5] for p in _preset_dir().iterdir() if p.name.endswith(".json"))


def _merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def _rank_value(s: str) -> int:
    return {"A": 1, "J": 11, "Q": 12, "K": 13}.get(s) or int(s)


def _check(raw: Any, source: str) -> None:
    if not isinstance(raw, dict):
        raise ValueError(
            f"rules from {source}: expected a JSON object, got {type(raw).__name__}; "
            'write the rules as {"tableau piles": {...}, ...}'
        )
    errors = sorted(_VALIDATOR.iter_errors(raw), key=lambda e: list(e.absolute_path))
    if errors:
        e = errors[0]
        field = ".".join(str(p) for p in e.absolute_path) or "<root>"
        raise ValueError(
            f"rules from {source}: field '{field}' is invalid: {e.message}; "
            "see solvitaire.RULES_SCHEMA for the allowed values"
        )


@dataclass(frozen=True, eq=False)
class Rules:
    """A validated rule set: the raw JSON (``raw``) merged over the default rules (``data``).

    ``data`` has every field of the schema filled. Two ``Rules`` are equal when their merged data
    (without ``meta``) is equal; :attr:`hash` is a stable SHA-256 prefix of that data, used as the
    key of winnability stores.
    """

    name: str
    data: dict[str, Any]
    raw: dict[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rules) and self.hash == other.hash

    def __hash__(self) -> int:
        return hash(self.hash)

    @property
    def hash(self) -> str:
        body = {k: v for k, v in self.data.items() if k != "meta"}
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]

    # -- convenient derived values -------------------------------------------------------------
    @property
    def max_rank(self) -> int:
        return int(self.data["max rank"])

    @property
    def decks(self) -> int:
        return 2 if self.data["two decks"] else 1

    @property
    def n_cards(self) -> int:
        return 4 * self.max_rank * self.decks

    @property
    def redeals(self) -> int:
        """Number of redeals allowed: -1 for unlimited, 0 for none."""
        return _redeals(self.data["stock"])

    @property
    def foundation_base(self) -> int | None:
        """Foundation base rank (1..13), or ``None`` when chosen at random per deal."""
        b = self.data["foundations"]["base card"]
        return None if b == "random" else _rank_value(b)

    def describe(self) -> str:
        """A multi-line human description of every rule field."""
        meta = self.data.get("meta", {})
        lines = [f"{meta.get('name', self.name)} ({self.name})"]
        if meta.get("description"):
            lines.append("  " + meta["description"])
        for sec, val in self.data.items():
            if sec == "meta":
                continue
            if isinstance(val, dict):
                lines.append(f"  {sec}:")
                lines.extend(f"    {k}: {v}" for k, v in val.items())
            else:
                lines.append(f"  {sec}: {val}")
        return "\n".join(lines)

    def to_json(self) -> str:
        return json.dumps(self.data, indent=2)


#: Spaces policies that fill a space from the waste (then the waste's top matters beyond
#: the card played: no stock dominance, no draw-one relaxation).
WASTE_FILLED_SPACES = ("auto-reserve-then-waste", "auto-waste-then-stock")


def _redeals(st: dict[str, Any]) -> int:
    """Redeals a ``stock`` section allows: -1 for unlimited, 0 for none."""
    r = st.get("redeals")
    if r is None:
        return -1 if st["redeal"] else 0
    return -1 if r == "unlimited" else int(r)


def arrangement_misfit(data: dict[str, Any]) -> str | None:
    """Why rules (their merged JSON) do not fit the arrangement relaxation, or None when they
    do: one deck, foundations built up by suit from the ace (any card may go up, and come
    back), tableau piles built in alternating colours with only kings in spaces and only their
    top card dealt face up, a waste stock with unlimited redeals, no cells, reserve or hole."""
    tp, f, st = data["tableau piles"], data["foundations"], data["stock"]
    unlimited = _redeals(st) < 0
    need = [
        (not data["two decks"], "one deck ('two decks' false)"),
        (f["present"] and not f["only complete pile moves"], "foundations that take any card"),
        # (the safe-card rule of the search holds where foundation cards may come back)
        (f["removable"], "'foundations.removable' true"),
        (f.get("direction", "up") == "up" and f["base card"] == "A", "foundations from the ace up"),
        (tp["build policy"] == "red-black", "'tableau piles.build policy' \"red-black\""),
        (tp["spaces policy"] == "kings", "'tableau piles.spaces policy' \"kings\""),
        (tp["face up cards"] == "top", "'tableau piles.face up cards' \"top\""),
        (data["cells"]["count"] == 0, "no cells"),
        (data["reserve"]["size"] == 0, "no reserve"),
        (not data["hole"]["present"], "no hole"),
        (st["deal type"] == "waste", "'stock.deal type' \"waste\""),
        (st["size"] == 0 or unlimited, "unlimited redeals"),
    ]
    missing = [what for ok, what in need if not ok]
    return "; ".join(missing) if missing else None


def _semantic_checks(data: dict[str, Any], source: str) -> None:
    wins = [
        data["foundations"]["present"],
        data["hole"]["present"],
        data["sequences"]["count"] > 0,
        data["accordion"]["size"] > 0,
    ]
    if sum(bool(w) for w in wins) != 1:
        raise ValueError(
            f"rules from {source}: exactly one winning condition must be present "
            "(foundations.present, hole.present, sequences.count > 0 or accordion.size > 0), "
            f"got {sum(bool(w) for w in wins)}"
        )
    _row_game_checks(data, source)
    st = data["stock"]
    if st.get("draw-one relaxation") and not (
        st["deal type"] == "waste"
        and st["deal count"] > 1
        and data["tableau piles"]["spaces policy"] not in WASTE_FILLED_SPACES
    ):
        raise ValueError(
            f"rules from {source}: field 'stock.draw-one relaxation' needs a stock dealt to the "
            "waste more than one card at a time ('stock.deal type' \"waste\", "
            "'stock.deal count' > 1) and spaces that are not filled from the waste; "
            "remove the field"
        )
    if data["tableau piles"].get("arrangement relaxation"):
        why = arrangement_misfit(data)
        if why:
            raise ValueError(
                f"rules from {source}: field 'tableau piles.arrangement relaxation' needs {why};"
                " remove the field"
            )
    if data["cells"]["pre-filled"] > data["cells"]["count"]:
        raise ValueError(
            f"rules from {source}: field 'cells.pre-filled' ({data['cells']['pre-filled']}) "
            f"exceeds 'cells.count' ({data['cells']['count']})"
        )
    b = data["foundations"]["base card"]
    if b != "random" and _rank_value(b) > data["max rank"]:
        raise ValueError(
            f"rules from {source}: field 'foundations.base card' ({b}) exceeds 'max rank'"
        )


def _row_game_checks(data: dict[str, Any], source: str) -> None:
    """Accordion and Gaps are games of their own: one row (or rows) of cards and nothing else."""
    acc, seq = data["accordion"], data["sequences"]
    game = "accordion" if acc["size"] else "sequences" if seq["count"] else None
    if game is None:
        return
    for sec, field in (("tableau piles", "count"), ("cells", "count"), ("stock", "size"),
                       ("reserve", "size")):  # fmt: skip
        if data[sec][field]:
            raise ValueError(
                f"rules from {source}: field '{sec}.{field}' must be 0 in a game with "
                f"'{game}' (Accordion and Gaps have no other piles)"
            )
    if game == "accordion":
        if not acc["moves"] or not acc["build policies"]:
            raise ValueError(
                f"rules from {source}: 'accordion.moves' and 'accordion.build policies' must "
                'not be empty (e.g. ["L1", "L3"] and ["same-suit", "same-rank"])'
            )
        bad = [m for m in acc["moves"] if not 1 <= int(m[1:]) <= 62]
        if bad:
            raise ValueError(
                f"rules from {source}: field 'accordion.moves': distances must be 1..62, got {bad}"
            )
    elif data["two decks"]:
        raise ValueError(f"rules from {source}: field 'two decks': Gaps is played with one deck")
    elif seq["count"] > 4:
        raise ValueError(
            f"rules from {source}: field 'sequences.count' ({seq['count']}) must be at most 4: "
            "each row holds one suit's worth of cards"
        )


def rules_from_dict(raw: dict[str, Any], name: str = "custom", source: str = "dict") -> Rules:
    """Validate ``raw`` against :data:`RULES_SCHEMA`, merge it over the defaults and wrap it."""
    _check(raw, source)
    data = _merge(_read_preset("default"), raw)
    _semantic_checks(data, source)
    return Rules(name=name, data=data, raw=copy.deepcopy(raw))


def _aliases() -> dict[str, str]:
    out: dict[str, str] = {}
    for g in game_names():
        out[g] = g
        out[g.replace("-", "")] = g
        out[g.replace("-", "_")] = g
    out.update(
        {
            "freecell": "free-cell",
            "klondike-draw-1": "klondike-deal-1",
            "klondike-draw-3": "klondike",
            "seahaven": "seahaven-towers",
        }
    )
    return out


def load_rules(name_or_path: str | Path | dict | Rules) -> Rules:
    """Load a game by preset name (``"klondike"``), alias, path to a JSON rules file, or dict.

    Raises ``ValueError`` with a one-line message naming the offending field for invalid rules,
    and for unknown game names (listing how to see the valid ones).
    """
    if isinstance(name_or_path, Rules):
        return name_or_path
    if isinstance(name_or_path, dict):
        return rules_from_dict(name_or_path)
    if not isinstance(name_or_path, (str, Path)):
        raise TypeError(
            f"load_rules expects a game name, a path or a dict, got {type(name_or_path).__name__}"
        )
    s = str(name_or_path)
    p = Path(s)
    if s.endswith(".json") or p.is_file():
        if not p.is_file():
            raise ValueError(f"rules file {s!r} does not exist")
        try:
            raw = json.loads(p.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(
                f"rules file {s!r} is not valid JSON: {e.msg} (line {e.lineno})"
            ) from None
        return rules_from_dict(raw, name=p.stem, source=s)
    key = _aliases().get(s.lower().strip())
    if key is None:
        raise ValueError(
            f"unknown game {s!r}; run `solvitaire games` (or solvitaire.game_names()) for the list"
        )
    raw = _read_preset(key)
    return rules_from_dict(raw, name=key, source=f"preset {key}")
