"""`pixseg train-boundaries`: learn the objectness model (boundaries and proposal ranker) from a dataset's masks."""


def register(subparsers):
    parser = subparsers.add_parser(
        "train-boundaries",
        help="learn the objectness model (boundaries, proposal ranker) from a dataset's class masks",
        description="Fits a small boundary model to the object outlines of a dataset's class masks, then a "
                    "ranker of the proposals those boundaries give (minutes on a CPU), and writes both to OUT, "
                    "for `pixseg objectness --boundary-model` and `pixseg eval/predict --crf pos --boundary-model`.")
    parser.add_argument("--data", required=True, help="dataset folder as its archive unpacks (layout detected)")
    parser.add_argument("--split", default="train", help="image list to learn from (default train)")
    parser.add_argument("--out", required=True, help="model file to write (.npz); an existing file is kept")
    parser.add_argument("--max-images", type=int, default=200,
                        help="learn from at most this many images, spread over the split (default 200)")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.data.datasets import create_dataset
    from pixseg.io import check_output_file
    from pixseg.objectness.learned import train_on_dataset

    out = check_output_file(args.out)
    if out.exists():
        raise ValueError(f"--out {out} already exists; remove it or choose another file")
    if args.max_images < 1:
        raise ValueError(f"--max-images must be at least 1, got {args.max_images}")
    dataset = create_dataset(None, args.data, args.split)
    train_on_dataset(dataset, out, max_images=args.max_images)
    print(f"learned a boundary model and proposal ranker from {min(len(dataset), args.max_images)} images of "
          f"{args.data} ({args.split}); wrote {out}")
