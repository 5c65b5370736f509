"""Bad experiment files fail before anything starts: one line naming the file and the field,
a non-zero exit, no traceback."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

HEADER = """
from quokka_ray.sweep import Experiment, IsoFlopStudy, Hyperparameters, DataConfig
"""

CASES = {
    "unknown_field": (
        "experiment = Experiment(study=IsoFlopStudy(budgets_flops=[1e10], model_sizes=[12000]),\n"
        "                        hyperparameters=Hyperparameters(learning_rate=1e-3))\n",
        ["unknown_field.py:", "Hyperparameters", "learning_rate"]),
    "wrong_type": (
        "experiment = Experiment(study=IsoFlopStudy(budgets_flops=[1e10], model_sizes=[12000]),\n"
        "                        hyperparameters=Hyperparameters(batch_sequences='big'))\n",
        ["wrong_type.py:", "Hyperparameters.batch_sequences", "expected int"]),
    "too_small": (
        "experiment = Experiment(study=IsoFlopStudy(budgets_flops=[1e5], model_sizes=[12000]))\n",
        ["too_small.py", "budgets_flops", "too small"]),
    "no_experiment": ("x = 1\n", ["no_experiment.py", "experiment = Experiment"]),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_file_fails_with_one_line(case, tmp_path):
    body, expected = CASES[case]
    path = tmp_path / f"{case}.py"
    path.write_text(textwrap.dedent(HEADER) + body)
    done = subprocess.run([sys.executable, "-m", "quokka_ray.cli", "plan", str(path)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    for fragment in expected:
        assert fragment in lines[0]


def test_plan_json_lists_budget_flops():
    import json

    done = subprocess.run([sys.executable, "-m", "quokka_ray.cli", "plan",
                           "experiments/quickstart.py", "--json"],
                          capture_output=True, text=True, cwd=REPO, timeout=120, check=True)
    rows = json.loads(done.stdout)["trials"]
    assert rows and {"name", "kind", "non_embedding_params", "tokens", "flops",
                     "budget_flops"} <= set(rows[0])
    for row in rows:
        assert row["kind"] == "dlm"
        # the quickstart's budgets count exact training FLOPs; flops is C = 6 N D
        assert abs(row["exact_flops"] - row["budget_flops"]) <= 0.02 * row["budget_flops"]
        assert row["flops"] == 6 * row["non_embedding_params"] * row["tokens"]


@pytest.mark.parametrize("argv, fragment", [
    (["--steps", "0"], "--steps"),
    (["--seq-len", "-4"], "--seq-len"),
    (["--attention", "flash_attn"], "--attention"),
])
def test_bad_bench_train_options_are_one_line(argv, fragment):
    if "flash_attn" in argv and importlib.util.find_spec("flash_attn"):
        pytest.skip("flash-attn is installed here")
    done = subprocess.run([sys.executable, "-m", "quokka_ray.cli", "bench", "train",
                           "--non-embedding-params", "20000", "--seq-len", "32", *argv],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in done.stderr, done.stderr
    assert "device" not in done.stdout  # nothing was trained
