"""Arguments shared by several subcommands: device and CRF post-processing."""

from __future__ import annotations

import argparse

from pixseg.engine.refine import CRF_MODES, make_refiner


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda, cuda:1 ...")


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str) -> None:
    """--config, --data, --device and trailing key=value overrides, as every training command takes."""
    parser.add_argument("--config", required=True, help=config_help)
    parser.add_argument("--data", default=None, help="dataset folder (overrides data.root)")
    add_device_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value")


def config_from_args(args):
    from pixseg.engine.config import load_config

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.root={args.data}")
    if args.device != "auto":
        overrides.append(f"device={args.device}")
    return load_config(args.config, overrides)


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
    group.add_argument("--pos-scale", type=float, default=1.0, help="scale on pixel objectness (POS-CRF)")
    group.add_argument("--pos-cache", default=None,
                       help="folder caching objectness maps by image content (default: OUT/pos_cache)")
    group.add_argument("--pos-workers", type=int, default=1,
                       help="with --crf pos: processes computing the objectness maps up front")


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


def refiner_from_args(args, default_cache, image_paths=()):
    """The post-processing the arguments ask for; with --crf pos the objectness maps of
    `image_paths` are computed first (in --pos-workers processes) into the cache."""
    if args.crf == "none":
        return None
    cache = args.pos_cache or default_cache
    if args.crf == "pos":
        from pixseg.objectness.cache import precompute

        precompute(list(image_paths), cache, workers=args.pos_workers)
    return make_refiner(args.crf, crf_options=crf_options_from_args(args), pos_scale=args.pos_scale,
                        pos_cache=cache)
