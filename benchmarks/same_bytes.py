"""optzoo's native kernels against torch's fused kernels that move the same bytes, in one process.

``step_speed.py`` compares each optimizer with its peers. This answers the other
question: how close do the native kernels come to what this machine gives one
pass over memory? torch's fused Adam reads parameter, gradient and two moments
and writes three tensors, 28 bytes per float32 parameter, as the native RAdam,
NAdam, Adamax, Adadelta, Rprop, AdaBound and SWATS steps do; its fused Adagrad
moves 20, as RMSprop does. The machine's bandwidth drifts from minute to
minute, so every contender is timed in every round (median over ``--steps``
steps), rounds alternate, and the best round counts.

    python benchmarks/same_bytes.py            # 16M parameters in 99 tensors

Writes benchmarks/results/same_bytes.md.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path

import torch

import optzoo
from step_speed import RESULTS, make_tensors, time_steps, transformer_shapes

# (label, bytes per parameter and step, the fused kernel it is held against, build)
CONTENDERS: list[tuple[str, int, str, Callable[[list[torch.Tensor]], torch.optim.Optimizer]]] = [
    ("torch Adam fused", 28, "", lambda p: torch.optim.Adam(p, fused=True)),
    ("torch Adagrad fused", 20, "", lambda p: torch.optim.Adagrad(p, fused=True)),
    ("optzoo RMSprop", 20, "torch Adagrad fused", lambda p: optzoo.RMSprop(p)),
    ("optzoo Adadelta", 28, "torch Adam fused", lambda p: optzoo.Adadelta(p)),
    ("optzoo Adamax", 28, "torch Adam fused", lambda p: optzoo.Adamax(p)),
    ("optzoo NAdam", 28, "torch Adam fused", lambda p: optzoo.NAdam(p)),
    ("optzoo RAdam", 28, "torch Adam fused", lambda p: optzoo.RAdam(p)),
    ("optzoo Rprop", 28, "torch Adam fused", lambda p: optzoo.Rprop(p)),
    ("optzoo AdaBound", 28, "torch Adam fused", lambda p: optzoo.AdaBound(p)),
    ("optzoo SWATS", 28, "torch Adam fused", lambda p: optzoo.SWATS(p)),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=16.0, help="millions of parameters (1 to 256)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timing (median taken)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds (best taken), contenders alternated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=RESULTS / "same_bytes.md")
    args = parser.parse_args()
    if not 1 <= args.size <= 256:
        parser.error("--size must be in [1, 256]")
    torch.set_num_threads(args.threads)
    shapes = transformer_shapes(args.size)
    numel = sum(math.prod(s) for s in shapes)
    cpu = torch.device("cpu")

    optimizers = {}
    for label, _, _, build in CONTENDERS:
        params, grads = make_tensors(shapes, cpu)
        optimizer = build(params)
        for p, g in zip(params, grads):
            p.grad = g
        optimizer.step()  # state, and the native kernel loaded
        optimizers[label] = optimizer
    best = {label: math.inf for label in optimizers}
    for _ in range(args.rounds):
        for label, optimizer in optimizers.items():
            best[label] = min(best[label], time_steps(optimizer, args.steps, cpu))

    lines = [
        f"# Native kernels against torch's fused kernels moving the same bytes: {numel / 1e6:.1f}M float32 "
        f"parameters in {len(shapes)} tensors",
        "",
        f"`python benchmarks/same_bytes.py --size {args.size:g} --steps {args.steps} --rounds {args.rounds} "
        f"--threads {args.threads}`, torch {torch.__version__}.",
        "",
        "| contender | bytes/param | ms/step | GB/s | time / the fused kernel's |",
        "|---|---:|---:|---:|---|",
    ]
    for label, nbytes, reference, _ in CONTENDERS:
        seconds = best[label]
        versus = f"{seconds / best[reference]:.2f}x {reference}" if reference else ""
        lines.append(f"| {label} | {nbytes} | {seconds * 1e3:.1f} | {nbytes * numel / seconds / 1e9:.0f} | {versus} |")
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report + "\n")


if __name__ == "__main__":
    main()
