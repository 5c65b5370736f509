"""`quokka plan --gpu TYPE --mfu X` prices every trial and the plan before anything runs, and
`--max-gpu-hours` makes `plan` and `run` refuse a plan over budget before anything starts: no
Ray session, no MLflow store or run, no shard. No training here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from quokka_ray.cli import main
from quokka_ray.model import flops_per_token
from quokka_ray.sweep import load_plan
from quokka_ray.sweep.checks import ladders
from quokka_ray.sweep.ladder import ladder_of
from tests.conftest import EXPERIMENTS, REPO, run_cli_cases

#: An H100 SXM's dense bf16 peak (NVIDIA's datasheet: 1,979 TFLOP/s with sparsity).
H100_PEAK_FLOPS = 989.4e12
MFU = 0.4

# The tiny sweep of the end-to-end tests, its shards left where a real run would write them
# (under the storage path) so that a test can see none is written.
EXPERIMENT = """\
from quokka_ray.sweep import DataConfig, Experiment, Hyperparameters, IsoFlopStudy
experiment = Experiment(
    study=IsoFlopStudy(budgets_flops=[2e9, 6e9], model_sizes=[12_000, 55_000, 100_000],
                       min_steps=3, budget_tolerance=0.05),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16),
    name="priced",
)
"""


@pytest.fixture
def cache(data_cache, monkeypatch):
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))


def _plan_json(capsys, *args) -> dict:
    assert main(["plan", str(EXPERIMENTS / "tiny_isoflop.py"), "--json", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_plan_prices_each_trial_and_the_total_is_their_sum(cache, capsys):
    plan = _plan_json(capsys, "--gpu", "h100", "--mfu", "0.4")
    experiment, trials = load_plan(EXPERIMENTS / "tiny_isoflop.py")
    rows = plan["trials"]
    assert [r["name"] for r in rows] == [t.name for t in trials] and len(rows) == 6
    for row, spec in zip(rows, trials, strict=True):
        # The model's exact FLOPs per token times the trial's tokens, as MFU counts them.
        exact = flops_per_token(spec.model, experiment.data.seq_len) * spec.tokens
        assert row["exact_flops"] == pytest.approx(exact, rel=1e-12)
        assert row["exact_flops"] > row["flops"]  # attention and the output layer on top of 6ND
        assert row["gpu_hours"] == pytest.approx(exact / (H100_PEAK_FLOPS * MFU) / 3600,
                                                 rel=1e-12)
    totals = plan["totals"]
    assert totals["gpu"] == "h100" and totals["mfu"] == MFU
    assert totals["peak_flops"] == H100_PEAK_FLOPS
    assert totals["runs"] == 6 and not totals["upper_bound"]
    assert all(r["runs"] == 1 for r in plan["trials"])
    assert totals["exact_flops"] == pytest.approx(sum(r["exact_flops"] for r in rows), rel=1e-12)
    assert totals["gpu_hours"] == pytest.approx(sum(r["gpu_hours"] for r in rows), rel=1e-12)

    # The table shows the same hours per trial and their total.
    assert main(["plan", str(EXPERIMENTS / "tiny_isoflop.py"), "--gpu", "h100",
                 "--mfu", "0.4"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split()[-1] == "GPU-h"
    shown = {line.split()[0]: float(line.split()[-1]) for line in lines
             if line.split() and line.split()[0] in {r["name"] for r in rows}}
    for row in rows:
        assert shown[row["name"]] == pytest.approx(row["gpu_hours"], rel=5e-3)
    total = next(line for line in lines if line.startswith("total GPU-hours"))
    assert "h100" in total and "MFU 0.4" in total
    assert float(total.rsplit(" ", 1)[1]) == pytest.approx(totals["gpu_hours"], rel=5e-3)


def test_hours_scale_with_the_gpu_and_the_mfu(cache, capsys):
    h100 = _plan_json(capsys, "--gpu", "h100", "--mfu", "0.4")["totals"]
    a100 = _plan_json(capsys, "--gpu", "a100", "--mfu", "0.2")["totals"]
    # A100: 312 TFLOP/s dense bf16.
    assert a100["gpu_hours"] == pytest.approx(h100["gpu_hours"] * (989.4 * 0.4) / (312 * 0.2))
    assert _plan_json(capsys, "--gpu", "h100")["totals"]["mfu"] == 0.4  # the documented default
    unpriced = _plan_json(capsys)["totals"]
    assert unpriced["gpu_hours"] is None and unpriced["exact_flops"] == h100["exact_flops"]


def test_optuna_totals_count_every_sample(cache, capsys):
    assert main(["plan", str(EXPERIMENTS / "tiny_optuna.py"), "--json", "--gpu", "h100"]) == 0
    plan = json.loads(capsys.readouterr().out)
    (row,) = plan["trials"]
    samples = row["runs"]
    assert samples > 1 and plan["totals"]["runs"] == samples
    assert plan["totals"]["gpu_hours"] == pytest.approx(row["gpu_hours"] * samples)
    assert main(["plan", str(EXPERIMENTS / "tiny_optuna.py"), "--gpu", "h100"]) == 0
    assert f"the totals count {samples} runs" in capsys.readouterr().out


def test_a_gpu_hour_budget_gives_each_point_the_trials_it_pays_for(cache, capsys, tmp_path):
    """Search.gpu_budget instead of num_samples: at each study point as many full-length
    trials as the hours pay for at the stated GPU and MFU, priced as `quokka plan` prices them."""
    source = (REPO / "experiments" / "transfer_ar_dlm.py").read_text()
    assert main(["plan", str(REPO / "experiments" / "transfer_ar_dlm.py"), "--set",
                 "scale=paper", "--json", "--gpu", "a100", "--mfu", "0.3"]) == 0
    rows = json.loads(capsys.readouterr().out)["trials"]
    one_trial = {r["name"]: r["gpu_hours"] for r in rows}
    budget = 2.5 * min(one_trial.values())
    path = tmp_path / "transfer_budget.py"
    path.write_text(source.replace(
        "search=Search(algorithm=\"optuna\", num_samples=12),",
        f"search=Search(algorithm=\"optuna\", gpu_budget=GpuBudget({budget!r}, 'a100', 0.3)),"
    ).replace("    EvaluationConfig,\n", "    EvaluationConfig,\n    GpuBudget,\n"))
    assert main(["plan", str(path), "--set", "scale=paper", "--json", "--gpu", "a100",
                 "--mfu", "0.3"]) == 0
    plan = json.loads(capsys.readouterr().out)
    expected = {name: max(1, int(budget / hours)) for name, hours in one_trial.items()}
    assert {r["name"]: r["runs"] for r in plan["trials"]} == expected
    assert expected[min(one_trial, key=one_trial.get)] == 2 and min(expected.values()) == 1
    assert plan["totals"]["runs"] == sum(expected.values())
    assert plan["totals"]["gpu_hours"] == pytest.approx(
        sum(one_trial[name] * runs for name, runs in expected.items()))
    assert main(["plan", str(path), "--set", "scale=paper"]) == 0
    assert (f"{plan['totals']['runs']} runs: each study point's search runs as many trials as "
            f"{budget:g} GPU-hours pay for") in capsys.readouterr().out


def test_a_ladder_trains_its_stable_phase_once_and_each_decay(cache, capsys):
    path = EXPERIMENTS / "tiny_data_constrained.py"
    assert main(["plan", str(path), "--json", "--gpu", "h100", "--mfu", "0.4"]) == 0
    plan = json.loads(capsys.readouterr().out)
    experiment, trials = load_plan(path)
    hyper, batch_tokens = experiment.hyperparameters, 8 * experiment.data.seq_len
    rows = {r["name"]: r for r in plan["trials"]}
    stable = []
    for size in {t.non_embedding_params for t in trials}:
        ladder = [t for t in trials if t.non_embedding_params == size]
        per_token = flops_per_token(ladder[0].model, experiment.data.seq_len)
        steps = [t.tokens // batch_tokens for t in ladder]
        # Warmup-stable-decay: each run decays over its last decay_fraction of steps.
        decays = [int(hyper.decay_fraction * n) for n in steps]
        for spec, decay in zip(ladder, decays, strict=True):
            assert rows[spec.name]["exact_flops"] == pytest.approx(
                per_token * decay * batch_tokens, rel=1e-12)
        stable.append(per_token * max(n - d for n, d in zip(steps, decays, strict=True))
                      * batch_tokens)
    assert sorted(s["exact_flops"] for s in plan["stable_phases"]) == pytest.approx(sorted(stable))
    total = sum(r["exact_flops"] for r in rows.values()) + sum(stable)
    assert plan["totals"]["exact_flops"] == pytest.approx(total, rel=1e-12)
    assert plan["totals"]["gpu_hours"] == pytest.approx(
        total / (H100_PEAK_FLOPS * MFU) / 3600, rel=1e-12)
    from_scratch = sum(flops_per_token(t.model, experiment.data.seq_len) * t.tokens
                       for t in trials)
    assert total < from_scratch


def test_over_budget_plan_and_run_stop_before_anything_starts(tmp_path, capsys):
    (tmp_path / "priced.py").write_text(EXPERIMENT)
    experiment, trials = load_plan(tmp_path / "priced.py")
    total = sum(flops_per_token(t.model, experiment.data.seq_len) * t.tokens
                for t in trials) / (H100_PEAK_FLOPS * MFU) / 3600
    limit = f"{total / 2:.3g}"
    price = ["--gpu", "h100", "--mfu", "0.4", "--max-gpu-hours", limit]
    plan_dir, run_dir = tmp_path / "plan", tmp_path / "run"
    for folder in (plan_dir, run_dir):
        folder.mkdir()
        (folder / "priced.py").write_text(EXPERIMENT)
    results = run_cli_cases([
        (["plan", "priced.py", *price], plan_dir),
        (["run", "priced.py", *price, "--tracking-uri", f"sqlite:///{run_dir}/mlflow.db",
          "--storage-path", str(run_dir / "runs")], run_dir),
    ], tmp_path)
    for result in results:
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2 and len(lines) == 1, result["stderr"]
        assert "Traceback" not in result["stderr"]
        # The total, the limit, the GPU and the MFU, in one line.
        assert f"{total:.3g} GPU-hours" in lines[0] and f"--max-gpu-hours {limit}" in lines[0]
        assert "h100" in lines[0] and "MFU 0.4" in lines[0]
        assert not result["ray"], "a Ray session was started"
        assert result["created"] == [], f"created {result['created']}"  # no store, no shards
    assert sorted(p.name for p in plan_dir.iterdir()) == ["priced.py"]
    assert sorted(p.name for p in run_dir.iterdir()) == ["priced.py"]


def test_a_plan_within_budget_goes_on(tmp_path, data_cache, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    assert main(["plan", str(EXPERIMENTS / "tiny_isoflop.py"), "--gpu", "h100",
                 "--max-gpu-hours", "1"]) == 0
    assert "(limit 1)" in capsys.readouterr().out


def test_plan_prices_without_torch():
    code = ("import sys; from quokka_ray.cli import main; "
            "main(['plan', 'experiments/isoflop_dlm.py', '--set', 'scale=paper', '--gpu', 'h100']); "
            "print('torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines()[-1] == "False"


def test_exact_budgets_are_each_trials_whole_run_and_each_decay_ends_at_its_own_tokens(
        cache, capsys, tmp_path):
    """IsoFlopStudy.budget_flops_rule='exact' on a study of ladders: each budget's decay
    branches at its own token count, D = C / exact FLOPs per token, and the plan says the
    exact FLOPs of each trial's whole run are its budget."""
    source = (EXPERIMENTS / "tiny_isoflop_reuse.py").read_text()
    exact_source = source.replace("reuse_stable_phase=True,",
                                  "reuse_stable_phase=True, budget_flops_rule='exact',")
    assert exact_source != source
    path = tmp_path / "reuse_exact.py"
    path.write_text(exact_source)
    assert main(["plan", str(path), "--json"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["budget_flops_rule"] == "exact"
    rows = {r["name"]: r for r in plan["trials"]}
    experiment, trials = load_plan(path)
    study, seq_len = experiment.study, experiment.data.seq_len
    misses = []
    for specs in ladders(trials).values():
        ladder = ladder_of(experiment, specs)
        assert len({spec.budget_flops for spec in specs}) == len(specs) == 2
        for spec, branch in zip(specs, ladder.branches, strict=True):
            assert branch.total_steps * branch.batch_tokens == spec.tokens
            per_token = flops_per_token(spec.model, seq_len)
            misses.append(abs(per_token * spec.tokens - spec.budget_flops) / spec.budget_flops)
            assert misses[-1] <= study.budget_tolerance
            assert rows[spec.name]["exact_flops"] == pytest.approx(
                per_token * ladder.decay_tokens(branch), rel=1e-12)
    assert main(["plan", str(path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    note = next(line for line in lines if line.startswith("budgets count exact training FLOPs"))
    assert f"within {max(misses):.2%}" in note and "only its decay" in note


def test_a_6n_plan_says_how_far_exact_flops_are_from_6n(cache, capsys):
    experiment, trials = load_plan(EXPERIMENTS / "tiny_isoflop.py")
    assert experiment.study.budget_flops_rule == "6N"
    ratios = [flops_per_token(t.model, experiment.data.seq_len) / (6 * t.non_embedding_params)
              for t in trials]
    assert main(["plan", str(EXPERIMENTS / "tiny_isoflop.py")]) == 0
    note = next(line for line in capsys.readouterr().out.splitlines()
                if line.startswith("budgets count C = 6ND"))
    assert f"{min(ratios):.2f}x to {max(ratios):.2f}x of 6 N" in note
    assert _plan_json(capsys)["budget_flops_rule"] == "6N"
