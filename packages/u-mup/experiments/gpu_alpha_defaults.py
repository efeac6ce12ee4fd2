"""Are u-μP's default α's near-optimal? The paper's independent search on one GPU (reference §3.2).

At one width: sweep η with every α = 1; at the best η sweep each α alone over a log2 grid; then
train the combination of the per-α argmins. Each stage is one stacked model
(:func:`u_mup._batched.train_batched`). Reports each α's gap ``loss(α=1)/min_α loss − 1`` and the
combined improvement ``1 − loss(combined)/loss(defaults)``, as seed means of the final training
loss (and of the validation loss). Rows of one seed share data order and initial weights, so each
gap also gets a paired estimate: the mean over seeds of the per-seed ratio − 1 and its standard
error (``default_gap_paired``, ``improvement_paired``), which says how much of a gap is seed noise.

    python packages/u-mup/experiments/gpu_alpha_defaults.py --out OUT [--smoke]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from collections import defaultdict
from pathlib import Path

ALPHAS = (
    "alpha_ffn_act",
    "alpha_attn_softmax",
    "alpha_res",
    "alpha_res_attn_ratio",
    "alpha_loss_softmax",
)


def _mean(recs: list[dict], key: str, by) -> dict:
    acc: dict = defaultdict(list)
    for r in recs:
        acc[by(r)].append(math.inf if r[key] is None else r[key])
    return {k: sum(v) / len(v) for k, v in acc.items()}


def _paired(recs: list[dict], ref, alt) -> dict | None:
    """:func:`u_mup.sweep.paired_gap` of the records that the predicates ``ref``/``alt`` pick."""
    from u_mup.sweep import paired_gap

    return paired_gap([r for r in recs if ref(r)], [r for r in recs if alt(r)])


def _fmt(p: dict | None) -> str:
    return "n/a" if p is None else f"{100 * p['mean']:+.2f} ± {100 * p['se']:.2f} %"


def _plot(res: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("η", res.get("eta", {}).get("loss_by_lr", {}), None)]
    for n in ALPHAS:
        if n in res.get("alpha_curves", {}):
            panels.append((n, res["alpha_curves"][n], res["alpha_curves_val"][n]))
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.2), squeeze=False)
    for ax, (n, c, cv) in zip(axes[0], panels):
        xs = sorted(c, key=float)
        ax.plot([math.log2(float(x)) for x in xs], [c[x] for x in xs], "o-", label="train")
        if cv:
            ax.plot([math.log2(float(x)) for x in xs], [cv[x] for x in xs], "s--", label="val")
        ax.axvline(0.0 if n != "η" else math.log2(res["eta"]["best_lr"]), color="grey", lw=0.8)
        fin = [v for v in c.values() if math.isfinite(v)]
        if fin:
            ax.set_ylim(min(fin) - 0.02, min(fin) + 0.3)
        ax.set_xlabel(f"log2 {n}")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("seed-mean loss (nats/byte)")
    axes[0][-1].legend(fontsize=7)
    fig.suptitle(f"u-μP independent search, {title} ({res['device']})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--smoke", action="store_true", help="tiny CPU run to test the plumbing")
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--steps", type=int, default=int(os.environ.get("UMUP_B_STEPS", 1500)))
    ap.add_argument("--seeds", default=os.environ.get("UMUP_B_SEEDS", "0,1,2"))
    ap.add_argument("--batch-size", type=int, default=int(os.environ.get("UMUP_B_BATCH", 16)))
    ap.add_argument("--seq-len", type=int, default=int(os.environ.get("UMUP_B_SEQ", 128)))
    ap.add_argument(
        "--lr-exp",
        default=os.environ.get("UMUP_B_LR_EXP", "-4:4"),
        help="log2 grid of the η stage as LO:HI",
    )
    lr_env = os.environ.get("UMUP_B_LR")
    ap.add_argument(
        "--lr",
        type=float,
        default=float(lr_env) if lr_env else None,
        help="η to use; skips the η stage (e.g. 0.5, the optimum measured at width 256)",
    )
    ap.add_argument(
        "--alphas",
        default=os.environ.get("UMUP_B_ALPHAS", ",".join(ALPHAS)),
        help="comma-separated α names to sweep (default: all five)",
    )
    ap.add_argument(
        "--alpha-exp",
        default=os.environ.get("UMUP_B_ALPHA_EXP", "-3:3"),
        help="log2 grid of each α as LO:HI (α = 1 is always included)",
    )
    ap.add_argument(
        "--combine",
        default=os.environ.get("UMUP_B_COMBINE", ""),
        help="comma-separated alpha_defaults_gpu.json files of runs that swept disjoint α's with "
        "the same η, seeds and steps (e.g. on two GPUs): merge their curves and train only the "
        "combination of the argmins",
    )
    a = ap.parse_args()
    names = [n.strip() for n in a.alphas.split(",") if n.strip()]
    bad = [n for n in names if n not in ALPHAS]
    if bad or not names:
        ap.error(f"--alphas: unknown {bad or 'empty list'}; choose from {', '.join(ALPHAS)}")
    try:
        lo, hi = (int(v) for v in a.alpha_exp.split(":"))
        lr_lo, lr_hi = (int(v) for v in a.lr_exp.split(":"))
    except ValueError:
        ap.error(f"--alpha-exp/--lr-exp: expected LO:HI integers such as -3:3, got {a.alpha_exp!r}")
    import torch

    from u_mup._batched import Variant, train_batched
    from u_mup._train import RunSpec

    t0 = time.time()
    seeds = [int(s) for s in a.seeds.split(",")]
    lr_exp = list(range(lr_lo, lr_hi + 1))
    alpha_exp = [e for e in range(lo, hi + 1) if e != 0]  # α = 2^e; α = 1: the default row
    spec = RunSpec(
        "umup",
        width=a.width,
        n_layers=4,
        steps=a.steps,
        batch_size=a.batch_size,
        seq_len=a.seq_len,
    )
    spec = RunSpec(**{**spec.__dict__, "head_dim": 64, "dtype": "bf16", "device": "cuda"})
    if a.smoke:
        seeds, lr_exp, alpha_exp = [0, 1], [-1, 0, 1], [-1, 1]
        spec = RunSpec("umup", width=32, n_layers=1, steps=4, batch_size=2, seq_len=16)
    dev = spec.device
    name = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    recs: list[dict] = []
    res: dict = {"device": name, "date": time.strftime("%Y-%m-%d"), "spec": spec.__dict__}
    res.update(seeds=seeds, lr_grid_log2=lr_exp, alpha_grid_log2=[*alpha_exp, 0], alphas=names)

    def write() -> None:
        res["wall_s"] = round(time.time() - t0, 1)
        res["records"] = recs
        (out / "alpha_defaults_gpu.json").write_text(json.dumps(res, indent=1) + "\n")
        if recs:
            _plot(res, out / "alpha_defaults_gpu.png", f"width {spec.width}, {spec.steps} steps")

    parts = [json.loads(Path(f).read_text()) for f in a.combine.split(",") if f.strip()]
    if parts:  # η and α stages come from earlier runs
        a.lr = parts[0]["eta"]["best_lr"]
        keys = {
            (p["eta"]["best_lr"], tuple(p["seeds"]), p["spec"]["steps"], p["spec"]["batch_size"])
            for p in parts
        }
        if keys != {(a.lr, tuple(seeds), spec.steps, spec.batch_size)}:
            ap.error(
                f"--combine: the runs differ in (η, seeds, steps, batch) or from this one: {keys}"
            )
    # 1. η with default α's (skipped when --lr / UMUP_B_LR gives the optimum already measured)
    if a.lr is not None:
        lr = a.lr
        res["eta"] = {"best_lr": lr, "given": True, "loss_by_lr": {}}
        print(f"η = 2^{math.log2(lr):g} given; η stage skipped")
    else:
        rs = train_batched(spec, [Variant(2.0**e, s) for e in lr_exp for s in seeds])
        recs += rs
        by_lr = _mean(rs, "loss", lambda r: r["spec"]["lr"])
        lr = min(by_lr, key=by_lr.get)
        res["eta"] = {"best_lr": lr, "loss_by_lr": {str(k): v for k, v in by_lr.items()}}
        dt = time.time() - t0
        print(f"best η = 2^{round(math.log2(lr))} (loss {by_lr[lr]:.4f}) [{dt:.0f} s]")
    write()

    # 2. each α alone at the best η: one stacked run per α (the α = 1 default rows go with the
    # first), results rewritten after each, so a run cut short keeps the finished α's.
    def alpha_value(r: dict, n: str) -> float | None:
        al = r["spec"]["alphas"]
        return al.get(n, 1.0) if set(al) <= {n} else None

    rs = []
    curves, curves_val = {}, {}

    def summarise() -> tuple[dict, dict, float]:
        """Per-α argmin and gap of α = 1 from the curves so far, stored in ``res``."""
        best = {n: min(c, key=c.get) for n, c in curves.items()}
        gap = {n: c[1.0] / min(c.values()) - 1 for n, c in curves.items()}
        gap_val = {n: c[1.0] / min(c.values()) - 1 for n, c in curves_val.items()}
        default = _mean([r for r in rs if not r["spec"]["alphas"]], "loss", lambda r: 0)[0]
        res.update(default_loss=default, best_alphas=best, default_gap=gap, default_gap_val=gap_val)
        res["default_gap_paired"] = {
            n: _paired(
                rs,
                lambda r: not r["spec"]["alphas"],
                lambda r, n=n: r["spec"]["alphas"] == {n: best[n]},
            )
            if best[n] != 1.0
            else {"mean": 0.0, "se": 0.0, "n_seeds": len(seeds)}
            for n in curves
        }
        res["alpha_curves"] = {n: {str(k): v for k, v in c.items()} for n, c in curves.items()}
        res["alpha_curves_val"] = {
            n: {str(k): v for k, v in c.items()} for n, c in curves_val.items()
        }
        return best, gap, default

    if parts:
        for p in parts:
            recs += p["records"]
            for n, c in p["alpha_curves"].items():
                curves[n] = {float(k): v for k, v in c.items()}
                curves_val[n] = {float(k): v for k, v in p["alpha_curves_val"][n].items()}
        rs = [r for r in recs if r["spec"]["lr"] == lr and len(r["spec"]["alphas"]) <= 1]
        names = []
        best, gap, default = summarise()
        res["alphas"] = sorted(curves, key=ALPHAS.index)
        res["combined_from"] = a.combine
        for n in res["alphas"]:
            print(f"  {n:>22}: best {best[n]:g}, gap of α=1 {100 * gap[n]:+.2f} %")
    for i, name_a in enumerate(names):
        variants = [Variant(lr, s) for s in seeds] if i == 0 else []
        variants += [Variant(lr, s, {name_a: 2.0**e}) for e in alpha_exp for s in seeds]
        part = train_batched(spec, variants)
        rs += part
        recs += part
        stage = [r for r in rs if alpha_value(r, name_a) is not None]
        curves[name_a] = _mean(stage, "loss", lambda r, n=name_a: alpha_value(r, n))
        curves_val[name_a] = _mean(stage, "val_loss", lambda r, n=name_a: alpha_value(r, n))
        best, gap, default = summarise()
        print(
            f"  {name_a:>22}: best {best[name_a]:g}, gap of α=1 {100 * gap[name_a]:+.2f} % "
            f"(paired {_fmt(res['default_gap_paired'][name_a])}) [{time.time() - t0:.0f} s]"
        )
        write()

    # 3. the combination of the per-α argmins, next to the defaults again (same run)
    combo = {n: v for n, v in best.items() if v != 1.0}
    dflt_val = _mean([r for r in rs if not r["spec"]["alphas"]], "val_loss", lambda r: 0)[0]
    comb, comb_val = default, dflt_val  # every α's argmin is 1: the combination is the default
    if combo:
        rs = train_batched(spec, [Variant(lr, s, combo) for s in seeds])
        for r in rs:
            r["stage"] = "combined"
        recs += rs
        comb = _mean(rs, "loss", lambda r: 0)[0]
        comb_val = _mean(rs, "val_loss", lambda r: 0)[0]
        res["improvement_paired"] = _paired(
            recs,
            lambda r: not r["spec"]["alphas"] and r["spec"]["lr"] == lr,
            lambda r: r.get("stage") == "combined",
        )
    res.update(combined_alphas=combo, combined_loss=comb, improvement=1 - comb / default)
    res["improvement_val"] = 1 - comb_val / dflt_val
    write()
    print(
        f"combined {combo}: loss {comb:.4f} vs defaults {default:.4f} -> improvement "
        f"{100 * res['improvement']:+.2f} % (val {100 * (res['improvement_val'] or 0):+.2f} %, "
        f"paired {_fmt(res.get('improvement_paired'))}) "
        f"[{time.time() - t0:.0f} s on {name}]"
    )


if __name__ == "__main__":
    main()
