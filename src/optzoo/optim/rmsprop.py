"""Placeholder: RMSprop is being written."""

from ._core import ZooOptimizer

__all__ = ["RMSprop"]


class RMSprop(ZooOptimizer):
    pass
