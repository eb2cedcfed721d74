"""Arguments shared by several subcommands: device, dataset, inference mode and CRF post-processing."""

from __future__ import annotations

import argparse
import dataclasses
import json

from pixseg.engine.inference import MODES, InferenceConfig, check_inference
from pixseg.engine.refine import CRF_MODES, make_refiner


def positive_int(text: str) -> int:
    """argparse type for a count of processes or items: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return value


def name_list(text: str, flag: str) -> list[str]:
    """Comma-separated names; none at all is an error (an empty list must not mean 'all')."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise ValueError(f"{flag} {text!r}: expected one or more comma-separated names")
    return names


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")


def add_amp_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=None,
                        help="run the network under autocast (bfloat16 on CPU, float16 on CUDA); "
                             "default: as the checkpoint trained (its amp setting)")


def amp_from_args(args, config) -> bool:
    """--amp / --no-amp, else the trained config's amp."""
    return config.amp if args.amp is None else args.amp


def add_data_arguments(parser: argparse.ArgumentParser, data_help: str, required: bool = False) -> None:
    """--data DIR, --dataset NAME and --data-option KEY=VALUE: which dataset a command reads."""
    parser.add_argument("--data", default=None, required=required, help=data_help)
    parser.add_argument("--dataset", default=None,
                        help="dataset name (`pixseg datasets` lists them); default: detected from the layout")
    parser.add_argument("--data-option", action="append", default=[], metavar="KEY=VALUE",
                        help="an option of the dataset's reader, e.g. num_classes=59 for pascal_context")


def data_options(args) -> dict:
    """--data-option KEY=VALUE pairs as a dict; values are YAML (num_classes=59 is a number)."""
    import yaml

    options = {}
    for pair in args.data_option:
        key, sep, value = pair.partition("=")
        if not sep or not key.isidentifier():
            raise ValueError(f"--data-option {pair!r}: expected KEY=VALUE, e.g. num_classes=59")
        options[key] = yaml.safe_load(value)
    return options


def data_overrides(args) -> list[str]:
    """--data, --dataset and --data-option as config overrides (data.root=..., data.options.KEY=...)."""
    overrides = [f"data.options.{key}={json.dumps(value)}" for key, value in data_options(args).items()]
    # Quoted, so that YAML reads a folder named 2012 or yes as text.
    if args.data is not None:
        overrides.append(f"data.root={json.dumps(str(args.data))}")
    if args.dataset is not None:
        overrides.append(f"data.dataset={json.dumps(args.dataset)}")
    return overrides


def data_from_args(args, trained=None):
    """The data section to read: `trained` (a checkpoint's, or None) with --data, --dataset and
    --data-option applied. A --data folder of another dataset than the trained one drops the trained
    dataset's options and class count."""
    import dataclasses

    from pixseg.data import detect_dataset
    from pixseg.engine.config import DataConfig

    data = trained or DataConfig()
    if args.data is not None:
        name = args.dataset or detect_dataset(args.data)
        if name != data.dataset:
            data = dataclasses.replace(data, dataset=name, num_classes=None, options={})
        data = dataclasses.replace(data, root=str(args.data))
    elif args.dataset is not None:
        data = dataclasses.replace(data, dataset=args.dataset)
    return dataclasses.replace(data, options={**data.options, **data_options(args)})


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    """--config, the data arguments, --device and trailing key=value overrides, as every training
    command takes."""
    parser.add_argument("--config", required=True, help=config_help)
    add_data_arguments(parser, "dataset folder (overrides data.root)")
    add_device_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def config_from_args(args):
    from pixseg.engine.config import load_config

    overrides = [*data_overrides(args), *args.overrides]
    if args.device != "auto":
        overrides.append(f"device={json.dumps(args.device)}")
    return load_config(args.config, overrides)


# The command-line flag of each inference setting.
INFERENCE_FLAGS = {"mode": "--mode", "crop": "--crop", "stride": "--stride", "scales": "--scales", "flip": "--flip",
                   "batch_size": "--eval-batch-size", "workers": "--eval-workers"}


def add_inference_arguments(parser: argparse.ArgumentParser, batching: bool = True) -> None:
    """--mode, --crop, --stride, --scales, --flip (and, for commands that score a split,
    --eval-batch-size and --eval-workers); unset ones keep the config's inference section."""
    group = parser.add_argument_group("inference (default: the config's inference section, else whole images)")
    group.add_argument("--mode", choices=MODES, default=None,
                       help="whole: the image in one pass; slide: windows of --crop, overlapping logits averaged; "
                            "multiscale: the image at each of --scales (and mirrored with --flip), logits averaged")
    group.add_argument("--crop", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="window size for slide (and for multiscale, which then slides at each scale)")
    group.add_argument("--stride", type=int, nargs=2, metavar=("H", "W"), default=None,
                       help="step between windows (default: two thirds of the crop)")
    group.add_argument("--scales", default=None, metavar="S,S,...", help="multiscale: e.g. 0.75,1,1.25")
    group.add_argument("--flip", action=argparse.BooleanOptionalAction, default=None,
                       help="multiscale: also predict the mirrored image")
    if batching:
        group.add_argument("--eval-batch-size", type=int, default=None, dest="batch_size",
                           help="images per forward pass when scoring a split (results do not change)")
        group.add_argument("--eval-workers", type=int, default=None, dest="workers",
                           help="processes reading images when scoring a split (results do not change)")


def inference_arguments(args) -> dict:
    """The inference settings given on the command line, as InferenceConfig field values."""
    given = {key: getattr(args, key, None) for key in INFERENCE_FLAGS}
    given = {key: value for key, value in given.items() if value is not None}
    for key in ("crop", "stride"):
        if key in given:
            given[key] = tuple(given[key])
    if "scales" in given:
        try:
            given["scales"] = tuple(float(value) for value in given["scales"].split(","))
        except ValueError:
            raise ValueError(f"--scales {given['scales']!r}: expected numbers separated by commas, "
                             "e.g. 0.75,1,1.25") from None
    return given


def inference_from_args(args, base: InferenceConfig) -> InferenceConfig:
    """`base` (a trained config's inference section) with the command line's settings; a --mode
    given starts that mode's windows and scales afresh, so the trained mode's leave no trace."""
    given = inference_arguments(args)
    from_flags = set(given)
    if "mode" in given:
        base = dataclasses.replace(base, crop=None, stride=None, scales=(1.0,), flip=False)
        from_flags |= {"crop", "stride", "scales", "flip"}
    return check_inference(dataclasses.replace(base, **given),
                           lambda key: INFERENCE_FLAGS[key] if key in from_flags else f"inference.{key}")


def inference_overrides(args) -> list[str]:
    """The command line's inference settings as config overrides (inference.mode=slide, ...),
    checked now, before any work."""
    inference_from_args(args, InferenceConfig())
    return [f"inference.{key}={json.dumps(list(value) if isinstance(value, tuple) else value)}"
            for key, value in inference_arguments(args).items()]


def add_crf_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("post-processing")
    group.add_argument("--crf", choices=CRF_MODES, default="none",
                       help="none: argmax; dense: fully connected CRF; pos: CRF with pixel objectness; "
                            "center: CRF with a centred Gaussian in place of objectness (baseline)")
    group.add_argument("--crf-preset", default=None, help="named CRF parameter set (see `pixseg crf --help`)")
    group.add_argument("--crf-iterations", type=int, default=None, help="mean-field iterations")
    group.add_argument("--crf-appearance", type=float, nargs=3, metavar=("W", "THETA_A", "THETA_B"),
                       default=None, help="appearance kernel weight and bandwidths (position, colour)")
    group.add_argument("--crf-smoothness", type=float, nargs=2, metavar=("W", "THETA_G"), default=None,
                       help="smoothness kernel weight and position bandwidth")
    group.add_argument("--pos-scale", type=float, default=None,
                       help="weight on pixel objectness scaled to a maximum of 1 (POS-CRF; default "
                            "pixseg.crf.params.DEFAULT_POS_SCALE)")
    group.add_argument("--pos-cache", default=None,
                       help="folder caching objectness maps by image content (default: OUT/pos_cache)")
    group.add_argument("--pos-workers", type=int, default=1,
                       help="with --crf pos: processes computing the objectness maps up front")
    group.add_argument("--boundary-model", default=None,
                       help="with --crf pos: boundary model from `pixseg train-boundaries` for the objectness "
                            "(default: training-free boundaries)")


def crf_options_from_args(args) -> dict:
    from pixseg.crf import CRF_PRESETS

    options = {}
    if args.crf_preset is not None:
        if args.crf_preset not in CRF_PRESETS:
            raise ValueError(f"--crf-preset {args.crf_preset!r} is not one of {', '.join(CRF_PRESETS)}")
        options.update(CRF_PRESETS[args.crf_preset])
    if args.crf_iterations is not None:
        options["iterations"] = args.crf_iterations
    if args.crf_appearance is not None:
        options["appearance"] = tuple(args.crf_appearance)
    if args.crf_smoothness is not None:
        options["smoothness"] = tuple(args.crf_smoothness)
    return options


def boundary_options(model) -> dict:
    """Objectness options for a learned boundary model file (checked now), or none for the default."""
    if model is None:
        return {}
    from pixseg.objectness.learned import load_boundary_model

    load_boundary_model(model)
    return {"boundary_method": "learned", "boundary_model": str(model)}


def refiner_from_args(args, default_cache, image_paths=()):
    """The post-processing the arguments ask for; with --crf pos the objectness maps of
    `image_paths` are computed first (in --pos-workers processes) into the cache."""
    if args.crf == "none":
        return None
    cache = args.pos_cache or default_cache
    pos_options = boundary_options(args.boundary_model)
    if args.crf == "pos":
        from pixseg.objectness.cache import precompute

        precompute(list(image_paths), cache, workers=args.pos_workers, **pos_options)
    return make_refiner(args.crf, crf_options=crf_options_from_args(args), pos_scale=args.pos_scale,
                        pos_cache=cache, pos_options=pos_options)
