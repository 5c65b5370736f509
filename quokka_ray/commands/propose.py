"""`quokka fit EXPERIMENT --propose BUDGET`: an experiment file per objective for the run its
fitted law predicts to be compute-optimal at BUDGET FLOPs.

The law gives N_opt (laws/proposal.py); the sizing rule picks the model for it
(`quokka_ray.model.size_model`) and D = BUDGET / (6 N) is rounded to whole batches, and the
law's predicted final loss for that very run, with its interval, goes into the file as its
`Prediction`. Everything else is the fitted experiment's: its data, the objective, its
hyperparameters (search spaces included), evaluation, resources, search, seed and storage,
written out as literal Python so that the file stands on its own. The one change: a run that
would see a token twice gets a larger `max_corpus_bytes`, since the compute-constrained laws
assume fresh data. Once written, the file is loaded and planned again and its settings are
checked against the fitted experiment's, so that a proposal trains what was fitted and
nothing else.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from quokka_ray.config import ConfigError
from quokka_ray.data import read_manifest, with_root
from quokka_ray.diffusion import ObjectiveConfig
from quokka_ray.laws.proposal import ComputeOptimalProposal, SizedRun
from quokka_ray.laws.selection import Objective
from quokka_ray.model import non_embedding_params, size_model
from quokka_ray.sweep.checks import Corpus, corpus_from_manifest
from quokka_ray.sweep.grid import vocab_size
from quokka_ray.sweep.identity import canonical
from quokka_ray.sweep.loader import load_plan
from quokka_ray.sweep.spec import Experiment, FixedStudy, Prediction

from .render import Source

#: Headroom on the corpus a proposal asks for: packing and the validation documents held out
#: make the training tokens per byte vary a little.
CORPUS_MARGIN = 1.05
# The fields a proposal copies from the fitted experiment: all but its own (a field added to
# Experiment later is copied too, so that a proposal never drops a setting).
OWN_FIELDS = ("study", "objectives", "data", "name", "prediction")
COPIED_FIELDS = tuple(f.name for f in dataclasses.fields(Experiment) if f.name not in OWN_FIELDS)


@dataclass(frozen=True)
class ProposalTarget:
    """Where one objective's proposal goes."""

    label: str
    """The objective's label in the report (laws.selection.Objective.label)."""
    objective: ObjectiveConfig
    name: str
    """The proposed experiment's name: `<fitted>-proposal-<budget>[-<objective>]`."""
    path: Path


def objective_label(objective: ObjectiveConfig) -> str:
    """The label the report gives runs of this objective (their MLflow params name it)."""
    if objective.kind == "ar":
        return Objective("ar").label
    return Objective(objective.kind, objective.kernel, objective.schedule, objective.loss,
                     objective.timesteps).label


def budget_tag(budget_flops: float) -> str:
    """3e12 -> '3e12', 1.5e12 -> '1.5e12', 6e9 -> '6e9': a budget as a name may hold it."""
    text = f"{budget_flops:.3g}"
    if "e" not in text:
        return text
    mantissa, exponent = text.split("e")
    return f"{mantissa}e{int(exponent)}"


def proposal_targets(experiment: Experiment, budget_flops: float, out_dir: Path,
                     out_path: Path | None = None) -> dict[str, ProposalTarget]:
    """One target per objective; with several objectives each file and name carries its
    objective's label (a FixedStudy trains every objective at every point, and each objective
    has its own N_opt)."""
    base = f"{experiment.name}-proposal-{budget_tag(budget_flops)}"
    several = len(experiment.objectives) > 1
    targets = {}
    for objective in experiment.objectives:
        label = objective_label(objective)
        name = f"{base}-{label}" if several else base
        if out_path is None:
            path = out_dir / f"{name}.py"
        else:
            path = out_path.with_name(f"{out_path.stem}-{label}{out_path.suffix or '.py'}") \
                if several else out_path
        targets[label] = ProposalTarget(label, objective, name, Path(path).resolve())
    return targets


class Sizer:
    """The run that trains for a target N at a budget, for an objective (by its label): the
    sizing rule's model and D = C / (6 N) in whole global batches (when the batch size is not
    searched). Proposals size N_opt with it, and suggestions their candidates."""

    def __init__(self, experiment: Experiment):
        self.experiment = experiment
        self.objectives = {objective_label(o): o for o in experiment.objectives}
        self.vocab = vocab_size(experiment.data.tokenizer)

    def __call__(self, label: str, n_opt: float, budget_flops: float) -> SizedRun:
        objective = self.objectives.get(label)
        if objective is None:  # the runs' objective as MLflow recorded it is not in the file
            raise ValueError(f"objective {label!r} is not one of the experiment file's "
                             f"({', '.join(self.objectives)})")
        model = size_model(max(1, round(n_opt)), self.vocab, self.experiment.data.seq_len,
                           causal=objective.kind == "ar",
                           time_embedding=objective.needs_time_embedding)
        n = non_embedding_params(model)
        tokens = budget_flops / (6 * n)
        hyper, steps = self.experiment.hyperparameters, None
        if "batch_sequences" not in hyper.searched:
            batch = hyper.batch_sequences * self.experiment.data.seq_len
            steps = max(1, round(tokens / batch))
            tokens = steps * batch
        layers = f"{model.n_layers} layer{'s' if model.n_layers != 1 else ''}"
        return SizedRun(n, max(1, round(tokens)), f"{layers} x {model.d_model}", steps)


def fitted_corpus(experiment: Experiment) -> Corpus | None:
    """The fitted runs' corpus as its manifest describes it, where it lies (its cache_dir, or
    the experiment's storage path); None where it does not (not prepared here)."""
    try:
        manifest = read_manifest(with_root(experiment.data, experiment.storage_path))
    except OSError:
        return None
    return None if manifest is None else corpus_from_manifest(manifest)


def corpus_bytes_per_token(experiment: Experiment) -> float | None:
    """Text bytes read per training token of the fitted runs' corpus (see fitted_corpus)."""
    corpus = fitted_corpus(experiment)
    return None if corpus is None else corpus.bytes_per_token


def proposed_experiment(experiment: Experiment, target: ProposalTarget,
                        proposal: ComputeOptimalProposal, fitted_experiment: str,
                        unique_tokens: float | None,
                        bytes_per_token: float | None = None) -> tuple[Experiment, list[str]]:
    """The experiment a proposal trains, and notes on what differs from the fitted one.

    unique_tokens: U of the fitted runs; bytes_per_token: of their corpus (see
    corpus_bytes_per_token). A run longer than U gets the corpus `quokka run` would ask for
    (its own estimate, checks.check_corpus), and at least max_corpus_bytes scaled by D / U:
    a source read in whole documents gives more bytes than max_corpus_bytes."""
    run, notes = proposal.run, []
    data = experiment.data
    if unique_tokens and data.unique_tokens is None and run.tokens > unique_tokens:
        needed = math.ceil(CORPUS_MARGIN * max(run.tokens * (bytes_per_token or 0.0),
                                               data.max_corpus_bytes * run.tokens / unique_tokens))
        notes.append(f"max_corpus_bytes raised from {data.max_corpus_bytes:,} to {needed:,}: "
                     f"the run trains on {run.tokens:,} tokens and the fitted runs had "
                     f"{unique_tokens:,.0f} unique ones, and a compute-constrained run sees "
                     "each token once")
        data = dataclasses.replace(data, max_corpus_bytes=needed)
    prediction = Prediction(
        fitted_experiment=fitted_experiment, objective=target.label, law=proposal.law,
        budget_flops=float(proposal.budget_flops), n_opt=float(proposal.n_opt),
        d_opt=float(proposal.d_opt), non_embedding_params=int(run.non_embedding_params),
        tokens=int(run.tokens), final_loss=float(proposal.final_loss),
        n_opt_interval=_floats(proposal.n_opt_interval),
        final_loss_interval=_floats(proposal.final_loss_interval),
        confidence=float(proposal.confidence))
    proposed = Experiment(
        study=FixedStudy(model_sizes=[int(run.non_embedding_params)], tokens=[int(run.tokens)]),
        objectives=[target.objective], data=data, name=target.name, prediction=prediction,
        **{name: getattr(experiment, name) for name in COPIED_FIELDS})
    return proposed, notes


def _floats(span: tuple[float, float] | None) -> tuple[float, float] | None:
    return None if span is None else (float(span[0]), float(span[1]))


def render_experiment(proposed: Experiment, proposal: ComputeOptimalProposal, command: str,
                      notes: list[str]) -> str:
    """The experiment file's text: a docstring saying where it comes from, then the code."""
    run, pct = proposal.run, f"{proposal.confidence:.0%}"
    n_ci = (f" ({pct} CI {proposal.n_opt_interval[0]:.4g} - {proposal.n_opt_interval[1]:.4g})"
            if proposal.n_opt_interval else "")
    loss_ci = (f" ({pct} prediction interval {proposal.final_loss_interval[0]:.4f} - "
               f"{proposal.final_loss_interval[1]:.4f})" if proposal.final_loss_interval
               else " (no interval: the bootstrap gave no spread)")
    return experiment_module(proposed, [
        f"Proposed by `{command}`: the run that the {proposal.law} law of objective",
        f"`{proposal.objective}`, fitted on {proposal.fitted_runs} runs of experiment "
        f"{proposed.prediction.fitted_experiment!r}, predicts",
        f"to be compute-optimal at C = {proposal.budget_flops:.4g} FLOPs "
        f"({proposal.extrapolation:.3g}x the largest compute fitted).",
        "",
        f"    N_opt = {proposal.n_opt:.4g}{n_ci}, D_opt = {proposal.d_opt:.4g} tokens",
        f"    run:  {run.shape}, N = {run.non_embedding_params:,} non-embedding parameters, "
        f"D = {run.tokens:,} tokens,",
        f"          C = 6ND = {6.0 * run.non_embedding_params * run.tokens:.4g} FLOPs",
        f"    predicted final loss {proposal.final_loss:.4f}{loss_ci}",
        "",
        "Data, objective, hyperparameters, evaluation, resources, search and seed are the "
        "fitted",
        "experiment's" + ("." if not notes else ", except:"),
        *[f"- {note}" for note in notes],
        "",
        "    quokka run <this file>",
        "    quokka fit <this file>    # the prediction beside the actual final loss",
    ])


def experiment_module(experiment: Experiment, docstring: list[str]) -> str:
    """An experiment file's text: the docstring's lines, then the imports and `experiment =
    ...` as literal Python that rebuilds `experiment` (commands/render.py)."""
    source = Source()
    body = source.call(experiment, "Experiment", wrap=True)
    lines = ['"""' + docstring[0], *docstring[1:], '"""', ""]
    if source.uses_tune:
        lines += ["from ray import tune", ""]
    lines += ["from quokka_ray.sweep import (",
              *[f"    {name}," for name in sorted(source.classes)], ")", "",
              f"experiment = {body}", ""]
    return "\n".join(lines)


def write_proposal(experiment: Experiment, target: ProposalTarget,
                   proposal: ComputeOptimalProposal, *, command: str,
                   unique_tokens: float | None = None) -> Path:
    """Write the proposal's experiment file and check it plans the run it was written for."""
    proposed, notes = proposed_experiment(experiment, target, proposal, experiment.name,
                                          unique_tokens, corpus_bytes_per_token(experiment))
    target.path.parent.mkdir(parents=True, exist_ok=True)
    target.path.write_text(render_experiment(proposed, proposal, command, notes))
    check_proposal(target.path, proposed, proposal)
    return target.path


def check_proposal(path: Path, proposed: Experiment, proposal: ComputeOptimalProposal) -> None:
    """Load and plan the written file: it must be the experiment meant, and its trials must
    train the proposed N and D."""
    try:
        loaded, trials = load_plan(path)
    except ConfigError as err:
        raise ConfigError(f"the proposal does not plan: {err}") from None
    for name in (*OWN_FIELDS, *COPIED_FIELDS):
        if canonical(getattr(loaded, name)) != canonical(getattr(proposed, name)):
            raise ConfigError(f"{path}: the written experiment's {name} differs from the "
                              "fitted experiment's")
    run = proposal.run
    for trial in trials:
        if trial.non_embedding_params != run.non_embedding_params or (
                trial.tokens is not None and trial.tokens != run.tokens):
            raise ConfigError(
                f"{path}: trial {trial.name} trains N = {trial.non_embedding_params:,}, "
                f"D = {trial.tokens}, not the proposed N = {run.non_embedding_params:,}, "
                f"D = {run.tokens:,}")
