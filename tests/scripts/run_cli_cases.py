"""Run `quokka` commands in one process, one after another, and write what each did as JSON:
exit code, stderr, whether a Ray session was started, and whether anything was created in
the case's folder. `python run_cli_cases.py CASES.json OUT.json`, CASES being a list of
{"argv": [...], "folder": "..."}."""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
import traceback
from pathlib import Path

import ray

from quokka_ray.cli import main


def run_case(argv: list[str], folder: Path) -> dict:
    before = sorted(p.name for p in folder.iterdir())
    stderr = io.StringIO()
    os.chdir(folder)
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = main(argv)
        except SystemExit as exit_:
            code = exit_.code
        except BaseException:  # noqa: BLE001 - an escaping exception is what the test looks for
            code = "raised"
            traceback.print_exc()
    created = sorted(set(p.name for p in folder.iterdir()) - set(before))
    return {"code": code, "stderr": stderr.getvalue(), "ray": ray.is_initialized(),
            "created": created}


def main_cases() -> None:
    cases = json.loads(Path(sys.argv[1]).read_text())
    results = [run_case(case["argv"], Path(case["folder"])) for case in cases]
    Path(sys.argv[2]).write_text(json.dumps(results))


if __name__ == "__main__":
    main_cases()
