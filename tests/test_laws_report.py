"""write_report on small synthetic run tables, healthy and degenerate."""

from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest

from quokka_ray.laws import LawInputError, ParametricFit, write_report
from quokka_ray.laws.published import QUOKKA_EQ15

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LAWS = {
    "dlm": ParametricFit(E=2.4, A=800.0, B=4600.0, alpha=0.38, beta=0.38),
    "ar": ParametricFit(E=2.0, A=500.0, B=2000.0, alpha=0.35, beta=0.37),
}


def _row(kind, n, d, loss, budget=np.nan, lr=2e-4, batch=2**19, **extra):
    return {
        "trial_name": f"{kind}-n{n:.3g}-d{d:.3g}-lr{lr:g}-b{batch}",
        "kind": kind,
        "non_embedding_params": n,
        "tokens": d,
        "flops": 6 * n * d,
        "budget_flops": budget,
        "final_loss": loss,
        "val_loss": loss * 1.01,
        "lr": lr,
        "batch_tokens": batch,
        "weight_decay": 0.1,
        **extra,
    }


def toy_runs(seed: int = 0) -> pd.DataFrame:
    """Per kind: 3 IsoFLOP budgets x 4 sizes, an lr x batch sweep at 2 budgets; for the DLM
    also data-constrained runs (unique_tokens, epochs). Noise 0.3%."""
    rng = np.random.default_rng(seed)
    rows = []
    for kind, law in LAWS.items():
        for C in (1e15, 1e16, 1e17):
            n_opt = law.optimal_allocation(C)[0]
            for n in n_opt * np.geomspace(0.25, 4, 4):
                rows.append(
                    _row(
                        kind,
                        n,
                        C / (6 * n),
                        law.predict(n, C / (6 * n)) * np.exp(rng.normal(0, 0.003)),
                        C,
                    )
                )
        for C, lr, batch in itertools.product((1e15, 1e16), (1e-4, 2e-4, 4e-4), (2**18, 2**19)):
            n = law.optimal_allocation(C)[0]
            penalty = 0.02 * np.log(lr / 2e-4) ** 2 + 0.01 * np.log(batch / 2**19) ** 2
            rows.append(
                _row(
                    kind,
                    n,
                    C / (6 * n),
                    law.predict(n, C / (6 * n)) * (1 + penalty),
                    np.nan,
                    lr,
                    batch,
                )
            )
    for n, u, e in itertools.product((2e7, 8e7), (1e7, 4e7), (2.0, 4.0, 16.0, 64.0, 256.0)):
        loss = QUOKKA_EQ15.loss(n, u, e) * np.exp(rng.normal(0, 0.003))
        rows.append(_row("dlm", n, u * e, loss, unique_tokens=u, epochs=e))
    return pd.DataFrame(rows)


def _check_pngs(report):
    assert report.plot_paths
    for path in report.plot_paths:
        assert path.exists() and path.read_bytes()[:8] == PNG_SIGNATURE
        assert path.name in report.markdown_path.read_text()


def test_report_on_a_small_synthetic_study(tmp_path):
    report = write_report(toy_runs(), tmp_path / "out", title="toy study", n_bootstrap=20)
    text = report.markdown_path.read_text()
    print(report.summary)
    assert text.startswith("# toy study")
    assert "## DLM runs" in text and "## AR runs" in text and "**Verdict:**" in text
    _check_pngs(report)
    names = {p.name for p in report.plot_paths}
    assert {
        "dlm_isoflop.png",
        "dlm_allocation.png",
        "dlm_isoloss.png",
        "dlm_data_constrained.png",
        "ar_isoflop.png",
        "transfer_dlm.png",
    } <= names
    for kind in ("dlm", "ar"):
        iso = report.fits[kind]["isoflop"]
        law = LAWS[kind]
        # clean enough data: the IsoFLOP exponent is the generating law's a
        assert iso.a == pytest.approx(law.a, abs=0.05)
        assert "lr_law" in report.fits[kind]
    assert "IsoFLOP: N_opt =" in report.summary and "held-out" in report.summary
    assert "data_constrained" in report.fits["dlm"]
    assert "data_constrained" in report.skipped["ar"]
    assert "transfer" in report.summary


def test_report_survives_degenerate_runs(tmp_path):
    rng = np.random.default_rng(1)
    law = LAWS["dlm"]
    rows = []
    for C in (1e15, 1e16):
        for n in law.optimal_allocation(C)[0] * np.geomspace(0.25, 4, 4):
            rows.append(
                _row(
                    "dlm",
                    n,
                    C / (6 * n),
                    law.predict(n, C / (6 * n)) * np.exp(rng.normal(0, 0.003)),
                    C,
                )
            )
    # a budget whose losses fall with size: its parabola opens downward
    for i, n in enumerate(np.geomspace(1e6, 1e7, 4)):
        rows.append(_row("dlm", n, 1e17 / (6 * n), 3.0 - 0.1 * i**2, 1e17))
    # a budget with two sizes only, and one AR run
    for n in (1e6, 2e6):
        rows.append(_row("dlm", n, 3e17 / (6 * n), 3.0, 3e17))
    rows.append(_row("ar", 1e6, 1e9, 3.5))
    report = write_report(pd.DataFrame(rows), tmp_path, title="degenerate", n_bootstrap=10)
    text = report.markdown_path.read_text()
    assert "opens downward" in text and "2 distinct model sizes" in text
    # the two good budgets still give a fit; the lone AR run gives none
    assert "isoflop" in report.fits["dlm"]
    assert "parametric" in report.fits["dlm"]
    assert set(report.skipped["ar"]) >= {"isoflop", "parametric", "data_constrained"}
    assert "Held-out check skipped" in text  # 2 budgets with a vertex: nothing to hold out
    _check_pngs(report)


def test_report_on_a_single_run_and_on_missing_columns(tmp_path):
    one = pd.DataFrame([_row("dlm", 1e7, 1e9, 4.0)])
    report = write_report(one, tmp_path, title="one run")
    assert report.plot_paths == [] and report.markdown_path.exists()
    assert "skipped" in report.summary
    with pytest.raises(LawInputError, match="final_loss"):
        write_report(one.drop(columns=["final_loss"]), tmp_path, title="broken")


def test_report_flags_a_degenerate_parametric_fit(tmp_path, monkeypatch):
    import quokka_ray.laws.sections as sections_module

    cliff = ParametricFit(E=1.5, A=2300.0, B=1e122, alpha=0.31, beta=14.4)
    monkeypatch.setattr(sections_module, "fit_parametric", lambda *a, **k: cliff)
    runs = toy_runs()
    report = write_report(runs[runs["kind"] == "ar"], tmp_path, title="cliff", n_bootstrap=0)
    assert "beta outside (0, 2]" in report.markdown_path.read_text()
    assert "parametric warning" in report.summary
