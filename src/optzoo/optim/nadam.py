"""Placeholder: NAdam is being written."""

from ._core import ZooOptimizer

__all__ = ["NAdam"]


class NAdam(ZooOptimizer):
    pass
