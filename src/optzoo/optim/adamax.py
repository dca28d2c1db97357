"""Placeholder: Adamax is being written."""

from ._core import ZooOptimizer

__all__ = ["Adamax"]


class Adamax(ZooOptimizer):
    pass
