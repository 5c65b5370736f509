"""How far a sweep is, for its driver's log: trials done, running and waiting, and the time
left. Imports nothing heavy: the command line's progress bars format durations with it."""

from __future__ import annotations

import time


class SweepProgress:
    """How far a sweep is: trials done, running and waiting, and the time left estimated from
    the pace of the trials done since this driver started (its elapsed time per trial done,
    times the trials left): a resumed sweep's earlier trials do not count towards the pace."""

    def __init__(self, total: int, clock=time.monotonic):
        self.total, self.clock = total, clock
        self.reset()

    def reset(self) -> None:
        self.begun = self.clock()
        self.done_before: int | None = None

    def line(self, done: int, running: int) -> str:
        if self.done_before is None:
            self.done_before = done
        elapsed = self.clock() - self.begun
        done_here = done - self.done_before
        waiting = max(0, self.total - done - running)
        eta = ("time left unknown" if done_here <= 0 else
               f"about {format_duration(elapsed / done_here * (self.total - done))} left")
        return (f"{format_duration(elapsed)} | {done}/{self.total} done, {running} running, "
                f"{waiting} waiting, {eta}")


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
