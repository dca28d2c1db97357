"""Which fast kernel may run on which tensors: the allow-list, in one place.

With ``foreach=None`` an optimizer tries, per bucket of tensors sharing a device
and dtype, torch's fused kernel for its algorithm (where torch has one), then
optzoo's native single-pass CPU kernel (``_native.py``), then the per-tensor or
multi-tensor step. The fast kernels walk raw memory: they read ``numel``
elements from each tensor's first address, element ``i`` of the parameter
beside element ``i`` of its gradient and state. They are handed only tensors
for which that is proven to be right:

* the kernel is declared for the bucket's device type and dtype (:data:`FUSED`,
  :data:`NATIVE_DTYPES`);
* every tensor is a plain ``Tensor``/``Parameter`` (no DTensor or other
  subclass), strided (not sparse), of the parameter's dtype and device;
* the parameter is dense and non-overlapping, and its gradient and every state
  tensor have its shape and exactly its strides (so one linear walk visits the
  same element in each: contiguous, transposed and channels_last weights
  qualify when their gradients and state share the layout; a column slice of a
  larger tensor, or a contiguous gradient on a transposed weight, does not);
* the step counter is a float32 scalar where the kernel reads it;
* no two parameters of the call share memory (the kernels update tensors in
  parallel; torch's loop updates them one after another).

Everything else takes the reference or multi-tensor step, which gives the same
numbers. Tests read these tables to know which path must have run.

Upstream behaviour this list works around (torch 2.13.0, measured on CPU):

* ``torch._fused_sgd_`` on CPU leaves the vectorised part of bfloat16 and
  float16 tensors unchanged (992 of 1000 elements after 3 steps): CPU SGD is
  fused for float32/float64 only.
* The fused CPU kernels ignore strides: a column-slice parameter or a gradient
  in another layout got wrong updates and memory beside the parameter written.
* The fused CUDA Adam/AdamW kernels read the step counters on the device
  (:attr:`FusedKernel.steps_on_device`); a CPU counter makes them raise.
* torch 2.13 has no CUDA kernel for ``_fused_adagrad_``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from . import _native

__all__ = [
    "FUSED",
    "NATIVE_DTYPES",
    "FusedKernel",
    "bucket_allowed",
    "dense_non_overlapping",
    "sharing_memory",
    "split",
]

_HALF = frozenset({torch.float16, torch.bfloat16})
_FULL = frozenset({torch.float32, torch.float64})
_PLAIN = (Tensor, torch.nn.Parameter)
_FLOAT32, _STRIDED = torch.float32, torch.strided


@dataclass(frozen=True)
class FusedKernel:
    """One of torch's fused optimizer kernels and what it is proven to handle."""

    op: str  # the torch function, looked up on ``torch`` at call time
    dtypes: Mapping[str, frozenset[torch.dtype]]  # device type -> dtypes it updates correctly
    steps_on_device: bool = False  # on accelerators the kernel reads step counters where the parameters are


#: torch's fused kernels by optzoo's name for them.
FUSED: Mapping[str, FusedKernel] = {
    "sgd": FusedKernel("_fused_sgd_", {"cpu": _FULL, "cuda": _FULL | _HALF}),
    "adam": FusedKernel("_fused_adam_", {"cpu": _FULL | _HALF, "cuda": _FULL | _HALF}, steps_on_device=True),
    "adamw": FusedKernel("_fused_adamw_", {"cpu": _FULL | _HALF, "cuda": _FULL | _HALF}, steps_on_device=True),
    "adagrad": FusedKernel("_fused_adagrad_", {"cpu": _FULL | _HALF}),
}

#: optzoo's native kernels (``optim/kernels/*.cpp``): CPU, float32 and float64 only.
NATIVE_DTYPES: Mapping[str, frozenset[torch.dtype]] = {"cpu": _FULL}


def bucket_allowed(dtypes: Mapping[str, frozenset[torch.dtype]], first: Tensor) -> bool:
    """Whether a kernel declared for ``dtypes`` may take a bucket whose first tensor is ``first``
    (the bucket shares its device, dtype and tensor type)."""
    return type(first) in _PLAIN and first.dtype in dtypes.get(first.device.type, ())


def native_bucket(tensors: Sequence[Tensor], forced: bool = False) -> bool:
    """Whether a native kernel may take this bucket (one device, dtype and tensor type): declared for
    its device and dtype, and, unless ``fused=True`` forces it, with :data:`_native.MIN_NUMEL`
    elements or more (below that a step costs microseconds either way, and no compiler is waited for)."""
    return bucket_allowed(NATIVE_DTYPES, tensors[0]) and (
        forced or sum(t.numel() for t in tensors) >= _native.MIN_NUMEL
    )


def dense_non_overlapping(t: Tensor) -> bool:
    """Whether ``t``'s elements fill ``numel`` consecutive memory slots, each once (any order of dims)."""
    if t.is_contiguous():
        return True
    expected = 1
    for stride, size in sorted((st, sz) for sz, st in zip(t.shape, t.stride()) if sz != 1):
        if stride != expected:
            return False
        expected *= size
    return True


def _fits(param: Tensor, others: Sequence[Tensor | None]) -> bool:
    """``param`` is dense and non-overlapping, and each of ``others`` (None, an absent optional buffer,
    is skipped) can be walked beside it: a plain strided tensor of its dtype and device, with its
    shape and exactly its strides."""
    # This runs for every tensor at every step, so the common case is cheap: a contiguous parameter
    # needs contiguous partners with its element count (every caller keeps shapes equal: torch refuses
    # a gradient of another shape, the state schema refuses state of another shape).
    dtype, cpu = param.dtype, param.is_cpu
    if param.is_contiguous():
        numel = param.numel()
        for other in others:
            if other is not None and not (
                type(other) in _PLAIN
                and other.layout is _STRIDED
                and other.dtype is dtype
                and other.is_contiguous()
                and other.numel() == numel
                and (other.is_cpu if cpu else other.get_device() == param.get_device())
            ):
                return False
        return True
    if not dense_non_overlapping(param):
        return False
    shape, stride = param.shape, param.stride()
    return all(
        other is None
        or (
            type(other) in _PLAIN
            and other.layout is _STRIDED
            and other.dtype is dtype
            and other.shape == shape
            and other.stride() == stride
            and (other.is_cpu if cpu else other.get_device() == param.get_device())
        )
        for other in others
    )


def _step_fits(step: Tensor | None, param: Tensor, on_device: bool) -> bool:
    if step is None:
        return True
    if not (isinstance(step, Tensor) and step.dtype is _FLOAT32 and step.numel() == 1):
        return False
    return step.get_device() == param.get_device() if on_device else step.is_cpu


def split(
    params: Sequence[Tensor],
    grads: Sequence[Tensor],
    buffers: Sequence[Sequence[Tensor | None]],
    steps: Sequence[Tensor | None],
    *,
    steps_on_device: bool = False,
) -> tuple[list[int], list[int]]:
    """Indices of the parameters a fast kernel may take, and of the rest.

    ``buffers[i]`` are parameter i's state tensors the kernel reads and writes (None for an absent
    optional one), ``steps[i]`` its step counter (None for a kernel that keeps none). The caller has
    checked the bucket with :func:`bucket_allowed`. Parameters that share memory with another one
    all go to the rest.
    """
    taken: list[int] = []
    rest: list[int] = []
    for index, (param, grad, state, step) in enumerate(zip(params, grads, buffers, steps, strict=True)):
        fits = _fits(param, [grad, *state]) and _step_fits(step, param, steps_on_device and not param.is_cpu)
        (taken if fits else rest).append(index)
    shared = sharing_memory([params[i] for i in taken])
    if shared:
        rest = sorted(rest + [taken[j] for j in shared])
        taken = [i for j, i in enumerate(taken) if j not in shared]
    return taken, rest


def sharing_memory(params: Sequence[Tensor]) -> set[int]:
    """Positions in ``params`` of every tensor that overlaps another."""
    spans = sorted(
        (p.data_ptr(), p.data_ptr() + p.numel() * p.element_size(), j) for j, p in enumerate(params) if p.numel() > 0
    )
    shared: set[int] = set()
    reach, owner = -1, -1
    for start, end, j in spans:
        if start < reach:
            shared.update((j, owner))
        if end > reach:
            reach, owner = end, j
    return shared
