"""What the command line shows besides its results: which library notices are quiet by default
and shown with -v, and the progress bars of the long steps (shard preparation, the parametric
law's bootstrap), on a terminal and in a log. The driver log of a whole sweep is checked in
test_end_to_end.py."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd

from quokka_ray.commands.progress import ProgressBar
from quokka_ray.data import DataConfig, prepare_shards, read_manifest
from quokka_ray.data.shards import PACKING, READING
from quokka_ray.laws import ParametricFit, fit_parametric
from quokka_ray.tracking import FitNote, runs_page, sweep_note

LEVELS = """
import json, logging, os, sys
from quokka_ray.cli import _parser
from quokka_ray.commands.verbosity import QUIETED, set_verbosity
set_verbosity(_parser().parse_args(sys.argv[1:]).verbose)
print(json.dumps({"levels": {name: logging.getLogger(name).level for name in QUIETED},
                  "verbose": os.environ.get("QUOKKA_VERBOSE"),
                  "suppress_urls": os.environ.get("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"),
                  "artifact_bars": os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}))
"""


def _levels(*argv: str, env: dict | None = None) -> dict:
    import os

    clean = {k: v for k, v in os.environ.items()
             if k not in ("QUOKKA_VERBOSE", "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT",
                          "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")}
    out = subprocess.run([sys.executable, "-c", LEVELS, *argv], capture_output=True, text=True,
                         check=True, env={**clean, **(env or {})})
    return json.loads(out.stdout)


def test_library_notices_are_quiet_by_default_and_shown_with_v():
    from quokka_ray.commands.verbosity import QUIETED

    quiet = _levels("run", "x.py")
    for name, (level, _) in QUIETED.items():
        assert quiet["levels"][name] == level, name
        assert level <= 40, name  # errors always show
    assert quiet["verbose"] is None and quiet["suppress_urls"] == "true"
    assert quiet["artifact_bars"] == "false"
    for argv, env in ((["-v", "run", "x.py"], None), (["run", "x.py", "-v"], None),
                      (["fit", "x"], {"QUOKKA_VERBOSE": "1"})):
        loud = _levels(*argv, env=env)
        # Left as the libraries set them (Ray's own loggers log INFO then).
        assert set(loud["levels"].values()) == {0}, (argv, loud)
        assert loud["verbose"] == "1" and loud["suppress_urls"] is loud["artifact_bars"] is None


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_progress_bar_on_a_terminal_rewrites_one_line():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, tty=True, clock=clock)
    bar("fit", 1, 4)  # under a second: nothing yet
    assert out.getvalue() == ""
    for done in (2, 3, 4):
        clock.now += 2
        bar("fit", done, 4)
    lines = out.getvalue().split("\n")
    assert lines[-1] == ""  # the finished bar ends its line
    frames = lines[0].split("\r")[1:]
    assert frames[0].startswith("[quokka] fit [############............]  50% (2/4), 2s, "
                                "about 2s left")
    assert frames[-1].startswith("[quokka] fit [########################] 100% (4/4), 6s")


def test_progress_in_a_log_is_a_line_now_and_then_and_at_the_end():
    clock, out = Clock(), io.StringIO()
    bar = ProgressBar(out, tty=False, clock=clock, interval_s=10)
    for done in range(1, 101):
        clock.now += 0.5
        bar("data: reading", done * 120_000, 12_000_000)
    lines = out.getvalue().splitlines()
    assert len(lines) == 6  # at 1 s, then every 10 s of the 50, and the end
    # Timed from the step's first report: 0.36 MB in 1 s.
    assert lines[0] == "[quokka] data: reading   3% (0.4/12.0 MB), 1s, about 32s left"
    assert lines[-1] == "[quokka] data: reading 100% (12.0/12.0 MB), 50s"
    assert "\r" not in out.getvalue() and "[#" not in out.getvalue()


def test_shard_preparation_reports_its_steps(data_cache, tmp_path):
    cfg = DataConfig(seq_len=32, max_corpus_bytes=60_000, validation_sequences=8,
                     shard_tokens=5_000, cache_dir=str(tmp_path))
    told: list[tuple[str, int, int | None]] = []
    prepare_shards(cfg, progress=lambda *step: told.append(step))
    reading = [t for t in told if t[0] == READING]
    assert reading and reading[-1][1] == reading[-1][2] >= 60_000
    assert all(a[1] <= b[1] for a, b in zip(reading, reading[1:], strict=False))
    packing = [t for t in told if t[0] == PACKING]
    shards = read_manifest(cfg)["shards"]
    assert [done for _, done, _ in packing] == list(range(1, len(packing) + 1))
    assert packing[-1][1] == packing[-1][2] >= len(shards) > 1


def test_parametric_fit_reports_its_starts_and_replicates():
    true = ParametricFit(E=1.8, A=400.0, B=2000.0, alpha=0.34, beta=0.28)
    N, D = (g.ravel() for g in np.meshgrid(np.geomspace(1e7, 3e9, 4), np.geomspace(1e9, 3e11, 4)))
    loss = true.predict(N, D) * np.exp(np.random.default_rng(0).normal(0, 0.003, N.size))
    told: list[tuple[str, int, int]] = []
    fit_parametric(N, D, loss, n_bootstrap=3, n_starts=4, progress=lambda *s: told.append(s))
    starts = [t for t in told if t[0] == "parametric fit, starts"]
    replicates = [t for t in told if t[0] == "parametric fit, bootstrap replicates"]
    assert starts[-1][1] == starts[-1][2] == len(starts) <= 4
    assert replicates == [("parametric fit, bootstrap replicates", i, 3) for i in (1, 2, 3)]


def test_sweep_description_lists_trials_and_where_the_plots_are():
    trials = pd.DataFrame([{"trial_name": "dlm-N3.02k-C1e09-66e82070", "kind": "dlm",
                            "kernel": "masked", "schedule": "linear", "loss": "elbo",
                            "timesteps": "uniform", "non_embedding_params": "3024",
                            "tokens": "55040", "flops": "998645760", "final_loss": 3.0013,
                            "val_loss": 3.4509, "outcome": "finished"}])
    before = sweep_note(trials, "tiny")
    assert "`quokka fit` fits its laws" in before
    row = "| dlm-N3.02k-C1e09-66e82070 | 3024 | 5.504e+04 | 9.986e+08 | " \
          "dlm-masked-linear-elbo-uniform | 3.001 | 3.451 | finished |"
    assert row in before.splitlines()
    after = sweep_note(trials, "tiny", FitNote("abc123", "tiny-fit", (
        "report.md", "trials.csv", "obj_isoflop.png", "obj_allocation.png"), "/out/tiny"))
    assert ("the report (`report.md`) and 2 plots are the artifacts of the fit run `tiny-fit` "
            "(abc123)") in after
    assert "`/out/tiny`" in after and "`obj_isoflop.png`, `obj_allocation.png`" in after
    assert row in after.splitlines()


def test_the_runs_page_opens_the_model_training_view():
    assert runs_page("sqlite:////tmp/mlflow.db", "3") == \
        "http://127.0.0.1:5000/#/experiments/3/runs?workflowType=machine_learning"
    assert runs_page("https://alice:pw@mlflow.example.org:8443/", "7") == \
        "https://mlflow.example.org:8443/#/experiments/7/runs?workflowType=machine_learning"


IGNORED_EXCEPTIONS = """
import sys, weakref
if sys.argv[1] == "quiet":
    from quokka_ray.sweep.trial import quiet_exit_in_callbacks
    quiet_exit_in_callbacks()
    quiet_exit_in_callbacks()  # a second call adds nothing
class Thing:
    pass
def exit_in_callback(_):
    raise SystemExit(1)  # what Ray's SIGTERM handler raises, here inside a weakref callback
def fail_in_callback(_):
    raise ValueError("a real bug")
for callback in (exit_in_callback, fail_in_callback):
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
print("still running")
"""


def test_a_trials_exit_inside_a_callback_leaves_no_traceback_but_other_errors_do():
    def run(mode: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", IGNORED_EXCEPTIONS, mode],
                              capture_output=True, text=True, timeout=120)

    plain, quiet = run("plain"), run("quiet")
    assert "SystemExit" in plain.stderr and "ValueError" in plain.stderr  # Python's own output
    assert "SystemExit" not in quiet.stderr and "exit_in_callback" not in quiet.stderr
    assert "ValueError: a real bug" in quiet.stderr
    assert quiet.stdout.strip() == plain.stdout.strip() == "still running"
