r"""Learning-rate schedules: pure closed-form functions of the step, wrapped for torch.

Every schedule is first a pure function ``f(step) -> factor`` (a frozen
dataclass, see :mod:`optzoo.schedules.functions`), then a
``torch.optim.lr_scheduler.LRScheduler`` through the one generic
:class:`FactorLR`, so it composes with ``SequentialLR``, saves with
``state_dict()`` and pickles. The course's schedules:

==========================  ====================================================  ==================
class                       learning rate at step t                               file
==========================  ====================================================  ==================
``StepDecay``               eta_0 gamma^floor(t / step_size)                      ``step.py``
``PiecewiseConstant``       eta_0 gamma^k or factors[k], k = #milestones <= t     ``step.py``
``ExponentialDecay``        eta_0 e^(-t/r)                                        ``exponential.py``
``InverseTimeLR``           eta_0 (1 + t/r)^-c  (eta_0/t: c=1; eta_0/t^2: c=2)    ``inverse_time.py``
``NoamLR``                  eta_0 d^-0.5 min(s^-0.5, s w^-1.5), s = t + 1         ``noam.py``
``WarmupLR``                eta (t+1)/w for t < w, then any scheduler             ``warmup.py``
``CyclicalLR``              triangular / triangular2 / exp_range (Smith 2017)     ``cyclical.py``
``SGDR``                    cosine with warm restarts (Loshchilov & Hutter 2017)  ``sgdr.py``
==========================  ====================================================  ==================

The performance-dependent schedule is torch's ``ReduceLROnPlateau`` and
one-cycle is torch's ``OneCycleLR`` (both in :mod:`optzoo.registry`).
:func:`lr_range_test` is Smith's LR range test and :func:`robbins_monro` checks
the Robbins-Monro conditions numerically.
"""

from ._base import ConstantFactor, FactorLR, Join, LRFunction, Product, factor_classes, lr_curve
from .cyclical import CyclicalFactor, CyclicalLR
from .exponential import ExponentialDecay, ExponentialFactor
from .inverse_time import InverseTimeFactor, InverseTimeLR
from .lr_range_test import LRRangeTestResult, lr_range_test
from .noam import NoamFactor, NoamLR
from .robbins_monro import RobbinsMonroReport, robbins_monro
from .sgdr import SGDR, SGDRFactor
from .step import PiecewiseConstant, PiecewiseConstantFactor, StepDecay, StepDecayFactor
from .warmup import LinearWarmupFactor, WarmupLR

__all__ = [
    "SGDR",
    "ConstantFactor",
    "CyclicalFactor",
    "CyclicalLR",
    "ExponentialDecay",
    "ExponentialFactor",
    "FactorLR",
    "InverseTimeFactor",
    "InverseTimeLR",
    "Join",
    "LRFunction",
    "LRRangeTestResult",
    "LinearWarmupFactor",
    "NoamFactor",
    "NoamLR",
    "PiecewiseConstant",
    "PiecewiseConstantFactor",
    "Product",
    "RobbinsMonroReport",
    "SGDRFactor",
    "StepDecay",
    "StepDecayFactor",
    "WarmupLR",
    "factor_classes",
    "lr_curve",
    "lr_range_test",
    "robbins_monro",
]
