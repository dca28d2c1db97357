"""The ``optzoo`` command.

Each sub-command lives in its own module under ``optzoo.lab.cli`` that exposes
``add_arguments(parser)`` and ``run(args) -> int``; this file only wires them,
so that ``optzoo --help`` stays fast (a module imports matplotlib or torch's
heavier parts only inside ``run``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

COMMANDS: dict[str, tuple[str, str]] = {
    "list": ("optzoo.lab.cli.listing", "list the optimizers and schedules, one line each"),
    "surface": ("optzoo.lab.cli.surface", "optimizers' paths on a test surface: plot, GIF and table"),
    "schedule": ("optzoo.lab.cli.schedule", "plot the learning rate over steps for chosen schedules"),
    "lr-find": ("optzoo.lab.cli.lr_find", "the LR range test on a bundled problem, with plot and suggestion"),
    "bench": ("optzoo.lab.cli.bench", "train real problems with chosen optimizers and seeds; curves and report"),
    "demo": ("optzoo.lab.cli.demo", "the whole lab on embedded defaults, into optzoo-report/index.html"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="optzoo", description="optzoo: the classic neural-network optimizers, correct, fast and seen at work."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module_name, help_text) in COMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        module = importlib.import_module(module_name)
        module.add_arguments(sub)
        sub.set_defaults(handler=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted; finished results are on disk", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`optzoo list | head`): stop quietly, as Unix tools do; pointing stdout at
        # /dev/null keeps the interpreter's final flush from raising the same error again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
