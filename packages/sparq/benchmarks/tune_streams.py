"""Staggered streams per tuned shape: each shape's committed pipeline split into n parts.

Usage: ``python tune_streams.py OUT_DIR [--smoke] [--budget SECONDS] [--only E2E,K2]
[--base TABLE.json] [--streams 1,2,3,2p,3p]``.

For every shape (``tune_sparq.SHAPES``) the committed entry of ``--base`` (default: the
package's ``tuned.json``) is run with ``streams=n`` (:func:`sparq.kernels.staggered`: the rows
split into n parts offset by one step 1, each on its own CUDA stream; ``np``: the parts on
streams of decreasing priority, ``SPARQ_STREAMS_PRIO=1``). Every variant is first
checked to give the output of ``streams=1`` bit for bit, eagerly and as a CUDA-graph replay, then
timed like the tuner times pipelines (graph replays over rotating input sets well above the L2,
100 replays, CUDA events). The fastest variant goes into the entry (``"streams"`` and
``"streams_prio"``, kept only when at least 1 % faster than one stream), with ``"t_sparq_s"``
updated and the one-stream time kept as ``"t_sparq_1stream_s"``. Writes
``OUT_DIR/sparq_tuned.json`` (the base table with these entries; rewritten after every shape)
and prints one line per shape and variant.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from tune_sparq import DH, SHAPES, SINKS, SMOKE, WINDOW, _graphed, _make_sets, _time


def _check(call, s0, n, dev) -> str | None:
    """``None`` when ``streams=n`` equals ``streams=1`` bit for bit (eager and graph replay)."""
    want = call(s0, 1).clone()
    got = call(s0, n)
    if not torch.equal(got, want):
        return f"eager output differs by {(got.float() - want.float()).abs().max().item():.3g}"
    if dev != "cuda":
        return None
    torch.cuda.synchronize()
    g = torch.cuda.CUDAGraph()
    with torch.cuda.graph(g):
        out = call(s0, n)
    for _ in range(3):
        out.zero_()
        g.replay()
        torch.cuda.synchronize()
        if not torch.equal(out, want):
            return "graph replay differs from the one-stream output"
    return None


def tune_shape(name, sh, dev, reps, streams, entry, detail, deadline=math.inf) -> dict:
    """Check and time ``streams`` for one shape; returns the updated entry."""
    from sparq.kernels import sparq_attention_triton

    sets = _make_sets(sh, dev, torch.bfloat16 if dev == "cuda" else torch.float16)
    kw = {"r": sh["r"], "k": sh["k"], "local_window": WINDOW, "sink_tokens": SINKS,
          "reallocation": sh["realloc"], "dense_fallback": False}  # fmt: skip

    def call(s, n):
        return sparq_attention_triton(s["q"], s["K"], s["V"], K_t=s["K_t"], v_mean=s["vm"],
                                      seq_lens=s["lens"], streams=n, **kw)  # fmt: skip

    d = detail[name] = {"shape": sh, "n_input_sets": len(sets), "streams_s": {}, "errors": {}}
    for v in streams:
        if time.monotonic() > deadline and "1" in d["streams_s"]:
            d["errors"][v] = "time budget"
            continue
        n, prio = int(v.rstrip("p")), v.endswith("p")
        if prio:
            os.environ["SPARQ_STREAMS_PRIO"] = "1"
        try:
            err = _check(call, sets[0], n, dev)
            if err is not None:
                d["errors"][v] = err
                print(f"{name:4s} streams={v}: {err}", flush=True)
                continue
            t = _time(_graphed([lambda s=s, n=n: call(s, n) for s in sets], dev), reps, dev)
        except Exception as e:  # keep the other variants
            d["errors"][v] = repr(e)[:300]
            print(f"{name:4s} streams={v}: {e!r}"[:300], flush=True)
            continue
        finally:
            os.environ.pop("SPARQ_STREAMS_PRIO", None)
        d["streams_s"][v] = t
        print(f"{name:4s} streams={v}: {t * 1e6:.1f} us", flush=True)
    del sets
    times = dict(d["streams_s"])
    if "1" not in times:
        return entry
    best = min(times, key=times.get)
    new = dict(entry)
    new["t_sparq_1stream_s"] = times["1"]
    if best != "1" and times[best] < 0.99 * times["1"]:
        new["streams"] = int(best.rstrip("p"))
        if best.endswith("p"):
            new["streams_prio"] = True
        new["t_sparq_s"] = times[best]
        if new.get("t_dense_s") is not None:
            new["dense_faster"] = new["t_dense_s"] <= times[best]
    else:
        new.pop("streams", None)
    return new


def main(argv):
    out = Path(argv[1])
    out.mkdir(parents=True, exist_ok=True)
    smoke = "--smoke" in argv
    budget = float(argv[argv.index("--budget") + 1]) if "--budget" in argv else 120.0
    deadline = time.monotonic() + budget
    streams = (argv[argv.index("--streams") + 1] if "--streams" in argv
               else "1,2,3,2p,3p").split(",")  # fmt: skip
    if "1" not in streams:
        streams = ["1", *streams]
    base_path = Path(argv[argv.index("--base") + 1]) if "--base" in argv else None
    path = out / "sparq_tuned.json"
    from sparq.kernels import _tuned
    from sparq.kernels._tuned import TUNED_PATH, shape_key

    try:
        table = json.loads((base_path or TUNED_PATH).read_text())
    except (OSError, ValueError):
        table = {"shapes": {}}
    dev = "cuda" if torch.cuda.is_available() and not smoke else "cpu"
    if dev == "cuda" and table.get("device") != torch.cuda.get_device_name():
        table = {"device": torch.cuda.get_device_name(), "shapes": {}}
    table.setdefault("shapes", {})
    table["streams_detail"] = {}
    path.write_text(json.dumps(table, indent=1))
    os.environ["SPARQ_TUNED_JSON"] = str(path)  # the calls below read this table
    _tuned.reload()
    shapes = SMOKE if smoke else SHAPES
    if "--only" in argv:
        shapes = {n: shapes[n] for n in argv[argv.index("--only") + 1].split(",") if n in shapes}
    reps = 2 if dev == "cpu" else 100
    for name, sh in shapes.items():
        if time.monotonic() > deadline:
            table["streams_detail"][name] = {"skipped": "time budget"}
            break
        t0 = time.monotonic()
        key = shape_key(sh["B"], sh["Hq"], sh["Hkv"], sh["S"], DH, sh["r"], min(sh["k"], sh["S"]))
        entry = {k: v for k, v in table["shapes"].get(key, {}).items()
                 if k not in ("streams", "streams_prio")}  # fmt: skip
        table["shapes"][key] = entry  # measured without a committed "streams"
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        try:
            table["shapes"][key] = tune_shape(
                name, sh, dev, reps, streams, entry, table["streams_detail"], deadline
            )
        except Exception as e:
            table["streams_detail"][name] = {"error": repr(e)[:300]}
        table["streams_detail"].setdefault(name, {})["seconds"] = time.monotonic() - t0
        path.write_text(json.dumps(table, indent=1))
        _tuned.reload()
        e = table["shapes"][key]
        t1 = e.get("t_sparq_1stream_s") or math.nan
        print(f"{name:4s} {key}: streams={e.get('streams', 1)} "
              f"{(e.get('t_sparq_s') or math.nan) * 1e6:.1f} us (1 stream {t1 * 1e6:.1f} us) "
              f"({time.monotonic() - t0:.0f}s)", flush=True)  # fmt: skip
        if dev == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main(sys.argv)
