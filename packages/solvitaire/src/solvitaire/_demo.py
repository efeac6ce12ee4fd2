"""`uv run demo` hook: solve one Klondike deal and estimate a fast game's winnability."""

from __future__ import annotations

import time


def run() -> dict:
    from . import GameState, deal, load_rules, solve, winnability

    t0 = time.perf_counter()
    rules = load_rules("klondike")
    d = deal(rules, 5)
    res = solve(d, rules, timeout=20)
    print(f"Klondike (draw 3) seed 5: {res.status.value}, {res.stats['states']} states")
    gs = GameState(d, rules)
    print(gs.board())
    for i, text in enumerate(res.notation[:6], 1):
        print(f"  {i}. {text}")
    print(f"  ... {len(res.moves)} moves, replayed and verified by the independent engine")
    est = winnability("alpha-star", 200, timeout=0.25, progress=False)
    lo, hi = est.interval
    print(f"Alpha Star over 200 deals: {est.summary()}")
    secs = time.perf_counter() - t0
    ok = res.solved and est.n == 200 and lo <= est.rate <= hi and est.solved + est.unsolvable > 160
    return {
        "summary": f"Klondike seed 5 solved in {len(res.moves)} verified moves; Alpha Star "
        f"{100 * est.rate:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}] over 200 deals ({secs:.1f} s)",
        "ok": bool(ok),
    }


if __name__ == "__main__":  # pragma: no cover
    print(run())
