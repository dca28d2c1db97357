"""Small helpers shared by the lab's sub-commands: one-line errors, option parsing, output folders.

Errors a person can fix (an unknown name, a bad value, an unwritable folder) end the command
with exit status 2 and one line on stderr that names the option, never a traceback.
"""

from __future__ import annotations

import math
import os
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import NoReturn

__all__ = [
    "fail",
    "parse_names",
    "parse_number",
    "parse_point",
    "prepare_out",
    "progress",
    "split_assignments",
]


def fail(command: str, message: str) -> NoReturn:
    """Print ``optzoo COMMAND: error: MESSAGE`` on stderr and exit with status 2."""
    print(f"optzoo {command}: error: {message}", file=sys.stderr)
    raise SystemExit(2)


def parse_names(command: str, option: str, text: str, valid: Iterable[str], kind: str) -> list[str]:
    """Split a comma-separated list of names; an unknown one fails with the list of valid names."""
    valid = list(valid)
    names = []
    for raw in text.split(","):
        name = raw.strip().lower()
        if not name:
            continue
        if name not in valid:
            fail(command, f"{option}: unknown {kind} {name!r}; choose from: {', '.join(valid)}")
        if name not in names:
            names.append(name)
    if not names:
        fail(command, f"{option}: give at least one {kind}; choose from: {', '.join(valid)}")
    return names


def parse_number(command: str, option: str, text: str | float, *, minimum: float | None = None,
                 positive: bool = False, integer: bool = False) -> float:
    """A finite number from ``text``; fails naming ``option`` otherwise."""
    try:
        value = float(text)
    except (TypeError, ValueError):
        fail(command, f"{option}: {text!r} is not a number")
    if not math.isfinite(value):
        fail(command, f"{option}: {text!r} is not a finite number")
    if integer and value != int(value):
        fail(command, f"{option}: {text!r} is not a whole number")
    if positive and value <= 0:
        fail(command, f"{option}: must be > 0, got {text}")
    if minimum is not None and value < minimum:
        fail(command, f"{option}: must be >= {minimum:g}, got {text}")
    return int(value) if integer else value


def parse_point(command: str, option: str, text: str) -> tuple[float, float]:
    """``"X,Y"`` as two finite numbers."""
    parts = [p.strip() for p in text.replace(" ", ",").split(",") if p.strip()]
    if len(parts) != 2:
        fail(command, f"{option}: expected X,Y (two numbers, e.g. {option}=-1.5,2), got {text!r}")
    x, y = (parse_number(command, option, p) for p in parts)
    return x, y


def prepare_out(command: str, out: str | os.PathLike[str]) -> Path:
    """Create the output folder and check that it is writable, before any work starts."""
    path = Path(out).expanduser()
    if path.exists() and not path.is_dir():
        fail(command, f"--out: {str(path)!r} exists and is not a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".optzoo-write-test-"):
            pass
    except OSError as error:
        fail(command, f"--out: cannot write to {str(path)!r}: {error.strerror or error}")
    return path


def progress(total: int, desc: str, *, unit: str = "step", leave: bool = False, disable: bool | None = None):
    """A tqdm progress bar on stderr (hidden when stderr is not a terminal, unless ``disable=False``)."""
    from tqdm import tqdm

    if disable is None:
        disable = not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, leave=leave, disable=disable, file=sys.stderr)


def split_assignments(items: Sequence[str] | None) -> list[str]:
    """``--opt a=1 b=2 --opt c=3`` and ``--opt a=1,b=2`` both give ``["a=1", "b=2", "c=3"]``."""
    out: list[str] = []
    for item in items or ():
        out.extend(part.strip() for part in item.split(",") if part.strip())
    return out
