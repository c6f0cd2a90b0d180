"""Statistics of measured values: latency quantiles and the CDF behind the plots, a nearest-rank
percentile for the drivers' one-line figures, and least-squares lines."""

from collections.abc import Sequence
from typing import Any

import numpy as np

CDF_PERCENTS = [0, 1, 5] + list(range(10, 91, 5)) + [91, 92, 93, 94, 95, 96, 97, 98, 99, 99.5, 99.9, 100]


def quantiles(values: Sequence[float]) -> dict[str, Any] | None:
    """Count, mean, min, p50 / p90 / p99 / p99.9 (interpolated), max and the CDF's points of
    ``values``; None when there are none."""
    data = np.asarray(values, dtype=float)
    if data.size == 0:
        return None
    points = np.percentile(data, CDF_PERCENTS)
    return {
        "count": int(data.size), "mean": float(data.mean()), "min": float(data.min()),
        "p50": float(np.percentile(data, 50)), "p90": float(np.percentile(data, 90)),
        "p99": float(np.percentile(data, 99)), "p999": float(np.percentile(data, 99.9)), "max": float(data.max()),
        "cdf": [[p, float(v)] for p, v in zip(CDF_PERCENTS, points, strict=True)],
    }


def nearest_rank(values: Sequence[float], fraction: float) -> float:
    """The value at ``fraction`` of the sorted values (the upper one of a pair: no
    interpolation), 0 when there are none: the drivers' p50 and p99, and the median round."""
    ordered = sorted(values) or [0.0]
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def line(points: Sequence[tuple[float, float]]) -> tuple[float, float] | None:
    """Least squares ``y = a + b * x`` over (x, y) points: (a, b); None when every x is the same."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if not sxx:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def pick(summary: dict[str, Any] | None, key: str) -> float:
    """One figure of ``quantiles``'s summary (``"p99"``), NaN when there was nothing to summarise."""
    return float(summary[key]) if summary else float("nan")
