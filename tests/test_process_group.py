"""Ray Train's controller unpickles a run's backend config: quokka's does not make it import
torch, which Ray's TorchConfig does (about 2 CPU-seconds on the path of every run's start).
The process group it sets up is tested by every Ray Train test (tests/test_ray_train.py runs
1 and 2 gloo workers)."""

from __future__ import annotations

import pickle
import subprocess
import sys

from quokka_ray.train.process_group import ProcessGroupConfig

CHECK = ("import pickle, sys; pickle.loads(sys.stdin.buffer.read()); "
         "print('torch' in sys.modules)")


def _imports_torch(config) -> bool:
    out = subprocess.run([sys.executable, "-c", CHECK], input=pickle.dumps(config),
                         capture_output=True, check=True, timeout=120)
    return out.stdout.decode().strip() == "True"


def test_the_controller_unpickles_the_backend_config_without_torch():
    from ray.train.torch import TorchConfig

    assert not _imports_torch(ProcessGroupConfig(backend="gloo"))
    assert _imports_torch(TorchConfig(backend="gloo"))  # what the controller did before
