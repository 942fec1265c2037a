"""Small helpers shared by the bench scripts: timing and a plain-text table."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterable, Sequence


def time_each(fn: Callable[[int], object], n: int) -> list[float]:
    """Call fn(i) n times; return each call's duration in microseconds."""
    out = []
    clock = time.perf_counter_ns
    for i in range(n):
        t0 = clock()
        fn(i)
        out.append((clock() - t0) / 1000)
    return out


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def summary(values: Sequence[float]) -> tuple[float, float, float]:
    """(p50, p99, mean) of microsecond samples."""
    return pct(values, 50), pct(values, 99), statistics.fmean(values)


def table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    rows = [[f"{c:.1f}" if isinstance(c, float) else str(c) for c in r] for r in rows]
    widths = [max(len(str(h)), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    lines = ["  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows]
    return "\n".join(lines)
