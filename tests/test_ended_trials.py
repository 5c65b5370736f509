"""What a resumed sweep reads from MLflow about trials the interrupted driver had already
ended (a real SQLite store, runs logged as the trainer and the driver log them): which trials
are not to be trained again, the result Tune is told for each, and ending a run twice."""

from __future__ import annotations

import math

from quokka_ray.tracking import MlflowRunTracker, MlflowStore

EXPERIMENT = "ended"


def _trial(store: MlflowStore, parent: str, name: str, steps: int, *, evaluated: list[int],
           diverged_at: int | None = None) -> str:
    run_id = store.trial_run(EXPERIMENT, parent, name, {"steps": steps})
    tracker = MlflowRunTracker(store.tracking_uri, run_id)
    for step in range(1, (diverged_at or steps) + 1):
        tracker.log_metrics({"train_loss": 5.0 - step / 100}, step=step)
        if step in evaluated:
            tracker.log_metrics({"val_loss": 4.0 - step / 100, "final_loss": 4.5}, step=step)
    if diverged_at:
        tracker.log_metrics({"diverged": 1.0}, step=diverged_at)
    tracker.flush()
    return run_id


def test_ended_trials_are_recognised_and_their_last_results_rebuilt(tmp_path):
    store = MlflowStore(f"sqlite:///{tmp_path}/mlflow.db")
    parent = store.sweep_run(EXPERIMENT, {"digest": "d", "trials": {}}, {})
    finished = _trial(store, parent, "finished", 30, evaluated=[10, 20, 30])
    store.end_run(finished, "FINISHED", outcome="finished")
    stopped = _trial(store, parent, "stopped", 30, evaluated=[10])
    store.end_run(stopped, "KILLED", outcome="stopped_early")
    diverged = _trial(store, parent, "diverged", 30, evaluated=[10], diverged_at=14)
    store.end_run(diverged, "FAILED", outcome="diverged")
    failed = _trial(store, parent, "failed", 30, evaluated=[10])
    store.end_run(failed, "FAILED", outcome="failed")
    interrupted = _trial(store, parent, "interrupted", 30, evaluated=[10])
    # The driver was killed between the outcome tag and the status: the trial has ended.
    tagged = _trial(store, parent, "tagged", 30, evaluated=[10, 20, 30])
    store.client.set_tag(tagged, "quokka.outcome", "finished")

    ended = {name: store.ended_trial_run(EXPERIMENT, name) for name in
             ("finished", "stopped", "diverged", "failed", "interrupted", "tagged")}
    assert {name for name, run in ended.items() if run} == {"finished", "stopped", "diverged",
                                                             "tagged"}
    # A failed trial is tried again, an interrupted one resumed: both in their own runs.
    assert store.trial_run(EXPERIMENT, parent, "failed", {}) == failed
    assert store.trial_run(EXPERIMENT, parent, "interrupted", {}) == interrupted

    result = store.recorded_result(ended["finished"])
    assert result["step"] == 30 and math.isclose(result["val_loss"], 3.7)
    assert store.recorded_result(ended["stopped"])["step"] == 10
    result = store.recorded_result(ended["diverged"])
    assert result["step"] == 14 and result["diverged"] == 1.0 and math.isinf(result["val_loss"])

    # Told again how an ended trial ended, the driver leaves its run as it was.
    before = store.client.get_run(finished).info
    store.end_run(finished, "FINISHED", outcome="finished")
    after = store.client.get_run(finished).info
    assert (after.status, after.end_time) == (before.status, before.end_time)
    store.end_run(tagged, "FINISHED", outcome="finished")
    assert store.client.get_run(tagged).info.status == "FINISHED"
