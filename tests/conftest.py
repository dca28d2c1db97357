"""Fixtures shared by the test modules."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from optzoo.optim import _native


@dataclass
class KernelCalls:
    count: int = 0


@pytest.fixture
def force_native(monkeypatch):
    """Send every bucket, however small, to the native kernels, and count the kernel calls
    (so a test of the native path fails if the step silently took another one)."""
    calls = KernelCalls()
    real_run = _native.run

    def counting_run(*args, **kwargs):
        calls.count += 1
        return real_run(*args, **kwargs)

    monkeypatch.setattr(_native, "MIN_NUMEL", 0)
    monkeypatch.setattr(_native, "run", counting_run)
    return calls
