"""Single-pass CPU kernels for the algorithms torch has no fused kernel for.

An optimizer step is memory-bound. torch's unfused paths run one element-wise op
per line of the update, each a full pass over memory with temporaries the size of
the parameters; the kernels in ``optim/kernels/*.cpp`` read each parameter, its
gradient and its state once and write them once, split across threads.

They are plain C++ (no torch headers), one small library per algorithm,
compiled by the machine's C++ compiler on the algorithm's first large step (about
a second) and cached in ``$OPTZOO_CACHE_DIR`` (default ``~/.cache/optzoo``),
keyed by the source, compiler and CPU, so later processes load them at once.
Tensors are handed over by address through ``ctypes``.

Where the kernels cannot serve, the optimizers take their per-tensor step
instead, with the same results: no compiler (a warning says so, once), another
device or dtype, tensors that are not contiguous, a bucket with fewer than
:data:`MIN_NUMEL` elements (the lab's 2-D surfaces never build anything), or
``OPTZOO_NATIVE=0`` in the environment.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["MIN_NUMEL", "Kernel", "buckets_fit", "kernel", "run", "tensors_fit"]

#: Buckets smaller than this take the per-tensor step: below it the step costs
#: microseconds either way, and a tiny model never waits for a compiler.
MIN_NUMEL = 1 << 14

KERNEL_DIR = Path(__file__).with_name("kernels")
# -ffp-contract=off: no multiply-add fused behind the reference's back; -fopenmp-simd: the
# ``omp simd`` pragmas only (vectorised sums), no OpenMP runtime.
_FLAGS = [
    "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp-simd",
    "-std=c++17", "-shared", "-fPIC", "-pthread",
]
_DTYPE_CODES = {torch.float32: 0, torch.float64: 1}
_FLOAT32, _STRIDED = torch.float32, torch.strided

Kernel = Callable[..., None]


class _Call(ctypes.Structure):
    """``zoo::Call`` in kernels/common.h."""

    _fields_ = [
        ("n_tensors", ctypes.c_int64),
        ("numel", ctypes.POINTER(ctypes.c_int64)),
        ("buffers", ctypes.POINTER(ctypes.c_void_p)),
        ("steps", ctypes.POINTER(ctypes.c_void_p)),
        ("hyper", ctypes.POINTER(ctypes.c_double)),
        ("per_tensor", ctypes.POINTER(ctypes.c_double)),
        ("dtype", ctypes.c_int32),
        ("n_threads", ctypes.c_int32),
    ]


# Each kernel's loaded function, or None where it could not be built (warned about once).
_kernels: dict[str, Kernel | None] = {}


def _cache_dir() -> Path:
    """``$OPTZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/optzoo`` or ``~/.cache/optzoo``; a folder in
    the temporary directory where none of those can be created (a read-only home, say)."""
    configured = os.environ.get("OPTZOO_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    folder = Path(base) / "optzoo"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        folder = Path(tempfile.gettempdir()) / f"optzoo-{os.getuid() if hasattr(os, 'getuid') else 'user'}"
    return folder


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the CPU's model and feature flags."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor()
    return "".join(line for line in text.splitlines(keepends=True) if line.startswith(("model name", "flags")))[:4096]


@functools.cache
def _toolchain_signature(compiler: str) -> str:
    """What every kernel's library depends on besides its source: the compiler's version, the
    flags, the machine and its CPU; asked once per process, not once per kernel."""
    version = subprocess.run([compiler, "--version"], capture_output=True, text=True, check=True).stdout
    return "\n".join([version, " ".join(_FLAGS), platform.machine(), _cpu_signature()])


def _build(compiler: str, source: Path, target: Path) -> None:
    import fcntl  # POSIX only; elsewhere the ImportError means the per-tensor step

    target.parent.mkdir(parents=True, exist_ok=True)
    # One process builds while the others wait on the lock, then find the library there.
    with open(target.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.exists():
            return
        with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
            partial = Path(scratch) / target.name
            subprocess.run(
                [compiler, *_FLAGS, str(source), "-o", str(partial)], check=True, capture_output=True, text=True
            )
            os.replace(partial, target)


def _load(name: str) -> Kernel:
    """Build (once per machine) and load ``kernels/<name>.cpp``; each kernel is its own library,
    so the first step of one algorithm compiles only its own source, in about a second."""
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        raise FileNotFoundError("no C++ compiler found (set CXX)")
    source = KERNEL_DIR / f"{name}.cpp"
    key = hashlib.sha256(_toolchain_signature(compiler).encode())
    for path in [source, *sorted(KERNEL_DIR.glob("*.h"))]:
        key.update(path.name.encode() + path.read_bytes())
    target = _cache_dir() / f"{name}-{key.hexdigest()[:16]}.so"
    if not target.exists():
        _build(compiler, source, target)
    function = getattr(ctypes.CDLL(str(target)), f"zoo_{name}")
    function.argtypes = [ctypes.POINTER(_Call)]
    function.restype = None
    return function


def kernel(name: str) -> Kernel | None:
    """The function ``zoo_<name>`` of ``kernels/<name>.cpp``, built on first use; None where
    native kernels are off or cannot be built (after one warning)."""
    if os.environ.get("OPTZOO_NATIVE", "1") == "0":
        return None
    if name not in _kernels:
        try:
            _kernels[name] = _load(name)
        except (OSError, ImportError, AttributeError, subprocess.CalledProcessError) as error:
            detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
            warnings.warn(
                f"optzoo: the native {name} kernel is unavailable, using the per-tensor step ({detail})",
                RuntimeWarning,
                stacklevel=3,
            )
            _kernels[name] = None
    return _kernels[name]


def buckets_fit(params: Sequence[Tensor]) -> bool:
    """Whether a bucket (one device, dtype and tensor type) is worth a kernel call: plain CPU
    float32/float64 tensors, :data:`MIN_NUMEL` elements or more."""
    first = params[0]
    return (
        first.is_cpu
        and first.dtype in _DTYPE_CODES
        and type(first) in (Tensor, torch.nn.Parameter)
        and sum(p.numel() for p in params) >= MIN_NUMEL
    )


def tensors_fit(param: Tensor, others: Sequence[Tensor | None], step: Tensor | None = None) -> bool:
    """Whether one parameter's tensors can be handed over by address: ``param`` and every one of
    ``others`` (a gradient, state tensors; None skipped) dense, contiguous, of one dtype and one size
    (a state dict of another shape must never send a kernel past a tensor's end), and ``step``, if
    given, the float32 CPU counter a kernel advances."""
    # This runs for every tensor at every step: a plain loop, identity tests of torch's singleton
    # dtypes and layouts, and no device objects (each costs more than the rest of a test).
    if not param.is_contiguous():
        return False
    if step is not None and not (isinstance(step, Tensor) and step.dtype is _FLOAT32 and step.is_cpu):
        return False
    numel, dtype = param.numel(), param.dtype
    for other in others:
        if other is not None and not (
            other.layout is _STRIDED and other.dtype is dtype and other.is_contiguous() and other.numel() == numel
        ):
            return False
    return True


def run(
    function: Kernel,
    buffers: Sequence[Sequence[Tensor | None]],
    steps: Sequence[Tensor],
    hyper: Sequence[float],
    per_tensor: Tensor | None = None,
) -> None:
    """Call a kernel on ``buffers[b][i]`` (buffer b of tensor i; None where absent).

    ``buffers[0]`` are the parameters and ``buffers[1]`` their gradients, the rest the
    algorithm's state in the order its ``.cpp`` file lists; ``steps`` the float32 step
    counters the kernel advances (none for a kernel that keeps no count). ``per_tensor``,
    if given, is a contiguous CPU float64 tensor of per-tensor values the kernel reads
    and writes. Every buffer but the gradients gets its autograd version bumped.
    """
    params = buffers[0]
    n = len(params)
    addresses = [0 if t is None else t.data_ptr() for column in buffers for t in column]
    call = _Call(
        n,
        (ctypes.c_int64 * n)(*[p.numel() for p in params]),
        (ctypes.c_void_p * len(addresses))(*addresses),
        (ctypes.c_void_p * n)(*[s.data_ptr() for s in steps]),
        (ctypes.c_double * len(hyper))(*hyper),
        None if per_tensor is None else ctypes.cast(per_tensor.data_ptr(), ctypes.POINTER(ctypes.c_double)),
        _DTYPE_CODES[params[0].dtype],
        torch.get_num_threads(),
    )
    function(ctypes.byref(call))
    # Tell autograd these tensors changed in place, as a torch op would.
    written = [t for column in buffers[:1] + buffers[2:] for t in column if t is not None]
    torch.autograd.graph.increment_version(written + list(steps))
