"""The `pixseg` command: one module per subcommand, each with `register(subparsers)`."""

import argparse
import importlib
import os
import sys

# Before torch loads OpenMP: its default busy-waiting threads spin against any other process on the
# cores, and a training step on a shared 2-core machine took 3.9 s instead of 0.6 s.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

# Subcommand modules under pixseg.cli, in the order `pixseg --help` lists them. Each module defines
# `register(subparsers)`, which adds its parser and sets `func` (called with the parsed args).
SUBCOMMANDS = (
    "demo",
    "experiment",
    "zoo",
    "adversarial-study",
    "synth",
    "synth-video",
    "train",
    "eval",
    "predict",
    "export",
    "sweep-weights",
    "tune-crf",
    "crf",
    "class-weights",
    "datasets",
    "models",
    "objectness",
    "train-boundaries",
    "forecast",
)


class CommandError(Exception):
    """A user-facing failure: printed as one line, exit status 2, no traceback."""


def build_parser() -> argparse.ArgumentParser:
    from pixseg import __version__

    parser = argparse.ArgumentParser(prog="pixseg", description="Semantic segmentation toolkit.")
    parser.add_argument("--version", action="version", version=f"pixseg {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in SUBCOMMANDS:
        importlib.import_module(f"pixseg.cli.{name.replace('-', '_')}").register(subparsers)
    return parser


def main(argv=None) -> int:
    from pixseg.crf import keep_freed_memory

    args = build_parser().parse_args(argv)
    # The command owns its process, so it opts in to the allocator setting the CRF calls benefit
    # from (pixseg/crf/heap.py); the library never changes it behind a caller's back.
    keep_freed_memory()
    try:
        if "WORLD_SIZE" in os.environ and not getattr(args, "multiprocess", False):
            _refuse_torchrun(args.command)
        return args.func(args) or 0
    except (CommandError, FileNotFoundError, ValueError) as error:
        # Validation errors across the package are ValueError subclasses with messages written for
        # users (they name the file and the value); a traceback would only hide that message.
        print(f"pixseg {args.command}: error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as error:
        # Ctrl-C: where the command stopped (training says how to resume), not a traceback.
        print(f"pixseg {args.command}: interrupted" + (f": {error}" if str(error) else ""), file=sys.stderr)
        return 130


def _refuse_torchrun(command: str) -> None:
    """Every process torchrun starts would run the whole command and write the same files."""
    from pixseg.engine.distributed import launched

    if launched():
        raise CommandError(f"torchrun started {os.environ['WORLD_SIZE']} processes, but only `pixseg train` and "
                           f"`pixseg eval` run on several; run `pixseg {command}` as one process")


if __name__ == "__main__":
    sys.exit(main())
