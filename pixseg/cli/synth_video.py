"""`pixseg synth-video`: write synthetic video in Cityscapes' sequence layout, labels for every frame."""


def register(subparsers):
    parser = subparsers.add_parser("synth-video", help="make synthetic video in Cityscapes' sequence layout")
    parser.add_argument("--out", required=True, help="folder to write (it becomes the dataset root)")
    parser.add_argument("--n-train", type=int, default=40, help="training sequences (default 40)")
    parser.add_argument("--n-val", type=int, default=10, help="validation sequences (default 10)")
    parser.add_argument("--frames", type=int, default=30, help="frames per sequence (default 30, as Cityscapes)")
    parser.add_argument("--size", type=int, nargs=2, default=(128, 256), metavar=("H", "W"),
                        help="frame height and width in pixels (default 128 256)")
    parser.add_argument("--seed", type=int, default=0, help="the same seed gives the same sequences")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace the synthetic video already in --out (default: --out must be empty)")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.data.synthetic_video import make_synthetic_video
    out = make_synthetic_video(args.out, n_train=args.n_train, n_val=args.n_val, size=tuple(args.size),
                               frames=args.frames, seed=args.seed, overwrite=args.overwrite)
    print(f"wrote {args.n_train} train + {args.n_val} val sequences of {args.frames} frames "
          f"({args.size[0]}x{args.size[1]}) to {out}")
