"""Test-session settings: `make test` runs two pytest workers on two cores, one thread each."""

import os

# Before numba and torch start their thread pools: two workers with two threads each on two cores
# run several times slower than with one each.
os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import torch  # noqa: E402

torch.set_num_threads(1)
