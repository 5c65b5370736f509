"""write_report fits one law per objective: two DLM objectives and AR, each generated from its
own law, give three IsoFLOP fits that each recover their own exponent; surrogate losses are
labelled and never share an axis with NELBOs; laws=, notes, n_bootstrap and seed are honoured."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

import quokka_ray.laws.report as report_module
import quokka_ray.laws.sections as sections_module
from quokka_ray.laws import (
    LawInputError,
    Objective,
    ParametricFit,
    best_per_allocation,
    split_by_bound,
    split_by_objective,
    write_report,
)

MASKED = ("dlm", "masked", "linear", "elbo", "uniform")
UNIFORM = ("dlm", "uniform", "linear", "elbo", "uniform")  # the uniform kernel: a surrogate
#: Different exponents (a = beta / (alpha + beta): 0.571, 0.400, 0.500) and loss scales: a
#: pooled fit would recover none of them.
LAWS = {
    MASKED: ParametricFit(E=2.4, A=800.0, B=4600.0, alpha=0.30, beta=0.40),
    UNIFORM: ParametricFit(E=4.0, A=300.0, B=9000.0, alpha=0.45, beta=0.30),
    ("ar",): ParametricFit(E=2.0, A=500.0, B=2000.0, alpha=0.35, beta=0.35),
}
LABELS = {
    MASKED: "dlm-masked-linear-elbo-uniform",
    UNIFORM: "dlm-uniform-linear-elbo-uniform",
    ("ar",): "ar",
}


def study(seed: int = 0) -> pd.DataFrame:
    """Per objective an IsoFLOP grid of 3 budgets x 4 sizes around its own optimum, 0.2% noise,
    with lr and batch swept at two budgets (3 x 2 at the optimal size)."""
    rng = np.random.default_rng(seed)
    rows = []
    for key, law in LAWS.items():
        kind, *fields = key
        # AR runs carry diffusion columns too; they are meaningless and must not split AR
        fields = fields or [rng.choice(["masked", "uniform"]), "cosine", "maskgit", "curriculum"]
        objective = dict(zip(("kernel", "schedule", "loss", "timesteps"), fields, strict=True))
        for C in (1e15, 1e16, 1e17):
            n_opt = law.optimal_allocation(C)[0]
            for n in n_opt * np.geomspace(0.25, 4, 4):
                d = C / (6 * n)
                rows.append({
                    "trial_name": f"{'-'.join(key)}-{n:.3g}-{d:.3g}", "kind": kind,
                    **objective, "non_embedding_params": n, "tokens": d, "flops": C,
                    "budget_flops": C, "final_loss": law.predict(n, d) * np.exp(
                        rng.normal(0, 0.002)), "lr": 2e-4, "batch_tokens": 2**19,
                    "final_loss_window_steps": 201 if kind == "ar" else 301,
                })
        for C in (1e15, 1e16):
            n = law.optimal_allocation(C)[0]
            for lr in (1e-4, 2e-4, 4e-4):
                for batch in (2**18, 2**19):
                    penalty = 0.02 * np.log(lr / 2e-4) ** 2 + 0.01 * np.log(batch / 2**19) ** 2
                    rows.append({
                        "trial_name": f"{'-'.join(key)}-hp-{C:g}-{lr:g}-{batch}", "kind": kind,
                        **objective, "non_embedding_params": n, "tokens": C / (6 * n),
                        "flops": C, "budget_flops": np.nan,
                        "final_loss": law.predict(n, C / (6 * n)) * (1 + penalty), "lr": lr,
                        "batch_tokens": batch, "final_loss_window_steps": 301,
                    })
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """The report of the three-objective study, and the titles its plots were given."""
    titles: dict[str, str] = {}
    frontier_fits = []
    patch = pytest.MonkeyPatch()

    def record(module, name, get_title):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            path = real(*args, **kwargs)
            titles[path.name] = get_title(args, kwargs)
            return path

        patch.setattr(module, name, wrapper)

    record(sections_module, "plot_isoflop", lambda a, k: k["title"])
    record(sections_module, "plot_isoloss", lambda a, k: k["title"])
    record(sections_module, "plot_optimal_allocation", lambda a, k: k["title"])
    real_frontiers = report_module.plot_frontiers

    def frontiers(fits, path, **kwargs):
        frontier_fits.append(dict(fits))
        return real_frontiers(fits, path, **kwargs)

    patch.setattr(report_module, "plot_frontiers", frontiers)
    try:
        report = write_report(study(), tmp_path_factory.mktemp("report"), title="objectives",
                              n_bootstrap=0, notes=["3 trials stopped early were left out"],
                              laws=["isoflop", "parametric", "hyperparameters"])
    finally:
        patch.undo()
    return report, titles, frontier_fits


def test_one_isoflop_fit_per_objective_recovers_its_own_law(recorded):
    report, _, _ = recorded
    assert list(report.fits) == [LABELS[MASKED], LABELS[UNIFORM], "ar"]
    for key, law in LAWS.items():
        fit = report.fits[LABELS[key]]["isoflop"]
        assert fit.a == pytest.approx(law.a, abs=0.02)
        others = [other.a for k, other in LAWS.items() if k != key]
        assert all(abs(fit.a - a) > 0.05 for a in others)


def test_each_objective_is_named_in_headings_summary_plot_files_and_titles(recorded):
    report, titles, _ = recorded
    text = report.markdown_path.read_text()
    headings = [line for line in text.splitlines() if line.startswith("#")]
    names = {p.name for p in report.plot_paths}
    for label in LABELS.values():
        assert any(label in h for h in headings), label
        assert label in report.summary
        for plot in ("isoflop", "isoloss", "allocation"):
            assert f"{label}_{plot}.png" in names
            assert label in titles[f"{label}_{plot}.png"]
    assert "frontiers.png" in names and (report.markdown_path.parent / "frontiers.png").exists()
    # AR against each DLM objective separately
    assert {f"transfer_{LABELS[MASKED]}.png", f"transfer_{LABELS[UNIFORM]}.png"} <= names
    assert set(report.transfer) == {LABELS[MASKED], LABELS[UNIFORM]}


def test_surrogate_is_labelled_and_kept_off_the_nelbo_panel(recorded):
    report, titles, frontier_fits = recorded
    surrogate, masked = report.objectives[LABELS[UNIFORM]], report.objectives[LABELS[MASKED]]
    assert not surrogate.is_bound and masked.is_bound and report.objectives["ar"].is_bound
    assert "surrogate" in titles[f"{LABELS[UNIFORM]}_isoflop.png"]
    assert "surrogate" not in titles[f"{LABELS[MASKED]}_isoflop.png"]
    text = report.markdown_path.read_text()
    section = text.split(f"## DLM runs, objective `{LABELS[UNIFORM]}` (surrogate)")[1]
    section = section.split("\n## ")[0]
    assert "**Surrogate objective:**" in section
    # the data behind the frontier figure's loss panels
    [fits] = frontier_fits
    bounds, surrogates = split_by_bound(fits)
    assert set(bounds) == {masked, report.objectives["ar"]} and surrogates == [surrogate]


def test_notes_smoothing_window_and_restricted_laws_in_the_report(recorded):
    report, _, _ = recorded
    text = report.markdown_path.read_text()
    top = text.split("\n## ")[0]
    assert "- 3 trials stopped early were left out" in top
    assert "smoothed over the last 201–301 steps (min–max across runs)" in top
    assert "Laws fitted: isoflop, parametric, hyperparameters" in top
    assert "3 trials stopped early were left out" in report.summary
    assert report.laws == ("isoflop", "parametric", "hyperparameters")
    for fits, skipped in zip(report.fits.values(), report.skipped.values(), strict=True):
        assert "data_constrained" not in fits and "data_constrained" not in skipped


def test_laws_restricts_what_is_fitted(tmp_path):
    runs = study()
    report = write_report(runs, tmp_path, title="iso only", n_bootstrap=0, laws={"isoflop"})
    for fits in report.fits.values():
        assert set(fits) <= {"isoflop", "isoflop_holdout"} and "isoflop" in fits
    assert not any(report.skipped.values()) and not report.transfer
    assert not any("isoloss" in p.name or "transfer" in p.name for p in report.plot_paths)
    with pytest.raises(LawInputError, match="unknown law"):
        write_report(runs, tmp_path, title="typo", laws=["isoflops"])


def test_isoflop_intervals_need_no_bootstrap_and_no_seed(tmp_path):
    runs = study()
    masked = runs[(runs["kind"] == "dlm") & (runs["kernel"] == "masked")]

    def intervals(n_bootstrap, seed):
        report = write_report(masked, tmp_path / f"{n_bootstrap}-{seed}", title="boot",
                              n_bootstrap=n_bootstrap, seed=seed, laws=["isoflop"])
        return report.fits[LABELS[MASKED]]["isoflop"].intervals

    # profile-likelihood intervals: the same whatever the bootstrap and its seed
    first = intervals(0, 0)
    assert first and first == intervals(30, 1) == intervals(30, 2)
    assert first["a"][0] < LAWS[MASKED].a < first["a"][1]


def test_labels_bounds_and_fallback_to_kind():
    assert Objective(*MASKED).label == "dlm-masked-linear-elbo-uniform"
    assert Objective("dlm", "masked", "cosine", "elbo", "antithetic").is_bound
    for surrogate in (("uniform", "linear", "elbo", "uniform"),
                      ("masked", "linear", "maskgit", "uniform"),
                      ("masked", "linear", "elbo_realized_masked", "uniform"),
                      ("masked", "linear", "elbo", "curriculum")):
        objective = Objective("dlm", *surrogate)
        assert not objective.is_bound and objective.tag == "surrogate"
    assert Objective("ar").is_bound and Objective("ar").tag == "NLL"
    # a table without the objective columns is split by kind alone
    old = study().drop(columns=["kernel", "schedule", "loss", "timesteps"])
    groups = split_by_objective(old)
    assert [o.label for o, _ in groups] == ["dlm", "ar"]
    assert groups[0][0].tag == "unrecorded objective" and not groups[0][0].is_bound


def test_best_per_allocation_never_compares_objectives():
    run = {"trial_name": "t", "non_embedding_params": 1e6, "tokens": 1e9, "schedule": "linear",
           "loss": "elbo", "timesteps": "uniform"}
    df = pd.DataFrame([
        {**run, "kind": "dlm", "kernel": "masked", "final_loss": 3.0},
        {**run, "kind": "dlm", "kernel": "masked", "final_loss": 3.2},
        {**run, "kind": "dlm", "kernel": "uniform", "final_loss": 5.0},
        {**run, "kind": "ar", "kernel": "masked", "final_loss": 2.5},
        {**run, "kind": "ar", "kernel": "uniform", "final_loss": 2.7},  # AR: one objective
    ])
    best = best_per_allocation(df)
    assert sorted(best["final_loss"]) == [2.5, 3.0, 5.0]
