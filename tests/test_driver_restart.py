"""The sweep's driver (`quokka run`) killed with SIGKILL while trials run: the same command run
again finishes the sweep. Every trial ends with exactly one MLflow run, FINISHED; the trials
that had finished keep their runs untouched (not trained again); the interrupted one resumes
from its last checkpoint in its own run, which holds one value per step. Run by
`make test-cluster`.

The driver runs in a session of its own: the Ray processes it starts (GCS, raylet, agents,
Tune and Train actors) stay in that session, so the test stops exactly those, by their ids,
once the driver is dead. Workers of a dead raylet may otherwise linger and keep training."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.analysis import in_plan
from quokka_ray.data import prepare_shards
from quokka_ray.sweep import load_plan, train_config
from quokka_ray.tracking import MlflowStore
from tests.conftest import EXPERIMENTS

EXPERIMENT = EXPERIMENTS / "tiny_restart.py"


def session_processes(session: int) -> list[int]:
    """Live processes (zombies left out) of the session whose leader was `session`."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
        except OSError:
            continue
        state, _, _, sid = stat[stat.rindex(")") + 2:].split()[:4]
        if int(sid) == session and state != "Z":
            pids.append(int(proc.name))
    return pids


def stop_session(session: int, timeout_s: float = 60) -> None:
    """SIGKILL every process of the session until none is left."""
    end = time.monotonic() + timeout_s
    while pids := session_processes(session):
        assert time.monotonic() < end, f"processes of session {session} survive: {pids}"
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
        for pid in pids:
            # Orphans are re-parented to PID 1, which this process is in a PID namespace:
            # reap them there, or they stay zombies.
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)


def trial_runs(client: MlflowClient, experiment_id: str) -> list:
    return [r for r in client.search_runs([experiment_id], max_results=1000)
            if r.data.tags.get("quokka.role") == "trial"]


def wait_for_one_finished_and_one_running(driver: subprocess.Popen, uri: str, log: Path,
                                          storage: Path, steps: dict[str, int],
                                          deadline_s: float = 300):
    """(an MLflow client, the trial runs that finished, the running trial's run) as soon as
    one trial has FINISHED in MLflow while another has logged steps and a checkpoint after its
    first (so that the first is surely committed) and is far from done."""
    end = time.monotonic() + deadline_s
    client = None
    while time.monotonic() < end:
        assert driver.poll() is None, "the sweep ended before it could be interrupted:\n" + \
            log.read_text()[-3000:]
        # The driver prints this once its MLflow experiment and sweep run exist: a client
        # opened before would create the SQLite store's schema while the driver does.
        if client is None and "[quokka] MLflow: experiment" in log.read_text():
            client = MlflowClient(uri)
        if client is not None:
            experiment = client.get_experiment_by_name("tiny_restart")
            runs = trial_runs(client, experiment.experiment_id)
            finished = [r for r in runs if r.info.status == "FINISHED"]
            for run in runs:
                name = run.data.tags["quokka.trial"]
                logged = client.get_metric_history(run.info.run_id, "train_loss")
                # Train keeps the last two checkpoints: any from step 20 on will do.
                checkpoints = (storage / "train" / name).glob("step_*")
                later = any(int(path.name[len("step_"):]) >= 20 for path in checkpoints)
                if (finished and run.info.status == "RUNNING" and logged and later
                        and len(logged) <= steps[name] // 2):
                    return client, finished, run
        time.sleep(0.3)
    pytest.fail("never saw one trial finished and another running:\n" + log.read_text()[-3000:])


def history(client: MlflowClient, run_id: str) -> list[tuple[int, float, int]]:
    """(step, value, timestamp) of each training-loss value the run holds, in step order."""
    return sorted((m.step, m.value, m.timestamp)
                  for m in client.get_metric_history(run_id, "train_loss"))


@pytest.mark.cluster
def test_a_killed_driver_run_again_finishes_the_sweep_once(tmp_path, data_cache, monkeypatch):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    experiment, trials = load_plan(EXPERIMENT)
    steps = {t.name: train_config(t, experiment).total_steps for t in trials}
    prepare_shards(experiment.data)  # here, in-process: the driver would start Ray Data for it
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "runs"
    command = [sys.executable, "-m", "quokka_ray.cli", "run", str(EXPERIMENT),
               "--tracking-uri", uri, "--storage-path", str(storage)]

    # Tune saves its own state at most every 10 s: a driver killed soon after a trial ended
    # leaves Tune a state in which that trial has not, and the rerun starts it again. The
    # first driver here saves Tune's state only as it starts, so that this happens every time
    # (and MLflow must say which trials had ended).
    first_log = tmp_path / "first.log"
    with first_log.open("w") as out:
        driver = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                  env={**os.environ, "TUNE_GLOBAL_CHECKPOINT_S": "3600"},
                                  start_new_session=True)
    try:
        client, finished, running = wait_for_one_finished_and_one_running(
            driver, uri, first_log, storage, steps)
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        stop_session(driver.pid)
    # Read once the driver's processes are gone: none of them logs anything any more.
    before = {r.data.tags["quokka.trial"]: (r.info.run_id, r.info.end_time,
                                            history(client, r.info.run_id)) for r in finished}
    interrupted = running.data.tags["quokka.trial"]
    interrupted_before = history(client, running.info.run_id)

    second_log = tmp_path / "second.log"
    with second_log.open("w") as out:
        rerun = subprocess.Popen(command, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT,
                                 start_new_session=True)
    try:
        code = rerun.wait(timeout=400)
    finally:
        if rerun.poll() is None:
            rerun.kill()
            rerun.wait()
        stop_session(rerun.pid)
    printed = second_log.read_text()
    assert code == 0, printed[-3000:]
    assert "resuming the sweep" in printed

    experiment_id = client.get_experiment_by_name("tiny_restart").experiment_id
    runs = {r.data.tags["quokka.trial"]: r for r in trial_runs(client, experiment_id)}
    assert len(runs) == len(trial_runs(client, experiment_id)), "one run per trial"
    assert sorted(runs) == sorted(steps), "every trial of the plan"
    for name, run in runs.items():
        assert run.info.status == "FINISHED", name
        assert run.data.tags["quokka.outcome"] == "finished", name
        assert "final_loss" in run.data.metrics, name
        values = history(client, run.info.run_id)
        assert [step for step, _, _ in values] == list(range(1, steps[name] + 1)), name
        if name in before:  # finished before the kill: neither trained nor ended again
            assert (run.info.run_id, run.info.end_time, values) == before[name], name
            assert f"{name} reported" not in printed, name
            assert f"{name} had ended before the sweep was interrupted" in printed, name

    # The interrupted trial went on in its own run, from a checkpoint (its first result in
    # the rerun is past the first checkpoint) unless its Train controller was killed while
    # rewriting Train's checkpoint record (then its run starts afresh, and says so); the
    # values it had logged stay as they were, the steps it trained again were not logged
    # twice, and the rest came after, in order.
    run = runs[interrupted]
    assert run.info.run_id == running.info.run_id
    reported = [line for line in printed.splitlines() if f"{interrupted} reported step=" in line]
    first = int(reported[0].split("step=")[1].split()[0]) if reported else 0
    afresh = f"{interrupted}: Ray Train's checkpoint record is unreadable" in printed
    assert first > 10 or (afresh and first == 10), reported[:2]
    values = history(client, run.info.run_id)
    assert values[:len(interrupted_before)] == interrupted_before
    assert [t for _, _, t in values] == sorted(t for _, _, t in values)

    (sweep,) = [r for r in client.search_runs([experiment_id], max_results=1000)
                if r.data.tags.get("quokka.role") == "sweep"]
    assert sweep.info.status == "FINISHED"
    # What `quokka fit` reads: one row per planned trial, each one done.
    table = in_plan(MlflowStore(uri).trial_runs("tiny_restart"), steps)
    assert len(table) == len(steps) and set(table["outcome"]) == {"finished"}
