"""Placeholder: Rprop is being written."""

from ._core import ZooOptimizer

__all__ = ["Rprop"]


class Rprop(ZooOptimizer):
    pass
