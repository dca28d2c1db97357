"""Fixtures shared by the test modules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import pytest
import torch

from harness import FUSED_KERNELS
from optzoo.optim import _native


@dataclass
class KernelCalls:
    by_kernel: Counter[str] = field(default_factory=Counter)  # calls of each kernel, by name

    @property
    def count(self) -> int:
        return sum(self.by_kernel.values())


@pytest.fixture
def native_calls(monkeypatch):
    """Count the calls of optzoo's native kernels, by .cpp name, without changing which step
    runs (buckets under ``MIN_NUMEL`` still take the per-tensor one)."""
    calls = KernelCalls()
    real_run = _native.run

    def counting_run(function, *args, **kwargs):
        calls.by_kernel[function.__name__.removeprefix("zoo_")] += 1
        return real_run(function, *args, **kwargs)

    monkeypatch.setattr(_native, "run", counting_run)
    return calls


@pytest.fixture
def force_native(monkeypatch, native_calls):
    """Send every bucket, however small, to the native kernels, and count the kernel calls
    (so a test of the native path fails if the step silently took another one)."""
    monkeypatch.setattr(_native, "MIN_NUMEL", 0)
    return native_calls


@pytest.fixture
def fused_calls(monkeypatch):
    """Count the calls of torch's fused optimizer kernels, by attribute name (``_fused_adam_``...),
    each still running the real kernel, so a test of the fused path fails if the step silently
    took another one. optzoo looks the kernels up on ``torch`` at every call, which this relies on."""
    calls = KernelCalls()

    def counting(name, real):
        def kernel(*args, **kwargs):
            calls.by_kernel[name] += 1
            return real(*args, **kwargs)

        return kernel

    for name in FUSED_KERNELS:
        monkeypatch.setattr(torch, name, counting(name, getattr(torch, name)))
    return calls


@pytest.fixture(autouse=True)
def one_torch_thread():
    """One torch thread per test process: pytest-xdist already runs a worker per core, and torch's
    own threads on top of that fight over them (a small model's gradient took 24 ms instead of
    0.12 ms, measured). Tests of the threaded kernels set their own count."""
    torch.set_num_threads(1)
