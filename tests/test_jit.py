"""pixseg.jit's on-disk cache: a kernel compiles again when a module it inlines code from changes,
where numba's own cache (njit(cache=True)) keeps loading the old machine code."""

import os
import subprocess
import sys
import textwrap

import pytest

from pixseg.jit import jit

HELPER = textwrap.dedent('''
    from numba import njit

    SCALE = {scale}


    @njit(inline="always")
    def scaled(x):
        return SCALE * x
''')

KERNEL = textwrap.dedent('''
    from numba import njit

    from pixseg.jit import jit
    from package.helper import scaled


    @{decorator}
    def run(x):
        return scaled(x) + 1.0
''')

CALL = "from package.kernel import run; print(run(2.0), run.stats.cache_hits.most_common(1))"


def write_package(root, decorator, scale):
    package = root / "package"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "helper.py").write_text(HELPER.format(scale=scale))
    (package / "kernel.py").write_text(KERNEL.format(decorator=decorator))


def call(root, **variables):
    """run(2.0) in a fresh process (its environment plus `variables`), and whether it came from the cache."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path]), **variables}
    env.pop("NUMBA_CACHE_DIR", None)
    result = subprocess.run([sys.executable, "-c", CALL], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    value, hits = result.stdout.split(" ", 1)
    return float(value), "1)" in hits


@pytest.mark.parametrize("decorator, stale", [("jit()", False), ("njit(cache=True)", True)])
def test_an_edited_dependency_is_compiled_again(tmp_path, decorator, stale):
    write_package(tmp_path, decorator, 3.0)
    assert call(tmp_path) == (7.0, False)
    assert call(tmp_path) == (7.0, True)  # the cache works
    (tmp_path / "package" / "helper.py").write_text(HELPER.format(scale=5.0))  # the kernel's file is not touched
    # numba's cache keeps the old code (the reason for pixseg.jit): the test can tell the two apart.
    assert call(tmp_path) == ((7.0, True) if stale else (11.0, False))


def test_cache_is_not_an_option():
    with pytest.raises(TypeError, match="do not pass cache="):
        jit(cache=True)


def test_a_set_of_flags_is_found_again_by_other_processes(tmp_path):
    """A set's order, so its repr, changes with the process's hash seed; the cache's key must not."""
    write_package(tmp_path, 'jit(fastmath={"nsz", "arcp", "contract", "afn", "reassoc"})', 3.0)
    assert call(tmp_path, PYTHONHASHSEED="1") == (7.0, False)
    assert all(call(tmp_path, PYTHONHASHSEED=seed) == (7.0, True) for seed in ("2", "3", "4"))


def test_other_options_on_the_same_source_compile_again(tmp_path):
    """numba's key leaves the options out: an entry compiled holding the GIL would serve nogil."""
    write_package(tmp_path, 'jit(nogil=__import__("os").environ["NOGIL"] == "1")', 3.0)
    assert call(tmp_path, NOGIL="0") == (7.0, False)
    assert call(tmp_path, NOGIL="1") == (7.0, False)
    assert call(tmp_path, NOGIL="0") == (7.0, True)


def test_an_openmp_setting_stays_in_the_thread_that_made_it():
    """What CRF-as-RNN's workers rely on: their OpenMP (torch's) thread count is theirs alone."""
    import ctypes
    import threading

    import torch

    from pixseg.jit import set_openmp_threads_here

    torch.ones(1).sum()  # torch has loaded OpenMP
    gomp = ctypes.CDLL("libgomp.so.1", mode=os.RTLD_NOLOAD)
    before, torch_before = gomp.omp_get_max_threads(), torch.get_num_threads()
    seen = []

    def worker():
        set_openmp_threads_here(before + 2)
        seen.append(gomp.omp_get_max_threads())

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [before + 2]
    assert (gomp.omp_get_max_threads(), torch.get_num_threads()) == (before, torch_before)
