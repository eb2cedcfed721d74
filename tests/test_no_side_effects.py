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
           [{"wp": 0.5, "miou": 0.4, "fg_recall": 0.6}, {"wp": 0.7, "miou": 0.5, "fg_recall": 0.7}])
print(matplotlib.rcParams._get_backend_or_none(), "matplotlib.pyplot" in sys.modules)
"""


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    env = {**os.environ, "MPLBACKEND": "svg"}
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["svg", "False"]
    assert (tmp_path / "panel.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "sweep.png").read_bytes()[:4] == b"\x89PNG"
