"""MkDocs hook: pages that describe code are generated from it at build time, so they stay true
while models, datasets and subcommands are added. A page asks for a generated block with a line
`<!-- generated: NAME -->`, NAME one of GENERATORS."""

import inspect
import re

MARKER = re.compile(r"^<!-- generated: (\w+) -->$", re.M)


def _first_line(obj):
    doc = inspect.getdoc(obj) or ""
    return doc.split("\n\n")[0].replace("\n", " ").replace("|", "\\|").replace("<", "&lt;")


def _options(options):
    return ", ".join(f"`{name}={value!r}`" for name, value in options.items()) or "none"


def cli_reference():
    """Every subcommand's help, as argparse prints it."""
    from pixseg.cli import build_parser

    parser = build_parser()
    parser.prog = "pixseg"
    return "\n".join(_help_blocks(parser, "pixseg"))


def _help_blocks(parser, title):
    """This parser's help, then that of each subcommand below it (`pixseg forecast train` too)."""
    blocks = [f"\n## {title}\n", "```text", parser.format_help().rstrip(), "```"]
    for action in parser._actions:
        if action.__class__.__name__ == "_SubParsersAction":
            for name, subparser in action.choices.items():
                blocks += _help_blocks(subparser, f"{title} {name}")
    return blocks


def model_zoo():
    """The networks of pixseg.models.MODELS and the backbones of BACKBONES with their options."""
    from pixseg.models import MODELS, model_options
    from pixseg.models.backbones import BACKBONES, keyword_options

    rows = ["| model | what it is | options (defaults) |", "|---|---|---|"]
    rows += [f"| `{name}` | {_first_line(builder)} | {_options(model_options(name))} |"
             for name, builder in MODELS.items()]
    rows += ["", "| backbone | what it is | options (defaults) |", "|---|---|---|"]
    rows += [f"| `{name}` | {_first_line(builder)} | {_options(keyword_options(builder))} |"
             for name, builder in BACKBONES.items()]
    return "\n".join(rows)


def datasets():
    """The readers of pixseg.data.DATASETS: layout on disk, options."""
    from pixseg.data import DATASETS, dataset_options

    rows = ["| name | dataset | layout on disk | options (defaults) |", "|---|---|---|---|"]
    for name, reader in DATASETS.items():
        layout = str(getattr(reader, "layout", "")).replace("|", "\\|")
        rows.append(f"| `{name}` | {_first_line(reader)} | `{layout}` | {_options(dataset_options(name))} |")
    return "\n".join(rows)


def benchmarks():
    """The scripts in benchmarks/ with the first line of their docstrings."""
    import ast
    from pathlib import Path

    rows = ["| script | what it measures |", "|---|---|"]
    for path in sorted((Path(__file__).parent.parent / "benchmarks").glob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text())) or ""
        rows.append(f"| `.venv/bin/python benchmarks/{path.name}` | {doc.split(chr(10))[0].replace('|', chr(92) + '|')} |")
    return "\n".join(rows)


GENERATORS = {"benchmarks": benchmarks, "cli_reference": cli_reference, "model_zoo": model_zoo, "datasets": datasets}


def on_page_markdown(markdown, page, config, files):
    def generate(match):
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"{page.file.src_path}: no generator named {name!r}; expected one of "
                             f"{', '.join(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(generate, markdown)
