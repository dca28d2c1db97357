"""optzoo: the classic optimizers and learning-rate schedules of deep learning, correct and fast.

Every optimizer is a drop-in ``torch.optim.Optimizer``; see ``optzoo.registry``
to build them by name and ``optzoo.lab`` to watch them work.
"""

from .optim import (
    SGD,
    SWATS,
    AdaBound,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lookahead,
    NAdam,
    RAdam,
    Ranger,
    RMSprop,
    Rprop,
)
from .schedules import (
    SGDR,
    CyclicalLR,
    ExponentialDecay,
    FactorLR,
    InverseTimeLR,
    NoamLR,
    PiecewiseConstant,
    StepDecay,
    WarmupLR,
)

__version__ = "0.1.0"

__all__ = [
    "SGD",
    "SGDR",
    "SWATS",
    "AdaBound",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "CyclicalLR",
    "ExponentialDecay",
    "FactorLR",
    "InverseTimeLR",
    "Lookahead",
    "NAdam",
    "NoamLR",
    "PiecewiseConstant",
    "RAdam",
    "RMSprop",
    "Ranger",
    "Rprop",
    "StepDecay",
    "WarmupLR",
]
