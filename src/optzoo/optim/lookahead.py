"""Placeholder: Lookahead is being written."""

from ._core import ZooOptimizer

__all__ = ["Lookahead"]


class Lookahead(ZooOptimizer):
    pass
