"""Machinery shared by every optzoo optimizer.

One place for what each algorithm would otherwise repeat: hyper-parameter
validation, the ``maximize`` sign flip, coupled (L2) and decoupled weight
decay, lazy state initialisation, grouping tensors by device and dtype for the
multi-tensor path, and a strict ``load_state_dict``.

An algorithm subclasses :class:`ZooOptimizer`, declares its per-parameter state
(``state_schema``, see ``_schema.py``) and writes a few small methods:

* ``_check_hyper(group)``: raise ``ValueError``/``TypeError`` for a bad value;
* ``_reference_update(group, param, grad, state)``: one tensor, in the paper's
  notation, the version a student reads;
* ``_foreach_update(group, params, grads, states)``: the same update over lists
  of tensors that share a device and dtype, with ``torch._foreach_*`` ops;
* optionally ``_fused_kernel(group)`` and ``_fused_update(...)``: one of torch's
  fused kernels, where it computes exactly this algorithm;
* or a single-pass native CPU kernel (``optim/kernels/<name>.cpp``, see
  ``_native.py``): set ``native_kernel`` to its name and write
  ``_native_hyper(group)`` (its hyper-parameters after the common ones); its state
  tensors are the schema's, in declared order. A kernel that reads or writes
  per-tensor values (a phase, a whole-tensor sum) also writes
  ``_native_per_tensor(group, states)`` (the float64 array it receives) and
  ``_native_after(group, states, per_tensor)`` (what to make of it once it ran).

``foreach=None`` (the default) prefers torch's fused kernel, then the native
one, each only on the tensors ``_dispatch``'s allow-list proves it handles, then
the per-tensor step on CPU (faster there than the multi-tensor ops, measured)
and the multi-tensor one elsewhere; every path gives the same numbers.

torch's implementation keywords, with torch's meanings and errors:

* ``fused=True``: the single-pass kernel, torch's where it computes the algorithm,
  else optzoo's native one, on every tensor ``_dispatch`` allows whatever its size;
  the tensors it does not allow (a column slice, a gradient in another layout, CPU
  half-precision SGD) take the reference step, so the result stays right where
  torch's ``fused=True`` would hand them to a kernel that corrupts them.
  ``fused=False``: no single-pass kernel at all. Refused as torch refuses it
  (with ``foreach=True`` or ``differentiable=True``), and where no kernel
  computes the group's options (a paper-form option) or the class has none.
* ``differentiable=True``: the reference step, run with autograd on, so that the
  step is differentiable with respect to its inputs as torch's is; never a kernel.
* ``capturable=True``: as torch, refused at the step for CPU tensors unless fused.
  On accelerators it is accepted and gives torch's numbers, but optzoo's loop and
  multi-tensor steps still read the step count on the host (``.item()``), so such
  a step is not yet safe to capture in a CUDA graph; the fused kernels are.

The gradients both update methods receive already carry ``maximize`` and
coupled weight decay, and decoupled weight decay has already been applied to
the parameters, so no algorithm file handles either. Nor complex parameters: as
torch.optim, the base class hands the update methods each complex parameter, its
gradient and state as their real views (``torch.view_as_real``), and never to a
fast kernel. Sparse gradients (where ``supports_sparse``) go to
``_reference_update`` whatever ``foreach`` says, as torch.optim steps them.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _dispatch, _native
from ._schema import Entry, StateSchema, new_step_counter

ParamsT = Iterable[Tensor] | Iterable[dict[str, Any]]
_GENERIC_FLAGS = {"maximize": False, "foreach": None, "differentiable": False, "fused": None, "capturable": False}
# torch's message when capturable=True meets CPU tensors (its loop and multi-tensor paths assert it).
_CAPTURABLE_DEVICES = "['cuda', 'xpu', 'hpu', 'privateuseone', 'xla']"
Closure = Callable[[], Any]

__all__ = [
    "Entry",
    "ParamsT",
    "StateSchema",
    "ZooOptimizer",
    "check_betas",
    "check_bool",
    "check_choice",
    "check_number",
    "foreach_update_moments",
    "group_by_device_and_dtype",
    "new_step_counter",
    "update_moments",
]


# Tensor hyper-parameters already read: id -> (a weak reference, the version counter then, the value).
# ``step()`` re-checks every hyper-parameter; reading a tensor's value is a host sync for an accelerator
# tensor, so it is read again only once the tensor changed in place (a scheduler's ``fill_``). Keyed by id,
# not by the tensor: a tensor-keyed dict would compare tensors with ``==``, itself a sync.
_READ: dict[int, tuple[weakref.ref[Tensor], int, float]] = {}


def _tensor_value(tensor: Tensor) -> float:
    if tensor.is_inference():  # no version counter to tell a change by
        return float(tensor.item())
    key = id(tensor)
    seen = _READ.get(key)
    if seen is not None and seen[0]() is tensor and seen[1] == tensor._version:
        return seen[2]
    value = float(tensor.item())
    _READ[key] = (weakref.ref(tensor, lambda _, key=key: _READ.pop(key, None)), tensor._version, value)
    return value


def _as_real(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        if isinstance(value, Tensor) and value.numel() != 1:
            raise ValueError(f"Tensor {name} must be 1-element, got shape {tuple(value.shape)}")
        if isinstance(value, Tensor) and not value.requires_grad:
            return _tensor_value(value)
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
    """Check a tuple of ``count`` decay rates, each in [0, 1), all numbers or all tensors (as torch requires)."""
    if not isinstance(betas, (tuple, list)) or len(betas) != count:
        raise TypeError(f"{name} must be a tuple of {count} numbers in [0, 1), got {betas!r}")
    if len({isinstance(b, Tensor) for b in betas}) > 1:
        raise ValueError(f"{name} must be either all floats or all Tensors, got {betas!r}")
    return tuple(check_number(f"{name}[{i}]", b, 0.0, 1.0, high_open=True) for i, b in enumerate(betas))


def check_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def update_moments(m: Tensor, v: Tensor, grad: Tensor, beta1: float, beta2: float) -> None:
    """Adam's moment estimates, in place and as torch.optim.Adam computes them:
    m_t = beta1 m + (1 - beta1) g (a lerp) and v_t = beta2 v + (1 - beta2) g^2."""
    m.lerp_(grad, 1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)


def foreach_update_moments(ms: list[Tensor], vs: list[Tensor], grads: list[Tensor], beta1: float, beta2: float) -> None:
    """:func:`update_moments` over lists of tensors, with the same operations (tensor betas' weights as
    the Scalars the per-tensor step passes: the multi-tensor ops take no 0-dim tensor there)."""
    torch._foreach_lerp_(ms, grads, float(1 - beta1))
    torch._foreach_mul_(vs, beta2)
    torch._foreach_addcmul_(vs, grads, grads, float(1 - beta2))


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


def _zero_dim(group: dict[str, Any]) -> dict[str, Any]:
    """The group as the update reads it: a 1-element tensor hyper-parameter of another shape (lr=tensor([0.1]))
    as the 0-dim tensor torch.optim's ``_to_scalar`` makes of it, which torch's ops take as a Scalar. A copy
    only where there is one (the update only reads the group); the group itself keeps the tensor it was given."""

    def squeezed(value: Any) -> Any:
        if isinstance(value, Tensor) and value.dim() != 0:
            return value.squeeze()
        if isinstance(value, tuple) and any(isinstance(v, Tensor) and v.dim() != 0 for v in value):
            return tuple(map(squeezed, value))
        return value

    changed = {k: squeezed(v) for k, v in group.items() if k != "params"}
    changed = {k: v for k, v in changed.items() if v is not group[k]}
    return {**group, **changed} if changed else group


class ZooOptimizer(Optimizer):
    """Base class of optzoo's optimizers (see the module docstring).

    Class attributes a subclass sets:

    * ``state_schema``: its per-parameter state (``_schema.StateSchema``), which starts
      the state, checks a state dict before it is loaded and names the tensors a fast
      kernel takes;
    * ``native_kernel``: the name of the algorithm's single-pass CPU kernel, if it has one;
    * ``supports_sparse`` / ``supports_complex``: refused with a clear error when False; when True,
      ``_reference_update`` takes sparse gradients and complex parameters arrive as real views;
    * ``optional_hyper``: hyper-parameters a saved group may lack, beyond torch's generic
      flags: optzoo's own options (absent from a ``torch.optim`` state dict) and those torch
      added after its first versions; such a group takes this optimizer's defaults for them.
    """

    state_schema: StateSchema = StateSchema()
    native_kernel: str | None = None
    supports_sparse: bool = False
    supports_complex: bool = False
    optional_hyper: frozenset[str] = frozenset()
    #: torch's multi-tensor step refuses differentiable=True (SGD's alone lets it through).
    foreach_refuses_differentiable: bool = True
    #: False for an algorithm whose step takes a data-dependent decision on the host (SWATS's switch
    #: to SGD), which no captured graph can replay: capturable=True is refused at construction.
    supports_capturable: bool = True

    def __init__(self, params: ParamsT, defaults: dict[str, Any]) -> None:
        defaults = {**_GENERIC_FLAGS, **defaults}
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
        for flag in ("foreach", "fused"):
            if group[flag] is not None:
                check_bool(flag, group[flag])
        check_bool("differentiable", group["differentiable"])
        check_bool("capturable", group["capturable"])
        if group["capturable"] and not self.supports_capturable:
            raise ValueError(
                f"{type(self).__name__} has no capturable step (it reads per-step values on the host); "
                "use capturable=False"
            )
        if group["fused"]:
            # torch's errors, raised where torch raises them (construction).
            if group["differentiable"]:
                raise RuntimeError("`fused` does not support `differentiable`")
            if group["foreach"]:
                raise RuntimeError("`fused` and `foreach` cannot be `True` together.")
            if self._fused_kernel(group) is None and self.native_kernel is None:
                raise RuntimeError(
                    f"{type(self).__name__}: fused=True, but no fused kernel computes this group's update "
                    "(a paper-form option, or an algorithm without one); use fused=None"
                )

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        # Validate the merged group before torch appends it, so a bad group is never half-added.
        merged = {**self.defaults, **{k: v for k, v in param_group.items() if k != "params"}}
        self._check_common(merged)
        self._check_hyper(merged)
        super().add_param_group(param_group)
        self._complete_group(self.param_groups[-1])

    def _complete_group(self, group: dict[str, Any]) -> None:
        """Add what a group needs beyond its hyper-parameters, to a new or a loaded group. Subclasses extend."""

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
            params = self._params_with_grad(group)
            self._check_implementation(group, params)
            work.append((group, params))
        for group, params in work:
            if params:
                if group["differentiable"]:
                    with torch.enable_grad():  # as torch's _use_grad_for_differentiable
                        self._update_group(group, params)
                else:
                    self._update_group(group, params)
        return loss

    def _check_implementation(self, group: dict[str, Any], params: list[Tensor]) -> None:
        """torch's step-time refusals of an implementation flag, with its error types."""
        if group["capturable"] and not group["fused"] and any(p.is_cpu for p in params):
            raise AssertionError(
                f"If capturable=True, params and state_steps must be on supported devices: {_CAPTURABLE_DEVICES}."
            )
        if group["differentiable"] and group["foreach"] and self.foreach_refuses_differentiable:
            raise AssertionError("_foreach ops don't support autograd")

    def _params_with_grad(self, group: dict[str, Any]) -> list[Tensor]:
        params = []
        name = type(self).__name__
        for p in group["params"]:
            if p.grad is None:
                continue
            if p.grad.is_sparse:
                # torch.optim's errors, raised here before any update rather than half-way through one
                if not self.supports_sparse:
                    raise RuntimeError(
                        f"{name} does not support sparse gradients; "
                        "use torch.optim.SparseAdam or a dense embedding (sparse=False)"
                    )
                if group.get("weight_decay", 0) != 0:
                    raise RuntimeError(f"{name}: weight_decay option is not compatible with sparse gradients")
                if group.get("fused"):
                    raise RuntimeError(f"{name}: `fused` does not support sparse gradients")
            if torch.is_complex(p) and not self.supports_complex:
                raise TypeError(f"{name} does not support complex parameters")
            params.append(p)
        return params

    def _update_group(self, group: dict[str, Any], params: list[Tensor]) -> None:
        group = _zero_dim(group)
        states = []
        for p in params:
            state = self.state[p]
            self.state_schema.complete(group, p, state)
            states.append(state)
        grads = [p.grad for p in params]
        for bucket in group_by_device_and_dtype(params):
            # Sparse gradients take the per-tensor step whatever ``foreach`` says, as in torch.optim.
            sparse = [i for i in bucket if grads[i].is_sparse]
            for i in sparse:
                self._reference_update(group, params[i], self._reference_prepare(group, params[i], grads[i]), states[i])
            if sparse:
                bucket = [i for i in bucket if not grads[i].is_sparse]
                if not bucket:
                    continue
            bucket_params = [params[i] for i in bucket]
            bucket_grads = [grads[i] for i in bucket]
            bucket_states = [states[i] for i in bucket]
            is_complex = bucket_params[0].is_complex()
            foreach = group["foreach"]
            if group["differentiable"]:
                foreach = False  # the reference step, which autograd records; never a kernel
            elif foreach is None and group["fused"] is not False and not is_complex:
                # The fast kernels take real dtypes only (``_dispatch``): complex tensors never reach them.
                left = self._fast_update(group, bucket_params, bucket_grads, bucket_states)
                if not left:
                    continue
                if len(left) < len(bucket_params):
                    bucket_params = [bucket_params[i] for i in left]
                    bucket_grads = [bucket_grads[i] for i in left]
                    bucket_states = [bucket_states[i] for i in left]
            if foreach is None:
                # Measured on CPU: the per-tensor loop keeps each tensor in cache and beats the
                # multi-tensor ops, which stream whole-list temporaries through memory (torch's
                # own CPU default is the loop too). On accelerators the multi-tensor path wins.
                foreach = bucket_params[0].device.type != "cpu"
            if is_complex:
                self._complex_update(group, bucket_params, bucket_grads, bucket_states, foreach)
            else:
                self._dense_update(group, bucket_params, bucket_grads, bucket_states, foreach)

    def _dense_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        foreach: bool,
    ) -> None:
        """The multi-tensor or the per-tensor step over one bucket of real tensors."""
        if foreach:
            self._foreach_update(group, params, self._foreach_prepare(group, params, grads), states)
        else:
            for p, grad, state in zip(params, grads, states):
                self._reference_update(group, p, self._reference_prepare(group, p, grad), state)

    def _complex_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        foreach: bool,
    ) -> None:
        """Update complex parameters as torch.optim does: each as its real view (``torch.view_as_real``,
        real and imaginary parts as two real coordinates), with its gradient and state viewed alike.

        The update runs on dicts of views; what it puts there (a buffer made at the first step, a
        number) goes back to the state, buffers as complex tensors again."""
        tensors = {e.name for e in self.state_schema.entries if e.kind == "tensor"}
        before = [
            {k: torch.view_as_real(v) if isinstance(v, Tensor) and v.is_complex() else v for k, v in s.items()}
            for s in states
        ]
        views = [dict(view) for view in before]
        self._dense_update(
            group, [torch.view_as_real(p) for p in params], [torch.view_as_real(g) for g in grads], views, foreach
        )
        for state, view, old in zip(states, views, before, strict=True):
            for key, value in view.items():
                if value is old.get(key):
                    continue  # a view updated in place
                made_here = key in tensors and isinstance(value, Tensor) and not value.is_complex()
                state[key] = torch.view_as_complex(value) if made_here else value

    # ------------------------------------------------------------ the fast paths
    def _fast_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> list[int]:
        """Update with torch's fused kernel, then optzoo's native one, every parameter the allow-list
        in ``_dispatch`` lets them take; return the indices of the rest. Without ``fused=True`` the
        native kernel waits for buckets of :data:`_native.MIN_NUMEL` elements."""
        rest = list(range(len(params)))
        fused = self._fused_kernel(group)
        if fused is not None and _dispatch.bucket_allowed(_dispatch.FUSED[fused].dtypes, params[0]):
            on_device = _dispatch.FUSED[fused].steps_on_device and not params[0].is_cpu
            if on_device:
                self._steps_to_device(params, states)
            taken, rest = self._split(group, params, grads, states, rest, steps_on_device=on_device)
            if taken:
                self._run_fused(group, fused, *self._pick(taken, params, grads, states))
        if (
            rest
            and self.native_kernel is not None
            and _dispatch.native_bucket([params[i] for i in rest], forced=bool(group["fused"]))
        ):
            rest = self._native_update(group, params, grads, states, rest)
        return rest

    def _split(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        indices: list[int],
        steps_on_device: bool = False,
    ) -> tuple[list[int], list[int]]:
        """``_dispatch.split`` over ``indices``, with each parameter's kernel buffers from the schema."""
        taken, rest = _dispatch.split(
            [params[i] for i in indices],
            [grads[i] for i in indices],
            [self._kernel_buffers(group, params[i], states[i]) for i in indices],
            [self.state_schema.step(states[i]) for i in indices],
            steps_on_device=steps_on_device,
        )
        return [indices[j] for j in taken], [indices[j] for j in rest]

    @staticmethod
    def _pick(indices: list[int], *columns: list[Any]) -> list[list[Any]]:
        return [[column[i] for i in indices] for column in columns]

    def _steps_to_device(self, params: list[Tensor], states: list[dict[str, Any]]) -> None:
        """Move CPU step counters to the parameters' accelerator, where its fused kernels read them
        (as torch.optim keeps them with ``fused=True``); done once, the counts unchanged."""
        name = self.state_schema.step_name
        for param, state in zip(params, states):
            step = state.get(name)
            if isinstance(step, Tensor) and step.is_cpu:
                state[name] = step.to(device=param.device, dtype=torch.float32)

    def _run_fused(
        self, group: dict[str, Any], kernel: str, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> None:
        """Advance the step counts and run the fused kernel; if it raises, the counts go back."""
        steps = [s[self.state_schema.step_name] for s in states] if self.state_schema.step_name else []
        if steps:
            torch._foreach_add_(steps, 1.0)
        try:
            self._fused_update(group, kernel, params, grads, states)
        except BaseException:
            if steps:
                torch._foreach_sub_(steps, 1.0)
            raise

    def _native_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        indices: list[int],
    ) -> list[int]:
        """Update with the native kernel every one of ``indices`` it can take; return the rest."""
        hyper = self._native_hyper(group)
        weight_decay = group.get("weight_decay", 0.0)
        # A tensor hyper-parameter makes the reference compute its scalars in the tensor's
        # precision, which a kernel taking float64 scalars would not reproduce.
        if hyper is None or any(isinstance(value, Tensor) for value in [*hyper, group["lr"], weight_decay]):
            return indices
        function = _native.kernel(self.native_kernel)
        if function is None:
            return indices
        taken, rest = self._split(group, params, grads, states, indices)
        if taken:
            common = [
                float(group["maximize"]),
                weight_decay,
                float(group.get("decoupled_weight_decay", False)),
                self._decoupled_decay(group) if weight_decay != 0 else 1.0,
            ]
            taken_states = [states[i] for i in taken]
            by_buffer = [
                [params[i] for i in taken],
                [grads[i] for i in taken],
                *map(list, zip(*(self._kernel_buffers(group, params[i], states[i]) for i in taken))),
            ]
            per_tensor = self._native_per_tensor(group, taken_states)
            steps = [self.state_schema.step(s) for s in taken_states]
            _native.run(function, by_buffer, steps, common + hyper, per_tensor)
            if per_tensor is not None:
                self._native_after(group, taken_states, per_tensor)
        return rest

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
    def _fused_kernel(self, group: dict[str, Any]) -> str | None:
        """The name (in ``_dispatch.FUSED``) of torch's fused kernel that computes exactly this
        group's update, or None (the default) where there is none."""
        return None

    def _fused_update(
        self, group: dict[str, Any], kernel: str, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> None:
        """Run torch's fused ``kernel`` on tensors ``_dispatch`` accepted for it, with the raw gradients
        (the kernel applies ``maximize`` and weight decay itself); the step counts are advanced."""
        raise NotImplementedError

    def _native_hyper(self, group: dict[str, Any]) -> list[float] | None:
        """The native kernel's own hyper-parameters for this group, or None where the kernel
        does not cover the group's options."""
        return None

    def _kernel_buffers(self, group: dict[str, Any], param: Tensor, state: dict[str, Any]) -> list[Tensor | None]:
        """The state tensors a fast kernel takes after the parameter and its gradient: the schema's,
        in declared order."""
        return self.state_schema.buffers(group, state)

    def _native_per_tensor(self, group: dict[str, Any], states: list[dict[str, Any]]) -> Tensor | None:
        """The per-tensor values the native kernel reads and writes (``per_tensor`` in
        kernels/common.h), a contiguous CPU float64 tensor with a row per tensor it takes (whose
        ``states`` these are), or None (the default) for a kernel that has none."""
        return None

    def _native_after(self, group: dict[str, Any], states: list[dict[str, Any]], per_tensor: Tensor) -> None:
        """Called after the kernel ran, with the array ``_native_per_tensor`` gave it, to take
        back what the kernel wrote there (into ``states``)."""

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
        the saved groups must carry this optimizer's hyper-parameters (except the
        generic flags and ``optional_hyper``, which a ``torch.optim`` state dict or an
        older torch's lacks and which then take this optimizer's defaults, checked
        with the rest) and every saved
        per-parameter state must fit the algorithm's state schema for its parameter
        (entries, shapes, dtypes), so another optimizer's state dict, or a damaged one,
        is refused with a ``ValueError`` rather than half-used or handed to a kernel.
        """
        self._check_state_dict(state_dict)
        super().load_state_dict(state_dict)
        for group in self.param_groups:
            for key, value in self.defaults.items():
                group.setdefault(key, value)  # what a torch.optim or older state dict lacks
            self._complete_group(group)
        for state in self.state.values():
            self.state_schema.normalise(state)

    def _check_state_dict(self, state_dict: Any) -> None:
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}.load_state_dict expects a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(saved_groups, Sequence) or not isinstance(saved_state, Mapping):
            raise ValueError(f"{name}.load_state_dict: 'param_groups' must be a list and 'state' a dict")
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}.load_state_dict: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        owners: dict[Any, tuple[dict[str, Any], Tensor, str]] = {}
        for index, (saved, group) in enumerate(zip(saved_groups, self.param_groups)):
            if not isinstance(saved, Mapping) or "params" not in saved:
                raise ValueError(f"{name}.load_state_dict: group {index} is not a dict with 'params'")
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}.load_state_dict: group {index} holds {len(saved['params'])} parameters "
                    f"in the state dict and {len(group['params'])} here"
                )
            # torch adds its generic flags to ``defaults`` on a load (``Optimizer.__setstate__``), older
            # torch versions saved groups without them, and torch.optim has none of optzoo's own
            # options: those take their defaults; any other missing hyper-parameter means another
            # algorithm's state dict.
            missing = set(self.defaults) - set(saved) - set(_GENERIC_FLAGS) - self.optional_hyper
            if missing:
                raise ValueError(
                    f"{name}.load_state_dict: group {index} lacks hyper-parameters {sorted(missing)}; "
                    "is this another optimizer's state dict?"
                )
            hyper = {**self.defaults, **{k: v for k, v in saved.items() if k != "params"}}
            self._check_common(hyper)
            self._check_hyper(hyper)
            for position, (param_id, param) in enumerate(zip(saved["params"], group["params"])):
                owners[param_id] = (hyper, param, f"group {index}, parameter {position} (id {param_id!r})")
        for param_id, state in saved_state.items():
            if param_id not in owners:
                raise ValueError(f"{name}.load_state_dict: state for parameter id {param_id!r}, which no group lists")
            hyper, param, where = owners[param_id]
            self.state_schema.check(hyper, param, state, f"{name}.load_state_dict: state of {where}")
