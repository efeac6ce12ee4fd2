"""Turn measured timings into result records and render them as markdown."""

from __future__ import annotations

from typing import Any

from monobench._registry import Measure
from monobench._timing import Timing

__all__ = ["case_id", "derive", "render_markdown"]


def case_id(name: str, params: dict[str, Any]) -> str:
    """Stable identifier of one parameter point, e.g. ``matmul[n=1024]``."""
    if not params:
        return name
    inner = ",".join(f"{k}={params[k]}" for k in sorted(params))
    return f"{name}[{inner}]"


def derive(m: Measure, cand: Timing, base: Timing | None) -> dict[str, Any]:
    """Speed-up, achieved throughput and roofline fraction for one measured point.

    ``speedup = baseline_median / candidate_median``;
    ``achieved_gb_s = bytes / candidate_median / 1e9``;
    ``achieved_tflop_s = flops / candidate_median / 1e12``; the roofline fraction is the achieved
    rate over the peak given in the :class:`Measure` (bandwidth or FLOP/s; the larger if both).
    """
    base_s = base.median_s if base is not None else m.baseline_seconds
    if base_s is None:
        raise ValueError("derive() needs a baseline timing or baseline_seconds")
    out: dict[str, Any] = {"speedup": base_s / cand.median_s}
    t = cand.median_s
    fractions = []
    if m.bytes is not None:
        out["achieved_gb_s"] = m.bytes / t / 1e9
        if m.peak_bytes_per_s:
            fractions.append(m.bytes / t / m.peak_bytes_per_s)
    if m.flops is not None:
        out["achieved_tflop_s"] = m.flops / t / 1e12
        if m.peak_flops:
            fractions.append(m.flops / t / m.peak_flops)
    if fractions:
        out["roofline_fraction"] = max(fractions)
    return out


def _fmt_time(s: float | None) -> str:
    if s is None:
        return "—"
    if s >= 1:
        return f"{s:.3g} s"
    if s >= 1e-3:
        return f"{s * 1e3:.3g} ms"
    return f"{s * 1e6:.3g} µs"


def render_markdown(run: dict[str, Any]) -> str:
    """A markdown report of a run: environment line and one table row per parameter point."""
    env = run["environment"]
    lines = [
        f"# Benchmarks: {run['package']}",
        "",
        f"- device: {env['device_name']} ({env['device']})",
        f"- date: {env['date']}  git: {env.get('git_sha') or 'unknown'}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in sorted(env["versions"].items())),
        f"- settings: {run['settings']}",
        "",
        "Speed-up = baseline time / candidate time, both measured in this run "
        "(a recorded baseline is marked *rec*). > 1 means the candidate is faster. "
        "Cases marked *(pipelined)* issue calls back to back without a device synchronisation "
        "between them (training-loop timing); the others synchronise after every call.",
        "",
        "| case | candidate | baseline | candidate time | baseline time | speed-up | GB/s "
        "| TFLOP/s | roofline |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in run["results"]:
        if r["status"] != "ok":
            lines.append(f"| {r['id']} | error: {r.get('error', '')} | | | | | | | |")
            continue
        base = r["baseline"]
        rec = " *rec*" if base.get("recorded") else ""
        pipe = " (pipelined)" if r.get("timing") == "pipelined" else ""
        roof = r.get("roofline_fraction")
        gbs = r.get("achieved_gb_s")
        tfs = r.get("achieved_tflop_s")
        lines.append(
            f"| {r['id']}{pipe} | {r['candidate_label']} | {r['baseline_label']}{rec} "
            f"| {_fmt_time(r['candidate']['median_s'])} | {_fmt_time(base['median_s'])} "
            f"| {r['speedup']:.3f}× | {'' if gbs is None else f'{gbs:.1f}'} "
            f"| {'' if tfs is None else f'{tfs:.1f}'} "
            f"| {'' if roof is None else f'{roof:.0%}'} |"
        )
    extras = [r for r in run["results"] if r["status"] == "ok" and r.get("extra")]
    if extras:
        lines += ["", "Extra measurements:", ""]
        for r in extras:
            lines.append(
                f"- `{r['id']}`: " + ", ".join(f"{k}={_short(v)}" for k, v in r["extra"].items())
            )
    return "\n".join(lines) + "\n"


def _short(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)
