"""The accelerator paths, run wherever a CUDA device is present (``pytest -m cuda``; ``make gpu-check``).

On CUDA, ``foreach=None`` takes torch's fused kernels for SGD and Adam/AdamW (which read the
step counters on the device) and the multi-tensor step for everything else. Each test compares
whole trajectories with the CPU float64 reference step of the same class, which the rest of the
suite holds to the oracles.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
import torch

import optzoo
from harness import TinyProblem, set_grads
from optzoo.optim import _dispatch

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine"),
]

DEVICE = "cuda"
PATHS = {"default": {}, "foreach": {"foreach": True}, "reference": {"foreach": False}}


@dataclass
class Row:
    """An optimizer to run on the accelerator (the oracle packages of zoo_table need not be installed there)."""

    name: str
    make: Callable[..., Any]
    hyper: dict[str, Any] = field(default_factory=dict)
    has_foreach: bool = True


ROWS = [
    Row("SGD", optzoo.SGD, dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.01)),
    Row("Adagrad", optzoo.Adagrad, dict(lr=0.1)),
    Row("RMSprop", optzoo.RMSprop, dict(lr=0.01, centered=True, momentum=0.5)),
    Row("Adadelta", optzoo.Adadelta, dict(lr=1.0)),
    Row("Adam", optzoo.Adam, dict(lr=0.01, amsgrad=True)),
    Row("AdamW", optzoo.AdamW, dict(lr=0.01)),
    Row("Adamax", optzoo.Adamax, dict(lr=0.01)),
    Row("NAdam", optzoo.NAdam, dict(lr=0.01)),
    Row("RAdam", optzoo.RAdam, dict(lr=0.01)),
    Row("Rprop", optzoo.Rprop, dict(lr=0.01)),
    Row("AdaBound", optzoo.AdaBound, dict(lr=0.01)),
    Row("SWATS", optzoo.SWATS, dict(lr=0.01)),
    Row("Ranger", optzoo.Ranger, dict(lr=0.01), has_foreach=False),
    Row("Lookahead-Adam", lambda p, **h: optzoo.Lookahead(optzoo.Adam(p, **h), k=3), dict(lr=0.01), has_foreach=False),
]


def trajectory(case, hyper, device, dtype, extra, steps=20):
    """Parameters after every step on ``device`` in ``dtype``, with the float64 model's gradients."""
    problem = TinyProblem(torch.float64)
    params = [p.detach().to(device=device, dtype=dtype).requires_grad_() for p in problem.params()]
    reference = problem.params()
    optimizer = case.make(params, **hyper, **extra)
    out = []
    for _ in range(steps):
        grads = problem.gradients(reference)
        set_grads(params, [g.to(device=device, dtype=dtype) for g in grads])
        optimizer.step()
        with torch.no_grad():
            for r, p in zip(reference, params):
                r.copy_(p.double().cpu())
        out.append([p.detach().to("cpu", torch.float64, copy=True) for p in params])
    return out, optimizer


@pytest.mark.parametrize("path", PATHS, ids=str)
@pytest.mark.parametrize("case", ROWS, ids=lambda row: row.name)
def test_cuda_follows_the_cpu_reference(case, path):
    hyper = case.hyper
    extra = PATHS[path] if case.has_foreach else {}
    ours, _ = trajectory(case, hyper, DEVICE, torch.float32, extra)
    expected, _ = trajectory(case, hyper, "cpu", torch.float64, {"foreach": False} if case.has_foreach else {})
    for step, (a, b) in enumerate(zip(ours, expected)):
        for i, (x, y) in enumerate(zip(a, b)):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5, msg=lambda m, s=step, i=i: f"step {s}, p{i}: {m}")


FUSED_CASES = [
    ("SGD", dict(lr=0.05, momentum=0.9), "_fused_sgd_"),
    ("Adam", dict(lr=0.01), "_fused_adam_"),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.1), "_fused_adam_"),
    ("AdamW", dict(lr=0.01), "_fused_adamw_"),
]


@pytest.mark.parametrize(("name", "hyper", "kernel"), FUSED_CASES, ids=lambda v: str(v))
def test_cuda_default_runs_the_fused_kernel_with_device_steps(name, hyper, kernel, monkeypatch):
    """The default path on CUDA calls the fused kernel once a step, the step counters live on the
    device (where the kernel reads them), and the result follows the CPU reference."""
    case = next(row for row in ROWS if row.name == name)
    real = getattr(torch, kernel)
    calls = []

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(torch, kernel, spy)
    ours, optimizer = trajectory(case, hyper, DEVICE, torch.float32, {}, steps=10)
    assert len(calls) == 10
    for state in optimizer.state.values():
        if "step" in state:
            assert state["step"].is_cuda and state["step"].dtype == torch.float32
    expected, _ = trajectory(case, hyper, "cpu", torch.float64, {"foreach": False}, steps=10)
    for a, b in zip(ours, expected):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)


def test_cuda_checkpoint_moves_between_devices():
    """A run saved on CUDA resumes on the CPU and back, continuing the same trajectory."""
    case = next(row for row in ROWS if row.name == "Adam")
    full, _ = trajectory(case, dict(lr=0.01), DEVICE, torch.float32, {}, steps=8)
    problem = TinyProblem(torch.float64)
    params = [p.detach().to(DEVICE, torch.float32).requires_grad_() for p in problem.params()]
    optimizer = optzoo.Adam(params, lr=0.01)
    for _ in range(4):
        set_grads(params, [g.to(DEVICE, torch.float32) for g in problem.gradients([p.double().cpu() for p in params])])
        optimizer.step()
    saved = copy.deepcopy(optimizer.state_dict())
    cpu_params = [p.detach().cpu().requires_grad_() for p in params]
    on_cpu = optzoo.Adam(cpu_params, lr=0.01)
    on_cpu.load_state_dict(saved)
    for _ in range(4):
        set_grads(cpu_params, [g.float() for g in problem.gradients([p.double() for p in cpu_params])])
        on_cpu.step()
    for x, y in zip(cpu_params, full[-1]):
        torch.testing.assert_close(x.detach().double(), y, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_cuda_half_precision_trains_on_the_fused_path(name, dtype):
    """The fused CUDA kernels are allowed for half precision (``_dispatch.FUSED``): every element moves."""
    assert dtype in _dispatch.FUSED[name.lower()].dtypes["cuda"]
    p = torch.nn.Parameter(torch.randn(4096, device=DEVICE).to(dtype))
    start = p.detach().clone()
    optimizer = getattr(optzoo, name)([p], lr=0.1, **({"momentum": 0.9} if name == "SGD" else {"eps": 1e-4}))
    for _ in range(3):
        p.grad = torch.randn(4096, device=DEVICE).to(dtype)
        optimizer.step()
    assert (p.detach() != start).float().mean() > 0.95


def test_cuda_strided_parameters_follow_torch():
    """A column slice and a transposed weight with a contiguous gradient never reach the fused kernel."""
    base = torch.randn(8, 9, device=DEVICE)
    guard = base.clone()
    p = torch.nn.Parameter(base[:, 2:5])
    q = torch.nn.Parameter(torch.randn(5, 6, device=DEVICE).t())
    ref = [p.detach().clone().requires_grad_(), q.detach().clone().requires_grad_()]
    ours, torchs = optzoo.Adam([p, q], lr=0.01), torch.optim.Adam(ref, lr=0.01, foreach=False)
    for _ in range(5):
        for a, b in zip([p, q], ref):
            g = torch.randn(a.shape, device=DEVICE)
            a.grad, b.grad = g.contiguous(), g.contiguous()
        ours.step()
        torchs.step()
    for a, b in zip([p, q], ref):
        torch.testing.assert_close(a, b)
    outside = torch.ones_like(base, dtype=torch.bool)
    outside[:, 2:5] = False
    assert torch.equal(base[outside], guard[outside])


# ------------------------------------------- torch's implementation keywords (issue 12)
CAPTURABLE = ["RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Rprop"]


def keyword_run(library, name: str, extra: dict, steps: int = 6) -> list[torch.Tensor]:
    """``steps`` steps of ``library.<name>`` on the device with ``extra``, from seeded gradients."""
    g = torch.Generator().manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(shape, generator=g).to(DEVICE)) for shape in ((6, 5), (5,))]
    optimizer = getattr(library, name)(params, lr=0.01, **extra)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(DEVICE)
        optimizer.step()
    return [p.detach().cpu() for p in params]


@pytest.mark.parametrize("name", CAPTURABLE)
def test_cuda_capturable_follows_torchs_capturable(name):
    """capturable=True on the device: torch's numbers (optzoo still reads the step count on the host)."""
    for path in ({"foreach": False}, {"foreach": True}):
        ours = keyword_run(optzoo, name, {"capturable": True, **path})
        theirs = keyword_run(torch.optim, name, {"capturable": True, **path})
        for a, b in zip(ours, theirs):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW"])
def test_cuda_fused_true_follows_torchs_fused(name):
    ours = keyword_run(optzoo, name, {"fused": True})
    theirs = keyword_run(torch.optim, name, {"fused": True})
    for a, b in zip(ours, theirs):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
