"""Benchmark case registry: the small API that ``packages/*/benchmarks/bench_*.py`` files use."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Case", "Measure", "case", "registered_cases"]


@dataclass
class Measure:
    """What one benchmark case hands back to the harness for one parameter point.

    The harness times ``candidate`` and ``baseline`` in the same run, on the same device, with the
    same warm-up and repetition count, and reports ``speedup = baseline_time / candidate_time``
    (> 1 means the candidate is faster).

    Attributes:
        candidate: zero-argument callable that does the work being measured (our code).
        baseline: zero-argument callable doing the same job the reference way (plain torch, the
            other library, ...). Either ``baseline`` or ``baseline_seconds`` must be given.
        baseline_seconds: an externally recorded baseline time in seconds per call (for example the
            reference C++ program's recorded times); used only when no callable baseline exists.
        candidate_label / baseline_label: short names shown in the table.
        bytes: bytes moved by one candidate call (for achieved GB/s and a bandwidth roofline).
        flops: floating-point operations of one candidate call (for achieved TFLOP/s).
        peak_bytes_per_s / peak_flops: the device peak used for the roofline fraction.
        warmup / repeats: override the harness defaults (e.g. ``repeats=1`` for minute-long runs).
        timing: ``"latency"`` (default; the device is synchronised after every call) or
            ``"pipelined"`` (calls issued back to back, as in a training loop); see
            :func:`monobench._timing.time_callable`. Candidate and baseline use the same mode.
        extra: any other numbers to store with the result (states/s, memory, accuracy, ...).
        check: optional zero-argument callable run once before timing; it should raise if the
            candidate's answer is wrong, so a fast wrong kernel never produces a result.
    """

    candidate: Callable[[], Any]
    baseline: Callable[[], Any] | None = None
    baseline_seconds: float | None = None
    candidate_label: str = "candidate"
    baseline_label: str = "baseline"
    bytes: float | None = None
    flops: float | None = None
    peak_bytes_per_s: float | None = None
    peak_flops: float | None = None
    warmup: int | None = None
    repeats: int | None = None
    timing: str = "latency"
    extra: dict[str, Any] = field(default_factory=dict)
    check: Callable[[], Any] | None = None

    def __post_init__(self) -> None:
        if self.baseline is None and self.baseline_seconds is None:
            raise ValueError(
                "Measure needs a baseline: pass baseline=<callable> (measured in the same run) or "
                "baseline_seconds=<recorded time> for an external reference."
            )
        if self.timing not in ("latency", "pipelined"):
            raise ValueError(f"timing must be 'latency' or 'pipelined', got {self.timing!r}")
        if self.baseline_seconds is not None and not self.baseline_seconds > 0:
            raise ValueError(f"baseline_seconds must be > 0, got {self.baseline_seconds!r}")


@dataclass(frozen=True)
class Case:
    """A registered benchmark: a function of (**params, device) returning a :class:`Measure`."""

    name: str
    fn: Callable[..., Measure]
    params: tuple[Mapping[str, Any], ...]
    quick_params: tuple[Mapping[str, Any], ...]
    devices: tuple[str, ...]
    module: str
    description: str


_REGISTRY: list[Case] = []


def case(
    name: str,
    *,
    params: Sequence[Mapping[str, Any]] = ({},),
    quick_params: Sequence[Mapping[str, Any]] | None = None,
    devices: Sequence[str] = ("cpu", "cuda"),
) -> Callable[[Callable[..., Measure]], Callable[..., Measure]]:
    """Register a benchmark case.

    Example::

        @case("matmul", params=[{"n": 256}, {"n": 1024}], quick_params=[{"n": 256}])
        def bench_matmul(n: int, device: str) -> Measure:
            a = torch.randn(n, n, device=device)
            return Measure(candidate=lambda: ours(a), baseline=lambda: a @ a)

    Args:
        name: case name, unique within its package.
        params: the parameter grid; each mapping is passed as keyword arguments.
        quick_params: a smaller grid used by ``bench run --quick`` (default: the first point).
        devices: devices the case supports (``"cpu"``, ``"cuda"``).
    """
    if not name or not isinstance(name, str):
        raise ValueError(f"case name must be a non-empty string, got {name!r}")
    unknown = set(devices) - {"cpu", "cuda"}
    if unknown:
        raise ValueError(f"unknown device(s) {sorted(unknown)}; use 'cpu' and/or 'cuda'")

    def register(fn: Callable[..., Measure]) -> Callable[..., Measure]:
        grid = tuple(dict(p) for p in params) or ({},)
        quick = tuple(dict(p) for p in quick_params) if quick_params is not None else grid[:1]
        _REGISTRY.append(
            Case(
                name=name,
                fn=fn,
                params=grid,
                quick_params=quick,
                devices=tuple(devices),
                module=fn.__module__,
                description=(fn.__doc__ or "").strip().splitlines()[0] if fn.__doc__ else "",
            )
        )
        return fn

    return register


def registered_cases() -> list[Case]:
    """Return the cases registered so far (in registration order)."""
    return list(_REGISTRY)


def _clear() -> None:
    _REGISTRY.clear()
