"""Every architecture in MODELS goes through the whole command line: train, predict with the dense
CRF, eval with the CRF and tune-crf (a narrow version of each, one training step: these check the
path, not the accuracy)."""

import json

import numpy as np
import pytest
from PIL import Image

from pixseg.cli import main
from pixseg.data.synthetic import make_synthetic_voc
from pixseg.engine.zoo import model_spec
from pixseg.models import MODELS, model_options


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_synthetic_voc(tmp_path_factory.mktemp("voc"), n_train=8, n_val=2, size=(40, 40), seed=2,
                              progress=False)
    # An odd-sized image the model never saw, to predict.
    odd = root / "odd.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (37, 29, 3), dtype=np.uint8)).save(odd)
    return root


def narrow(name: str) -> dict:
    """The zoo's quick settings for `name`, narrower still."""
    spec = model_spec(name, "quick")
    return {**spec, "width": 0.0625} if "width" in model_options(name) else spec


@pytest.mark.parametrize("name", MODELS)
def test_train_predict_crf_and_tune_crf_work_for_every_architecture(data, tmp_path, name):
    run = tmp_path / "run"
    assert main(["train", "--config", "zoo_quick", "--data", str(data), "--out", str(run),
                 f"model={json.dumps(narrow(name))}", "data.crop_size=32", "batch_size=2", "iterations=1",
                 "val_every=1", "checkpoint_every=1", "data.holdout=0.25"]) == 0
    checkpoint = str(run / "checkpoint.pt")

    predicted = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", checkpoint, str(data / "odd.jpg"), "--out", str(predicted),
                 "--crf", "dense", "--crf-iterations", "2", "--save-probs"]) == 0
    labels = np.asarray(Image.open(predicted / "odd.png"))
    assert labels.shape == (37, 29) and labels.max() < 21
    probs = np.load(predicted / "odd_probs.npy")
    assert probs.shape == (21, 37, 29) and np.allclose(probs.sum(0), 1, atol=1e-4)

    assert main(["eval", "--checkpoint", checkpoint, "--crf", "dense", "--crf-iterations", "2"]) == 0
    (written,) = run.glob("metrics_val_densecrf_*.json")
    assert 0 <= json.loads(written.read_text())["miou"] <= 1

    assert main(["tune-crf", "--checkpoint", checkpoint, "--trials", "1", "--iterations", "1"]) == 0
    tuned = json.loads((run / "crf.json").read_text())
    assert 0 <= tuned["best_miou"] <= 1 and tuned["best"]
