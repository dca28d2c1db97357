"""Placeholder: Adagrad is being written."""

from ._core import ZooOptimizer

__all__ = ["Adagrad"]


class Adagrad(ZooOptimizer):
    pass
