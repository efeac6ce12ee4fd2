"""Command line: ``solvitaire solve|deal|games|describe|verify|winnability|bench``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _rules_and_deal(args):
    from . import Deal, deal, load_rules

    rules = load_rules(args.rules or args.game)
    if getattr(args, "deal", None):
        d = Deal.from_json(Path(args.deal), rules)
    else:
        d = deal(rules, args.seed)
    return rules, d


def _cmd_solve(args) -> int:
    from . import GameState, solve

    rules, d = _rules_and_deal(args)
    res = solve(d, rules, timeout=args.timeout, memory_limit=args.memory_mb * 2**20)
    if args.json:
        out = {
            "game": rules.name,
            "seed": args.seed,
            "status": res.status.value,
            "moves": [list(m) for m in res.moves],
            "notation": res.notation,
            "stats": {k: float(v) for k, v in res.stats.items()},
            "deal": d.to_dict(rules),
        }
        print(json.dumps(out))
        return 0
    print(
        f"{rules.name} seed {args.seed}: {res.status.value} "
        f"({res.stats['states']} states, {res.stats['seconds']:.3f} s)"
    )
    if res.solved:
        gs = GameState(d, rules)
        if args.show:
            print(gs.board())
        for i, (m, text) in enumerate(zip(res.moves, res.notation), 1):
            print(f"{i:4d}. {text}")
            if args.show:
                gs.apply(m)
                print(gs.board() + "\n")
        print(f"verified: {len(res.moves)} moves replayed by the independent engine")
    return 0


def _cmd_deal(args) -> int:
    rules, d = _rules_and_deal(args)
    if args.json:
        print(d.to_json(rules))
    else:
        from . import GameState

        print(GameState(d, rules).board())
    return 0


def _cmd_games(args) -> int:
    from . import game_names, load_rules

    for g in game_names():
        meta = load_rules(g).data.get("meta", {})
        print(f"{g:45s} {meta.get('name', '')}")
    return 0


def _cmd_describe(args) -> int:
    from . import load_rules

    print(load_rules(args.game).describe())
    return 0


def _cmd_verify(args) -> int:
    from . import Deal, Move, load_rules, verify_moves

    data = json.loads(Path(args.solution).read_text())
    rules = load_rules(data.get("game", args.game))
    d = Deal.from_dict(data["deal"], rules)
    moves = [Move(*m) for m in data["moves"]]
    verify_moves(d, rules, moves)
    print(f"OK: {len(moves)} moves win {rules.name}")
    return 0


def _cmd_winnability(args) -> int:
    from . import plot_estimate, winnability

    seeds = range(args.first_seed, args.first_seed + args.deals)
    est = winnability(
        args.rules or args.game,
        seeds=seeds,
        jobs=args.jobs,
        timeout=args.timeout,
        store=args.store,
        backend=args.backend,
        halfwidth=args.halfwidth,
    )
    from rich.console import Console
    from rich.table import Table

    lo, hi = est.interval
    t = Table(title=f"winnability of {est.game}")
    for c in ("deals", "solved", "unsolvable", "timeouts", "estimate", "95% interval"):
        t.add_column(c)
    t.add_row(
        str(est.n),
        str(est.solved),
        str(est.unsolvable),
        str(est.timeouts),
        f"{100 * est.rate:.2f}%",
        f"[{100 * lo:.2f}%, {100 * hi:.2f}%]",
    )
    Console().print(t)
    if args.plot:
        print(f"plot: {plot_estimate(est, args.plot)}")
    return 0


def _cmd_bench(args) -> int:
    from . import solve

    t0 = time.perf_counter()
    states = 0
    decided = 0
    for s in range(1, args.deals + 1):
        r = solve(s, args.game, timeout=args.timeout)
        states += r.stats["states"]
        decided += r.status.value in ("solved", "unsolvable")
    dt = time.perf_counter() - t0
    print(
        f"{args.game}: {decided}/{args.deals} decided in {dt:.2f} s, "
        f"{decided / dt:.2f} deals/s, {states / dt:,.0f} states/s"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="solvitaire", description="Patience solver and estimator.")
    sub = p.add_subparsers(dest="cmd", required=True)

    def game_args(q, seed=True):
        q.add_argument("--game", default="klondike", help="preset name (see `solvitaire games`)")
        q.add_argument("--rules", help="path to a JSON rules file (overrides --game)")
        if seed:
            q.add_argument("--seed", type=int, default=1)
            q.add_argument("--deal", help="deal JSON file instead of a seed")

    q = sub.add_parser("solve", help="solve one deal")
    game_args(q)
    q.add_argument("--timeout", type=float, default=None, help="seconds")
    q.add_argument("--memory-mb", type=int, default=1024)
    q.add_argument("--json", action="store_true")
    q.add_argument("--show", action="store_true", help="print the board after each move")
    q.set_defaults(fn=_cmd_solve)
    q = sub.add_parser("deal", help="print a deal")
    game_args(q)
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=_cmd_deal)
    q = sub.add_parser("games", help="list the games")
    q.set_defaults(fn=_cmd_games)
    q = sub.add_parser("describe", help="print a game's rules")
    q.add_argument("game")
    q.set_defaults(fn=_cmd_describe)
    q = sub.add_parser("verify", help="replay a solution JSON (from `solve --json`)")
    q.add_argument("solution")
    q.add_argument("--game", default="klondike")
    q.set_defaults(fn=_cmd_verify)
    q = sub.add_parser("winnability", help="estimate the fraction of winnable deals")
    game_args(q, seed=False)
    q.add_argument("--deals", type=int, default=100)
    q.add_argument("--first-seed", type=int, default=1)
    q.add_argument("--jobs", type=int, default=1)
    q.add_argument("--timeout", type=float, default=60.0)
    q.add_argument("--store", help="SQLite file; rerun with the same file to resume")
    q.add_argument("--backend", choices=["local", "ray"], default="local")
    q.add_argument("--halfwidth", type=float, default=None)
    q.add_argument("--plot", help="write a PNG of the running estimate here")
    q.set_defaults(fn=_cmd_winnability)
    q = sub.add_parser("bench", help="deals/s and states/s on seeds 1..N")
    q.add_argument("--game", default="klondike")
    q.add_argument("--deals", type=int, default=20)
    q.add_argument("--timeout", type=float, default=10.0)
    q.set_defaults(fn=_cmd_bench)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.fn(args)
    except (ValueError, TypeError, NotImplementedError, FileNotFoundError) as e:
        print(f"solvitaire: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
