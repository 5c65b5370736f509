"""A small IsoFLOP sweep through Ray Tune, Ray Train (FSDP2 workers), MLflow and the law fit,
run twice: the second run resumes the stored sweep and re-runs nothing, and the fit counts
each trial once. On the same sweep, the loop closed: the fit proposes the compute-optimal
run of a larger budget, the proposal trains, and its fit sets the predicted final loss beside
the actual one. A sweep run twice in a process of its own, a fit, a proposal and its run: more
than `make test` affords beside the study files (tests/test_study_files.py), which take the
same path through Tune, Train, MLflow and the fit."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.sweep import load_experiment, load_plan, plan_trials
from tests.conftest import EXPERIMENTS, REPO, run_cli_cases

pytestmark = pytest.mark.cluster

EXPERIMENT = EXPERIMENTS / "tiny_isoflop.py"


@dataclass(frozen=True)
class TinySweep:
    """The tiny IsoFLOP sweep, run and resumed once per module: its folder, MLflow store,
    the `quokka run` flags that reach both, the first run's driver log (the `quokka` command
    in a process of its own, with its own local Ray: stdout and stderr) and what the resumed
    run printed."""

    folder: Path
    uri: str
    args: list[str]
    driver_log: str
    printed: str


@pytest.fixture(scope="module")
def tiny_sweep(ray_session, tmp_path_factory, data_cache) -> TinySweep:
    folder = tmp_path_factory.mktemp("tiny-sweep")
    uri = f"sqlite:///{folder}/mlflow.db"
    args = ["--tracking-uri", uri, "--storage-path", str(folder / "runs")]
    env = {k: v for k, v in os.environ.items()
           if k not in ("RAY_ADDRESS", "QUOKKA_VERBOSE", "RAY_AIR_NEW_OUTPUT")}
    env["QUOKKA_TEST_CACHE"] = str(data_cache)
    first = subprocess.run([sys.executable, "-m", "quokka_ray.cli", "run", str(EXPERIMENT), *args],
                           cwd=folder, env={**env, "PYTHONPATH": str(REPO)}, timeout=900,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert first.returncode == 0, first.stdout[-5000:]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
        patch.chdir(folder)
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            assert main(["run", str(EXPERIMENT), *args]) == 0
    return TinySweep(folder, uri, args, first.stdout, printed.getvalue())


#: What the driver log of a healthy sweep never shows at the default verbosity: Ray's and Tune's
#: start-up boxes and notices, Train's per-report lines, MLflow's database set-up.
NOT_IN_DRIVER_LOG = (
    "Started a local Ray instance", "Token authentication is enabled", "View detailed results here",
    "To visualize your results with TensorBoard", "Configuration for experiment", "tensorboard",
    "Reporting training result", "Creating initial MLflow database tables", "INFO tune.py",
    "View run ", "Dataset dataset_", "Progress bars disabled", "Traceback", "Exception ignored")
#: Box drawing, as in Ray Tune's and Ray Train's start-up boxes.
BOX = re.compile("[\u2500-\u257f]")
#: A Python log line at ERROR (Ray's and MLflow's formats) or one of Ray's C++ processes
#: ("[2026-11-29 22:00:00,123 E 1234 5678] ...").
ERROR_LINE = re.compile(r"\bERROR\b|\d E \d+ \d+\]")


def test_driver_log_shows_progress_and_links_not_library_noise(tiny_sweep):
    log = tiny_sweep.driver_log
    trials = len(plan_trials(load_experiment(EXPERIMENT)))
    assert [line for line in log.splitlines() if ERROR_LINE.search(line)] == []
    assert [line for line in log.splitlines() if BOX.search(line)] == []
    for text in NOT_IN_DRIVER_LOG:
        assert text not in log, text
    # One line per trial event, with the sweep's progress and, once a trial is done, the time
    # left; then the links.
    progress = re.findall(rf"^\[quokka \S+ \| (\d+)/{trials} done, \d+ running, \d+ waiting, "
                          r"(about \S+ left|time left unknown)\] dlm-\S+ (\w+)", log, re.M)
    assert len(progress) >= 2 * trials  # started and finished, at least
    assert any(left.startswith("about ") for _, left, _ in progress)
    assert progress[-1][0] == str(trials) and progress[-1][2] == "finished"
    assert re.search(r"^\[quokka\] Ray dashboard: http://127\.0\.0\.1:\d+$", log, re.M)
    assert re.search(rf"^\[quokka\] compare runs: mlflow ui --backend-store-uri "
                     rf"{re.escape(tiny_sweep.uri)}, "
                     r"then http://127\.0\.0\.1:5000/#/experiments/\d+/runs\?workflowType="
                     r"machine_learning$", log, re.M)


def test_sweep_records_runs_and_fits_laws(tiny_sweep, tmp_path, data_cache, monkeypatch, capsys):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri, args = tiny_sweep.uri, tiny_sweep.args
    trials = plan_trials(load_experiment(EXPERIMENT))
    assert "resuming the sweep" in tiny_sweep.printed

    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("tiny_isoflop")
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    parents = [r for r in runs if r.data.tags.get("quokka.role") == "sweep"]
    children = [r for r in runs if r.data.tags.get("quokka.role") == "trial"]
    assert len(parents) == 1  # the resumed sweep continues in its own run
    assert parents[0].info.status == "FINISHED"
    # The MLflow UI opens on the runs (not its GenAI view) and the sweep's description lists
    # every trial with N, D, C, objective and final loss.
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    note = parents[0].data.tags["mlflow.note.content"]
    assert "| trial | N | D | C | objective | final loss |" in note
    for run in [r for r in runs if r.data.tags.get("quokka.role") == "trial"]:
        row = next(line for line in note.splitlines() if run.data.tags["quokka.trial"] in line)
        assert f"{run.data.metrics['final_loss']:.4g}" in row and "| dlm-masked-" in row
    assert sorted(r.data.tags["quokka.trial"] for r in children) == sorted(t.name for t in trials)
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.data.tags["quokka.outcome"] == "finished"
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert 0 < float(run.data.params["epochs"]) <= 1
        for param in ("kind", "non_embedding_params", "total_params", "tokens", "flops", "seq_len",
                      "batch_tokens", "lr", "weight_decay", "schedule", "kernel", "seed",
                      "unique_tokens", "epochs", "final_loss_window_steps",
                      "quokka_version", "git_commit"):
            assert param in run.data.params, param
        for metric in ("train_loss", "final_loss", "val_loss", "tokens_per_s"):
            assert metric in run.data.metrics, metric
        history = client.get_metric_history(run.info.run_id, "train_loss")
        assert sorted(m.step for m in history) == list(range(1, int(run.data.params["steps"]) + 1))

    out_dir = tmp_path / "fit"
    assert main(["fit", str(EXPERIMENT), "--tracking-uri", uri, "--out", str(out_dir)]) == 0
    printed = capsys.readouterr().out
    assert f"{len(trials)} trials fitted" in printed
    assert list(out_dir.glob("*.png")) and (out_dir / "report.md").exists()
    name = trials[0].name
    assert main(["sample", str(EXPERIMENT), "--trial", name, "--storage-path",
                 str(tiny_sweep.folder / "runs"), "-n", "2", "--steps", "8"]) == 0
    samples = capsys.readouterr().out.split("-" * 60)[1:]
    assert len(samples) == 2 and all(len(text.strip()) > 0 for text in samples)

    # The latest fit run is this test's (the loop test below fits the same sweep).
    fit_run = client.search_runs([experiment.experiment_id],
                                 filter_string="tags.`quokka.role` = 'fit'",
                                 order_by=["attributes.start_time DESC"])[0]
    assert fit_run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
    logged = [a.path for a in client.list_artifacts(fit_run.info.run_id)]
    assert "report.md" in logged and any(p.endswith(".png") for p in logged)
    # The sweep's description now says where the report and the plots are.
    note = client.get_run(parents[0].info.run_id).data.tags["mlflow.note.content"]
    assert fit_run.info.run_id in note and str(out_dir) in note
    assert all(f"`{p}`" in note for p in logged if p.endswith(".png"))
    assert "| trial | N | D | C | objective | final loss |" in note

    # The same name with another seed: stopped before MLflow or Ray, naming what changed.
    changed = tmp_path / "tiny_isoflop.py"
    changed.write_text(EXPERIMENT.read_text().replace("experiment = Experiment(",
                                                      "experiment = Experiment(\n    seed=1,"))
    result = run_cli_cases([(["run", str(changed), *args], tmp_path)], tmp_path)[0]
    assert result["code"] == 2 and not result["ray"], result
    (line,) = [line for line in result["stderr"].splitlines() if line.strip()]
    assert "tiny_isoflop.py" in line and "seed: 0 -> 1" in line
    after = client.search_runs([experiment.experiment_id], max_results=1000)
    assert len(after) == len(runs) + 1  # the fit run; nothing else


def test_proposal_trains_and_is_checked_against_its_prediction(
        tiny_sweep, tmp_path, data_cache, monkeypatch, capsys):
    """fit --propose on the sweep, `quokka run` of the proposal, fit of the proposal."""
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    monkeypatch.chdir(tmp_path)
    uri = tiny_sweep.uri
    budget = "6e9"  # twice the sweep's largest budget
    assert main(["fit", str(EXPERIMENT), "--tracking-uri", uri, "--out", str(tmp_path / "fit"),
                 "--propose", budget]) == 0
    printed = capsys.readouterr().out
    proposal = tmp_path / "fit" / f"tiny_isoflop-proposal-{budget}.py"
    assert f"[quokka] proposal: {proposal}" in printed
    experiment, (trial,) = load_plan(proposal)
    predicted = experiment.prediction
    assert predicted.fitted_experiment == "tiny_isoflop" and predicted.law == "isoflop"
    assert (trial.non_embedding_params, trial.tokens) == (predicted.non_embedding_params,
                                                          predicted.tokens)

    assert main(["run", str(proposal), *tiny_sweep.args]) == 0
    assert main(["fit", str(proposal), "--tracking-uri", uri, "--out",
                 str(tmp_path / "checked")]) == 0
    printed = capsys.readouterr().out
    client = MlflowClient(uri)
    (run,) = client.search_runs(
        [client.get_experiment_by_name(experiment.name).experiment_id],
        filter_string="tags.`quokka.role` = 'trial'")
    actual = run.data.metrics["final_loss"]
    line = next(line for line in printed.splitlines() if line.startswith("predicted vs actual"))
    assert f"predicted final loss {predicted.final_loss:.4f}" in line
    assert f"actual {actual:.4f}" in line
    report = (tmp_path / "checked" / "report.md").read_text()
    row = next(line for line in report.split("## Predicted against actual")[1].splitlines()
               if line.startswith("| `dlm-"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert float(cells[4]) == pytest.approx(predicted.final_loss, rel=1e-3)
    assert float(cells[6]) == pytest.approx(actual, rel=1e-3)

