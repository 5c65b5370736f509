"""What the driver log shows. By default: quokka's own lines (one per trial event, with the
sweep's progress, and the links a user needs), and every warning and error of Ray, Tune, Train
and MLflow; not their start-up notices, per-report lines or database set-up lines. `-v` (or
QUOKKA_VERBOSE=1) shows those too.

Each quieted logger is named here with what it says at INFO that quokka says itself, or that
says nothing a user acts on; their warnings and errors still show. The Ray workers of a local
cluster inherit QUOKKA_VERBOSE and MLflow's setting from this process's environment."""

from __future__ import annotations

import argparse
import logging
import os

VERBOSE_ENV = "QUOKKA_VERBOSE"

#: logger -> the level it is raised to by default, and why.
QUIETED: dict[str, tuple[int, str]] = {
    # "Started a local Ray instance. View the dashboard at ...": quokka prints the dashboard.
    "ray._private.worker": (logging.WARNING, "start-up notice"),
    # "Token authentication is enabled for this Ray cluster": Ray's default for a local
    # cluster, said at WARNING on every start. A token that is refused raises, it is not logged.
    "ray._private.authentication.authentication_token_setup": (logging.ERROR,
                                                                "token-auth notice"),
    # Tune's "Wrote the latest version of all result files ..." and its other INFO lines;
    # a failed trial is logged at ERROR and still shows.
    "ray.tune": (logging.WARNING, "Tune state notices"),
    # Ray Data: "Dataset ... execution finished in 2.25 seconds", per step of the shard
    # preparation, which quokka shows as a progress bar.
    "ray.data._internal.execution.streaming_executor": (logging.WARNING, "per-dataset lines"),
    # "Progress bars disabled": quokka turns Ray Data's bars off and draws its own.
    "ray.data._internal.progress": (logging.ERROR, "progress-bar notice"),
    # "Creating initial MLflow database tables...", "Updating database tables" and the schema
    # migrations behind them, once per new SQLite store.
    "mlflow.store.db.utils": (logging.WARNING, "database set-up"),
    "alembic": (logging.WARNING, "database migrations"),
    # "A new study created in memory with name: optuna", once per study point's search: the
    # driver names each trial it starts.
    "optuna": (logging.WARNING, "study set-up"),
}


def is_verbose() -> bool:
    return os.environ.get(VERBOSE_ENV) == "1"


def set_verbosity(verbose: bool) -> None:
    """Quiet the libraries' notices unless `verbose` (or QUOKKA_VERBOSE=1 was already set)."""
    if verbose:
        os.environ[VERBOSE_ENV] = "1"
    if is_verbose():
        return
    for name, (level, _) in QUIETED.items():
        logger = logging.getLogger(name)
        if logger.level < level:  # a level a user set higher stays
            logger.setLevel(level)
    # "View run ... at: http://..." after every run that ends on a tracking server (trials,
    # the sweep, each fit): the driver names the sweep's run once. MLflow's own switch.
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    # "Downloading artifacts: 100%|...|": a bar for each small file quokka reads back (the
    # stored plan of a sweep that is resumed or fitted). MLflow's own switch.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def add_verbose_argument(parser: argparse.ArgumentParser, default=argparse.SUPPRESS) -> None:
    """-v before or after the command: a command's own flag leaves the top-level value alone
    when it is not given."""
    parser.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="also show Ray's, Tune's, Train's and MLflow's own notices and "
                        "per-report lines (as QUOKKA_VERBOSE=1 does)")
