"""Progress of one long step at a time (the shard preparation, a law's bootstrap), for the
command line. The library code takes a callback told (step, done, total) and knows nothing
of this: on a terminal the bar is one line rewritten in place; in a log (a file, a Ray job's
log, a pipe) it is a plain line when a step has run for a while, then at most every
`interval_s`, and when it ends. Steps shorter than `delay_s` show nothing."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from quokka_ray.data.shards import PROGRESS_UNITS
from quokka_ray.sweep.progress import format_duration

WIDTH = 24


class ProgressBar:
    def __init__(self, stream: TextIO | None = None, *, interval_s: float = 10.0,
                 delay_s: float = 1.0, unit: dict[str, str] | None = None, clock=time.monotonic,
                 tty: bool | None = None):
        """`unit`: step -> what it counts ("bytes" is shown in MB); by default the data
        preparation's."""
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty() if tty is None else tty
        self.interval_s, self.delay_s, self.clock = interval_s, delay_s, clock
        self.unit = PROGRESS_UNITS if unit is None else unit
        self.step: str | None = None
        self.begun = self.shown = 0.0
        self.drawn = False  # a terminal line is open

    def __call__(self, step: str, done: int, total: int | None) -> None:
        now = self.clock()
        if step != self.step:
            self.close()
            self.step, self.begun, self.shown = step, now, 0.0
        ended = total is not None and done >= total
        elapsed = now - self.begun
        if elapsed < self.delay_s and not (ended and self.drawn):
            return
        if self.tty:
            self._write("\r" + self.line(done, total, elapsed, bar=True) + "\x1b[K")
            self.drawn = True
            if ended:
                self.close()
        elif ended or not self.shown or now - self.shown >= self.interval_s:
            self._write(self.line(done, total, elapsed, bar=False) + "\n")
            self.shown = now
            if ended:
                self.step = None

    def close(self) -> None:
        """End the open terminal line, if any."""
        if self.drawn:
            self._write("\n")
        self.drawn, self.step = False, None

    def line(self, done: int, total: int | None, elapsed: float, *, bar: bool) -> str:
        unit = self.unit.get(self.step or "", "")
        count = _count(done, total, unit)
        if not total:
            return f"[quokka] {self.step} ({count}), {format_duration(elapsed)}"
        fraction = min(1.0, done / total)
        filled = int(round(fraction * WIDTH))
        drawn = f" [{'#' * filled}{'.' * (WIDTH - filled)}]" if bar else ""
        left = "" if done <= 0 or done >= total else \
            f", about {format_duration(elapsed / done * (total - done))} left"
        return (f"[quokka] {self.step}{drawn} {fraction:4.0%} ({count}), "
                f"{format_duration(elapsed)}{left}")

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _count(done: int, total: int | None, unit: str) -> str:
    if unit == "bytes":
        shown = f"{done / 1e6:.1f}" + (f"/{total / 1e6:.1f}" if total else "")
        return f"{shown} MB"
    return f"{done:,}" + (f"/{total:,}" if total else "") + (f" {unit}" if unit else "")
