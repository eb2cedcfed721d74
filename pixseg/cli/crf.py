"""`pixseg crf`: refine one image's class probabilities (or unary energies) with the dense CRF."""

from pixseg.crf.params import CRF_PRESETS, DEFAULT_ITERATIONS, DEFAULT_PRESET


def register(subparsers):
    parser = subparsers.add_parser(
        "crf", help="dense CRF on one image and its C x H x W probabilities",
        description="Mean-field inference in the fully connected CRF. Presets: " + "; ".join(
            f"{name}: appearance {p['appearance']}, smoothness {p['smoothness']}"
            for name, p in CRF_PRESETS.items()) + f". Default {DEFAULT_PRESET}.")
    parser.add_argument("--image", required=True, help="the image (RGB; grayscale, palette, RGBA converted)")
    parser.add_argument("--probs", default=None, help=".npy of float C x H x W probabilities summing to 1 over C")
    parser.add_argument("--unary", default=None, help=".npy of float C x H x W energies, used instead of -log(probs)")
    parser.add_argument("--out", required=True, help="label map to write, a palette PNG with VOC colours")
    parser.add_argument("--save-q", default=None, metavar="Q.npy", help="also write the marginals Q (C x H x W)")
    parser.add_argument("--iterations", type=int, default=DEFAULT_ITERATIONS, help="mean-field iterations")
    parser.add_argument("--preset", default=DEFAULT_PRESET, choices=sorted(CRF_PRESETS),
                        help="named kernel parameters")
    parser.add_argument("--appearance", type=float, nargs=3, metavar=("W", "THETA_A", "THETA_B"), default=None,
                        help="appearance kernel weight and bandwidths (pixels, colour levels); overrides the preset")
    parser.add_argument("--smoothness", type=float, nargs=2, metavar=("W", "THETA_G"), default=None,
                        help="smoothness kernel weight and bandwidth (pixels); overrides the preset")
    parser.add_argument("--backend", default="auto", choices=("auto", "numba", "torch"))
    parser.add_argument("--device", default=None, help="torch device for --backend torch (cpu, cuda, ...)")
    parser.set_defaults(func=run)


def run(args):
    import numpy as np

    from pixseg.crf import dense_crf
    from pixseg.data.palette import save_label_png
    from pixseg.data.base import read_image
    from pixseg.io import atomic_path, check_not_inputs, check_output_file

    if args.probs is None and args.unary is None:
        raise ValueError("give --probs (C x H x W probabilities) or --unary (C x H x W energies)")
    check_output_file(args.out)
    if not args.out.lower().endswith(".png"):  # the bytes would be PNG whatever the name says
        raise ValueError(f"--out {args.out}: expected a .png file name (the label map is a palette PNG)")
    if args.save_q is not None:
        check_output_file(args.save_q, "--save-q")
    check_not_inputs([("--out", args.out), ("--save-q", args.save_q)],
                     [("--image", args.image), ("--probs", args.probs), ("--unary", args.unary)])
    image = read_image(args.image)
    options = dict(CRF_PRESETS[args.preset])
    if args.appearance is not None:
        options["appearance"] = tuple(args.appearance)
    if args.smoothness is not None:
        options["smoothness"] = tuple(args.smoothness)
    device = None
    if args.device is not None:
        from pixseg.engine.train import resolve_device

        device = resolve_device(args.device)
    probs = _load_array(args.probs, "--probs")
    unary = _load_array(args.unary, "--unary")
    named = f"--unary {args.unary}" if unary is not None else f"--probs {args.probs}"
    given = unary if unary is not None else probs
    if given.ndim == 3 and given.shape[0] > 256:  # before the CRF runs, not after
        raise ValueError(f"{named} has {given.shape[0]} labels; a palette PNG holds at most 256")
    try:
        labels, q = dense_crf(image, probs, unary=unary, iterations=args.iterations, backend=args.backend,
                              device=device, **options)
    except ValueError as error:
        raise ValueError(f"{named} with --image {args.image}: {error}") from None
    save_label_png(args.out, labels)
    if args.save_q is not None:
        with atomic_path(args.save_q) as tmp, open(tmp, "wb") as file:
            np.save(file, q)
    print(f"wrote {args.out} ({q.shape[0]} labels, {args.iterations} iterations, "
          f"appearance {options['appearance']}, smoothness {options['smoothness']})"
          + (f" and {args.save_q}" if args.save_q else ""))


def _load_array(path, flag):
    import numpy as np

    if path is None:
        return None
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise FileNotFoundError(f"{flag} {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{flag} {path} is not a readable .npy array: {error}") from None
