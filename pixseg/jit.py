"""numba's njit with an on-disk cache that cannot go stale: `@jit(parallel=True, ...)`.

numba's own cache (`njit(cache=True)`) checks only the file that defines a kernel: its entries stay
valid while that file's time stamp and size do. pixseg's kernels also compile in code from their
neighbours (inlined helpers such as `pixseg.crf.lanes`, intrinsics such as `pixseg.crf.prefetch`,
constants such as `pixseg.crf.lattice.FASTMATH`), so after an edit of a neighbour, or an upgrade
of pixseg that keeps a file's size and time, numba would load the old machine code.

Here a kernel's cache entries are also keyed by a digest of the source of every module in its
package's folder (pixseg/crf/ for the CRF's kernels): a change anywhere in the folder compiles the
folder's kernels again, on their next call. Kernels must therefore use compiled code only from
their own folder. numba's version and the CPU are in numba's key already.
"""

import functools
import hashlib
from pathlib import Path

from numba import njit
from numba.core.caching import FunctionCache


@functools.lru_cache(maxsize=None)
def sources_digest(folder):
    """sha256 of the names and contents of the .py files in `folder` (a str), in name order."""
    digest = hashlib.sha256()
    for path in sorted(Path(folder).glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


class _FolderCache(FunctionCache):
    """numba's per-function cache, with the digest of the function's folder in every entry's key."""

    def __init__(self, py_func):
        super().__init__(py_func)
        self._folder_digest = sources_digest(str(Path(py_func.__code__.co_filename).resolve().parent))

    def _index_key(self, sig, codegen):
        return super()._index_key(sig, codegen) + (self._folder_digest,)


def jit(**options):
    """numba.njit(**options) (cache must not be given), cached on disk as the module doc says."""
    if "cache" in options:
        raise TypeError("jit caches always; do not pass cache=")

    def decorate(function):
        dispatcher = njit(**options)(function)
        # What Dispatcher.enable_caching does (njit(cache=True)), with the folder-aware cache.
        dispatcher._cache = _FolderCache(function)
        return dispatcher

    return decorate
