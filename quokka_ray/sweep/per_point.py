"""Search and early stopping that stay within one study point. A sweep of several points
(budgets, sizes, objectives) runs one Optuna search per point, each with its own budget of
trials, and one ASHA per point: no point's runs are ranked against another's, which would
compare a DLM's loss with an AR model's, or a short run's loss with a long run's."""

from __future__ import annotations

import pickle
import zlib
from collections.abc import Hashable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler
from ray.tune.search import Searcher
from ray.tune.search.optuna import OptunaSearch

from quokka_ray.sweep.grid import TrialSpec, steps_range
from quokka_ray.sweep.spec import Experiment


def study_point(spec: TrialSpec) -> Hashable:
    """What a trial's runs are compared within: its objective, model size, training tokens
    and unique tokens; grid values of its hyperparameters vary inside one point."""
    return spec.objective, spec.non_embedding_params, spec.target_tokens, spec.unique_tokens


class _SavesItsState:
    """Tune saves a sweep's searcher and scheduler with the sweep, and restores them when it
    resumes: their whole state, each point's included."""

    def save(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "wb") as f:
            pickle.dump(self.__dict__, f)

    def restore(self, checkpoint_path: str) -> None:
        with open(checkpoint_path, "rb") as f:
            self.__dict__.update(pickle.load(f))


class PerPointSearch(_SavesItsState, Searcher):
    """One seeded Optuna TPE search per study point, `trials_per_point[point]` trials each.
    Tune asks for trials one at a time; they go to the point with the fewest so far (of those
    with trials left), so each point's sampler has seen its earlier trials' results before it
    samples again."""

    def __init__(self, trials_per_point: dict[str, int], metric: str, mode: str, seed: int):
        super().__init__(metric=metric, mode=mode)
        self.trials_per_point = dict(trials_per_point)
        # Each point's sampler has a seed of its own, fixed by the point's name, so that a
        # point samples the same values whatever other points the sweep has.
        self._searchers = {p: OptunaSearch(metric=metric, mode=mode,
                                           seed=(seed + zlib.crc32(p.encode())) % 2**31)
                           for p in self.trials_per_point}
        self._issued = dict.fromkeys(self.trials_per_point, 0)
        self._owner: dict[str, str] = {}

    @property
    def trials(self) -> int:
        """Trials of every point together."""
        return sum(self.trials_per_point.values())

    def set_search_properties(self, metric, mode, config, **spec) -> bool:
        return all(s.set_search_properties(metric, mode, config, **spec)
                   for s in self._searchers.values())

    def suggest(self, trial_id: str):
        open_points = [p for p, n in self.trials_per_point.items() if self._issued[p] < n]
        if not open_points:
            return Searcher.FINISHED
        point = min(open_points, key=lambda p: self._issued[p])
        config = self._searchers[point].suggest(trial_id)
        if config is None or config == Searcher.FINISHED:
            return config
        self._issued[point] += 1
        self._owner[trial_id] = point
        return {**config, "trial": point}

    def on_trial_result(self, trial_id: str, result: dict) -> None:
        if trial_id in self._owner:
            self._searchers[self._owner[trial_id]].on_trial_result(trial_id, result)

    def on_trial_complete(self, trial_id: str, result: dict | None = None,
                          error: bool = False) -> None:
        if trial_id in self._owner:
            self._searchers[self._owner[trial_id]].on_trial_complete(trial_id, result, error)


class PerPointASHA(_SavesItsState, FIFOScheduler):
    """ASHA run separately for each study point: its rungs start at `grace_steps` and end at
    the point's own last step, and a trial is only ever compared with its point's others."""

    def __init__(self, point_of_trial: dict[str, Hashable], steps_of_point: dict[Hashable, int],
                 grace_steps: int, reduction_factor: float, metric: str, mode: str):
        super().__init__()
        self._metric = metric
        self._point_of_trial = point_of_trial
        self._schedulers = {
            point: ASHAScheduler(time_attr="step", metric=metric, mode=mode,
                                 grace_period=grace_steps, max_t=max_t,
                                 reduction_factor=reduction_factor)
            for point, max_t in steps_of_point.items()}

    @classmethod
    def for_plan(cls, experiment: Experiment, trials: list[TrialSpec], grace_steps: int):
        """One ASHA per study point of the plan, each ending at its point's longest run."""
        points: dict[Hashable, list[TrialSpec]] = {}
        for spec in trials:
            points.setdefault(study_point(spec), []).append(spec)
        search = experiment.search
        return cls({spec.name: point for point, specs in points.items() for spec in specs},
                   {point: steps_range(specs, experiment)[1] for point, specs in points.items()},
                   grace_steps, search.reduction_factor, search.metric, search.mode)

    def _scheduler(self, trial) -> ASHAScheduler:
        return self._schedulers[self._point_of_trial[trial.config["trial"]]]

    def set_search_properties(self, metric, mode, **spec) -> bool:
        return True  # every point's scheduler was given the sweep's metric and mode

    def on_trial_add(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_add(tune_controller, trial)

    def on_trial_error(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_error(tune_controller, trial)

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        return self._scheduler(trial).on_trial_result(tune_controller, trial, result)

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._scheduler(trial).on_trial_complete(tune_controller, trial, result)

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._scheduler(trial).on_trial_remove(tune_controller, trial)

    def debug_string(self) -> str:
        stopped = sum(s._num_stopped for s in self._schedulers.values())
        return f"ASHA per study point ({len(self._schedulers)} points): {stopped} stopped"

