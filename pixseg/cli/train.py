"""`pixseg train`: train a model from a YAML config; launched by torchrun, on several processes."""

from pixseg.cli.common import add_config_arguments, config_from_args


def register(subparsers):
    parser = subparsers.add_parser("train", help="train a segmentation model from a YAML config",
                                   description="Train from a YAML config; key=value pairs override it "
                                               "(e.g. optim.lr=0.01 loss.name=fused). Launched by torchrun "
                                               "(torchrun --nproc_per_node N -m pixseg train ...), every "
                                               "process trains one DistributedDataParallel model.")
    add_config_arguments(parser, "YAML file, or the name of a packaged config (e.g. fcn8s_voc)")
    parser.add_argument("--out", default="runs/train", help="output folder (checkpoint, metrics log)")
    again = parser.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the run in --out")
    again.add_argument("--overwrite", action="store_true", help="start again, replacing the run in --out")
    # The one subcommand torchrun may start several of (pixseg.cli.main refuses the others).
    parser.set_defaults(func=run, multiprocess=True)


def run(args):
    from pixseg.engine import distributed
    from pixseg.engine.train import resolve_device, train

    config = config_from_args(args)
    with distributed.process_group(resolve_device(config.device)):
        checkpoint = train(config, args.out, resume=args.resume, overwrite=args.overwrite)
        if distributed.is_main():
            print(f"checkpoint: {checkpoint}")
