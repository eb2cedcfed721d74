"""`pixseg experiment`: Liu & Lew's study (3 FCNs x 2 losses x 3 post-processings) with a report."""

from pixseg.cli.common import (add_data_arguments, add_device_argument, add_inference_arguments, data_overrides,
                               inference_overrides, name_list, positive_int)

MODELS = "fcn32s,fcn16s,fcn8s"


def add_experiment_arguments(parser, default_out: str) -> None:
    add_data_arguments(parser, "dataset folder as its archive unpacks (e.g. VOCdevkit/VOC2012); "
                               "default: synthetic data in OUT/data")
    parser.add_argument("--out", default=default_out, help="output folder (rerun to resume)")
    parser.add_argument("--models", default=MODELS, help=f"comma-separated, from {MODELS}")
    parser.add_argument("--pretrained", default=None, help="torchvision vgg16-*.pth for the full budget")
    parser.add_argument("--workers", type=positive_int, default=2,
                        help="processes training models (on a CPU) and computing objectness maps")
    parser.add_argument("--schedule", choices=("staged", "scratch"), default="staged",
                        help="staged: each finer FCN starts from the trained coarser one (Long et al.); "
                             "scratch: every FCN from its own initialisation")
    parser.add_argument("--boundaries", choices=("learned", "gradient"), default="learned",
                        help="objectness boundaries: learned from the training masks first, or training-free")
    add_device_argument(parser)
    add_inference_arguments(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")


def register(subparsers):
    parser = subparsers.add_parser("experiment", help="the paper's study: train, CRF, POS-CRF, tables, report.html")
    add_experiment_arguments(parser, "runs/experiment")
    parser.add_argument("--budget", choices=("quick", "full"), default="quick",
                        help="quick: narrow nets on a CPU; full: the FCN schedule at full width")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.experiment import run_experiment
    from pixseg.io import check_output_folder

    check_output_folder(args.out)
    run_experiment(args.out, args.data, name_list(args.models, "--models"),
                   budget=getattr(args, "budget", "quick"), device=args.device, pretrained=args.pretrained,
                   workers=args.workers, overrides=[*data_overrides(args), *inference_overrides(args),
                                                    *args.overrides],
                   schedule=args.schedule, boundaries=args.boundaries)
