"""`quokka fit --csv`: the three reference files fit with the documented flags; bad input is
one line on stderr and exit status 2."""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
from pathlib import Path

import pytest

from quokka_ray.commands.fit_args import add_csv_fit_arguments, main, run_csv_fit
from quokka_ray.laws import LawInputError
from quokka_ray.laws.published import REFERENCE_DIR as DATA

CHINCHILLA = [
    "--csv",
    str(DATA / "chinchilla_svg_extracted_data.csv"),
    "--law",
    "parametric",
    "--n-column",
    "Model Size",
    "--c-column",
    "Training FLOP",
    "--loss-column",
    "loss",
    "--drop-highest-loss",
    "5",
]
ISOFLOP = [
    "--csv",
    str(DATA / "quokka_isoflop_points.csv"),
    "--law",
    "isoflop",
    "--c-column",
    "C_flops",
    "--n-column",
    "N_params_plot",
    "--loss-column",
    "final_train_loss_smoothed",
]


def _values(out: str) -> dict[str, float]:
    pairs = (line.strip().split(" = ", 1) for line in out.splitlines() if " = " in line)
    values = {}
    for name, rest in pairs:
        with contextlib.suppress(ValueError):  # lines such as "N_opt = ... C^a"
            values[name] = float(rest.split()[0].rstrip(","))
    return values


def test_chinchilla_file_fits_with_documented_flags(capsys):
    assert main(CHINCHILLA) == 0
    out = capsys.readouterr().out
    assert "(240 runs)" in out
    values = _values(out)
    assert 1.769 <= values["E"] <= 1.871 and 0.317 <= values["alpha"] <= 0.373


def test_isoflop_file_fits_and_writes_outputs(tmp_path, capsys):
    assert main([*ISOFLOP, "--bootstrap", "20", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "N_opt = " in out and "95% CI" in out
    fit = json.loads((tmp_path / "fit.json").read_text())
    # the joint fit of these points: N_opt = 0.0214 C^0.514 (published: 0.0216 C^0.514)
    assert fit["coefficients"]["k_N"] == pytest.approx(0.0216, rel=0.02)
    assert fit["coefficients"]["a"] == pytest.approx(0.514, abs=0.001)
    lo, hi = fit["intervals"]["a"]
    assert lo < fit["coefficients"]["a"] < hi
    assert (tmp_path / "isoflop.png").exists() and (tmp_path / "allocation.png").exists()


def test_data_constrained_file_fits(capsys):
    args = [
        "--csv",
        str(DATA / "quokka_data_constrained_curves.csv"),
        "--law",
        "data-constrained",
        "--n-column",
        "params",
        "--u-column",
        "unique_tokens",
        "--epochs-column",
        "epochs",
        "--loss-column",
        "final_val_loss",
    ]
    assert main(args) == 0
    values = _values(capsys.readouterr().out)
    assert set(values) >= {"A", "alpha", "B", "beta", "p_e", "c_p", "m_p", "k_p", "gamma"}
    assert 0.05 < values["gamma"] < 2


def test_bad_column_is_one_line_naming_file_column_and_choices(capsys):
    assert main([*ISOFLOP[:-1], "final_loss_typo"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    assert "quokka_isoflop_points.csv" in err and "'final_loss_typo'" in err
    assert "C_flops, N_params_plot" in err  # the available columns


def test_missing_file_and_default_columns(tmp_path, capsys):
    assert main(["--csv", str(tmp_path / "nope.csv"), "--law", "isoflop"]) == 2
    assert "no such file" in capsys.readouterr().err
    # without column flags the isoflop law looks for quokka's own column names
    shutil.copy(DATA / "quokka_isoflop_points.csv", tmp_path / "points.csv")
    assert main(["--csv", str(tmp_path / "points.csv"), "--law", "isoflop"]) == 2
    assert "'budget_flops'" in capsys.readouterr().err


def test_arguments_attach_to_any_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("experiment", nargs="?")
    add_csv_fit_arguments(parser)
    args = parser.parse_args(["--csv", "x.csv", "--law", "isoflop", "--bootstrap", "3"])
    assert args.csv == Path("x.csv") and args.law == "isoflop" and args.bootstrap == 3
    assert args.experiment is None
    assert issubclass(LawInputError, ValueError)
    assert run_csv_fit(args) == 2  # x.csv does not exist


def test_law_defaults_to_none_and_a_csv_fit_to_parametric(capsys):
    parser = argparse.ArgumentParser()
    add_csv_fit_arguments(parser)
    assert parser.parse_args([]).law is None  # an experiment's fit: every law
    assert main(CHINCHILLA[:2] + CHINCHILLA[4:]) == 0  # no --law: parametric
    assert capsys.readouterr().out.startswith("parametric fit of")
    assert main([*ISOFLOP[:2], "--law", "hyperparameters"]) == 2
    assert "a CSV fit takes one of parametric, isoflop, data-constrained" in capsys.readouterr().err
