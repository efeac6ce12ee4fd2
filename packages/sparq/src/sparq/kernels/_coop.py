"""The whole SparQ decode step in one launch for few long rows: a row-cooperative kernel.

For shapes with few (batch, KV head) rows and long sequences (B=1, Hkv=8, S=128k), the pipeline
of separate kernels is a chain of short, latency-bound launches on a mostly idle GPU. Here each
row gets ``P`` programs, every program of the grid is resident at once (``rows * P`` at most the
number of multiprocessors), and the programs of a row meet at spin barriers (a counter per row in
global memory, release/acquire atomics) between seven phases:

0. query preparation (every program, same values), then step 1 over the program's chunk of
   ``CHUNK`` positions: approximate logits (fp32 scratch) and per-tile softmax statistics, exactly
   as :func:`sparq.kernels.approx_logits` with the row loop; the program also zeroes its share of
   the row's histograms;
1. the row's global softmax statistics, the selection keys of the chunk (the order-preserving
   int32 images of ``sum_h exp(logit_h - M_h) / Z_h``, window and sinks ``+inf``, invalid
   positions ``-inf``; :func:`sparq.kernels.select_topk`'s keys bit for bit) and a histogram of
   their top 11 bits, added to the row's histogram;
2. 3. the bucket holding the k-th largest key at the previous level, then a histogram of the next
   11 (then 10) bits among the keys of that bucket: after three levels every program knows the
   exact k-th key ``T`` and how many keys exceed it;
4. each program counts its keys ``> T`` and ``== T``;
5. the winners (keys ``> T``, and the first ``k - count(> T)`` keys ``== T`` in position order:
   the reference's stable sort) are written in position order at the prefix of the earlier
   chunks' counts, with the selected softmax mass per head (``alpha``);
6. step 2: program ``p`` attends the ``p``-th share of the row's ``k`` selected positions (as
   :func:`sparq.kernels.sparse_attention`), and the last program of the row to finish merges the
   partials, applies the reallocation and resets the row's counter.

Every phase reads what it needs from memory, so the same kernel also runs one launch per phase
(``spin=False``): the only mode under ``TRITON_INTERPRET=1`` (whose programs run one after
another) and the fallback for grids that do not fit on the GPU at once. CUDA-graph capturable (no
host synchronisation, fixed ``k``).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ._common import F32DOT, l2_hints
from ._hist_attend import _counters
from ._prep import _prep_sort_row
from ._select import _emit, _global_stats, _keys
from ._step1 import _rows_tile
from ._step2 import _group_q, _online_step

__all__ = ["coop_attention", "coop_parts", "coop_supported"]

_HW = 2048 + 2048 + 1024  # histogram words per row (three radix levels)
NB1 = tl.constexpr(2048)  # radix levels: key bits 31..21, 20..10, 9..0
NB2 = tl.constexpr(2048)
NB3 = tl.constexpr(1024)
HW = tl.constexpr(_HW)
SPIN_LIMIT = tl.constexpr(1 << 24)  # a bound on every wait, so that no fault can hang the GPU
NPHASE = 7


@triton.jit
def _row_barrier(bar, target):
    """Wait until the row's counter reaches ``target`` (after adding this program's arrival).
    The arrival releases every earlier store of the program (all its threads meet first); the
    polls acquire, so later loads see what the row's other programs stored before arriving."""
    tl.debug_barrier()
    n = tl.atomic_add(bar, 1, sem="acq_rel") + 1
    spins = tl.zeros((), tl.int32)
    while (n < target) & (spins < SPIN_LIMIT):
        n = tl.atomic_add(bar, 0, sem="acquire")
        spins += 1
    tl.debug_barrier()


@triton.jit
def _boundary(h, need, NB: tl.constexpr):
    """Bucket ``j`` holding the ``need``-th largest key of histogram ``h`` ``(NB,)`` and the
    number of keys in buckets above it."""
    b = tl.arange(0, NB)
    ge = tl.sum(h, axis=0) - tl.cumsum(h, axis=0) + h  # keys in buckets >= b
    j = tl.max(tl.where(ge >= need, b, 0), axis=0)
    return j.to(tl.int64), tl.sum(tl.where(b > j, h, 0), axis=0)


@triton.jit
def _prefix(hist_row, K, LEVELS: tl.constexpr):
    """The first ``LEVELS`` radix digits of the row's k-th largest key (as an int64 prefix of
    the unsigned key ``u + 2**31``) and the number of keys above that prefix."""
    h = tl.load(hist_row + tl.arange(0, NB1), cache_modifier=".cg")
    pre, above = _boundary(h, K, NB1)
    if LEVELS >= 2:
        h = tl.load(hist_row + NB1 + tl.arange(0, NB2), cache_modifier=".cg")
        j, a = _boundary(h, K - above, NB2)
        pre = pre * NB2 + j
        above += a
    if LEVELS >= 3:
        h = tl.load(hist_row + NB1 + NB2 + tl.arange(0, NB3), cache_modifier=".cg")
        j, a = _boundary(h, K - above, NB3)
        pre = pre * NB3 + j
        above += a
    return pre, above


@triton.jit
def _level_hist(key_row, hist_row, lo, hi, pre, LEVEL: tl.constexpr, KB: tl.constexpr):
    """Phases 2 and 3: histogram of the next digit among the chunk's keys under ``pre``."""
    if LEVEL == 2:
        h = tl.zeros((NB2,), tl.int32)
    else:
        h = tl.zeros((NB3,), tl.int32)
    for c0 in range(lo, hi, KB):
        cols = c0 + tl.arange(0, KB)
        inb = cols < hi
        v = tl.load(key_row + cols, mask=inb, other=0).to(tl.int64) + 2147483648
        if LEVEL == 2:
            d2 = ((v >> 10) & (NB2 - 1)).to(tl.int32)
            h += tl.histogram(d2, NB2, mask=inb & ((v >> 21) == pre))
        else:
            h += tl.histogram((v & (NB3 - 1)).to(tl.int32), NB3, mask=inb & ((v >> 10) == pre))
    if LEVEL == 2:
        tl.atomic_add(hist_row + NB1 + tl.arange(0, NB2), h, mask=h > 0, sem="relaxed")
    else:
        tl.atomic_add(hist_row + NB1 + NB2 + tl.arange(0, NB3), h, mask=h > 0, sem="relaxed")


@triton.jit
def _coop_kernel(
    q_ptr, kt_ptr, k_ptr, v_ptr, lens_ptr, vmean_ptr, out_ptr, i1_ptr, qhat_ptr, logit_ptr,
    tm_ptr, ts_ptr, key_ptr, hist_ptr, cnt_ptr, idx_ptr, alpha_ptr, pm_ptr, pl_ptr, pacc_ptr,
    bar_ptr, scale, S, K, HKV, NT, window, sinks, CHUNK, CH2,
    P: tl.constexpr, PP: tl.constexpr, DH: tl.constexpr, DHP: tl.constexpr, R: tl.constexpr,
    G: tl.constexpr, GP: tl.constexpr, GQ: tl.constexpr, NTP: tl.constexpr, TILE: tl.constexpr,
    KB: tl.constexpr, BK: tl.constexpr, ZW: tl.constexpr, PHASES: tl.constexpr,
    FIN: tl.constexpr, SPIN: tl.constexpr, REALLOC: tl.constexpr, L2: tl.constexpr,
    F32DOT: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    bh = (pid // P).to(tl.int64)
    p = pid % P
    seq_len = tl.load(lens_ptr + bh // HKV)
    lo = p * CHUNK
    hi = tl.minimum(lo + CHUNK, S)
    bar = bar_ptr + bh
    hist_row = hist_ptr + bh * HW
    key_row = key_ptr + bh * S
    logit_row = logit_ptr + bh * G * S
    heads = tl.arange(0, GP)
    if (PHASES & 1) != 0:  # step 1 of the chunk; zero this program's share of the histograms
        z = p * ZW + tl.arange(0, ZW)
        tl.store(hist_row + z, tl.zeros((ZW,), tl.int32), mask=z < HW)
        _prep_sort_row(q_ptr, i1_ptr, qhat_ptr, scale, R, bh, G, GP, DH, DHP)
        tl.debug_barrier()  # read back below by other threads of this program
        for t in range(lo // TILE, tl.cdiv(hi, TILE)):
            _rows_tile(
                kt_ptr + bh * DH * S, i1_ptr + bh * R, qhat_ptr + bh * G * R, logit_row,
                tm_ptr + bh * G * NT, ts_ptr + bh * G * NT, t, seq_len, S, NT, R, G, GP, TILE,
                L2,
            )  # fmt: skip
    if SPIN and (PHASES & 3) == 3:
        _row_barrier(bar, P)
    if (PHASES & 2) != 0:  # keys of the chunk and the histogram of their top digit
        M, inv_z = _global_stats(tm_ptr, ts_ptr, bh, NT, G, GP, NTP)
        h = tl.zeros((NB1,), tl.int32)
        for c0 in range(lo, hi, KB):
            cols = c0 + tl.arange(0, KB)
            inb = cols < hi
            u = _keys(logit_row, cols, heads, M, inv_z, seq_len, S, window, sinks, G)
            tl.store(key_row + cols, u, mask=inb)
            v = u.to(tl.int64) + 2147483648
            h += tl.histogram((v >> 21).to(tl.int32), NB1, mask=inb)
        tl.atomic_add(hist_row + tl.arange(0, NB1), h, mask=h > 0, sem="relaxed")
    if SPIN and (PHASES & 6) == 6:
        _row_barrier(bar, 2 * P)
    if (PHASES & 4) != 0:
        pre, _ = _prefix(hist_row, K, 1)
        _level_hist(key_row, hist_row, lo, hi, pre, 2, KB)
    if SPIN and (PHASES & 12) == 12:
        _row_barrier(bar, 3 * P)
    if (PHASES & 8) != 0:
        pre, _ = _prefix(hist_row, K, 2)
        _level_hist(key_row, hist_row, lo, hi, pre, 3, KB)
    if SPIN and (PHASES & 24) == 24:
        _row_barrier(bar, 4 * P)
    if (PHASES & 16) != 0:  # this chunk's keys above and at the k-th key T
        pre, _ = _prefix(hist_row, K, 3)
        T = (pre - 2147483648).to(tl.int32)
        gt = tl.zeros((), tl.int32)
        eq = tl.zeros((), tl.int32)
        for c0 in range(lo, hi, KB):
            cols = c0 + tl.arange(0, KB)
            u = tl.load(key_row + cols, mask=cols < hi, other=-2147483648)
            gt += tl.sum((u > T).to(tl.int32), axis=0)
            eq += tl.sum((u == T).to(tl.int32), axis=0)
        tl.store(cnt_ptr + (bh * P + p) * 2, gt)
        tl.store(cnt_ptr + (bh * P + p) * 2 + 1, eq)
    if SPIN and (PHASES & 48) == 48:
        _row_barrier(bar, 5 * P)
    if (PHASES & 32) != 0:  # the winners in position order, at the earlier chunks' prefix
        pre, above = _prefix(hist_row, K, 3)
        T = (pre - 2147483648).to(tl.int32)
        need = K - above
        q_ = tl.arange(0, PP)
        before = q_ < p
        gts = tl.load(cnt_ptr + (bh * P + q_) * 2, mask=before, other=0, cache_modifier=".cg")
        eqs = tl.load(cnt_ptr + (bh * P + q_) * 2 + 1, mask=before, other=0, cache_modifier=".cg")
        eq_before = tl.sum(eqs, axis=0)
        carry_sel = tl.sum(gts, axis=0) + tl.minimum(eq_before, need)
        carry_eq = eq_before
        M, inv_z = _global_stats(tm_ptr, ts_ptr, bh, NT, G, GP, NTP)
        alpha = tl.zeros((GP,), tl.float32)
        for c0 in range(lo, hi, KB):
            cols = c0 + tl.arange(0, KB)
            u = tl.load(key_row + cols, mask=cols < hi, other=-2147483648)
            carry_sel, carry_eq, alpha = _emit(
                u, T, need, cols, carry_sel, carry_eq, idx_ptr + bh * K, logit_row, alpha,
                heads, M, inv_z, S, G,
            )  # fmt: skip
        if REALLOC:
            tl.store(alpha_ptr + (bh * P + p) * GP + heads, alpha)
    if SPIN and (PHASES & 96) == 96:
        _row_barrier(bar, 6 * P)
    if (PHASES & 64) != 0:  # step 2 over this program's share of the selected positions
        hq, hmask, d, dmask, qv, m_i, l_i, acc = _group_q(q_ptr, bh, G, DH, GQ, DHP)
        k_base = k_ptr + bh * S * DH
        v_base = v_ptr + bh * S * DH
        j0 = p * CH2
        j1 = tl.minimum(j0 + CH2, K)
        for start in range(j0, j1, BK):
            j = start + tl.arange(0, BK)
            jm = j < j1
            pos = tl.load(idx_ptr + bh * K + j, mask=jm, other=0, cache_modifier=".cg")
            ok = jm & (pos < seq_len)
            off = pos.to(tl.int64)[:, None] * DH + d[None, :]
            kvm = ok[:, None] & dmask[None, :]
            kb = tl.load(k_base + off, mask=kvm, other=0.0)
            vb = tl.load(v_base + off, mask=kvm, other=0.0)
            m_i, l_i, acc = _online_step(qv, kb, vb, ok, m_i, l_i, acc, scale, F32DOT)
        po = (bh * G + hq) * P + p
        tl.store(pm_ptr + po, m_i, mask=hmask)
        tl.store(pl_ptr + po, l_i, mask=hmask)
        pam = hmask[:, None] & dmask[None, :]
        tl.store(pacc_ptr + po[:, None] * DH + d[None, :], acc, mask=pam)
        # the row's last program to arrive (FIN earlier arrivals) merges it; no program waits on
        # the counter after its last arrival, so the merging program resets it for the next call
        tl.debug_barrier()
        done = tl.atomic_add(bar, 1, sem="acq_rel")
        if done == FIN:
            tl.debug_barrier()
            _merge(pm_ptr, pl_ptr, pacc_ptr, alpha_ptr, vmean_ptr, out_ptr, bh, P, PP, G, GP,
                   DH, DHP, REALLOC)  # fmt: skip
            tl.atomic_xchg(bar, 0)


@triton.jit
def _merge(pm_ptr, pl_ptr, pacc_ptr, alpha_ptr, vmean_ptr, out_ptr, bh, P: tl.constexpr,
           PP: tl.constexpr, G: tl.constexpr, GP: tl.constexpr, DH: tl.constexpr,
           DHP: tl.constexpr, REALLOC: tl.constexpr):  # fmt: skip
    """Merge the ``P`` step-2 partials of each query head of row ``bh`` (as ``_merge_kernel``;
    other programs wrote them, so the loads bypass L1), with the reallocation blend."""
    sp = tl.arange(0, PP)
    sm = sp < P
    d = tl.arange(0, DHP)
    dmask = d < DH
    for h in tl.static_range(G):
        row = bh * G + h
        m = tl.load(pm_ptr + row * P + sp, mask=sm, other=float("-inf"), cache_modifier=".cg")
        lv = tl.load(pl_ptr + row * P + sp, mask=sm, other=0.0, cache_modifier=".cg")
        am = sm[:, None] & dmask[None, :]
        acc = tl.load(pacc_ptr + (row * P + sp[:, None]) * DH + d[None, :], mask=am, other=0.0,
                      cache_modifier=".cg")  # fmt: skip
        M = tl.max(m, axis=0)
        M = tl.where(float("-inf") == M, 0.0, M)
        w = tl.where(sm, tl.exp(m - M), 0.0)
        L = tl.sum(w * lv, axis=0)
        y = tl.sum(w[:, None] * acc, axis=0)
        y = tl.where(L > 0, y / tl.maximum(L, 1e-30), 0.0)
        if REALLOC:
            a = tl.sum(tl.load(alpha_ptr + (bh * P + sp) * GP + h, mask=sm, other=0.0,
                               cache_modifier=".cg"), axis=0)  # fmt: skip
            vm = tl.load(vmean_ptr + bh * DH + d, mask=dmask, other=0.0)
            y = a * y + (1.0 - a) * vm
        tl.store(out_ptr + row * DH + d, y.to(out_ptr.dtype.element_ty), mask=dmask)


def _num_sms(dev: torch.device) -> int:
    if dev.type == "cuda":
        return torch.cuda.get_device_properties(dev).multi_processor_count
    return 132


def coop_parts(rows: int, S: int, tile: int, sms: int) -> int:
    """Programs per row: as many as fit on the GPU at once with one per multiprocessor (at most
    one per ``tile`` positions)."""
    return max(1, min(sms // max(1, rows), triton.cdiv(S, tile)))


def coop_supported(B: int, Hkv: int, S: int, k: int, *, sms: int = 132, tile: int = 1024) -> bool:
    """Whether the cooperative kernel fits the shape in one launch: at least two programs per
    row on ``sms`` multiprocessors, ``k < S`` (``k == S`` needs no selection)."""
    return k < S and coop_parts(B * Hkv, S, tile, sms) >= 2


def coop_attention(
    q: torch.Tensor,
    K: torch.Tensor,
    V: torch.Tensor,
    K_t: torch.Tensor,
    seq_lens: torch.Tensor,
    *,
    r: int,
    k: int,
    local_window: int,
    sink_tokens: int,
    scale: float,
    v_mean: torch.Tensor | None = None,
    parts: int | None = None,
    tile: int = 1024,
    key_block: int = 2048,
    block: int = 64,
    num_warps: int = 8,
    spin: bool | None = None,
    out: torch.Tensor | None = None,
    _probe: dict | None = None,
    _phases: list[int] | None = None,
) -> torch.Tensor:
    """SparQ decode (paper Alg. 1 with GQA, exact top-k) in one cooperative launch.

    Args:
        q: ``(B, Hq, 1, dh)`` bf16/fp16 query; K, V ``(B, Hkv, S, dh)`` and K_t
            ``(B, Hkv, dh, S)`` contiguous caches of ``q.dtype``.
        seq_lens: ``(B,)`` int64 live lengths.
        r, k, local_window, sink_tokens, scale: as :func:`sparq.kernels.sparq_attention_triton`
            (``1 <= k < S``).
        v_mean: ``(B, Hkv, dh)`` fp32 mean of V: given, the output is blended by the selected
            mass ``alpha`` (paper step 3); ``None``: no reallocation.
        parts: programs per row (default: :func:`coop_parts`, one per multiprocessor).
        tile, key_block, block: positions per step-1 tile, keys per selection block, selected
            rows per step-2 block; num_warps: warps per program.
        spin: one launch with spin barriers (default on CUDA when the grid fits at once), else
            one launch per phase (the interpreter; also any grid too large to be resident).
        out: optional contiguous ``(B, Hq, 1, dh)`` output of ``q.dtype``.
        _phases: launch only these phases, one launch each (phase timings; the state of the
            previous call is reused).
        _probe: a dict that receives the call's ``idx`` ``(B*Hkv, k)`` int32 selected positions
            (in increasing order) and ``alpha`` partials (tests).

    Returns:
        ``(B, Hq, 1, dh)`` in ``q.dtype``: the same selection as the separate kernels (keys bit
        for bit), so the same output up to the summation order of step 2.
    """
    B, Hq, _, dh = q.shape
    Hkv, S = K.shape[1], K.shape[2]
    G = Hq // Hkv
    rows = B * Hkv
    if not 1 <= k < S:
        raise ValueError(f"the cooperative kernel needs 1 <= k < S={S}, got k={k}")
    if key_block & (key_block - 1) or tile & (tile - 1):
        raise ValueError(f"tile ({tile}) and key_block ({key_block}) must be powers of two")
    dev = q.device
    sms = _num_sms(dev)
    P = parts or coop_parts(rows, S, tile, sms)
    chunk = triton.cdiv(triton.cdiv(S, P), tile) * tile
    P = triton.cdiv(S, chunk)
    if _phases is not None:
        spin = False
    if spin is None:
        spin = dev.type == "cuda" and not F32DOT and rows * P <= sms
    ch2 = triton.cdiv(triton.cdiv(k, P), block) * block
    nt = triton.cdiv(S, tile)
    GP = max(2, triton.next_power_of_2(G))
    f32 = dict(device=dev, dtype=torch.float32)
    i32 = dict(device=dev, dtype=torch.int32)
    if out is None:
        out = torch.empty(B, Hq, 1, dh, device=dev, dtype=q.dtype)
    realloc = v_mean is not None
    idx = torch.empty(rows, k, **i32)
    alpha = torch.empty(rows, P, GP, **f32)
    if _probe is not None:
        _probe.update(idx=idx, alpha=alpha)
    args = (
        q.reshape(B, Hq, dh).contiguous(), K_t, K, V, seq_lens,
        v_mean.float().contiguous() if realloc else out, out,
        torch.empty(rows, r, **i32), torch.empty(rows, G, r, **f32),
        torch.empty(rows, G, S, **f32), torch.empty(rows, G, nt, **f32),
        torch.empty(rows, G, nt, **f32), torch.empty(rows, S, **i32),
        torch.empty(rows, _HW, **i32), torch.empty(rows, P, 2, **i32), idx, alpha,
        torch.empty(rows, G, P, **f32),
        torch.empty(rows, G, P, **f32), torch.empty(rows, G, P, dh, **f32),
        _counters(rows, dev), float(scale), S, k, Hkv, nt, max(0, local_window),
        max(0, sink_tokens), chunk, ch2,
    )  # fmt: skip
    meta = dict(
        P=P, PP=max(2, triton.next_power_of_2(P)), DH=dh, DHP=max(2, triton.next_power_of_2(dh)),
        R=r, G=G, GP=GP, GQ=max(16, triton.next_power_of_2(G)),
        NTP=max(2, triton.next_power_of_2(nt)), TILE=tile, KB=key_block, BK=block,
        ZW=triton.next_power_of_2(triton.cdiv(_HW, P)), FIN=(NPHASE if spin else 1) * P - 1,
        SPIN=bool(spin), REALLOC=realloc,
        L2=l2_hints(), F32DOT=F32DOT, num_warps=num_warps,
    )  # fmt: skip
    phases = [(1 << NPHASE) - 1] if spin else [1 << i for i in (_phases or range(NPHASE))]
    if spin:  # a cooperative launch: the driver makes every program resident at once
        meta["launch_cooperative_grid"] = True
    for ph in phases:
        _coop_kernel[(rows * P,)](*args, PHASES=ph, **meta)
    return out
