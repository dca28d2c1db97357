r"""The Transformer ("Noam") schedule: linear warm-up, then inverse-square-root decay.

Vaswani et al., "Attention Is All You Need", NeurIPS 2017, eq. (3):

.. math::

    \eta_t = \eta_0\, d_{model}^{-0.5} \min\left(s^{-0.5},\ s\, w^{-1.5}\right),
    \qquad s = t + 1,

with :math:`w` = ``warmup_steps`` (4000 in the paper). The paper's step number
:math:`s` starts at 1, so scheduler step :math:`t = 0` is :math:`s = 1`. With the
optimizer's ``lr=1.0`` (:math:`\eta_0 = 1`) this is the paper's LR; it rises
linearly to its peak :math:`d_{model}^{-0.5} w^{-0.5}` at :math:`s = w`
(:math:`t = w - 1`) and then falls as :math:`s^{-0.5}`.

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): no. The tail
:math:`\propto s^{-1/2}` makes :math:`\sum_t \eta_t^2` the harmonic series, which
diverges.

Example:
    >>> import torch
    >>> from optzoo.schedules import NoamLR
    >>> opt = torch.optim.Adam([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = NoamLR(opt, d_model=512, warmup_steps=4000)
    >>> round(opt.param_groups[0]["lr"] * 1e7, 4)  # 512^-0.5 * 4000^-1.5 at s = 1
    1.7469
"""

from __future__ import annotations

from dataclasses import dataclass

from torch.optim import Optimizer

from ..optim._core import check_number
from ._base import FactorLR, check_int, register_factor

__all__ = ["NoamFactor", "NoamLR"]


@register_factor
@dataclass(frozen=True)
class NoamFactor:
    r""":math:`f(t) = d_{model}^{-0.5} \min(s^{-0.5}, s\, w^{-1.5})`, :math:`s = t + 1`."""

    d_model: float
    warmup_steps: int = 4000

    def __post_init__(self) -> None:
        object.__setattr__(self, "d_model", check_number("d_model", self.d_model, 0.0, low_open=True))
        object.__setattr__(self, "warmup_steps", check_int("warmup_steps", self.warmup_steps, 1))

    def __call__(self, step: float) -> float:
        s = step + 1
        return self.d_model**-0.5 * min(s**-0.5, s * self.warmup_steps**-1.5)


class NoamLR(FactorLR):
    r"""Vaswani et al.'s schedule; ``lr=1.0`` on the optimizer gives the paper's values.

    ``d_model``: the model width, > 0 (any positive number is accepted, so that
    it can also set the curve's scale); ``warmup_steps``: an integer >= 1.
    """

    def __init__(self, optimizer: Optimizer, d_model: float, warmup_steps: int = 4000, last_epoch: int = -1) -> None:
        super().__init__(optimizer, NoamFactor(d_model, warmup_steps), last_epoch)

    @property
    def d_model(self) -> float:
        return self.factor_fn.d_model

    @property
    def warmup_steps(self) -> int:
        return self.factor_fn.warmup_steps
