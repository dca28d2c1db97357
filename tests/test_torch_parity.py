"""The drop-in rule's parts torch's optim_db inputs do not cover, each against torch.optim 2.13 live.

* Complex parameters (a matrix, a vector, a transposed matrix; complex64 and complex128) in the
  ten torch-equivalent classes, on every path, equal torch's CPU loop after every step, and never
  reach a fused or native kernel.
* Sparse gradients (``nn.Embedding(sparse=True)``) in SGD and Adagrad, as torch handles them on
  every path; the errors torch raises on them (weight decay, the other eight classes), at the
  same point.
* Tensor learning rates on every path, also under an LR scheduler that changes them in place,
  equal torch's; the per-step re-validation reads a tensor hyper-parameter's value only after it
  changed (no host sync per step).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import optzoo
from optzoo.optim import _native

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Rprop"]
PATHS = {"default": None, "loop": False, "foreach": True}
TOLERANCES = {
    torch.float32: {"rtol": 1e-5, "atol": 1e-6},
    torch.float64: {"rtol": 1e-10, "atol": 1e-12},
    torch.complex64: {"rtol": 1e-5, "atol": 1e-6},
    torch.complex128: {"rtol": 1e-10, "atol": 1e-12},
}
STEPS = 8  # RAdam's rectified step starts at step 6
# A couple of settings each, covering the options whose complex handling torch spells out.
SETTINGS: dict[str, list[dict[str, Any]]] = {
    "SGD": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True, "weight_decay": 0.1},
        {"lr": 0.1, "momentum": 0.9, "dampening": 0.3, "maximize": True},
    ],
    "Adagrad": [{}, {"lr_decay": 0.1, "weight_decay": 0.1, "initial_accumulator_value": 0.5, "maximize": True}],
    "RMSprop": [{}, {"centered": True, "momentum": 0.9, "weight_decay": 0.1}, {"centered": True, "maximize": True}],
    "Adadelta": [{}, {"weight_decay": 0.1, "maximize": True}],
    "Adam": [{}, {"amsgrad": True, "weight_decay": 0.1, "maximize": True}],
    "AdamW": [{}, {"amsgrad": True}],
    "Adamax": [{}, {"weight_decay": 0.1, "maximize": True}],
    "NAdam": [{}, {"weight_decay": 0.1, "decoupled_weight_decay": True}],
    "RAdam": [{}, {"weight_decay": 0.1, "decoupled_weight_decay": True}],
    "Rprop": [{}, {"etas": (0.3, 1.5), "maximize": True}],
}
FUSED_OPS = ["_fused_sgd_", "_fused_adam_", "_fused_adamw_", "_fused_adagrad_"]


def make_params(dtype: torch.dtype) -> list[torch.Tensor]:
    """A matrix, a vector and a transposed matrix, the same for each call."""
    g = torch.Generator().manual_seed(0)
    return [
        torch.randn(3, 4, generator=g, dtype=dtype),
        torch.randn(5, generator=g, dtype=dtype),
        torch.randn(4, 3, generator=g, dtype=dtype).t(),
    ]


def compare_every_step(
    name: str,
    kwargs: dict[str, Any],
    make: Callable[[], list[torch.Tensor]],
    set_grads: Callable[[list[torch.Tensor], int], None],
    foreach: bool | None,
    steps: int = STEPS,
    scheduler: Callable[[torch.optim.Optimizer], Any] | None = None,
) -> None:
    """Build torch's optimizer (its CPU loop) and optzoo's (``foreach``) on equal parameters from
    ``make``, give both the same gradients (``set_grads(params, step)``) and require equal parameters
    after every step; with ``scheduler``, one wraps each optimizer and steps after it."""
    torch_params, zoo_params = make(), make()

    def fresh(value: Any) -> Any:  # each optimizer its own tensor hyper-parameters, as a scheduler writes them
        return value.clone() if isinstance(value, torch.Tensor) else value

    torch_opt = getattr(torch.optim, name)(torch_params, **{k: fresh(v) for k, v in kwargs.items()}, foreach=False)
    zoo_opt = getattr(optzoo, name)(zoo_params, **{k: fresh(v) for k, v in kwargs.items()}, foreach=foreach)
    schedulers = [scheduler(torch_opt), scheduler(zoo_opt)] if scheduler else []
    for step in range(steps):
        set_grads(torch_params, step)
        set_grads(zoo_params, step)
        torch_opt.step()
        zoo_opt.step()
        for s in schedulers:
            s.step()
        for zoo, ref in zip(zoo_params, torch_params, strict=True):
            torch.testing.assert_close(zoo, ref, **TOLERANCES[ref.dtype], msg=lambda m, s=step: f"step {s + 1}: {m}")


def random_grads(params: list[torch.Tensor], step: int) -> None:
    g = torch.Generator().manual_seed(100 + step)
    for p in params:
        p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=g, dtype=p.dtype))


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[torch.Tensor]]:
    """Every call to torch's fused kernels and optzoo's native ones, as the tensors it got."""
    calls: list[list[torch.Tensor]] = []

    def spy(function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            calls.append([t for arg in args if isinstance(arg, list) for t in arg if isinstance(t, torch.Tensor)])
            return function(*args, **kwargs)

        return wrapped

    for op in FUSED_OPS:
        monkeypatch.setattr(torch, op, spy(getattr(torch, op)))
    monkeypatch.setattr(_native, "run", spy(_native.run))
    return calls


# ---------------------------------------------------------------------- complex
COMPLEX = [
    pytest.param(name, kwargs, dtype, foreach, id=f"{name}-{i}-{str(dtype)[6:]}-{path}")
    for name in NAMES
    for i, kwargs in enumerate(SETTINGS[name])
    for dtype in (torch.complex64, torch.complex128)
    for path, foreach in PATHS.items()
]


@pytest.mark.parametrize(("name", "kwargs", "dtype", "foreach"), COMPLEX)
def test_complex_params_follow_torch(name, kwargs, dtype, foreach, kernel_calls):
    compare_every_step(name, kwargs, lambda: make_params(dtype), random_grads, foreach)
    assert kernel_calls == []


@pytest.mark.parametrize("name", ["SGD", "Adagrad", "Adam", "AdamW", "RMSprop"])
def test_complex_beside_real_params_keeps_complex_off_the_kernels(name, kernel_calls):
    """Real parameters still take the fast kernels; the complex ones beside them never do."""

    def make() -> list[torch.Tensor]:
        real, complex_ = make_params(torch.float32), make_params(torch.complex64)
        # big enough for the native kernels (_native.MIN_NUMEL)
        return [torch.randn(128, 128, generator=torch.Generator().manual_seed(2)), *real, *complex_]

    compare_every_step(name, {"lr": 0.01}, make, random_grads, None)
    assert kernel_calls, "the real parameters took no fast kernel"
    assert not any(t.is_complex() for call in kernel_calls for t in call)


def test_complex_state_is_complex_and_loads_into_torch():
    """The state keeps the parameter's dtype (Adagrad's sum starting at complex(v, v)) and torch
    continues from it exactly."""
    params = make_params(torch.complex64)
    zoo = optzoo.Adagrad(params, initial_accumulator_value=0.5)
    random_grads(params, 0)
    zoo.step()
    sums = [zoo.state[p]["sum"] for p in params]
    assert all(s.dtype == torch.complex64 for s in sums)
    ref_params = [p.detach().clone() for p in params]
    ref = torch.optim.Adagrad(ref_params, initial_accumulator_value=0.5)
    ref.load_state_dict(copy.deepcopy(zoo.state_dict()))  # torch's load keeps tensors it need not cast
    for step in (1, 2):
        random_grads(params, step)
        random_grads(ref_params, step)
        zoo.step()
        ref.step()
    for p, r in zip(params, ref_params, strict=True):
        torch.testing.assert_close(p, r, rtol=0, atol=0)


# ----------------------------------------------------------------------- sparse
SPARSE_SETTINGS = {
    "SGD": [
        {"lr": 0.1},
        {"lr": 0.1, "momentum": 0.9, "nesterov": True},
        {"lr": 0.1, "momentum": 0.5, "maximize": True},
    ],
    "Adagrad": [{"lr": 0.1}, {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.5, "maximize": True}],
}
SPARSE = [
    pytest.param(name, kwargs, dtype, foreach, id=f"{name}-{i}-{str(dtype)[6:]}-{path}")
    for name, settings in SPARSE_SETTINGS.items()
    for i, kwargs in enumerate(settings)
    for dtype in (torch.float32, torch.float64)
    for path, foreach in PATHS.items()
]


def embedding_and_linear(dtype: torch.dtype) -> list[torch.Tensor]:
    """A sparse embedding's weight and a dense weight, in one group."""
    g = torch.Generator().manual_seed(0)
    return [torch.randn(10, 3, generator=g, dtype=dtype).requires_grad_(), torch.randn(3, 2, generator=g, dtype=dtype)]


def embedding_grads(params: list[torch.Tensor], step: int) -> None:
    """The embedding's gradient as ``nn.Embedding(sparse=True)`` makes it (repeated rows
    uncoalesced), the dense weight's a dense one."""
    weight, dense = params
    g = torch.Generator().manual_seed(100 + step)
    rows = torch.randint(0, 10, (6,), generator=g)  # repeats likely
    weight.grad = None
    torch.nn.functional.embedding(rows, weight, sparse=True).pow(2).sum().backward()
    dense.grad = torch.randn(dense.shape, generator=g, dtype=dense.dtype)


@pytest.mark.parametrize(("name", "kwargs", "dtype", "foreach"), SPARSE)
def test_sparse_gradients_follow_torch(name, kwargs, dtype, foreach, kernel_calls):
    compare_every_step(name, kwargs, lambda: embedding_and_linear(dtype), embedding_grads, foreach, steps=5)
    assert not any(t.is_sparse for call in kernel_calls for t in call)


def test_sparse_momentum_state_resumes():
    """SGD's momentum over sparse gradients is a sparse tensor, as torch's is: a state dict holding it
    loads, and the resumed run goes on as torch's uninterrupted one."""
    params = [embedding_and_linear(torch.float64), embedding_and_linear(torch.float64)]
    ref = torch.optim.SGD(params[0], lr=0.1, momentum=0.9)
    first = optzoo.SGD(params[1], lr=0.1, momentum=0.9)
    for ps in params:
        embedding_grads(ps, 0)
    ref.step()
    first.step()
    assert first.state[params[1][0]]["momentum_buffer"].is_sparse
    resumed = optzoo.SGD(params[1], lr=0.1, momentum=0.9)
    resumed.load_state_dict(copy.deepcopy(first.state_dict()))
    for step in (1, 2):
        for ps in params:
            embedding_grads(ps, step)
        ref.step()
        resumed.step()
    for p, q in zip(*params, strict=True):
        torch.testing.assert_close(q, p, **TOLERANCES[torch.float64])


def first_failure(module: Any, name: str, kwargs: dict[str, Any]) -> tuple[str | None, type | None, bool]:
    """Where the optimizer fails on a sparse gradient: (stage, error type, whether the weight moved)."""
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    before = embedding.weight.detach().clone()
    try:
        optimizer = getattr(module, name)(embedding.parameters(), **kwargs)
    except Exception as error:
        return "construction", type(error), False
    embedding(torch.tensor([1, 2, 2])).sum().backward()
    try:
        optimizer.step()
    except Exception as error:
        return "step", type(error), not torch.equal(embedding.weight.detach(), before)
    return None, None, False


SPARSE_ERRORS = [
    *[(name, {}) for name in NAMES if name not in SPARSE_SETTINGS],
    ("SGD", {"weight_decay": 0.1}),
    ("SGD", {"weight_decay": 0.1, "momentum": 0.9, "foreach": True}),
    ("Adagrad", {"weight_decay": 0.1}),
    ("Adagrad", {"weight_decay": 0.1, "foreach": True}),
]


@pytest.mark.parametrize(("name", "kwargs"), SPARSE_ERRORS, ids=lambda v: str(v) if isinstance(v, str) else None)
def test_sparse_gradient_errors_like_torch(name, kwargs):
    stage, error, _ = first_failure(torch.optim, name, kwargs)
    assert stage == "step", f"torch.optim.{name}({kwargs}) does not fail at the step: the list is stale"
    assert first_failure(optzoo, name, kwargs) == (stage, error, False)


# ------------------------------------------------------------ tensor hyper-parameters
T = torch.tensor
# Tensor forms of each class's hyper-parameters that torch's per-tensor step takes (1-element tensors
# of any shape for lr, as torch's _to_scalar squeezes them).
TENSOR_HYPER: dict[str, list[dict[str, Any]]] = {
    "SGD": [{"lr": T([0.01]), "momentum": T(0.9)}, {"weight_decay": T(0.1), "momentum": 0.5, "nesterov": True}],
    "Adagrad": [{"lr_decay": T(0.1)}, {"weight_decay": T(0.1), "eps": T(1e-8)}],
    "RMSprop": [{"alpha": T(0.9), "centered": True}, {"momentum": T(0.9), "weight_decay": T(0.1)}],
    "Adadelta": [{"rho": T(0.8)}, {"weight_decay": T(0.1)}],
    "Adam": [{"betas": (T(0.9), T(0.99))}, {"lr": T([0.01]), "weight_decay": T(0.1)}],
    "AdamW": [{"betas": (T(0.9), T(0.99)), "amsgrad": True}, {"weight_decay": T(0.1)}],
    "Adamax": [{"betas": (T(0.9), T(0.99))}, {"weight_decay": T(0.1)}],
    "NAdam": [{"betas": (T(0.9), T(0.99))}, {"momentum_decay": T(0.004)}],
    "RAdam": [{"betas": (T(0.9), T(0.99))}, {"weight_decay": T(0.1)}],
    "Rprop": [{"etas": (T(0.5), T(1.2))}, {"step_sizes": (T(1e-6), T(50.0))}],
}


def torch_refuses(name: str, kwargs: dict[str, Any]) -> type[Exception] | None:
    """The error type torch.optim raises at construction for these keywords, or None."""
    try:
        getattr(torch.optim, name)([torch.zeros(1)], **kwargs)
    except Exception as error:
        return type(error)
    return None


def compare_or_refuse(name: str, kwargs: dict[str, Any], dtype: torch.dtype, foreach: bool | None, **options) -> None:
    """Where torch refuses the keywords on this path at construction, optzoo refuses them there with
    the same type; elsewhere optzoo follows torch's per-tensor step."""
    refused = torch_refuses(name, {**kwargs, "foreach": foreach})
    if refused is not None:
        with pytest.raises(refused):
            getattr(optzoo, name)(make_params(dtype), **kwargs, foreach=foreach)
        return
    compare_every_step(name, kwargs, lambda: make_params(dtype), random_grads, foreach, **options)


@pytest.mark.parametrize(
    ("name", "dtype", "foreach"),
    [
        pytest.param(name, dtype, foreach, id=f"{name}-{str(dtype)[6:]}-{path}")
        for name in NAMES
        for dtype in (torch.float32, torch.float64)
        for path, foreach in PATHS.items()
    ],
)
def test_tensor_lr_follows_torch(name, dtype, foreach):
    """A tensor lr, changed in place every step by an LR scheduler, on every path."""

    def scheduler(optimizer: torch.optim.Optimizer) -> Any:
        return torch.optim.lr_scheduler.ExponentialLR(optimizer, gamma=0.7)

    compare_or_refuse(name, {"lr": T(0.01)}, dtype, foreach, scheduler=scheduler)


@pytest.mark.parametrize(
    ("name", "kwargs", "foreach"),
    [
        pytest.param(name, kwargs, foreach, id=f"{name}-{i}-{path}")
        for name in NAMES
        for i, kwargs in enumerate(TENSOR_HYPER[name])
        for path, foreach in PATHS.items()
    ],
)
def test_tensor_hyper_follows_torch(name, kwargs, foreach):
    """float64 parameters: a tensor's float32 value rounded where torch rounds it shows."""
    compare_or_refuse(name, kwargs, torch.float64, foreach)


class ScalarReads(TorchDispatchMode):
    """Counts reads of a tensor's value on the host (``item()``, ``float()``, ``bool()``)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


@pytest.mark.parametrize("name", NAMES)
def test_step_revalidates_tensor_hyper_without_reading_it(name, monkeypatch):
    """``step()`` re-checks every hyper-parameter; a tensor's value is read again (a host sync on an
    accelerator) only once it changed in place, and a bad value set so is still refused."""
    lr = torch.tensor(0.01)
    params = make_params(torch.float32)
    optimizer = getattr(optzoo, name)(params, lr=lr)
    random_grads(params, 0)
    monkeypatch.setattr(optimizer, "_update_group", lambda group, params: None)  # the checks only
    optimizer.step()
    with ScalarReads() as reads:
        optimizer.step()
        optimizer.step()
    assert reads.count == 0
    lr.fill_(-1.0)
    with pytest.raises(ValueError, match="lr"):
        optimizer.step()
