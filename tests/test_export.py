"""`pixseg export`: ONNX (run with onnxruntime) and TorchScript files match PyTorch on other sizes."""

import json

import pytest
import torch

from pixseg.cli import main
from pixseg.engine.checkpoint import save_checkpoint
from pixseg.engine.config import load_config
from pixseg.engine.train import build_model
from pixseg.models.unet import mirror_indices

onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra: pip install 'pixseg[export]'")

# Tiny widths of four families: an FCN (crop offsets from the layer geometry), a DeepLab
# (dilated ResNet, ASPP, decoder), a PSPNet (pyramid bins whose bounds depend on the size) and a
# U-Net (skips concatenated at every scale).
MODELS = {
    "fcn8s": {"width": 0.0625, "padding": "compact"},
    "deeplab_v3plus": {"backbone": "resnet18", "width": 0.125},
    "pspnet": {"backbone": "resnet18", "width": 0.125},
    "unet": {"width": 0.0625},
}


def write_checkpoint(path, name, **options):
    """A checkpoint of `name` with random noise on every weight (an FCN's score layers start at
    zero, and zeros would match anything)."""
    config = load_config(None, [f"model={json.dumps({'name': name, **options})}", "data.num_classes=3"])
    torch.manual_seed(0)
    model = build_model(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter), alpha=0.05)
    save_checkpoint(path, {"config": config.to_dict(), "model": model.state_dict()})
    return model.eval()


def run_exported(path, fmt, images):
    if fmt == "onnx":
        session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return torch.from_numpy(session.run(None, {"image": images.numpy()})[0])
    return torch.jit.load(str(path))(images)


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
@pytest.mark.parametrize("name", list(MODELS))
def test_export_matches_pytorch_on_two_sizes(tmp_path, capsys, name, fmt):
    model = write_checkpoint(tmp_path / "model.pt", name, **MODELS[name])
    out = tmp_path / f"{name}.{fmt}"
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", fmt, "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    generator = torch.Generator().manual_seed(1)
    for shape in [(1, 3, 50, 70), (3, 3, 33, 97)]:
        images = torch.randn(shape, generator=generator)
        with torch.no_grad():
            expected = model(images)
        got = run_exported(out, fmt, images)
        assert got.shape == expected.shape == (shape[0], 3, *shape[2:])
        scale = float(expected.abs().max())
        assert scale > 0.1
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, scale))
    if fmt == "onnx":
        import onnx

        metadata = {p.key: json.loads(p.value) for p in onnx.load(str(out)).metadata_props}
    else:
        files = {"pixseg.json": ""}
        torch.jit.load(str(out), _extra_files=files)
        metadata = json.loads(files["pixseg.json"])
    assert metadata["model"] == name and len(metadata["classes"]) == 3 and len(metadata["mean"]) == 3


def test_an_existing_file_is_kept_without_overwrite(tmp_path, capsys):
    write_checkpoint(tmp_path / "model.pt", "fcn8s", **MODELS["fcn8s"])
    out = tmp_path / "model.onnx"
    out.write_bytes(b"earlier")
    args = ["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "torchscript", "--out", str(out)]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "already exists; pass --overwrite" in err and err.count("\n") == 1
    assert out.read_bytes() == b"earlier"
    assert main([*args, "--overwrite"]) == 0
    torch.jit.load(str(out))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.onnx", "model.pt"]  # no temporary left
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "model.pt"), "--overwrite"]) == 2
    assert "--checkpoint" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_valid_unet_exports_its_tile_network_and_the_tiles_stitch_to_the_model(tmp_path, capsys, fmt):
    model = write_checkpoint(tmp_path / "model.pt", "unet", width=0.0625, valid=True, tile=36)
    out = tmp_path / f"unet.{fmt}"
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", fmt, "--out", str(out)]) == 0
    assert "predicts one tile" in capsys.readouterr().out
    # The documented contract: 36 x 36 output tiles, each read from its window with 92 pixels of
    # mirrored context; a 30 x 50 image needs one row of two tiles.
    images = torch.randn(1, 3, 30, 50, generator=torch.Generator().manual_seed(1))
    tiles = []
    for left in (0, 36):
        window = images.index_select(2, mirror_indices(-92, 36 + 92, 30))
        tiles.append(run_exported(out, fmt, window.index_select(3, mirror_indices(left - 92, left + 36 + 92, 50))))
    with torch.no_grad():
        expected = model(images)
    got = torch.cat(tiles, dim=3)[..., :30, :50]
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4 * max(1.0, float(expected.abs().max())))


def test_crf_rnn_models_fail_in_one_line_and_leave_no_file(tmp_path, capsys):
    write_checkpoint(tmp_path / "model.pt", "fcn8s", **MODELS["fcn8s"], crf_rnn=True)
    out = tmp_path / "out" / "model.onnx"
    for fmt in ("onnx", "torchscript"):
        assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", fmt, "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert "its CRF-as-RNN layer builds a permutohedral lattice" in err and err.count("\n") == 1
        assert "Traceback" not in err
        assert not out.parent.exists() or not list(out.parent.iterdir())


def test_onnx_without_the_extra_says_what_to_install(tmp_path, capsys, monkeypatch):
    import sys

    write_checkpoint(tmp_path / "model.pt", "fcn8s", **MODELS["fcn8s"])
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert main(["export", "--checkpoint", str(tmp_path / "model.pt"), "--format", "onnx",
                 "--out", str(tmp_path / "model.onnx")]) == 2
    assert "pip install 'pixseg[export]'" in capsys.readouterr().err
