"""`pixseg demo`: the main job on the embedded synthetic data, end to end on a CPU."""

from pixseg.cli.common import add_device_argument


def register(subparsers):
    parser = subparsers.add_parser("demo", help="synthetic data -> train -> evaluate -> panels, on a CPU")
    parser.add_argument("--out", default="runs/demo", help="output folder (rerun to resume)")
    parser.add_argument("--data", default=None, help="dataset folder to use instead of OUT/data")
    add_device_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="training config overrides")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.cli.eval import format_metrics
    from pixseg.data.palette import VOC_CLASSES
    from pixseg.engine.demo import run_demo

    metrics = run_demo(args.out, args.data, args.overrides, args.device)
    print(format_metrics(metrics, VOC_CLASSES))
    print(f"wrote {args.out}/metrics.json and {args.out}/panels.png")
