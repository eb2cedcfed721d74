"""`pixseg train`: train a model from a YAML config."""

from pixseg.cli.common import add_config_arguments, config_from_args


def register(subparsers):
    parser = subparsers.add_parser("train", help="train a segmentation model from a YAML config",
                                   description="Train from a YAML config; key=value pairs override it "
                                               "(e.g. optim.lr=0.01 loss.name=fused).")
    add_config_arguments(parser, "YAML file, or the name of a packaged config (e.g. fcn8s_voc)")
    parser.add_argument("--out", default="runs/train", help="output folder (checkpoint, metrics log)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out")
    again.add_argument("--overwrite", action="store_true", help="start again, replacing the run in --out")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.train import train

    checkpoint = train(config_from_args(args), args.out, resume=args.resume, overwrite=args.overwrite)
    print(f"checkpoint: {checkpoint}")
