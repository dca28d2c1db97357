"""Placeholder: SWATS is being written."""

from ._core import ZooOptimizer

__all__ = ["SWATS"]


class SWATS(ZooOptimizer):
    pass
