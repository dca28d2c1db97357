"""Placeholder: Ranger is being written."""

from ._core import ZooOptimizer

__all__ = ["Ranger"]


class Ranger(ZooOptimizer):
    pass
