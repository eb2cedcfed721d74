"""`pixseg tune-crf`: pick dense-CRF parameters on held-out training images, never on val."""

from pathlib import Path

from pixseg.cli.common import (add_data_arguments, add_device_argument, add_inference_arguments, data_from_args,
                               inference_from_args)


def register(subparsers):
    parser = subparsers.add_parser("tune-crf", help="choose CRF parameters on held-out training images")
    parser.add_argument("--checkpoint", required=True)
    add_data_arguments(parser, "dataset folder (default: the one the model trained on)")
    parser.add_argument("--split", default=None,
                        help="tune on this split instead of the training run's held-out images (never val)")
    parser.add_argument("--trials", type=int, default=24, help="random settings tried beside the presets")
    parser.add_argument("--iterations", type=int, default=5, help="mean-field iterations")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON file for the result (default: beside the checkpoint)")
    add_device_argument(parser)
    add_inference_arguments(parser, batching=False)
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.datasets import check_model_classes, open_split
    from pixseg.engine.inference import prediction_settings
    from pixseg.engine.train import load_trained_model, resolve_device, training_split
    from pixseg.engine.tune_crf import candidate_settings, tune_crf
    from pixseg.io import check_not_inputs, check_output_file, json_text, write_text

    if args.split == "val":
        raise ValueError("--split val: CRF parameters tuned on the split you report inflate its scores; "
                         "use the training run's held-out images (the default) or another split")
    if args.trials < 0 or args.iterations < 1:
        raise ValueError(f"--trials {args.trials} / --iterations {args.iterations}: expected >= 0 and >= 1")
    out = Path(args.out) if args.out else Path(args.checkpoint).parent / "crf.json"
    check_output_file(out)
    check_not_inputs([("--out", out)], [("--checkpoint", args.checkpoint)])
    device = resolve_device(args.device)
    model, config = load_trained_model(args.checkpoint, device)
    inference = inference_from_args(args, config.inference)
    model_classes = config.data.num_classes
    config.data = data_from_args(args, config.data)
    if args.split is not None:
        images = open_split(config.data, args.split)
    else:
        if config.data.holdout <= 0:
            raise ValueError(f"{args.checkpoint} was trained on all of its train split (data.holdout = 0); "
                             "give --split with images it did not train on")
        images = training_split(config, held_out=True)
    check_model_classes(images, model_classes, args.checkpoint)
    result = tune_crf(model, images, device, candidate_settings(args.trials, args.iterations, args.seed),
                      inference=inference)
    write_text(out, json_text({**result, "inference": prediction_settings(inference)}))
    best = result["best"]
    print(f"best on {result['num_images']} held-out images: appearance {best['appearance']}, "
          f"smoothness {best['smoothness']}, mIoU {100 * result['best_miou']:.2f} "
          f"(no CRF {100 * result['no_crf_miou']:.2f})")
    print(f"wrote {out}")
