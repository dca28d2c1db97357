"""The capability table's types and the trajectory harness every optimizer test uses.

An optimizer joins every generic test in ``test_zoo.py`` by adding one
:class:`Case` to a ``cases_*.py`` file (and its name to ``ALL_CASES`` in
``zoo_table.py``).
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

Factory = Callable[..., Any]  # (params, **hyper) -> object with .param_groups and .step()

TOLERANCE = {torch.float32: dict(rtol=1e-5, atol=1e-6), torch.float64: dict(rtol=1e-10, atol=1e-11)}


@dataclass
class Check:
    """One hyper-parameter setting compared against an oracle over a whole trajectory."""

    hyper: dict[str, Any]
    oracle: Factory
    oracle_hyper: dict[str, Any] | None = None  # what the oracle is given, when its names differ
    lr_factors: Callable[[int], float] | None = None  # an LR schedule applied to both, step -> factor
    steps: int = 60
    label: str = ""

    def id(self) -> str:
        return self.label or ",".join(f"{k}={v}" for k, v in self.hyper.items()) or "defaults"


@dataclass
class Case:
    """One optimizer's row in the capability table."""

    name: str
    make: Factory  # optzoo's optimizer: (params, **hyper)
    checks: list[Check]  # oracle equality: torch.optim, the authors' code, or a paper transcription
    bad_inputs: list[tuple[dict[str, Any], str]]  # hyper that must raise, and the parameter the error names
    convergence_drop: float = 0.5  # with default hyper-parameters, 200 full-batch steps on digits cut the loss by this
    has_maximize: bool = True
    has_foreach: bool = True
    fused: bool = False  # foreach=None takes one of torch's fused kernels where it fits
    # The single-pass CPU kernel (optim/kernels/<native>.cpp) that foreach=None takes where it fits
    native: str | None = None
    sparse: bool = False
    complex: bool = False
    oracle_name: str = ""

    def __str__(self) -> str:
        return self.name


class TinyProblem:
    """A small real model (a 2-layer tanh net with a scaled softmax output) and its loss.

    Its parameters cover the shapes an optimizer must handle: a scalar, vectors,
    a matrix and a non-contiguous (transposed) matrix.
    """

    def __init__(self, dtype: torch.dtype = torch.float64, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.dtype = dtype
        self.x = torch.randn(16, 5, generator=g, dtype=torch.float64).to(dtype)
        self.y = torch.randint(0, 3, (16,), generator=g)
        self.initial = [
            torch.randn(4, 5, generator=g, dtype=torch.float64).to(dtype).t(),  # non-contiguous (5, 4)
            0.1 * torch.randn(4, generator=g, dtype=torch.float64).to(dtype),
            torch.randn(4, 3, generator=g, dtype=torch.float64).to(dtype),
            torch.tensor(1.5, dtype=dtype),  # scalar temperature
        ]

    def params(self) -> list[torch.Tensor]:
        """A fresh copy of the initial parameters, as leaf tensors that require grad."""
        out = []
        for t in self.initial:
            p = torch.empty_strided(t.shape, t.stride(), dtype=t.dtype)
            p.copy_(t)
            out.append(p.requires_grad_())
        return out

    def loss(self, params: list[torch.Tensor]) -> torch.Tensor:
        w1, b1, w2, scale = params
        hidden = torch.tanh(self.x @ w1 + b1)
        logits = scale * (hidden @ w2)
        return torch.nn.functional.cross_entropy(logits.double(), self.y) + 0.01 * (w2.double() ** 2).sum()

    def gradients(self, params: list[torch.Tensor]) -> list[torch.Tensor]:
        return list(torch.autograd.grad(self.loss(params), params))


def set_grads(params: list[torch.Tensor], grads: list[torch.Tensor]) -> None:
    for p, g in zip(params, grads):
        p.grad = g.detach().clone()


def set_lr(optimizer: Any, factor: float, base: list[float]) -> None:
    for group, lr in zip(optimizer.param_groups, base):
        group["lr"] = lr * factor


def compare_trajectories(
    make_ours: Callable[[list[torch.Tensor]], Any],
    make_oracle: Callable[[list[torch.Tensor]], Any],
    dtype: torch.dtype,
    steps: int,
    lr_factors: Callable[[int], float] | None = None,
    after_step: Callable[[int], None] | None = None,
) -> None:
    """Step both optimizers on the same gradients (the model's, at the oracle's parameters)
    and assert the parameters agree after every step; ``after_step(t)``, if given, is called
    once t steps are done (to check which kernels they took)."""
    problem = TinyProblem(dtype)
    ours_params, oracle_params = problem.params(), problem.params()
    ours, oracle = make_ours(ours_params), make_oracle(oracle_params)
    base_ours = [g["lr"] for g in ours.param_groups]
    base_oracle = [g["lr"] for g in oracle.param_groups]
    for t in range(steps):
        if lr_factors is not None:
            set_lr(ours, lr_factors(t), base_ours)
            set_lr(oracle, lr_factors(t), base_oracle)
        grads = problem.gradients(oracle_params)
        set_grads(ours_params, grads)
        set_grads(oracle_params, grads)
        ours.step()
        oracle.step()
        for i, (a, b) in enumerate(zip(ours_params, oracle_params)):
            assert torch.isfinite(b).all(), f"oracle diverged at step {t}: choose a gentler setting"
            torch.testing.assert_close(
                a.detach(), b.detach(), **TOLERANCE[dtype],
                msg=lambda m, t=t, i=i: f"step {t}, parameter {i}: {m}",
            )
        if after_step is not None:
            after_step(t + 1)


def run(make: Callable[[list[torch.Tensor]], Any], steps: int,
        problem: TinyProblem | None = None) -> tuple[list[torch.Tensor], Any]:
    """Run ``steps`` steps with the model's own gradients; return the parameters and the optimizer."""
    problem = problem or TinyProblem()
    params = problem.params()
    optimizer = make(params)
    for _ in range(steps):
        set_grads(params, problem.gradients(params))
        optimizer.step()
    return params, optimizer


def snapshot(optimizer: Any) -> dict[str, Any]:
    return copy.deepcopy(optimizer.state_dict())


# ----------------------------------------------------------------- which kernel runs
FUSED_KERNELS = ("_fused_sgd_", "_fused_adam_", "_fused_adamw_", "_fused_adagrad_")

# The algorithm whose torch kernel each ``fused`` row's default path takes (its inner one for Lookahead).
FUSED_ALGORITHM = {
    "SGD": "sgd",
    "Lookahead-SGD": "sgd",
    "Adam": "adam",
    "Lookahead-Adam": "adam",
    "AdamW": "adamw",
    "Adagrad": "adagrad",
}


def expected_fused_kernel(case, hyper):
    """The torch fused kernel that ``foreach=None`` must take, once a step, on the harness's problem
    (plain CPU tensors of one dtype in one group: one bucket), decided from the hyper-parameters:
    None for a row without one and for the paper-form options no fused kernel computes (SGD's
    velocity form; Adam's eps inside the square root, AMSGrad without bias correction, and
    decoupled decay scaled by the schedule multiplier instead of the lr)."""
    if not case.fused:
        return None
    algorithm = FUSED_ALGORITHM[case.name]  # a new fused row says here which kernel it takes
    if algorithm == "sgd":
        return None if hyper.get("velocity_form", False) else "_fused_sgd_"
    if algorithm == "adagrad":
        return "_fused_adagrad_"
    decoupled = algorithm == "adamw" or hyper.get("decoupled_weight_decay", False)
    paper_form = hyper.get("eps_inside_sqrt", False) or not hyper.get("amsgrad_bias_correction", True)
    if paper_form or (decoupled and not hyper.get("decay_scaled_by_lr", True)):
        return None
    return "_fused_adamw_" if decoupled else "_fused_adam_"


def expected_kernel_calls(case, hyper, steps):
    """Calls of the case's native kernel in ``steps`` steps over one parameter group: one a step,
    or, for Lookahead's synchronisation, one every k-th step."""
    return steps // hyper.get("k", 5) if case.native == "lookahead" else steps


def expected_calls(case, hyper, path, steps):
    """The fused kernel calls, by name, and the calls of the case's own native kernel that ``steps``
    steps on the harness's problem make along ``path`` (False, True, None, "single" or "native":
    test_zoo's PATHS), from a fresh optimizer.

    The explicit paths (False, True) take no kernel; the default ones (None, "single", "native")
    take the fused kernel where there is one, and the native kernel only where ``force_native``
    lowers its size threshold: the "native" path. There, Lookahead-Adam's native kernel is the
    synchronisation only: its inner Adam's steps still take the fused kernel.
    """
    fused = expected_fused_kernel(case, hyper) if path in (None, "single", "native") else None
    native = expected_kernel_calls(case, hyper, steps) if path == "native" else 0
    return Counter({fused: steps} if fused else {}), native


# ------------------------------------------------------------------- low precision
def ulp(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The spacing of ``dtype``'s numbers at each |x| (the subnormals' below the normal range)."""
    info = torch.finfo(dtype)
    return info.eps * torch.exp2(torch.floor(torch.log2(x.abs().clamp_min(info.smallest_normal))))


def upcast(state_dict: Any, dtype: torch.dtype) -> Any:
    """A copy of ``state_dict`` with its ``dtype`` tensors cast to float32 (others kept as they are:
    the float32 step counters, Python floats)."""
    if isinstance(state_dict, torch.Tensor):
        return state_dict.float() if state_dict.dtype == dtype else state_dict.clone()
    if isinstance(state_dict, dict):
        return {key: upcast(value, dtype) for key, value in state_dict.items()}
    if isinstance(state_dict, (list, tuple)):
        return type(state_dict)(upcast(value, dtype) for value in state_dict)
    return state_dict
