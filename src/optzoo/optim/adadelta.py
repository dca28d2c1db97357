"""Placeholder: Adadelta is being written."""

from ._core import ZooOptimizer

__all__ = ["Adadelta"]


class Adadelta(ZooOptimizer):
    pass
