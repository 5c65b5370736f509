"""Law fitting: scaling laws, plots and a report from finished runs.

Reads runs only through a pandas DataFrame handed to it (tracking.py reads MLflow); never
imports ray or torch, never trains. Units everywhere: N non-embedding parameters, D tokens,
C = 6 N D FLOPs, loss in nats/token.

- parametric.py       L = E + A/N^alpha + B/D^beta (Chinchilla approach 3), fast exact fit
- parametric_reference.py  the exhaustive 4,500-start search it is checked against
- isoflop.py          IsoFLOP parabolas and N_opt(C), D_opt(C) power laws (approach 1)
- data_constrained.py Quokka eq. 14: repeated data, max useful epochs, optimal (N, epochs)
- muennighoff.py      Muennighoff et al.'s effective data and parameters
- hyperparams.py      B_opt(C), lr_opt(C) and the AR -> DLM transfer check
- holdout.py          fit on part, predict the rest
- surface.py          an IsoFLOP fit read as one surface loss(N, C), between and beyond budgets
- proposal.py         the compute-optimal run a law predicts for a new budget, its predicted
                      loss, and the prediction against the actual loss once it has run
- suggest.py          the runs that would most narrow the interval of N_opt (or the loss) at a
                      target budget
- selection.py        which runs each law sees: objectives (one law per objective), NELBO vs
                      surrogate losses, fresh-data runs, the best run per (N, D)
- report.py           write_report: the Markdown report, the cross-objective sections
- sections.py         one objective's section of the report; markdown.py its tables
- plots.py            the PNGs
- csv_fit.py          fit one law to a CSV file (`quokka fit --csv`; flags in commands/)
- published.py        published coefficients (Chinchilla, Quokka eqs. 13 and 15, DeepSeek)
                      and the published data sets in reference/ (package data)
- powerlaw.py, budgets.py, bootstrap.py, huber.py, threads.py, errors.py: shared pieces
"""

from .bootstrap import CONFIDENCE, percentile_intervals
from .budgets import budget_labels
from .csv_fit import CSV_LAWS, CsvFit, fit_csv
from .data_constrained import (
    DataConstrainedLaw,
    data_constrained_objective,
    fit_data_constrained,
)
from .errors import LawInputError
from .holdout import HoldoutResult, holdout_data_constrained, holdout_isoflop, holdout_parametric
from .huber import DEFAULT_DELTA
from .hyperparams import (
    TransferBudget,
    TransferComparison,
    compare_transfer,
    fit_hyperparameter_law,
    near_optimal_mask,
)
from .isoflop import BudgetParabola, IsoFlopFit, SkippedBudget, fit_budget_parabola, fit_isoflop
from .muennighoff import MuennighoffLaw, effective_data_muennighoff, fit_muennighoff
from .parametric import ParametricFit, chinchilla_grid, fit_parametric, parametric_objective
from .parametric_reference import GridSearchResult, grid_search_parametric
from .plots import (
    plot_data_constrained,
    plot_frontiers,
    plot_hyperparameter_laws,
    plot_isoflop,
    plot_isoloss,
    plot_optimal_allocation,
)
from .powerlaw import PowerLawFit, fit_power_law
from .proposal import (
    ComputeOptimalProposal,
    LossPrediction,
    ProposalRequest,
    SizedRun,
    propose,
)
from .published import REFERENCE_DIR, reference_csv
from .report import LAW_NAMES, Report, write_report
from .selection import (
    Objective,
    best_per_allocation,
    fresh_data_runs,
    split_by_bound,
    split_by_objective,
)
from .suggest import SuggestedRun, SuggestionPlan, SuggestRequest, suggest_runs
from .surface import IsoFlopSurface

__all__ = [
    "BudgetParabola",
    "CONFIDENCE",
    "CSV_LAWS",
    "ComputeOptimalProposal",
    "CsvFit",
    "DEFAULT_DELTA",
    "DataConstrainedLaw",
    "GridSearchResult",
    "HoldoutResult",
    "IsoFlopFit",
    "IsoFlopSurface",
    "LAW_NAMES",
    "LawInputError",
    "LossPrediction",
    "MuennighoffLaw",
    "Objective",
    "ParametricFit",
    "PowerLawFit",
    "ProposalRequest",
    "REFERENCE_DIR",
    "Report",
    "SizedRun",
    "SkippedBudget",
    "SuggestRequest",
    "SuggestedRun",
    "SuggestionPlan",
    "TransferBudget",
    "TransferComparison",
    "best_per_allocation",
    "budget_labels",
    "chinchilla_grid",
    "compare_transfer",
    "data_constrained_objective",
    "effective_data_muennighoff",
    "fit_budget_parabola",
    "fit_csv",
    "fit_data_constrained",
    "fit_hyperparameter_law",
    "fit_isoflop",
    "fit_muennighoff",
    "fit_parametric",
    "fit_power_law",
    "fresh_data_runs",
    "grid_search_parametric",
    "holdout_data_constrained",
    "holdout_isoflop",
    "holdout_parametric",
    "near_optimal_mask",
    "parametric_objective",
    "percentile_intervals",
    "plot_data_constrained",
    "plot_frontiers",
    "plot_hyperparameter_laws",
    "plot_isoflop",
    "plot_isoloss",
    "plot_optimal_allocation",
    "propose",
    "reference_csv",
    "split_by_bound",
    "split_by_objective",
    "suggest_runs",
    "write_report",
]
