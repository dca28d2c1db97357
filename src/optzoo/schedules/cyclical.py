r"""Cyclical learning rates (CLR): the LR bounces between two bounds.

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017, Section
3.1. With half-cycle length :math:`s` (``step_size``, in iterations) and
iteration :math:`t`:

.. math::

    \mathrm{cycle} &= \lfloor 1 + t / (2s) \rfloor \\
    x &= |t / s - 2\,\mathrm{cycle} + 1| \\
    \eta_t &= \eta_{base} + (\eta_{max} - \eta_{base}) \max(0, 1 - x)\, \sigma(t)

where the amplitude scale :math:`\sigma` is 1 for ``"triangular"``,
:math:`1 / 2^{\mathrm{cycle} - 1}` for ``"triangular2"`` (the amplitude halves
each cycle) and :math:`\gamma^t` for ``"exp_range"``. The pure factor
:math:`f(t) = \max(0, 1 - x)\, \sigma(t)` is the fraction of the range;
:class:`CyclicalLR` maps it onto :math:`[\eta_{base}, \eta_{max}]`. Smith
suggests :math:`s` = 2 to 10 epochs of iterations and finds the bounds with the
LR range test (:func:`~optzoo.schedules.lr_range_test`, whose
``cyclical_range`` is made for this class).

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): no. The LR is
periodic (or tends to :math:`\eta_{base} > 0`), so neither sum converges.

Example:
    >>> import torch
    >>> from optzoo.schedules import CyclicalLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = CyclicalLR(opt, base_lr=0.1, max_lr=0.5, step_size=2)
    >>> lrs = []
    >>> for _ in range(6):
    ...     lrs.append(round(opt.param_groups[0]["lr"], 6)); opt.step(); sched.step()
    >>> lrs
    [0.1, 0.3, 0.5, 0.3, 0.1, 0.3]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch.optim import Optimizer

from ..optim._core import check_choice, check_number
from ._base import FactorLR, _per_group, register_factor

__all__ = ["CyclicalFactor", "CyclicalLR"]

MODES = ("triangular", "triangular2", "exp_range")


@register_factor
@dataclass(frozen=True)
class CyclicalFactor:
    r""":math:`f(t) = \max(0, 1 - x)\,\sigma(t)`, the fraction of Smith's range (see the module docstring)."""

    step_size: float
    mode: str = "triangular"
    gamma: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", check_number("step_size", self.step_size, 0.0, low_open=True))
        check_choice("mode", self.mode, MODES)
        object.__setattr__(self, "gamma", check_number("gamma", self.gamma, 0.0, 1.0, low_open=True))

    def __call__(self, step: float) -> float:
        cycle = math.floor(1 + step / (2 * self.step_size))
        x = abs(step / self.step_size - 2 * cycle + 1)
        height = max(0.0, 1.0 - x)
        if self.mode == "triangular2":
            return height / 2.0 ** (cycle - 1)
        if self.mode == "exp_range":
            return height * self.gamma**step
        return height


class CyclicalLR(FactorLR):
    r"""Smith's cyclical LR between ``base_lr`` and ``max_lr``, half-cycle ``step_size`` iterations.

    Args:
        base_lr, max_lr: the bounds, one number or one per param group, with
            ``0 <= base_lr <= max_lr``. They replace the optimizer's lr (as with
            torch's ``CyclicLR``); the LR starts at ``base_lr``.
        step_size: iterations per half cycle, > 0.
        mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
        gamma: in (0, 1], the per-iteration amplitude decay of ``"exp_range"``.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        base_lr: float | Sequence[float],
        max_lr: float | Sequence[float],
        step_size: float,
        mode: str = "triangular",
        gamma: float = 1.0,
        last_epoch: int = -1,
    ) -> None:
        count = len(optimizer.param_groups) if isinstance(optimizer, Optimizer) else 1
        lows = _per_group("base_lr", base_lr, count)
        highs = _per_group("max_lr", max_lr, count)
        for i, (low, high) in enumerate(zip(lows, highs, strict=True)):
            if low > high:
                raise ValueError(f"base_lr must be <= max_lr, got base_lr={low!r} > max_lr={high!r} (group {i})")
        factor = CyclicalFactor(step_size, mode, gamma)
        super().__init__(optimizer, factor, last_epoch, base_lr=highs, min_lr=lows)

    @property
    def step_size(self) -> float:
        return self.factor_fn.step_size

    @property
    def mode(self) -> str:
        return self.factor_fn.mode

    @property
    def gamma(self) -> float:
        return self.factor_fn.gamma
