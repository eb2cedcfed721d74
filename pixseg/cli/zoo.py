"""`pixseg zoo`: every architecture at one budget on one dataset; accuracy, cost and report.html."""

from pixseg.cli.common import (add_data_arguments, add_device_argument, add_inference_arguments, data_overrides,
                               inference_overrides, name_list, positive_int)


def register(subparsers):
    from pixseg.models import MODELS

    parser = subparsers.add_parser("zoo", help="compare the architectures on your data: accuracy with and "
                                               "without the CRF, parameters, GFLOPs, CPU time, report.html")
    add_data_arguments(parser, "dataset folder as its archive unpacks; default: synthetic data in OUT/data")
    parser.add_argument("--out", default="runs/zoo", help="output folder (rerun to resume)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated, from: " + ",".join(MODELS))
    parser.add_argument("--budget", choices=("quick", "full"), default="quick",
                        help="quick: narrow nets from scratch on a CPU; full: the published configurations")
    parser.add_argument("--workers", type=positive_int, default=2, help="processes training models on a CPU")
    add_device_argument(parser)
    add_inference_arguments(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.zoo import run_zoo

    run_zoo(args.out, args.data, name_list(args.models, "--models"), budget=args.budget,
            device=args.device, workers=args.workers,
            overrides=[*data_overrides(args), *inference_overrides(args), *args.overrides])
