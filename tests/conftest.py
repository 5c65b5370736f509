"""Shared fixtures. Ray is started once per test session (local, 2 CPUs); tests that need a
cluster of their own start and stop exactly their own processes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = Path(__file__).resolve().parent / "experiments"


@pytest.fixture(scope="session")
def ray_session():
    import ray

    from quokka_ray.sweep.driver import start_local_ray

    os.environ.setdefault("RAY_DEDUP_LOGS", "0")
    start_local_ray(num_cpus=2, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: small matmuls gain little from a second thread, and
    OpenMP's spinning threads slow down many times over when the cores are shared (Ray
    workers of other tests, parallel jobs)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def data_cache(tmp_path_factory) -> Path:
    """One shard cache for the whole session: shards are keyed by their config."""
    return tmp_path_factory.mktemp("quokka-cache")


def run_cli_cases(cases: list[tuple[list[str], Path]], scratch: Path,
                  env: dict | None = None) -> list[dict]:
    """Run `quokka` commands (argv, working folder) in one fresh process, one after another:
    each one's exit code, stderr, whether a Ray session started and what it created in its
    folder (tests/scripts/run_cli_cases.py)."""
    import json
    import subprocess
    import sys

    listing, out = scratch / "cli-cases.json", scratch / "cli-results.json"
    listing.write_text(json.dumps([{"argv": argv, "folder": str(folder)} for argv, folder in cases]))
    subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "run_cli_cases.py"),
                    str(listing), str(out)], cwd=REPO, env={**os.environ, **(env or {})},
                   check=True, timeout=600)
    return json.loads(out.read_text())
