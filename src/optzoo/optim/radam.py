"""Placeholder: RAdam is being written."""

from ._core import ZooOptimizer

__all__ = ["RAdam"]


class RAdam(ZooOptimizer):
    pass
