"""An elastic run on a Ray cluster of our own with room for one worker; once its first
checkpoint exists a second node joins. Writes every logged step as JSON:
`python elastic_run.py EXPERIMENT OUT STORAGE`."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import ray
from ray.cluster_utils import Cluster

from quokka_ray.sweep import load_plan
from quokka_ray.sweep.single_run import run_single, single_run_config


def add_node_after(storage: Path, cluster: Cluster) -> None:
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if any(storage.glob("*/step_*")):
            cluster.add_node(num_cpus=1)
            return
        time.sleep(0.1)


def main() -> None:
    experiment_file, out, storage = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3])
    experiment, trials = load_plan(experiment_file)
    _, cfg = single_run_config(experiment, trials, None, None)
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    try:
        ray.init(address=cluster.address)
        threading.Thread(target=add_node_after, args=(storage, cluster), daemon=True).start()
        rows = run_single(cfg, workers=(1, 2), use_gpu=False, cpus_per_worker=1,
                          storage_path=str(storage), name="elastic", resize_check_s=1.0)
        out.write_text(json.dumps(rows))
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
