"""One thread count for every numeric library, so results do not depend on the host's cores."""

from __future__ import annotations


def deterministic(threads: int) -> None:
    """Same results for the same params on any thread count: ``threads`` threads for torch and
    for every BLAS / OpenMP library loaded (scikit-learn's SVD and distance products split their
    sums by thread count too), deterministic kernels (and cuBLAS workspace) where torch has a
    choice. Methods that never import torch skip its part (and its import time)."""
    import os
    import sys

    import scipy.linalg  # noqa: F401  loads SciPy's own OpenBLAS now, so the limit below reaches it
    from threadpoolctl import threadpool_limits

    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    threadpool_limits(threads)
    if "torch" not in sys.modules:
        return
    import torch

    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
