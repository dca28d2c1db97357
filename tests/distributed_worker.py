"""Worker for ``tests/test_distributed.py``: optimizers under DDP, ZeRO and FSDP2, compared to one process.

Launched by torchrun (gloo, CPU), for example::

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node=2 tests/distributed_worker.py \\
        --modes ddp,zero,fsdp2,fsdp2-checkpoint --optimizers all --out distributed.json

Every rank trains the same small model (:class:`Net`, whose tensors have odd sizes
so that FSDP2 shards them unevenly, one rank holding an empty shard of the
one-element ``scale``) for ``--steps`` steps on a fixed global batch of
:data:`GLOBAL_BATCH` examples split evenly across the ranks. Every rank also
trains the same model on the whole global batch in one process with the same
optimizer, never interrupted: the reference. The final parameters are compared
elementwise (``|a - b| <= atol + rtol |b|``); rank 0 writes one record per check
and optimizer to ``--out`` (JSON, rewritten after each record).

Modes, and the checks each runs (a check's name is its key in the JSON):

* ``ddp``: ``DistributedDataParallel``, a whole optimizer on each rank (check ``ddp``).
* ``zero``: ``ZeroRedundancyOptimizer`` under DDP, each rank updating its share of the
  tensors (check ``zero``); and stopped at step ``--stop``, ``consolidate_state_dict()``
  + ``state_dict()`` on rank 0, sent to every rank, a rebuilt model and ZeRO optimizer
  loading it and training on to ``--steps`` (check ``zero-resume``).
* ``fsdp2``: ``fully_shard`` on each layer and on the root, so parameters, gradients and
  optimizer state are DTensors sharded on dim 0: the default multi-tensor path (check
  ``fsdp2``) and ``foreach=False``, the per-tensor reference path (check ``fsdp2-loop``).
* ``fsdp2-checkpoint``: FSDP2 for ``--stop`` steps, ``get_model_state_dict`` /
  ``get_optimizer_state_dict`` + ``dcp.save`` into ``--checkpoint-dir``/<name>; then a
  fresh model and optimizer restored with ``dcp.load`` + ``set_model_state_dict`` /
  ``set_optimizer_state_dict`` and trained on to ``--steps``, on all ranks (check
  ``fsdp2-checkpoint``) and, when the launch has more than one rank, on rank 0 alone,
  an FSDP2 mesh of one (check ``fsdp2-reshard``).

Each mode first runs its first check with ``torch.optim.Adam``: if torch itself fails
there, ``unsupported[mode]`` holds torch's error and that mode's checks are not run.
Every optimizer and check runs on its own process group with a timeout, so that an
optimizer failing on one rank only cannot hang the others or desynchronise the next.
"""

from __future__ import annotations

import argparse
import copy
import functools
import json
import math
import os
import time
import traceback
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn

GLOBAL_BATCH = 8  # divisible by 1, 2, 4 and 8 ranks
IN, HIDDEN, OUT = 7, 13, 5
STEPS, STOP = 12, 7  # the stop falls between Lookahead's (k=5) and Ranger's (k=6) synchronisations

# Hyper-parameters on top of each registry name's own defaults: enough learning rate
# that 12 steps move the parameters far beyond the tolerance.
HYPER: dict[str, dict[str, Any]] = {
    "sgd": {"lr": 0.1},
    "momentum": {"lr": 0.05},
    "ema-momentum": {"lr": 0.1},
    "nesterov": {"lr": 0.05},
    "radam": {"lr": 1e-2},  # its first steps are momentum steps of size lr
    "ranger": {"lr": 1e-2},
    "swats": {"lr": 1e-2},
}
# Extra settings worth a check of their own: label -> (registry name, hyper-parameters).
# With eps=3e-3, SWATS switches tensors to SGD at steps 3, 8 and 9 (on either side of the
# stop); each switch test passes or fails by at least 6% of eps, far beyond rounding.
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "swats-switching": ("swats", {"lr": 1e-2, "eps": 3e-3}),
}

CHECKS = {
    "ddp": ("ddp",),
    "zero": ("zero", "zero-resume"),
    "fsdp2": ("fsdp2", "fsdp2-loop"),
    "fsdp2-checkpoint": ("fsdp2-checkpoint", "fsdp2-reshard"),
}
MODES = tuple(CHECKS)
DTYPES = {"float32": torch.float32, "float64": torch.float64}


class Net(nn.Module):
    """A 2-layer tanh MLP times a learned scalar: tensors of 13x7, 13, 5x13, 5 and 1 elements."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(IN, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, OUT)
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(torch.tanh(self.fc1(x))) * self.scale


def make_model(dtype: torch.dtype, seed: int = 0) -> Net:
    torch.manual_seed(seed)
    return Net().to(dtype)


def make_data(dtype: torch.dtype, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(steps, GLOBAL_BATCH, IN, generator=g).to(dtype)
    y = torch.randint(0, OUT, (steps, GLOBAL_BATCH), generator=g)
    return x, y


def train_step(model: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    opt.step()


def spec(label: str) -> tuple[str, dict[str, Any]]:
    """Registry name and hyper-parameters of a label: a registry name or a :data:`VARIANTS` key."""
    if label in VARIANTS:
        name, hyper = VARIANTS[label]
        return name, dict(hyper)
    return label, dict(HYPER.get(label, {}))


class Run:
    """One optimizer in one check: its registry name, hyper-parameters, data, process group and rank."""

    def __init__(self, args: argparse.Namespace, label: str, name: str, hyper: dict[str, Any], group: Any) -> None:
        self.args, self.label, self.name, self.hyper, self.group = args, label, name, hyper, group
        self.dtype = DTYPES[args.dtype]
        self.world = dist.get_world_size(group)
        self.rank = dist.get_rank(group)
        if GLOBAL_BATCH % self.world:
            raise ValueError(f"the global batch of {GLOBAL_BATCH} does not split over {self.world} ranks")
        self.x, self.y = make_data(self.dtype, args.steps)

    def factory(self) -> Callable[..., torch.optim.Optimizer]:
        """``(params, **hyper) -> optimizer``; a picklable partial, also for presets and wrappers."""
        from optzoo import registry

        return functools.partial(registry.optimizer, self.name)

    def build(self, params: Any) -> torch.optim.Optimizer:
        return self.factory()(params, **self.hyper)

    def local(self, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """This rank's slice of the global batch of step ``t``."""
        per = GLOBAL_BATCH // self.world
        rows = slice(self.rank * per, (self.rank + 1) * per)
        return self.x[t, rows], self.y[t, rows]

    def train(self, model: nn.Module, opt: torch.optim.Optimizer, steps: range) -> None:
        for t in steps:
            train_step(model, opt, *self.local(t))

    def reference(self) -> Outcome:
        """The same optimizer in one process on the whole global batch, never interrupted."""
        model = make_model(self.dtype)
        opt = self.build(model.parameters())
        for t in range(self.args.steps):
            train_step(model, opt, self.x[t], self.y[t])
        return outcome(model, opt)

    # ------------------------------------------------------------------ DDP / ZeRO
    def ddp_model(self, seed: int = 0, state: dict[str, torch.Tensor] | None = None) -> nn.Module:
        from torch.nn.parallel import DistributedDataParallel

        model = make_model(self.dtype, seed)
        if state is not None:
            model.load_state_dict(state)
        return DistributedDataParallel(model, process_group=self.group)

    def zero_optimizer(self, model: nn.Module) -> torch.optim.Optimizer:
        from torch.distributed.optim import ZeroRedundancyOptimizer

        # ZeRO builds each rank's local optimizer with optimizer_class(param_groups, **hyper):
        # any factory does, so presets and wrappers (Lookahead, Ranger) go through the registry.
        return ZeroRedundancyOptimizer(
            model.parameters(), optimizer_class=self.factory(), process_group=self.group, **self.hyper
        )

    def check_ddp(self) -> Outcome:
        model = self.ddp_model()
        opt = self.build(model.parameters())
        self.train(model, opt, range(self.args.steps))
        return outcome(model.module, opt)

    def check_zero(self) -> Outcome:
        model = self.ddp_model()
        opt = self.zero_optimizer(model)
        self.train(model, opt, range(self.args.steps))
        return outcome(model.module, opt)

    def check_zero_resume(self) -> Outcome:
        model = self.ddp_model()
        opt = self.zero_optimizer(model)
        self.train(model, opt, range(self.args.stop))
        opt.consolidate_state_dict(to=0)  # on every rank
        box = [opt.state_dict() if self.rank == 0 else None]
        dist.broadcast_object_list(box, src=dist.get_global_rank(self.group, 0), group=self.group)
        saved_model = copy.deepcopy(model.module.state_dict())
        del model, opt
        # Rebuilt from another seed, so that anything not restored shows.
        model = self.ddp_model(seed=1, state=saved_model)
        opt = self.zero_optimizer(model)
        opt.load_state_dict(box[0])
        self.train(model, opt, range(self.args.stop, self.args.steps))
        return outcome(model.module, opt)

    # ----------------------------------------------------------------------- FSDP2
    def fsdp_model(self, seed: int = 0) -> nn.Module:
        from torch.distributed.device_mesh import DeviceMesh
        from torch.distributed.fsdp import fully_shard

        model = make_model(self.dtype, seed)
        mesh = DeviceMesh.from_group(self.group, "cpu")
        fully_shard(model.fc1, mesh=mesh)
        fully_shard(model.fc2, mesh=mesh)
        fully_shard(model, mesh=mesh)
        return model

    def check_fsdp2(self) -> Outcome:
        model = self.fsdp_model()
        opt = self.build(model.parameters())
        self.train(model, opt, range(self.args.steps))
        return outcome(model, opt)

    def checkpoint_id(self) -> str:
        return os.path.join(self.args.checkpoint_dir, self.label)

    def check_fsdp2_checkpoint(self) -> Outcome:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

        model = self.fsdp_model()
        opt = self.build(model.parameters())
        self.train(model, opt, range(self.args.stop))
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        dcp.save(state, checkpoint_id=self.checkpoint_id(), process_group=self.group)
        del model, opt, state
        dist.barrier(group=self.group)
        return self.resume_fsdp2()

    def check_fsdp2_reshard(self) -> Outcome:
        if not os.path.exists(os.path.join(self.checkpoint_id(), ".metadata")):
            raise FileNotFoundError(f"no checkpoint at {self.checkpoint_id()}: check fsdp2-checkpoint failed")
        return self.resume_fsdp2()

    def resume_fsdp2(self) -> Outcome:
        import torch.distributed.checkpoint as dcp
        from torch.distributed.checkpoint.state_dict import (
            get_model_state_dict,
            get_optimizer_state_dict,
            set_model_state_dict,
            set_optimizer_state_dict,
        )

        model = self.fsdp_model(seed=1)  # another seed, so that anything not restored shows
        opt = self.build(model.parameters())
        # On a fresh optimizer this first runs one step with zero gradients and lr=0 to create the state.
        state = {"model": get_model_state_dict(model), "optim": get_optimizer_state_dict(model, opt)}
        # dcp.load writes in place, and those tensors are the live ones: load into copies, so that
        # the state reaches the optimizer only through set_optimizer_state_dict -> load_state_dict.
        state = copy.deepcopy(state)
        dcp.load(state, checkpoint_id=self.checkpoint_id(), process_group=self.group)
        set_model_state_dict(model, state["model"])
        set_optimizer_state_dict(model, opt, state["optim"])
        self.train(model, opt, range(self.args.stop, self.args.steps))
        return outcome(model, opt)


Outcome = tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]  # parameters, optimizer state, by name


def full(value: Any) -> Any:
    """A DTensor gathered whole (a collective: every rank of its mesh calls it in the same order)."""
    from torch.distributed.tensor import DTensor

    return value.full_tensor() if isinstance(value, DTensor) else value


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: full(p).detach().clone() for n, p in model.named_parameters()}


def outcome(model: nn.Module, opt: torch.optim.Optimizer) -> Outcome:
    """The final parameters (whole) and the optimizer's per-parameter state (whole), by parameter name.

    Under ZeRO each rank holds the state of its share of the parameters only: that share is compared.
    """
    from torch.distributed.optim import ZeroRedundancyOptimizer

    holder = opt.optim if isinstance(opt, ZeroRedundancyOptimizer) else opt
    states = {}
    for n, p in model.named_parameters():
        if p in holder.state and len(holder.state[p]):
            states[n] = {key: full(value) for key, value in holder.state[p].items()}
    return params_of(model), states


CHECK_METHODS: dict[str, Callable[[Run], Outcome]] = {
    "ddp": Run.check_ddp,
    "zero": Run.check_zero,
    "zero-resume": Run.check_zero_resume,
    "fsdp2": Run.check_fsdp2,
    "fsdp2-loop": Run.check_fsdp2,
    "fsdp2-checkpoint": Run.check_fsdp2_checkpoint,
    "fsdp2-reshard": Run.check_fsdp2_reshard,
}


def kind(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return "tensor"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "number"
    return "other"  # flags, strings: compared for equality


def compare(got: Outcome, want: Outcome, start: dict[str, torch.Tensor], rtol: float, atol: float) -> dict[str, Any]:
    """``|got - want| <= atol + rtol |want|`` elementwise over the parameters and every optimizer state entry
    ``got`` holds (tensors and numbers; flags equal), the worst differences, and how far training moved."""
    numbers: dict[str, Any] = {"max_abs": 0.0, "max_rel": 0.0, "moved": 0.0, "state_max_abs": 0.0}
    worst, excess = "", -math.inf
    got_params, got_state = got
    want_params, want_state = want
    pairs = [(n, got_params.get(n), w, "max_abs") for n, w in want_params.items()]
    for n, entries in got_state.items():
        for key, value in entries.items():
            pairs.append((f"{n}:{key}", value, want_state.get(n, {}).get(key), "state_max_abs"))
    for n, g, w, field in pairs:
        if g is None or w is None or kind(g) != kind(w):
            return {**numbers, "ok": False, "worst": f"{n}: {type(g).__name__} here, {type(w).__name__} in one process"}
        if kind(g) == "other":
            if g != w:
                return {**numbers, "ok": False, "worst": f"{n}: {g!r} here, {w!r} in one process"}
            continue
        g, w = torch.as_tensor(g, dtype=torch.float64), torch.as_tensor(w, dtype=torch.float64)
        if g.shape != w.shape:
            return {**numbers, "ok": False, "worst": f"{n}: shape {tuple(g.shape)} here, {tuple(w.shape)} alone"}
        if g.numel() == 0:
            continue
        diff = (g - w).abs()
        if not torch.isfinite(g).all():
            return {**numbers, "ok": False, "worst": f"{n}: not finite"}
        numbers[field] = max(numbers[field], diff.max().item())
        if field == "max_abs":
            numbers["max_rel"] = max(numbers["max_rel"], (diff / w.abs().clamp_min(1e-30)).max().item())
            numbers["moved"] = max(numbers["moved"], (w - start[n].double()).abs().max().item())
        over = (diff - atol - rtol * w.abs()).max().item()
        if over > excess:
            excess, worst = over, n
    return {**numbers, "ok": excess <= 0.0, "worst": worst}


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text if len(text) <= 3000 else text[:3000] + " ..."


def run_check(
    args: argparse.Namespace,
    check: str,
    label: str,
    group: Any,
    references: dict[str, dict[str, torch.Tensor]],
    run_class: type[Run] = Run,
) -> dict[str, Any] | None:
    """One check of one optimizer on this rank; None on a rank outside ``group``."""
    if dist.get_rank(group) < 0:
        return None
    began = time.perf_counter()
    name, hyper = spec(label)
    if check == "fsdp2-loop":
        hyper["foreach"] = False
    record: dict[str, Any] = {"ok": False, "error": None, "name": name, "hyper": {k: repr(v) for k, v in hyper.items()}}
    try:
        run = run_class(args, label, name, hyper, group)
        key = repr(sorted(hyper.items()))
        if key not in references:
            references[key] = run.reference()
        start = params_of(make_model(run.dtype))
        got = CHECK_METHODS[check](run)
        record.update(compare(got, references[key], start, args.rtol, args.atol))
    except Exception as exc:
        record["error"] = error_text(exc)
        record["traceback"] = traceback.format_exc()[-4000:]
    record["seconds"] = round(time.perf_counter() - began, 3)
    record["ranks"] = dist.get_world_size(group)
    return record


def merge(records: list[dict[str, Any] | None]) -> dict[str, Any]:
    """One record from every rank's: it passes only if every rank's does; errors labelled by rank."""
    ranked = [(i, r) for i, r in enumerate(records) if r is not None]
    out = dict(ranked[0][1])
    out["ok"] = all(r["ok"] for _, r in ranked)
    for key in ("max_abs", "max_rel", "moved"):
        values = [r[key] for _, r in ranked if key in r]
        if values:
            out[key] = max(values)
    out["error"] = "\n".join(f"rank {i}: {r['error']}" for i, r in ranked if r["error"]) or None
    out["traceback"] = "\n".join(f"rank {i}:\n{r['traceback']}" for i, r in ranked if r.get("traceback")) or None
    out["seconds"] = max(r["seconds"] for _, r in ranked)
    return out


class TorchAdam(Run):
    """The probe: torch.optim.Adam, which torch itself supports wherever the mode works at all."""

    def factory(self) -> Callable[..., torch.optim.Optimizer]:
        return torch.optim.Adam


def new_group(args: argparse.Namespace, check: str) -> Any:
    """A fresh gloo group (collectives that wait time out there); rank 0 alone for fsdp2-reshard."""
    ranks = [0] if check == "fsdp2-reshard" else None
    return dist.new_group(ranks=ranks, backend="gloo", timeout=timedelta(seconds=args.timeout))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default=",".join(MODES), help=f"comma-separated, of: {', '.join(MODES)}")
    parser.add_argument(
        "--optimizers", default="all", help="comma-separated registry names or variants; 'all' is every one"
    )
    parser.add_argument("--out", required=True, help="the JSON file rank 0 writes")
    parser.add_argument("--checkpoint-dir", default="distributed-checkpoints")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--stop", type=int, default=STOP, help="the step of the checkpoint in the resume checks")
    parser.add_argument("--rtol", type=float, default=None, help="default 1e-5 (float32), 1e-9 (float64)")
    parser.add_argument("--atol", type=float, default=None, help="default 1e-6 (float32), 1e-12 (float64)")
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds a collective of one check may wait (the rest: 4x + 60)"
    )
    args = parser.parse_args()
    modes = args.modes.split(",")
    unknown = sorted(set(modes) - set(MODES))
    if unknown:
        parser.error(f"unknown modes {unknown}; choose from {', '.join(MODES)}")
    if args.rtol is None:
        args.rtol = 1e-5 if args.dtype == "float32" else 1e-9
    if args.atol is None:
        args.atol = 1e-6 if args.dtype == "float32" else 1e-12

    # The default group only gathers the records: it must outwait a check's group timing out on another rank.
    dist.init_process_group("gloo", timeout=timedelta(seconds=4 * args.timeout + 60))
    rank, world = dist.get_rank(), dist.get_world_size()
    from optzoo import registry

    labels = [*registry.optimizers(), *VARIANTS] if args.optimizers == "all" else args.optimizers.split(",")
    checks = [c for mode in modes for c in CHECKS[mode] if not (c == "fsdp2-reshard" and world == 1)]
    result: dict[str, Any] = {
        "modes": modes, "world_size": world, "dtype": args.dtype, "steps": args.steps, "stop": args.stop,
        "rtol": args.rtol, "atol": args.atol, "global_batch": GLOBAL_BATCH, "torch": torch.__version__,
        "unsupported": {}, "results": {check: {} for check in checks},
    }  # fmt: skip

    def write() -> None:
        if rank == 0:
            with open(args.out + ".tmp", "w") as f:
                json.dump(result, f, indent=1)
            os.replace(args.out + ".tmp", args.out)

    began = time.perf_counter()
    for mode in modes:  # the probes
        probe_check = CHECKS[mode][0]
        record = run_check(args, probe_check, "torch.optim.Adam", new_group(args, probe_check), {}, TorchAdam)
        records: list[Any] = [None] * world
        dist.all_gather_object(records, record)
        result["unsupported"][mode] = merge(records)["error"]
    write()
    for label in labels:
        references: dict[str, dict[str, torch.Tensor]] = {}  # the single-process runs, by hyper-parameters
        for check in checks:
            mode = next(m for m in modes if check in CHECKS[m])
            if result["unsupported"][mode]:
                continue
            record = run_check(args, check, label, new_group(args, check), references)
            records = [None] * world
            dist.all_gather_object(records, record)
            r = result["results"][check][label] = merge(records)
            write()
            if rank == 0:
                status = "ok" if r["ok"] else ("ERROR" if r["error"] else "DIFF")
                numbers = " ".join(f"{key}={r[key]:.3g}" for key in ("max_abs", "state_max_abs", "moved") if key in r)
                error = f"  {r['error'].splitlines()[0][:200]}" if r["error"] else ""
                error += f"  worst: {r['worst']}" if not r["ok"] and r.get("worst") else ""
                print(f"{check:17s} {label:16s} {status:5s} {numbers} {r['seconds']:.2f}s{error}", flush=True)
    result["seconds"] = round(time.perf_counter() - began, 2)
    write()
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
