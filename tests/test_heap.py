"""The allocator setting is an opt-in: importing pixseg and calling the library leave glibc's malloc
as it was; `keep_freed_memory()` (which the pixseg command calls) keeps freed heap memory for the
next call, unless the user configured glibc's malloc."""

import os
import platform
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(platform.system() != "Linux" or platform.libc_ver()[0] != "glibc",
                                reason="mallopt settings are glibc's")

# Imports pixseg and runs a CRF (and, with OPT_IN, asks for the setting), then allocates and frees
# 94 MB in blocks below numpy's huge-page size (each block's pages are 4 kB), twice to settle, and
# counts the page faults of a third round.
CHURN = """
import resource
import sys
import numpy as np
import pixseg
import pixseg.crf

pixseg.crf.dense_crf(np.zeros((40, 50, 3), np.uint8), np.full((2, 40, 50), 0.5, np.float32), iterations=2)
applied = pixseg.crf.keep_freed_memory() if sys.argv[1] == "OPT_IN" else None

def churn():
    blocks = [np.ones(3_900_000 // 8) for _ in range(24)]
    del blocks

churn(); churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
churn()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def run_churn(opt_in, **environment):
    env = {key: value for key, value in os.environ.items()
           if not key.startswith("MALLOC_") and key != "GLIBC_TUNABLES"}
    result = subprocess.run([sys.executable, "-c", CHURN, "OPT_IN" if opt_in else "NO"], env={**env, **environment},
                            capture_output=True, text=True, check=True)
    applied, faults = result.stdout.split()
    return applied, int(faults)


def test_importing_and_calling_the_library_leaves_malloc_alone():
    """glibc's default returns the freed blocks, and the next round faults its pages in again:
    23,000 faults here, and at least one per 2 MB where the system backs the heap with huge pages."""
    applied, faults = run_churn(False)
    assert applied == "None" and faults > 40, faults


def test_freed_memory_is_reused_without_page_faults_after_opting_in():
    applied, faults = run_churn(True)
    assert applied == "True" and faults < 20, faults


def test_the_users_malloc_settings_win():
    applied, faults = run_churn(True, MALLOC_TRIM_THRESHOLD_="131072")
    assert applied == "False" and faults > 40, faults
