"""One Optuna search and one ASHA per study point: each point gets its own budget of trials
and its own sampler, and early stopping never ranks one point's runs against another's."""

from __future__ import annotations

from dataclasses import dataclass, field

from ray import tune
from ray.tune.schedulers import ASHAScheduler, TrialScheduler
from ray.tune.search import Searcher

from quokka_ray.sweep.per_point import PerPointASHA, PerPointSearch

SPACE = {"hp": {"lr": tune.loguniform(1e-4, 1e-1)}}


def _search(points, samples=3, seed=0) -> PerPointSearch:
    per_point = samples if isinstance(samples, dict) else dict.fromkeys(points, samples)
    search = PerPointSearch(per_point, "val_loss", "min", seed)
    assert search.set_search_properties("val_loss", "min", SPACE)
    return search


def test_each_point_gets_its_own_budget_of_trials_then_the_search_ends():
    search = _search(["dlm-a", "ar-a"], samples=3)
    suggested = [search.suggest(f"t{i}") for i in range(6)]
    assert [s["trial"] for s in suggested] == ["dlm-a", "ar-a"] * 3
    assert all(1e-4 <= s["hp"]["lr"] <= 1e-1 for s in suggested)
    assert search.suggest("t6") == Searcher.FINISHED


def test_points_with_budgets_of_their_own_end_in_turn():
    search = _search(["dlm-a", "ar-a"], samples={"dlm-a": 1, "ar-a": 3})
    assert search.trials == 4
    suggested = [search.suggest(f"t{i}")["trial"] for i in range(4)]
    assert suggested == ["dlm-a", "ar-a", "ar-a", "ar-a"]
    assert search.suggest("t4") == Searcher.FINISHED


def test_a_points_sampler_learns_only_from_its_own_trials():
    search = _search(["dlm-a", "ar-a"], samples=2)
    first = [search.suggest(f"t{i}") for i in range(2)]
    search.on_trial_complete("t0", {"val_loss": 3.0, "training_iteration": 1})
    search.on_trial_complete("t1", {"val_loss": 1.0, "training_iteration": 1})
    studies = {p: s._ot_study for p, s in search._searchers.items()}
    values = {p: [t.value for t in study.trials if t.value is not None]
              for p, study in studies.items()}
    assert values == {"dlm-a": [3.0], "ar-a": [1.0]}
    assert first[0]["trial"] == "dlm-a" and first[1]["trial"] == "ar-a"


def test_a_point_samples_the_same_values_whatever_points_surround_it():
    alone = _search(["dlm-a"], samples=2)
    together = _search(["ar-b", "dlm-a", "ar-a"], samples=2)
    mine = [alone.suggest(f"a{i}")["hp"]["lr"] for i in range(2)]
    theirs = [s["hp"]["lr"] for s in (together.suggest(f"b{i}") for i in range(6))
              if s["trial"] == "dlm-a"]
    assert mine == theirs
    other = [together._searchers["ar-a"]._ot_study.trials[i].params["hp/lr"] for i in range(2)]
    assert other != mine  # another point, another sampler


def test_the_search_survives_a_save_and_restore(tmp_path):
    search = _search(["dlm-a", "ar-a"], samples=2)
    search.suggest("t0")
    search.on_trial_complete("t0", {"val_loss": 2.0, "training_iteration": 1})
    search.save(str(tmp_path / "searcher.pkl"))
    restored = PerPointSearch({"dlm-a": 2, "ar-a": 2}, "val_loss", "min", 0)
    restored.restore(str(tmp_path / "searcher.pkl"))
    assert [restored.suggest(f"t{i}")["trial"] for i in (1, 2, 3)] == ["ar-a", "dlm-a", "ar-a"]
    assert restored.suggest("t4") == Searcher.FINISHED


@dataclass
class _Trial:
    """What a scheduler reads of Tune's trial: its id and config."""

    trial_id: str
    config: dict = field(default_factory=dict)


def _report(scheduler, trial, step, loss) -> str:
    return scheduler.on_trial_result(None, trial, {"step": step, "val_loss": loss})


def _trials():
    # Two DLM trials at one point, two AR trials (losses three times lower) at another.
    return ([_Trial(f"d{i}", {"trial": f"dlm-{i}"}) for i in range(2)],
            [_Trial(f"a{i}", {"trial": f"ar-{i}"}) for i in range(2)])


def test_asha_compares_a_trial_only_with_its_own_points_trials():
    dlm, ar = _trials()
    point_of_trial = {"dlm-0": "dlm", "dlm-1": "dlm", "ar-0": "ar", "ar-1": "ar"}
    per_point = PerPointASHA(point_of_trial, {"dlm": 100, "ar": 100}, grace_steps=10,
                             reduction_factor=2, metric="val_loss", mode="min")
    for trial in ar + dlm:
        per_point.on_trial_add(None, trial)
    assert _report(per_point, ar[0], 10, 1.0) == TrialScheduler.CONTINUE
    assert _report(per_point, ar[1], 10, 1.2) == TrialScheduler.STOP  # worse than its peer
    assert _report(per_point, dlm[0], 10, 3.0) == TrialScheduler.CONTINUE
    assert _report(per_point, dlm[1], 10, 2.9) == TrialScheduler.CONTINUE

    # One ASHA over both points stops the DLM trials for losses no AR trial can be held to.
    pooled = ASHAScheduler(time_attr="step", metric="val_loss", mode="min", grace_period=10,
                           max_t=100, reduction_factor=2)
    for trial in ar + dlm:
        pooled.on_trial_add(None, trial)
    _report(pooled, ar[0], 10, 1.0)
    _report(pooled, ar[1], 10, 1.2)
    assert _report(pooled, dlm[0], 10, 3.0) == TrialScheduler.STOP


def test_each_points_asha_ends_at_that_points_last_step():
    dlm, ar = _trials()
    point_of_trial = {"dlm-0": "short", "dlm-1": "short", "ar-0": "long", "ar-1": "long"}
    scheduler = PerPointASHA(point_of_trial, {"short": 40, "long": 160}, grace_steps=10,
                             reduction_factor=4, metric="val_loss", mode="min")
    for trial in ar + dlm:
        scheduler.on_trial_add(None, trial)
    short = scheduler._schedulers["short"]._brackets[0]
    long = scheduler._schedulers["long"]._brackets[0]
    assert [r[0] for r in short._rungs] == [40, 10]
    assert [r[0] for r in long._rungs] == [160, 40, 10]


def test_grid_values_share_a_point_and_objectives_and_budgets_do_not():
    from quokka_ray.sweep.loader import load_plan
    from quokka_ray.sweep.per_point import study_point
    from tests.conftest import EXPERIMENTS, REPO

    _, grid = load_plan(EXPERIMENTS / "tiny_asha.py")  # six learning rates of one model
    assert len(grid) == 6 and len({study_point(t) for t in grid}) == 1
    _, transfer = load_plan(REPO / "experiments" / "transfer_ar_dlm.py")
    assert len({study_point(t) for t in transfer}) == len(transfer) == 4  # 2 kinds x 2 budgets
