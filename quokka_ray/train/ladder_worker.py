"""The function each Ray Train worker runs for a warmup-stable-decay ladder: the stable phase,
then each decay from the stable phase's checkpoint at its branch point, all in one Ray Train
run. One worker group trains the whole ladder, so its processes, imports, placement and
process group are set up once, not once per run.

Every checkpoint is named after its phase and step ("stable_step_00000040",
"decay160_step_00000150"). A worker group that Ray Train starts again (a lost worker, an
elastic resize) finds the latest checkpoint: the phases before it have trained, the phase it
names resumes from it, and the later phases start from their branch points as they would
have. Each phase records its own outcome through its tracker as it ends, so a ladder started
again knows which of its runs finished."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from quokka_ray.train.config import TrainConfig
from quokka_ray.train.ray_worker import deliver_after_error, quiet_per_report_lines, train_from
from quokka_ray.train.tracker import NullTracker, Tracker

STABLE = "stable"
#: The reported metric by which Ray Train ranks a ladder's checkpoints for keeping: the
#: branch points first (every decay starts from one), then the latest.
CHECKPOINT_RANK = "checkpoint_rank"
_BRANCH_POINT_RANK = 1e15
_PHASE_RANK = 1e10  # above any step count


@dataclass(frozen=True)
class Phase:
    """One run of a ladder, in training order: the stable phase first, then the decays."""

    name: str
    """Unique in the ladder: 'stable' or 'decay<total steps>'; its checkpoints' prefix."""
    train: TrainConfig
    branch_point: int
    """The stable phase's step it starts from (0 for the stable phase)."""
    tracker_factory: Callable[[], Tracker] | None
    """Its run's tracker (rank 0); None for a phase whose run has ended already."""

    @property
    def done(self) -> bool:
        return self.tracker_factory is None


def decay_name(total_steps: int) -> str:
    return f"decay{total_steps}"


def checkpoint_dir_name(phase: str, step: int) -> str:
    return f"{phase}_step_{step:08d}"


def phase_of(checkpoint_path: str) -> str:
    """The phase of a checkpoint folder named by `checkpoint_dir_name`."""
    return Path(checkpoint_path.rstrip("/")).name.rsplit("_step_", 1)[0]


def train_ladder_per_worker(loop_config: dict) -> None:
    """`loop_config`: {"phases": list[Phase] in training order, "run_folder": where this Ray
    Train run persists its checkpoints (a path or URI)}."""
    import ray.train
    import ray.train.torch

    from quokka_ray.train.loop import Diverged, train

    quiet_per_report_lines()
    phases: list[Phase] = loop_config["phases"]
    run_folder: str = loop_config["run_folder"]
    context = ray.train.get_context()
    rank = context.get_world_rank()
    names = [p.name for p in phases]
    latest = ray.train.get_checkpoint()
    resumed_phase = phase_of(latest.path) if latest else None
    resumed_index = names.index(resumed_phase) if resumed_phase in names else -1
    branch_points = set(phases[0].train.checkpoint_at_steps)
    diverged_at: int | None = None  # the stable phase's divergence step, if it diverged

    def checkpoint(name: str, step: int):
        return ray.train.Checkpoint(f"{run_folder.rstrip('/')}/{checkpoint_dir_name(name, step)}")

    for index, phase in enumerate(phases):
        if phase.done:
            continue
        tracker = phase.tracker_factory() if rank == 0 else NullTracker()
        if diverged_at is not None and phase.branch_point >= diverged_at:
            # The same run from scratch shares the stable phase's steps up to its branch point,
            # so it diverges where the stable phase did.
            tracker.log_metrics({"diverged": 1.0}, step=diverged_at)
            tracker.end("diverged")
            continue
        if index == resumed_index:
            start = latest
        elif index < resumed_index and _exists(checkpoint(phase.name, phase.train.total_steps)):
            # Trained to its end before the restart; its run had not been ended yet.
            start = checkpoint(phase.name, phase.train.total_steps)
        elif phase.branch_point:
            start = checkpoint(STABLE, phase.branch_point)
            if not _exists(start):
                raise RuntimeError(
                    f"{run_folder}: the stable phase's checkpoint at step {phase.branch_point}, "
                    f"where {phase.name} branches, is missing")
        else:
            start = None

        def report(metrics: dict[str, float], folder: Path | None, *, name=phase.name,
                   phase_index=index) -> None:
            # Every rank reports (a barrier); each rank's checkpoint folder holds its own shards.
            if folder is None:
                ray.train.report(metrics)
                return
            step = int(metrics["step"])
            rank_of = _BRANCH_POINT_RANK if name == STABLE and step in branch_points else 0.0
            ray.train.report({**metrics, CHECKPOINT_RANK: rank_of + phase_index * _PHASE_RANK
                              + step},
                             checkpoint=ray.train.Checkpoint.from_directory(str(folder)),
                             checkpoint_dir_name=checkpoint_dir_name(name, step))

        run = partial(train, phase.train, rank=rank, world_size=context.get_world_size(),
                      device=ray.train.torch.get_device(), report=report, tracker=tracker)
        try:
            train_from(run, start)
        except Diverged as err:
            # Not an error for Ray to retry: the same data and noise would diverge again.
            tracker.end("diverged")
            if phase.name == STABLE:
                diverged_at = err.step
            continue
        except BaseException:
            deliver_after_error(tracker)
            raise
        tracker.end("finished")


def _exists(checkpoint) -> bool:
    import pyarrow.fs as pafs

    return checkpoint.filesystem.get_file_info(checkpoint.path).type == pafs.FileType.Directory
