"""`pixseg synth`: write a synthetic segmentation dataset in the Pascal VOC 2012 layout."""


def register(subparsers):
    parser = subparsers.add_parser("synth", help="make a synthetic dataset in the VOC 2012 layout")
    parser.add_argument("--out", required=True, help="folder to write (it becomes the dataset root)")
    parser.add_argument("--n-train", type=int, default=1000, help="training images (default 1000)")
    parser.add_argument("--n-val", type=int, default=250, help="validation images (default 250)")
    parser.add_argument("--size", type=int, nargs=2, default=(256, 256), metavar=("H", "W"),
                        help="image height and width in pixels (default 256 256)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same dataset")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes rendering in parallel; the files do not depend on it (default 1)")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the synthetic dataset already in --out (default: --out must be empty)")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.data.synthetic import make_synthetic_voc

    out = make_synthetic_voc(args.out, n_train=args.n_train, n_val=args.n_val, size=tuple(args.size),
                             seed=args.seed, workers=args.workers, overwrite=args.overwrite)
    print(f"wrote {args.n_train} train + {args.n_val} val images ({args.size[0]}x{args.size[1]}) to {out}")
