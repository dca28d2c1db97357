r"""SGDR: cosine annealing with warm restarts.

Loshchilov & Hutter, "SGDR: Stochastic Gradient Descent with Warm Restarts",
ICLR 2017, eq. (5):

.. math::

    \eta_t = \eta_{min} + \tfrac12 (\eta_{max} - \eta_{min})
             \left(1 + \cos\left(\pi \frac{T_{cur}}{T_i}\right)\right)

with :math:`\eta_{max}` the optimizer's initial lr, :math:`T_i = T_0 T_{mult}^i`
the length of the :math:`i`-th run and :math:`T_{cur}` the (possibly fractional)
number of epochs since the last restart: the restarts fall at
:math:`T_0 (T_{mult}^n - 1)/(T_{mult} - 1)` (at :math:`n T_0` when
:math:`T_{mult} = 1`). The paper updates :math:`T_{cur}` every batch, so
``step(epoch)`` takes fractional epochs, as torch's
``CosineAnnealingWarmRestarts`` does; here the position is computed in closed
form from the epoch alone.

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): no. Each run adds
about :math:`T_i \eta_{max}/2` to :math:`\sum_t \eta_t` and :math:`3 T_i
\eta_{max}^2/8` to :math:`\sum_t \eta_t^2`; both diverge.

Example:
    >>> import torch
    >>> from optzoo.schedules import SGDR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = SGDR(opt, T_0=2, T_mult=2)
    >>> for epoch in (0.5, 1.0, 2.0, 4.0):
    ...     sched.step(epoch); print(epoch, round(opt.param_groups[0]["lr"], 4))
    0.5 0.8536
    1.0 0.5
    2.0 1.0
    4.0 0.5
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from torch.optim import Optimizer

from ._base import FactorLR, check_int, register_factor

__all__ = ["SGDR", "SGDRFactor"]


@register_factor
@dataclass(frozen=True)
class SGDRFactor:
    r""":math:`f(t) = \tfrac12 (1 + \cos(\pi T_{cur} / T_i))`, the position found from :math:`t` in closed form."""

    T_0: int
    T_mult: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "T_0", check_int("T_0", self.T_0, 1))
        object.__setattr__(self, "T_mult", check_int("T_mult", self.T_mult, 1))

    def position(self, step: float) -> tuple[float, int]:
        """``(T_cur, T_i)`` at epoch ``step``."""
        if self.T_mult == 1:
            return step % self.T_0, self.T_0
        start, length = 0, self.T_0
        while step >= start + length:  # at most log_{T_mult}(step / T_0) + 1 rounds, exact at the restarts
            start += length
            length *= self.T_mult
        return step - start, length

    def __call__(self, step: float) -> float:
        t_cur, t_i = self.position(step)
        return 0.5 * (1.0 + math.cos(math.pi * t_cur / t_i))


class SGDR(FactorLR):
    r"""Cosine annealing from the optimizer's lr to ``eta_min`` over runs of ``T_0``, ``T_0 T_mult``, ... epochs.

    ``T_0``: an integer >= 1; ``T_mult``: an integer >= 1; ``eta_min``: >= 0, one
    number or one per param group. ``step()`` advances one epoch (or batch, if
    ``T_0`` counts batches); ``step(epoch)`` jumps to a possibly fractional
    epoch, e.g. ``step(epoch + i / iters_per_epoch)`` every batch.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        T_0: int,  # noqa: N803 (the paper's and torch's name)
        T_mult: int = 1,  # noqa: N803
        eta_min: float | Sequence[float] = 0.0,
        last_epoch: int = -1,
    ) -> None:
        super().__init__(optimizer, SGDRFactor(T_0, T_mult), last_epoch, min_lr=eta_min)

    @property
    def T_0(self) -> int:  # noqa: N802
        return self.factor_fn.T_0

    @property
    def T_mult(self) -> int:  # noqa: N802
        return self.factor_fn.T_mult

    @property
    def eta_min(self) -> float:
        return self.min_lrs[0]
