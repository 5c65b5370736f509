"""An elastic run on a Ray cluster of our own with room for one worker; once its first
checkpoint exists a second node joins. Writes every logged step as JSON:
`python elastic_run.py EXPERIMENT OUT STORAGE`."""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from quokka_ray.data import with_root
from quokka_ray.sweep import load_plan
from quokka_ray.sweep.single_run import run_single, single_run_config


def main() -> None:
    experiment_file, out, storage = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    experiment, trials = load_plan(experiment_file)
    _, cfg = single_run_config(experiment, trials, None, None)
    cfg = replace(cfg, data=with_root(cfg.data, str(storage)))
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    rows: list[dict] = []
    try:
        ray.init(address=cluster.address)
        run = threading.Thread(target=lambda: rows.extend(run_single(
            cfg, workers=(1, 2), use_gpu=False, cpus_per_worker=1, storage_path=str(storage),
            name="elastic", resize_check_s=1.0)), daemon=True)
        run.start()
        # A node can only be added from the main thread (Ray installs signal handlers).
        end = time.monotonic() + 300
        while time.monotonic() < end and not any(storage.glob("elastic-*/step_*")):
            time.sleep(0.1)
        cluster.add_node(num_cpus=1)
        run.join(timeout=600)
        out.write_text(json.dumps(rows))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
