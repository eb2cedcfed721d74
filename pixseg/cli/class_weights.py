"""`pixseg class-weights`: class frequencies of a dataset split and the loss weights derived from them."""

from pixseg.cli.common import add_data_arguments, data_from_args

METHOD_NAMES = {"median": "median_frequency", "inverse": "inverse_frequency"}


def register(subparsers):
    parser = subparsers.add_parser("class-weights", help="compute class weights for a weighted loss")
    add_data_arguments(parser, "dataset folder as its archive unpacks", required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--method", choices=tuple(METHOD_NAMES), default="median",
                        help="median: median frequency balancing (Eigen & Fergus); inverse: inverse frequency")
    parser.add_argument("--num-classes", type=int, default=None,
                        help="for datasets without a fixed class list (voc layout, folder); default: the dataset's")
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
    from pixseg.engine.datasets import open_split
    from pixseg.io import check_output_file, json_text, write_text

    if args.out:
        check_output_file(args.out)
    data = data_from_args(args)
    if args.num_classes is not None:
        data.num_classes = args.num_classes
    dataset = open_split(data, args.split)
    method = METHOD_NAMES[args.method]
    freq = class_frequencies(dataset, dataset.num_classes)
    weights = METHODS[method](freq)
    print(format_table(dataset.classes, freq, weights))
    if args.out:
        write_text(args.out, json_text({
            "data": str(args.data), "dataset": dataset.name, "split": args.split, "method": method,
            "classes": list(dataset.classes),
            "pixels": freq[PIXELS].tolist(), "image_pixels": freq[IMAGE_PIXELS].tolist(),
            "weights": weights.tolist()}) + "\n")
        print(f"wrote {args.out}")
