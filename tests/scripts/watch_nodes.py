"""Record the live nodes of a Ray cluster, once a second, without joining it as a driver:
`python watch_nodes.py GCS_ADDRESS OUT`. Each line of OUT is JSON: seconds since the watch
began and the node type of every live worker node. Runs until it is stopped."""

from __future__ import annotations

import json
import sys
import time

from ray._raylet import GcsClient


def live_worker_types(client: GcsClient) -> list[str]:
    nodes = client.get_all_node_info(timeout=10).values()
    # state 0 is ALIVE in GcsNodeInfo; node_type_name is the autoscaler's node type.
    return sorted(n.node_type_name for n in nodes if n.state == 0 and not n.is_head_node)


def main(address: str, out: str) -> None:
    client = GcsClient(address=address)
    begun = time.monotonic()
    with open(out, "a") as f:
        while True:
            try:
                workers = live_worker_types(client)
            except Exception as err:  # noqa: BLE001 - the cluster may be going away
                workers = None
                print(f"watch_nodes: {err}", file=sys.stderr, flush=True)
            f.write(json.dumps({"t": round(time.monotonic() - begun, 1), "workers": workers}) + "\n")
            f.flush()
            time.sleep(1)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
