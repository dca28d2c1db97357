"""Machinery shared by every optzoo optimizer.

One place for what each algorithm would otherwise repeat: hyper-parameter
validation, the ``maximize`` sign flip, coupled (L2) and decoupled weight
decay, lazy state initialisation, grouping tensors by device and dtype for the
multi-tensor path, and a strict ``load_state_dict``.

An algorithm subclasses :class:`ZooOptimizer` and writes four small methods:

* ``_check_hyper(group)``: raise ``ValueError``/``TypeError`` for a bad value;
* ``_init_state(group, param, state)``: fill a fresh per-parameter state;
* ``_reference_update(group, param, grad, state)``: one tensor, in the paper's
  notation, the version a student reads;
* ``_foreach_update(group, params, grads, states)``: the same update over lists
  of tensors that share a device and dtype, with ``torch._foreach_*`` ops;
* optionally ``_fused_update(...)``: one of torch's fused kernels, where it
  computes exactly this algorithm;
* or a single-pass native CPU kernel (``optim/kernels/<name>.cpp``, see
  ``_native.py``): set ``native_kernel`` to its name and write
  ``_native_hyper(group)`` (its hyper-parameters after the common ones) and
  ``_native_buffers(group, param, state)`` (its state tensors, in order); a kernel
  that reads or writes per-tensor values (a phase, a whole-tensor sum) also writes
  ``_native_per_tensor(group, states)`` (the float64 array it receives) and
  ``_native_after(group, states, per_tensor)`` (what to make of it once it ran).

``foreach=None`` (the default) prefers torch's fused kernel, then the native
one, then the per-tensor step on CPU (faster there than the multi-tensor ops,
measured) and the multi-tensor one elsewhere.

The gradients both update methods receive already carry ``maximize`` and
coupled weight decay, and decoupled weight decay has already been applied to
the parameters, so no algorithm file handles either.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _native

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
Closure = Callable[[], Any]

__all__ = [
    "ParamsT",
    "ZooOptimizer",
    "check_betas",
    "check_bool",
    "check_choice",
    "check_number",
    "foreach_update_moments",
    "fused_kernel_applies",
    "group_by_device_and_dtype",
    "new_step_counter",
    "start_state",
    "update_moments",
]


def _as_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() == 1 and not value.requires_grad:
            return float(value.item())
        raise TypeError(f"{name} must be a real number, got {type(value).__name__} {value!r}")
    return float(value)


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> float:
    """Check that ``value`` is a finite real number in the stated interval.

    The error names the parameter and the accepted range, e.g.
    ``ValueError: lr must be in [0, inf), got -0.1``.
    """
    number = _as_real(name, value)
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    interval = f"{left}{'-inf' if low is None else _fmt(low)}, {'inf' if high is None else _fmt(high)}{right}"
    too_low = low is not None and (number < low or (low_open and number == low))
    too_high = high is not None and (number > high or (high_open and number == high))
    if math.isnan(number) or too_low or too_high or (math.isinf(number) and high is None):
        raise ValueError(f"{name} must be in {interval}, got {value!r}")
    return number


def _fmt(bound: float) -> str:
    return f"{bound:g}"


def check_betas(name: str, betas: Any, count: int = 2) -> tuple[float, ...]:
    """Check a tuple of ``count`` decay rates, each in [0, 1)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        raise TypeError(f"{name} must be a tuple of {count} numbers in [0, 1), got {betas!r}")
    return tuple(check_number(f"{name}[{i}]", b, 0.0, 1.0, high_open=True) for i, b in enumerate(betas))


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def new_step_counter() -> Tensor:
    """A per-parameter step count, stored as torch stores it (a float32 scalar tensor).

    A tensor rather than an int so state dicts look like torch.optim's and travel
    through ``torch.distributed.checkpoint`` unchanged.
    """
    return torch.tensor(0.0, dtype=torch.float32)


def start_state(state: dict[str, Any], param: Tensor, *buffers: str) -> None:
    """A fresh per-parameter state: a step counter, and each named buffer zeros like ``param``."""
    state["step"] = new_step_counter()
    for name in buffers:
        state[name] = torch.zeros_like(param, memory_format=torch.preserve_format)


def update_moments(m: Tensor, v: Tensor, grad: Tensor, beta1: float, beta2: float) -> None:
    """Adam's moment estimates, in place and as torch.optim.Adam computes them:
    m_t = beta1 m + (1 - beta1) g (a lerp) and v_t = beta2 v + (1 - beta2) g^2."""
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)


def foreach_update_moments(ms: list[Tensor], vs: list[Tensor], grads: list[Tensor], beta1: float, beta2: float) -> None:
    """:func:`update_moments` over lists of tensors, with the same operations."""
    torch._foreach_lerp_(ms, grads, 1 - beta1)
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, 1 - beta2)


def fused_kernel_applies(params: Sequence[Tensor]) -> bool:
    """Whether torch's fused optimizer kernels take these tensors: plain (not DTensor or
    tensor-subclass) floating-point tensors on CPU or CUDA."""
    first = params[0]
    return (
        all(type(p) in (Tensor, torch.nn.Parameter) for p in params)
        and first.device.type in ("cpu", "cuda")
        and first.dtype in (torch.float64, torch.float32, torch.float16, torch.bfloat16)
    )


def group_by_device_and_dtype(tensors: Sequence[Tensor]) -> list[list[int]]:
    """Indices of ``tensors`` bucketed by (tensor type, device, dtype), first-seen order.

    Multi-tensor kernels need every list on one device with one dtype; the tensor
    type is part of the key because DTensors cannot share a list with plain tensors.
    """
    buckets: dict[tuple[type, torch.dtype, torch.device | None], list[int]] = {}
    for index, tensor in enumerate(tensors):
        # None stands for the CPU: building a device object costs more, per tensor and step, than the rest.
        device = None if tensor.is_cpu else tensor.device
        buckets.setdefault((type(tensor), tensor.dtype, device), []).append(index)
    return list(buckets.values())


class ZooOptimizer(Optimizer):
    """Base class of optzoo's optimizers (see the module docstring).

    Class attributes a subclass may set:

    * ``state_keys``: the per-parameter state entries; ``load_state_dict`` refuses
      a state dict whose entries differ (another optimizer's, say);
    * ``native_kernel``: the name of the algorithm's single-pass CPU kernel, if it has one;
    * ``supports_sparse`` / ``supports_complex``: refused with a clear error when False.
    """

    state_keys: tuple[str, ...] = ()
    native_kernel: str | None = None
    supports_sparse: bool = False
    supports_complex: bool = False

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        defaults = dict(defaults)
        defaults.setdefault("maximize", False)
        defaults.setdefault("foreach", None)
        self._check_common(defaults)
        self._check_hyper(defaults)
        super().__init__(params, defaults)

    # ----------------------------------------------------------------- validation
    def _check_hyper(self, group: dict[str, Any]) -> None:
        """Raise for a hyper-parameter out of range. Subclasses extend."""

    def _check_common(self, group: dict[str, Any]) -> None:
        if "lr" in group:
            check_number("lr", group["lr"], 0.0)
        if "weight_decay" in group:
            check_number("weight_decay", group["weight_decay"], 0.0)
        check_bool("maximize", group["maximize"])
        if group["foreach"] is not None:
            check_bool("foreach", group["foreach"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # Validate the merged group before torch appends it, so a bad group is never half-added.
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_common(merged)
        self._check_hyper(merged)
        super().add_param_group(param_group)

    # ----------------------------------------------------------------------- step
    @torch.no_grad()
    def step(self, closure: Closure | None = None) -> Any:
        """Perform one update; return the closure's loss if a closure is given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        # Check everything before touching anything: an error never leaves a half-applied update.
        work = []
        for group in self.param_groups:
            self._check_common(group)
            self._check_hyper(group)
            work.append((group, self._params_with_grad(group)))
        for group, params in work:
            if params:
                self._update_group(group, params)
        return loss

    def _params_with_grad(self, group: dict[str, Any]) -> list[Tensor]:
        params = []
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse and not self.supports_sparse:
                raise RuntimeError(
                    f"{type(self).__name__} does not support sparse gradients; "
                    "use torch.optim.SparseAdam or a dense embedding (sparse=False)"
                )
            if torch.is_complex(p) and not self.supports_complex:
                raise TypeError(f"{type(self).__name__} does not support complex parameters")
            params.append(p)
        return params

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        states = []
        for p in params:
            state = self.state[p]
            if not state:
                self._init_state(group, p, state)
            states.append(state)
        grads = [p.grad for p in params]
        for bucket in group_by_device_and_dtype(params):
            bucket_params = [params[i] for i in bucket]
            bucket_grads = [grads[i] for i in bucket]
            bucket_states = [states[i] for i in bucket]
            foreach = group["foreach"]
            if foreach is None:
                if self._fused_update(group, bucket_params, bucket_grads, bucket_states):
                    continue
                left = self._native_update(group, bucket_params, bucket_grads, bucket_states)
                if not left:
                    continue
                if len(left) < len(bucket_params):
                    bucket_params = [bucket_params[i] for i in left]
                    bucket_grads = [bucket_grads[i] for i in left]
                    bucket_states = [bucket_states[i] for i in left]
                # Measured on CPU: the per-tensor loop keeps each tensor in cache and beats the
                # multi-tensor ops, which stream whole-list temporaries through memory (torch's
                # own CPU default is the loop too). On accelerators the multi-tensor path wins.
                foreach = bucket_params[0].device.type != "cpu"
            if foreach:
                bucket_grads = self._foreach_prepare(group, bucket_params, bucket_grads)
                self._foreach_update(group, bucket_params, bucket_grads, bucket_states)
            else:
                for p, grad, state in zip(bucket_params, bucket_grads, bucket_states):
                    self._reference_update(group, p, self._reference_prepare(group, p, grad), state)

    # -------------------------------------------------- maximize and weight decay
    def _decoupled_decay(self, group: dict[str, Any]) -> float:
        """The factor ``1 - lr * weight_decay`` that decoupled decay multiplies parameters by."""
        return 1.0 - group["lr"] * group["weight_decay"]

    def _reference_prepare(self, group: dict[str, Any], param: Tensor, grad: Tensor) -> Tensor:
        if group["maximize"]:
            grad = -grad
        weight_decay = group.get("weight_decay", 0.0)
        if weight_decay != 0:
            if group.get("decoupled_weight_decay", False):
                param.mul_(self._decoupled_decay(group))
            else:
                grad = grad.add(param, alpha=weight_decay)
        return grad

    def _foreach_prepare(self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor]) -> list[Tensor]:
        if group["maximize"]:
            grads = torch._foreach_neg(grads)
        weight_decay = group.get("weight_decay", 0.0)
        if weight_decay != 0:
            if group.get("decoupled_weight_decay", False):
                torch._foreach_mul_(params, self._decoupled_decay(group))
            elif group["maximize"]:
                torch._foreach_add_(grads, params, alpha=weight_decay)
            else:
                grads = torch._foreach_add(grads, params, alpha=weight_decay)
        return grads

    # ------------------------------------------------------- the algorithm's part
    def _fused_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> bool:
        """Update one bucket with a single fused kernel, if the algorithm has one that fits.

        Called with the raw gradients (the kernel applies ``maximize`` and weight
        decay itself) when ``foreach`` is None; return False to fall back to
        ``_foreach_update``.
        """
        return False

    def _native_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> list[int]:
        """Update with the native kernel every parameter it can take; return the indices of the rest."""
        everything = list(range(len(params)))
        if self.native_kernel is None or not _native.buckets_fit(params):
            return everything
        hyper = self._native_hyper(group)
        weight_decay = group.get("weight_decay", 0.0)
        # A tensor hyper-parameter makes the reference compute its scalars in the tensor's
        # precision, which a kernel taking float64 scalars would not reproduce.
        if hyper is None or any(isinstance(value, Tensor) for value in [*hyper, group["lr"], weight_decay]):
            return everything
        function = _native.kernel(self.native_kernel)
        if function is None:
            return everything
        taken: list[int] = []
        left: list[int] = []
        columns: list[list[Tensor | None]] = []
        for index, (param, grad, state) in enumerate(zip(params, grads, states)):
            buffers = self._native_buffers(group, param, state)
            if _native.tensors_fit(param, [grad, *buffers], state["step"]):
                taken.append(index)
                columns.append([param, grad, *buffers])
            else:
                left.append(index)
        if taken:
            common = [
                float(group["maximize"]),
                weight_decay,
                float(group.get("decoupled_weight_decay", False)),
                self._decoupled_decay(group) if weight_decay != 0 else 1.0,
            ]
            by_buffer = [list(column) for column in zip(*columns)]
            taken_states = [states[i] for i in taken]
            per_tensor = self._native_per_tensor(group, taken_states)
            _native.run(function, by_buffer, [s["step"] for s in taken_states], common + hyper, per_tensor)
            if per_tensor is not None:
                self._native_after(group, taken_states, per_tensor)
        return left

    def _native_hyper(self, group: dict[str, Any]) -> list[float] | None:
        """The native kernel's own hyper-parameters for this group, or None where the kernel
        does not cover the group's options."""
        return None

    def _native_buffers(self, group: dict[str, Any], param: Tensor, state: dict[str, Any]) -> list[Tensor | None]:
        """The state tensors the native kernel takes after the parameter and its gradient."""
        raise NotImplementedError

    def _native_per_tensor(self, group: dict[str, Any], states: list[dict[str, Any]]) -> Tensor | None:
        """The per-tensor values the native kernel reads and writes (``per_tensor`` in
        kernels/common.h), a contiguous CPU float64 tensor with a row per tensor it takes (whose
        ``states`` these are), or None (the default) for a kernel that has none."""
        return None

    def _native_after(self, group: dict[str, Any], states: list[dict[str, Any]], per_tensor: Tensor) -> None:
        """Called after the kernel ran, with the array ``_native_per_tensor`` gave it, to take
        back what the kernel wrote there (into ``states``)."""

    def _init_state(self, group: dict[str, Any], param: Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        raise NotImplementedError

    # ----------------------------------------------------------------- state dict
    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict; refuse, leaving this optimizer untouched, one that does not fit.

        Beyond torch's checks (same number of groups and of parameters per group),
        the saved groups must carry this optimizer's hyper-parameters and the saved
        per-parameter state this optimizer's entries, so another optimizer's state
        dict is refused rather than silently half-used.
        """
        self._check_state_dict(state_dict)
        super().load_state_dict(state_dict)

    def _check_state_dict(self, state_dict: dict[str, Any]) -> None:
        name = type(self).__name__
        if not isinstance(state_dict, dict) or set(state_dict) < {"state", "param_groups"}:
            raise ValueError(f"{name}.load_state_dict expects a dict with 'state' and 'param_groups'")
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {index} holds {len(saved['params'])} parameters "
                    f"in the state dict and {len(group['params'])} here"
                )
            missing = set(self.defaults) - set(saved)
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: group {index} lacks hyper-parameters {sorted(missing)}; "
                    "is this another optimizer's state dict?"
                )
            hyper = {**self.defaults, **{k: v for k, v in saved.items() if k != "params"}}
            self._check_common(hyper)
            self._check_hyper(hyper)
        for param_id, state in state_dict["state"].items():
            unexpected = set(state) - set(self.state_keys)
            if unexpected:
                raise ValueError(
                    f"{name}.load_state_dict: state of parameter {param_id} has entries "
                    f"{sorted(unexpected)}, expected only {sorted(self.state_keys)}; "
                    "is this another optimizer's state dict?"
                )
