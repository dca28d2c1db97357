"""Single-pass CPU kernels for the algorithms torch has no fused kernel for.

An optimizer step is memory-bound. torch's unfused paths run one element-wise op
per line of the update, each a full pass over memory with temporaries the size of
the parameters; the kernels in ``optim/kernels/*.cpp`` read each parameter, its
gradient and its state once and write them once, split across threads.

They are plain C++ (no torch headers), one small library per algorithm,
compiled by the machine's C++ compiler on the algorithm's first large step (about
a second) and cached in ``$OPTZOO_CACHE_DIR`` (default ``$XDG_CACHE_HOME/optzoo``
or ``~/.cache/optzoo``; ``optzoo-<uid>`` in the temporary directory where those
cannot be created), keyed by the source, compiler and CPU, so later processes
load them at once. Tensors are handed over by address through ``ctypes``.

The cache holds code that runs inside the training process, so it is trusted only
as far as it is private. Its directory is created with mode 0700; one that exists
is used only if it is a real directory (not a symbolic link), owned by this user
and writable by no one else (others may read it: the kernels are no secret), and
each library and checksum file in it is held to the same (a regular file, not a
link); the lock file is opened without following a link. What fails is refused
(a warning), never changed. A library is loaded only if its bytes match the
SHA-256 its ``<name>-<key>.sha256`` file (``sha256sum`` format) recorded when it
was built, for a truncated library would crash the process when called, and once
loaded it must pass a self-check (``zoo_abi_check``, kernels/common.h). One that
fails either is rebuilt, once. A build runs under a lock file, with
:data:`COMPILE_TIMEOUT_S` to finish, and is renamed into place under a name of its
own, its checksum file last, so concurrent processes each find a whole library.

Where the kernels cannot serve, the optimizers take their per-tensor step
instead, with the same results: no compiler, a cache that fails those checks, a
library that fails its self-check after a rebuild, a compiler past its timeout (a
warning says which, once per kernel), tensors ``_dispatch``'s allow-list does not
give a native kernel (another device or dtype, layouts a linear walk would get
wrong), a bucket with fewer than :data:`MIN_NUMEL` elements (the lab's 2-D
surfaces never build anything), or ``OPTZOO_NATIVE=0`` in the environment.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import hashlib
import os
import platform
import re
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import torch
from torch import Tensor

__all__ = ["COMPILE_TIMEOUT_S", "MIN_NUMEL", "Kernel", "kernel", "run"]

#: Buckets smaller than this take the per-tensor step: below it the step costs
#: microseconds either way, and a tiny model never waits for a compiler.
MIN_NUMEL = 1 << 14

#: Seconds the compiler has for one kernel (a cold build takes 0.6-4 s), or to
#: report its version: a compiler that hangs (a stalled network mount, a wrapper
#: waiting on a licence) costs the per-tensor step, not the training run.
COMPILE_TIMEOUT_S = 120.0

KERNEL_DIR = Path(__file__).with_name("kernels")
# -ffp-contract=off: no multiply-add fused behind the reference's back; -fopenmp-simd: the
# ``omp simd`` pragmas only (vectorised sums), no OpenMP runtime.
_FLAGS = [
    "-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-fopenmp-simd",
    "-std=c++17", "-shared", "-fPIC", "-pthread",
]
# ZOO_ABI_VERSION in kernels/common.h: what a library's self-check must answer.
_ABI_VERSION = 1
# The /proc/cpuinfo fields -march=native depends on: x86's model and feature flags; aarch64's
# features and the core's identity, from which it picks the tuning.
_CPU_FIELDS = frozenset([
    "model name", "flags",
    "Features", "CPU implementer", "CPU architecture", "CPU variant", "CPU part", "CPU revision",
])
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


class _UnavailableError(Exception):
    """Why a kernel cannot be used, in one line (the warning's detail)."""


# Each kernel's loaded function, or None where it could not be built (warned about once).
_kernels: dict[str, Kernel | None] = {}


def _check_owned(path: Path, what: str, *, directory: bool = False) -> None:
    """Refuse ``path`` unless it is a directory (``directory``) or a regular file, not a symbolic
    link, owned by this user and writable by no one else: whoever can write there can put code
    in front of ``ctypes.CDLL``. ``lstat``, so a link is refused, not followed."""
    info = os.lstat(path)
    if stat.S_ISLNK(info.st_mode):
        reason = "is a symbolic link"
    elif not (stat.S_ISDIR if directory else stat.S_ISREG)(info.st_mode):
        reason = "is not a directory" if directory else "is not a regular file"
    elif info.st_uid != os.geteuid():
        reason = f"belongs to uid {info.st_uid}, not to this process's uid {os.geteuid()}"
    elif info.st_mode & 0o022:
        reason = f"is writable by its group or others (mode {stat.S_IMODE(info.st_mode):o})"
    else:
        return
    raise _UnavailableError(f"{what} {path} {reason}")


def _private_dir(folder: Path) -> Path:
    """``folder``, created with mode 0700 where missing; one that exists must pass
    :func:`_check_owned`, and is refused, not repaired, where it does not (another user made it)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.mkdir(folder, 0o700)
    _check_owned(folder, "cache directory", directory=True)
    return folder


def _cache_dir() -> Path:
    """``$OPTZOO_CACHE_DIR``, else ``$XDG_CACHE_HOME/optzoo`` or ``~/.cache/optzoo``; a folder in
    the temporary directory where none of those can be created (a read-only home, say). Private
    (:func:`_private_dir`), or :class:`_UnavailableError`: an unsafe folder is never swapped for another."""
    configured = os.environ.get("OPTZOO_CACHE_DIR")
    if configured:
        return _private_dir(Path(configured))
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    try:
        return _private_dir(Path(base) / "optzoo")
    except OSError:
        return _private_dir(Path(tempfile.gettempdir()) / f"optzoo-{os.geteuid()}")


def _cpuinfo() -> str:
    """The text of /proc/cpuinfo ("" where there is none)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_signature() -> str:
    """What ``-march=native`` depends on: the :data:`_CPU_FIELDS` lines of /proc/cpuinfo, each
    distinct line once (every core repeats them; a big.LITTLE machine's kinds of core all count)."""
    lines = [line for line in _cpuinfo().splitlines() if line.partition(":")[0].strip() in _CPU_FIELDS]
    return "\n".join(dict.fromkeys(lines)) or platform.processor()


def _run_compiler(command: list[str]) -> str:
    """Run the compiler, return its output; :class:`_UnavailableError` past :data:`COMPILE_TIMEOUT_S`.
    It runs in a session of its own, killed whole on a timeout or an interrupt: the driver's own
    children (cc1plus, the assembler, the linker) would otherwise run on, holding its pipes open."""
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    ) as process:
        try:
            output, errors = process.communicate(timeout=COMPILE_TIMEOUT_S)
        except BaseException as error:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            if isinstance(error, subprocess.TimeoutExpired):
                raise _UnavailableError(f"{command[0]} ran past its {COMPILE_TIMEOUT_S:g} s timeout") from None
            raise
    if process.returncode:
        raise subprocess.CalledProcessError(process.returncode, command, output, errors)
    return output


@functools.cache
def _toolchain_signature(compiler: str) -> str:
    """What every kernel's library depends on besides its source: the compiler's version, the
    flags, the machine and its CPU; asked once per process, not once per kernel."""
    version = _run_compiler([compiler, "--version"])
    return "\n".join([version, " ".join(_FLAGS), platform.machine(), _cpu_signature()])


def _cache_key(name: str, compiler: str) -> str:
    """What kernel ``name``'s library is cached under: its source and headers, and the toolchain."""
    key = hashlib.sha256(_toolchain_signature(compiler).encode())
    for path in [KERNEL_DIR / f"{name}.cpp", *sorted(KERNEL_DIR.glob("*.h"))]:
        key.update(path.name.encode() + path.read_bytes())
    return f"{name}-{key.hexdigest()[:16]}"


def _checksum(stem: Path) -> tuple[str, Path] | None:
    """The SHA-256 and the library that ``<stem>.sha256`` records; None where it is missing or
    malformed. The library's name must be ``<stem>-<16 hex digits>.so``: no path leads elsewhere."""
    checksum = Path(f"{stem}.sha256")
    try:
        _check_owned(checksum, "checksum file")
        text = checksum.read_text(errors="replace")
    except FileNotFoundError:
        return None
    match = re.fullmatch(rf"([0-9a-f]{{64}})  ({re.escape(stem.name)}-[0-9a-f]{{16}}\.so)\n", text)
    return None if match is None else (match[1], stem.parent / match[2])


def _ready(stem: Path) -> Path | None:
    """The library ``<stem>.sha256`` records, if its bytes still hash to the record; None where
    either is missing or they differ. A truncated library is never loaded: calling one crashes
    the process (SIGBUS), where no exception can be caught."""
    entry = _checksum(stem)
    if entry is None:
        return None
    digest, library = entry
    try:
        _check_owned(library, "library")
        data = library.read_bytes()
    except FileNotFoundError:
        return None
    return library if hashlib.sha256(data).hexdigest() == digest else None


def _install(stem: Path, built: Path) -> Path:
    """Rename the library ``built`` (in the cache directory) into place for ``stem``, then record
    its SHA-256 in ``<stem>.sha256``, renamed over the old record. The library gets a name never
    used before, so the record names the old build or the new one, each whole, and a rebuild is
    never mistaken by ``dlopen`` for a library it has loaded already under the same path."""
    library = stem.parent / f"{stem.name}-{secrets.token_hex(8)}.so"
    record = f"{hashlib.sha256(built.read_bytes()).hexdigest()}  {library.name}\n"
    # Modes set whatever the umask: a group-writable file would fail this module's own checks.
    os.chmod(built, 0o755)
    os.replace(built, library)
    partial = built.with_name("checksum")
    partial.write_text(record)
    os.chmod(partial, 0o644)
    os.replace(partial, f"{stem}.sha256")
    return library


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path``. Opened without truncating or following a link: a link
    planted at its name is refused (ELOOP) instead of emptying the file it points to."""
    import fcntl

    descriptor = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        yield
    finally:
        os.close(descriptor)


def _build(compiler: str, source: Path, stem: Path, rejected: Path | None) -> Path:
    """Compile ``source`` into the library for ``stem`` and return it, unless another process
    built one while this one waited for the lock (``rejected``, a library that failed to load
    here, does not count). The library it replaces, if any, is deleted."""
    # One process builds while the others wait on the lock, then find the library there.
    with _locked(Path(f"{stem}.lock")):
        library = _ready(stem)
        if library is not None and library != rejected:
            return library
        replaced = _checksum(stem)
        with tempfile.TemporaryDirectory(dir=stem.parent) as scratch:
            partial = Path(scratch) / "kernel.so"
            _run_compiler([compiler, *_FLAGS, str(source), "-o", str(partial)])
            library = _install(stem, partial)
        if replaced is not None:
            # A process that has it loaded keeps its mapping; nothing reads the file after this.
            replaced[1].unlink(missing_ok=True)
        return library


def _call_record(
    buffers: Sequence[Sequence[Tensor | None]],
    steps: Sequence[Tensor],
    hyper: Sequence[float],
    per_tensor: Tensor | None,
) -> _Call:
    """The ``zoo::Call`` for :func:`run`'s arguments (it keeps its arrays alive)."""
    params = buffers[0]
    n = len(params)
    addresses = [0 if t is None else t.data_ptr() for column in buffers for t in column]
    return _Call(
        n,
        (ctypes.c_int64 * n)(*[p.numel() for p in params]),
        (ctypes.c_void_p * len(addresses))(*addresses),
        (ctypes.c_void_p * n)(*[s.data_ptr() for s in steps]),
        (ctypes.c_double * len(hyper))(*hyper),
        None if per_tensor is None else ctypes.cast(per_tensor.data_ptr(), ctypes.POINTER(ctypes.c_double)),
        _DTYPE_CODES[params[0].dtype],
        torch.get_num_threads(),
    )


def _self_check(library: ctypes.CDLL, path: Path) -> None:
    """Call the library's ``zoo_abi_check`` (kernels/common.h) on two tiny float64 tensors through
    the same ``zoo::Call`` as every kernel, and :class:`_UnavailableError` unless it computes
    ``out = 2 in + per_tensor * step`` after advancing the steps, and answers :data:`_ABI_VERSION`:
    a library that loads yet is not what its name says is never handed parameters."""
    check = library.zoo_abi_check
    check.argtypes = [ctypes.POINTER(_Call)]
    check.restype = ctypes.c_int32
    inputs = [torch.tensor([1.0, -2.0], dtype=torch.float64), torch.tensor([0.5, 4.0, 8.0], dtype=torch.float64)]
    outputs = [torch.zeros_like(t) for t in inputs]
    steps = [torch.zeros(1), torch.ones(1)]
    per_tensor = torch.tensor([3.0, -1.0], dtype=torch.float64)
    version = check(ctypes.byref(_call_record([inputs, outputs], steps, [2.0], per_tensor)))
    expected = [torch.tensor([5.0, -1.0], dtype=torch.float64), torch.tensor([-1.0, 6.0, 14.0], dtype=torch.float64)]
    if not (
        version == _ABI_VERSION
        and [s.item() for s in steps] == [1.0, 2.0]
        and all(torch.equal(out, want) for out, want in zip(outputs, expected))
    ):
        raise _UnavailableError(f"library {path} failed its self-check (zoo_abi_check answered {version})")


def _open(library: Path, name: str) -> Kernel:
    """Load ``library``, run its self-check, and return its ``zoo_<name>``."""
    handle = ctypes.CDLL(str(library))
    _self_check(handle, library)
    function = getattr(handle, f"zoo_{name}")
    function.argtypes = [ctypes.POINTER(_Call)]
    function.restype = None
    return function


def _load(name: str) -> Kernel:
    """Build (once per machine) and load ``kernels/<name>.cpp``; each kernel is its own library,
    so the first step of one algorithm compiles only its own source, in about a second. A library
    that fails to load or its self-check is rebuilt once; failing again, it is given up."""
    if os.name != "posix":
        raise _UnavailableError("the native kernels need a POSIX system (file locks, process groups)")
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")
    if compiler is None:
        raise FileNotFoundError("no C++ compiler found (set CXX)")
    source = KERNEL_DIR / f"{name}.cpp"
    stem = _cache_dir() / _cache_key(name, compiler)
    rejected: Path | None = None
    failure: Exception | None = None
    for _attempt in range(2):
        library = _ready(stem)
        if library is None or library == rejected:
            library = _build(compiler, source, stem, rejected)
        try:
            return _open(library, name)
        except (OSError, AttributeError, _UnavailableError) as error:
            rejected, failure = library, error
    raise _UnavailableError(f"its library failed to load after a rebuild ({failure})")


def kernel(name: str) -> Kernel | None:
    """The function ``zoo_<name>`` of ``kernels/<name>.cpp``, built on first use; None where
    native kernels are off or cannot be built (after one warning)."""
    if os.environ.get("OPTZOO_NATIVE", "1") == "0":
        return None
    if name not in _kernels:
        try:
            _kernels[name] = _load(name)
        except (OSError, subprocess.CalledProcessError, _UnavailableError) as error:
            detail = error.stderr if isinstance(error, subprocess.CalledProcessError) else error
            warnings.warn(
                f"optzoo: the native {name} kernel is unavailable, using the per-tensor step ({detail})",
                RuntimeWarning,
                stacklevel=3,
            )
            _kernels[name] = None
    return _kernels[name]


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
    function(ctypes.byref(_call_record(buffers, steps, hyper, per_tensor)))
    # Tell autograd these tensors changed in place, as a torch op would.
    written = [t for column in buffers[:1] + buffers[2:] for t in column if t is not None]
    torch.autograd.graph.increment_version(written + list(steps))
