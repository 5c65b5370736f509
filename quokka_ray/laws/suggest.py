"""Where to measure next: the runs whose results would most narrow the interval of an IsoFLOP
law's extrapolation to a target budget, N_opt(C*) or the loss at the optimum L_opt(C*).

The estimate at the target is a weighted sum of the budgets' vertices (the power law is a least
squares line through them in log C), and each vertex is a function of its budget's parabola
coefficients, which a new run at that budget refines. So, linearising the vertex in the
coefficients (the delta method),

    Var(ln N_opt(C*)) = sigma^2 sum_b w_b^2 g_b' (X_b' X_b)^-1 g_b

where X_b is budget b's design (rows [x^2, x, 1], x = ln N of its runs), g_b the gradient of
its vertex in its coefficients and w_b its weight in the line's prediction at C*. Adding a run
adds a row to one X_b (or a budget to the line), and the new variance needs no result: a
run's value lies in where it is, not in what it will measure. The gradients do depend on the
true parabolas, which are uncertain, so the width is averaged over the bootstrap replicates'
laws (a pseudo-Bayesian design): each replicate's parabolas at the budgets it fitted, and its
IsoFLOP surface (surface.py) at budgets it did not. sigma, the run-to-run noise, scales every
width alike, so it does not change the ranking; the narrowing is reported as a share of the
width now.

Candidates are the sizes of the sweep's own size ladder (its sizes, one step beyond each end,
and as far as a predicted vertex needs), at each budget measured and at the next budget of the
ladder of budgets. A budget without a vertex (a new budget, or one the fit left out) counts
once it has 3 sizes around the vertex its surface predicts: the runs it needs are suggested
together, as one move, and their narrowing is shared among them. Moves are chosen greedily, by
narrowing per run, so each row's narrowing is what it adds to the rows above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from .bootstrap import CONFIDENCE, percentile_interval
from .budgets import budget_labels
from .errors import LawInputError
from .isoflop import IsoFlopFit
from .markdown import fmt, table
from .proposal import Sizer
from .surface import IsoFlopSurface, residual_sd

if TYPE_CHECKING:
    from .sections import ObjectiveSection

#: What --suggest-for may name: N_opt at the target, or the loss at the target's optimum.
QUANTITIES = ("n_opt", "loss")
#: Most ladder steps beyond the sizes run that a candidate may lie: further out, the value of a
#: run rests on a parabola trusted far from where it was measured (and a degenerate law can put
#: a vertex absurdly far away; such a budget is not completed).
MAX_EXTRA_STEPS = 2
# Two ln N closer than this are one size.
_SAME_SIZE = 1e-6


@dataclass(frozen=True)
class SuggestRequest:
    """`quokka fit --suggest COUNT --target TARGET_FLOPS [--suggest-for QUANTITY]`."""

    count: int
    target_flops: float
    quantity: str = "n_opt"
    size: Sizer | None = None
    """The run that would train for a candidate N at a budget (the sizing rule's model and its
    tokens in whole batches), so that candidates are models that can be built; None: the
    ladder's N and D = C / (6 N) as they are."""
    min_steps: int = 1
    """Candidates that `size` says would train fewer optimizer steps are left out (the
    IsoFLOP study's own min_steps: a run of a few steps measures its warmup)."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise LawInputError(f"suggest: count must be at least 1, got {self.count}")
        if not (math.isfinite(self.target_flops) and self.target_flops > 0):
            raise LawInputError(f"suggest: target must be positive FLOPs, got {self.target_flops}")
        if self.quantity not in QUANTITIES:
            raise LawInputError(f"suggest: quantity must be one of {', '.join(QUANTITIES)}, "
                                f"got {self.quantity!r}")


@dataclass(frozen=True)
class SuggestedRun:
    """One suggested run: N non-embedding parameters, D = C / (6 N) tokens."""

    rank: int
    non_embedding_params: float
    tokens: float
    budget_flops: float
    budget: str
    """'measured', 'left out' (a budget the fit had no vertex for) or 'new'."""
    move: int
    """Runs that only count together (the 3 sizes a budget needs for a vertex) share a move."""
    narrowing: float
    """Expected narrowing this run adds to the rows above it, as a share of the width now
    (a move's narrowing is shared evenly among its runs)."""
    cumulative: float
    """Expected narrowing after this row's move and every row above it."""


@dataclass(frozen=True)
class SuggestionPlan:
    """The runs to measure next for one objective's IsoFLOP law, best first."""

    quantity: str
    target_flops: float
    estimate: float
    """The quantity at the target under the fitted law (parameters, or nats/token)."""
    interval: tuple[float, float] | None
    """Its bootstrap interval now (None without bootstrap replicates)."""
    runs: list[SuggestedRun]
    replicates: int
    """Laws the expected width is averaged over (bootstrap replicates, or the fit alone)."""
    candidates: int
    """Single runs considered."""
    residual_sd: float
    """Run-to-run noise of the fitted runs about their parabolas (nan: no spare runs)."""
    confidence: float = CONFIDENCE
    notes: list[str] = field(default_factory=list)
    pool: list[tuple[float, float]] = field(default_factory=list, repr=False)
    """Every single candidate as (budget FLOPs, N)."""

    def interval_after(self) -> tuple[float, float] | None:
        """The interval now, narrowed (in log space, about the estimate) by the expected
        narrowing of all the runs suggested."""
        if self.interval is None or not self.runs:
            return self.interval
        keep = 1.0 - self.runs[-1].cumulative
        lo, hi = self.interval
        return (self.estimate * (lo / self.estimate) ** keep,
                self.estimate * (hi / self.estimate) ** keep)


@dataclass
class _Budget:
    C: float
    centre: float  # x values are centred here, so the normal equations keep their digits
    xs: list[float]
    kept: bool  # the fit found its vertex
    status: str
    coef: np.ndarray  # (replicates, 3): the true parabola (centred) under each replicate's law
    vertex: float  # ln N_opt(C) under the fitted law
    added: int = 0  # suggested runs so far

    def copy(self) -> _Budget:
        return _Budget(self.C, self.centre, list(self.xs), self.kept, self.status, self.coef,
                       self.vertex, self.added)

    def usable(self) -> bool:
        """Whether the budget has a vertex for the line: the fit found one, or (the surface
        expects) suggested runs give it 3 sizes around the predicted vertex. A budget the fit
        left out stays out until a run is added to it."""
        if self.kept:
            return True
        sizes = np.unique(np.round(self.xs, 6))
        return (self.added > 0 and sizes.size >= 3
                and sizes.min() <= self.vertex <= sizes.max())

    def has(self, x: float) -> bool:
        return any(abs(x - y) < _SAME_SIZE for y in self.xs)


def quantity_samples(fit: IsoFlopFit, C: float, quantity: str = "n_opt") -> np.ndarray:
    """The quantity at C under each bootstrap replicate's law (empty without bootstrap)."""
    surfaces = [IsoFlopSurface.from_parabolas(r) for r in fit.bootstrap_budgets]
    return np.array([_value(s, C, quantity) for s in surfaces], dtype=float)


def quantity_interval(fit: IsoFlopFit, C: float, quantity: str = "n_opt",
                      confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The bootstrap percentile interval of N_opt(C) (or L_opt(C)); None when the replicates
    do not vary (see bootstrap.percentile_interval)."""
    samples = quantity_samples(fit, C, quantity)
    return percentile_interval(samples[samples > 0], confidence)


def _value(surface: IsoFlopSurface, C: float, quantity: str) -> float:
    return surface.n_opt(C) if quantity == "n_opt" else surface.loss_opt(C)


def _centred(coefficients, centre: float) -> np.ndarray:
    """(c2, c1, c0) in x to the same parabola in x - centre."""
    c2, c1, c0 = coefficients
    return np.array([c2, c1 + 2 * c2 * centre, c2 * centre * centre + c1 * centre + c0])


def _gradients(coef: np.ndarray, quantity: str) -> np.ndarray:
    """d(vertex quantity)/d(c2, c1, c0) for each row of centred coefficients: of ln N_opt
    (x at the vertex) or of ln L_opt (the log of the loss there)."""
    c2, c1, c0 = coef[:, 0], coef[:, 1], coef[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        if quantity == "n_opt":  # x* = centre - c1 / (2 c2)
            return np.stack([c1 / (2 * c2**2), -1 / (2 * c2), np.zeros_like(c2)], axis=1)
        loss = c0 - c1**2 / (4 * c2)
        return np.stack([c1**2 / (4 * c2**2) / loss, -c1 / (2 * c2) / loss, 1 / loss], axis=1)


def _spread(budgets: list[_Budget], target: float, quantity: str) -> float:
    """Mean over replicates of the linearised sd of the quantity at the target (sigma = 1);
    inf when fewer than 2 budgets have a vertex."""
    usable = [b for b in budgets if b.usable()]
    if len(usable) < 2:
        return math.inf
    u = np.log([b.C for b in usable])
    du = u - u.mean()
    weights = 1.0 / len(usable) + du * (math.log(target) - u.mean()) / float(du @ du)
    variance = 0.0
    for w, b in zip(weights, usable, strict=True):
        x = np.asarray(b.xs) - b.centre
        design = np.stack([x * x, x, np.ones_like(x)], axis=1)
        inverse = np.linalg.inv(design.T @ design)
        g = _gradients(b.coef, quantity)
        variance = variance + w * w * np.einsum("ri,ij,rj->r", g, inverse, g)
    sd = np.sqrt(variance)
    sd = sd[np.isfinite(sd)]
    return float(sd.mean()) if sd.size else math.inf


def _ladder(xs: np.ndarray, reach: list[float]) -> tuple[np.ndarray, float]:
    """The sizes run (ln N) with the ladder's step continued one step beyond each end, and on
    to within one step past each ln N in `reach` (at most MAX_EXTRA_STEPS steps)."""
    sizes = np.unique(np.round(xs, 6))
    step = float(np.median(np.diff(sizes)))
    lo, hi = sizes.min(), sizes.max()
    below = max([1] + [math.ceil((lo - r) / step) + 1 for r in reach if r < lo])
    above = max([1] + [math.ceil((r - hi) / step) + 1 for r in reach if r > hi])
    below, above = min(below, MAX_EXTRA_STEPS), min(above, MAX_EXTRA_STEPS)
    extra = [lo - j * step for j in range(1, below + 1)] + [hi + j * step
                                                            for j in range(1, above + 1)]
    return np.sort(np.concatenate([sizes, extra])), step


def suggest_runs(fit: IsoFlopFit, C, N, loss, request: SuggestRequest, objective: str = "",
                 confidence: float = CONFIDENCE) -> SuggestionPlan:
    """Rank runs by how much they would narrow the interval of the quantity at the target.

    C, N, loss: the runs the IsoFLOP fit was fitted on (budget FLOPs, non-embedding
    parameters, final loss), so that each budget's design is known. objective: the label
    request.size is called with."""
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    ok = np.isfinite(C) & np.isfinite(N) & np.isfinite(loss) & (C > 0) & (N > 0)
    C, N, loss = C[ok], N[ok], loss[ok]
    target, quantity = request.target_flops, request.quantity
    point = IsoFlopSurface.from_parabolas(fit.budgets)
    replicates = list(fit.bootstrap_budgets) or [tuple(fit.budgets)]
    surfaces = [IsoFlopSurface.from_parabolas(r) for r in replicates]
    labels = budget_labels(C)
    measured = np.unique(labels)
    kept = {p.budget_flops: p for p in fit.budgets}
    step_c = float(np.mean(np.diff(np.log(measured)))) if measured.size > 1 else math.log(2)
    new_budget = float(measured.max() * math.exp(step_c))

    budgets: list[_Budget] = []
    for c in [*measured, new_budget]:
        xs = list(np.log(N[np.isclose(labels, c, rtol=1e-9)])) if c != new_budget else []
        vertex = float(np.log(point.n_opt(c)))
        centre = float(np.mean(xs)) if xs else vertex
        match = next((k for k in kept if math.isclose(k, c, rel_tol=1e-9)), None)
        if match is not None:
            rows = []
            for r in replicates:
                own = next((p for p in r if math.isclose(p.budget_flops, c, rel_tol=1e-9)),
                           kept[match])
                rows.append(_centred(own.coefficients, centre))
            coef, status = np.array(rows), "measured"
        else:
            coef = np.array([s.parabola(c, centre) for s in surfaces])
            status = "new" if c == new_budget else "left out"
        budgets.append(_Budget(float(c), centre, xs, match is not None, status, coef, vertex))

    ladder, step = _ladder(np.log(N), [b.vertex for b in budgets if not b.kept])
    if request.size is not None:  # only models the sizing rule builds
        built = [request.size(objective, math.exp(x), target).non_embedding_params
                 for x in ladder]
        ladder = np.unique(np.log(np.asarray(built, dtype=float)))
    singles = [(i, x) for i, b in enumerate(budgets) for x in ladder
               if not b.has(x) and _trains(request, objective, x, b.C)]
    now = _spread(budgets, target, quantity)
    notes = []
    if not math.isfinite(now) or now <= 0:
        raise LawInputError("the IsoFLOP fit gives no finite interval to narrow")

    chosen: list[SuggestedRun] = []
    current, state, move = now, [b.copy() for b in budgets], 0
    while len(chosen) < request.count:
        options = [[(i, x)] for i, x in singles if not state[i].has(x)]
        options += [m for i, b in enumerate(state) if not b.usable()
                    for m in _profiles(b, i, ladder, step)
                    if all(_trains(request, objective, x, b.C) for _, x in m)]
        best, best_gain, best_after = None, 0.0, current
        for runs in options:
            if len(runs) > request.count - len(chosen):
                continue
            trial = [b.copy() for b in state]
            for i, x in runs:
                trial[i].xs.append(x)
                trial[i].added += 1
            after = _spread(trial, target, quantity)
            gain = (current - after) / len(runs)
            cost = sum(state[i].C for i, _ in runs)
            if best is None or gain > best_gain * (1 + 1e-9) or (
                    math.isclose(gain, best_gain, rel_tol=1e-9)
                    and cost < sum(state[i].C for i, _ in best)):
                best, best_gain, best_after = runs, gain, after
        if best is None or best_gain <= 0:
            notes.append("No other candidate narrows the interval (the rest are run already, "
                         "or cannot give a budget 3 sizes around its vertex): fewer runs than "
                         "asked are suggested.")
            break
        move += 1
        for i, x in best:
            state[i].xs.append(x)
            state[i].added += 1
            b, n = state[i], math.exp(x)
            tokens = (b.C / (6 * n) if request.size is None
                      else request.size(objective, n, b.C).tokens)
            chosen.append(SuggestedRun(
                rank=len(chosen) + 1, non_embedding_params=n, tokens=tokens,
                budget_flops=b.C, budget=b.status, move=move,
                narrowing=best_gain / now, cumulative=1.0 - best_after / now))
        current = best_after

    sd, _ = residual_sd(fit.budgets, C, N, loss)
    return SuggestionPlan(
        quantity=quantity, target_flops=target, estimate=_value(point, target, quantity),
        interval=quantity_interval(fit, target, quantity, confidence), runs=chosen,
        replicates=len(surfaces), candidates=len(singles), residual_sd=sd,
        confidence=confidence, notes=notes,
        pool=[(budgets[i].C, math.exp(x)) for i, x in singles])


def _trains(request: SuggestRequest, objective: str, x: float, budget: float) -> bool:
    """Whether the run of ln N = x at the budget trains at least request.min_steps steps."""
    if request.size is None:
        return True
    steps = request.size(objective, math.exp(x), budget).steps
    return steps is None or steps >= request.min_steps


def _profiles(budget: _Budget, index: int, ladder: np.ndarray, step: float
              ) -> list[list[tuple[int, float]]]:
    """Moves that give a budget without a vertex 3 sizes around its predicted one: for each
    spread j, the ladder sizes nearest the vertex and j steps either side of it (a parabola
    through 3 close sizes has a poorly known vertex, one through far ones a biased one: the
    ranking chooses), less the sizes the budget has."""
    moves = []
    for j in range(1, ladder.size):
        if budget.vertex - j * step < ladder[0] and budget.vertex + j * step > ladder[-1]:
            break  # both ends snap to the ladder's ends from here on
        wanted = {float(ladder[np.argmin(np.abs(ladder - (budget.vertex + k * j * step)))])
                  for k in (-1, 0, 1)}
        runs = [(index, x) for x in sorted(wanted) if not budget.has(x)]
        trial = budget.copy()
        trial.xs += [x for _, x in runs]
        trial.added += len(runs)
        if len(runs) > 1 and trial.usable() and runs not in moves:
            moves.append(runs)
    return moves


def suggestion_section(k: ObjectiveSection, request: SuggestRequest) -> None:
    """The runs to measure next for one objective (an ObjectiveSection), kept in
    k.fits['suggestions']."""
    what = "N_opt" if request.quantity == "n_opt" else "L_opt (loss at the optimum)"
    k.md += [f"### Where to measure next: {what} at C = {fmt(request.target_flops)} FLOPs", ""]
    fit = k.fits.get("isoflop")
    if fit is None:
        k.skip("suggestions", "no IsoFLOP law was fitted: "
               + k.skipped.get("isoflop", "the IsoFLOP law was not requested"))
        return
    C, N, y = k.col("budget_flops"), k.col("non_embedding_params"), k.col("final_loss")
    on = np.isfinite(C) & np.isfinite(y)
    try:
        plan = suggest_runs(fit, C[on], N[on], y[on], request, k.label)
    except (LawInputError, ValueError, np.linalg.LinAlgError) as err:
        k.skip("suggestions", str(err))
        return
    unique = k.col("unique_tokens", "all")
    unique = float(np.nanmax(unique)) if np.isfinite(unique).any() else math.inf
    repeats = [str(r.rank) for r in plan.runs if r.tokens > unique]
    if repeats:  # a compute-constrained run must see each token once
        plan.notes.append(f"Run(s) {', '.join(repeats)} train on more tokens than the "
                          f"{unique:,.0f} unique ones of the fitted runs' corpus: give them a "
                          "larger max_corpus_bytes (`quokka plan` names the size).")
    k.fits["suggestions"] = plan
    k.md += suggestion_lines(plan)
    k.summary += [f"  {line}" for line in suggestion_summary(plan)]


def _quantity(plan: SuggestionPlan, value: float) -> str:
    return f"{value:.4g}" if plan.quantity == "n_opt" else f"{value:.4f}"


def suggestion_summary(plan: SuggestionPlan) -> list[str]:
    """The plan as lines of plain text: the interval now and after, and a table of runs."""
    name = "N_opt" if plan.quantity == "n_opt" else "L_opt"
    now = (f"{plan.confidence:.0%} CI {_quantity(plan, plan.interval[0])} – "
           f"{_quantity(plan, plan.interval[1])}" if plan.interval
           else "no bootstrap interval: the replicates do not vary")
    lines = [f"suggestions for {name} at C = {plan.target_flops:.3g}: now "
             f"{_quantity(plan, plan.estimate)} ({now})"]
    after = plan.interval_after()
    if plan.runs and after:
        lines[0] += (f"; expected after {len(plan.runs)} runs: {_quantity(plan, after[0])} – "
                     f"{_quantity(plan, after[1])}")
    lines.append(f"{'rank':>4} {'N':>10} {'D tokens':>10} {'C FLOPs':>9} {'budget':>8} "
                 f"{'move':>4} {'narrowing':>9} {'cumulative':>10}")
    for r in plan.runs:
        lines.append(f"{r.rank:>4} {r.non_embedding_params:>10.4g} {r.tokens:>10.4g} "
                     f"{r.budget_flops:>9.3g} {r.budget:>8} {r.move:>4} {r.narrowing:>9.1%} "
                     f"{r.cumulative:>10.1%}")
    return lines + plan.notes


def suggestion_lines(plan: SuggestionPlan) -> list[str]:
    """The plan as Markdown lines."""
    name = "N_opt" if plan.quantity == "n_opt" else "L_opt"
    pct = f"{plan.confidence:.0%}"
    md = [f"Fitted law: {name}(C = {fmt(plan.target_flops)}) = {_quantity(plan, plan.estimate)}"
          + (f", {pct} bootstrap CI {_quantity(plan, plan.interval[0])} – "
             f"{_quantity(plan, plan.interval[1])}" if plan.interval else
             " (no bootstrap interval: the replicates do not vary)") + ".", ""]
    if plan.runs:
        md += table(
            ["rank", "N (non-embedding)", "D = C/(6N) tokens", "C (FLOPs)", "budget", "move",
             "expected narrowing", "cumulative"],
            [[str(r.rank), r.non_embedding_params, r.tokens, r.budget_flops, r.budget,
              str(r.move), f"{r.narrowing:.1%}", f"{r.cumulative:.1%}"] for r in plan.runs])
        after = plan.interval_after()
        if after:
            md += [f"Expected {pct} interval after these {len(plan.runs)} runs: about "
                   f"{_quantity(plan, after[0])} – {_quantity(plan, after[1])}.", ""]
    noise = (f"the runs' noise about their parabolas (sd {fmt(plan.residual_sd)}) sets its "
             "scale" if math.isfinite(plan.residual_sd) else
             "no budget has a spare run, so the noise is unknown and only the narrowing is given")
    md += [f"Narrowing: of the width of the interval of ln {name} at the target, linearised in "
           f"each budget's parabola coefficients and averaged over {plan.replicates} laws "
           f"(bootstrap replicates); {noise}. Candidates: {plan.candidates} single runs on the "
           "sweep's size ladder at the budgets measured and the next budget; runs that share a "
           "move only count together (a budget needs 3 sizes around its vertex).", ""]
    md += [f"- {note}" for note in plan.notes] + ([""] if plan.notes else [])
    return md
