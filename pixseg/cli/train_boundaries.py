"""`pixseg train-boundaries`: learn a boundary model for the object proposals from a dataset's masks."""


def register(subparsers):
    parser = subparsers.add_parser(
        "train-boundaries", help="learn the objectness boundary model from a dataset's class masks",
        description="Fits a small boundary model to the object outlines of a VOC-layout dataset's class "
                    "masks (a few minutes on a CPU) and writes it to OUT, used by `pixseg objectness "
                    "--boundary-model`, `pixseg eval --crf pos --boundary-model` and the experiment.")
    parser.add_argument("--data", required=True, help="dataset folder holding JPEGImages/ and SegmentationClass/")
    parser.add_argument("--split", default="train", help="image list to learn from (default train)")
    parser.add_argument("--out", required=True, help="model file to write (.npz); an existing file is kept")
    parser.add_argument("--max-images", type=int, default=200,
                        help="learn from at most this many images, spread over the split (default 200)")
    parser.set_defaults(func=run)


def run(args):
    from pathlib import Path

    from tqdm import tqdm

    from pixseg.data import VOCSegmentation
    from pixseg.objectness.learned import train_boundary_model

    out = Path(args.out)
    if out.exists():
        raise ValueError(f"--out {out} already exists; remove it or choose another file")
    if args.max_images < 1:
        raise ValueError(f"--max-images must be at least 1, got {args.max_images}")
    dataset = VOCSegmentation(args.data, args.split)
    step = max(1, len(dataset) // args.max_images)
    indices = list(range(0, len(dataset), step))[: args.max_images]
    with tqdm(total=len(indices), desc="boundary features", unit="img") as bar:
        model = train_boundary_model((dataset[i] for i in indices), progress=lambda _: bar.update())
    model.save(out)
    print(f"learned a boundary model from {len(indices)} images of {args.data} ({args.split}); wrote {out}")
