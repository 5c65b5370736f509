"""The record of a sweep's plan (each trial's name and full settings, and the settings its
experiment file was given with `--set`), kept beside its Tune state and on its MLflow sweep
run, so that running a changed experiment under an existing name stops before anything starts
and says what changed."""

from __future__ import annotations

import json

import pyarrow.fs as pafs

from quokka_ray.config import ConfigError
from quokka_ray.sweep.grid import TrialSpec
from quokka_ray.sweep.identity import canonical, changed_settings, digest

PLAN_FILE = "quokka_plan.json"


def plan_record(trials: list[TrialSpec], file_settings: dict | None = None) -> dict:
    """The digest names the trials' settings alone, as it did before files took settings, so
    that a sweep stored then is still recognised; the file's settings are compared beside it."""
    settings = {t.name: t.settings for t in trials}
    record = {"digest": digest(settings), "trials": settings}
    if file_settings:
        record["file_settings"] = canonical(file_settings)
    return record


def read_plan(folder: str) -> dict | None:
    """The plan stored in `folder` (a local path or a pyarrow URI), or None."""
    fs, path = pafs.FileSystem.from_uri(_uri(folder))
    target = f"{path}/{PLAN_FILE}"
    if fs.get_file_info(target).type != pafs.FileType.File:
        return None
    with fs.open_input_stream(target) as stream:
        return json.loads(stream.read().decode())


def write_plan(folder: str, record: dict) -> None:
    fs, path = pafs.FileSystem.from_uri(_uri(folder))
    fs.create_dir(path, recursive=True)
    with fs.open_output_stream(f"{path}/{PLAN_FILE}") as stream:
        stream.write(json.dumps(record, indent=1, sort_keys=True).encode())


def check_unchanged(stored: dict | None, planned: dict, *, experiment: str, where: str) -> None:
    """Raise ConfigError naming the settings that changed if `stored` is another plan."""
    if stored is None:
        return
    old_files, new_files = stored.get("file_settings", {}), planned.get("file_settings", {})
    if stored.get("digest") == planned["digest"] and old_files == new_files:
        return
    changes = [f"--set {key}: {_show(old_files, key)} -> {_show(new_files, key)}"
               for key in sorted(old_files.keys() | new_files.keys())
               if _show(old_files, key) != _show(new_files, key)]
    changes += changed_settings(stored.get("trials", {}), planned["trials"])
    shown = "; ".join(changes[:6]) + (f"; and {len(changes) - 6} more" if len(changes) > 6 else "")
    raise ConfigError(
        f"experiment {experiment!r} already ran with other settings ({where}): {shown}. "
        "Give the changed experiment a new name (Experiment.name), or remove the old sweep")


def _show(settings: dict, key: str) -> str:
    return json.dumps(settings[key]) if key in settings else "(absent)"


def _uri(folder: str) -> str:
    return folder if "://" in folder else f"file://{folder}"
