"""`pixseg sweep-weights`: mIoU and foreground recall against the fused loss weight Wp."""

from pixseg.cli.common import add_config_arguments, add_inference_arguments, config_from_args, inference_overrides


def register(subparsers):
    parser = subparsers.add_parser("sweep-weights", help="train one model per Wp (Ws = 1 - Wp) and plot the scores")
    add_config_arguments(parser, "training config (its loss is replaced by the fused loss)")
    parser.add_argument("--values", default="0,0.1,0.2,0.3,0.4,0.5,0.6,0.7,0.8,0.9,1",
                        help="comma-separated Wp values in [0, 1]")
    parser.add_argument("--out", default="runs/sweep", help="output folder (rerun to resume)")
    parser.add_argument("--score-on", choices=("held-out", "val"), default="held-out",
                        help="score each Wp on the held-out part of train (data.holdout; the default, as the "
                             "experiment does) or on val (then the chosen Wp has seen the split you report)")
    add_inference_arguments(parser)
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.sweep import parse_values, sweep_weights

    values = parse_values(args.values)
    args.overrides = [*args.overrides, *inference_overrides(args)]
    rows = sweep_weights(config_from_args(args), values, args.out, score_on=args.score_on)
    print(f"scored on {'the held-out part of train' if args.score_on == 'held-out' else 'val'}")
    print(f"{'Wp':>5} {'Ws':>5} {'mIoU':>7} {'fg recall':>9}")
    for row in rows:
        print(f"{row['wp']:5.2f} {row['ws']:5.2f} {100 * row['miou']:7.2f} {100 * row['fg_recall']:9.2f}")
    print(f"wrote {args.out}/sweep.csv and {args.out}/sweep.png")
