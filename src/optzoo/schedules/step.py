r"""Step decay and piecewise-constant schedules: a pre-determined LR per interval.

The course notes' first time-dependent schedule, "piecewise constant:
pre-determined :math:`\eta` for each epoch" (Bengio, "Practical recommendations
for gradient-based training of deep architectures", 2012; He et al. 2016 divide
the LR by 10 at fixed epochs). As factors of the initial LR :math:`\eta_0`:

* step decay: :math:`f(t) = \gamma^{\lfloor t / s \rfloor}` (torch's ``StepLR``);
* piecewise constant: :math:`f(t) = c_k` for :math:`b_{k-1} \le t < b_k`, with
  milestones :math:`0 < b_0 < b_1 < \dots` and one factor :math:`c_k` per interval
  (:math:`k = 0` before :math:`b_0`, the last after the last milestone). By default
  :math:`c_k = \gamma^k` (torch's ``MultiStepLR``); ``factors=`` gives them
  explicitly, and with the optimizer's ``lr=1.0`` they are the LRs themselves.

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): never. Step decay
with :math:`\gamma < 1` is geometric, so even :math:`\sum_t \eta_t` converges;
with :math:`\gamma = 1`, or a last factor :math:`c > 0`, the LR ends constant and
:math:`\sum_t \eta_t^2` diverges.

Example:
    >>> import torch
    >>> from optzoo.schedules import PiecewiseConstant
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = PiecewiseConstant(opt, milestones=[2, 4], factors=[0.5, 0.1, 0.01])
    >>> lrs = []
    >>> for _ in range(5):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> lrs
    [0.5, 0.5, 0.1, 0.1, 0.01]
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch.optim import Optimizer

from ..optim._core import check_number
from ._base import FactorLR, check_int, register_factor

__all__ = ["PiecewiseConstant", "PiecewiseConstantFactor", "StepDecay", "StepDecayFactor"]


@register_factor
@dataclass(frozen=True)
class StepDecayFactor:
    r""":math:`f(t) = \gamma^{\lfloor t / s \rfloor}`, ``s = step_size``."""

    step_size: int
    gamma: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "step_size", check_int("step_size", self.step_size, 1))
        object.__setattr__(self, "gamma", check_number("gamma", self.gamma, 0.0, 1.0, low_open=True))

    def __call__(self, step: float) -> float:
        return self.gamma ** math.floor(step / self.step_size)


@register_factor
@dataclass(frozen=True)
class PiecewiseConstantFactor:
    r""":math:`f(t) = c_k` with :math:`k` the number of milestones :math:`\le t`."""

    milestones: tuple[float, ...]
    factors: tuple[float, ...]

    def __post_init__(self) -> None:
        if isinstance(self.milestones, (str, bytes)) or not isinstance(self.milestones, Sequence):
            raise TypeError(f"milestones must be a sequence of steps, got {self.milestones!r}")
        if isinstance(self.factors, (str, bytes)) or not isinstance(self.factors, Sequence):
            raise TypeError(f"factors must be a sequence of numbers, got {self.factors!r}")
        bounds = tuple(check_number(f"milestones[{i}]", b, 0.0, low_open=True) for i, b in enumerate(self.milestones))
        if any(b <= a for a, b in itertools.pairwise(bounds)):
            raise ValueError(f"milestones must be strictly increasing, got {list(self.milestones)!r}")
        if len(self.factors) != len(bounds) + 1:
            raise ValueError(
                f"factors must hold len(milestones) + 1 = {len(bounds) + 1} values (one per interval), "
                f"got {len(self.factors)}"
            )
        factors = tuple(check_number(f"factors[{i}]", f, 0.0) for i, f in enumerate(self.factors))
        object.__setattr__(self, "milestones", bounds)
        object.__setattr__(self, "factors", factors)

    def __call__(self, step: float) -> float:
        return self.factors[bisect.bisect_right(self.milestones, step)]


class StepDecay(FactorLR):
    r"""Multiply the LR by ``gamma`` every ``step_size`` steps: :math:`\eta_t = \eta_0 \gamma^{\lfloor t/s \rfloor}`.

    ``step_size``: an integer >= 1; ``gamma``: in (0, 1].
    """

    def __init__(self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1) -> None:
        super().__init__(optimizer, StepDecayFactor(step_size, gamma), last_epoch)

    @property
    def step_size(self) -> int:
        return self.factor_fn.step_size

    @property
    def gamma(self) -> float:
        return self.factor_fn.gamma


class PiecewiseConstant(FactorLR):
    r"""A pre-determined LR per interval: :math:`\eta_t = \eta_0 c_k` for :math:`b_{k-1} \le t < b_k`.

    ``milestones``: strictly increasing steps > 0. The factor of interval ``k`` is
    ``gamma**k`` (``gamma`` in (0, 1], torch's ``MultiStepLR``) unless ``factors``
    gives them explicitly: one factor >= 0 per interval, ``len(milestones) + 1`` of
    them, and ``gamma`` is then not used. ``milestones=range(1, n)`` with ``factors``
    gives a pre-determined LR per epoch.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        milestones: Sequence[float],
        gamma: float = 0.1,
        factors: Sequence[float] | None = None,
        last_epoch: int = -1,
    ) -> None:
        if isinstance(milestones, (str, bytes)) or not isinstance(milestones, Sequence):
            raise TypeError(f"milestones must be a sequence of steps, got {milestones!r}")
        if factors is None:
            gamma = check_number("gamma", gamma, 0.0, 1.0, low_open=True)
            factors = [gamma**k for k in range(len(milestones) + 1)]
        elif isinstance(factors, (str, bytes)) or not isinstance(factors, Sequence):
            raise TypeError(f"factors must be a sequence of numbers, got {factors!r}")
        super().__init__(optimizer, PiecewiseConstantFactor(tuple(milestones), tuple(factors)), last_epoch)

    @property
    def milestones(self) -> tuple[float, ...]:
        return self.factor_fn.milestones

    @property
    def factors(self) -> tuple[float, ...]:
        return self.factor_fn.factors
