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
ladder of budgets, less the runs that could not be run as the sweep's own runs were: shorter
in tokens per parameter than the study allows (its tokens_per_param minimum or, for a study
without that window, the fewest tokens per parameter any fitted run on a budget trained: below
it no parabola of the sweep was measured), longer than the fitted runs' corpus holds (a
compute-constrained run sees each token once), or refused by the experiment's own plan
(request.screen: too few steps, a missed budget). Each run left out is counted and named with
the check it fails. A budget without a vertex (a new budget, or one the fit left out) counts
once it has 3 sizes around the vertex its surface predicts: the runs it needs are suggested
together, as one move, and their narrowing is shared among them. Moves are chosen greedily, by
narrowing per run, so each row's narrowing is what it adds to the rows above it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
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
class Refusal:
    """Why a candidate run is left out."""

    check: str
    """The check it fails, for counting: 'tokens_per_param', 'corpus', 'min_steps',
    'budget_tolerance' or 'plan' (another refusal of the experiment's plan)."""
    reason: str
    """The check's own words, with the values (a corpus check names the max_corpus_bytes that
    would hold the run)."""


#: (objective label, N non-embedding parameters, budget FLOPs) -> why the run the experiment
#: would train for them cannot be run as its own runs are, or None where it can.
Screen = Callable[[str, float, float], Refusal | None]


@dataclass(frozen=True)
class SuggestRequest:
    """`quokka fit --suggest COUNT --target TARGET_FLOPS [--suggest-for QUANTITY]`."""

    count: int
    target_flops: float
    quantity: str = "n_opt"
    size: Sizer | None = None
    """The run that would train for a candidate N at a budget (the model its sizing rule
    builds and the tokens its plan trains), so that candidates are models that can be built;
    None: the ladder's N and D = C / (6 N) as they are."""
    screen: Screen | None = None
    """The experiment's own checks of a candidate (commands/suggestions.py: the plan of the
    study at that budget and size, and the corpus it would read); None: only the checks of
    the fitted runs below."""
    min_tokens_per_param: float | None = None
    """Candidates that train fewer tokens per non-embedding parameter are left out: the
    study's tokens_per_param minimum where it has one. None (a study without that window):
    the fewest that any fitted run on a budget trained, since below it the sweep measured no
    parabola and the runs are too short to say where the optimum lies."""
    files: Callable[[str, float], str] | None = None
    """(objective label, budget FLOPs) -> the experiment file the caller writes for the runs
    suggested at that budget, named in the report; None: no file."""

    def __post_init__(self) -> None:
        if self.count < 1:
            raise LawInputError(f"suggest: count must be at least 1, got {self.count}")
        if not (math.isfinite(self.target_flops) and self.target_flops > 0):
            raise LawInputError(f"suggest: target must be positive FLOPs, got {self.target_flops}")
        if self.quantity not in QUANTITIES:
            raise LawInputError(f"suggest: quantity must be one of {', '.join(QUANTITIES)}, "
                                f"got {self.quantity!r}")
        floor = self.min_tokens_per_param
        if floor is not None and not (math.isfinite(floor) and floor > 0):
            raise LawInputError(f"suggest: min_tokens_per_param must be positive, got {floor}")


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
class LeftOutRun:
    """A candidate run that was not considered, and why."""

    budget_flops: float
    non_embedding_params: float
    tokens: float
    """Tokens it would train (D = C / (6 N), or the sized run's)."""
    check: str
    """The check it fails (Refusal.check)."""
    reason: str


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
    """Single runs considered (those that pass every check)."""
    residual_sd: float
    """Run-to-run noise of the fitted runs about their parabolas (nan: no spare runs)."""
    min_tokens_per_param: float
    """The fewest tokens per parameter a candidate may train (SuggestRequest)."""
    left_out: list[LeftOutRun] = field(default_factory=list)
    """Candidate runs (a ladder size at a budget, not run yet) that fail a check."""
    confidence: float = CONFIDENCE
    notes: list[str] = field(default_factory=list)
    pool: list[tuple[float, float]] = field(default_factory=list, repr=False)
    """Every single candidate as (budget FLOPs, N)."""

    @property
    def interval_after(self) -> tuple[float, float] | None:
        """The interval now, narrowed (in log space, about the estimate) by the expected
        narrowing of all the runs suggested."""
        if self.interval is None or not self.runs:
            return self.interval
        keep = 1.0 - self.runs[-1].cumulative
        lo, hi = self.interval
        return (self.estimate * (lo / self.estimate) ** keep,
                self.estimate * (hi / self.estimate) ** keep)

    @property
    def left_out_by_check(self) -> dict[str, int]:
        """How many candidates each check left out."""
        counts: dict[str, int] = {}
        for run in self.left_out:
            counts[run.check] = counts.get(run.check, 0) + 1
        return counts


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
                 confidence: float = CONFIDENCE, *, D=None,
                 unique_tokens: float | None = None) -> SuggestionPlan:
    """Rank runs by how much they would narrow the interval of the quantity at the target.

    C, N, loss: the runs the IsoFLOP fit was fitted on (budget FLOPs, non-embedding
    parameters, final loss), so that each budget's design is known; D: their tokens (default
    C / (6 N)), for the floor on tokens per parameter. objective: the label request.size and
    request.screen are called with. unique_tokens: the distinct tokens of the fitted runs'
    corpus; candidates that would train more are left out (None: not known)."""
    C, N, loss = (np.asarray(v, dtype=float).ravel() for v in (C, N, loss))
    D = C / (6 * N) if D is None else np.asarray(D, dtype=float).ravel()
    ok = np.isfinite(C) & np.isfinite(N) & np.isfinite(loss) & (C > 0) & (N > 0)
    C, N, loss, D = C[ok], N[ok], loss[ok], D[ok]
    target, quantity = request.target_flops, request.quantity
    point = IsoFlopSurface.from_parabolas(fit.budgets)
    replicates = list(fit.bootstrap_budgets) or [tuple(fit.budgets)]
    surfaces = [IsoFlopSurface.from_parabolas(r) for r in replicates]
    labels = budget_labels(C)
    measured = np.unique(labels)
    kept = {p.budget_flops: p for p in fit.budgets}
    step_c = float(np.mean(np.diff(np.log(measured)))) if measured.size > 1 else math.log(2)
    # The next budget of the ladder, to 3 digits: a budget an experiment file states.
    new_budget = float(f"{measured.max() * math.exp(step_c):.3g}")

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
    ratios = D / N
    floor = (request.min_tokens_per_param if request.min_tokens_per_param is not None
             else float(np.min(ratios)) if ratios.size and np.isfinite(ratios).any() else 0.0)
    checks = _Checks(request, objective, floor, unique_tokens)
    # Per budget, the ladder sizes it may run: those it has, and the candidates that pass.
    runnable = [np.array([x for x in ladder if b.has(x) or checks.passes(b.C, x)])
                for b in budgets]
    singles = [(i, x) for i, b in enumerate(budgets) for x in runnable[i] if not b.has(x)]
    now = _spread(budgets, target, quantity)
    notes = []
    if not math.isfinite(now) or now <= 0:
        raise LawInputError("the IsoFLOP fit gives no finite interval to narrow")

    chosen: list[SuggestedRun] = []
    current, state, move = now, [b.copy() for b in budgets], 0
    while len(chosen) < request.count:
        options = [[(i, x)] for i, x in singles if not state[i].has(x)]
        options += [m for i, b in enumerate(state) if not b.usable()
                    for m in _profiles(b, i, runnable[i], step)]
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
                         "left out by a check, or cannot give a budget 3 sizes around its "
                         "vertex): fewer runs than asked are suggested.")
            break
        move += 1
        for i, x in best:
            state[i].xs.append(x)
            state[i].added += 1
            b = state[i]
            chosen.append(SuggestedRun(
                rank=len(chosen) + 1, non_embedding_params=math.exp(x),
                tokens=checks.tokens(b.C, x), budget_flops=b.C, budget=b.status, move=move,
                narrowing=best_gain / now, cumulative=1.0 - best_after / now))
        current = best_after

    sd, _ = residual_sd(fit.budgets, C, N, loss)
    return SuggestionPlan(
        quantity=quantity, target_flops=target, estimate=_value(point, target, quantity),
        interval=quantity_interval(fit, target, quantity, confidence), runs=chosen,
        replicates=len(surfaces), candidates=len(singles), residual_sd=sd,
        min_tokens_per_param=floor, left_out=checks.left_out, confidence=confidence,
        notes=notes, pool=[(budgets[i].C, math.exp(x)) for i, x in singles])


class _Checks:
    """Whether a candidate (ln N = x at budget C) may be suggested, with the runs left out
    and why: tokens per parameter, then the experiment's checks (request.screen), then the
    fitted runs' unique tokens (where the screen could not read the corpus); each candidate is
    checked once."""

    def __init__(self, request: SuggestRequest, objective: str, floor: float,
                 unique_tokens: float | None):
        self.request, self.objective = request, objective
        self.floor, self.unique = floor, unique_tokens
        self.left_out: list[LeftOutRun] = []
        self._seen: dict[tuple[float, float], bool] = {}

    def tokens(self, budget: float, x: float) -> float:
        """Tokens the run trains: the sized run's, or C / (6 N)."""
        n = math.exp(x)
        if self.request.size is None:
            return budget / (6 * n)
        return self.request.size(self.objective, n, budget).tokens

    def passes(self, budget: float, x: float) -> bool:
        key = (budget, round(x, 6))
        if key not in self._seen:
            refusal = self._refusal(budget, x)
            if refusal is not None:
                self.left_out.append(LeftOutRun(budget, math.exp(x), self.tokens(budget, x),
                                                refusal.check, refusal.reason))
            self._seen[key] = refusal is None
        return self._seen[key]

    def _refusal(self, budget: float, x: float) -> Refusal | None:
        n, tokens = math.exp(x), self.tokens(budget, x)
        if tokens / n < self.floor * (1 - 1e-9):
            source = ("the study's tokens_per_param minimum"
                      if self.request.min_tokens_per_param is not None
                      else "the fewest that any fitted run on a budget trained")
            return Refusal("tokens_per_param",
                           f"{tokens / n:.3g} tokens per parameter, fewer than {self.floor:.3g} "
                           f"({source})")
        refusal = (self.request.screen(self.objective, n, budget)
                   if self.request.screen is not None else None)
        if refusal is None and self.unique is not None and tokens > self.unique:
            return Refusal("corpus",
                           f"{tokens:,.0f} tokens, more than the {self.unique:,.0f} unique ones "
                           "of the fitted runs' corpus: a compute-constrained run sees each token "
                           "once (a larger max_corpus_bytes would hold it)")
        return refusal


def _profiles(budget: _Budget, index: int, ladder: np.ndarray, step: float
              ) -> list[list[tuple[int, float]]]:
    """Moves that give a budget without a vertex 3 sizes around its predicted one: for each
    spread j, the sizes of `ladder` (those the budget may run) nearest j steps below and above
    the vertex, on their side of it, and the one nearest the vertex between them (a parabola
    through 3 close sizes has a poorly known vertex, one through far ones a biased one: the
    ranking chooses), less the sizes the budget has."""
    below, above = ladder[ladder <= budget.vertex], ladder[ladder >= budget.vertex]
    moves: list[list[tuple[int, float]]] = []
    if not below.size or not above.size:
        return moves
    for j in range(1, ladder.size):
        low = float(below[np.argmin(np.abs(below - (budget.vertex - j * step)))])
        high = float(above[np.argmin(np.abs(above - (budget.vertex + j * step)))])
        between = ladder[(ladder > low) & (ladder < high)]
        if between.size:
            middle = float(between[np.argmin(np.abs(between - budget.vertex))])
            runs = [(index, x) for x in (low, middle, high) if not budget.has(x)]
            trial = budget.copy()
            trial.xs += [x for _, x in runs]
            trial.added += len(runs)
            if len(runs) > 1 and trial.usable() and runs not in moves:
                moves.append(runs)
        if low == below[0] and high == above[-1]:
            break  # both ends are the ladder's ends from here on
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
    C, N, y = k.col("budget_flops"), k.col("non_embedding_params"), k.col(k.target)
    on = np.isfinite(C) & np.isfinite(y)
    unique = k.col("unique_tokens", "all")
    unique = float(np.nanmax(unique)) if np.isfinite(unique).any() else None
    try:
        plan = suggest_runs(fit, C[on], N[on], y[on], request, k.label, D=k.col("tokens")[on],
                            unique_tokens=unique)
    except (LawInputError, ValueError, np.linalg.LinAlgError) as err:
        k.skip("suggestions", str(err))
        return
    k.fits["suggestions"] = plan
    files = ({r.budget_flops: request.files(k.label, r.budget_flops) for r in plan.runs}
             if request.files is not None else {})
    k.md += suggestion_lines(plan, files)
    k.summary += [f"  {line}" for line in suggestion_summary(plan)]


def _quantity(plan: SuggestionPlan, value: float) -> str:
    return f"{value:.4g}" if plan.quantity == "n_opt" else f"{value:.4f}"


def suggestion_summary(plan: SuggestionPlan) -> list[str]:
    """The plan as lines of plain text: the interval now and after, a table of runs, and the
    candidates left out, counted by check."""
    name = "N_opt" if plan.quantity == "n_opt" else "L_opt"
    now = (f"{plan.confidence:.0%} CI {_quantity(plan, plan.interval[0])} – "
           f"{_quantity(plan, plan.interval[1])}" if plan.interval
           else "no bootstrap interval: the replicates do not vary")
    lines = [f"suggestions for {name} at C = {plan.target_flops:.3g}: now "
             f"{_quantity(plan, plan.estimate)} ({now})"]
    after = plan.interval_after
    if plan.runs and after:
        lines[0] += (f"; expected after {len(plan.runs)} runs: {_quantity(plan, after[0])} – "
                     f"{_quantity(plan, after[1])}")
    if plan.runs:
        lines.append(f"{'rank':>4} {'N':>10} {'D tokens':>10} {'C FLOPs':>9} {'budget':>8} "
                     f"{'move':>4} {'narrowing':>9} {'cumulative':>10}")
    for r in plan.runs:
        lines.append(f"{r.rank:>4} {r.non_embedding_params:>10.4g} {r.tokens:>10.4g} "
                     f"{r.budget_flops:>9.3g} {r.budget:>8} {r.move:>4} {r.narrowing:>9.1%} "
                     f"{r.cumulative:>10.1%}")
    if plan.left_out:
        counts = ", ".join(f"{n} {check}" for check, n in plan.left_out_by_check.items())
        lines.append(f"left out {len(plan.left_out)} of {len(plan.left_out) + plan.candidates} "
                     f"candidate runs that fail a check ({counts}); the report names each")
    return lines + plan.notes


def suggestion_lines(plan: SuggestionPlan, files: dict[float, str] | None = None) -> list[str]:
    """The plan as Markdown lines; files: budget FLOPs -> the experiment file that trains the
    runs suggested at that budget."""
    name = "N_opt" if plan.quantity == "n_opt" else "L_opt"
    pct = f"{plan.confidence:.0%}"
    md = [f"Fitted law: {name}(C = {fmt(plan.target_flops)}) = {_quantity(plan, plan.estimate)}"
          + (f", {pct} bootstrap CI {_quantity(plan, plan.interval[0])} – "
             f"{_quantity(plan, plan.interval[1])}" if plan.interval else
             " (no bootstrap interval: the replicates do not vary)") + ".", ""]
    if plan.runs:
        md += table(
            ["rank", "N (non-embedding)", "D tokens", "C (FLOPs)", "budget", "move",
             "expected narrowing", "cumulative"],
            [[str(r.rank), r.non_embedding_params, r.tokens, r.budget_flops, r.budget,
              str(r.move), f"{r.narrowing:.1%}", f"{r.cumulative:.1%}"] for r in plan.runs])
        after = plan.interval_after
        if after:
            md += [f"Expected {pct} interval after these {len(plan.runs)} runs: about "
                   f"{_quantity(plan, after[0])} – {_quantity(plan, after[1])}.", ""]
        md += [f"- Runs at C = {fmt(c)} FLOPs: `{path}`" for c, path in (files or {}).items()]
        md += [""] if files else []
    noise = (f"the runs' noise about their parabolas (sd {fmt(plan.residual_sd)}) sets its "
             "scale" if math.isfinite(plan.residual_sd) else
             "no budget has a spare run, so the noise is unknown and only the narrowing is given")
    md += [f"Narrowing: of the width of the interval of ln {name} at the target, linearised in "
           f"each budget's parabola coefficients and averaged over {plan.replicates} laws "
           f"(bootstrap replicates); {noise}. Candidates: {plan.candidates} single runs on the "
           "sweep's size ladder at the budgets measured and the next budget that pass every "
           f"check (at least {plan.min_tokens_per_param:.3g} tokens per parameter, no token "
           "seen twice, and the experiment's own plan where the fit had its file); runs that "
           "share a move only count together (a budget needs 3 sizes around its vertex).", ""]
    if plan.left_out:
        md += [f"Left out: {len(plan.left_out)} candidate runs ("
               + ", ".join(f"{n} {check}" for check, n in plan.left_out_by_check.items())
               + ").", ""]
        md += table(["N (non-embedding)", "D tokens", "C (FLOPs)", "check", "why"],
                    [[r.non_embedding_params, r.tokens, r.budget_flops, r.check, r.reason]
                     for r in plan.left_out])
    md += [f"- {note}" for note in plan.notes] + ([""] if plan.notes else [])
    return md
