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


def call(root):
    """run(2.0) in a fresh process, and whether it came from the cache."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), *sys.path])}
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
