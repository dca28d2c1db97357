"""torch's own optimizer test inputs (``optim_db`` in torch.testing._internal.common_optimizers),
run against optzoo's ten torch-equivalent classes.

* Every CPU config of ``optim_inputs_func``, on several parameter layouts: optzoo follows
  torch.optim's CPU default (the per-tensor loop) at every step, on each of its paths.
* Every CPU entry of ``optim_error_inputs_func``: optzoo fails with the same error type at the
  same point (construction or first step) as torch.optim, seen live, with a one-line message
  naming the hyper-parameter that torch's message names.
"""

from __future__ import annotations

import copy
import re
import warnings

import pytest
import torch
from torch.testing._internal.common_optimizers import OptimizerErrorEnum, OptimizerInput, optim_db

import optzoo

NAMES = ["SGD", "Adagrad", "RMSprop", "Adadelta", "Adam", "AdamW", "Adamax", "NAdam", "RAdam", "Rprop"]
INFOS = {info.name: info for info in optim_db if info.name in NAMES}
DTYPES = {"f32": torch.float32, "f64": torch.float64}
TOLERANCES = {torch.float32: {"rtol": 1e-5, "atol": 1e-6}, torch.float64: {"rtol": 1e-10, "atol": 1e-12}}
STEPS = 5

# Each builds one parameter from a generator; built twice from the same seed, so torch and optzoo
# get equal tensors with equal strides (a clone would make the column slice contiguous).
LAYOUTS = {
    "contiguous": lambda g, dtype: torch.randn(5, 4, generator=g, dtype=dtype),
    "transposed": lambda g, dtype: torch.randn(4, 5, generator=g, dtype=dtype).t(),
    "column_slice": lambda g, dtype: torch.randn(5, 9, generator=g, dtype=dtype)[:, 2:6],
    "channels_last": lambda g, dtype: torch.randn(2, 3, 4, 5, generator=g, dtype=dtype).contiguous(
        memory_format=torch.channels_last
    ),
    "scalar": lambda g, dtype: torch.randn((), generator=g, dtype=dtype),
    "1d": lambda g, dtype: torch.randn(7, generator=g, dtype=dtype),
}

# optzoo's paths; a config that picks its implementation itself runs once, as given.
PATHS = {"default": {}, "loop": {"foreach": False}, "foreach": {"foreach": True}}
IMPL_KWARGS = ("foreach", "fused", "capturable", "differentiable")


def slug(text: str) -> str:
    return re.sub(r"[^\w-]+", "_", text).strip("_")


def cpu_configs(info, dtype) -> list[OptimizerInput]:
    """The class's CPU configs, and, as torch's _get_optim_inputs_including_global_cliquey_kwargs
    adds them, one copy per implementation flag in ``supported_impls`` that CPU has, switched on.
    foreach is left out there: it is the path axis of the comparison already."""
    base = info.optim_inputs_func(device="cpu", dtype=dtype)
    flags = [
        flag
        for flag in info.supported_impls
        if flag == "differentiable" or (flag == "fused" and "cpu" in info.supports_fused_on)
    ]
    variants = [OptimizerInput(None, {**c.kwargs, flag: True}, f"{c.desc} & {flag}") for c in base for flag in flags]
    return base + variants


TRAJECTORIES = [
    pytest.param(
        name,
        config.kwargs,
        LAYOUTS[layout],
        dtype,
        path_kwargs,
        id=f"{name}-{slug(config.desc)}-{layout}-{dtype_id}-{path}",
    )
    for name in NAMES
    for dtype_id, dtype in DTYPES.items()
    for config in cpu_configs(INFOS[name], dtype)
    for layout in LAYOUTS
    for path, path_kwargs in (
        {"given": {}} if any(k in config.kwargs for k in IMPL_KWARGS) else PATHS
    ).items()
]


def whole(param):
    """A view's base, the parameter itself otherwise: an update must stay inside its parameter."""
    return param if param._base is None else param._base


@pytest.mark.parametrize(("name", "kwargs", "make_param", "dtype", "path_kwargs"), TRAJECTORIES)
def test_config_follows_torch(name, kwargs, make_param, dtype, path_kwargs):
    """Same parameter, same seeded gradients: optzoo's parameter equals torch's after every step."""
    params = []
    for _ in range(2):
        param = make_param(torch.Generator().manual_seed(0), dtype)
        # A differentiable step (torch's, seen) records its in-place update, which autograd refuses
        # on a leaf that requires grad; gradients are assigned by hand, so none needs requires_grad.
        params.append(param.requires_grad_(not kwargs.get("differentiable", False)))
    torch_param, zoo_param = params
    # The reference is torch's CPU loop whatever implementation the config asks optzoo for: the
    # flags choose how, not what, and torch's CPU fused kernels are no reference for a non-dense
    # view (they update it as if contiguous, writing outside it).
    torch_kwargs = {k: v for k, v in copy.deepcopy(kwargs).items() if k not in IMPL_KWARGS}
    torch_opt = getattr(torch.optim, name)([torch_param], **torch_kwargs)
    zoo_opt = getattr(optzoo, name)([zoo_param], **copy.deepcopy(kwargs), **path_kwargs)
    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        grad = torch.empty_like(torch_param).copy_(torch.randn(torch_param.shape, generator=g, dtype=dtype))
        torch_param.grad, zoo_param.grad = grad.clone(), grad.clone()
        torch_opt.step()
        zoo_opt.step()
        torch.testing.assert_close(
            whole(zoo_param), whole(torch_param), **TOLERANCES[dtype], msg=lambda m, s=step: f"step {s + 1}: {m}"
        )


# ----------------------------------------------------------------------- errors
ERRORS = [
    pytest.param(name, entry, id=f"{name}-{index}-{slug(entry.optimizer_error_input.desc)}")
    for name in NAMES
    for index, entry in enumerate(INFOS[name].optim_error_inputs_func(device="cpu", dtype=torch.float32))
]
STAGES = {OptimizerErrorEnum.CONSTRUCTION_ERROR: "construction", OptimizerErrorEnum.STEP_ERROR: "step"}


def first_failure(optimizer_cls, entry) -> tuple[str | None, Exception | None]:
    """Where ``optimizer_cls`` fails on the entry's input, as torch's test_errors feeds it (the
    params as given, None included, then one step): ("construction" | "step" | None, the error)."""
    # A copy each, so a step error never sees the other optimizer's update; deepcopy keeps a
    # duplicated parameter duplicated.
    params, kwargs = copy.deepcopy((entry.optimizer_error_input.params, entry.optimizer_error_input.kwargs))
    with warnings.catch_warnings():
        # torch lists a warning among its errors (duplicate parameters); raised, it compares like an error.
        if issubclass(entry.error_type, Warning):
            warnings.simplefilter("error", entry.error_type)
        try:
            optimizer = optimizer_cls(params, **kwargs)
        except Exception as error:
            return "construction", error
        try:
            optimizer.step()
        except Exception as error:
            return "step", error
    return None, None


@pytest.mark.parametrize(("name", "entry"), ERRORS)
def test_error_input_fails_like_torch(name, entry):
    torch_stage, torch_error = first_failure(getattr(torch.optim, name), entry)
    assert torch_stage == STAGES[entry.error_on], f"torch.optim.{name}: {torch_stage}, {torch_error!r}"
    assert isinstance(torch_error, entry.error_type) and re.search(entry.error_regex, str(torch_error))

    zoo_stage, zoo_error = first_failure(getattr(optzoo, name), entry)
    assert (zoo_stage, type(zoo_error)) == (torch_stage, type(torch_error)), (
        f"torch.optim.{name} fails at {torch_stage} with {torch_error!r}; optzoo.{name}: {zoo_stage}, {zoo_error!r}"
    )
    message = str(zoo_error)
    assert message and "\n" not in message, f"not one line: {message!r}"
    # The keywords torch's message names ("betas" as "beta ... at index 0", "etas" as "eta values").
    named = [k for k in entry.optimizer_error_input.kwargs if re.search(rf"\b{k.removesuffix('s')}", entry.error_regex)]
    for keyword in named:
        assert re.search(rf"\b{keyword.removesuffix('s')}", message), f"{keyword!r} not named in {message!r}"
