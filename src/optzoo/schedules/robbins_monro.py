r"""Does a schedule satisfy the Robbins-Monro conditions? A numerical check.

Robbins & Monro, "A Stochastic Approximation Method", Ann. Math. Statist. 1951:
SGD converges (almost surely, under the usual assumptions) when

.. math::

    \sum_{t=0}^{\infty} \eta_t = \infty \qquad\text{and}\qquad \sum_{t=0}^{\infty} \eta_t^2 < \infty:

the steps can still carry the parameters anywhere, yet their noise dies out
(course notes, seed 002). The fastest-shrinking schedule meeting both is
:math:`\eta_0 / t`.

Verdicts per family (proved, and what :func:`robbins_monro` finds):

============================================  ==================  ==================  =========
schedule                                      :math:`\sum\eta`    :math:`\sum\eta^2`  satisfied
============================================  ==================  ==================  =========
constant; ``WarmupLR`` alone                  :math:`\infty`      :math:`\infty`      no
``StepDecay`` :math:`\gamma < 1`              finite              finite              no
``PiecewiseConstant``, last factor > 0        :math:`\infty`      :math:`\infty`      no
``ExponentialDecay``                          finite              finite              no
``InverseTimeLR`` :math:`c \le 1/2`           :math:`\infty`      :math:`\infty`      no
``InverseTimeLR`` :math:`1/2 < c \le 1`       :math:`\infty`      finite              **yes**
``InverseTimeLR`` :math:`c > 1` (e.g. 1/t²)   finite              finite              no
``NoamLR`` (tail :math:`s^{-1/2}`)            :math:`\infty`      :math:`\infty`      no
``CyclicalLR``, ``SGDR`` (restarts)           :math:`\infty`      :math:`\infty`      no
============================================  ==================  ==================  =========

The numerical test. The terms are grouped in dyadic blocks
:math:`B_k = \sum_{M 2^{k-1} \le t < M 2^k} \eta_t` up to ``horizon``; each block
is summed exactly while it has at most :math:`M` terms, and estimated by
stratified sampling (one random step in each of :math:`M` equal strata) beyond.
A series of non-negative terms converges when its dyadic blocks shrink
geometrically, so the growth rate of the last ``tail_blocks`` blocks,
:math:`\rho = (B_K / B_{K-m})^{1/m}`, decides: the sum diverges when
:math:`\rho \ge 1 - \text{tol}`. For :math:`t^{-c}`, :math:`\rho \to 2^{1-c}`,
so the verdict is exact except for exponents within about ``tol`` of the
borderline :math:`c = 1` (:math:`c = 1/2` for the squares), and provided the
horizon reaches the asymptotic regime (``horizon`` far beyond the schedule's
time scale: :math:`r`, ``warmup_steps``, ``T_0``).

Example:
    >>> from optzoo.schedules import InverseTimeFactor, robbins_monro
    >>> robbins_monro(InverseTimeFactor(r=1.0, c=1.0)).satisfied
    True
    >>> report = robbins_monro(InverseTimeFactor(r=1.0, c=2.0))
    >>> report.satisfied, report.sum_diverges
    (False, False)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from dataclasses import dataclass

from ..optim._core import check_number
from ._base import FactorLR, check_int

__all__ = ["RobbinsMonroReport", "robbins_monro"]


@dataclass(frozen=True)
class RobbinsMonroReport:
    """The outcome of :func:`robbins_monro`; truthy when both conditions hold."""

    sum_diverges: bool
    sum_of_squares_converges: bool
    sum_growth: float  # rho of the dyadic blocks of eta_t (>= 1: diverges)
    sum_of_squares_growth: float  # rho of the dyadic blocks of eta_t^2
    partial_sum: float  # estimate of sum_{t < horizon} eta_t
    partial_sum_of_squares: float
    horizon: int

    @property
    def satisfied(self) -> bool:
        """Both conditions: the steps sum to infinity, their squares to a finite value."""
        return self.sum_diverges and self.sum_of_squares_converges

    def __bool__(self) -> bool:
        return self.satisfied

    def __str__(self) -> str:
        return (
            f"sum eta_t {'diverges' if self.sum_diverges else 'converges'} (growth {self.sum_growth:.4g}), "
            f"sum eta_t^2 {'converges' if self.sum_of_squares_converges else 'diverges'} "
            f"(growth {self.sum_of_squares_growth:.4g}): Robbins-Monro "
            f"{'satisfied' if self.satisfied else 'not satisfied'}"
        )


def _term(fn: Callable[[float], float], t: int) -> float:
    value = float(fn(t))
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"the schedule must give finite, non-negative learning rates; at step {t} it gave {value!r}")
    return value


def _growth(blocks: list[float], tail: int) -> float:
    last, first = blocks[-1], blocks[-1 - tail]
    if last == 0.0:
        return 0.0
    if first == 0.0:
        return math.inf
    return (last / first) ** (1.0 / tail)


def robbins_monro(
    fn: Callable[[float], float] | FactorLR,
    *,
    horizon: int = 2**40,
    samples_per_block: int = 2048,
    tail_blocks: int = 4,
    tol: float = 1e-3,
    seed: int = 0,
) -> RobbinsMonroReport:
    r"""Tell whether :math:`\sum_t \eta_t = \infty` and :math:`\sum_t \eta_t^2 < \infty` (see the module docstring).

    Args:
        fn: the LR (or factor) as a function of the step ``t = 0, 1, ...``: a
            factor dataclass, an :class:`~optzoo.schedules.LRFunction` (for a
            schedule with a floor, e.g. ``CyclicalLR``'s ``base_lr``), any
            callable, or a :class:`~optzoo.schedules.FactorLR` scheduler (its
            first param group's LR). Must be finite and non-negative.
        horizon: the last step considered (rounded down to a dyadic block end).
        samples_per_block: :math:`M`, a power of two >= 16.
        tail_blocks: how many of the last blocks the growth rate spans.
        tol: the sum is called divergent when the block growth is >= 1 - tol.
        seed: for the stratified sampling (the verdict is deterministic given it).
    """
    if isinstance(fn, FactorLR):
        fn = fn.lr_function()
    if not callable(fn):
        raise TypeError(f"fn must be a function of the step, got {fn!r}")
    m = check_int("samples_per_block", samples_per_block, 16)
    if m & (m - 1):
        raise ValueError(f"samples_per_block must be a power of two, got {samples_per_block!r}")
    tail = check_int("tail_blocks", tail_blocks, 1)
    horizon = check_int("horizon", horizon, m * 2 ** (tail + 1))
    tol = check_number("tol", tol, 0.0, 1.0, high_open=True)
    rng = random.Random(seed)

    # block 0: [0, M), exact
    values = [_term(fn, t) for t in range(m)]
    sums, squares = [math.fsum(values)], [math.fsum(v * v for v in values)]
    start = m
    while 2 * start <= horizon:
        stride = start // m  # block [start, 2 start) in M strata of `stride` steps
        if stride == 1:
            values = [_term(fn, t) for t in range(start, 2 * start)]
        else:
            values = [_term(fn, start + i * stride + rng.randrange(stride)) for i in range(m)]
        sums.append(stride * math.fsum(values))
        squares.append(stride * math.fsum(v * v for v in values))
        start *= 2

    growth, growth_sq = _growth(sums, tail), _growth(squares, tail)
    return RobbinsMonroReport(
        sum_diverges=growth >= 1.0 - tol,
        sum_of_squares_converges=growth_sq < 1.0 - tol,
        sum_growth=growth,
        sum_of_squares_growth=growth_sq,
        partial_sum=math.fsum(sums),
        partial_sum_of_squares=math.fsum(squares),
        horizon=start,
    )

