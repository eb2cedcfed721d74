"""`pixseg sweep-weights`: mIoU and foreground recall against the fused loss weight Wp."""

from pathlib import Path

from pixseg.cli.common import add_device_argument


def register(subparsers):
    parser = subparsers.add_parser("sweep-weights", help="train one model per Wp (Ws = 1 - Wp) and plot the scores")
    parser.add_argument("--config", required=True, help="training config (its loss is replaced by the fused loss)")
    parser.add_argument("--values", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                        help="comma-separated Wp values in [0, 1]")
    parser.add_argument("--data", default=None, help="dataset folder (overrides data.root)")
    parser.add_argument("--out", default="runs/sweep", help="output folder (rerun to resume)")
    add_device_argument(parser)
    parser.add_argument("overrides", nargs="*", metavar="key=value")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.config import load_config
    from pixseg.engine.sweep import parse_values, sweep_weights

    values = parse_values(args.values)
    overrides = list(args.overrides)
    if args.data is not None:
        overrides.append(f"data.root={Path(args.data)}")
    if args.device != "auto":
        overrides.append(f"device={args.device}")
    rows = sweep_weights(load_config(args.config, overrides), values, args.out)
    print(f"{'Wp':>5} {'Ws':>5} {'mIoU':>7} {'fg recall':>9}")
    for row in rows:
        print(f"{row['wp']:5.2f} {row['ws']:5.2f} {100 * row['miou']:7.2f} {100 * row['fg_recall']:9.2f}")
    print(f"wrote {args.out}/sweep.csv and {args.out}/sweep.png")
