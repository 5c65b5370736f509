"""Published coefficients the fitters are checked against and the plots overlay.

Sources are in reference/README.md beside this file (copied from the project's shared data
notes), with the published data sets themselves. Units as in the papers: N parameters
(Chinchilla: total; Quokka: non-embedding), D tokens, C FLOPs.
"""

from __future__ import annotations

from pathlib import Path

from .data_constrained import DataConstrainedLaw
from .parametric import ParametricFit
from .powerlaw import PowerLawFit

#: The published data sets (package data): Chinchilla's points, Quokka's IsoFLOP points and
#: data-constrained curves, and the README that says where each comes from.
REFERENCE_DIR = Path(__file__).resolve().parent / "reference"


def reference_csv(name: str) -> Path:
    """The path of reference data set `name` (e.g. "quokka_isoflop_points.csv")."""
    path = REFERENCE_DIR / name
    if not path.is_file():
        available = ", ".join(sorted(p.name for p in REFERENCE_DIR.glob("*.csv")))
        raise FileNotFoundError(f"no reference data set {name!r}; available: {available}")
    return path

#: Chinchilla's law as refitted by Besiroglu et al. (2024) on Hoffmann et al.'s Figure 4 data,
#: with their 95% bootstrap intervals. Its N is *total* parameters.
CHINCHILLA_BESIROGLU = ParametricFit(
    E=1.82,
    A=482.0,
    B=2085.0,
    alpha=0.348,
    beta=0.366,
    intervals={
        "E": (1.769, 1.871),
        "A": (285.0, 744.0),
        "B": (1042.0, 5810.0),
        "alpha": (0.317, 0.373),
        "beta": (0.331, 0.415),
    },
)

#: Quokka approach 2 (Ni et al. 2025, eq. 13), fitted on masked DLM runs; N non-embedding.
QUOKKA_EQ13 = ParametricFit(E=2.413, A=798.6, B=4604.9, alpha=0.379, beta=0.378)

#: Quokka approach 1 (IsoFLOP profiles): N_opt = 0.0216 C^0.514, D_opt = 7.7 C^0.486.
QUOKKA_N_OPT = PowerLawFit(k=0.0216, exponent=0.514)
QUOKKA_D_OPT = PowerLawFit(k=7.7, exponent=0.486)

#: Quokka eq. 15: eq. 14 fitted on 23,145 data-constrained runs (final validation loss), E ~ 0.
QUOKKA_EQ15 = DataConstrainedLaw(
    A=1535.23,
    alpha=0.42,
    B=54.21,
    beta=0.13,
    p_e=1.49,
    c_p=254.35,
    m_p=0.39,
    k_p=0.55,
    gamma=0.40,
    E=0.0,
)

#: Quokka Table 5: compute-optimal (N, C FLOPs, D tokens) from eq. 13.
QUOKKA_TABLE5 = (
    (400e6, 1.06e20, 44.3e9),
    (1e9, 6.68e20, 111.2e9),
    (10e9, 6.74e22, 1.1e12),
    (67e9, 3.05e24, 7.6e12),
    (1e12, 6.86e26, 114.3e12),
)

#: DeepSeek LLM (2024): lr_opt = 0.3118 C^-0.1250, B_opt = 0.2920 C^0.3271 tokens.
DEEPSEEK_LR_OPT = PowerLawFit(k=0.3118, exponent=-0.1250)
DEEPSEEK_BATCH_OPT = PowerLawFit(k=0.2920, exponent=0.3271)
