"""One Tune trial of a data-constrained study: a warmup-stable-decay ladder. Its stable phase
is one MLflow run (role 'stable') and one Ray Train run, checkpointed at every branch point;
each decay is its own MLflow run (role 'trial', a point of the law) and Ray Train run, started
from the stable phase's checkpoint. Each run records the tokens it trained itself
(`tokens_trained`), so that a ladder's cost can be read from MLflow.

The ladder records its own runs' outcomes (the driver's TrialOutcomes sees one Tune trial per
ladder); a ladder started again skips the decays that already finished."""

from __future__ import annotations

from quokka_ray.sweep.checks import ladders
from quokka_ray.sweep.ladder import ladder_of
from quokka_ray.sweep.trial import SweepContext, open_trial_run, trainer
from quokka_ray.tracking import MlflowStore

STABLE_SUFFIX = "-stable"


def run_ladder_trial(config: dict, context: SweepContext) -> None:
    """Tune's function trainable for {"ladder": key}."""
    key = config["ladder"]
    specs = ladders(list(context.trials.values()))[key]
    plan = ladder_of(context.experiment, specs)
    store = MlflowStore(context.tracking_uri)
    experiment = context.experiment.name
    todo = [(spec, branch) for spec, branch in zip(specs, plan.branches, strict=True)
            if store.finished_trial_run(experiment, spec.name) is None]
    if not todo:
        return
    stable_name = key + STABLE_SUFFIX
    # A ladder started again finds its finished stable phase's checkpoints where its Ray Train
    # run left them: the run resumes at its last step and trains nothing.
    stable_id = store.finished_trial_run(experiment, stable_name)
    done = stable_id is not None
    if not done:
        stable_id = open_trial_run(specs[-1], plan.stable, stable_name, context, role="stable",
                                   extra_params=_trained(plan.stable, 0))
    stable = _fit(store, stable_id, trainer(plan.stable, stable_name, stable_id, context,
                                            keep_checkpoints=None), end=not done)
    checkpoints = {int(m["step"]): c for c, m in stable.best_checkpoints}
    for spec, branch in todo:
        point = plan.branch_point(branch)
        run_id = open_trial_run(spec, branch, spec.name, context, extra_params={
            **_trained(branch, point), "stable_run_id": stable_id, "ladder": key})
        _fit(store, run_id, trainer(branch, spec.name, run_id, context,
                                    start_from=checkpoints.get(point) if point else None))


def _fit(store: MlflowStore, run_id: str, train, end: bool = True):
    """Fit one Ray Train run of the ladder and record how its MLflow run ended."""
    try:
        result = train.fit()
    except BaseException:
        store.end_run(run_id, "FAILED", outcome="failed")
        raise
    if end:
        diverged = (result.metrics or {}).get("diverged")
        store.end_run(run_id, "FAILED" if diverged else "FINISHED",
                      outcome="diverged" if diverged else "finished")
    return result


def _trained(cfg, first_step: int) -> dict[str, object]:
    """What a run of the ladder trains itself: from `first_step` to its end."""
    return {"branched_from_step": first_step,
            "tokens_trained": (cfg.total_steps - first_step) * cfg.batch_tokens}
