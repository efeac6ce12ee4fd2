"""Plot a cast-kernel sweep (``fp8_sweep.json`` of ``sweep_cast.py``) as a PNG.

``python packages/fp8-scaling/benchmarks/plot_sweep.py SWEEP_JSON OUT_PNG``: one panel per kind
(JIT amax + cast, delayed one-pass cast), GPU time per configuration and tensor shape relative
to the self-tuning ("legacy") kernels; below 1 is faster.
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main(src: str, dst: str) -> None:
    with open(src) as f:
        d = json.load(f)
    shapes = list(d["shapes"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.5), sharey=True)
    for ax, kind, title in zip(
        axes, ("cast_jit", "cast_delayed"), ("JIT: amax + cast + transpose", "delayed 1-pass")
    ):
        names = sorted({c for s in shapes for c in d["shapes"][s]["us"][kind]})
        for i, shape in enumerate(shapes):
            us = d["shapes"][shape]["us"][kind]
            ref = us["legacy"]
            xs = [j + 0.8 * i / len(shapes) for j in range(len(names)) if names[j] in us]
            ys = [us[n] / ref for n in names if n in us]
            ax.bar(xs, ys, width=0.8 / len(shapes), label=shape)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_xticks(range(len(names)))
        ax.set_xticklabels(names, rotation=70, fontsize=7)
        ax.set_title(f"{title} ({d['gpu']})")
    axes[0].set_ylabel("GPU time / self-tuning kernels")
    axes[1].legend(fontsize=7, title="M x N (bf16)")
    fig.tight_layout()
    fig.savefig(dst, dpi=110)
    print(f"wrote {dst}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
