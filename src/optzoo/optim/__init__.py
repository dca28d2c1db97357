"""optzoo's optimizers: one algorithm per file, all ``torch.optim.Optimizer`` subclasses."""

from ._core import ZooOptimizer
from .adabound import AdaBound
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .lookahead import Lookahead
from .nadam import NAdam
from .radam import RAdam
from .ranger import Ranger
from .rmsprop import RMSprop
from .rprop import Rprop
from .sgd import SGD
from .swats import SWATS

__all__ = [
    "SGD",
    "SWATS",
    "AdaBound",
    "Adadelta",
    "Adagrad",
    "Adam",
    "AdamW",
    "Adamax",
    "Lookahead",
    "NAdam",
    "RAdam",
    "RMSprop",
    "Ranger",
    "Rprop",
    "ZooOptimizer",
]
