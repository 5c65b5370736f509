"""Read STEPS global batches of BATCH sequences from the shards in FOLDER (its manifest.json)
as one worker does, and print the process's peak resident memory in MB:
`python loader_rss.py FOLDER STEPS BATCH`."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

from quokka_ray.data import BatchPrefetcher, ShardReader


def main() -> None:
    folder, steps, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    manifest = json.loads((Path(folder) / "manifest.json").read_text())
    reader = ShardReader(folder, manifest)
    batches = BatchPrefetcher(reader, seed=0, global_batch_sequences=batch,
                              unique_sequences=len(reader), rows=(0, batch), first_step=0)
    checksum = 0
    for step in range(steps):
        checksum += int(batches.get(step)[:, 0].sum())
    batches.close()
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kilobytes
    print(json.dumps({"peak_rss_mb": peak_mb, "sequences": len(reader), "checksum": checksum}))


if __name__ == "__main__":
    main()
