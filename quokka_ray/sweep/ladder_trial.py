"""One Tune trial of a study of warmup-stable-decay ladders: one ladder, trained as one Ray Train
run (quokka_ray.train.ladder_worker): its stable phase, checkpointed at every branch point, then
each decay from the stable phase's checkpoint. The stable phase is one MLflow run (role
'stable'); each decay is its own MLflow run (role 'trial', a point of the law) with the stable
run it branched from. Each run records the tokens it trained itself (`tokens_trained`), so that
a ladder's cost can be read from MLflow.

A ladder records its own runs' outcomes as each ends (the driver's TrialOutcomes sees one Tune
trial per ladder); a ladder started again trains only the runs that had not finished, resuming
its Ray Train run from its latest checkpoint."""

from __future__ import annotations

from ray.train import CheckpointConfig

from quokka_ray.sweep.checks import ladders
from quokka_ray.sweep.ladder import Ladder, ladder_of
from quokka_ray.sweep.trial import (
    SweepContext,
    mlflow_tracker,
    open_trial_run,
    quiet_exit_in_callbacks,
    torch_trainer,
    train_folder,
)
from quokka_ray.tracking import MlflowStore
from quokka_ray.train.ladder_worker import (
    CHECKPOINT_RANK,
    STABLE,
    Phase,
    decay_name,
    train_ladder_per_worker,
)

STABLE_SUFFIX = "-stable"


def run_ladder_trial(config: dict, context: SweepContext) -> None:
    """Tune's function trainable for {"ladder": key}."""
    quiet_exit_in_callbacks()
    key = config["ladder"]
    specs = ladders(list(context.trials.values()))[key]
    plan = ladder_of(context.experiment, specs)
    store = MlflowStore(context.tracking_uri)
    experiment = context.experiment.name
    finished = {spec.name for spec in specs
                if store.finished_trial_run(experiment, spec.name) is not None}
    if len(finished) == len(specs):
        return
    stable_name = key + STABLE_SUFFIX
    stable_id = store.finished_trial_run(experiment, stable_name)
    opened: list[str] = []
    if stable_id is None:
        stable_id = open_trial_run(specs[-1], plan.stable, stable_name, context, role="stable",
                                   extra_params=_trained(plan.stable, 0))
        opened.append(stable_id)
    phases = [Phase(STABLE, plan.stable, 0,
                    mlflow_tracker(stable_id, context) if opened else None)]
    for spec, branch in zip(specs, plan.branches, strict=True):
        point = plan.branch_point(branch)
        run_id = None
        if spec.name not in finished:
            run_id = open_trial_run(spec, branch, spec.name, context, extra_params={
                **_trained(branch, point), "stable_run_id": stable_id, "ladder": key})
            opened.append(run_id)
        phases.append(Phase(decay_name(branch.total_steps), branch, point,
                            mlflow_tracker(run_id, context) if run_id else None))
    trainer = torch_trainer(
        train_ladder_per_worker, {"phases": phases, "run_folder": train_folder(key, context)},
        key, context, ladder_checkpoints(plan))
    try:
        trainer.fit()
    finally:
        # A run the workers did not end (the Train run failed, or was stopped) failed.
        for run_id in opened:
            if store.client.get_run(run_id).info.status == "RUNNING":
                store.end_run(run_id, "FAILED", outcome="failed")


def ladder_checkpoints(plan: Ladder) -> CheckpointConfig:
    """Every branch point of the stable phase (each decay starts from one) and the latest two
    checkpoints besides."""
    return CheckpointConfig(num_to_keep=len(plan.stable.checkpoint_at_steps) + 2,
                            checkpoint_score_attribute=CHECKPOINT_RANK,
                            checkpoint_score_order="max")


def _trained(cfg, first_step: int) -> dict[str, object]:
    """What a run of the ladder trains itself: from `first_step` to its end."""
    return {"branched_from_step": first_step,
            "tokens_trained": (cfg.total_steps - first_step) * cfg.batch_tokens}
