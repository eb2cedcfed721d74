"""`pixseg class-weights`: class frequencies of a dataset split and the loss weights derived from them."""

import json

METHOD_NAMES = {"median": "median_frequency", "inverse": "inverse_frequency"}


def register(subparsers):
    parser = subparsers.add_parser("class-weights", help="compute class weights for a weighted loss")
    parser.add_argument("--data", required=True, help="dataset folder holding JPEGImages/")
    parser.add_argument("--split", default="train")
    parser.add_argument("--method", choices=tuple(METHOD_NAMES), default="median",
                        help="median: median frequency balancing (Eigen & Fergus); inverse: inverse frequency")
    parser.add_argument("--num-classes", type=int, default=21)
    parser.add_argument("--out", default=None, help="JSON file for the weights (default: print only)")
    parser.set_defaults(func=run)


def format_table(class_names, freq, weights) -> str:
    from pixseg.class_weights import IMAGE_PIXELS, PIXELS

    total = freq[PIXELS].sum()
    lines = [f"{'class':<14} {'pixels':>12} {'share %':>8} {'image px':>12} {'weight':>9}"]
    for name, pixels, image_pixels, weight in zip(class_names, freq[PIXELS], freq[IMAGE_PIXELS], weights):
        lines.append(f"{name:<14} {pixels:>12d} {100 * pixels / total:>8.3f} {image_pixels:>12d} {weight:>9.4f}")
    return "\n".join(lines)


def run(args):
    from pixseg.class_weights import IMAGE_PIXELS, METHODS, PIXELS, class_frequencies
    from pixseg.data import VOCSegmentation
    from pixseg.io import write_text

    dataset = VOCSegmentation(args.data, args.split, num_classes=args.num_classes)
    method = METHOD_NAMES[args.method]
    freq = class_frequencies(dataset, args.num_classes)
    weights = METHODS[method](freq)
    print(format_table(dataset.classes, freq, weights))
    if args.out:
        write_text(args.out, json.dumps({
            "data": str(args.data), "split": args.split, "method": method, "classes": list(dataset.classes),
            "pixels": freq[PIXELS].tolist(), "image_pixels": freq[IMAGE_PIXELS].tolist(),
            "weights": weights.tolist()}, indent=2) + "\n")
        print(f"wrote {args.out}")
