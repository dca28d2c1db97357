r"""The one generic torch wrapper every optzoo schedule goes through, and the pure-function plumbing.

A schedule is first a *pure, closed-form* function of the step, :math:`f(t)`, a
small frozen dataclass (picklable, comparable, trivially plotted). One
:class:`FactorLR` then turns any such function into a
``torch.optim.lr_scheduler.LRScheduler``: for param group :math:`g`

.. math::

    \eta_g(t) = \eta^{min}_g + (\eta^{base}_g - \eta^{min}_g)\, f(t)

where :math:`\eta^{base}_g` is the group's initial lr (``initial_lr``, as torch
sets it) unless given, and :math:`\eta^{min}_g = 0` unless given (SGDR's
``eta_min``, the cyclical schedule's lower bound). With :math:`\eta^{min} = 0`
this is exactly ``base_lr * f(t)``.

The LR at step :math:`t` is computed from :math:`t` alone, never from the
previous LR, so nothing drifts however long it runs, ``step(epoch)`` may jump
anywhere (fractional epochs included), ``SequentialLR`` may restart it at 0, and
``state_dict()`` holds only plain values (``torch.load(weights_only=True)``
reads it back). Composition is done on the pure functions
(:class:`Product`, :class:`Join`) rather than by chaining recursive schedulers.
Inside ``ChainedScheduler`` a closed-form schedule *sets* the LR, as torch's
own closed-form schedulers (``CyclicLR``, ``OneCycleLR``,
``CosineAnnealingWarmRestarts``) do.

Example:
    >>> import torch
    >>> from optzoo.schedules import FactorLR, ExponentialFactor
    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt = torch.optim.SGD([w], lr=0.5)
    >>> sched = FactorLR(opt, ExponentialFactor(r=2.0))
    >>> opt.step(); sched.step()
    >>> round(opt.param_groups[0]["lr"], 6)  # 0.5 * e^(-1/2)
    0.303265
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ..optim._core import check_number

__all__ = [
    "ConstantFactor",
    "FactorFn",
    "FactorLR",
    "Join",
    "LRFunction",
    "Product",
    "check_int",
    "factor_classes",
    "lr_curve",
]

FactorFn = Callable[[float], float]
_T = TypeVar("_T")

#: Every pure factor class of optzoo, by class name: what a state dict may name.
_FACTORS: dict[str, type] = {}


def register_factor(cls: type[_T]) -> type[_T]:
    """Record a frozen-dataclass factor class so that state dicts can name it."""
    _FACTORS[cls.__name__] = cls
    return cls


def factor_classes() -> dict[str, type]:
    """The pure factor classes by name (for the lab: plot any of them without an optimizer)."""
    return dict(_FACTORS)


def check_int(name: str, value: Any, low: int | None = None) -> int:
    """Check that ``value`` is an integer (an integral float is accepted) no smaller than ``low``."""
    number = check_number(name, value, None if low is None else float(low))
    if not float(number).is_integer():
        raise ValueError(f"{name} must be an integer{'' if low is None else f' >= {low}'}, got {value!r}")
    return int(number)


def _per_group(name: str, value: Any, count: int, low: float | None = 0.0) -> list[float]:
    """One float per param group from a float or a sequence of ``count`` floats."""
    if isinstance(value, (list, tuple)):
        if len(value) != count:
            raise ValueError(f"{name} must be one number or {count} (one per param group), got {len(value)}")
        return [check_number(f"{name}[{i}]", v, low) for i, v in enumerate(value)]
    return [check_number(name, value, low)] * count


# ----------------------------------------------------------------------------- pure functions


@register_factor
@dataclass(frozen=True)
class ConstantFactor:
    """:math:`f(t) = c` (``c = 1``: the constant schedule)."""

    value: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_number("value", self.value, 0.0))

    def __call__(self, step: float) -> float:
        return self.value


@register_factor
@dataclass(frozen=True)
class Product:
    r""":math:`f(t) = \prod_i f_i(t)`: schedules multiplied, in closed form (no recursive drift)."""

    factors: tuple[Any, ...]

    def __post_init__(self) -> None:
        factors = tuple(self.factors)
        if not factors or not all(callable(f) for f in factors):
            raise ValueError(f"factors must be a non-empty sequence of factor functions, got {self.factors!r}")
        object.__setattr__(self, "factors", factors)

    def __call__(self, step: float) -> float:
        value = 1.0
        for factor in self.factors:
            value *= factor(step)
        return value


@register_factor
@dataclass(frozen=True)
class Join:
    r"""Schedules one after another, as ``SequentialLR`` runs them, in closed form.

    :math:`f(t) = f_i(t - m_{i-1})` for :math:`m_{i-1} \le t < m_i` (with
    :math:`m_{-1} = 0`): each schedule restarts its own clock at its milestone.
    """

    factors: tuple[Any, ...]
    milestones: tuple[float, ...]

    def __post_init__(self) -> None:
        factors, milestones = tuple(self.factors), tuple(self.milestones)
        if not factors or not all(callable(f) for f in factors):
            raise ValueError(f"factors must be a non-empty sequence of factor functions, got {self.factors!r}")
        if len(milestones) != len(factors) - 1:
            raise ValueError(f"milestones must hold len(factors) - 1 = {len(factors) - 1} steps, got {len(milestones)}")
        checked = tuple(check_number(f"milestones[{i}]", m, 0.0, low_open=True) for i, m in enumerate(milestones))
        if any(b <= a for a, b in itertools.pairwise(checked)):
            raise ValueError(f"milestones must be strictly increasing, got {milestones!r}")
        object.__setattr__(self, "factors", factors)
        object.__setattr__(self, "milestones", milestones)

    def __call__(self, step: float) -> float:
        index = bisect.bisect_right(self.milestones, step)
        start = self.milestones[index - 1] if index else 0
        return self.factors[index](step - start)


@register_factor
@dataclass(frozen=True)
class LRFunction:
    r"""The learning rate itself: :math:`\eta(t) = \eta^{min} + (\eta^{base} - \eta^{min}) f(t)`.

    What :class:`FactorLR` computes for one param group, as a pure function, to
    plot a schedule without an optimizer or to hand to :func:`robbins_monro`.
    """

    factor_fn: Any
    base_lr: float = 1.0
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        if not callable(self.factor_fn):
            raise TypeError(f"factor_fn must be callable, got {self.factor_fn!r}")
        object.__setattr__(self, "base_lr", check_number("base_lr", self.base_lr, 0.0))
        object.__setattr__(self, "min_lr", check_number("min_lr", self.min_lr, 0.0))

    def __call__(self, step: float) -> float:
        return self.min_lr + (self.base_lr - self.min_lr) * self.factor_fn(step)


def lr_curve(factor_fn: FactorFn, steps: int, base_lr: float = 1.0, min_lr: float = 0.0) -> list[float]:
    """The learning rate at steps ``0 .. steps - 1``: what a plot of the schedule needs.

    >>> from optzoo.schedules import StepDecayFactor
    >>> lr_curve(StepDecayFactor(step_size=2, gamma=0.5), 5, base_lr=0.1)
    [0.1, 0.1, 0.05, 0.05, 0.025]
    """
    steps = check_int("steps", steps, 0)
    function = LRFunction(factor_fn, base_lr, min_lr)
    return [function(t) for t in range(steps)]


# ----------------------------------------------------------------------------- state-dict encoding


def _encode(value: Any) -> Any:
    """A factor function as plain values (dicts, lists, numbers, strings)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and type(value).__name__ in _FACTORS:
        fields = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"factor": type(value).__name__, "fields": fields}
    if isinstance(value, tuple):
        return {"tuple": [_encode(v) for v in value]}
    return value


def _decode(value: Any) -> Any:
    if isinstance(value, dict) and set(value) == {"factor", "fields"}:
        cls = _FACTORS.get(value["factor"])
        if cls is None:
            raise ValueError(f"unknown factor function {value['factor']!r} in the state dict")
        return cls(**{k: _decode(v) for k, v in value["fields"].items()})
    if isinstance(value, dict) and set(value) == {"tuple"}:
        return tuple(_decode(v) for v in value["tuple"])
    return value


# ----------------------------------------------------------------------------- the torch wrapper


def _copy_lr(lr: Any) -> Any:
    return lr.clone() if isinstance(lr, Tensor) else lr


class FactorLR(LRScheduler):
    r"""Any pure factor function as a torch LR scheduler (see the module docstring).

    Args:
        optimizer: the optimizer whose param groups' ``lr`` this sets.
        factor_fn: ``factor_fn(t) -> float``, picklable (a factor dataclass or a
            module-level function; no lambdas or local functions).
        last_epoch: as torch's: -1 to start, or the step to resume from.
        base_lr: the LR at factor 1, one number or one per group (default: each
            group's ``initial_lr``, the optimizer's lr when the schedule is built).
        min_lr: the LR at factor 0, one number or one per group (default 0).

    ``step()`` advances by one; ``step(epoch)`` jumps to ``epoch``, which may be
    fractional (``last_epoch`` then holds that float), as with torch's
    ``CosineAnnealingWarmRestarts``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        factor_fn: FactorFn,
        last_epoch: int = -1,
        *,
        base_lr: float | Sequence[float] | None = None,
        min_lr: float | Sequence[float] = 0.0,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if not callable(factor_fn):
            raise TypeError(f"factor_fn must be callable, got {factor_fn!r}")
        try:
            pickle.dumps(factor_fn)
        except Exception as error:
            raise TypeError(
                f"factor_fn must be picklable (a factor dataclass or a module-level function, not a lambda "
                f"or local function): {error}"
            ) from error
        check_int("last_epoch", last_epoch, -1)
        count = len(optimizer.param_groups)
        self.factor_fn = factor_fn
        self.min_lrs = _per_group("min_lr", min_lr, count)
        self._base_lr_override = None if base_lr is None else _per_group("base_lr", base_lr, count)
        super().__init__(optimizer, last_epoch)

    def _initial_step(self) -> None:
        if self._base_lr_override is not None:
            self.base_lrs = list(self._base_lr_override)
        super()._initial_step()

    # ------------------------------------------------------------------ closed form
    def lrs_at(self, step: float) -> list[Any]:
        """The LR of every param group at ``step``, computed from ``step`` alone."""
        factor = float(self.factor_fn(step))
        return [m + (b - m) * factor for b, m in zip(self.base_lrs, self.min_lrs, strict=True)]

    def get_lr(self) -> list[Any]:  # type: ignore[override]
        return self.lrs_at(self.last_epoch)

    def _get_closed_form_lr(self) -> list[Any]:
        return self.lrs_at(self.last_epoch)

    def lr_function(self, group: int = 0) -> LRFunction:
        """The LR of param group ``group`` as a pure function of the step."""
        return LRFunction(self.factor_fn, float(self.base_lrs[group]), float(self.min_lrs[group]))

    def step(self, epoch: float | None = None) -> None:  # type: ignore[override]
        """Advance one step, or jump to ``epoch`` (fractional allowed, no deprecation warning)."""
        if epoch is None:
            super().step()
            return
        check_number("epoch", epoch, 0.0)
        self._step_count += 1
        self.last_epoch = epoch  # type: ignore[assignment]
        self._set_lrs(self.lrs_at(epoch))

    def _set_lrs(self, values: Sequence[Any]) -> None:
        for group, lr in zip(self.optimizer.param_groups, values, strict=True):
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(float(lr))
            else:
                group["lr"] = lr
        self._last_lr = [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """Plain values only: the factor function is stored as its class name and fields."""
        state = super().state_dict()
        state["factor_fn"] = _encode(self.factor_fn)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        state["factor_fn"] = _decode(state["factor_fn"])
        super().load_state_dict(state)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.factor_fn!r}, last_epoch={self.last_epoch})"
