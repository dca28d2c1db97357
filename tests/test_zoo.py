"""Every generic test, run for every row of the capability table (zoo_table.ALL_CASES)."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from harness import TinyProblem, compare_trajectories, expected_kernel_calls, run, set_grads, snapshot
from zoo_table import ALL_CASES

CHECKS = [(case, check) for case in ALL_CASES for check in case.checks]
CHECK_IDS = [f"{case.name}-{check.id()}" for case, check in CHECKS]


def first_hyper(case):
    return case.checks[0].hyper


def assert_same_state(a, b):
    """Deep equality of two state dicts (tensors compared exactly)."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same_state(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same_state(x, y)
    else:
        assert a == b or (a != a and b != b)


# ------------------------------------------------------------------ correctness
PATHS = [
    (case, check, foreach)
    for case, check in CHECKS
    for foreach in (
        ([False, True] + ([None] if case.fused else []) if case.has_foreach else ["single"])
        + (["native"] if case.native else [])
    )
]
PATH_NAMES = {False: "reference", True: "foreach", None: "fused", "single": "single", "native": "native"}


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(
    ("case", "check", "foreach"), PATHS, ids=[f"{c.name}-{k.id()}-{PATH_NAMES[f]}" for c, k, f in PATHS]
)
def test_trajectory_matches_oracle(case, check, dtype, foreach, request):
    """Every path (the paper-notation reference, the multi-tensor one, torch's fused kernel
    and optzoo's native kernel where either is the default) follows the oracle at every step."""
    extra = {} if foreach in ("single", "native") else {"foreach": foreach}
    native_calls = request.getfixturevalue("force_native") if foreach == "native" else None
    compare_trajectories(
        lambda p: case.make(p, **check.hyper, **extra),
        lambda p: check.oracle(p, **(check.hyper if check.oracle_hyper is None else check.oracle_hyper)),
        dtype,
        check.steps,
        check.lr_factors,
    )
    if native_calls is not None:
        assert native_calls.by_kernel[case.native] == expected_kernel_calls(case, check.hyper, check.steps)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_low_precision_parameters(case, dtype):
    """Half-precision parameters keep their state in the same dtype, as torch.optim does.

    bfloat16 has float32's range, so a few steps track float32 closely. float16 does not:
    a squared gradient of 1e-3 times (1 - beta2) underflows to 0, so adaptive methods take
    eps-sized denominators there exactly as torch.optim does (and eps must be raised above
    float16's smallest subnormal, 6e-8); the float16 run is compared
    with the torch.optim oracle in float16 where there is one.
    """
    hyper = dict(first_hyper(case))
    if dtype == torch.float16 and "eps" in case.make(TinyProblem().params()).defaults:
        hyper["eps"] = 1e-4  # 1e-8 rounds to 0 in float16, and 0 / 0 is NaN (in torch.optim too)
    check = case.checks[0]
    paths = [{"foreach": False}, {"foreach": True}] if case.has_foreach else [{}]
    if dtype == torch.bfloat16:
        make_expected, expected_problem = (lambda p: case.make(p, **hyper)), TinyProblem(torch.float32)
    elif check.oracle.__module__.startswith("torch.optim") and check.oracle_hyper is None:
        make_expected, expected_problem = (lambda p: check.oracle(p, **hyper)), TinyProblem(dtype)
    else:
        make_expected = None
    for extra in paths:
        low, _ = run(lambda p, extra=extra: case.make(p, **hyper, **extra), 5, TinyProblem(dtype))
        assert all(p.dtype == dtype and torch.isfinite(p).all() for p in low)
        if make_expected is not None:
            expected, _ = run(make_expected, 5, expected_problem)
            for a, b in zip(low, expected):
                torch.testing.assert_close(a.detach().float(), b.detach().float(), rtol=0.05, atol=0.05)


# ------------------------------------------------------------------- resuming
@pytest.mark.parametrize(("case", "check"), CHECKS, ids=CHECK_IDS)
def test_resume_gives_the_uninterrupted_trajectory(case, check):
    problem = TinyProblem(torch.float64)
    total, stop = 30, 11
    uninterrupted, _ = run(lambda p: case.make(p, **check.hyper), total, problem)

    params, first = run(lambda p: case.make(p, **check.hyper), stop, problem)
    saved = snapshot(first)
    resumed_params = problem.params()
    with torch.no_grad():
        for dst, src in zip(resumed_params, params):
            dst.copy_(src)
    second = case.make(resumed_params, **check.hyper)
    second.load_state_dict(copy.deepcopy(saved))
    for _ in range(total - stop):
        set_grads(resumed_params, problem.gradients(resumed_params))
        second.step()
    for a, b in zip(resumed_params, uninterrupted):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_foreign_or_mismatched_state_dict_is_refused_untouched(case):
    import optzoo

    hyper = first_hyper(case)
    _, optimizer = run(lambda p: case.make(p, **hyper), 3)
    before = snapshot(optimizer)

    other_class = optzoo.Adagrad if case.name != "Adagrad" else optzoo.RMSprop
    _, other = run(lambda p: other_class(p), 2)
    with pytest.raises(ValueError, match="load_state_dict"):
        optimizer.load_state_dict(other.state_dict())
    assert_same_state(snapshot(optimizer), before)

    extra_group = copy.deepcopy(before)
    extra_group["param_groups"].append({**extra_group["param_groups"][0], "params": [1000]})
    with pytest.raises(ValueError):
        optimizer.load_state_dict(extra_group)
    assert_same_state(snapshot(optimizer), before)

    short_group = copy.deepcopy(before)
    short_group["param_groups"][0]["params"] = short_group["param_groups"][0]["params"][:-1]
    with pytest.raises(ValueError):
        optimizer.load_state_dict(short_group)
    assert_same_state(snapshot(optimizer), before)


# ------------------------------------------------------------------ bad input
BAD = [(case, bad) for case in ALL_CASES for bad in case.bad_inputs]


@pytest.mark.parametrize(("case", "bad"), BAD, ids=[f"{c.name}-{b[1]}={next(iter(b[0].values()))!r}" for c, b in BAD])
def test_bad_hyper_parameter_names_itself(case, bad):
    hyper, name = bad
    with pytest.raises((ValueError, TypeError), match=re.escape(name)):
        case.make(TinyProblem().params(), **hyper)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_bad_lr_set_later_is_refused_before_any_update(case):
    problem = TinyProblem()
    params = problem.params()
    optimizer = case.make([{"params": params[:2]}, {"params": params[2:]}], **first_hyper(case))
    set_grads(params, problem.gradients(params))
    before = [p.detach().clone() for p in params]
    optimizer.param_groups[-1]["lr"] = -1.0
    with pytest.raises(ValueError, match="lr"):
        optimizer.step()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)


@pytest.mark.parametrize("case", [c for c in ALL_CASES if not c.sparse], ids=str)
def test_sparse_gradient_is_a_clear_error(case):
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    optimizer = case.make(embedding.parameters(), **first_hyper(case))
    embedding(torch.tensor([1, 2])).sum().backward()
    before = embedding.weight.detach().clone()
    with pytest.raises(RuntimeError, match="sparse"):
        optimizer.step()
    assert torch.equal(embedding.weight.detach(), before)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_nan_gradient_propagates_without_crashing(case):
    """A NaN gradient is not an error (as in torch.optim): it reaches the parameter it belongs to,
    and only that one. Detecting divergence is the training loop's job."""
    problem = TinyProblem()
    params = problem.params()
    optimizer = case.make(params, **first_hyper(case))
    for step in range(3):
        grads = problem.gradients(params)
        if step == 2:
            grads[1] = grads[1].clone()
            grads[1][0] = float("nan")
        set_grads(params, grads)
        optimizer.step()
    assert torch.isnan(params[1]).any()
    for i in (0, 2, 3):
        assert torch.isfinite(params[i]).all()


# ------------------------------------------------------------- the ecosystem
@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_param_groups_and_frozen_parameters(case):
    """Two groups with their own lr act like two optimizers; a parameter without grad is untouched."""
    problem = TinyProblem()
    hyper = {k: v for k, v in first_hyper(case).items() if k != "lr"}
    lrs = (0.01, 0.003)

    grouped = problem.params()
    frozen = torch.ones(3, requires_grad=True)
    optimizer = case.make(
        [{"params": grouped[:2], "lr": lrs[0]}, {"params": [*grouped[2:], frozen], "lr": lrs[1]}], **hyper
    )
    apart = problem.params()
    first = case.make(apart[:2], lr=lrs[0], **hyper)
    second = case.make(apart[2:], lr=lrs[1], **hyper)
    for _ in range(10):
        set_grads(grouped, problem.gradients(grouped))
        set_grads(apart, problem.gradients(apart))
        optimizer.step()
        first.step()
        second.step()
    for a, b in zip(grouped, apart):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-12, atol=1e-12)
    assert torch.equal(frozen.detach(), torch.ones(3))
    assert frozen.grad is None


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_torch_schedulers_drive_it(case):
    problem = TinyProblem()
    params = problem.params()
    optimizer = case.make(params, **first_hyper(case))
    step_lr = torch.optim.lr_scheduler.StepLR(optimizer, step_size=4, gamma=0.5)
    start = optimizer.param_groups[0]["lr"]
    for _ in range(10):
        set_grads(params, problem.gradients(params))
        optimizer.step()
        step_lr.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(start * 0.25)

    params = problem.params()
    optimizer = case.make(params, **first_hyper(case))
    cycle_momentum = "betas" in optimizer.defaults or optimizer.defaults.get("momentum", 0) > 0
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=0.02, total_steps=20, cycle_momentum=cycle_momentum
    )
    seen = []
    for _ in range(19):
        set_grads(params, problem.gradients(params))
        optimizer.step()
        one_cycle.step()
        seen.append(optimizer.param_groups[0]["lr"])
    assert max(seen) == pytest.approx(0.02, rel=0.05) and seen[-1] < 1e-4
    assert all(torch.isfinite(p).all() for p in params)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_grad_scaler_step_equals_unscaled_step(case):
    """GradScaler multiplies the loss by a power of two and unscales before the step,
    so the trajectory is the unscaled one exactly; an inf gradient makes it skip the step."""
    problem = TinyProblem(torch.float32)
    plain, _ = run(lambda p: case.make(p, **first_hyper(case)), 8, problem)

    params = problem.params()
    optimizer = case.make(params, **first_hyper(case))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=1000)
    for _ in range(8):
        for p in params:
            p.grad = None
        scaler.scale(problem.loss(params)).backward()
        scaler.step(optimizer)
        scaler.update()
    for a, b in zip(params, plain):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=1e-5, atol=1e-6)

    before = [p.detach().clone() for p in params]
    for p in params:
        p.grad = None
    scaler.scale(problem.loss(params) * float("inf")).backward()
    scaler.step(optimizer)
    scaler.update()
    for p, b in zip(params, before):
        assert torch.equal(p.detach(), b)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_step_returns_the_closure_loss(case):
    problem = TinyProblem()
    params = problem.params()
    optimizer = case.make(params, **first_hyper(case))

    def closure():
        optimizer.zero_grad()
        loss = problem.loss(params)
        loss.backward()
        return loss

    first = optimizer.step(closure)
    second = optimizer.step(closure)
    assert isinstance(first, torch.Tensor) and second.item() != first.item()
    optimizer.zero_grad()
    assert all(p.grad is None for p in params)


# ---------------------------------------------------------- convergence sanity
@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    x = torch.tensor(x, dtype=torch.float32)
    x = (x - x.mean(0)) / (x.std(0) + 1e-6)
    return x, torch.tensor(y)


@pytest.mark.parametrize("case", ALL_CASES, ids=str)
def test_defaults_train_logistic_regression_on_digits(case, digits):
    x, y = digits
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10)
    optimizer = case.make(model.parameters())
    loss_fn = torch.nn.CrossEntropyLoss()
    start = loss_fn(model(x), y).item()
    for _ in range(200):
        optimizer.zero_grad()
        loss = loss_fn(model(x), y)
        loss.backward()
        optimizer.step()
    final = loss_fn(model(x), y).item()
    assert final < (1 - case.convergence_drop) * start, f"{case.name}: {start:.3f} -> {final:.3f}"
