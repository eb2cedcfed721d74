"""`pixseg train`: train a model from a YAML config."""

from pathlib import Path

from pixseg.cli.common import add_device_argument


def register(subparsers):
    parser = subparsers.add_parser("train", help="train a segmentation model from a YAML config",
                                   description="Train from a YAML config; key=value pairs override it "
                                               "(e.g. optim.lr=0.01 loss.name=fused).")
    parser.add_argument("--config", required=True, help="YAML file (see configs/)")
    parser.add_argument("--data", default=None, help="dataset folder (overrides data.root)")
    parser.add_argument("--out", default="runs/train", help="output folder (checkpoint, metrics log)")
    parser.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    add_device_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.config import load_config
    from pixseg.engine.train import train

    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.root={Path(args.data)}")
    if args.device != "auto":
        overrides.append(f"device={args.device}")
    config = load_config(args.config, overrides)
    checkpoint = train(config, args.out, resume=args.resume)
    print(f"checkpoint: {checkpoint}")
