"""Export a trained checkpoint to ONNX or TorchScript, with dynamic batch size, height and width.

The exported graph takes what the model takes: float32 N x 3 x H x W images normalised with the
ImageNet mean and std (pixseg.data.transforms.normalize_image), and returns logits N x C x H x W.
Both formats record the model by tracing one example, so each export is run again on images of
other sizes and batch sizes and compared with PyTorch before it is kept: a model whose forward
pass took a size-dependent branch while being traced fails that check instead of being written.
The classes, palette and normalisation go into the file's metadata (ONNX metadata_props, a
TorchScript extra file named pixseg.json).

The valid (unpadded) U-Net predicts an image tile by tile, as many tiles as the image needs, which
a traced graph cannot repeat; its file holds the network that predicts one tile, and the caller
cuts the image into tiles and stitches their logits (UNet.forward is the reference): the input is
N x 3 x (h + 184) x (w + 184), the image's pixels with 92 pixels of context on each side
(mirrored beyond the image), and the output N x C x h x w, with h and w each 16 k - 60 (k >= 4).
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from pixseg.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from pixseg.io import atomic_path, check_not_inputs, check_output_file

FORMATS = ("onnx", "torchscript")
# The traced example and the shapes the export is checked at: smaller and larger, odd and even,
# other batch sizes, so that no shape is a constant in the graph that passes the check.
EXAMPLE_SHAPE = (2, 3, 64, 96)
CHECK_SHAPES = ((1, 3, 45, 71), (3, 3, 97, 130))
# Largest difference from PyTorch's logits accepted, relative to their largest magnitude (ONNX
# Runtime fuses and reorders float32 arithmetic).
TOLERANCE = 1e-4
# The valid U-Net's tile network: inputs of output size + 184, output sizes 20 and 36 traced,
# 4, 52 and 20 checked.
TILE_EXAMPLE_SHAPE = (2, 3, 204, 220)
TILE_CHECK_SHAPES = ((1, 3, 188, 236), (3, 3, 236, 204))
ONNX_OPSET = 17


def export_model(checkpoint: str | Path, fmt: str, out: str | Path, *, overwrite: bool = False) -> dict:
    """Write the checkpoint's model to `out` as `fmt` (onnx or torchscript); returns what was
    checked: {"format", "classes", "check_shapes", "max_difference", "input"}, the difference
    relative to the largest logit. An existing `out` is replaced only with `overwrite`; a failed export or check
    leaves nothing behind."""
    from pixseg.engine.train import load_trained_model, trained_metadata
    from pixseg.models import CRFRNN, UNet
    from pixseg.models.unet import VALID_MARGIN

    if fmt not in FORMATS:
        raise ValueError(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    out = Path(out)
    if out.exists() and not overwrite:
        raise ValueError(f"--out {out} already exists; pass --overwrite to replace it")
    check_output_file(out)
    check_not_inputs([("--out", out)], [("--checkpoint", checkpoint)])
    if fmt == "onnx":
        _require_onnx()
    model, config = load_trained_model(checkpoint, "cpu")
    if any(isinstance(module, CRFRNN) for module in model.modules()):
        raise ValueError(f"checkpoint {checkpoint}: model {config.model['name']} with crf_rnn cannot be exported: "
                         "its CRF-as-RNN layer builds a permutohedral lattice from each image's pixels (a vertex "
                         "count known only at run time, numba kernels on the CPU), which neither ONNX nor "
                         "TorchScript can record; export the same model trained without crf_rnn")
    metadata = trained_metadata(checkpoint)
    extra = {"model": config.model["name"], "classes": metadata["classes"], "palette": metadata["palette"],
             "input": "float32 N x 3 x H x W, RGB in [0, 1] minus mean, divided by std",
             "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "output": "logits N x C x H x W"}
    example_shape, check_shapes = EXAMPLE_SHAPE, CHECK_SHAPES
    if isinstance(model, UNet) and model.valid:
        model, example_shape, check_shapes = UNetTile(model), TILE_EXAMPLE_SHAPE, TILE_CHECK_SHAPES
        extra["input"] = (f"one tile: float32 N x 3 x (h + {2 * VALID_MARGIN}) x (w + {2 * VALID_MARGIN}), "
                          f"the image's pixels with {VALID_MARGIN} of context on each side (mirrored beyond the "
                          "image), normalised with the ImageNet mean and std; h and w each 16 k - 60, k >= 4")
        extra["output"] = "logits N x C x h x w of the tile's centre"
    generator = torch.Generator().manual_seed(0)
    example = torch.randn(example_shape, generator=generator)
    checks = [torch.randn(shape, generator=generator) for shape in check_shapes]
    with torch.no_grad():
        expected = [model(images) for images in checks]
    worst = 0.0
    with atomic_path(out) as tmp:
        if fmt == "onnx":
            _export_onnx(model, example, tmp, extra, config.model["name"])
            run = _onnx_runner(tmp)
        else:
            _export_torchscript(model, example, tmp, extra, config.model["name"])
            run = torch.jit.load(str(tmp))
        for images, logits in zip(checks, expected):
            with torch.no_grad():
                difference = _difference(run(images), logits)
            if not difference <= TOLERANCE * max(1.0, float(logits.abs().max())):
                raise ValueError(f"model {config.model['name']} does not export to {fmt} with a free image size: "
                                 f"on {images.shape[2]} x {images.shape[3]} images the exported graph's logits "
                                 f"differ from PyTorch's by {difference:.3g} (its forward pass depends on the size "
                                 "in a way tracing cannot record)")
            worst = max(worst, difference / max(1.0, float(logits.abs().max())))
    return {"format": fmt, "classes": len(metadata["classes"]), "check_shapes": [list(s) for s in check_shapes],
            "max_difference": worst, "input": extra["input"]}


class UNetTile(torch.nn.Module):
    """The valid U-Net's network for one overlap tile, without the tiling loop around it."""

    def __init__(self, unet):
        super().__init__()
        self.unet = unet

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.unet.network(x)


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ValueError("--format onnx needs the onnx and onnxruntime packages: pip install 'pixseg[export]'") \
            from None


def _difference(got: torch.Tensor, expected: torch.Tensor) -> float:
    if tuple(got.shape) != tuple(expected.shape):
        return float("inf")
    return float((got.float() - expected.float()).abs().max())


def _export_onnx(model, example, path: Path, extra: dict, name: str) -> None:
    import onnx

    # The TorchScript-based exporter: it records shape arithmetic as graph operations, so height
    # and width stay free, and it exports in seconds where the dynamo exporter takes minutes.
    axes = {0: "batch", 2: "height", 3: "width"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (example,), str(path), dynamo=False, input_names=["image"],
                              output_names=["logits"], dynamic_axes={"image": axes, "logits": axes},
                              opset_version=ONNX_OPSET, verbose=False)
    except Exception as error:  # the exporter raises many types; the user needs its first line
        raise ValueError(f"model {name} cannot be exported to ONNX (opset {ONNX_OPSET}): "
                         f"{_first_line(error)}") from None
    graph = onnx.load(str(path))
    for key, value in extra.items():
        graph.metadata_props.add(key=key, value=json.dumps(value))
    onnx.save(graph, str(path))


def _onnx_runner(path: Path):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    # One thread: the check's result must not depend on the machine, and its images are small.
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return lambda images: torch.from_numpy(session.run(["logits"], {"image": images.numpy()})[0])


def _export_torchscript(model, example, path: Path, extra: dict, name: str) -> None:
    try:
        with warnings.catch_warnings(), torch.no_grad():
            # Tracing warns about every Python number it records; the check on another size is the test.
            warnings.simplefilter("ignore")
            traced = torch.jit.trace(model, example, check_trace=False)
    except Exception as error:  # the tracer raises many types; the user needs its first line
        raise ValueError(f"model {name} cannot be traced to TorchScript: {_first_line(error)}") from None
    torch.jit.save(traced, str(path), _extra_files={"pixseg.json": json.dumps(extra)})


def _first_line(error: Exception) -> str:
    """The error's first line up to where exporters append a request for bug reports or a graph dump."""
    text = (str(error).strip().splitlines() or [type(error).__name__])[0]
    for tail in (" Please feel free to request support", " [Caused by"):
        text = text.split(tail)[0]
    return text.strip()
