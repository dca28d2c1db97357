"""The native kernels' cache (optim/_native.py): it holds code that runs inside the training
process, so a library is loaded only from a private directory, only if it is the file that was
built (checked against its checksum) and only if it passes its self-check; anything else costs a
rebuild or the per-tensor step, never a crash or a stranger's code.

rmsprop is the one kernel built here (about a second a build); a library planted by "another
user" writes a marker file from its constructor, so a test sees whether it was ever loaded.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import textwrap
import time
import warnings
from pathlib import Path

import pytest
import torch

import optzoo
from optzoo.optim import _native
from test_native import rmsprop_steps

NOBODY = 65534
# Files "another user" made are made by root here, then given away.
needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="gives files to another user: needs root")
COMPILER = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")

# Exports what a kernel library exports, computing nothing right; built with -DMARKER, its
# constructor also leaves a file behind the moment anything loads it.
FAKE_KERNEL = r"""
#include <stdint.h>
#include <stdio.h>
#ifdef MARKER
__attribute__((constructor)) static void planted(void) {
    FILE* marker = fopen(MARKER, "w");
    if (marker) fclose(marker);
}
#endif
void zoo_rmsprop(void* call) { (void)call; }
int32_t zoo_abi_check(void* call) { (void)call; return 1; }
"""

# A process taking three RMSprop steps on a bucket big enough for the native path, checked
# against the reference step; it prints each compile, and the number of kernel calls.
STEPS = """
import os, pathlib, subprocess, sys, time, warnings
import torch, optzoo
from optzoo.optim import _native

warnings.simplefilter("error")  # a warning (the per-tensor step) fails the process
real_popen, real_run, calls = subprocess.Popen, _native.run, []

def spy(command, *args, **kwargs):
    print("COMPILE" if "-shared" in command else "QUERY", flush=True)
    return real_popen(command, *args, **kwargs)

def counting_run(function, *args, **kwargs):
    calls.append(function.__name__)
    return real_run(function, *args, **kwargs)

subprocess.Popen, _native.run = spy, counting_run
if "GO" in os.environ:  # wait for the other process, so both reach the empty cache at once
    pathlib.Path(os.environ["READY"]).touch()
    while not os.path.exists(os.environ["GO"]):
        time.sleep(0.005)

def steps(foreach):
    p = torch.linspace(-1, 1, 1 << 15, dtype=torch.float64, requires_grad=True)
    optimizer = optzoo.RMSprop([p], lr=0.01, foreach=foreach)
    for _ in range(3):
        p.grad = torch.cos(3 * p.detach())
        optimizer.step()
    return p.detach()

torch.testing.assert_close(steps(None), steps(False), rtol=1e-13, atol=1e-15)
print("KERNEL CALLS", len(calls), flush=True)
"""


def run_steps(cache: Path, **env: str) -> subprocess.Popen[str]:
    """Start :data:`STEPS` in a process of its own, on this checkout's sources."""
    sources = str(Path(optzoo.__file__).parents[1])
    environment = {**os.environ, "OPTZOO_CACHE_DIR": str(cache), "PYTHONPATH": sources, **env}
    return subprocess.Popen(
        [sys.executable, "-c", STEPS], env=environment, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def finished(process: subprocess.Popen[str]) -> str:
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 0, f"exit {process.returncode}:\n{output}"
    assert "KERNEL CALLS 3" in output, output
    return output


@pytest.fixture(autouse=True)
def no_loaded_kernels(monkeypatch):
    monkeypatch.setattr(_native, "_kernels", {})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A cache directory in which this code built rmsprop, under a umask that would leave the
    group write access: tests copy it rather than build again."""
    folder = tmp_path_factory.mktemp("built") / "cache"
    umask = os.umask(0o002)
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(_native, "_kernels", {})
            patch.setenv("OPTZOO_CACHE_DIR", str(folder))
            assert _native.kernel("rmsprop") is not None
    finally:
        os.umask(umask)
    return folder


@pytest.fixture(scope="module")
def fakes(tmp_path_factory) -> dict[str, Path]:
    """The fake kernel's source, its library, and the planted library (with a marker)."""
    folder = tmp_path_factory.mktemp("fakes")
    source = folder / "fake.c"
    source.write_text(FAKE_KERNEL)
    marker = folder / "planted-library-ran"
    libraries = {"wrong": folder / "wrong.so", "planted": folder / "planted.so"}
    for kind, library in libraries.items():
        defines = [f'-DMARKER="{marker}"'] if kind == "planted" else []
        subprocess.run([COMPILER, "-x", "c", "-shared", "-fPIC", *defines, str(source), "-o", str(library)], check=True)
    return {"source": source, "marker": marker, **libraries}


@pytest.fixture
def marker(fakes) -> Path:
    fakes["marker"].unlink(missing_ok=True)
    return fakes["marker"]


def copy_cache(built: Path, destination: Path) -> Path:
    shutil.copytree(built, destination, symlinks=True)
    return destination


def plant(folder: Path, library: Path, *, link: bool = False) -> None:
    """Do what anyone who could write ``folder`` could: put ``library`` (a copy, or with ``link`` a
    symbolic link to it) in place of each kernel library there, with a checksum that matches."""
    data = library.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    targets = sorted(folder.glob("*.so"))
    assert targets
    for target in targets:
        target.unlink()
        if link:
            target.symlink_to(library)
        else:
            target.write_bytes(data)
    for checksum in folder.glob("*.sha256"):
        checksum.write_text(f"{digest}  {checksum.read_text().split()[1]}\n")


def chown_all(folder: Path, uid: int) -> None:
    for path in [folder, *folder.iterdir()]:
        os.lchown(path, uid, uid)


def assert_per_tensor_step_after_one_warning(force_native, *reasons: str, marker: Path | None = None) -> None:
    """Three RMSprop steps never load the planted library (``marker`` absent), warn once, with
    each of ``reasons`` in that one line, and compute exactly what the per-tensor step computes,
    without a kernel call."""
    params = [torch.linspace(-1, 1, 100, dtype=torch.float64, requires_grad=True)]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        rmsprop_steps(params)
    assert marker is None or not marker.exists(), "the planted library was loaded"
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1, messages
    assert "native rmsprop kernel is unavailable" in messages[0] and "\n" not in messages[0]
    for reason in reasons:
        assert reason in messages[0]
    expected = [torch.linspace(-1, 1, 100, dtype=torch.float64, requires_grad=True)]
    rmsprop_steps(expected, foreach=False)
    assert force_native.count == 0
    torch.testing.assert_close(params[0], expected[0], rtol=0, atol=0)


def assert_native_step(force_native) -> None:
    params = [torch.linspace(-1, 1, 100, dtype=torch.float64, requires_grad=True)]
    rmsprop_steps(params)
    expected = [torch.linspace(-1, 1, 100, dtype=torch.float64, requires_grad=True)]
    rmsprop_steps(expected, foreach=False)
    assert force_native.count == 3
    torch.testing.assert_close(params[0], expected[0], rtol=1e-13, atol=1e-15)


def test_a_new_cache_is_private_even_under_a_permissive_umask(built):
    """Created 0700, its files writable by their owner only, whatever the umask said."""
    assert stat.S_IMODE(os.lstat(built).st_mode) == 0o700
    files = list(built.iterdir())
    assert {path.suffix for path in files} >= {".so", ".sha256", ".lock"}
    for path in files:
        assert stat.S_IMODE(os.lstat(path).st_mode) & 0o022 == 0, path


UNSAFE_FOLDERS = {
    "group-writable": (lambda folder: folder.chmod(0o770), "is writable by its group or others (mode 770)"),
    "other-writable": (lambda folder: folder.chmod(0o757), "is writable by its group or others (mode 757)"),
    "another-user's": (lambda folder: chown_all(folder, NOBODY), f"belongs to uid {NOBODY}"),
}


@pytest.mark.parametrize(
    "unsafe", [pytest.param(k, marks=[needs_root] if "user" in k else []) for k in UNSAFE_FOLDERS], ids=str
)
def test_an_unsafe_cache_directory_is_refused(unsafe, built, fakes, marker, tmp_path, monkeypatch, force_native):
    """A directory others can write (or that is someone else's) may hold anything: nothing in it
    is loaded, even a library whose checksum matches; one warning, the per-tensor step."""
    folder = copy_cache(built, tmp_path / "cache")
    plant(folder, fakes["planted"])
    make_unsafe, reason = UNSAFE_FOLDERS[unsafe]
    make_unsafe(folder)
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(folder))
    assert_per_tensor_step_after_one_warning(force_native, f"cache directory {folder} {reason}", marker=marker)


def test_a_symlinked_cache_directory_is_refused(built, fakes, marker, tmp_path, monkeypatch, force_native):
    """Even to a private directory of this user's: whoever made the link chose where it leads."""
    folder = copy_cache(built, tmp_path / "elsewhere")
    plant(folder, fakes["planted"])
    link = tmp_path / "cache"
    link.symlink_to(folder)
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(link))
    assert_per_tensor_step_after_one_warning(force_native, f"cache directory {link} is a symbolic link", marker=marker)


@needs_root
def test_the_temporary_fallback_is_private(built, fakes, marker, tmp_path, monkeypatch, force_native):
    """Where the home cache cannot be created the folder in the temporary directory is made
    0700; one that someone else made first (its name is predictable) is refused, not used."""
    monkeypatch.delenv("OPTZOO_CACHE_DIR", raising=False)
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    fallback = tmp_path / "tmp" / f"optzoo-{os.geteuid()}"
    assert _native._cache_dir() == fallback
    assert stat.S_IMODE(os.lstat(fallback).st_mode) == 0o700

    fallback.rmdir()
    copy_cache(built, fallback)
    plant(fallback, fakes["planted"])
    chown_all(fallback, NOBODY)
    reason = f"cache directory {fallback} belongs to uid {NOBODY}"
    assert_per_tensor_step_after_one_warning(force_native, reason, marker=marker)


UNSAFE_LIBRARIES = {
    "group-writable": (lambda library: library.chmod(0o775), "is writable by its group or others (mode 775)"),
    "another-user's": (lambda library: os.lchown(library, NOBODY, NOBODY), f"belongs to uid {NOBODY}"),
    "symbolic-link": (lambda library: None, "is a symbolic link"),
}


@pytest.mark.parametrize(
    "unsafe", [pytest.param(k, marks=[needs_root] if "user" in k else []) for k in UNSAFE_LIBRARIES], ids=str
)
def test_an_unsafe_library_is_never_loaded(unsafe, built, fakes, marker, tmp_path, monkeypatch, force_native):
    """In a private directory, a library someone else could have written (or a link to one) is
    still refused, its checksum matching or not."""
    folder = copy_cache(built, tmp_path / "cache")
    planted = tmp_path / "planted.so"
    shutil.copy(fakes["planted"], planted)
    plant(folder, planted, link=unsafe == "symbolic-link")
    make_unsafe, reason = UNSAFE_LIBRARIES[unsafe]
    (library,) = folder.glob("*.so")
    make_unsafe(library)
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(folder))
    assert_per_tensor_step_after_one_warning(force_native, f"library {library} {reason}", marker=marker)


def test_a_symlink_at_the_lock_is_not_followed(built, tmp_path, monkeypatch, force_native):
    """Opening the lock neither truncates nor writes the file a planted link points to."""
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (lock,) = built.glob("rmsprop-*.lock")
    (folder / lock.name).symlink_to(victim)
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(folder))
    assert_per_tensor_step_after_one_warning(force_native, lock.name)
    assert victim.read_text() == "precious"


def test_a_truncated_library_is_rebuilt_not_loaded(built, tmp_path):
    """A library cut short (a full disk, a crash mid-copy) crashes the process that calls it
    (SIGBUS): its checksum no longer matches, so it is rebuilt instead, in a process of its own
    here so that a crash fails the test rather than pytest."""
    folder = copy_cache(built, tmp_path / "cache")
    (library,) = folder.glob("*.so")
    with open(library, "r+b") as file:
        file.truncate(library.stat().st_size // 2)
    output = finished(run_steps(folder))
    assert output.count("COMPILE") == 1
    (rebuilt,) = folder.glob("*.so")
    assert rebuilt != library


@pytest.mark.parametrize("bad", ["garbage", "wrong"])
def test_a_library_that_fails_to_load_or_its_self_check_is_rebuilt(
    bad, built, fakes, tmp_path, monkeypatch, force_native
):
    """Bytes that are no library at all, or a library that computes the wrong thing, under a
    checksum that matches them: rebuilt once, then the kernel's own results, no warning."""
    folder = copy_cache(built, tmp_path / "cache")
    replacement = tmp_path / "replacement.so"
    if bad == "garbage":
        replacement.write_bytes(b"\x7fELF" + bytes(range(256)) * 40)
    else:
        shutil.copy(fakes["wrong"], replacement)
    plant(folder, replacement)
    (planted,) = folder.glob("*.so")
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(folder))
    compiles = []
    real = subprocess.Popen

    def counting(command, *args, **kwargs):
        compiles.append(command)
        return real(command, *args, **kwargs)

    monkeypatch.setattr(subprocess, "Popen", counting)
    assert_native_step(force_native)
    assert len([command for command in compiles if "-shared" in command]) == 1
    (rebuilt,) = folder.glob("*.so")
    assert rebuilt != planted


def test_a_library_that_keeps_failing_its_self_check_gives_up_after_one_rebuild(
    fakes, tmp_path, monkeypatch, force_native
):
    """A compiler whose libraries never pass (here: one that builds the fake kernel whatever it is
    asked): built twice, then one warning and the per-tensor step."""
    log = tmp_path / "compiles"
    compiler = tmp_path / "bad-c++"
    compiler.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            if [ "$1" = --version ]; then exec {COMPILER} --version; fi
            for output; do :; done
            echo >> {log}
            exec {COMPILER} -x c -shared -fPIC {fakes["source"]} -o "$output"
            """)
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(tmp_path / "cache"))
    assert_per_tensor_step_after_one_warning(force_native, "failed its self-check")
    assert log.read_text().count("\n") == 2


def running(pid: int) -> bool:
    """Whether process ``pid`` runs (a zombie, killed but not yet reaped, does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")
def test_a_compiler_past_its_timeout_is_abandoned(tmp_path, monkeypatch, force_native):
    """Abandoned promptly, and the processes it started with it: a compiler's cc1plus left
    running would go on taking a core and writing into the cache."""
    started = tmp_path / "started"
    compiler = tmp_path / "stuck-c++"
    compiler.write_text(
        textwrap.dedent(f"""\
            #!/bin/sh
            if [ "$1" = --version ]; then echo stuck 1.0; exit; fi
            sleep 60 &
            echo $! > {started}
            wait
            """)
    )
    compiler.chmod(0o755)
    monkeypatch.setenv("CXX", str(compiler))
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setattr(_native, "COMPILE_TIMEOUT_S", 2.0)
    start = time.monotonic()
    assert_per_tensor_step_after_one_warning(force_native, "ran past its 2 s timeout")
    assert time.monotonic() - start < 30  # not the 60 s the stuck compiler would take
    child = int(started.read_text())
    deadline = time.monotonic() + 5
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child), "the compiler's child process was left running"


AARCH64_CORE = """processor\t: {index}
BogoMIPS\t: 50.00
Features\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer\t: 0x41
CPU architecture: 8
CPU variant\t: 0x{variant}
CPU part\t: 0x{part}
CPU revision\t: 1

"""


def test_the_cache_key_tells_aarch64_cores_apart(monkeypatch):
    """aarch64's /proc/cpuinfo has no ``model name`` or ``flags``: the core's part and variant
    (and every kind of core on a big.LITTLE machine) must still change the key."""

    def key(*cores: tuple[str, str]) -> str:
        text = "".join(AARCH64_CORE.format(index=i, part=part, variant=v) for i, (part, v) in enumerate(cores))
        monkeypatch.setattr(_native, "_cpuinfo", lambda: text)
        _native._toolchain_signature.cache_clear()
        try:
            return _native._cache_key("rmsprop", COMPILER)
        finally:
            _native._toolchain_signature.cache_clear()

    neoverse_n1, neoverse_v1 = ("d0c", "3"), ("d40", "1")
    keys = [
        key(neoverse_n1, neoverse_n1),
        key(neoverse_v1, neoverse_v1),
        key(neoverse_n1, ("d0c", "4")),
        key(neoverse_n1, neoverse_v1),
    ]
    assert len(set(keys)) == len(keys)
    assert key(neoverse_n1, neoverse_n1) == key(neoverse_n1, neoverse_n1, neoverse_n1)


def test_two_processes_building_at_once_both_get_the_kernel(tmp_path):
    """Started together on an empty cache: one compiles, the other waits for it, and both step
    with the kernel and the reference's results."""
    folder, go = tmp_path / "cache", tmp_path / "go"
    processes = [run_steps(folder, READY=str(tmp_path / f"ready-{i}"), GO=str(go)) for i in range(2)]
    deadline = time.monotonic() + 60
    while not all((tmp_path / f"ready-{i}").exists() for i in range(2)):
        assert time.monotonic() < deadline and all(p.poll() is None for p in processes), "a process did not start"
        time.sleep(0.01)
    go.touch()
    outputs = [finished(process) for process in processes]
    assert sum(output.count("COMPILE") for output in outputs) == 1
    assert len(list(folder.glob("*.so"))) == 1
