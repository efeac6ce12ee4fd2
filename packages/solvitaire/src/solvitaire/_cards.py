"""Cards as small integers: ``card = rank * 4 + suit`` (rank 1..13, suit C=0 H=1 S=2 D=3); 0 = none.

The colour of a card is ``suit % 2`` (0 black, 1 red), as in the reference program.
"""

from __future__ import annotations

__all__ = ["SUITS", "card", "card_str", "colour", "parse_card", "rank", "suit"]

SUITS = "CHSD"
_RANKS = {1: "A", 11: "J", 12: "Q", 13: "K"}


def card(r: int, s: int) -> int:
    """Encode rank ``r`` (1..13) and suit ``s`` (0..3) as an int in 4..55."""
    return r * 4 + s


def rank(c: int) -> int:
    return c >> 2


def suit(c: int) -> int:
    return c & 3


def colour(c: int) -> int:
    return c & 1


def card_str(c: int) -> str:
    """``card_str(card(10, 1)) == "10H"``."""
    if c <= 0:
        return ""
    r = rank(c)
    return _RANKS.get(r, str(r)) + SUITS[suit(c)]


def parse_card(text: str) -> tuple[int, bool]:
    """Parse ``"10H"``/``"qs"`` → (card, face_up). Lower case means face down (reference format).

    Raises ``ValueError`` naming the text for anything else.
    """
    if not isinstance(text, str) or len(text) < 2:
        raise ValueError(f"bad card {text!r}: expected rank A,2..10,J,Q,K then suit C,H,S,D")
    face_up = not text.islower()
    t = text.upper()
    r_txt, s_txt = t[:-1], t[-1]
    if s_txt not in SUITS:
        raise ValueError(f"bad card {text!r}: suit must be one of C,H,S,D")
    r = {"A": 1, "J": 11, "Q": 12, "K": 13}.get(r_txt)
    if r is None:
        if not r_txt.isdigit() or not 1 <= int(r_txt) <= 13:
            raise ValueError(f"bad card {text!r}: rank must be A,2..10,J,Q,K")
        r = int(r_txt)
    return card(r, SUITS.index(s_txt)), face_up
