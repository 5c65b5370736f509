"""The function each Ray Train worker runs: connects `loop.train` to Ray Train's context,
checkpoints and reports."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path

from quokka_ray.train.config import TrainConfig
from quokka_ray.train.tracker import NullTracker, Tracker


def train_loop_per_worker(loop_config: dict) -> None:
    """`loop_config`: {"train": TrainConfig, "tracker_factory": callable returning a Tracker,
    or None}. The tracker is made on rank 0 only. A run restarted by Ray resumes from its own
    last checkpoint."""
    # Imported here, not with the module: Ray Train's controller unpickles this function and
    # would otherwise import torch and the whole loop for nothing (seconds per trial).
    import ray.train.torch

    from quokka_ray.train.loop import Diverged, train

    quiet_per_report_lines()
    cfg: TrainConfig = loop_config["train"]
    tracker_factory: Callable[[], Tracker] | None = loop_config.get("tracker_factory")
    context = ray.train.get_context()
    rank = context.get_world_rank()
    tracker = tracker_factory() if (tracker_factory and rank == 0) else NullTracker()

    def report(metrics: dict[str, float], folder: Path | None) -> None:
        # Every rank reports (a barrier); each rank's checkpoint folder holds its own shards.
        checkpoint = ray.train.Checkpoint.from_directory(str(folder)) if folder else None
        ray.train.report(metrics, checkpoint=checkpoint,
                         checkpoint_dir_name=f"step_{int(metrics['step']):08d}" if folder else None)

    run = partial(train, cfg, rank=rank, world_size=context.get_world_size(),
                  device=ray.train.torch.get_device(), report=report, tracker=tracker)
    try:
        train_from(run, ray.train.get_checkpoint())
    except Diverged as err:
        # Not an error for Ray to retry: the same data and noise would diverge again. The
        # last report says so (every rank reports: it is a barrier), and the run ends.
        ray.train.report({"step": float(err.step), "diverged": 1.0, "train_loss": math.inf,
                          "val_loss": math.inf, "final_loss": math.inf})
        with contextlib.suppress(Exception):  # a failure here would make Ray retry the run
            tracker.close()
        return
    except BaseException:
        deliver_after_error(tracker)
        raise
    # The tracker delivers in the background: the run ends once its metrics are in MLflow
    # (it waits here for a tracking server that is away, not in the training steps).
    tracker.close()


def train_from(run: Callable[..., object], checkpoint) -> None:
    """`run()` from scratch, or from `checkpoint` (a ray.train.Checkpoint) if there is one."""
    if checkpoint is None:
        run()
    else:
        with checkpoint.as_directory() as folder:
            run(resume_from=Path(folder))


def deliver_after_error(tracker: Tracker) -> None:
    """What was logged before an error still goes out, for a while; the error is the one to
    see, so a failure to deliver is not raised."""
    with contextlib.suppress(Exception):
        tracker.close(timeout_s=60)


def quiet_per_report_lines() -> None:
    """Ray Train's workers log a line per report at INFO through a logger named after its
    file, which Train's LoggingConfig does not reach: the driver's log would repeat every
    report of every worker. QUOKKA_VERBOSE=1 keeps them."""
    import logging
    import os

    from ray.train.v2._internal.execution import context

    if os.environ.get("QUOKKA_VERBOSE") != "1":
        logging.getLogger(context.__file__).setLevel(logging.WARNING)
