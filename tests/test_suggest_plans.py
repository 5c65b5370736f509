"""`quokka fit --suggest` names only runs that can be run as the study's own runs are: runs
recorded in a real MLflow store (SQLite) the way trials record them, with losses from a known
IsoFLOP law (no training), are fitted with --suggest; every run it names must then be a trial
of `quokka plan` of the experiment file it wrote, training no fewer steps than the study's
min_steps, no fewer tokens per parameter than the sweep trained, and no token twice; and the
candidates it left out are named with the check each fails."""

from __future__ import annotations

import json

import numpy as np
import pytest

from quokka_ray.cli import main
from quokka_ray.data import prepare_shards, read_manifest
from quokka_ray.sweep import load_plan
from quokka_ray.sweep.checks import corpus_from_manifest
from quokka_ray.tracking import MlflowStore
from tests.conftest import EXPERIMENTS
from tests.test_fit_runs import _record

# Three budgets and five sizes of the tiny sweep. The 97.7k model trains too few steps at
# the smallest budget, so the sweep leaves it out there; the window of tokens per parameter is
# wide enough to let in all the sweep's runs and a 97.7k run too short to count.
STUDY = ("study=IsoFlopStudy(budgets_flops=[1e9, 2e9, 4e9], "
         "model_sizes=[3_000, 12_000, 25_000, 55_000, 100_000], min_steps=10, "
         "budget_tolerance=0.05{window}),")
WINDOW = (0.01, 1000.0)
MIN_STEPS, BATCH_TOKENS = 10, 8 * 32
LABEL = "dlm-masked-linear-elbo-uniform"


def law_loss(n: float, c: float, rng) -> float:
    """A parabola in ln N about N_opt = 3e4 (C / 6e9)^0.45, the loss falling with C, noisy."""
    n_opt = 3e4 * (c / 6e9) ** 0.45
    return 5.0 * c**-0.02 + 0.3 * np.log(n / n_opt) ** 2 + rng.normal(0, 0.003)


@pytest.fixture(params=[WINDOW, None], ids=["window", "no-window"])
def fitted(request, tmp_path, data_cache, monkeypatch):
    """The experiment file (with or without a window of tokens per parameter), its plan, and a
    store holding its runs with the law's losses."""
    monkeypatch.setenv("QUOKKA_TEST_CACHE", str(data_cache))
    text = (EXPERIMENTS / "tiny_isoflop.py").read_text()
    start = text.index("study=IsoFlopStudy(")
    end = text.index("\n", text.index("budget_tolerance=0.05)", start))
    window = "" if request.param is None else f", tokens_per_param={request.param}"
    path = tmp_path / "suggest.py"
    path.write_text(text[:start] + STUDY.format(window=window) + text[end:])
    experiment, trials = load_plan(path)
    prepare_shards(experiment.data)
    corpus = corpus_from_manifest(read_manifest(experiment.data))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    rng = np.random.default_rng(0)
    _record(MlflowStore(uri), experiment, trials, corpus,
            lambda t: law_loss(t.non_embedding_params, t.budget_flops, rng))
    return path, trials, corpus, uri, request.param


def _json(capsys) -> dict:
    captured = capsys.readouterr()
    return json.loads(captured.out)  # stdout holds the JSON object and nothing else


def test_every_suggested_run_passes_the_plan_of_its_file(tmp_path, fitted, capsys):
    path, trials, corpus, uri, window = fitted
    assert main(["fit", str(path), "--tracking-uri", uri, "--out", str(tmp_path / "fit"),
                 "--law", "isoflop", "--bootstrap", "50", "--suggest", "4", "--target", "1e11",
                 "--json"]) == 0
    payload = _json(capsys)
    plan = payload["objectives"][LABEL]["suggestions"]
    runs = plan["runs"]
    assert runs, plan["notes"]
    # The study's window, or (without one) the sweep's own fewest tokens per parameter, is
    # the floor.
    floor = window[0] if window else min(t.tokens / t.non_embedding_params for t in trials)
    assert plan["min_tokens_per_param"] == pytest.approx(floor, rel=1e-6)

    # Each check left out some candidate, and says why.
    left = {}
    for run in plan["left_out"]:
        left.setdefault(run["check"], []).append(run)
    assert {"tokens_per_param", "corpus"} | ({"min_steps"} if window else set()) <= set(left)
    for run in left["tokens_per_param"]:
        ratio = run["tokens"] / run["non_embedding_params"]
        assert ratio < floor or (window and ratio > window[1]), run
    if window:
        assert all(f"fewer than the study's min_steps ({MIN_STEPS})" in r["reason"]
                   and r["tokens"] // BATCH_TOKENS < MIN_STEPS for r in left["min_steps"])
    assert all(r["tokens"] > corpus.train_tokens and "max_corpus_bytes=" in r["reason"]
               for r in left["corpus"])

    files = [w["path"] for w in payload["written"] if w["kind"] == "suggestion"]
    assert len(files) == len({r["budget_flops"] for r in runs})
    planned = []
    for file in files:
        assert main(["plan", file, "--json"]) == 0  # the code `quokka plan` runs
        planned += _json(capsys)["trials"]
    assert len(planned) == len(runs)
    for run in runs:
        (trial,) = [t for t in planned if t["non_embedding_params"] == round(
            run["non_embedding_params"]) and t["budget_flops"] == run["budget_flops"]]
        assert trial["tokens"] == run["tokens"]
        assert trial["tokens"] // BATCH_TOKENS >= MIN_STEPS
        assert trial["tokens"] / trial["non_embedding_params"] >= floor * (1 - 1e-9)
        if window:
            assert trial["tokens"] / trial["non_embedding_params"] <= window[1]
        assert trial["epochs"] <= 1.0
    report = (tmp_path / "fit" / "report.md").read_text()
    for file in files:
        assert f"`{file}`" in report
    for run in plan["left_out"]:
        assert run["reason"] in report
