"""Markdown pieces of the report: numbers, intervals, tables."""

from __future__ import annotations

import math

import numpy as np


def fmt(x) -> str:
    """A number to 4 significant digits; anything else as str."""
    return f"{x:.4g}" if isinstance(x, float | int | np.floating) and math.isfinite(x) else str(x)


def interval(intervals: dict, name: str) -> str:
    """ "lo – hi" of intervals[name], or "" when there is none."""
    if name not in intervals:
        return ""
    lo, hi = intervals[name]
    return f"{fmt(lo)} – {fmt(hi)}"


def table(headers: list[str], rows: list[list]) -> list[str]:
    """A Markdown table and a blank line, as lines."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += [
        "| " + " | ".join(fmt(v) if not isinstance(v, str) else v for v in row) + " |"
        for row in rows
    ]
    return lines + [""]
