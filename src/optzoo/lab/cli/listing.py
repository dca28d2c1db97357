"""``optzoo list``: every registered optimizer and schedule, one line each."""

from __future__ import annotations

import argparse

from ... import registry


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kind", choices=("all", "optimizers", "schedules"), default="all",
                        help="what to list (default: all)")


def run(args: argparse.Namespace) -> int:
    sections = {"optimizers": registry.optimizers, "schedules": registry.schedules}
    for kind, table in sections.items():
        if args.kind not in ("all", kind):
            continue
        entries = table()
        print(f"{kind}:")
        width = max(map(len, entries))
        for name, description in entries.items():
            print(f"  {name:<{width}}  {description}")
    return 0
