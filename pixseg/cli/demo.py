"""`pixseg demo`: the main job, the quick budget of the experiment on the embedded synthetic data."""

from pixseg.cli.experiment import add_experiment_arguments, run


def register(subparsers):
    parser = subparsers.add_parser(
        "demo", help="the paper's study at the quick budget on synthetic data (CPU, about half an hour)")
    add_experiment_arguments(parser, "runs/demo")
    parser.set_defaults(func=run)
