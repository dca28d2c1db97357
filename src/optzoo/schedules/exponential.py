r"""Exponential decay: :math:`\eta_t = \eta_0 e^{-t/r}`.

The course notes' exponential schedule, with :math:`r` of the order of the
training set size (when stepping per example; of the number of epochs when
stepping per epoch). It is torch's ``ExponentialLR`` with
:math:`\gamma = e^{-1/r}`, computed in closed form rather than by repeated
multiplication.

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): no. The LR falls
geometrically, so :math:`\sum_t \eta_t = \eta_0 / (1 - e^{-1/r}) < \infty`: SGD
may stop short of a minimum.

Example:
    >>> import math, torch
    >>> from optzoo.schedules import ExponentialDecay
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = ExponentialDecay(opt, r=10.0)
    >>> for _ in range(10):
    ...     opt.step(); sched.step()
    >>> math.isclose(opt.param_groups[0]["lr"], math.exp(-1.0))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch.optim import Optimizer

from ..optim._core import check_number
from ._base import FactorLR, register_factor

__all__ = ["ExponentialDecay", "ExponentialFactor"]


@register_factor
@dataclass(frozen=True)
class ExponentialFactor:
    r""":math:`f(t) = e^{-t/r}`, ``r > 0``."""

    r: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "r", check_number("r", self.r, 0.0, low_open=True))

    def __call__(self, step: float) -> float:
        return math.exp(-step / self.r)


class ExponentialDecay(FactorLR):
    r""":math:`\eta_t = \eta_0 e^{-t/r}` with ``r > 0`` (the LR falls by :math:`e` every ``r`` steps)."""

    def __init__(self, optimizer: Optimizer, r: float, last_epoch: int = -1) -> None:
        super().__init__(optimizer, ExponentialFactor(r), last_epoch)

    @property
    def r(self) -> float:
        return self.factor_fn.r
