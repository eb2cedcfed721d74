"""`pixseg datasets`: the datasets pixseg reads, each with the layout it expects."""


def register(subparsers):
    parser = subparsers.add_parser("datasets", help="list the supported datasets and their on-disk layouts",
                                   description="List the datasets --dataset accepts, the layout each expects "
                                               "and its reader's options; with --data, say which one a folder holds.")
    parser.add_argument("--data", default=None, help="a dataset folder to identify")
    parser.set_defaults(func=run)


def run(args):
    from pixseg.data import DATASETS, dataset_options, detect_dataset

    if args.data is not None:
        name = detect_dataset(args.data)
        print(f"{args.data}: {name} ({DATASETS[name].layout})")
        return
    for name, reader in DATASETS.items():
        options = ", ".join(f"{key}={value!r}" for key, value in dataset_options(name).items())
        print(f"{name}\n  layout:  {reader.layout}")
        if options:
            print(f"  options: {options}")
