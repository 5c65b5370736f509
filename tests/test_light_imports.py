"""What Ray Train's controller unpickles for a trial (the worker function, its TrainConfig and
the MLflow tracker factory) imports neither torch nor MLflow: each would add seconds to every
trial's start."""

import pickle
import subprocess
import sys

from quokka_ray.sweep.grid import train_config
from quokka_ray.sweep.loader import load_plan
from quokka_ray.train.ray_worker import train_loop_per_worker
from quokka_ray.train.tracker import TrackerFactory

UNPICKLE = """
import pickle, sys
pickle.loads(sys.stdin.buffer.read())
heavy = sorted(m for m in ("torch", "mlflow", "pyarrow", "pandas") if m in sys.modules)
print(",".join(heavy))
"""


def test_a_trials_loop_config_unpickles_without_torch_or_mlflow():
    experiment, trials = load_plan("experiments/quickstart.py")
    payload = pickle.dumps((train_loop_per_worker, {
        "train": train_config(trials[0], experiment),
        "tracker_factory": TrackerFactory("quokka_ray.tracking", "MlflowRunTracker",
                                          ("sqlite:///unused.db", "run-id"))}))
    out = subprocess.run([sys.executable, "-c", UNPICKLE], input=payload, capture_output=True,
                         check=True)
    assert out.stdout.decode().strip() == ""


def test_the_tracker_factory_makes_the_named_tracker(tmp_path):
    tracker = TrackerFactory("quokka_ray.train.tracker", "JsonLinesTracker",
                             (str(tmp_path / "steps.jsonl"),))()
    tracker.log_metrics({"loss": 1.5}, step=3)
    assert '"step": 3' in (tmp_path / "steps.jsonl").read_text()
