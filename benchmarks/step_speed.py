"""Speed of one optimizer step: optzoo against its peers, measured in the same run.

An optimizer step is memory-bound, so next to each contender's time this
prints the fraction of the in-place bandwidth limit it reaches: the bytes the
algorithm must move per parameter (read parameter, gradient and state; write
parameter and state) over the time, divided by the bandwidth of an in-place
``_foreach_add_`` over the same tensors, measured in the same run.

Contenders are alternated within each repeat (the machines are noisy); each
figure is the best over repeats of the median over ``--steps`` steps. The first
step (state allocation, loading a native kernel from its cache) is reported
separately, and so is building each native kernel with an empty cache (what
the first large step of an algorithm costs once per machine).

    python benchmarks/step_speed.py                 # 16M parameters, 99 tensors
    python benchmarks/step_speed.py --size 64 --only adam,sgd-momentum
    python benchmarks/step_speed.py --device cuda     # on a GPU (untested here: none lent yet)

Writes benchmarks/results/step_speed.md and .json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

import optzoo
from optzoo.optim import _native

RESULTS = Path(__file__).parent / "results"


def transformer_shapes(millions: float) -> list[tuple[int, ...]]:
    """Tensor shapes of a small transformer: 8 blocks of width d plus an embedding, 99 tensors;
    d = 384 gives 16.1M parameters, and d scales with the square root of ``millions``."""
    d = max(16, round(384 * math.sqrt(millions / 16.1) / 16) * 16)
    vocab = 5000
    shapes: list[tuple[int, ...]] = [(vocab, d)]
    for _ in range(8):
        shapes += [(d,), (d,), (3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,)]
    shapes += [(d,), (d,)]
    return shapes


@dataclass
class Contender:
    label: str
    build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]
    peer: bool  # a peer, not optzoo
    times: list[float] = field(default_factory=list)
    first_step: float = float("nan")
    state_bytes: int = 0
    error: str = ""


@dataclass
class Algorithm:
    name: str
    # What the algorithm must read and write per float32 parameter and step, at least: Lookahead's
    # synchronisation, merged into the inner step's pass, adds the slow weights' 8 bytes every k steps.
    bytes_per_param: float
    min_state: int  # state tensors per parameter the algorithm needs
    contenders: list[Contender]


def torch_paths(cls: type, **hyper) -> list[Contender]:
    out = [
        Contender(f"torch {cls.__name__} for-loop", lambda p: cls(p, foreach=False, **hyper), True),
        Contender(f"torch {cls.__name__} foreach", lambda p: cls(p, foreach=True, **hyper), True),
    ]
    try:
        cls([torch.zeros(1, requires_grad=True)], fused=True, **hyper)
        out.append(Contender(f"torch {cls.__name__} fused", lambda p: cls(p, fused=True, **hyper), True))
    except (TypeError, RuntimeError, ValueError):
        pass
    return out


def optional_peer(label: str, module: str, attribute: str, **hyper) -> list[Contender]:
    """A third-party implementation, when its package is installed (benchmark-only dependency)."""
    try:
        factory = getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError):
        return []
    return [Contender(label, lambda p: factory(p, **hyper), True)]


def ours(label: str, build: Callable[[list[torch.Tensor]], torch.optim.Optimizer]) -> Contender:
    return Contender(f"optzoo {label}", build, False)


def algorithms() -> list[Algorithm]:
    tor = torch.optim
    return [
        Algorithm("sgd", 12, 0, [ours("SGD", lambda p: optzoo.SGD(p, lr=0.01)), *torch_paths(tor.SGD, lr=0.01)]),
        Algorithm("sgd-momentum", 20, 1, [ours("SGD momentum", lambda p: optzoo.SGD(p, lr=0.01, momentum=0.9)),
                                          *torch_paths(tor.SGD, lr=0.01, momentum=0.9)]),
        Algorithm("nesterov", 20, 1, [ours("SGD nesterov", lambda p: optzoo.SGD(p, lr=0.01, momentum=0.9,
                                                                                 nesterov=True)),
                                      *torch_paths(tor.SGD, lr=0.01, momentum=0.9, nesterov=True)]),
        Algorithm("adam", 28, 2, [ours("Adam", lambda p: optzoo.Adam(p)), *torch_paths(tor.Adam)]),
        Algorithm("adamw", 28, 2, [ours("AdamW", lambda p: optzoo.AdamW(p)), *torch_paths(tor.AdamW)]),
        Algorithm("amsgrad", 36, 3, [ours("Adam amsgrad", lambda p: optzoo.Adam(p, amsgrad=True)),
                                     *torch_paths(tor.Adam, amsgrad=True)]),
        Algorithm("adagrad", 20, 1, [ours("Adagrad", lambda p: optzoo.Adagrad(p)), *torch_paths(tor.Adagrad)]),
        Algorithm("rmsprop", 20, 1, [ours("RMSprop", lambda p: optzoo.RMSprop(p)), *torch_paths(tor.RMSprop)]),
        Algorithm("adadelta", 28, 2, [ours("Adadelta", lambda p: optzoo.Adadelta(p)), *torch_paths(tor.Adadelta)]),
        Algorithm("adamax", 28, 2, [ours("Adamax", lambda p: optzoo.Adamax(p)), *torch_paths(tor.Adamax)]),
        Algorithm("nadam", 28, 2, [ours("NAdam", lambda p: optzoo.NAdam(p)), *torch_paths(tor.NAdam)]),
        Algorithm("radam", 28, 2, [ours("RAdam", lambda p: optzoo.RAdam(p)), *torch_paths(tor.RAdam)]),
        Algorithm("rprop", 28, 2, [ours("Rprop", lambda p: optzoo.Rprop(p)), *torch_paths(tor.Rprop)]),
        Algorithm("adabound", 28, 2, [
            ours("AdaBound", lambda p: optzoo.AdaBound(p)),
            *optional_peer("adabound (authors)", "adabound", "AdaBound"),
            *optional_peer("pytorch-optimizer AdaBound", "pytorch_optimizer", "AdaBound"),
            *optional_peer("torch-optimizer AdaBound", "torch_optimizer", "AdaBound"),
        ]),
        Algorithm("lookahead-adam", 28 + 8 / 5, 3, [
            ours("Lookahead(Adam)", lambda p: optzoo.Lookahead(optzoo.Adam(p), k=5, alpha=0.5)),
            Contender("torch-optimizer Lookahead(torch Adam)",
                      lambda p: importlib.import_module("torch_optimizer").Lookahead(torch.optim.Adam(p)), True),
            Contender("pytorch-optimizer Lookahead(torch Adam)",
                      lambda p: importlib.import_module("pytorch_optimizer").Lookahead(torch.optim.Adam(p)), True),
        ]),
        Algorithm("ranger", 28 + 8 / 6, 3, [
            ours("Ranger", lambda p: optzoo.Ranger(p)),
            *optional_peer("pytorch_ranger Ranger", "pytorch_ranger", "Ranger"),
            *optional_peer("pytorch-optimizer Ranger", "pytorch_optimizer", "Ranger"),
        ]),
        Algorithm("swats", 28, 2, [
            ours("SWATS", lambda p: optzoo.SWATS(p)),
            *optional_peer("torch-optimizer SWATS", "torch_optimizer", "SWATS"),
            *optional_peer("pytorch-optimizer SWATS", "pytorch_optimizer", "SWATS"),
        ]),
    ]


def make_tensors(
    shapes: list[tuple[int, ...]], device: torch.device, seed: int = 0
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    params = [torch.randn(s, generator=g).to(device).requires_grad_() for s in shapes]
    grads = [(torch.randn(s, generator=g) * 1e-2).to(device) for s in shapes]
    return params, grads


def synchronize(device: torch.device) -> None:
    """Wait for queued accelerator work, so a timing covers the step and not just its launch."""
    if device.type != "cpu":
        torch.accelerator.synchronize(device)


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    total = 0
    for state in optimizer.state.values():
        for value in state.values():
            if isinstance(value, torch.Tensor) and value.numel() > 1:
                total += value.numel() * value.element_size()
    slow = getattr(optimizer, "slow_weights", None)  # wrappers that keep copies outside .state
    if isinstance(slow, dict):
        total += sum(t.numel() * t.element_size() for t in slow.values())
    return total


def time_steps(optimizer: torch.optim.Optimizer, steps: int, device: torch.device) -> float:
    samples = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        optimizer.step()
        synchronize(device)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def inplace_bandwidth(
    params: list[torch.Tensor], grads: list[torch.Tensor], steps: int, device: torch.device
) -> float:
    """GB/s of ``p += g`` over the tensors: reads 8 bytes and writes 4 per float32 element."""
    data = [p.detach() for p in params]
    samples = []
    for _ in range(steps):
        synchronize(device)
        start = time.perf_counter()
        torch._foreach_add_(data, grads, alpha=1e-9)
        synchronize(device)
        samples.append(time.perf_counter() - start)
    numel = sum(p.numel() for p in params)
    return 12 * numel / statistics.median(samples) / 1e9


def cold_builds() -> dict[str, float]:
    """Seconds to build and load each native kernel with an empty cache."""
    seconds = {}
    saved = os.environ.get("OPTZOO_CACHE_DIR")
    with tempfile.TemporaryDirectory() as empty:
        os.environ["OPTZOO_CACHE_DIR"] = empty
        try:
            for source in sorted(_native.KERNEL_DIR.glob("*.cpp")):
                _native._kernels.pop(source.stem, None)
                start = time.perf_counter()
                _native.kernel(source.stem)
                seconds[source.stem] = time.perf_counter() - start
        finally:
            if saved is None:
                del os.environ["OPTZOO_CACHE_DIR"]
            else:
                os.environ["OPTZOO_CACHE_DIR"] = saved
            _native._kernels.clear()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=float, default=16.0, help="millions of parameters (1 to 256)")
    parser.add_argument("--steps", type=int, default=20, help="steps per timing (median taken)")
    parser.add_argument("--repeats", type=int, default=3, help="repeats (best taken), contenders alternated")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="cpu, or an accelerator such as cuda")
    parser.add_argument("--only", default="", help="comma-separated algorithm names")
    parser.add_argument("--out", type=Path, default=RESULTS / "step_speed")
    args = parser.parse_args()
    if not 1 <= args.size <= 256:
        parser.error("--size must be in [1, 256]")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    shapes = transformer_shapes(args.size)
    numel = sum(math.prod(s) for s in shapes)
    chosen = [a for a in algorithms() if not args.only or a.name in args.only.split(",")]
    print(f"{numel / 1e6:.1f}M float32 parameters in {len(shapes)} tensors, {args.threads} threads, "
          f"torch {torch.__version__}")

    bandwidths = []
    for algorithm in chosen:
        live = []
        for contender in algorithm.contenders:
            params, grads = make_tensors(shapes, device)
            try:
                optimizer = contender.build(params)
                for p, g in zip(params, grads):
                    p.grad = g
                synchronize(device)
                start = time.perf_counter()
                optimizer.step()
                synchronize(device)
                contender.first_step = time.perf_counter() - start
                contender.state_bytes = state_bytes(optimizer)
                live.append((contender, optimizer))
            except Exception as error:  # a peer that cannot run here is reported, not fatal
                contender.error = f"{type(error).__name__}: {error}"[:120]
        for _ in range(args.repeats):
            for contender, optimizer in live:
                contender.times.append(time_steps(optimizer, args.steps, device))
        params, grads = make_tensors(shapes, device)
        bandwidths.append(inplace_bandwidth(params, grads, args.steps, device))
        del live
    limit = max(bandwidths)
    builds = cold_builds()

    machine = platform.processor() or platform.machine()
    if device.type == "cuda":
        machine = torch.cuda.get_device_name(device)
    rows = []
    lines = [
        f"# Optimizer step speed: {numel / 1e6:.1f}M float32 parameters in {len(shapes)} tensors",
        "",
        f"`python benchmarks/step_speed.py --size {args.size:g} --steps {args.steps} --repeats {args.repeats} "
        f"--threads {args.threads} --device {args.device}` on "
        f"{machine}, "
        f"torch {torch.__version__}. "
        f"In-place bandwidth limit (`_foreach_add_`, same run): {limit:.1f} GB/s.",
        "",
        "| algorithm | contender | ms/step | vs best peer | GB/s | of limit | first step ms | state B/param (min) |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for algorithm in chosen:
        ok = [c for c in algorithm.contenders if c.times]
        best_peer = min((min(c.times) for c in ok if c.peer), default=float("nan"))
        for contender in algorithm.contenders:
            if contender.error:
                lines.append(f"| {algorithm.name} | {contender.label} | failed: {contender.error} | | | | | |")
                continue
            best = min(contender.times)
            gb_s = algorithm.bytes_per_param * numel / best / 1e9
            fraction = gb_s / limit
            ratio = best / best_peer
            row = dict(algorithm=algorithm.name, contender=contender.label, peer=contender.peer, ms=best * 1e3,
                       ratio_to_best_peer=ratio, gb_s=gb_s, fraction_of_limit=fraction,
                       first_step_ms=contender.first_step * 1e3,
                       state_bytes_per_param=contender.state_bytes / numel, min_state_bytes=4 * algorithm.min_state)
            rows.append(row)
            mark = "**" if not contender.peer else ""
            lines.append(
                f"| {algorithm.name} | {mark}{contender.label}{mark} | {best * 1e3:.1f} | {ratio:.2f}x | "
                f"{gb_s:.0f} | {fraction:.0%} | {contender.first_step * 1e3:.0f} | "
                f"{contender.state_bytes / numel:.1f} ({4 * algorithm.min_state}) |"
            )
    lines += ["", "`vs best peer` < 1 means optzoo is faster. `GB/s`: the bytes the algorithm must move per "
              "step over the time (torch's fused kernels, in the same run, show what this machine gives a "
              "single pass); `of limit`: that as a fraction of the in-place bandwidth. `first step`: state "
              "allocation, and loading a native kernel from the cache.",
              "", "Native kernels built with an empty cache (once per machine, on the algorithm's first step "
              f"with {_native.MIN_NUMEL} elements or more): "
              + ", ".join(f"{name} {sec:.1f} s" for name, sec in builds.items()) + "."]
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(report + "\n")
    summary = dict(limit_gb_s=limit, numel=numel, rows=rows, cold_build_s=builds)
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
