"""Every mistake in an experiment file is caught before anything starts: `quokka plan` and
`quokka run` exit 2 with one line naming the file and the field, no traceback, no Ray session,
and no MLflow store, checkpoint or Tune folder created."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli_cases

HEADER = """\
import os
from ray import tune
from quokka_ray.sweep import (DataConfig, DataConstrainedStudy, EvaluationConfig, Experiment,
                              FixedStudy, Hyperparameters, IsoFlopStudy, ObjectiveConfig,
                              GpuBudget, Resources, Search)
CACHE = os.environ["QUOKKA_TEST_CACHE"]
FIXED = FixedStudy(model_sizes=[12_000], tokens=[32 * 32 * 20])
ISO = IsoFlopStudy(budgets_flops=[2e9, 6e9], model_sizes=[12_000, 55_000, 100_000], min_steps=3,
                   budget_tolerance=0.05)
DATA = DataConfig(seq_len=32, max_corpus_bytes=200_000, validation_sequences=16, cache_dir=CACHE)
DC = DataConstrainedStudy(unique_tokens=[32 * 32 * 10], model_sizes=[12_000], epochs=[1, 4])
WSD = Hyperparameters(lr_schedule="wsd")

def make(**fields):
    fields.setdefault("study", FIXED)
    fields.setdefault("data", DATA)
    return Experiment(**fields)

"""

H = "Hyperparameters"
# name: (the line that sets `experiment`, the field the message must name)
CASES = {
    # wrong types
    "lr_string": ("experiment = make(hyperparameters=Hyperparameters(lr='fast'))", f"{H}.lr"),
    "batch_string": ("experiment = make(hyperparameters=Hyperparameters(batch_sequences='big'))",
                     f"{H}.batch_sequences"),
    "batch_float": ("experiment = make(hyperparameters=Hyperparameters(batch_sequences=8.5))",
                    f"{H}.batch_sequences"),
    "sizes_float": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], "
                    "model_sizes=[1.5e4]))", "IsoFlopStudy.model_sizes"),
    "seed_string": ("experiment = make(seed='zero')", "Experiment.seed"),
    "use_gpu_string": ("experiment = make(resources=Resources(use_gpu='yes'))", "Resources.use_gpu"),
    "objectives_not_list": ("experiment = make(objectives=ObjectiveConfig())",
                            "Experiment.objectives"),
    "unknown_field": ("experiment = make(hyperparameters=Hyperparameters(learning_rate=1e-3))",
                      "learning_rate"),
    "grid_wrong_type": ("experiment = make(hyperparameters=Hyperparameters("
                        "batch_sequences=tune.grid_search([8, 'x'])))", f"{H}.batch_sequences"),
    "unsearchable_field": ("experiment = make(hyperparameters=Hyperparameters("
                           "betas=tune.grid_search([(0.9, 0.95)])))", f"{H}.betas"),
    "sample_from": ("experiment = make(hyperparameters=Hyperparameters("
                    "lr=tune.sample_from(lambda spec: 1e-3)))", f"{H}.lr"),
    "empty_grid": ("experiment = make(hyperparameters=Hyperparameters("
                   "lr=tune.grid_search([])))", f"{H}.lr"),
    # out of range
    "batch_zero": ("experiment = make(hyperparameters=Hyperparameters(batch_sequences=0))",
                   f"{H}.batch_sequences"),
    "lr_negative": ("experiment = make(hyperparameters=Hyperparameters(lr=-1.0))", f"{H}.lr"),
    "lr_space_negative": ("experiment = make(hyperparameters=Hyperparameters("
                          "lr=tune.uniform(-1e-3, 1e-2)))", f"{H}.lr"),
    "weight_decay_negative": ("experiment = make(hyperparameters=Hyperparameters("
                              "weight_decay=-0.1))", f"{H}.weight_decay"),
    "warmup_one": ("experiment = make(hyperparameters=Hyperparameters(warmup_fraction=1.0))",
                   f"{H}.warmup_fraction"),
    "decay_above_one": ("experiment = make(hyperparameters=Hyperparameters("
                        "decay_fraction=1.5))", f"{H}.decay_fraction"),
    "min_lr_ratio_two": ("experiment = make(hyperparameters=Hyperparameters(min_lr_ratio=2.0))",
                         f"{H}.min_lr_ratio"),
    "betas_above_one": ("experiment = make(hyperparameters=Hyperparameters(betas=(0.9, 1.5)))",
                        f"{H}.betas"),
    "eps_zero": ("experiment = make(hyperparameters=Hyperparameters(eps=0.0))", f"{H}.eps"),
    "dc_not_wsd": ("experiment = make(study=DC)", f"{H}.lr_schedule"),
    "dc_epochs_zero": ("experiment = make(study=DataConstrainedStudy(unique_tokens=[32768], "
                       "model_sizes=[12_000], epochs=[0, 2]), hyperparameters=WSD)",
                       "DataConstrainedStudy.epochs"),
    "dc_same_length": ("experiment = make(study=DataConstrainedStudy(unique_tokens=[32768], "
                       "model_sizes=[12_000], epochs=[1, 1.001]), hyperparameters=WSD)",
                       "DataConstrainedStudy.epochs"),
    "dc_optuna": ("experiment = make(study=DC, hyperparameters=Hyperparameters("
                  "lr_schedule='wsd', lr=tune.loguniform(1e-4, 1e-2)), "
                  "search=Search(algorithm='optuna'))", "Search"),
    "dc_curriculum": ("experiment = make(study=DC, hyperparameters=WSD, "
                      "objectives=[ObjectiveConfig(timesteps='curriculum')])",
                      "ObjectiveConfig.timesteps"),
    "dc_unique_beyond_corpus": ("experiment = make(study=DataConstrainedStudy("
                                "unique_tokens=[10**9], model_sizes=[12_000], epochs=[1, 2]), "
                                "hyperparameters=WSD)", "DataConstrainedStudy.unique_tokens"),
    "tokens_zero": ("experiment = make(study=FixedStudy(model_sizes=[12_000], tokens=[0]))",
                    "FixedStudy.tokens"),
    "tokens_mismatch": ("experiment = make(study=FixedStudy(model_sizes=[12_000, 50_000], "
                        "tokens=[20_000]))", "FixedStudy.tokens"),
    "budget_negative": ("experiment = make(study=IsoFlopStudy(budgets_flops=[-1e9], "
                        "model_sizes=[12_000]))", "IsoFlopStudy.budgets_flops"),
    "no_sizes": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], model_sizes=[]))",
                 "IsoFlopStudy.model_sizes"),
    "budget_too_small": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e5], "
                         "model_sizes=[12_000]))", "IsoFlopStudy.budgets_flops"),
    # 1e9 FLOPs give the 12k model 26 steps counted as 6 N D, 13 (under min_steps) counted
    # in exact training FLOPs.
    "exact_budget_too_small": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], "
                               "model_sizes=[12_000], budget_flops_rule='exact'))",
                               "IsoFlopStudy.budgets_flops"),
    "budget_rule_typo": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], "
                         "model_sizes=[12_000], budget_flops_rule='exakt'))",
                         "IsoFlopStudy.budget_flops_rule: expected one of '6N', 'exact', "
                         "got str 'exakt'"),
    "tokens_per_param_reversed": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], "
                                  "model_sizes=[12_000], tokens_per_param=(100, 1)))",
                                  "IsoFlopStudy.tokens_per_param"),
    "tolerance_two": ("experiment = make(study=IsoFlopStudy(budgets_flops=[1e9], "
                      "model_sizes=[12_000], budget_tolerance=2.0))", "IsoFlopStudy.budget_tolerance"),
    "seq_len_tiny": ("experiment = make(data=DataConfig(seq_len=4))", "DataConfig.seq_len"),
    "validation_zero": ("experiment = make(data=DataConfig(validation_sequences=0))",
                        "DataConfig.validation_sequences"),
    "corpus_zero": ("experiment = make(data=DataConfig(max_corpus_bytes=0))",
                    "DataConfig.max_corpus_bytes"),
    "unique_below_sequence": ("experiment = make(data=DataConfig(seq_len=32, unique_tokens=10))",
                              "DataConfig.unique_tokens"),
    "eval_negative": ("experiment = make(evaluation=EvaluationConfig(eval_every_steps=-1))",
                      "EvaluationConfig.eval_every_steps"),
    "validation_samples_zero": ("experiment = make(evaluation=EvaluationConfig("
                                "validation_samples_per_sequence=0))",
                                "EvaluationConfig.validation_samples_per_sequence"),
    "smoothing_zero": ("experiment = make(evaluation=EvaluationConfig(smoothing_window_steps=0))",
                       "EvaluationConfig.smoothing_window_steps"),
    "smoothing_fraction": ("experiment = make(evaluation=EvaluationConfig("
                           "smoothing_max_fraction=1.5))", "EvaluationConfig.smoothing_max_fraction"),
    "checkpoint_zero": ("experiment = make(checkpoint_every_steps=0)",
                        "Experiment.checkpoint_every_steps"),
    "t_min_zero": ("experiment = make(objectives=[ObjectiveConfig(t_min=0.0)])",
                   "ObjectiveConfig.t_min"),
    "curriculum_negative": ("experiment = make(objectives=[ObjectiveConfig("
                            "curriculum_width=-1.0)])", "ObjectiveConfig.curriculum_width"),
    "micro_batch_zero": ("experiment = make(resources=Resources(micro_batch_sequences=0))",
                         "Resources.micro_batch_sequences"),
    "cpus_zero": ("experiment = make(resources=Resources(cpus_per_worker=0))",
                  "Resources.cpus_per_worker"),
    "max_failures_negative": ("experiment = make(resources=Resources(max_failures=-1))",
                              "Resources.max_failures"),
    "concurrency_zero": ("experiment = make(resources=Resources(max_concurrent_trials=0))",
                         "Resources.max_concurrent_trials"),
    "num_samples_zero": ("experiment = make(search=Search(num_samples=0))", "Search.num_samples"),
    # misspelt choices
    "lr_schedule_typo": ("experiment = make(hyperparameters=Hyperparameters(lr_schedule='cosin'))",
                         f"{H}.lr_schedule"),
    "kind_typo": ("experiment = make(objectives=[ObjectiveConfig(kind='dlmm')])",
                  "ObjectiveConfig.kind"),
    "kernel_typo": ("experiment = make(objectives=[ObjectiveConfig(kernel='absorbing')])",
                    "ObjectiveConfig.kernel"),
    "loss_typo": ("experiment = make(objectives=[ObjectiveConfig(loss='nelbo')])",
                  "ObjectiveConfig.loss"),
    "timesteps_typo": ("experiment = make(objectives=[ObjectiveConfig(timesteps='stratified')])",
                       "ObjectiveConfig.timesteps"),
    "schedule_typo": ("experiment = make(objectives=[ObjectiveConfig(schedule='quadratic')])",
                      "ObjectiveConfig.schedule"),
    "algorithm_typo": ("experiment = make(search=Search(algorithm='random'))", "Search.algorithm"),
    "mode_typo": ("experiment = make(search=Search(mode='minimize'))", "Search.mode"),
    "scheduler_typo": ("experiment = make(search=Search(scheduler='hyperband'))",
                       "Search.scheduler"),
    "duplicate_objectives": ("experiment = make(objectives=[ObjectiveConfig(), ObjectiveConfig()])",
                             "Experiment.objectives"),
    # impossible worker counts
    "workers_reversed": ("experiment = make(resources=Resources(workers_per_trial=(2, 1)))",
                         "Resources.workers_per_trial"),
    "workers_zero": ("experiment = make(resources=Resources(workers_per_trial=0))",
                     "Resources.workers_per_trial"),
    "workers_min_zero": ("experiment = make(resources=Resources(workers_per_trial=(0, 2)))",
                         "Resources.workers_per_trial"),
    # unknown metrics
    "metric_typo": ("experiment = make(search=Search(metric='vall_loss'))", "Search.metric"),
    "metric_not_reported": ("experiment = make(search=Search(metric='accuracy'))", "Search.metric"),
    "bpb_without_bytes": ("experiment = make(data=DataConfig(tokenizer='gpt2', cache_dir=CACHE), "
                          "search=Search(metric='val_bpb'))", "Search.metric"),
    # what Optuna and ASHA need
    "optuna_no_space": ("experiment = make(search=Search(algorithm='optuna'))", "Search.algorithm"),
    "optuna_with_grid": ("experiment = make(hyperparameters=Hyperparameters(lr=tune.grid_search("
                         "[1e-3, 1e-2])), search=Search(algorithm='optuna'))", "Search.algorithm"),
    "gpu_budget_with_grid": ("experiment = make(search=Search(gpu_budget=GpuBudget(10.0)))",
                             "Search.gpu_budget"),
    "gpu_budget_and_samples": ("experiment = make(hyperparameters=Hyperparameters(lr=tune."
                               "loguniform(1e-3, 1e-2)), search=Search(algorithm='optuna', "
                               "num_samples=4, gpu_budget=GpuBudget(10.0)))", "Search.num_samples"),
    "gpu_budget_unknown_gpu": ("experiment = make(search=Search(algorithm='optuna', "
                               "gpu_budget=GpuBudget(10.0, gpu='h1000')))", "GpuBudget.gpu"),
    "gpu_budget_zero_hours": ("experiment = make(search=Search(algorithm='optuna', "
                              "gpu_budget=GpuBudget(0.0)))", "GpuBudget.hours_per_point"),
    "gpu_budget_mfu": ("experiment = make(search=Search(algorithm='optuna', "
                       "gpu_budget=GpuBudget(10.0, mfu=1.5)))", "GpuBudget.mfu"),
    "samples_without_space": ("experiment = make(search=Search(num_samples=3))",
                              "Search.num_samples"),
    "asha_without_eval": ("experiment = make(search=Search(scheduler='asha'))",
                          "EvaluationConfig.eval_every_steps"),
    "asha_eval_after_end": ("experiment = make(search=Search(scheduler='asha'), "
                            "evaluation=EvaluationConfig(eval_every_steps=100))",
                            "EvaluationConfig.eval_every_steps"),
    "asha_reduction_one": ("experiment = make(search=Search(scheduler='asha', "
                           "reduction_factor=1.0))", "Search.reduction_factor"),
    # data accounting: a compute-constrained trial would see some tokens twice
    "corpus_too_small": ("experiment = make(study=ISO, data=DataConfig(seq_len=32, "
                         "max_corpus_bytes=30_000, validation_sequences=16, cache_dir=CACHE))",
                         "DataConfig.max_corpus_bytes"),
    "unique_budget_too_small": ("experiment = make(study=ISO, data=DataConfig(seq_len=32, "
                                "unique_tokens=4096, max_corpus_bytes=200_000, "
                                "validation_sequences=16, cache_dir=CACHE))",
                                "DataConfig.unique_tokens"),
    # the file itself
    "no_experiment": ("x = 1", "experiment = Experiment"),
    "bad_name": ("experiment = make(name='my sweep')", "Experiment.name"),
    "syntax_error": ("experiment = make(", "syntax error"),
    # a file that takes settings
    "maker_and_experiment": ("experiment = make()\ndef make_experiment():\n    return make()",
                             "make_experiment"),
    "maker_returns_no_experiment": ("def make_experiment(scale='a'):\n    return 3",
                                    "make_experiment() returned int"),
    "maker_default_not_a_choice": ("from typing import Literal\n"
                                   "def make_experiment(scale: Literal['a', 'b'] = 'c'):\n"
                                   "    return make()", "defaults to 'c'"),
    "maker_setting_unreadable": ("def make_experiment(sizes: list = [1]):\n    return make()",
                                 "setting 'sizes'"),
    "maker_bad_field": ("def make_experiment(scale='a'):\n"
                        "    return make(seed='zero')", "Experiment.seed"),
}


# A file that takes settings (`--set scale=...`, `--set seed=...`).
SCALED = """
from typing import Literal

def make_experiment(scale: Literal["small", "large"] = "small", seed: int = 0):
    tokens = 32 * 32 * (20 if scale == "small" else 40)
    return make(study=FixedStudy(model_sizes=[12_000], tokens=[tokens]), seed=seed)
"""
PLAIN = "experiment = make()\n"

# Bad command-line options on a good file. name: (the file's body, the options, what the one
# line must hold: the option or setting and its value, and for a setting the file)
OPTION_CASES = {
    "gpu_unknown": (PLAIN, ["--gpu", "h1000"], ["--gpu h1000", "h100", "a100"]),
    "mfu_zero": (PLAIN, ["--gpu", "h100", "--mfu", "0"], ["--mfu 0", "(0, 1]"]),
    "mfu_above_one": (PLAIN, ["--gpu", "h100", "--mfu", "1.5"], ["--mfu 1.5", "(0, 1]"]),
    "mfu_text": (PLAIN, ["--gpu", "h100", "--mfu", "high"], ["--mfu high", "(0, 1]"]),
    "mfu_without_gpu": (PLAIN, ["--mfu", "0.4"], ["--mfu 0.4", "needs --gpu"]),
    "max_hours_without_gpu": (PLAIN, ["--max-gpu-hours", "100"],
                              ["--max-gpu-hours 100", "needs --gpu"]),
    "max_hours_negative": (PLAIN, ["--gpu", "h100", "--max-gpu-hours", "-5"],
                           ["--max-gpu-hours -5", "positive"]),
    "max_hours_text": (PLAIN, ["--gpu", "h100", "--max-gpu-hours", "lots"],
                       ["--max-gpu-hours lots", "positive"]),
    "set_unknown_name": (SCALED, ["--set", "sclae=large"],
                         ["set_unknown_name.py", "--set sclae=large", "unknown setting 'sclae'",
                          "scale, seed"]),
    "set_value_not_a_choice": (SCALED, ["--set", "scale=huge"],
                               ["set_value_not_a_choice.py", "--set scale=huge",
                                "one of 'small', 'large'"]),
    "set_value_not_an_int": (SCALED, ["--set", "seed=zero"],
                             ["set_value_not_an_int.py", "--set seed=zero", "an integer"]),
    "set_without_value": (SCALED, ["--set", "scale"], ["--set scale", "NAME=VALUE"]),
    "set_twice": (SCALED, ["--set", "scale=small", "--set", "scale=large"],
                  ["--set scale=large", "twice"]),
    "set_on_a_plain_file": (PLAIN, ["--set", "scale=large"],
                            ["set_on_a_plain_file.py", "--set scale=large", "takes no settings"]),
}


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory, data_cache):
    """Each case through `quokka plan` and `quokka run`, in one process (imports once)."""
    root = tmp_path_factory.mktemp("bad-experiments")
    cases, keys = [], []
    files = {name: (HEADER + line + "\n", []) for name, (line, _) in CASES.items()}
    files.update({name: (HEADER + body, options)
                  for name, (body, options, _) in OPTION_CASES.items()})
    for name, (text, options) in files.items():
        folder = root / name
        folder.mkdir()
        (folder / f"{name}.py").write_text(text)
        cases.append((["plan", f"{name}.py", *options], folder))
        cases.append((["run", f"{name}.py", *options, "--tracking-uri",
                       f"sqlite:///{folder}/mlflow.db", "--storage-path", str(folder / "runs")],
                      folder))
        keys += [("plan", name), ("run", name)]
    results = run_cli_cases(cases, root, env={"QUOKKA_TEST_CACHE": str(data_cache)})
    return dict(zip(keys, results, strict=True))


def test_at_least_forty_cases():
    assert len(CASES) >= 40


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_experiment_stops_before_anything_starts(outcomes, case, command):
    result = outcomes[(command, case)]
    field = CASES[case][1]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2, result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert len(lines) == 1, result["stderr"]
    assert f"{case}.py" in lines[0] and field in lines[0], lines[0]
    if case.startswith(("corpus_", "unique_budget")):
        assert "needs about" in lines[0] or "at least" in lines[0]
    assert not result["ray"], "a Ray session was started"
    assert result["created"] == [], f"created {result['created']}"


@pytest.mark.parametrize("command", ["plan", "run"])
@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_bad_option_stops_before_anything_starts(outcomes, case, command):
    result = outcomes[(command, case)]
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2, result["stderr"]
    assert "Traceback" not in result["stderr"]
    assert len(lines) == 1, result["stderr"]
    for fragment in OPTION_CASES[case][2]:
        assert fragment in lines[0], lines[0]
    assert not result["ray"], "a Ray session was started"
    assert result["created"] == [], f"created {result['created']}"


def test_unreachable_tracking_server_is_one_line_before_ray(tmp_path, data_cache):
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe closes
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "fine.py").write_text(HEADER + "experiment = make()\n")
    uri = f"http://127.0.0.1:{port}"
    results = run_cli_cases([(["run", "fine.py", "--tracking-uri", uri, "--storage-path",
                               str(tmp_path / "runs")], tmp_path),
                             (["fit", "fine.py", "--tracking-uri", uri], tmp_path)],
                            tmp_path, env={"QUOKKA_TEST_CACHE": str(data_cache)})
    for result in results:
        lines = [line for line in result["stderr"].splitlines() if line.strip()]
        assert result["code"] == 2 and len(lines) == 1, result["stderr"]
        assert f"{uri} is unreachable" in lines[0]
        assert not result["ray"]
    assert not (tmp_path / "runs").exists()


def test_unreachable_ray_cluster_is_one_line_and_leaves_no_run(tmp_path, data_cache):
    import socket
    import sqlite3

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    (tmp_path / "fine.py").write_text(HEADER + "experiment = make()\n")
    store = tmp_path / "mlflow.db"
    (result,) = run_cli_cases([(["run", "fine.py", "--address", f"127.0.0.1:{port}",
                                 "--tracking-uri", f"sqlite:///{store}", "--storage-path",
                                 str(tmp_path / "runs")], tmp_path)],
                              tmp_path, env={"QUOKKA_TEST_CACHE": str(data_cache)})
    lines = [line for line in result["stderr"].splitlines() if line.strip()]
    assert result["code"] == 2 and len(lines) == 1, result["stderr"]
    assert f"Ray cluster at 127.0.0.1:{port} is unreachable" in lines[0]
    assert not result["ray"]
    if store.exists():  # no run was opened, so none is left RUNNING
        with sqlite3.connect(store) as db:
            assert db.execute("select count(*) from runs").fetchone()[0] == 0
