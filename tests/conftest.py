"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest

from optzoo.optim import _native


@dataclass
class KernelCalls:
    by_kernel: Counter[str] = field(default_factory=Counter)  # calls of each kernel, by .cpp name

    @property
    def count(self) -> int:
        return sum(self.by_kernel.values())


@pytest.fixture
def force_native(monkeypatch):
    """Send every bucket, however small, to the native kernels, and count the kernel calls
    (so a test of the native path fails if the step silently took another one)."""
    calls = KernelCalls()
    real_run = _native.run

    def counting_run(function, *args, **kwargs):
        calls.by_kernel[function.__name__.removeprefix("zoo_")] += 1
        return real_run(function, *args, **kwargs)

    monkeypatch.setattr(_native, "MIN_NUMEL", 0)
    monkeypatch.setattr(_native, "run", counting_run)
    return calls
