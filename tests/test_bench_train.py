"""`quokka bench train EXPERIMENT`: the training loop's steps on a trial, timed whole."""

from __future__ import annotations

import json

import pytest

from quokka_ray.commands.bench_train import LOOP_WARMUP_STEPS, main
from quokka_ray.model import flops_per_token, output_flops_per_token
from quokka_ray.sweep import load_experiment, plan_trials
from tests.conftest import EXPERIMENTS

EXPERIMENT = str(EXPERIMENTS / "tiny_isoflop.py")


@pytest.fixture
def test_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(tmp_path / "cache"))  # read by the file


def test_the_loop_is_timed_on_a_trial(tmp_path, test_cache, capsys, one_torch_thread):
    assert main([EXPERIMENT, "--steps", "40", "--json", "--storage-path", str(tmp_path)]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    first = plan_trials(load_experiment(EXPERIMENT))[0]
    assert result["trial"] == first.name and result["params"] == first.non_embedding_params
    # Read back every 10 steps: timed from the read-back at the end of the warm-up on.
    assert result["timed_steps"] == [LOOP_WARMUP_STEPS + 1, 40]
    assert result["step_wall_seconds"] > 0 and result["step_cpu_seconds"] > 0
    batch_tokens = 8 * 32
    assert result["batch_tokens"] == batch_tokens
    assert result["tokens_per_s"] == pytest.approx(batch_tokens / result["step_wall_seconds"])
    # The output layer runs on the masked positions only: between none and all of them.
    full = batch_tokens * flops_per_token(first.model, 32)
    head = batch_tokens * output_flops_per_token(first.model)
    assert full - head < result["executed_flops_per_step"] < full
    assert result["flops_per_cpu_second"] == pytest.approx(
        result["executed_flops_per_step"] / result["step_cpu_seconds"])


@pytest.mark.parametrize("argv, fragment", [
    ([EXPERIMENT, "--seq-len", "32"], "--seq-len"),
    ([EXPERIMENT, "--steps", str(LOOP_WARMUP_STEPS - 5)], "--steps"),
    ([EXPERIMENT, "--trial", "no-such-trial"], "--trial"),
    (["--trial", "dlm-N3.02k"], "--trial"),
])
def test_bad_options_stop_in_one_line_before_training(argv, fragment, tmp_path, test_cache,
                                                      capsys):
    assert main([*argv, "--storage-path", str(tmp_path)] if argv[0] == EXPERIMENT
                else argv) == 2
    out = capsys.readouterr()
    lines = [line for line in out.err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0], out.err
    assert out.out == "" and not (tmp_path / "cache").exists()  # nothing prepared or trained
