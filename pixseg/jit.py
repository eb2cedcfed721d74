"""numba's njit with an on-disk cache that cannot go stale (`@jit(parallel=True, ...)`), and
`numba_threads`, how every public entry point of pixseg's parallel kernels picks its thread count.

Every kernel releases the GIL (nogil): they touch no Python objects, and a caller may run them on
several Python threads at once (the CRF-as-RNN layer runs a batch's images side by side).

numba's own cache (`njit(cache=True)`) checks only the file that defines a kernel: its entries stay
valid while that file's time stamp and size do. pixseg's kernels also compile in code from their
neighbours (inlined helpers such as `pixseg.crf.lanes`, intrinsics such as `pixseg.crf.prefetch`,
constants such as `pixseg.crf.lattice.FASTMATH`), so after an edit of a neighbour, or an upgrade
of pixseg that keeps a file's size and time, numba would load the old machine code.

Here a kernel's cache entries are also keyed by a digest of the source of every module in its
package's folder (pixseg/crf/ for the CRF's kernels): a change anywhere in the folder compiles the
folder's kernels again, on their next call. Kernels must therefore use compiled code only from
their own folder. The jit options are in the key too (numba's key leaves them out, so an entry
compiled with the GIL held would serve a kernel declared nogil). numba's version and the CPU are in
numba's key already.
"""

import contextlib
import ctypes
import functools
import hashlib
import numbers
import os
from pathlib import Path

from numba import config, get_num_threads, njit, set_num_threads
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

    def __init__(self, py_func, options):
        super().__init__(py_func)
        self._folder_digest = sources_digest(str(Path(py_func.__code__.co_filename).resolve().parent))
        # Sets (fastmath's flags) sorted: their order, so their repr, changes from process to process.
        self._options = tuple(sorted((name, repr(sorted(value) if isinstance(value, (set, frozenset)) else value))
                                     for name, value in options.items()))

    def _index_key(self, sig, codegen):
        return super()._index_key(sig, codegen) + (self._folder_digest, self._options)


def jit(**options):
    """numba.njit(nogil=True, **options) (cache must not be given), cached on disk as the module
    doc says."""
    if "cache" in options:
        raise TypeError("jit caches always; do not pass cache=")
    options = {"nogil": True, **options}

    def decorate(function):
        dispatcher = njit(**options)(function)
        # What Dispatcher.enable_caching does (njit(cache=True)), with the folder-aware cache.
        dispatcher._cache = _FolderCache(function, options)
        return dispatcher

    return decorate


def thread_count():
    """numba.get_num_threads(), without the side effect of its first call: that call starts numba's
    thread pool, and numba's OpenMP layer then sets OpenMP's thread count to the pool's size
    (NUMBA_NUM_THREADS). torch shares the process's libgomp, so torch would run on that many
    threads from then on. OpenMP's count is put back as it was."""
    gomp = _loaded_openmp()
    if gomp is None:
        return get_num_threads()
    before = gomp.omp_get_max_threads()
    threads = get_num_threads()
    if gomp.omp_get_max_threads() != before:
        gomp.omp_set_num_threads(before)
    return threads


def set_openmp_threads_here(threads):
    """Let OpenMP regions started from the calling thread (torch's operations, MKL's products) use
    `threads` threads. OpenMP keeps this setting per thread, so no other thread is affected: meant
    for worker threads a pixseg function starts and ends itself, never for the caller's thread.
    Does nothing in a process without OpenMP loaded."""
    gomp = _loaded_openmp()
    if gomp is not None:
        gomp.omp_set_num_threads(threads)


def _loaded_openmp():
    """The process's libgomp if something (torch, numba) has loaded it already, else None."""
    try:
        return ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
    except (OSError, AttributeError):
        return None


def check_threads(threads):
    """`threads` as an int, or numba's setting for the calling thread when None; a ValueError
    naming the allowed range otherwise."""
    current = thread_count()  # starts the pool, if not yet, before any parallel kernel does
    if threads is None:
        return current
    limit = config.NUMBA_NUM_THREADS
    if isinstance(threads, bool) or not isinstance(threads, numbers.Integral) or not 1 <= threads <= limit:
        raise ValueError(f"threads must be a whole number from 1 to {limit} (numba's pool, NUMBA_NUM_THREADS), "
                         f"got {threads!r}")
    return int(threads)


@contextlib.contextmanager
def numba_threads(threads=None):
    """Run the block's parallel kernels on `threads` threads (None: numba's setting for the calling
    thread, numba.set_num_threads or NUMBA_NUM_THREADS), then restore the caller's setting.
    numba's setting is per calling thread, so other threads' calls are not affected, and OpenMP's
    (torch's) count is left as it was (see `thread_count`)."""
    threads = check_threads(threads)
    before = get_num_threads()
    set_num_threads(threads)
    try:
        yield threads
    finally:
        set_num_threads(before)
