"""The memory each optimizer of the registry keeps, in bytes per parameter, measured.

Every registered optimizer takes one step on the same float32 parameters (the
weight matrices, biases and a convolution kernel of a small network, so that
algorithms that treat matrices differently, such as Adafactor's factored
moment or Muon's routing, show what they keep on real shapes). The state it
then holds is what its ``state_dict()`` carries: every tensor in it, each
storage counted once, divided by the number of parameters. Scalars such as
step counts are included; they are why a few values sit slightly above a round
number.

    python benchmarks/state_memory.py     # writes benchmarks/results/state_memory.{md,json}

The README's class table quotes the ``bytes/param`` column of the result.
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path
from typing import Any

import torch

from optzoo import registry

RESULTS = Path(__file__).parent / "results"
SHAPES = [(256, 128), (256,), (128, 256), (128,), (10, 128), (10,), (16, 3, 3, 3), (16,)]


def _tensors(value: Any) -> list[torch.Tensor]:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        return [t for item in value.values() for t in _tensors(item)]
    if isinstance(value, list | tuple):
        return [t for item in value for t in _tensors(item)]
    return []


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of every tensor in ``optimizer.state_dict()``, each storage once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for tensor in _tensors(optimizer.state_dict()):
        storage = tensor.untyped_storage()
        key = (storage.data_ptr(), storage.nbytes())
        if key not in seen:
            seen.add(key)
            total += storage.nbytes()
    return total


def measure(name: str) -> dict[str, Any]:
    """One step of the optimizer registered as ``name``; its state in bytes per parameter."""
    generator = torch.Generator().manual_seed(0)
    params = [torch.randn(shape, generator=generator, requires_grad=True) for shape in SHAPES]
    optimizer = registry.optimizer(name, params)
    if callable(getattr(optimizer, "train", None)):  # schedule-free optimizers step only in train mode
        optimizer.train()
    for param in params:
        param.grad = torch.randn(param.shape, generator=generator)
    optimizer.step()
    numel = sum(math.prod(shape) for shape in SHAPES)
    return {"optimizer": name, "bytes_per_param": state_bytes(optimizer) / numel, "params": numel}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=RESULTS / "state_memory")
    args = parser.parse_args()
    rows = [measure(name) for name in registry.optimizers()]
    lines = [
        "# Optimizer state, bytes per float32 parameter (measured by `python benchmarks/state_memory.py`)",
        "",
        f"One step on {rows[0]['params']:,} parameters in {len(SHAPES)} tensors of shapes "
        + ", ".join("x".join(map(str, s)) for s in SHAPES) + "; every tensor of `state_dict()` counted once.",
        "",
        "| optimizer | bytes/param | x parameter size |",
        "|---|---|---|",
    ]
    lines += [f"| {r['optimizer']} | {r['bytes_per_param']:.2f} | {r['bytes_per_param'] / 4:.2f} |" for r in rows]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args.out.with_suffix(".json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
