"""Klondike 1,000-seed and Spiderette runs on a many-core machine, within a wall-clock budget.

Run through ``box_run.sh`` (which pins the cores and sets the thread limits). Phases, each
result written to ``$OUT`` as soon as it exists (JSON lines), so a run cut by its budget still
leaves everything it finished:

0. correctness: a few Klondike seeds whose answers the reference program decided (every solution
   is replayed by the independent engine inside ``solve``);
1. Spiderette seeds 1-40 at the reference's 3 s limit, under the true rules (complete suits
   only) and under the rules the reference program actually applies (see README);
2. Klondike seeds left undecided by the earlier partial local run, 60 s each;
3. Klondike seeds not yet run (``--first`` .. ``--deals``), 60 s each, until the budget ends;
   (``KL_SKIP``: seeds left out; ``KL_SLOWEST_FIRST=1``: the longest deals of the local
   store first; ``KL_ORDER``: a search order, or comma-separated orders searched in alternation, for
   the Klondike deals instead of the preset's);
4. optionally (``EXTRA_GAMES``, comma-separated presets, ``game@order`` for a game under
   another search order, ``a+b`` for orders in alternation) seeds 1-40 of other games at
   ``EXTRA_TIMEOUT`` seconds each (``extra.jsonl``);
5. optionally (``REF_GAMES``: comma-separated games, or ``all``) every deal of those games that
   the reference program decided (``outcomes/*.tsv``), at ``REF_TIMEOUT`` seconds each (60, the
   slow test's limit), under the rules the reference applies (Spiderette: see README); rows go
   to ``extra.jsonl`` with the reference's answer, and a different answer is logged as FAIL
   (``REF_ORDER``: a search order, or comma-separated orders, instead of the presets';
   ``REF_ONLY``: comma-separated ``game:seed`` deals, the others left out; ``REF_LONGER``:
   ``game:seed=seconds,...``, a longer limit for those deals, as in the slow test).

``--ingest DIR`` (run here afterwards) merges a finished run's Klondike results into the local
SQLite store used by ``klondike_1000.py`` and prints the Spiderette comparison.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

#: Klondike seeds 1-1000 without a decision within 60 s in the local store (the 19:05 and 22:29
#: UTC box runs of 2026-11-29 included). They run first; ``KL_RETRY`` (comma-separated seeds)
#: replaces the list.
UNDECIDED = [15, 22, 33, 39, 90, 125, 155, 263, 294, 336, 433, 456, 469, 523, 545, 558, 598,
             610, 619, 627, 669, 679, 693, 701, 714, 715, 719, 722, 751, 765, 771, 818, 898,
             1000]  # fmt: skip
#: Klondike answers decided by the reference program (its outcomes file): a correctness check.
KNOWN = {1: "unsolvable", 2: "solved", 4: "solved", 5: "solved"}
SPIDER_SEEDS = range(1, 1 + int(os.environ.get("SP_SEEDS", 40)))
SPIDER_LIMIT_S = 3.0


def _spider_rules(kind: str, game: str = "spiderette"):
    """Spiderette (or Simple Simon) under its true rules (``kind`` "true") or under the rules
    the reference program applies (single cards go up; groups go by the group policy)."""
    from solvitaire import load_rules
    from solvitaire._rules import rules_from_dict

    rules = load_rules(game)
    if kind == "true":
        return rules
    raw = json.loads(json.dumps(rules.data))
    raw["foundations"]["only complete pile moves"] = False
    raw["tableau piles"]["built group placement"] = "group-policy"
    raw.pop("meta", None)
    return rules_from_dict(raw, name=f"{game}-reference-effective")


def _with_order(rules, order: str):
    """``rules`` with ``tableau piles.search order`` set to ``order`` (a name, or several
    comma-separated names searched in alternation): a search hint, never a change of answer."""
    from solvitaire._rules import rules_from_dict

    raw = json.loads(json.dumps(rules.data))
    raw.pop("meta", None)
    names = [x.strip() for x in order.split(",") if x.strip()]
    raw["tableau piles"]["search order"] = names[0] if len(names) == 1 else names
    return rules_from_dict(raw, name=f"{rules.name}@{order}")


def _stored(column: str) -> dict[int, object]:
    """``seconds`` or ``status`` per Klondike seed in ``results/klondike_1000.sqlite`` (empty
    if absent; one row per seed and solver version there)."""
    import sqlite3

    path = HERE / "results" / "klondike_1000.sqlite"
    if not path.exists():
        return {}
    con = sqlite3.connect(path)
    try:
        return dict(con.execute(f"SELECT seed, {column} FROM results"))
    finally:
        con.close()


OUTCOMES = HERE.parents[2].parent / "shared" / "solvitaire" / "outcomes"


def _ref_rows(games: str) -> list[tuple[str, int, str, int]]:
    """(game, seed, reference answer, reference ms) of every deal the reference decided."""
    import csv

    names = sorted(p.stem for p in OUTCOMES.glob("*.tsv")) if games == "all" else games.split(",")
    only = {x.strip() for x in os.environ.get("REF_ONLY", "").split(",") if x.strip()}
    rows = []
    for g in (x.strip() for x in names if x.strip()):
        with open(OUTCOMES / f"{g}.tsv") as f:
            for r in csv.DictReader(f, delimiter="\t"):
                if r["outcome"] != "timed-out" and (not only or f"{g}:{r['seed']}" in only):
                    rows.append((g, int(r["seed"]), r["outcome"], int(r["ms"])))
    return rows


def _job(args: tuple) -> dict:
    game, kind, seed, timeout, mem = args
    from solvitaire import load_rules, solve

    want = None
    if kind.startswith("ref:"):  # phase 5: kind = "ref:<the reference's answer>"
        want = kind[4:]
        kind = "effective" if game in ("spiderette", "simple-simon") else "preset"
    order = ""
    if "@" in game:  # EXTRA_GAMES entry "game@order": that game under another search order
        game, order = game.split("@", 1)
    if game in ("spiderette", "simple-simon"):
        rules = _spider_rules(kind, game)
    else:
        rules = load_rules(game)
    if order:
        rules = _with_order(rules, order.replace("+", ","))  # "a+b": orders in alternation
        kind = "order=" + order
    if want and os.environ.get("REF_ORDER"):
        rules = _with_order(rules, os.environ["REF_ORDER"])
        kind = "order=" + os.environ["REF_ORDER"]
    if game == "klondike" and os.environ.get("KL_ORDER"):
        rules = _with_order(rules, os.environ["KL_ORDER"])
        kind = "order=" + os.environ["KL_ORDER"]
    c0 = time.process_time()
    res = solve(seed, rules, timeout=timeout, memory_limit=mem)
    return {
        "game": game + (f"@{order}" if order else ""),
        "rules": kind,
        "seed": seed,
        "status": res.status.value,
        "seconds": round(res.stats["seconds"], 4),
        "cpu_s": round(time.process_time() - c0, 4),
        "states": res.stats["states"],
        "unique_states": res.stats["unique_states"],
        **({"reference": want} if want else {}),
        **({"decided_by": res.stats["decided_by"]} if "decided_by" in res.stats else {}),
    }


def _out_name(task: tuple) -> str:
    """The JSON-lines file a task's row goes to."""
    game, kind = task[0], task[1]
    if game == "spiderette" and kind in ("effective", "true"):
        return "spiderette.jsonl"
    if game == "klondike" and not kind.startswith("ref:"):
        return "klondike.jsonl"
    return "extra.jsonl"


def _job_tagged(args: tuple) -> tuple[str, dict]:
    return _out_name(args), _job(args)


def _run_phase(pool, tasks, out, deadline, log) -> list[dict]:
    """Run ``tasks`` on ``pool`` (rows to ``out`` / :func:`_out_name`); stop collecting at
    ``deadline`` (unfinished ones are lost)."""
    rows: list[dict] = []
    it = pool.imap_unordered(_job_tagged, tasks)
    files: dict = {}
    try:
        for _ in tasks:
            left = deadline - time.monotonic()
            if left <= 0:
                log(f"  budget reached: {len(rows)}/{len(tasks)} finished in this phase")
                return rows
            try:
                name, row = it.next(timeout=left)
            except mp.TimeoutError:
                log(f"  budget reached: {len(rows)}/{len(tasks)} finished in this phase")
                return rows
            if name not in files:
                files[name] = open(out / name, "a")  # noqa: SIM115 - closed below
            files[name].write(json.dumps(row) + "\n")
            files[name].flush()
            rows.append(row)
            if (
                row.get("reference")
                and row["status"] in ("solved", "unsolvable")
                and (row["status"] != row["reference"])
            ):
                log(f"  FAIL: {row['game']} seed {row['seed']}: {row['status']}, the reference "
                    f"decided {row['reference']}")  # fmt: skip
            if row["status"] not in ("solved", "unsolvable") or row["seconds"] > 5:
                log(f"  {row['game']}/{row['rules']} seed {row['seed']}: {row['status']} "
                    f"{row['seconds']:.2f} s, {row['states']:,} states")  # fmt: skip
    finally:
        for f in files.values():
            f.close()
    return rows


def run(a: argparse.Namespace) -> int:
    out = Path(os.environ.get("OUT", a.out or "box_out"))
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    deadline = t0 + a.budget
    logf = open(out / "box_run.log", "a")  # noqa: SIM115 - kept open for the whole run

    def log(msg: str) -> None:
        line = f"[{time.monotonic() - t0:7.1f} s] {msg}"
        print(line, flush=True)
        logf.write(line + "\n")
        logf.flush()

    from solvitaire import __version__, load_rules, solve

    log(f"solvitaire {__version__}, python {platform.python_version()}, jobs {a.jobs}, "
        f"budget {a.budget:g} s, cpus {sorted(os.sched_getaffinity(0))}")  # fmt: skip
    # phase 0: compile once (the pool forks afterwards) and check known answers
    for seed, want in KNOWN.items():
        got = solve(seed, load_rules("klondike"), timeout=60).status.value
        if got != want:
            log(f"FAIL: klondike seed {seed}: {got}, the reference decided {want}")
            return 1
    _spider_rules("effective")
    solve(1, _spider_rules("true"), max_states=10)
    log("phase 0: known Klondike answers reproduced (solutions replayed)")
    mem = int(a.memory_gib * 2**30)
    summary: dict = {"jobs": a.jobs, "budget_s": a.budget, "memory_limit_gib": a.memory_gib}
    # the phases' tasks; with --mixed they all go to the pool at once (longest first), so a
    # few long deals of one phase do not leave cores idle
    phases: list[tuple[str, list]] = []
    if not a.skip_spider:
        sp = [("spiderette", k, s, SPIDER_LIMIT_S, mem)
              for k in ("effective", "true") for s in SPIDER_SEEDS]  # fmt: skip
        phases.append(("spider", sp))
    retry = [int(x) for x in a.retry.split(",") if x.strip()]
    skip = {int(x) for x in a.skip.split(",") if x.strip()}
    seeds = [s for s in retry if s <= a.deals and s not in skip]
    rest = [s for s in range(a.first, a.deals + 1) if s not in seeds and s not in skip]
    if a.slowest_first:
        # longest first (by the times in the local store) keeps every core busy to the end
        known = _stored("seconds")
        rest.sort(key=lambda s: -known.get(s, float("inf")))
    seeds += rest
    if a.ref_games:  # phase 5 first when asked (REF_GAMES): the reference's decided deals
        refs = sorted(_ref_rows(a.ref_games), key=lambda r: -r[3])
        # REF_LONGER "game:seed=seconds,...": a longer limit for those deals (as in the tests)
        longer = {k: float(v) for k, v in (x.split("=") for x in a.ref_longer.split(",") if x)}
        phases.append(("ref", [(g, f"ref:{want}", s, longer.get(f"{g}:{s}", a.ref_timeout), mem)
                               for g, s, want, _ in refs]))  # fmt: skip
    phases.append(("klondike", [("klondike", "preset", s, a.timeout, mem) for s in seeds]))
    extra = [g for g in a.extra_games.split(",") if g.strip()]
    if extra:
        phases.append(("extra", [(g, "preset", s, a.extra_timeout, mem)
                                 for g in extra for s in range(1, 41)]))  # fmt: skip
    got: dict[str, list[dict]] = {name: [] for name, _ in phases}
    ctx = mp.get_context("fork")
    with ctx.Pool(a.jobs, maxtasksperchild=50) as pool:
        if a.mixed:
            sign = 1 if os.environ.get("MIXED_ORDER") == "short" else -1  # short limits first
            tasks = sorted((t for _, ts in phases for t in ts), key=lambda t: sign * t[3])
            log(f"all phases at once: {len(tasks)} solves, "
                + ", ".join(f"{n} {len(ts)}" for n, ts in phases))  # fmt: skip
            for row in _run_phase(pool, tasks, out, deadline, log):
                name = ("ref" if "reference" in row
                        else "spider" if row["game"] == "spiderette"
                        else "klondike" if row["game"] == "klondike" else "extra")  # fmt: skip
                got.setdefault(name, []).append(row)
        else:
            for name, tasks in phases:
                if tasks:
                    log(f"phase {name}: {len(tasks)} solves")
                    got[name] = _run_phase(pool, tasks, out, deadline, log)
        pool.terminate()
    dec = {"solved", "unsolvable"}
    for k in ("effective", "true") if "spider" in got else ():
        rk = [r for r in got["spider"] if r["rules"] == k]
        n = sum(r["status"] in dec for r in rk)
        summary[f"spiderette_{k}"] = {"done": len(rk), "decided": n}
        log(f"  spiderette ({k} rules): {n}/{len(rk)} decided within 3 s")
    if "ref" in got:
        rrows = got["ref"]
        summary["reference_outcomes"] = {
            "done": len(rrows),
            "of": len(dict(phases)["ref"]),
            "reproduced": sum(r["status"] == r["reference"] for r in rrows),
            "disagree": [(r["game"], r["seed"]) for r in rrows
                         if r["status"] in dec and r["status"] != r["reference"]],
            "undecided": [(r["game"], r["seed"]) for r in rrows if r["status"] not in dec],
        }  # fmt: skip
        log("  reference outcomes: " + json.dumps(summary["reference_outcomes"]))
    for g in extra:
        rg = [r for r in got["extra"] if r["game"] == g]
        n = sum(r["status"] in dec for r in rg)
        summary[g] = {"done": len(rg), "decided": n, "timeout_s": a.extra_timeout}
        log(f"  {g}: {n}/{len(rg)} decided within {a.extra_timeout:g} s")
    rows = got["klondike"]
    und = [r for r in rows if r["status"] not in dec]
    # a decided deal whose answer differs from the local store's decided answer: a regression
    before = _stored("status")
    changed = [r["seed"] for r in rows if r["status"] in dec
               and before.get(r["seed"]) in dec and before[r["seed"]] != r["status"]]  # fmt: skip
    if changed:
        log(f"ANSWER CHANGED against the local store: seeds {changed}")
    redo = [r for r in rows if r["seed"] in retry]
    summary["klondike"] = {
        "done": len(rows),
        "undecided": len(und),
        "previously_undecided_done": len(redo),
        "previously_undecided_decided": sum(r["status"] in dec for r in redo),
        "mean_s": round(sum(r["seconds"] for r in rows) / max(len(rows), 1), 3),
        "decided": len(rows) - len(und),
        "answers_changed": changed,
        "states": sum(r["states"] for r in rows),
    }
    summary["wall_s"] = round(time.monotonic() - t0, 1)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    log("summary: " + json.dumps(summary))
    return 0


def ingest(src: Path) -> int:
    """Merge a finished run's Klondike rows into the local store; compare Spiderette."""
    import csv

    from solvitaire import __version__, load_rules
    from solvitaire._store import ResultStore

    kl = src / "klondike.jsonl"
    if kl.exists():
        store = ResultStore(HERE / "results" / "klondike_1000.sqlite")
        h = load_rules("klondike").hash
        con = store.con
        decided = ("solved", "unsolvable")
        for line in kl.read_text().splitlines():
            r = json.loads(line)
            old = con.execute(
                "SELECT status FROM results WHERE rules_hash=? AND seed=? AND version=?",
                (h, r["seed"], __version__),
            ).fetchone()
            if old and old[0] in decided and r["status"] not in decided:
                continue  # a deal decided within the limit elsewhere stays decided
            con.execute("DELETE FROM results WHERE rules_hash=? AND seed=? AND version=?",
                        (h, r["seed"], __version__))  # fmt: skip
            store.add(h, r["seed"], __version__, "klondike", r["status"], r["seconds"],
                      r["states"])  # fmt: skip
        store.close()
    sp = src / "spiderette.jsonl"
    ref = HERE.parents[2].parent / "shared" / "solvitaire" / "outcomes" / "spiderette.tsv"
    if sp.exists() and ref.exists():
        with open(ref) as f:
            refrows = {int(r["seed"]): r for r in csv.DictReader(f, delimiter="\t")}
        rows = [json.loads(x) for x in sp.read_text().splitlines()]
        for k in ("effective", "true"):
            rk = {r["seed"]: r for r in rows if r["rules"] == k}
            both = [s for s, r in rk.items() if r["status"] in ("solved", "unsolvable")
                    and refrows[s]["outcome"] != "timed-out"]  # fmt: skip
            dis = [s for s in both if rk[s]["status"] != refrows[s]["outcome"]]
            ours_to = sum(r["status"] not in ("solved", "unsolvable") for r in rk.values())
            ref_to = sum(refrows[s]["outcome"] == "timed-out" for s in rk)
            ref_ms = sum(int(refrows[s]["ms"]) for s in both)
            our_s = sum(rk[s]["cpu_s"] for s in both)
            print(f"spiderette ({k} rules): {len(rk)} deals, timeouts ours {ours_to} / "
                  f"reference {ref_to}; both decided {len(both)}, disagree {dis}; ratio "
                  f"{ref_ms / 1000 / max(our_s, 1e-9):.2f}x")  # fmt: skip
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--budget", type=float, default=float(os.environ.get("BUDGET_S", 480)))
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", 4)))
    ap.add_argument("--deals", type=int, default=int(os.environ.get("KL_DEALS", 1000)))
    ap.add_argument("--first", type=int, default=int(os.environ.get("KL_FIRST", 714)))
    ap.add_argument("--timeout", type=float, default=float(os.environ.get("KL_TIMEOUT", 60)))
    ap.add_argument("--memory-gib", type=float, default=float(os.environ.get("MEM_GIB", 3)))
    ap.add_argument("--retry", default=os.environ.get("KL_RETRY", ",".join(map(str, UNDECIDED))))
    ap.add_argument("--skip", default=os.environ.get("KL_SKIP", ""), help="seeds not to run")
    ap.add_argument("--slowest-first", action="store_true",
                    default=os.environ.get("KL_SLOWEST_FIRST") == "1")  # fmt: skip
    skip = os.environ.get("SKIP_SPIDER") == "1"
    ap.add_argument("--skip-spider", action="store_true", default=skip)
    ap.add_argument("--extra-games", default=os.environ.get("EXTRA_GAMES", ""))
    ap.add_argument(
        "--extra-timeout", type=float, default=float(os.environ.get("EXTRA_TIMEOUT", 60))
    )
    ap.add_argument("--ref-games", default=os.environ.get("REF_GAMES", ""))
    ap.add_argument("--ref-timeout", type=float, default=float(os.environ.get("REF_TIMEOUT", 60)))
    ap.add_argument("--ref-longer", default=os.environ.get("REF_LONGER", ""))
    ap.add_argument("--mixed", action="store_true", default=os.environ.get("MIXED") == "1",
                    help="every phase's solves at once, longest limit first")  # fmt: skip
    ap.add_argument("--out", default=None)
    ap.add_argument("--ingest", type=Path, default=None, help="merge a finished run (here)")
    a = ap.parse_args(argv)
    if a.ingest is not None:
        return ingest(a.ingest)
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
