"""`pixseg predict`: label maps and overlays for image files."""

from pixseg.cli.common import (add_amp_argument, add_crf_arguments, add_device_argument, add_inference_arguments,
                               amp_from_args, inference_from_args, refiner_from_args)


def register(subparsers):
    parser = subparsers.add_parser("predict", help="segment image files with a checkpoint")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--out", required=True, help="folder for <name>.png and <name>_overlay.png")
    parser.add_argument("--save-probs", action="store_true", help="also write <name>_probs.npy (CxHxW)")
    add_device_argument(parser)
    add_amp_argument(parser)
    add_inference_arguments(parser, batching=False)
    add_crf_arguments(parser)
    parser.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from pixseg.engine.predict import predict_files
    from pixseg.engine.train import load_trained_model, resolve_device, trained_metadata
    from pixseg.io import check_output_folder

    check_output_folder(args.out)
    device = resolve_device(args.device)
    model, config = load_trained_model(args.checkpoint, device)
    inference = inference_from_args(args, config.inference)
    refine = refiner_from_args(args, default_cache=Path(args.out) / "pos_cache", image_paths=args.images)
    written = predict_files(model, args.images, args.out, device, refine=refine, save_probs=args.save_probs,
                            metadata=trained_metadata(args.checkpoint), inference=inference,
                            amp=amp_from_args(args, config))
    print(f"wrote {len(written)} label maps to {args.out}")
