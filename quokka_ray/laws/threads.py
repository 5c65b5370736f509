"""Keep BLAS single-threaded around many tiny optimisations.

L-BFGS-B calls BLAS on vectors of 5 to 10 numbers thousands of times per fit. OpenBLAS's
worker threads spin-wait between such calls; on a machine whose cores are busy (a Ray node, a
CI runner, a parallel test run) that made each call ~50x slower here (a 0.5 s fit took 12 s).
threadpoolctl ships with scikit-learn, which MLflow installs; without it this does nothing.
"""

from __future__ import annotations

import contextlib

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - depends on the environment
    threadpool_limits = None


def single_threaded_blas() -> contextlib.AbstractContextManager:
    """A context in which BLAS libraries use one thread (a no-op without threadpoolctl)."""
    if threadpool_limits is None:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")
