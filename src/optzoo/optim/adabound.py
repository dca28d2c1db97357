"""Placeholder: AdaBound is being written."""

from ._core import ZooOptimizer

__all__ = ["AdaBound"]


class AdaBound(ZooOptimizer):
    pass
