"""Transfer model of one decode step (paper §3): elements/bytes moved and roofline time.

Per KV head and decode step, with group size ``g = Hq / Hkv`` (``g = 1`` is the paper's MHA case):

* dense: read K and V (``2·S·dh``), read q and write y (``2·dh·g``);
* SparQ: read ``r`` rows of K_t (``S·r``), the ``k`` selected rows of K and V (``2·k·dh``), and
  q, y, v̄ and the gathered q components (``4·dh·g``) — the paper's ``S·r + 2·k·dh + 4·dh``.

The compression ratio is ``dense / sparq``. ``rk_for_compression`` splits a target ratio evenly
between the two steps: ``r = dh / c`` and ``k = S / (2c)`` so that ``S·r + 2·k·dh ≈ 2·S·dh / c``.
"""

from __future__ import annotations

__all__ = [
    "H200_BYTES_PER_S",
    "compression_ratio",
    "decode_bytes",
    "dense_elements",
    "rk_for_compression",
    "roofline_seconds",
    "sparq_elements",
]

#: Measured device-to-device copy bandwidth of an H200 (bytes/s), used as the roofline.
H200_BYTES_PER_S = 4.3e12


def _pos(name: str, v: float) -> None:
    if not v > 0:
        raise ValueError(f"{name} must be > 0, got {v!r}")


def dense_elements(S: int, dh: int, group: int = 1) -> int:
    """Elements moved by dense decode attention for one KV head: ``2·S·dh + 2·dh·group``."""
    _pos("S", S)
    _pos("dh", dh)
    return 2 * S * dh + 2 * dh * group


def sparq_elements(S: int, dh: int, r: int, k: int, group: int = 1) -> int:
    """Elements moved by one SparQ step for one KV head: ``S·r + 2·min(k,S)·dh + 4·dh·group``."""
    _pos("S", S)
    _pos("dh", dh)
    if not 1 <= r <= dh:
        raise ValueError(f"r must be in [1, dh={dh}], got {r}")
    _pos("k", k)
    return S * r + 2 * min(k, S) * dh + 4 * dh * group


def compression_ratio(S: int, dh: int, r: int, k: int, group: int = 1) -> float:
    """Dense elements / SparQ elements (> 1 means SparQ moves fewer bytes)."""
    return dense_elements(S, dh, group) / sparq_elements(S, dh, r, k, group)


def rk_for_compression(S: int, dh: int, compression: float) -> tuple[int, int]:
    """``(r, k)`` reaching roughly ``compression``× fewer bytes than dense at live length ``S``.

    ``r = max(1, round(dh / c))``, ``k = max(1, round(S / (2c)))`` (paper §5 setting, split evenly
    between step 1 and step 2).
    """
    _pos("compression", compression)
    _pos("S", S)
    r = max(1, min(dh, round(dh / compression)))
    k = max(1, round(S / (2 * compression)))
    return r, k


def decode_bytes(
    B: int,
    Hq: int,
    Hkv: int,
    S: int,
    dh: int,
    *,
    r: int | None = None,
    k: int | None = None,
    bytes_per_element: int = 2,
) -> float:
    """Bytes moved by one decode step over the whole batch; dense when ``r``/``k`` are None."""
    if Hkv < 1 or Hq % Hkv:
        raise ValueError(f"Hq={Hq} must be a positive multiple of Hkv={Hkv}")
    g = Hq // Hkv
    if r is None or k is None:
        per = dense_elements(S, dh, g)
    else:
        per = sparq_elements(S, dh, r, k, g)
    return float(B * Hkv * per * bytes_per_element)


def roofline_seconds(nbytes: float, bytes_per_s: float = H200_BYTES_PER_S) -> float:
    """Lower bound on time for a bandwidth-bound step: ``nbytes / bytes_per_s`` (seconds)."""
    _pos("bytes_per_s", bytes_per_s)
    return nbytes / bytes_per_s
