"""Keep freed heap memory mapped for the next CRF call (glibc only; an explicit opt-in).

One dense CRF call on a 500 x 375 image allocates and frees 60 to 110 MB of tables and per-pixel
arrays. By default glibc unmaps blocks above its (moving) mmap threshold when they are freed, and
returns the free top of the heap to the system once it exceeds twice that threshold, so the next
call touches fresh pages again: thousands of page faults per call, each microseconds of system
time on virtual machines, which can add up to a large share of a photo's CRF time when other work
(the network, another library) runs between calls.

`keep_freed_memory` fixes the mmap threshold at glibc's largest (32 MiB: smaller blocks come from
the heap) and lets up to KEEP_BYTES of freed heap stay mapped for reuse. It changes the allocator
of the whole process, so the library never calls it on its own: importing pixseg or calling
dense_crf leaves malloc as it was. A program that runs many CRF calls opts in by calling
`pixseg.crf.keep_freed_memory()` once; the `pixseg` command does so at start. The cost: the
process's resident memory does not shrink below its peak heap use (up to KEEP_BYTES) after a call.
Settings the user gave glibc (the MALLOC_*_ variables or glibc.malloc tunables) win: then nothing
is changed.
"""

import ctypes
import os
import platform

KEEP_BYTES = 256 * 2**20
_MMAP_THRESHOLD_MAX = 32 * 2**20  # glibc's ceiling for M_MMAP_THRESHOLD on 64-bit systems
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameter numbers (malloc.h)
_USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_")


def keep_freed_memory():
    """Ask glibc to keep freed memory for reuse (see the module doc). Returns True if the settings
    were applied; False on another C library or when the user configured glibc's malloc."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    if any(name in os.environ for name in _USER_SETTINGS) or "glibc.malloc." in os.environ.get("GLIBC_TUNABLES", ""):
        return False
    libc = ctypes.CDLL(None)
    # Fixing either value stops glibc's own adjustment of both, so both are set.
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_MAX) and libc.mallopt(_M_TRIM_THRESHOLD, KEEP_BYTES))
