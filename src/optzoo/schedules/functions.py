r"""Every schedule as a pure function of the step, to plot or test without an optimizer.

Each is a small frozen dataclass, ``f(step) -> factor`` of the initial LR (for
``CyclicalFactor`` the fraction of the range, for ``SGDRFactor`` the fraction
between ``eta_min`` and the initial LR); :class:`LRFunction` turns one into the
LR itself and :func:`lr_curve` lists it over the steps. :class:`Product` and
:class:`Join` compose them in closed form.

Example:
    >>> from optzoo.schedules.functions import LRFunction, SGDRFactor, lr_curve
    >>> [round(v, 3) for v in lr_curve(SGDRFactor(T_0=4), 6, base_lr=0.1, min_lr=0.01)]
    [0.1, 0.087, 0.055, 0.023, 0.1, 0.087]
    >>> round(LRFunction(SGDRFactor(T_0=4), base_lr=0.1, min_lr=0.01)(2), 12)
    0.055
"""

from ._base import ConstantFactor, Join, LRFunction, Product, factor_classes, lr_curve
from .cyclical import CyclicalFactor
from .exponential import ExponentialFactor
from .inverse_time import InverseTimeFactor
from .noam import NoamFactor
from .sgdr import SGDRFactor
from .step import PiecewiseConstantFactor, StepDecayFactor
from .warmup import LinearWarmupFactor

__all__ = [
    "ConstantFactor",
    "CyclicalFactor",
    "ExponentialFactor",
    "InverseTimeFactor",
    "Join",
    "LRFunction",
    "LinearWarmupFactor",
    "NoamFactor",
    "PiecewiseConstantFactor",
    "Product",
    "SGDRFactor",
    "StepDecayFactor",
    "factor_classes",
    "lr_curve",
]
