"""Percentiles and the report row format shared by every benchmark."""

from __future__ import annotations

import statistics


def percentile(samples: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of the samples."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def summary(samples_ms: list[float]) -> dict:
    return {"n": len(samples_ms), "p50": percentile(samples_ms, 50), "p95": percentile(samples_ms, 95),
            "mean": statistics.fmean(samples_ms) if samples_ms else float("nan")}


def row(measure: str, result: dict, baseline: dict | None = None, goal: str = "", met: bool | None = None,
        unit: str = "ms") -> dict:
    """One line of the report: the measure, its p50/p95, its baseline's, the ratio and the goal."""
    entry = {"measure": measure, "unit": unit, "n": result["n"], "p50": result["p50"], "p95": result["p95"],
             "goal": goal, "met": met}
    if baseline is not None:
        entry |= {"baseline_p50": baseline["p50"], "baseline_p95": baseline["p95"],
                  "ratio_p50": result["p50"] / baseline["p50"] if baseline["p50"] else float("nan"),
                  "ratio_p95": result["p95"] / baseline["p95"] if baseline["p95"] else float("nan")}
    return entry
