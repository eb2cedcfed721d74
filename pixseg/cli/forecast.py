"""`pixseg forecast train|eval`: forecast future segmentations from past ones (S2S and variants)."""

from pathlib import Path

from pixseg.cli.common import add_device_argument


def register(subparsers):
    parser = subparsers.add_parser("forecast", help="train or evaluate a future-segmentation forecaster")
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")

    train = actions.add_parser("train", help="train a forecaster on sequences in Cityscapes' layout")
    train.add_argument("--data", required=True, help="root holding leftImg8bit_sequence/ and the label folder")
    train.add_argument("--out", default="runs/forecast", help="output folder (checkpoint, metrics log)")
    again = train.add_mutually_exclusive_group()
    again.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    again.add_argument("--overwrite", action="store_true", help="start again, replacing the run in --out")
    train.add_argument("--split", default="train")
    train.add_argument("--model", default="s2s", help="s2s (segmentations only), xs2s (also sees the frames), "
                                                      "xs2xs (also sees and predicts the frames)")
    train.add_argument("--width", type=float, default=1.0, help="hidden channels x this (1.0: as published)")
    train.add_argument("--no-residual", dest="residual", action="store_false",
                       help="the published network: no path adding the newest input to the output")
    train.add_argument("--rollout-steps", type=int, default=1,
                       help="steps rolled out per sample, each prediction fed back (3 for the mid-term model)")
    train.add_argument("--init", default=None,
                       help="forecast checkpoint to start from, e.g. a short-term model to fine-tune with rollout")
    train.add_argument("--crop", type=int, default=64, help="square training patch side (default 64)")
    train.add_argument("--batch-size", type=int, default=4)
    train.add_argument("--iterations", type=int, default=2000)
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    train.add_argument("--lr", type=float, default=1e-3)
    train.add_argument("--checkpoint-every", type=int, default=100)
    train.add_argument("--seed", type=int, default=0)
    _add_layout_arguments(train)
    add_device_argument(train)
    train.set_defaults(func=run_train)

    evaluate = actions.add_parser("eval", help="mIoU of the forecaster, copy-last and flow warping per horizon")
    evaluate.add_argument("--checkpoint", required=True)
    evaluate.add_argument("--data", required=True, help="root holding leftImg8bit_sequence/ and the label folder")
    evaluate.add_argument("--split", default="val")
    evaluate.add_argument("--horizons", default="3,9", help="frames ahead of the last input (default 3,9)")
    evaluate.add_argument("--stride", type=int, default=5, help="one window every this many frames (default 5)")
    evaluate.add_argument("--out", default=None, help="folder for results.json and report.html "
                                                       "(default: forecast_eval_SPLIT beside the checkpoint)")
    add_device_argument(evaluate)
    evaluate.set_defaults(func=run_eval)


def _add_layout_arguments(parser):
    from pixseg.data.sequences import GAP, INPUTS, LABEL_FOLDER, LABEL_SUFFIX

    parser.add_argument("--num-classes", type=int, default=19, help="classes in the labels (default 19)")
    parser.add_argument("--inputs", type=int, default=INPUTS, help=f"past frames seen (default {INPUTS})")
    parser.add_argument("--gap", type=int, default=GAP,
                        help=f"frames between inputs, and forecast per step (default {GAP})")
    parser.add_argument("--labels", default=LABEL_FOLDER, help=f"label folder under --data (default {LABEL_FOLDER})")
    parser.add_argument("--label-suffix", default=LABEL_SUFFIX,
                        help=f"label files are <stem>SUFFIX (default {LABEL_SUFFIX}; "
                             "_gtFine_labelIds.png files are mapped from Cityscapes ids)")


def run_train(args):
    from pixseg.forecast.train import ForecastConfig, train_forecaster
    from pixseg.io import check_output_folder

    check_output_folder(args.out)
    config = ForecastConfig(
        data=args.data, split=args.split, model=args.model, width=args.width, residual=args.residual,
        num_classes=args.num_classes,
        inputs=args.inputs, gap=args.gap, rollout_steps=args.rollout_steps, crop=args.crop,
        batch_size=args.batch_size, iterations=args.iterations, optimizer=args.optimizer, lr=args.lr,
        seed=args.seed, device=args.device, labels=args.labels, label_suffix=args.label_suffix,
        checkpoint_every=args.checkpoint_every, init=args.init)
    print(f"checkpoint: {train_forecaster(config, args.out, resume=args.resume, overwrite=args.overwrite)}")


def run_eval(args):
    from pixseg.forecast.evaluate import evaluate_forecasts, parse_horizons
    from pixseg.io import check_output_folder

    out = check_output_folder(args.out or Path(args.checkpoint).parent / f"forecast_eval_{args.split}")
    results = evaluate_forecasts(args.checkpoint, args.data, out, split=args.split,
                                 horizons=parse_horizons(args.horizons), stride=args.stride, device=args.device)
    width = max(len(m) for m in results["miou"])
    print(f"{'mIoU (%)':<{width}}  " + "  ".join(f"t+{h:<5}" for h in results["horizons"]))
    for method, values in results["miou"].items():
        name = results["model"] if method == "model" else method
        print(f"{name:<{width}}  " + "  ".join(f"{100 * values[h]:<7.2f}" for h in results["horizons"]))
    print(f"report: {out / 'report.html'}")
