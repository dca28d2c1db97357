"""A state dict is checked against the algorithm's declared state before anything is loaded.

Before this check, a wrong-sized state tensor was accepted and then handed to a fused kernel
(a segfault or a write past the tensor's end), a missing entry was accepted and raised KeyError
at the next step, and ``{"foo": 1}`` raised KeyError. Each refusal here must be a ValueError
naming the parameter and the entry, and must leave the optimizer exactly as it was.
"""

from __future__ import annotations

import copy

import pytest
import torch

import optzoo
from harness import TinyProblem, run
from optzoo.optim._core import ZooOptimizer
from test_zoo import assert_same_state
from zoo_table import ALL_CASES

ZOO_CASES = [case for case in ALL_CASES if isinstance(case.make(TinyProblem().params()), ZooOptimizer)]


def trained(case, steps=3, **extra):
    """An optimizer of the case after a few steps, and its parameters: with the first checked
    setting that keeps state tensors (plain SGD keeps none)."""
    for check in case.checks:
        params, optimizer = run(lambda p, check=check: case.make(p, **check.hyper, **extra), steps)
        if any(torch.is_tensor(v) and v.dim() > 0 for s in optimizer.state.values() for v in s.values()):
            break
    return params, optimizer


def assert_refused_untouched(optimizer, params, state_dict, *fragments):
    """Loading ``state_dict`` raises one ValueError line containing every fragment, and changes nothing."""
    before = copy.deepcopy(optimizer.state_dict())
    values = [p.detach().clone() for p in params]
    with pytest.raises(ValueError) as error:
        optimizer.load_state_dict(state_dict)
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
    assert_same_state(optimizer.state_dict(), before)
    for p, v in zip(params, values):
        assert torch.equal(p.detach(), v)


def tensor_entries(saved):
    return [(pid, key) for pid, state in saved["state"].items() for key, v in state.items() if torch.is_tensor(v)]


@pytest.mark.parametrize("case", ZOO_CASES, ids=str)
def test_wrong_shaped_state_is_refused(case):
    params, optimizer = trained(case)
    saved = copy.deepcopy(optimizer.state_dict())
    entries = [(pid, key) for pid, key in tensor_entries(saved) if key != "step"]
    assert entries, "the case keeps no state tensors"
    for pid, key in entries:
        bad = copy.deepcopy(saved)
        bad["state"][pid][key] = torch.zeros(bad["state"][pid][key].numel() + 7, dtype=torch.float64)
        assert_refused_untouched(optimizer, params, bad, f"'{key}'", f"id {pid}", "shape")


@pytest.mark.parametrize("case", ZOO_CASES, ids=str)
def test_missing_state_entry_is_refused(case):
    params, optimizer = trained(case)
    saved = copy.deepcopy(optimizer.state_dict())
    # Buffers made by the first update (SGD's b_1 = g_1) may be absent: that is a state before it.
    lazy = {entry.name for entry in optimizer.state_schema.entries if entry.lazy}
    entries = [(pid, key) for pid, state in saved["state"].items() for key in state if key not in lazy]
    assert entries or all(key in lazy for state in saved["state"].values() for key in state)
    for pid, key in entries:
        bad = copy.deepcopy(saved)
        del bad["state"][pid][key]
        assert_refused_untouched(optimizer, params, bad, f"'{key}'", f"id {pid}", "lacks")


@pytest.mark.parametrize("case", ZOO_CASES, ids=str)
def test_non_float_or_dataless_state_tensors_are_refused(case):
    params, optimizer = trained(case)
    saved = copy.deepcopy(optimizer.state_dict())
    pid, key = next((pid, key) for pid, key in tensor_entries(saved) if key != "step")
    shape = saved["state"][pid][key].shape
    for bad_tensor in (torch.zeros(shape, dtype=torch.int64), torch.zeros(shape, device="meta")):
        bad = copy.deepcopy(saved)
        bad["state"][pid][key] = bad_tensor
        assert_refused_untouched(optimizer, params, bad, f"'{key}'")


@pytest.mark.parametrize(
    "bad_step", ["3", -1.0, float("nan"), torch.zeros(2), torch.tensor(1 + 1j)], ids=["str", "neg", "nan", "2el", "cx"]
)
def test_malformed_step_is_refused(bad_step):
    params, optimizer = trained(next(c for c in ZOO_CASES if c.name == "Adam"))
    bad = copy.deepcopy(optimizer.state_dict())
    bad["state"][0]["step"] = bad_step
    assert_refused_untouched(optimizer, params, bad, "'step'")


@pytest.mark.parametrize(
    "bad",
    [{"foo": 1}, {"state": {}}, [], {"state": [], "param_groups": []}, {"state": {}, "param_groups": [{"lr": 1}]}],
    ids=["foo", "no-groups", "list", "state-list", "group-without-params"],
)
def test_malformed_state_dict_is_a_value_error(bad):
    params, optimizer = trained(ZOO_CASES[0])
    assert_refused_untouched(optimizer, params, bad)


def test_state_for_an_unknown_parameter_is_refused():
    params, optimizer = trained(next(c for c in ZOO_CASES if c.name == "Adam"))
    bad = copy.deepcopy(optimizer.state_dict())
    bad["state"][99] = copy.deepcopy(bad["state"][0])
    assert_refused_untouched(optimizer, params, bad, "99")


def test_a_numeric_step_loads_and_continues_as_a_tensor_step():
    """Older torch formats stored ``step`` as a number: it loads, and the run continues as with a tensor."""
    problem = TinyProblem(torch.float64)
    params, optimizer = run(lambda p: optzoo.Adam(p, lr=0.01), 4, problem)
    saved = copy.deepcopy(optimizer.state_dict())
    numeric = copy.deepcopy(saved)
    for state in numeric["state"].values():
        state["step"] = int(state["step"].item())
    results = []
    for state_dict in (saved, numeric):
        resumed = [p.detach().clone().requires_grad_() for p in params]
        opt = optzoo.Adam(resumed, lr=0.01)
        opt.load_state_dict(copy.deepcopy(state_dict))
        assert all(s["step"].dtype == torch.float32 for s in opt.state.values())
        for _ in range(3):
            for p, g in zip(resumed, problem.gradients(resumed)):
                p.grad = g
            opt.step()
        results.append(resumed)
    for a, b in zip(*results):
        assert torch.equal(a, b)


def test_amsgrad_turned_on_after_a_resume_starts_its_maximum():
    """A state saved without amsgrad, resumed with amsgrad turned on: the maximum starts at zero
    (as on a fresh start) on every path, instead of a KeyError at the next step."""
    problem = TinyProblem(torch.float64)
    params, optimizer = run(lambda p: optzoo.Adam(p, lr=0.01), 3, problem)
    saved = optimizer.state_dict()
    results = []
    for foreach in (None, False, True):
        resumed = [p.detach().clone().requires_grad_() for p in params]
        opt = optzoo.Adam(resumed, lr=0.01, foreach=foreach)
        opt.load_state_dict(copy.deepcopy(saved))
        opt.param_groups[0]["amsgrad"] = True
        for _ in range(3):
            for p, g in zip(resumed, problem.gradients(resumed)):
                p.grad = g
            opt.step()
        assert all("max_exp_avg_sq" in s for s in opt.state.values())
        results.append(resumed)
    for other in results[1:]:
        for a, b in zip(results[0], other):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_saved_amsgrad_state_without_its_maximum_is_refused():
    params, optimizer = trained(next(c for c in ZOO_CASES if c.name == "Adam"), amsgrad=True)
    bad = copy.deepcopy(optimizer.state_dict())
    del bad["state"][1]["max_exp_avg_sq"]
    assert_refused_untouched(optimizer, params, bad, "'max_exp_avg_sq'", "id 1")


@pytest.mark.parametrize(
    "make",
    [
        lambda p: optzoo.SGD(p, lr=0.1, momentum=0.9),
        lambda p: optzoo.Adagrad(p, lr=0.1),
        lambda p: optzoo.Adam(p, lr=0.1),
        lambda p: optzoo.RMSprop(p, lr=0.01),
    ],
    ids=["sgd-momentum", "adagrad", "adam", "rmsprop"],
)
def test_a_state_tensor_resized_in_place_never_reaches_a_fast_kernel(make, monkeypatch):
    """State changed behind the optimizer's back (not through load_state_dict): the fast kernels
    must not be handed it; the step fails with torch's own shape error instead of writing
    past a tensor's end."""
    from optzoo.optim import _native

    monkeypatch.setattr(_native, "MIN_NUMEL", 0)
    p = torch.nn.Parameter(torch.randn(4096))
    optimizer = make([p])
    p.grad = torch.randn(4096)
    optimizer.step()
    state = optimizer.state[p]
    key = next(k for k, v in state.items() if torch.is_tensor(v) and v.shape == p.shape)
    state[key] = torch.zeros(16)
    with pytest.raises(RuntimeError):
        optimizer.step()


def test_a_state_dict_loads_again_after_a_load():
    """torch adds its generic flags (``differentiable``) to ``defaults`` on a load; a state dict saved
    before that must still load, also into an optimizer that has loaded one already."""
    _params, optimizer = trained(next(c for c in ZOO_CASES if c.name == "Adam"))
    saved = copy.deepcopy(optimizer.state_dict())
    optimizer.load_state_dict(copy.deepcopy(saved))
    optimizer.load_state_dict(copy.deepcopy(saved))
    assert_same_state(optimizer.state_dict()["state"], saved["state"])


def test_a_group_saved_without_the_generic_flags_takes_their_defaults():
    """Older torch versions saved groups without ``foreach``/``maximize``: they load with the defaults."""
    params, optimizer = trained(next(c for c in ZOO_CASES if c.name == "Adam"))
    saved = copy.deepcopy(optimizer.state_dict())
    for group in saved["param_groups"]:
        del group["foreach"], group["maximize"]
    optimizer.load_state_dict(saved)
    assert optimizer.param_groups[0]["foreach"] is None and optimizer.param_groups[0]["maximize"] is False
    for p in params:
        p.grad = torch.ones_like(p)
    optimizer.step()


@pytest.mark.parametrize(
    ("make", "kernel"),
    [
        (lambda p: optzoo.Adam(p, lr=0.1), "_fused_adam_"),
        (lambda p: optzoo.AdamW(p, lr=0.1), "_fused_adamw_"),
        (lambda p: optzoo.Adagrad(p, lr=0.1), "_fused_adagrad_"),
        (lambda p: optzoo.SGD(p, lr=0.1, momentum=0.9), "_fused_sgd_"),
    ],
    ids=["adam", "adamw", "adagrad", "sgd-momentum"],
)
@pytest.mark.parametrize("first", [True, False], ids=["first-step", "later-step"])
def test_a_fused_kernel_that_raises_leaves_nothing_half_applied(make, kernel, first, monkeypatch):
    """Step counters are advanced before a fused kernel runs (torch's kernels read them): if the kernel
    raises, the counters go back and a momentum buffer made for it is dropped, so the next step is
    exactly the step that failed."""
    p = torch.nn.Parameter(torch.randn(64, 3))
    optimizer = make([p])
    if not first:
        p.grad = torch.randn(64, 3)
        optimizer.step()
    before = copy.deepcopy(optimizer.state_dict())
    value = p.detach().clone()
    real = getattr(torch, kernel)

    def failing(*args, **kwargs):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(torch, kernel, failing)
    p.grad = torch.randn(64, 3)
    with pytest.raises(RuntimeError, match="kernel failed"):
        optimizer.step()
    assert torch.equal(p.detach(), value)
    if first:  # the state may have been started (as torch starts it before its kernel), but not stepped
        state = optimizer.state[p]
        assert "momentum_buffer" not in state
        assert all(float(v) == 0 for k, v in state.items() if k == "step")
    else:
        assert_same_state(optimizer.state_dict(), before)
    monkeypatch.setattr(torch, kernel, real)
    optimizer.step()  # the retried step is the one that failed: compare with a run that never failed
    again = make([torch.nn.Parameter(value.clone())])
    again.load_state_dict(before)
    again.param_groups[0]["params"][0].grad = p.grad.clone()
    again.step()
    assert torch.equal(p.detach(), again.param_groups[0]["params"][0].detach())
