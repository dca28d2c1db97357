"""Every generic test, run for every row of the capability table (zoo_table.ALL_CASES)."""

from __future__ import annotations

import copy
import re

import pytest
import torch

from harness import TinyProblem, compare_trajectories, expected_calls, run, set_grads, snapshot, ulp, upcast
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
PATH_IDS = [f"{c.name}-{k.id()}-{PATH_NAMES[f]}" for c, k, f in PATHS]


def path_keywords(foreach):
    """The keyword that selects a path: none for the default one, which "native" reaches with
    ``force_native``, as rows without ``foreach`` ("single") do."""
    return {} if foreach in ("single", "native") else {"foreach": foreach}


def kernel_counters(request, foreach):
    """The (fused, native) kernel counters for a test of ``foreach``'s path; the native path
    sends even the harness's small buckets to the native kernels."""
    native = "force_native" if foreach == "native" else "native_calls"
    return request.getfixturevalue("fused_calls"), request.getfixturevalue(native)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize(("case", "check", "foreach"), PATHS, ids=PATH_IDS)
def test_trajectory_matches_oracle(case, check, dtype, foreach, request):
    """Every path (the paper-notation reference, the multi-tensor one, torch's fused kernel
    and optzoo's native kernel where either is the default) follows the oracle at every step,
    and takes the kernels it is meant to at every step (a path that silently fell back to
    another would still follow the oracle)."""
    fused_calls, native_calls = kernel_counters(request, foreach)

    def took_the_expected_kernels(steps):
        fused, native = expected_calls(case, check.hyper, foreach, steps)
        assert fused_calls.by_kernel == fused, f"fused kernels after {steps} steps"
        assert native_calls.by_kernel[case.native] == native, f"native kernel calls after {steps} steps"
        if foreach != "native":
            assert native_calls.count == 0, f"native kernels after {steps} steps"

    compare_trajectories(
        lambda p: case.make(p, **check.hyper, **path_keywords(foreach)),
        lambda p: check.oracle(p, **(check.hyper if check.oracle_hyper is None else check.oracle_hyper)),
        dtype,
        check.steps,
        check.lr_factors,
        took_the_expected_kernels,
    )


# ------------------------------------------------------------------ low precision
LOW_PRECISION_PATHS = [
    (case, foreach)
    for case in ALL_CASES
    for foreach in ([None, False, True] if case.has_foreach else ["single"]) + (["native"] if case.native else [])
]
LOW_PRECISION_STEPS = 4
# Where the first check's setting does not suit. SWATS: at lr=1e-3 most steps are under half a
# bfloat16 ulp (rounded away); at 3e-2 the large tensor also switches to SGD at step 2, in both
# precisions, so both phases are compared.
LOW_PRECISION_HYPER = {"SWATS": dict(lr=0.03)}


def low_precision_hyper(case, dtype):
    hyper = {**first_hyper(case), **LOW_PRECISION_HYPER.get(case.name, {})}
    if dtype == torch.float16 and "eps" in case.make(TinyProblem().params(), **hyper).defaults:
        # eps is added to float16 quantities (1e-8 rounds to 0 there, and 0 / 0 is NaN, in
        # torch.optim too); and 1e-4 keeps it above float16's subnormals, 6e-8, to 1 part in 10^3.
        hyper["eps"] = max(hyper.get("eps", 0.0), 1e-4)
    return hyper


def low_precision_params(dtype):
    """The harness's shapes (a transposed matrix, a vector, a matrix, a scalar) and one large
    enough for torch's vectorised loops (32 bfloat16 lanes with AVX-512) to cover most of it."""
    g = torch.Generator().manual_seed(0)
    shapes = [(4, 5), (4,), (4, 3), (), (12, 25)]
    start = [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for shape in shapes]
    start[0] = start[0].t()
    return [t.clone(memory_format=torch.preserve_format).requires_grad_() for t in start]


def float32_step(case, hyper, optimizer, params, grads, dtype):
    """The parameters after this step computed in float32: the reference step of the same
    optimizer built on the parameters upcast, given the state upcast and the gradients upcast."""
    params32 = [p.detach().float().clone(memory_format=torch.preserve_format).requires_grad_() for p in params]
    reference = case.make(params32, **hyper)
    state = upcast(snapshot(optimizer), dtype)
    for group in state["param_groups"]:
        group["foreach"] = False  # loading takes the groups' options, this one included
    reference.load_state_dict(state)
    set_grads(params32, [g.float() for g in grads])
    reference.step()
    return [p.detach() for p in params32]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize(
    ("case", "foreach"),
    LOW_PRECISION_PATHS,
    ids=[f"{c.name}-{'default' if f is None else PATH_NAMES[f]}" for c, f in LOW_PRECISION_PATHS],
)
def test_low_precision_step_is_the_float32_step_rounded(case, foreach, dtype, request):
    """Half-precision parameters, on every path, take at every step the step float32 arithmetic
    takes from the same parameters, state and gradients, up to the rounding of its intermediates
    to the parameters' precision: within a tenth of how far each element moved, plus 2 ulps.

    Comparing step by step (not whole trajectories) keeps the tolerance that tight: rounding
    errors of earlier steps never accumulate into it. And most elements must move, so a path
    that skips some (or all) of the update fails rather than passes within the tolerance.

    The gradients are 0.5 to 2 in magnitude, of a fixed sign per element: in float16 a gradient
    of 1e-2 would give (1 - beta2) g^2 = 1e-7, within float16's subnormals (from 6e-8), where the
    second moments keep a bit or two and the steps are off by far more than rounding (torch's own
    float16 Adam is); the fixed sign keeps Rprop stepping every element.
    """
    native_calls = request.getfixturevalue("force_native") if foreach == "native" else None
    hyper = low_precision_hyper(case, dtype)
    params = low_precision_params(dtype)
    optimizer = case.make(params, **hyper, **path_keywords(foreach))
    g = torch.Generator().manual_seed(1)
    signs = [torch.randint(0, 2, p.shape, generator=g).double() * 2 - 1 for p in params]
    for step in range(LOW_PRECISION_STEPS):
        grads = [
            torch.empty_like(p).copy_(sign * (0.5 + 1.5 * torch.rand(p.shape, generator=g, dtype=torch.float64)))
            for p, sign in zip(params, signs)
        ]
        expected = float32_step(case, hyper, optimizer, params, grads, dtype)
        start = [p.detach().float() for p in params]
        set_grads(params, grads)
        optimizer.step()
        moved = total = 0
        for i, (p, before, want) in enumerate(zip(params, start, expected)):
            assert p.dtype == dtype and torch.isfinite(p).all(), f"step {step}, parameter {i}"
            got = p.detach().float()
            tolerance = 0.1 * (want - before).abs() + 2 * ulp(want, dtype)
            wrong = (got - want).abs() > tolerance
            assert not wrong.any(), (
                f"step {step}, parameter {i}: {int(wrong.sum())} of {p.numel()} elements off the float32 step, "
                f"e.g. {before[wrong][0].item():.6g} -> {got[wrong][0].item():.6g}, "
                f"float32 {want[wrong][0].item():.6g}"
            )
            moved += int((got != before).sum())
            total += p.numel()
        assert moved >= total // 2, f"step {step}: only {moved} of {total} elements moved"
    if native_calls is not None:
        assert native_calls.count == 0, "the native kernels take float32 and float64 only"


# ------------------------------------------------------------------- resuming
@pytest.mark.parametrize(("case", "check", "foreach"), PATHS, ids=PATH_IDS)
def test_resume_gives_the_uninterrupted_trajectory(case, check, foreach, request):
    """A state dict saved on any path and loaded into a new optimizer continues exactly (bit
    for bit) the trajectory the first one takes on the same gradients, on the same path's kernels."""
    fused_calls, native_calls = kernel_counters(request, foreach)
    problem = TinyProblem(torch.float64)
    total, stop = 30, 11

    def make(p):
        return case.make(p, **check.hyper, **path_keywords(foreach))

    params = problem.params()
    first = make(params)
    later = []  # (gradients, parameters after the step) of the steps after the stop
    for t in range(total):
        if t == stop:
            saved, at_stop = snapshot(first), [p.detach().clone() for p in params]
        grads = problem.gradients(params)
        set_grads(params, grads)
        first.step()
        if t >= stop:
            later.append((grads, [p.detach().clone() for p in params]))

    resumed = problem.params()
    with torch.no_grad():
        for dst, src in zip(resumed, at_stop):
            dst.copy_(src)
    second = make(resumed)
    second.load_state_dict(saved)
    fused_calls.by_kernel.clear()
    native_calls.by_kernel.clear()
    for t, (grads, uninterrupted) in enumerate(later, start=stop):
        set_grads(resumed, grads)
        second.step()
        for i, (a, b) in enumerate(zip(resumed, uninterrupted)):
            torch.testing.assert_close(
                a.detach(), b, rtol=0, atol=0, msg=lambda m, t=t, i=i: f"step {t}, parameter {i}: {m}"
            )
    fused_total, native_total = expected_calls(case, check.hyper, foreach, total)
    fused_stop, native_stop = expected_calls(case, check.hyper, foreach, stop)
    assert fused_calls.by_kernel == fused_total - fused_stop
    assert native_calls.by_kernel[case.native] == native_total - native_stop
    if foreach != "native":
        assert native_calls.count == 0


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
