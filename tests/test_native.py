"""The native single-pass kernels (optzoo/optim/kernels/): same numbers as the reference step,
on tensors large enough to be split across threads, and a safe fallback wherever they cannot run.

Their agreement with the oracles on the harness's problem is in test_zoo.py (the ``native`` path
of every check); here the tensors are big and oddly sized, so a thread boundary falls inside a
tensor and the vector loops have remainders.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

import optzoo
from harness import expected_kernel_calls
from optzoo.optim import _dispatch, _native
from zoo_table import ALL_CASES

NATIVE = [(case, check) for case in ALL_CASES if case.native for check in case.checks]
SHAPES = [(301, 457), (7,), (65_537,), (1,), (3, 5, 7)]
# Reached after 12 steps from the same start on the same gradients; float32 results differ from
# the reference in the last bits only (torch's own vector kernels fuse some multiply-adds), a few
# ulps after 12 steps; a wrong element, step or option is off by about lr = 1e-2.
CLOSE = {torch.float32: (1e-5, 1e-6), torch.float64: (1e-12, 1e-13)}


def assert_close(actual, expected):
    """Close elementwise, atol scaled by the tensor's largest value (state such as a momentum
    buffer of g / sigma runs to hundreds, and its ulps with it)."""
    rtol, atol = CLOSE[expected.dtype]
    finite = expected[torch.isfinite(expected)]
    scale = max(1.0, finite.abs().max().item()) if finite.numel() else 1.0
    torch.testing.assert_close(actual, expected, rtol=rtol, atol=atol * scale, equal_nan=True)


def big_problem(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    start = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for shape in SHAPES]
    grads = [[torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for shape in SHAPES] for _ in range(12)]
    return start, grads


def trajectory(make, start, grads):
    """Step ``make(params)`` from copies of ``start`` (strides kept); ``grads[t]`` holds each
    parameter's gradient at step t, None where it has none that step."""
    params = [t.clone().requires_grad_() for t in start]
    optimizer = make(params)
    for step_grads in grads:
        for p, grad in zip(params, step_grads):
            p.grad = None if grad is None else grad.clone()
        optimizer.step()
    return params, optimizer


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("case", "check"), NATIVE, ids=[f"{c.name}-{k.id()}" for c, k in NATIVE])
def test_native_kernel_equals_reference_step_on_large_tensors(case, check, dtype, force_native):
    torch.set_num_threads(2)
    start, grads = big_problem(dtype)
    ours, optimizer = trajectory(lambda p: case.make(p, **check.hyper), start, grads)
    expected, reference = trajectory(lambda p: case.make(p, **check.hyper, foreach=False), start, grads)
    assert force_native.by_kernel[case.native] == expected_kernel_calls(case, check.hyper, len(grads))
    for a, b in zip(ours, expected):
        assert_close(a.detach(), b.detach())
    for state, reference_state in zip(optimizer.state.values(), reference.state.values()):
        for key, value in state.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                assert_close(value, reference_state[key])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", [case for case in ALL_CASES if case.native], ids=str)
def test_non_finite_gradients_give_what_the_reference_gives(case, dtype, force_native):
    """NaN and infinite gradient entries (an overflow, a bad batch) spread, or not, exactly as in
    the reference step: the kernels' maximum, clamp and sign keep torch's NaN rules."""
    torch.set_num_threads(2)
    start, grads = big_problem(dtype, seed=1)
    for step_grads in grads[4:6]:
        for grad in step_grads:
            flat = grad.view(-1)
            flat[::97] = float("nan")
            flat[5::89] = float("inf")
            flat[7::83] = -float("inf")
            flat[9::79] = 0.0
    hyper = case.checks[0].hyper
    ours, _ = trajectory(lambda p: case.make(p, **hyper), start, grads)
    expected, _ = trajectory(lambda p: case.make(p, **hyper, foreach=False), start, grads)
    assert force_native.count > 0
    assert any(torch.isnan(b).any() for b in expected), "the reference should have NaN entries to compare"
    for a, b in zip(ours, expected):
        assert_close(a.detach(), b.detach())


def rmsprop_steps(params, steps=3, **hyper):
    optimizer = optzoo.RMSprop(params, lr=0.01, **hyper)
    for _ in range(steps):
        for p in params:
            p.grad = torch.ones_like(p)
        optimizer.step()
    return optimizer


def test_tiny_models_never_build_or_call_the_kernels(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a tiny model reached the native kernels")

    monkeypatch.setattr(_native, "kernel", refuse)
    rmsprop_steps([torch.zeros(2, requires_grad=True)])  # a 2-D surface's point


def test_buckets_at_the_threshold_take_the_kernel(monkeypatch):
    calls = []
    monkeypatch.setattr(_native, "run", lambda *args: calls.append(args))
    rmsprop_steps([torch.zeros(_native.MIN_NUMEL - 1, requires_grad=True)], steps=1)
    assert not calls
    rmsprop_steps([torch.zeros(_native.MIN_NUMEL, requires_grad=True)], steps=1)
    assert len(calls) == 1


def test_optzoo_native_0_turns_the_kernels_off(monkeypatch, force_native):
    monkeypatch.setenv("OPTZOO_NATIVE", "0")
    rmsprop_steps([torch.zeros(10, requires_grad=True)])
    assert force_native.count == 0


def test_without_a_compiler_a_warning_and_the_reference_step(monkeypatch, tmp_path, force_native):
    monkeypatch.setattr(_native, "_kernels", {})
    monkeypatch.setenv("OPTZOO_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    params = [torch.zeros(10, requires_grad=True)]
    with pytest.warns(RuntimeWarning, match="native rmsprop kernel is unavailable"):
        rmsprop_steps(params)
    expected = [torch.zeros(10, requires_grad=True)]
    rmsprop_steps(expected, foreach=False)
    assert force_native.count == 0
    torch.testing.assert_close(params[0], expected[0], rtol=0, atol=0)


def test_an_unwritable_cache_home_falls_back_to_the_temporary_directory(monkeypatch, tmp_path):
    monkeypatch.delenv("OPTZOO_CACHE_DIR", raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))  # the fallback is created: not in the real one
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocked))
    folder = _native._cache_dir()
    assert folder.parent == Path(tempfile.gettempdir()) and folder.name.startswith("optzoo-")


def test_the_build_is_cached_for_other_processes(tmp_path):
    """A second process finds the library the first one built and compiles nothing."""
    probe = (
        "import subprocess, torch, optzoo\n"
        "real = subprocess.Popen\n"
        "def spy(cmd, *a, **k):\n"
        "    print('COMPILE' if '-shared' in cmd else 'QUERY')\n"
        "    return real(cmd, *a, **k)\n"
        "subprocess.Popen = spy\n"
        "p = torch.zeros(1 << 15, requires_grad=True); p.grad = torch.ones_like(p)\n"
        "optzoo.RMSprop([p]).step()\n"
        "import os; print(sorted(os.path.splitext(f)[1] for f in os.listdir(os.environ['OPTZOO_CACHE_DIR'])))\n"
    )
    sources = str(Path(optzoo.__file__).parents[1])  # this checkout's, not an installed copy's
    env = {"OPTZOO_CACHE_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": sources}
    first = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    second = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert first.stdout.count("COMPILE") == 1
    assert "COMPILE" not in second.stdout and "QUERY" in second.stdout
    assert "'.so'" in second.stdout


def test_tensors_that_do_not_fit_take_the_reference_step(force_native):
    """A transposed parameter or a state tensor of another size is never handed to a kernel."""
    params = [torch.randn(30, 40, dtype=torch.float64).t().requires_grad_(), torch.randn(50, dtype=torch.float64)]
    params[1].requires_grad_()
    assert not params[0].is_contiguous()
    expected = [p.detach().clone().requires_grad_() for p in params]
    optimizer = rmsprop_steps(params)
    rmsprop_steps(expected, foreach=False)
    assert force_native.count == 3
    for a, b in zip(params, expected):
        torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)
    state = optimizer.state[params[1]]
    fits = [params[1]], [params[1].grad], [[state["square_avg"]]], [state["step"]]
    assert _dispatch.split(*fits) == ([0], [])
    shorter = [params[1]], [params[1].grad], [[state["square_avg"][:-1]]], [state["step"]]
    assert _dispatch.split(*shorter) == ([], [0])


def test_autograd_sees_the_in_place_update(force_native):
    """Parameters changed by a kernel bump their version counter, as torch's in-place ops do,
    so backward through a graph that saved them raises instead of using stale values."""
    p = torch.randn(100, requires_grad=True)
    loss = (p * p).sum()
    p.grad = torch.ones_like(p)
    optzoo.RMSprop([p]).step()
    assert force_native.count == 1
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        loss.backward()


def test_tensor_hyper_parameters_take_the_reference_step(force_native):
    """The reference computes with a tensor lr in the tensor's precision; the kernel, taking
    float64 scalars, would not reproduce it, so such a group takes the per-tensor step."""
    params = [torch.randn(64, dtype=torch.float64, requires_grad=True)]
    expected = [params[0].detach().clone().requires_grad_()]
    rmsprop = optzoo.RMSprop(params, lr=torch.tensor(0.01))
    reference = optzoo.RMSprop(expected, lr=torch.tensor(0.01), foreach=False)
    for _ in range(3):
        params[0].grad, expected[0].grad = torch.ones(64, dtype=torch.float64), torch.ones(64, dtype=torch.float64)
        rmsprop.step()
        reference.step()
    assert force_native.count == 0
    torch.testing.assert_close(params[0], expected[0], rtol=0, atol=0)


def ranger(**options):
    return lambda params: optzoo.Ranger(params, lr=0.01, k=3, **options)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_ranger_synchronises_within_the_radam_pass(dtype, force_native):
    """On Ranger's k-th steps RAdam's kernel also moves the slow weights and resets the parameters
    to them, in the same pass: no separate synchronisation, and the reference's numbers."""
    torch.set_num_threads(2)
    start, grads = big_problem(dtype)
    params, optimizer = trajectory(ranger(), start, grads)
    expected, reference = trajectory(ranger(foreach=False), start, grads)
    assert force_native.by_kernel == {"radam": len(grads)}
    for p, q in zip(params, expected):
        assert_close(p.detach(), q.detach())
        for key in ("lookahead_slow", "exp_avg", "exp_avg_sq"):
            assert_close(optimizer.state[p][key], reference.state[q][key])
    assert "lookahead_sync" not in vars(optimizer.optimizer)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_ranger_synchronises_what_the_radam_pass_did_not_take(dtype, force_native):
    """A parameter without a gradient on a k-th step, and one the kernel cannot take (transposed),
    are synchronised by the Lookahead itself, the rest in RAdam's pass: all as the reference."""
    torch.set_num_threads(2)
    start, grads = big_problem(dtype)
    start = [*start, torch.randn(40, 30, dtype=dtype).t(), torch.randn(300, dtype=dtype)]
    grads = [[*step_grads, torch.ones(30, 40, dtype=dtype), None if t % 3 == 2 else torch.ones(300, dtype=dtype)]
             for t, step_grads in enumerate(grads)]
    params, optimizer = trajectory(ranger(), start, grads)
    expected, reference = trajectory(ranger(foreach=False), start, grads)
    assert not params[-2].is_contiguous()
    # The last parameter misses its gradient on every k-th step: the synchronisation kernel takes it.
    assert force_native.by_kernel == {"radam": len(grads), "lookahead": len(grads) // 3}
    for p, q in zip(params, expected):
        assert_close(p.detach(), q.detach())
        assert_close(optimizer.state[p]["lookahead_slow"], reference.state[q]["lookahead_slow"])


def test_a_failed_ranger_step_leaves_no_synchronisation_behind(force_native):
    params = [torch.randn(100, requires_grad=True)]
    ranger = optzoo.Ranger(params, k=1)
    params[0].grad = torch.ones(100)
    ranger.step()  # the slow weights exist from the parameter's first step on

    def failing_closure():
        raise RuntimeError("the batch failed")

    params[0].grad = torch.ones(100)
    with pytest.raises(RuntimeError, match="the batch failed"):
        ranger.step(failing_closure)
    assert "lookahead_sync" not in vars(ranger.optimizer)
    before = ranger.state[params[0]]["lookahead_slow"].clone()
    ranger.step()
    assert not torch.equal(before, ranger.state[params[0]]["lookahead_slow"])


def test_lookahead_groups_synchronise_in_the_radam_pass_with_their_own_k_and_alpha(force_native):
    """Two groups with their own k and alpha (and a plain Lookahead over RAdam, not Ranger): each
    group's k-th steps synchronise inside the RAdam pass with that group's alpha."""
    torch.set_num_threads(2)
    start, grads = big_problem(torch.float64)

    def lookahead(params, **options):
        groups = [
            {"params": params[:2], "lookahead_k": 2, "lookahead_alpha": 0.3},
            {"params": params[2:], "lookahead_k": 3, "lookahead_alpha": 0.8},
        ]
        return optzoo.Lookahead(optzoo.RAdam(groups, lr=0.01, **options))

    ours, optimizer = trajectory(lookahead, start, grads)
    expected, reference = trajectory(lambda p: lookahead(p, foreach=False), start, grads)
    assert force_native.by_kernel == {"radam": 2 * len(grads)}
    for p, q in zip(ours, expected):
        assert_close(p.detach(), q.detach())
        assert_close(optimizer.state[p]["lookahead_slow"], reference.state[q]["lookahead_slow"])
