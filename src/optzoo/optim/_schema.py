"""Each algorithm's per-parameter state, declared once as data.

An algorithm lists its state entries (:class:`Entry`); the same declaration

* starts a parameter's state (:meth:`StateSchema.start`) and completes it when a
  group option that needs another buffer is turned on later
  (:meth:`StateSchema.complete`, e.g. ``amsgrad`` after a resume);
* checks a state dict before anything is loaded (:meth:`StateSchema.check`):
  unknown or missing entries, tensors of another shape, a non-floating dtype,
  tensors without data, or a malformed step count are refused with a
  ``ValueError`` naming the parameter and the entry;
* names the state tensors a fast kernel reads and writes, in order
  (:meth:`StateSchema.buffers`), so ``_dispatch`` can check their layout.

Kinds of entry:

``tensor``
    shaped like the parameter, in its dtype and on its device (floating-point
    state in another float dtype or on another device is cast on load, as
    ``torch.optim`` does); strided, or sparse where sparse gradients made it
    (SGD's momentum buffer);
``step``
    the step count: a float32 scalar tensor on the CPU, as torch keeps it (a
    plain number or another scalar tensor is accepted on load and converted);
``number`` / ``flag``
    a Python float / bool kept per parameter (SWATS's phase, NAdam's product).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

__all__ = ["Entry", "StateSchema", "new_step_counter"]


def new_step_counter() -> Tensor:
    """A per-parameter step count, stored as torch stores it (a float32 scalar tensor).

    A tensor rather than an int so state dicts look like torch.optim's and travel
    through ``torch.distributed.checkpoint`` unchanged.
    """
    return torch.tensor(0.0, dtype=torch.float32)


@dataclass(frozen=True)
class Entry:
    """One per-parameter state entry."""

    name: str
    kind: str = "tensor"  # "tensor", "step", "number" or "flag" (see the module docstring)
    when: str | None = None  # a group option: the entry exists only while it is truthy
    lazy: bool = False  # made by the first update that needs it (SGD's b_1 = g_1), so it may be absent
    fill: float | str = 0.0  # the starting value, or the name of the group option that gives it
    nullable: bool = False  # None stands for "not made yet" (torch's SGD saves momentum_buffer=None)

    def needed(self, group: Mapping[str, Any]) -> bool:
        return self.when is None or bool(group[self.when])

    def new(self, group: Mapping[str, Any], param: Tensor) -> Any:
        value = group[self.fill] if isinstance(self.fill, str) else self.fill
        if self.kind == "tensor":
            # A complex parameter is updated as its real view, so each of its real coordinates starts at the
            # value (torch.optim's Adagrad and Rprop start complex state at complex(value, value)).
            fill = complex(value, value) if param.is_complex() else value
            return torch.full_like(param, fill, memory_format=torch.preserve_format)
        if self.kind == "step":
            return new_step_counter()
        return bool(value) if self.kind == "flag" else float(value)


class StateSchema:
    """An algorithm's state entries; see the module docstring."""

    def __init__(self, *entries: Entry) -> None:
        self.entries = entries
        self.names = frozenset(e.name for e in entries)
        self._tensors = tuple(e for e in entries if e.kind == "tensor")
        self.step_name = next((e.name for e in entries if e.kind == "step"), None)

    def start(self, group: Mapping[str, Any], param: Tensor, state: dict[str, Any]) -> None:
        """Fill a fresh state with every entry the group needs now (lazy ones are made by the update)."""
        for entry in self.entries:
            if entry.needed(group) and not entry.lazy:
                state[entry.name] = entry.new(group, param)

    def complete(self, group: Mapping[str, Any], param: Tensor, state: dict[str, Any]) -> None:
        """Start the state, or add the entries an option turned on since the state was made."""
        if not state:
            self.start(group, param, state)
            return
        for entry in self.entries:
            if entry.name not in state and entry.needed(group) and not entry.lazy:
                state[entry.name] = entry.new(group, param)

    def buffers(self, group: Mapping[str, Any], state: Mapping[str, Any]) -> list[Tensor | None]:
        """The state tensors a kernel takes after the parameter and gradient, in declared order
        (None for one the group does not use or that is not made yet)."""
        return [state.get(e.name) if e.needed(group) else None for e in self._tensors]

    def step(self, state: Mapping[str, Any]) -> Tensor | None:
        return state.get(self.step_name) if self.step_name is not None else None

    # ------------------------------------------------------------------ loading
    def check(self, group: Mapping[str, Any], param: Tensor, state: Any, where: str) -> None:
        """Raise ``ValueError`` (naming ``where``, the parameter, and the entry) unless ``state`` is a
        state this algorithm could have saved for ``param`` under the options of ``group``."""
        if not isinstance(state, Mapping):
            raise ValueError(f"{where}: expected a dict of state entries, got {type(state).__name__}")
        unexpected = set(state) - self.names
        if unexpected:
            raise ValueError(
                f"{where} has entries {sorted(map(str, unexpected))}, expected only {sorted(self.names)}; "
                "is this another optimizer's state dict?"
            )
        if not state:
            return  # the parameter has not stepped yet
        for entry in self.entries:
            if entry.name not in state:
                if entry.needed(group) and not entry.lazy:
                    raise ValueError(f"{where} lacks '{entry.name}'")
                continue
            value = state[entry.name]
            if value is None and entry.nullable:
                continue
            problem = _problem(entry.kind, value, param)
            if problem:
                raise ValueError(f"{where}: '{entry.name}' {problem}")

    def normalise(self, state: dict[str, Any]) -> None:
        """After a load: the step count as optzoo keeps it, numbers as Python numbers, and
        None placeholders dropped (the update makes the buffer)."""
        for entry in self.entries:
            if entry.name not in state:
                continue
            value = state[entry.name]
            if value is None:
                del state[entry.name]
            elif entry.kind == "step":
                state[entry.name] = torch.tensor(float(value), dtype=torch.float32)
            elif entry.kind == "number" and isinstance(value, Tensor):
                state[entry.name] = float(value)
            elif entry.kind == "flag" and isinstance(value, Tensor):
                state[entry.name] = bool(value)


def _problem(kind: str, value: Any, param: Tensor) -> str | None:
    """What is wrong with ``value`` as an entry of this kind for ``param``, or None."""
    if kind == "tensor":
        if not isinstance(value, Tensor):
            return f"must be a tensor shaped like the parameter {tuple(param.shape)}, got {type(value).__name__}"
        if value.shape != param.shape:
            return f"has shape {tuple(value.shape)}, the parameter has {tuple(param.shape)}"
        if value.is_complex() != param.is_complex() or not (value.is_floating_point() or value.is_complex()):
            return f"has dtype {value.dtype}, the parameter is {param.dtype}"
        # Sparse state is what SGD's momentum makes from sparse gradients, as torch's does (never fed to a kernel).
        if value.is_meta or value.layout not in (torch.strided, torch.sparse_coo):
            return f"is a {value.device.type} {value.layout} tensor, which holds no dense data to load"
        return None
    if isinstance(value, Tensor):
        if value.numel() != 1 or value.is_complex() or value.is_meta:
            shape = tuple(value.shape)
            return f"must be a real number or a one-element tensor, got a {value.dtype} tensor of shape {shape}"
        value = value.item()
    if kind == "flag":
        return None if isinstance(value, (bool, int)) else f"must be True or False, got {value!r}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or math.isnan(value):
        return f"must be a real number, got {value!r}"
    if kind == "step" and (value < 0 or math.isinf(value)):
        return f"must be a step count >= 0, got {value!r}"
    return None
