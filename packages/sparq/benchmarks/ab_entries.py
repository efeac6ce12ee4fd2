"""A/B of tuning-table entry variants against the committed entries, on one GPU.

For each grouped-query shape (K2, K3 and the end-to-end layer) the committed entry and each
variant (the committed entry with a few keys replaced, ``VARIANTS``) run the whole SparQ call:

1. **checks**: the variant's selection must be exact for its own step-1 logits (exactly k
   winners, sorted, none below an unselected key, forced positions kept, through the reference's
   keys), and its output error against the fp32 reference at most twice the committed entry's
   plus one bf16 ulp of the largest output;
2. **speed**: CUDA-graph replays over rotating input sets (more bytes than the 60 MB L2) of every
   entry and of dense SDPA, interleaved ``--rounds`` times; medians and ratios to the committed
   entry measured in the same run.

Writes ``ab_entries_<date>_<gpu>.json`` to ``--out`` and, with ``--table``, a copy of the
committed table in which each shape takes the fastest checked variant that beat the committed
entry by more than ``--min-gain`` (for the harness, through ``SPARQ_TUNED_JSON``). Run from the
repository root with the packages on ``PYTHONPATH``::

    python3 packages/sparq/benchmarks/ab_entries.py --out /tmp/o --table /tmp/o/t.json

``--smoke`` runs a tiny shape on the CPU (``TRITON_INTERPRET=1``) to check the script itself.
"""

from __future__ import annotations

import argparse
import copy
import datetime
import json
import math
import statistics
import sys
from pathlib import Path

import torch
from _graphs import graph_replay, seconds_per_call

SHAPES = {
    "K2": {"B": 32, "Hq": 32, "Hkv": 8, "S": 32768, "r": 16, "k": 2048},
    "K3": {"B": 1, "Hq": 32, "Hkv": 8, "S": 131072, "r": 16, "k": 8192},
    "E2E": {"B": 16, "Hq": 32, "Hkv": 8, "S": 32832, "r": 16, "k": 2048},
}
SMOKE = {"tiny": {"B": 2, "Hq": 8, "Hkv": 2, "S": 300, "r": 8, "k": 40}}
# entry patches: {section: {key: value}} merged into the committed entry's sections
VARIANTS = {
    "bf16_logits": {"step1": {"logits_dtype": "bfloat16"}},
}
WINDOW, SINKS = 64, 4


def _inputs(sh, dev, n_sets, dh=128):
    dt = torch.bfloat16 if dev == "cuda" else torch.float16
    sets = []
    for i in range(n_sets):
        g = torch.Generator(device=dev).manual_seed(i)
        B, Hq, Hkv, S = sh["B"], sh["Hq"], sh["Hkv"], sh["S"]
        q = torch.randn(B, Hq, 1, dh, device=dev, generator=g)
        q = (q * (1 + 4 * (torch.rand(q.shape, device=dev, generator=g) > 0.9))).to(dt)
        K = torch.randn(B, Hkv, S, dh, device=dev, generator=g).to(dt)
        V = torch.randn(B, Hkv, S, dh, device=dev, generator=g).to(dt)
        sets.append((q, K, V, K.transpose(-1, -2).contiguous()))
    return sets


def _call(sh, s):
    from sparq.kernels import sparq_attention_triton

    q, K, V, K_t = s
    return lambda: sparq_attention_triton(
        q, K, V, K_t=K_t, seq_lens=None, r=sh["r"], k=sh["k"], local_window=WINDOW,
        sink_tokens=SINKS, reallocation=False, dense_fallback=False,
    )  # fmt: skip


def _rotating(fns):
    state = {"i": 0}

    def call():
        fns[state["i"] % len(fns)]()
        state["i"] += 1

    return call


def _selection_exact(sh, s, entry) -> bool:
    """The entry's step 1 + selection on set ``s``: exact for its own logits (reference keys)."""
    from sparq.kernels import approx_logits, prepare_query_fused, select_topk_reference
    from sparq.kernels._dispatch import _SELECTORS

    q, _, _, K_t = s
    dh = K_t.shape[2]
    nb = min(sh["B"], 4)
    i1, qh = prepare_query_fused(q[:nb], sh["Hkv"], sh["r"], dh**-0.5, sort=True)
    lens = torch.full((nb,), sh["S"], device=q.device, dtype=torch.int64)
    lg, tm, ts = approx_logits(K_t[:nb], i1, qh, lens, **entry.get("step1", {}))
    sel = _SELECTORS[entry.get("selection", "hist")]
    idx, _ = sel(lg, tm, ts, lens, sh["k"], WINDOW, SINKS, **entry.get("selection_kw", {}))
    _, _, key = select_topk_reference(lg.float(), lens, sh["k"], WINDOW, SINKS)
    chosen = torch.zeros_like(key, dtype=torch.bool).scatter_(-1, idx.long(), True)
    kmin = key.masked_fill(~chosen, math.inf).amin(-1)
    kmax_out = key.masked_fill(chosen, -math.inf).amax(-1)
    forced = key == math.inf
    return bool(
        torch.all(idx[..., 1:] > idx[..., :-1])
        and torch.all(kmin >= kmax_out)
        and torch.all((chosen & forced).sum(-1) == forced.sum(-1).clamp(max=sh["k"]))
    )


def _rel_err(sh, s, out) -> float:
    from sparq._reference import sparq_attention_reference

    q, K, V, _ = s
    nb = min(sh["B"], 2)
    ref = sparq_attention_reference(
        q[:nb].float(), K[:nb].float(), V[:nb].float(), r=sh["r"], k=sh["k"],
        local_window=WINDOW, sink_tokens=SINKS, reallocation=False,
    ).float()  # fmt: skip
    return (out[:nb].float() - ref).abs().max().item() / max(1e-6, ref.abs().max().item())


def run_shape(name, sh, dev, rounds, reps, table):
    import sparq.kernels._dispatch as dispatch
    from sparq.kernels import dense_decode
    from sparq.kernels._tuned import shape_key

    key = shape_key(sh["B"], sh["Hq"], sh["Hkv"], sh["S"], 128, sh["r"], sh["k"])
    base = copy.deepcopy(table.get(key) or {"selection": "hist", "step1": {"rows": True}})
    cache = 3 * sh["B"] * sh["Hkv"] * sh["S"] * 128 * 2
    sets = _inputs(sh, dev, 1 if dev == "cpu" else max(2, min(6, int(6e9 // cache))))
    entries = {"committed": base}
    for vname, patch in VARIANTS.items():
        e = copy.deepcopy(base)
        for sec, kv in patch.items():
            e[sec] = {**e.get(sec, {}), **kv}
        entries[vname] = e
    res = {"shape": sh, "key": key, "n_sets": len(sets), "committed_entry": table.get(key),
           "variants": {}}  # fmt: skip
    graphs, orig = {}, dispatch.tuned_entry
    try:
        for vname, e in entries.items():
            dispatch.tuned_entry = lambda _k, e=e: e
            fns = [_call(sh, s) for s in sets]
            out = fns[0]()  # also compiles outside the graphs
            r = {"rel_err_vs_fp32_reference": _rel_err(sh, sets[0], out),
                 "selection_exact": _selection_exact(sh, sets[0], e), "entry": e}  # fmt: skip
            res["variants"][vname] = r
            print(name, vname, {n: v for n, v in r.items() if n != "entry"}, flush=True)
            if dev == "cuda":
                graphs[vname] = _rotating([graph_replay(f) for f in fns])
    finally:
        dispatch.tuned_entry = orig
    e0 = res["variants"]["committed"]["rel_err_vs_fp32_reference"]
    for r in res["variants"].values():
        r["checked"] = r["selection_exact"] and r["rel_err_vs_fp32_reference"] <= 2 * e0 + 2**-8
    if dev == "cuda":

        def dense(s):
            return graph_replay(lambda: dense_decode(s[0], s[1], s[2], None, 128**-0.5))

        graphs["dense_sdpa"] = _rotating([dense(s) for s in sets])
        times = {n: [] for n in graphs}
        for _ in range(rounds):  # interleaved, so clock drift hits every entry alike
            for n, g in graphs.items():
                times[n].append(seconds_per_call(g, reps))
        med = {n: statistics.median(t) for n, t in times.items()}
        for n in graphs:
            v = res["variants"].setdefault(n, {})
            v.update(t_median_s=med[n], t_rounds_s=times[n],
                     speedup_vs_committed=med["committed"] / med[n],
                     speedup_vs_dense=med["dense_sdpa"] / med[n])  # fmt: skip
            print(f"{name} {n}: {med[n] * 1e6:.1f} us, {med['committed'] / med[n]:.3f}x "
                  f"committed, {med['dense_sdpa'] / med[n]:.3f}x dense", flush=True)  # fmt: skip
    return res


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--table", help="write the tuning table with the winning variants here")
    ap.add_argument("--shapes", default="K2,K3,E2E")
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--reps", type=int, default=50)
    ap.add_argument("--min-gain", type=float, default=0.01)
    ap.add_argument("--smoke", action="store_true")
    a = ap.parse_args(argv)
    from sparq.kernels import _tuned

    dev = "cpu" if a.smoke else "cuda"
    full = json.loads(_tuned.TUNED_PATH.read_text())
    table = full.get("shapes", {})
    shapes = SMOKE if a.smoke else {n: SHAPES[n] for n in a.shapes.split(",")}
    gpu = torch.cuda.get_device_name() if dev == "cuda" else "cpu"
    now = datetime.datetime.now(datetime.timezone.utc)
    report = {"device": gpu, "torch": torch.__version__, "utc": now.isoformat(timespec="seconds"),
              "variants": VARIANTS, "shapes": {}}  # fmt: skip
    new = copy.deepcopy(full)
    for name, sh in shapes.items():
        res = run_shape(name, sh, dev, a.rounds, a.reps, table)
        report["shapes"][name] = res
        ok = {n: v for n, v in res["variants"].items()
              if n in VARIANTS and v["checked"] and "speedup_vs_committed" in v}  # fmt: skip
        if ok and res["key"] in table:
            best = max(ok, key=lambda n: ok[n]["speedup_vs_committed"])
            res["best"] = best
            if ok[best]["speedup_vs_committed"] > 1 + a.min_gain:
                e = {**ok[best]["entry"], "t_sparq_s": ok[best]["t_median_s"],
                     "t_dense_s": res["variants"]["dense_sdpa"]["t_median_s"]}  # fmt: skip
                e["selection_variant"] = f"{e.get('selection_variant', 'hist')}+{best}"
                new["shapes"][res["key"]] = e
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"ab_entries_{now:%Y-%m-%d-%H%M}_{gpu.replace(' ', '-').lower()}.json"
    path.write_text(json.dumps(report, indent=1))
    print("wrote", path)
    if a.table:
        Path(a.table).write_text(json.dumps(new, indent=1))
        print("wrote", a.table)
    bad = [(s, n) for s, r in report["shapes"].items() for n, v in r["variants"].items()
           if v.get("checked") is False]  # fmt: skip
    if bad:
        print("FAILED CHECKS:", bad)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
