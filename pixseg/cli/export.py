"""`pixseg export`: a checkpoint's model as an ONNX or TorchScript file with free height and width."""

from pixseg.engine.export import FORMATS


def register(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a checkpoint's model as ONNX or TorchScript (dynamic batch, height and width)",
        description="The file takes float32 N x 3 x H x W images normalised with the ImageNet mean and std and "
                    "returns logits N x C x H x W; it is checked against PyTorch on other image sizes before "
                    "it is kept. ONNX needs pip install 'pixseg[export]'.")
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--format", choices=FORMATS, required=True)
    parser.add_argument("--out", required=True, help="file to write (.onnx, .pt)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.engine.export import export_model

    result = export_model(args.checkpoint, args.format, args.out, overwrite=args.overwrite)
    sizes = " and ".join(f"{shape[2]} x {shape[3]}" for shape in result["check_shapes"])
    print(f"wrote {args.out} ({args.format}, {result['classes']} classes; on {sizes} images its logits differ "
          f"from PyTorch's by at most {result['max_difference']:.2g} of their largest magnitude)")
    if result["input"].startswith("one tile"):
        print(f"the valid U-Net's file predicts {result['input']}; cut images into tiles as pixseg's overlap-tile "
              "prediction does")
