"""`quokka fit EXPERIMENT --suggest COUNT --target FLOPS`: the runs laws/suggest.py ranks, as
the fitted IsoFLOP study's own plan would train them, written out as experiment files.

A candidate (N at budget C) is sized and checked by the code `quokka plan` runs: the fitted
experiment with its study cut down to that budget and size is planned (plan_trials,
check_plan), so the run has the model, tokens and steps its own sweep would give it, and a
size that study would leave out (fewer than min_steps steps, tokens per parameter outside
tokens_per_param, a budget missed by more than budget_tolerance) is left out with that check
named; the check is found by planning again with all but one of those three relaxed. Then
the corpus: `quokka plan`'s check_corpus, against the fitted runs' prepared corpus, refuses
a run that would see a token twice and names the max_corpus_bytes that would hold it.

The runs suggested at one budget are written as one experiment file (the fitted study at
that budget and those sizes, everything else the fitted experiment's), which is loaded,
planned and checked again: it must train exactly the runs suggested, on the corpus it has.
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

from quokka_ray.config import ConfigError
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.laws.proposal import SizedRun
from quokka_ray.laws.suggest import Refusal, SuggestionPlan
from quokka_ray.sweep.checks import Corpus, check_corpus, check_plan
from quokka_ray.sweep.grid import TrialSpec, plan_trials, train_config
from quokka_ray.sweep.identity import canonical
from quokka_ray.sweep.loader import load_plan
from quokka_ray.sweep.spec import Experiment, IsoFlopStudy

from .propose import (
    COPIED_FIELDS,
    OWN_FIELDS,
    Sizer,
    budget_tag,
    experiment_module,
    objective_label,
)

#: The study's checks of a size at a budget, and the setting that switches each off, so that
#: planning with all but one switched off says which one a size fails.
RELAXED = {"min_steps": {"min_steps": 1}, "tokens_per_param": {"tokens_per_param": None},
           "budget_tolerance": {"budget_tolerance": 0.999}}


def study_at(experiment: Experiment, objective: ObjectiveConfig, budget_flops: float,
             sizes: list[int], name: str | None = None, **relaxed) -> Experiment:
    """The fitted experiment with its IsoFlopStudy cut down to one budget and these target
    sizes, for one objective; `relaxed`: study fields to override."""
    study = dataclasses.replace(experiment.study, budgets_flops=[float(budget_flops)],
                                model_sizes=list(sizes), **relaxed)
    return dataclasses.replace(experiment, study=study, objectives=[objective],
                               name=name or experiment.name, prediction=None)


def objective_of(experiment: Experiment, label: str) -> ObjectiveConfig:
    """The experiment's objective of a report label."""
    for objective in experiment.objectives:
        if objective_label(objective) == label:
            return objective
    raise ValueError(f"objective {label!r} is not one of the experiment file's")


class StudyRuns:
    """The run the fitted IsoFLOP study would train for a candidate (size), and why it cannot
    be run as the study's own runs are (screen): SuggestRequest.size and .screen."""

    def __init__(self, experiment: Experiment, corpus: Corpus | None):
        if not isinstance(experiment.study, IsoFlopStudy):
            raise ValueError(f"suggestions are runs of an IsoFlopStudy, not of a "
                             f"{type(experiment.study).__name__}")
        self.experiment, self.corpus = experiment, corpus
        self.sizer = Sizer(experiment)
        self._planned: dict[tuple, tuple[list[TrialSpec] | None, str]] = {}

    def _plan(self, label: str, n: float, budget: float, relax: tuple[str, ...] = ()
              ) -> tuple[list[TrialSpec] | None, str]:
        """The trials of the study cut down to (n, budget) with the checks in `relax` switched
        off, or None and the plan's refusal."""
        key = (label, round(n), float(budget), relax)
        if key not in self._planned:
            changes = {k: v for check in relax for k, v in RELAXED[check].items()}
            experiment = study_at(self.experiment, objective_of(self.experiment, label),
                                  budget, [round(n)], **changes)
            try:
                trials = plan_trials(experiment)
                check_plan(experiment, trials)
                self._planned[key] = (trials, "")
            except ConfigError as err:
                self._planned[key] = (None, str(err))
        return self._planned[key]

    def size(self, label: str, n: float, budget: float) -> SizedRun:
        """The run the study's plan trains for target n at the budget (its checks switched off,
        so that a run left out still has its tokens and steps); the sizing rule's where even
        that plan refuses it."""
        trials, _ = self._plan(label, n, budget, tuple(RELAXED))
        if not trials:
            return self.sizer(label, n, budget)
        trial = trials[0]
        steps = (train_config(trial, self.experiment).total_steps
                 if trial.tokens is not None else None)
        model = trial.model
        layers = f"{model.n_layers} layer{'s' if model.n_layers != 1 else ''}"
        return SizedRun(trial.non_embedding_params,
                        trial.tokens if trial.tokens is not None else trial.target_tokens,
                        f"{layers} x {model.d_model}", steps)

    def screen(self, label: str, n: float, budget: float) -> Refusal | None:
        """Why the study's plan would not train the run, or would train it on repeated data."""
        trials, refused = self._plan(label, n, budget)
        if trials is None:
            return self._why(label, n, budget, refused)
        if self.corpus is not None:
            experiment = study_at(self.experiment, objective_of(self.experiment, label),
                                  budget, [round(n)])
            try:
                check_corpus(experiment, trials, self.corpus)
            except ConfigError as err:
                return Refusal("corpus", str(err))
        return None

    def _why(self, label: str, n: float, budget: float, refused: str) -> Refusal:
        """Which of the study's checks the size fails at the budget: each check alone, the
        others switched off."""
        run = self.size(label, n, budget)
        study = self.experiment.study
        failed = [check for check in RELAXED
                  if self._plan(label, n, budget, tuple(c for c in RELAXED if c != check))[0]
                  is None]
        words = {
            "min_steps": f"{run.steps} optimizer steps, fewer than the study's min_steps "
                         f"({study.min_steps})",
            "tokens_per_param": f"{run.tokens / run.non_embedding_params:.3g} tokens per "
                                "parameter, outside the study's tokens_per_param "
                                f"{study.tokens_per_param}",
            "budget_tolerance": f"{run.tokens:,} tokens (whole batches) miss the budget by more "
                                f"than the study's budget_tolerance ({study.budget_tolerance:.0%})",
        }
        if not failed:
            return Refusal("plan", refused)
        return Refusal(failed[0], "; ".join(words[check] for check in failed))


def suggestion_name(experiment: Experiment, label: str, target_flops: float,
                    budget_flops: float) -> str:
    """`<fitted>-suggested-<target>-C<budget>[-<objective>]`."""
    name = f"{experiment.name}-suggested-{budget_tag(target_flops)}-C{budget_tag(budget_flops)}"
    return f"{name}-{label}" if len(experiment.objectives) > 1 else name


def suggestion_path(experiment: Experiment, label: str, target_flops: float,
                    budget_flops: float, out_dir: Path) -> Path:
    return (Path(out_dir) / f"{suggestion_name(experiment, label, target_flops, budget_flops)}"
            ".py").resolve()


def write_suggestions(experiment: Experiment, label: str, plan: SuggestionPlan, *,
                      command: str, out_dir: Path, corpus: Corpus | None) -> list[Path]:
    """One experiment file per budget of the runs suggested for objective `label`, each
    checked by planning it (check_suggestion); the paths, in rank order of their budgets."""
    budgets = list(dict.fromkeys(r.budget_flops for r in plan.runs))
    paths = []
    for budget in budgets:
        runs = [r for r in plan.runs if r.budget_flops == budget]
        path = suggestion_path(experiment, label, plan.target_flops, budget, out_dir)
        written = study_at(experiment, objective_of(experiment, label), budget,
                           sorted(round(r.non_embedding_params) for r in runs), name=path.stem)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(experiment_module(written, _docstring(
            experiment, label, plan, runs, budget, command)))
        check_suggestion(path, written, runs, corpus)
        paths.append(path)
    return paths


def _docstring(experiment: Experiment, label: str, plan: SuggestionPlan, runs: list,
               budget: float, command: str) -> list[str]:
    name = "N_opt" if plan.quantity == "n_opt" else "L_opt (the loss at the optimum)"
    pct = f"{plan.confidence:.0%}"
    now = (f"{pct} CI {plan.interval[0]:.4g} - {plan.interval[1]:.4g}" if plan.interval
           else "no bootstrap interval")
    after = plan.interval_after
    lines = [
        f"Suggested by `{command}`:",
        f"the runs at C = {budget:.4g} FLOPs of the {len(plan.runs)} that the IsoFLOP law of "
        f"objective `{label}`,",
        f"fitted on experiment {experiment.name!r}, expects to narrow the interval of {name} at "
        f"C = {plan.target_flops:.4g} FLOPs the most",
        f"(now {plan.estimate:.4g}, {now}"
        + (f"; after all {len(plan.runs)} runs about {after[0]:.4g} - {after[1]:.4g}"
           if after and plan.interval else "") + ").",
        "",
        f"    {'rank':>4} {'N':>12} {'D tokens':>12} {'budget':>9} {'narrowing':>9}",
        *[f"    {r.rank:>4} {r.non_embedding_params:>12,.0f} {r.tokens:>12,.0f} {r.budget:>9} "
          f"{r.narrowing:>9.1%}" for r in runs],
        "",
        "The study is the fitted IsoFlopStudy at this budget and these sizes (its min_steps,",
        "tokens_per_param and budget_tolerance kept); data, objective, hyperparameters,",
        "evaluation, resources, search and seed are the fitted experiment's. Its runs are an",
        "experiment of their own: `quokka fit` of the fitted experiment does not count them.",
        "",
        "    quokka plan <this file>",
        "    quokka run <this file>",
    ]
    return lines


def check_suggestion(path: Path, written: Experiment, runs: list,
                     corpus: Corpus | None) -> None:
    """Load and plan the written file: it must be the experiment meant, its trials must train
    exactly the suggested runs (N, D at the budget), and none may repeat data."""
    try:
        loaded, trials = load_plan(path)
        if corpus is not None:
            check_corpus(loaded, trials, corpus)
    except ConfigError as err:
        raise ConfigError(f"the suggestion does not plan: {err}") from None
    for name in (*OWN_FIELDS, *COPIED_FIELDS):
        if canonical(getattr(loaded, name)) != canonical(getattr(written, name)):
            raise ConfigError(f"{path}: the written experiment's {name} differs from the "
                              "one meant")
    wanted = {(round(r.non_embedding_params), round(r.tokens)) for r in runs}
    budget = runs[0].budget_flops
    planned = set()
    for trial in trials:
        tokens = trial.tokens if trial.tokens is not None else trial.target_tokens
        planned.add((trial.non_embedding_params, tokens))
        if not math.isclose(trial.budget_flops, budget, rel_tol=1e-9):
            raise ConfigError(f"{path}: trial {trial.name} trains budget "
                              f"{trial.budget_flops:.4g}, not {budget:.4g}")
    if planned != wanted:
        raise ConfigError(f"{path}: the plan trains (N, D) {sorted(planned)}, not the "
                          f"suggested {sorted(wanted)}")
