"""Compare two runs case by case (like ``pyperf compare_to``)."""

from __future__ import annotations

from typing import Any

__all__ = ["compare_runs", "render_comparison"]


def compare_runs(a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    """Per-case change from run ``a`` to run ``b``.

    For each id present in both with status ok: ``time_ratio = b.candidate / a.candidate``
    (< 1 means b is faster) and the two speed-ups. Ids present in only one run are listed with
    ``only_in``.
    """
    ra = {r["id"]: r for r in a["results"]}
    rb = {r["id"]: r for r in b["results"]}
    rows = []
    for rid in sorted(set(ra) | set(rb)):
        if rid not in ra or rid not in rb:
            rows.append({"id": rid, "only_in": "A" if rid in ra else "B"})
            continue
        x, y = ra[rid], rb[rid]
        if x["status"] != "ok" or y["status"] != "ok":
            rows.append({"id": rid, "error": "error in " + ("A" if x["status"] != "ok" else "B")})
            continue
        ta, tb = x["candidate"]["median_s"], y["candidate"]["median_s"]
        rows.append(
            {
                "id": rid,
                "time_a_s": ta,
                "time_b_s": tb,
                "time_ratio": tb / ta,
                "speedup_a": x["speedup"],
                "speedup_b": y["speedup"],
            }
        )
    return rows


def render_comparison(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of :func:`compare_runs` rows."""
    out = [f"{'case':<48} {'A':>11} {'B':>11} {'B/A':>7} {'speed-up A→B':>16}"]
    for r in rows:
        if "only_in" in r:
            out.append(f"{r['id']:<48} only in {r['only_in']}")
        elif "error" in r:
            out.append(f"{r['id']:<48} {r['error']}")
        else:
            change = (r["time_ratio"] - 1) * 100
            out.append(
                f"{r['id']:<48} {r['time_a_s'] * 1e3:>9.3f}ms {r['time_b_s'] * 1e3:>9.3f}ms "
                f"{change:>+6.1f}% {r['speedup_a']:>7.3f}→{r['speedup_b']:<7.3f}"
            )
    return "\n".join(out)
