"""How the training loop records what it measures, without knowing where it goes.
The MLflow implementation lives in `quokka_ray.tracking`; only rank 0 gets a real one."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Protocol


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def flush(self) -> None:
        """Pass on what was logged; it may be recorded later (`close` waits for it)."""

    def close(self, timeout_s: float | None = None) -> None:
        """Deliver what was logged, waiting up to timeout_s (a default of its own if None)."""

    def end(self, outcome: str) -> None:
        """Deliver what was logged and record how the run ended: 'finished' or 'diverged'.
        Called by trainers that know the outcome themselves (a ladder's phases); a sweep's
        driver records the outcome of its other trials."""


class NullTracker:
    """What ranks other than 0 (and runs without tracking) record: nothing."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> None:
        pass

    def end(self, outcome: str) -> None:
        pass


class JsonLinesTracker:
    """Writes one JSON object per logged step, with the wall-clock time it was logged, to a
    local file (`quokka train`): for debugging and benchmarks without MLflow."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        with self.path.open("a") as stream:
            stream.write(json.dumps({"step": step, **metrics, "time": time.time()}) + "\n")

    def log_artifact(self, path: Path) -> None:
        pass

    def flush(self) -> None:
        pass

    def close(self, timeout_s: float | None = None) -> None:
        pass

    def end(self, outcome: str) -> None:
        pass


@dataclass(frozen=True)
class TrackerFactory:
    """Makes the tracker `module.name(*args)` when called. It names the tracker's class
    instead of holding it, so that unpickling a trial's config (in Ray Train's controller and
    on every worker) imports nothing: only rank 0, which calls it, imports the tracker's
    module (MLflow's takes seconds)."""

    module: str
    name: str
    args: tuple = ()

    def __call__(self) -> Tracker:
        return getattr(import_module(self.module), self.name)(*self.args)
