r"""Reciprocal (inverse-time) decay: :math:`\eta_t = \eta_0 (1 + t/r)^{-c}`.

The course notes' reciprocal schedule, :math:`c \sim 1` (Bottou, "Stochastic
Gradient Descent Tricks", 2012, uses :math:`\eta_0 (1 + \eta_0 \lambda t)^{-1}`;
the Keras/TF name is ``InverseTimeDecay``). The seeds' :math:`\eta_0 / t` and
:math:`\eta_0 / t^2` are its large-:math:`t` forms with :math:`r = 1` and
:math:`c = 1`, :math:`c = 2`: counting steps from :math:`t = 0`, ``r=1, c=1``
gives exactly :math:`\eta_0 / (t + 1)`, and ``r=1, c=2`` gives
:math:`\eta_0 / (t + 1)^2`.

Robbins-Monro (:math:`\sum_t \eta_t = \infty`, :math:`\sum_t \eta_t^2 < \infty`,
Robbins & Monro 1951; see :func:`~optzoo.schedules.robbins_monro`) holds exactly
for :math:`1/2 < c \le 1`: the sum diverges iff :math:`c \le 1` and the sum of
squares converges iff :math:`2c > 1`. :math:`\eta_0/t` (:math:`c = 1`) is the
fastest-shrinking schedule that still satisfies both, the optimal rate for
strongly convex problems (seed 002); :math:`\eta_0/t^2` shrinks too fast (the
steps sum to a finite distance).

Example:
    >>> import torch
    >>> from optzoo.schedules import InverseTimeLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = InverseTimeLR(opt, r=1.0, c=1.0)
    >>> lrs = []
    >>> for _ in range(4):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> lrs  # eta_0 / (t + 1)
    [1.0, 0.5, 0.3333333333333333, 0.25]
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.optim import Optimizer

from ..optim._core import check_number
from ._base import FactorLR, register_factor

__all__ = ["InverseTimeFactor", "InverseTimeLR"]


@register_factor
@dataclass(frozen=True)
class InverseTimeFactor:
    r""":math:`f(t) = (1 + t/r)^{-c}`, ``r > 0``, ``c >= 0``."""

    r: float = 1.0
    c: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "r", check_number("r", self.r, 0.0, low_open=True))
        object.__setattr__(self, "c", check_number("c", self.c, 0.0))

    def __call__(self, step: float) -> float:
        return (1.0 + step / self.r) ** -self.c


class InverseTimeLR(FactorLR):
    r""":math:`\eta_t = \eta_0 (1 + t/r)^{-c}` (``r > 0``, ``c >= 0``); ``r=1, c=1`` is :math:`\eta_0/(t+1)`."""

    def __init__(self, optimizer: Optimizer, r: float = 1.0, c: float = 1.0, last_epoch: int = -1) -> None:
        super().__init__(optimizer, InverseTimeFactor(r, c), last_epoch)

    @property
    def r(self) -> float:
        return self.factor_fn.r

    @property
    def c(self) -> float:
        return self.factor_fn.c
