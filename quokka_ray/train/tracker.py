"""How the training loop records what it measures, without knowing where it goes.
The MLflow implementation lives in `quokka_ray.tracking`; only rank 0 gets a real one."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol


class Tracker(Protocol):
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...

    def log_artifact(self, path: Path) -> None: ...

    def flush(self) -> None: ...


class NullTracker:
    """What ranks other than 0 (and runs without tracking) record: nothing."""

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        pass

    def log_artifact(self, path: Path) -> None:
        pass

    def flush(self) -> None:
        pass
