"""Library code leaves its host process alone: plotting draws on figures of its own, without
switching matplotlib's global backend or loading pyplot."""

import os
import subprocess
import sys

SCRIPT = """
import sys
import matplotlib
import numpy as np
from pixseg.engine.sweep import plot_sweep
from pixseg.viz import save_panel

out = sys.argv[1]
save_panel(out + "/panel.png", [[np.zeros((8, 12, 3), np.uint8)] * 2], ["a", "b"])
plot_sweep(__import__("pathlib").Path(out) / "sweep.png",
           [{"wp": 0.5, "miou": 0.4, "fg_recall": 0.6}, {"wp": 0.7, "miou": 0.5, "fg_recall": 0.7}], "val")
print(matplotlib.rcParams._get_backend_or_none(), "matplotlib.pyplot" in sys.modules)
"""


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["svg", "False"]
    assert (tmp_path / "panel.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"


def test_no_library_module_switches_the_backend_or_caches_kernels_staleably():
    """Scans the package: matplotlib.use() changes every caller's plots, and njit(cache=True)
    caches kernels that can go stale (pixseg.jit.jit is the cache that cannot)."""
    from pathlib import Path

    import pixseg

    root = Path(pixseg.__file__).parent
    offenders = [f"{path.relative_to(root)}: {pattern}" for path in sorted(root.rglob("*.py"))
                 for pattern in ("matplotlib.use(", "cache=True") if pattern in path.read_text()
                 and path.name != "jit.py"]
    assert offenders == []
