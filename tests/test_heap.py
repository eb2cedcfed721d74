"""pixseg.crf keeps freed heap memory for the next call, unless the user configured glibc's malloc."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt settings are glibc's")

# Allocates and frees 94 MB in blocks below numpy's huge-page size (each block's pages are 4 kB),
# twice to settle, then counts the page faults of a third round.
CHURN = """
import resource
import numpy as np
import pixseg.crf

def churn():
    blocks = [np.ones(3_900_000 // 8) for _ in range(24)]
    del blocks

churn(); churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(pixseg.crf.keep_freed_memory(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_churn(**environment):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}
    result = subprocess.run([sys.executable, "-c", CHURN], env={**env, **environment}, capture_output=True, text=True,
                            check=True)
    applied, faults = result.stdout.split()
    return applied == "True", int(faults)


def test_freed_memory_is_reused_without_page_faults():
    applied, faults = run_churn()
    assert applied and faults < 20, faults


def test_the_users_malloc_settings_win():
    """glibc then unmaps the freed blocks and the next round faults its pages in again: 23,000
    faults here, and at least one per 2 MB where the system backs the heap with huge pages."""
    applied, faults = run_churn(MALLOC_TRIM_THRESHOLD_="131072")
    assert not applied and faults > 40, faults
