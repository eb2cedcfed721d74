"""`pixseg adversarial-study`: one network trained without and with the adversarial term; report.html."""

from pixseg.cli.common import (add_data_arguments, add_device_argument, add_inference_arguments, data_overrides,
                               inference_overrides, positive_int)


def register(subparsers):
    parser = subparsers.add_parser("adversarial-study",
                                   help="train one network without and with the adversarial term (same seed and "
                                        "budget); mIoU, pixel accuracy, region scores, report.html")
    add_data_arguments(parser, "dataset folder as its archive unpacks; default: synthetic data in OUT/data")
    parser.add_argument("--out", default="runs/adversarial", help="output folder (rerun to resume)")
    parser.add_argument("--config", default="adversarial_quick",
                        help="training config with an adversarial section (default: adversarial_quick)")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes training the two runs on a CPU")
    add_device_argument(parser)
    add_inference_arguments(parser, batching=False)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides, both runs")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.adversarial_study import run_adversarial_study

    run_adversarial_study(args.out, args.data, args.config, device=args.device, workers=args.workers,
                          overrides=[*data_overrides(args), *inference_overrides(args), *args.overrides])
