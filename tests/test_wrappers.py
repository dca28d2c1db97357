"""What the capability table cannot say about the wrappers: Lookahead around any optimizer (its
param_groups, state, defaults, add_param_group, schedulers, GradScaler, state dicts through
ZeroRedundancyOptimizer and torch.distributed.checkpoint), Ranger's surface, SWATS's per-tensor
switch and AdaBound's bounds."""

from __future__ import annotations

import copy
import functools

import pytest
import torch

import optzoo
from cases_wrappers import paper_ranger
from harness import TOLERANCE, TinyProblem, compare_trajectories, run, set_grads, snapshot
from paper_wrappers import KeskarSWATS, ZhangLookahead

SLOW = "lookahead_slow"


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
        for x, y in zip(a, b, strict=True):
            assert_same_state(x, y)
    else:
        assert a == b


# ------------------------------------------------------------------- wrapping
INNERS = {
    "torch.optim.SGD": functools.partial(torch.optim.SGD, lr=0.05, momentum=0.9),
    "torch.optim.Adam": functools.partial(torch.optim.Adam, lr=0.01),
    "torch.optim.RMSprop": functools.partial(torch.optim.RMSprop, lr=0.01, momentum=0.5),
    "optzoo.Adam": functools.partial(optzoo.Adam, lr=0.01),
    "optzoo.SGD": functools.partial(optzoo.SGD, lr=0.05, momentum=0.9, nesterov=True),
}


@pytest.mark.parametrize("inner", INNERS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_wraps_torch_and_optzoo_optimizers(inner, dtype):
    """Around any optimizer, Lookahead follows Algorithm 1 over that same optimizer."""
    make_inner = INNERS[inner]
    for k, alpha in ((1, 0.5), (3, 0.8), (5, 1.0)):
        compare_trajectories(
            lambda p, k=k, alpha=alpha: optzoo.Lookahead(make_inner(p), k=k, alpha=alpha),
            lambda p, k=k, alpha=alpha: ZhangLookahead(p, make_inner, k, alpha),
            dtype,
            40,
        )


def test_alpha_one_is_the_inner_optimizer_exactly():
    problem = TinyProblem()
    inner_only, _ = run(lambda p: optzoo.Adam(p, lr=0.01), 12, problem)
    wrapped, _ = run(lambda p: optzoo.Lookahead(optzoo.Adam(p, lr=0.01), k=4, alpha=1.0), 12, problem)
    for a, b in zip(wrapped, inner_only, strict=True):
        assert torch.equal(a, b)


def test_surface_is_the_inner_optimizers():
    problem = TinyProblem()
    params = problem.params()
    inner = torch.optim.Adam(params, lr=0.01, betas=(0.8, 0.99))
    lookahead = optzoo.Lookahead(inner, k=3, alpha=0.5)
    assert isinstance(lookahead, torch.optim.Optimizer)
    assert lookahead.param_groups is inner.param_groups
    assert lookahead.defaults["betas"] == (0.8, 0.99) and lookahead.defaults["lr"] == 0.01
    assert lookahead.defaults["lookahead_k"] == 3 and lookahead.defaults["lookahead_alpha"] == 0.5
    group = lookahead.param_groups[0]
    assert (group["lookahead_k"], group["lookahead_alpha"], group["lookahead_step"]) == (3, 0.5, 0)

    # Before the first step the state is empty, as a fresh torch optimizer's is.
    assert not lookahead.state and len(lookahead.state) == 0
    # This once asserted phi_0 = the parameters when the Lookahead was built, and never changed them in
    # between, which hid that weights loaded after building were ignored. phi_0 is the weights at the first
    # step (DESIGN.md): change them in between.
    with torch.no_grad():
        for p in params:
            p.mul_(2.0)
    set_grads(params, problem.gradients(params))
    lookahead.step()
    assert len(lookahead.state) == len(params)
    for p, initial in zip(params, problem.initial, strict=True):
        entry = lookahead.state[p]
        assert set(entry) == {"step", "exp_avg", "exp_avg_sq", SLOW}
        assert entry["exp_avg"] is inner.state[p]["exp_avg"]
        assert torch.equal(entry[SLOW], 2.0 * initial)  # phi_0: the parameters at the first step
    assert SLOW not in inner.state[params[0]]  # the inner optimizer's own state is its own
    # A whole entry written (as ZeroRedundancyOptimizer.load_state_dict does) replaces the slow weights too;
    # one without them is from before the parameter's first step.
    lookahead.state[params[0]] = {key: value for key, value in lookahead.state[params[0]].items() if key != SLOW}
    assert SLOW not in lookahead.state[params[0]] and "exp_avg" in lookahead.state[params[0]]

    # zero_grad reaches the parameters; param_groups stay shared after load_state_dict
    lookahead.zero_grad()
    assert all(p.grad is None for p in params)
    lookahead.load_state_dict(lookahead.state_dict())
    assert lookahead.param_groups is inner.param_groups
    assert "Lookahead" in repr(lookahead) and "Adam" in repr(lookahead)


def test_refuses_what_it_cannot_wrap():
    params = TinyProblem().params()
    with pytest.raises(TypeError, match="optimizer"):
        optzoo.Lookahead(params)
    with pytest.raises(TypeError, match="Lookahead"):
        optzoo.Lookahead(optzoo.Lookahead(optzoo.Adam(params)))


def test_add_param_group_gives_slow_weights_and_its_own_counter():
    problem = TinyProblem()
    params = problem.params()
    lookahead = optzoo.Lookahead(optzoo.Adam(params[:2], lr=0.01), k=2, alpha=0.5)
    with pytest.raises(ValueError, match="lookahead_k"):
        lookahead.add_param_group({"params": params[2:], "lookahead_k": 0})
    with pytest.raises(ValueError, match="lr"):
        lookahead.add_param_group({"params": params[2:], "lr": -1.0})
    assert len(lookahead.param_groups) == 1

    for _ in range(3):
        set_grads(params, problem.gradients(params))
        lookahead.step()
    lookahead.add_param_group({"params": params[2:], "lr": 0.02, "lookahead_k": 3})
    group = lookahead.param_groups[-1]
    assert group is lookahead.optimizer.param_groups[-1]
    assert (group["lr"], group["lookahead_k"], group["lookahead_alpha"], group["lookahead_step"]) == (0.02, 3, 0.5, 0)
    assert all(SLOW not in lookahead.state[p] for p in params[2:])
    # Weights set between adding the group and its first step are its phi_0.
    with torch.no_grad():
        for p in params[2:]:
            p.add_(1.0)
    added_at = [p.detach().clone() for p in params[2:]]

    # The new group runs Algorithm 1 from its first step: compare it with a Lookahead of its own.
    alone_params = [t.detach().clone().requires_grad_() for t in added_at]
    alone = optzoo.Lookahead(optzoo.Adam(alone_params, lr=0.02), k=3, alpha=0.5)
    set_grads(params, problem.gradients(params))
    lookahead.step()
    for p, at in zip(params[2:], added_at, strict=True):
        assert torch.equal(lookahead.state[p][SLOW], at)
    set_grads(alone_params, [p.grad for p in params[2:]])
    alone.step()
    for _ in range(6):
        grads = problem.gradients(params)
        set_grads(params, grads)
        set_grads(alone_params, grads[2:])
        lookahead.step()
        alone.step()
    for a, b in zip(params[2:], alone_params, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert lookahead.param_groups[0]["lookahead_step"] == 10 and group["lookahead_step"] == 7


def test_step_lr_and_grad_scaler_drive_it():
    problem = TinyProblem(torch.float32)
    params = problem.params()
    inner = torch.optim.SGD(params, lr=0.1, momentum=0.9)
    lookahead = optzoo.Lookahead(inner, k=3)
    scheduler = torch.optim.lr_scheduler.StepLR(lookahead, step_size=2, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**8)
    for _ in range(4):
        lookahead.zero_grad()
        scaler.scale(problem.loss(params)).backward()
        scaler.step(lookahead)
        scaler.update()
        scheduler.step()
    assert inner.param_groups[0]["lr"] == pytest.approx(0.025)
    assert lookahead.param_groups[0]["lookahead_step"] == 4

    # A skipped step (inf gradient) is not counted: no synchronisation happens for it.
    before = [p.detach().clone() for p in params]
    lookahead.zero_grad()
    scaler.scale(problem.loss(params) * float("inf")).backward()
    scaler.step(lookahead)
    scaler.update()
    assert lookahead.param_groups[0]["lookahead_step"] == 4
    assert all(torch.equal(p, b) for p, b in zip(params, before, strict=True))


def test_state_dict_carries_slow_weights_and_counters():
    problem = TinyProblem()
    params = problem.params()
    lookahead = optzoo.Lookahead(optzoo.Adam(params, lr=0.01), k=3, alpha=0.5)
    oracle_params = problem.params()
    oracle = ZhangLookahead(oracle_params, torch.optim.Adam, 3, 0.5, lr=0.01)
    for _ in range(7):
        grads = problem.gradients(params)
        set_grads(params, grads)
        set_grads(oracle_params, grads)
        lookahead.step()
        oracle.step()
    saved = lookahead.state_dict()
    assert saved["param_groups"][0]["lookahead_step"] == 7
    assert saved["param_groups"][0]["lookahead_k"] == 3
    for index, phi in enumerate(oracle.phi):
        assert set(saved["state"][index]) == {"step", "exp_avg", "exp_avg_sq", SLOW}
        torch.testing.assert_close(saved["state"][index][SLOW], phi, rtol=1e-12, atol=1e-12)

    # The inner optimizer's state dict alone (its state, no slow weights at all), or one with broken slow
    # weights, is refused untouched.
    before = snapshot(lookahead)
    bad = [lookahead.optimizer.state_dict()]
    wrong_shape = copy.deepcopy(before)
    wrong_shape["state"][0][SLOW] = torch.zeros(3)
    bad.append(wrong_shape)
    bad_k = copy.deepcopy(before)
    bad_k["param_groups"][0]["lookahead_k"] = 0
    bad.append(bad_k)
    bad_inner = copy.deepcopy(before)
    bad_inner["param_groups"][0]["betas"] = (2.0, 0.999)
    bad.append(bad_inner)
    for state_dict in bad:
        with pytest.raises(ValueError, match="load_state_dict"):
            lookahead.load_state_dict(state_dict)
        assert_same_state(snapshot(lookahead), before)

    # A parameter without slow weights in a state dict has not taken part yet (no gradient so far, or a state
    # dict from before the first step): loaded, it takes its phi_0 at its next step.
    missing = copy.deepcopy(before)
    del missing["state"][1][SLOW]
    other_params = [p.detach().clone().requires_grad_() for p in params]
    other = optzoo.Lookahead(optzoo.Adam(other_params, lr=0.01), k=3)
    other.load_state_dict(missing)
    assert SLOW not in other.state[other_params[1]] and SLOW in other.state[other_params[0]]
    set_grads(other_params, problem.gradients(other_params))
    other.step()
    assert torch.equal(other.state[other_params[1]][SLOW], params[1].detach())  # its value at that step
    fresh = optzoo.Lookahead(optzoo.Adam(problem.params(), lr=0.01), k=3)
    fresh_state = fresh.state_dict()
    assert fresh_state["state"] == {} and fresh_state["param_groups"][0]["lookahead_step"] == 0
    lookahead.load_state_dict(fresh_state)
    assert not lookahead.state
    set_grads(params, problem.gradients(params))
    current = [p.detach().clone() for p in params]
    lookahead.step()
    assert all(torch.equal(lookahead.state[p][SLOW], c) for p, c in zip(params, current, strict=True))


def test_deepcopy_and_pickle_keep_it_working():
    import pickle

    problem = TinyProblem()
    for duplicate in (copy.deepcopy, lambda obj: pickle.loads(pickle.dumps(obj))):
        params, lookahead = run(lambda p: optzoo.Ranger(p, lr=0.01, k=3), 4, problem)
        clone = duplicate(lookahead)
        clone_params = clone.param_groups[0]["params"]
        assert clone.param_groups is clone.optimizer.param_groups
        assert torch.equal(clone.state[clone_params[0]][SLOW], lookahead.state[params[0]][SLOW])
        for _ in range(3):
            set_grads(params, problem.gradients(params))
            set_grads(clone_params, problem.gradients(params))
            lookahead.step()
            clone.step()
        for a, b in zip(params, clone_params, strict=True):
            torch.testing.assert_close(a, b, rtol=0, atol=0)


# ------------------------------------------------------- phi_0: the weights when training starts
# Algorithm 1's phi_0 is the weights training starts from. Weights loaded after the wrapper is built (a
# pretrained checkpoint, DDP broadcasting rank 0's weights into an optimizer's parameters) must be phi_0:
# slow weights copied at construction would pull the first synchronisation half-way back to stale weights.
def _ranger(params, k, alpha):
    return optzoo.Ranger(params, lr=0.01, k=k, alpha=alpha)


# name -> (ours(params, k, alpha), Algorithm 1 over the same inner optimizer(params, k, alpha), forced native)
LATE_LOADED = {
    "Lookahead(torch.optim.SGD)": (
        lambda p, k, alpha: optzoo.Lookahead(torch.optim.SGD(p, lr=0.05, momentum=0.9), k=k, alpha=alpha),
        functools.partial(ZhangLookahead, inner=torch.optim.SGD, lr=0.05, momentum=0.9),
        False,
    ),
    "Lookahead(optzoo.Adam)": (
        lambda p, k, alpha: optzoo.Lookahead(optzoo.Adam(p, lr=0.01), k=k, alpha=alpha),
        functools.partial(ZhangLookahead, inner=torch.optim.Adam, lr=0.01),
        False,
    ),
    "Lookahead(optzoo.RAdam)-native": (  # the k-th steps synchronise inside RAdam's kernel
        lambda p, k, alpha: optzoo.Lookahead(optzoo.RAdam(p, lr=0.01), k=k, alpha=alpha),
        functools.partial(ZhangLookahead, inner=torch.optim.RAdam, lr=0.01),
        True,
    ),
    "Ranger": (_ranger, functools.partial(paper_ranger, lr=0.01), False),
    "Ranger-native": (_ranger, functools.partial(paper_ranger, lr=0.01), True),
}


def _native_calls(native, request):
    """The kernel-call counter of ``force_native`` when the setting forces the native path, else None."""
    return request.getfixturevalue("force_native") if native else None


def _load(params, weights):
    with torch.no_grad():
        for p, w in zip(params, weights, strict=True):
            p.copy_(w)


@pytest.mark.parametrize("how", ["model.load_state_dict", "copy_"])
@pytest.mark.parametrize("name", LATE_LOADED, ids=str)
def test_weights_loaded_after_building_are_phi_0(name, how, request):
    """With zero gradients nothing moves: the weights loaded after the wrapper was built stay, also through
    the synchronisations (phi_0 from construction would take 3.0 to 1.5 at the 5th step)."""
    make, _, native = LATE_LOADED[name]
    calls = _native_calls(native, request)
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    optimizer = make(list(model.parameters()), k=5, alpha=0.5)
    if how == "model.load_state_dict":
        model.load_state_dict({key: torch.full_like(t, 3.0) for key, t in model.state_dict().items()})
    else:
        _load(model.parameters(), [torch.full_like(p, 3.0) for p in model.parameters()])
    for step in range(1, 11):
        for p in model.parameters():
            p.grad = torch.zeros_like(p)
        optimizer.step()
        for p in model.parameters():
            assert torch.equal(p.detach(), torch.full_like(p, 3.0)), f"step {step}: {p.detach()}"
            assert torch.equal(optimizer.state[p][SLOW], torch.full_like(p, 3.0)), f"step {step}"
    if native:
        assert calls.by_kernel["radam"] == 10


@pytest.mark.parametrize("name", LATE_LOADED, ids=str)
def test_weights_loaded_after_building_start_algorithm_1(name, request):
    """Built on one set of weights, then given others: every step is Algorithm 1 started from the others."""
    make, make_oracle, native = LATE_LOADED[name]
    calls = _native_calls(native, request)
    problem, steps = TinyProblem(), 12
    params = problem.params()
    ours = make(params, k=3, alpha=0.5)
    _load(params, TinyProblem(seed=1).initial)
    oracle_params = TinyProblem(seed=1).params()
    oracle = make_oracle(oracle_params, k=3, alpha=0.5)
    for step in range(steps):
        grads = problem.gradients(oracle_params)
        set_grads(params, grads)
        set_grads(oracle_params, grads)
        ours.step()
        oracle.step()
        for i, (a, b) in enumerate(zip(params, oracle_params, strict=True)):
            torch.testing.assert_close(
                a.detach(), b.detach(), **TOLERANCE[torch.float64],
                msg=lambda m, step=step, i=i: f"step {step}, parameter {i}: {m}",
            )
    if native:
        assert calls.by_kernel["radam"] == steps


@pytest.mark.parametrize("name", LATE_LOADED, ids=str)
def test_overwritten_after_building_trains_as_built_after(name, request):
    """DDP broadcasts rank 0's weights into every rank's parameters when the model is wrapped, which may be
    after the optimizer exists: that optimizer trains exactly as one built on rank 0's weights."""
    make, _, native = LATE_LOADED[name]
    calls = _native_calls(native, request)
    problem = TinyProblem()
    late = TinyProblem(seed=2).params()  # this rank's own initialisation
    late_optimizer = make(late, k=3, alpha=0.5)
    _load(late, TinyProblem(seed=1).initial)  # the broadcast
    built_after = TinyProblem(seed=1).params()
    built_after_optimizer = make(built_after, k=3, alpha=0.5)
    for _ in range(8):
        grads = problem.gradients(built_after)
        set_grads(late, grads)
        set_grads(built_after, grads)
        late_optimizer.step()
        built_after_optimizer.step()
    for a, b in zip(late, built_after, strict=True):
        assert torch.equal(a, b)
    assert_same_state(late_optimizer.state_dict(), built_after_optimizer.state_dict())
    if native:
        assert calls.by_kernel["radam"] == 2 * 8


@pytest.mark.parametrize("stop", [0, 1, 2, 3, 4, 7])
@pytest.mark.parametrize("name", ["Lookahead(optzoo.Adam)", "Ranger"], ids=str)
def test_resume_with_weights_loaded_after_building(name, stop):
    """Stopped before the first step, between it and the first synchronisation (k=3), at and after one,
    and resumed the usual way (optimizer built, its state dict and the weights loaded after): exactly the
    run that had its pretrained weights from the start."""
    make, _, _ = LATE_LOADED[name]
    problem, total, pretrained = TinyProblem(), 10, TinyProblem(seed=1).initial
    expected = TinyProblem(seed=1).params()
    uninterrupted = make(expected, k=3, alpha=0.5)
    for _ in range(total):
        set_grads(expected, problem.gradients(expected))
        uninterrupted.step()

    params = problem.params()
    first = make(params, k=3, alpha=0.5)
    _load(params, pretrained)
    for _ in range(stop):
        set_grads(params, problem.gradients(params))
        first.step()
    saved, weights = copy.deepcopy(first.state_dict()), [p.detach().clone() for p in params]

    resumed = TinyProblem(seed=2).params()  # anything not restored shows
    second = make(resumed, k=3, alpha=0.5)
    second.load_state_dict(saved)
    _load(resumed, weights)
    for _ in range(total - stop):
        set_grads(resumed, problem.gradients(resumed))
        second.step()
    for a, b in zip(resumed, expected, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


def test_a_parameter_first_stepped_later_takes_its_phi_0_then_in_its_groups_phase():
    """A parameter without a gradient takes no part: no slow weights, no synchronisation. Its phi_0 is its
    value when it first has one, and it synchronises with its group (every k-th step of the group), so its
    first outer iteration may be shorter than k. A state dict saved before it took part resumes exactly."""
    early = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
    late = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))

    def make(params):
        return optzoo.Lookahead(torch.optim.SGD(params, lr=1.0), k=3, alpha=0.5)

    lookahead = make([early, late])
    for _ in range(4):  # a synchronisation at step 3, without `late`
        early.grad, late.grad = torch.ones(2, dtype=torch.float64), None
        lookahead.step()
    assert SLOW in lookahead.state[early] and SLOW not in lookahead.state[late]
    assert torch.equal(late.detach(), torch.zeros(2, dtype=torch.float64))

    # Resumed here, before `late`'s first step, into a fresh optimizer on other weights.
    saved = copy.deepcopy(lookahead.state_dict())
    resumed = [torch.nn.Parameter(torch.full((2,), 7.0, dtype=torch.float64)) for _ in range(2)]
    second = make(resumed)
    second.load_state_dict(saved)
    _load(resumed, [early, late])

    for optimizer, (a, b) in ((lookahead, (early, late)), (second, resumed)):
        with torch.no_grad():
            b.fill_(3.0)  # say, a layer unfrozen with pretrained weights
        # SGD with lr=1 and gradient -1 adds 1 a step; group steps 6 and 9 synchronise with alpha=0.5.
        for step, want in zip(range(5, 10), (4.0, 4.0, 5.0, 6.0, 5.5), strict=True):
            a.grad, b.grad = torch.ones(2, dtype=torch.float64), -torch.ones(2, dtype=torch.float64)
            optimizer.step()
            if step == 5:
                assert torch.equal(optimizer.state[b][SLOW], torch.full((2,), 3.0, dtype=torch.float64))
            assert torch.equal(b.detach(), torch.full((2,), want, dtype=torch.float64)), f"step {step}"
    assert torch.equal(resumed[0], early) and torch.equal(resumed[1], late)


def test_phi_0_is_taken_before_the_first_inner_step_also_with_a_closure():
    """A closure computes the gradients inside the inner step, after the parameters had none; phi_0 is still
    the weights before that step. A first step that fails (the closure raises) takes none."""
    w = torch.nn.Parameter(torch.zeros(1, dtype=torch.float64))
    lookahead = optzoo.Lookahead(torch.optim.SGD([w], lr=1.0), k=2, alpha=0.5)

    def failing_closure():
        raise RuntimeError("the batch failed")

    def closure():
        lookahead.zero_grad()
        loss = -w.sum()  # gradient -1: SGD with lr=1 adds 1
        loss.backward()
        return loss

    with pytest.raises(RuntimeError, match="the batch failed"):
        lookahead.step(failing_closure)
    assert not lookahead.state
    with torch.no_grad():
        w.fill_(3.0)
    lookahead.zero_grad()
    lookahead.step(closure)
    assert lookahead.state[w][SLOW].item() == 3.0 and w.item() == 4.0
    lookahead.step(closure)
    assert w.item() == 4.0  # 5, pulled half-way back to 3 (from 0, or from 4, it would be 2.5 or 4.5)


# ------------------------------------------------------- distributed state dicts
@pytest.fixture(scope="module")
def process_group(tmp_path_factory):
    """A one-process gloo group: enough for ZeroRedundancyOptimizer and torch.distributed.checkpoint."""
    import torch.distributed as dist

    if not dist.is_available():
        pytest.skip("torch.distributed is not available")
    if dist.is_initialized():
        yield
        return
    store = tmp_path_factory.mktemp("process-group") / "store"
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _uninterrupted(make, steps):
    problem = TinyProblem()
    params, _ = run(make, steps, problem)
    return problem, params


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit, used inside
def test_zero_redundancy_optimizer_keeps_slow_weights_and_counters(process_group):
    """ZeroRedundancyOptimizer writes per-parameter state and group entries directly into the local
    optimizer (never calling its load_state_dict): slow weights and counters must survive that."""
    from torch.distributed.optim import ZeroRedundancyOptimizer

    def make(params):
        return ZeroRedundancyOptimizer(params, optimizer_class=optzoo.Ranger, lr=0.01, k=3)

    problem, expected = _uninterrupted(lambda p: optzoo.Ranger(p, lr=0.01, k=3), 10)
    params, first = run(make, 4, problem)
    first.consolidate_state_dict(to=0)
    saved = copy.deepcopy(first.state_dict())
    assert all(SLOW in entry for entry in saved["state"].values())
    assert saved["param_groups"][0]["lookahead_step"] == 4

    resumed = [p.detach().clone().requires_grad_() for p in params]
    second = make(resumed)
    second.load_state_dict(saved)
    assert second.optim.param_groups[0]["lookahead_step"] == 4
    for _ in range(6):
        set_grads(resumed, problem.gradients(resumed))
        second.step()
    for a, b in zip(resumed, expected, strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


class _Net(torch.nn.Module):
    def __init__(self, problem):
        super().__init__()
        self.weights = torch.nn.ParameterList([torch.nn.Parameter(p.detach()) for p in problem.params()])


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch.jit, used inside
def test_distributed_checkpoint_resumes_lookahead(process_group, tmp_path):
    """torch.distributed.checkpoint: get_optimizer_state_dict on the fresh optimizer first runs a
    zero-gradient, lr=0 step; loading must overwrite what that step changed (the counters)."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict, set_optimizer_state_dict

    def make(net):
        return optzoo.Lookahead(optzoo.Adam(list(net.parameters()), lr=0.01), k=3, alpha=0.5)

    problem, expected = _uninterrupted(lambda p: optzoo.Lookahead(optzoo.Adam(p, lr=0.01), k=3), 10)
    net = _Net(problem)
    params = list(net.parameters())
    optimizer = make(net)
    for _ in range(4):
        set_grads(params, problem.gradients(params))
        optimizer.step()
    for p in params:
        p.grad = None
    dcp.save({"optim": get_optimizer_state_dict(net, optimizer)}, checkpoint_id=str(tmp_path))

    net2 = _Net(problem)
    with torch.no_grad():
        for dst, src in zip(net2.parameters(), params, strict=True):
            dst.copy_(src)
    optimizer2 = make(net2)
    state = {"optim": get_optimizer_state_dict(net2, optimizer2)}
    assert optimizer2.param_groups[0]["lookahead_step"] == 1  # its initialising step
    dcp.load(state, checkpoint_id=str(tmp_path))
    set_optimizer_state_dict(net2, optimizer2, state["optim"])
    assert optimizer2.param_groups[0]["lookahead_step"] == 4
    resumed = list(net2.parameters())
    for _ in range(6):
        set_grads(resumed, problem.gradients(resumed))
        optimizer2.step()
    for a, b in zip(resumed, expected, strict=True):
        torch.testing.assert_close(a.detach(), b.detach(), rtol=0, atol=0)


# ------------------------------------------------------------------------ Ranger
def test_ranger_is_lookahead_over_optzoo_radam():
    params = TinyProblem().params()
    ranger = optzoo.Ranger(params, lr=0.02, betas=(0.9, 0.99), eps=1e-6, weight_decay=0.1, k=4, alpha=0.6,
                           maximize=True, foreach=False)
    assert isinstance(ranger, optzoo.Lookahead) and isinstance(ranger.optimizer, optzoo.RAdam)
    group = ranger.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (0.02, (0.9, 0.99), 1e-6, 0.1)
    assert (group["maximize"], group["foreach"], group["decoupled_weight_decay"]) == (True, False, False)
    assert (group["lookahead_k"], group["lookahead_alpha"]) == (4, 0.6)
    defaults = optzoo.Ranger(params).param_groups[0]
    assert (defaults["lr"], defaults["betas"], defaults["eps"], defaults["weight_decay"]) == (
        1e-3, (0.95, 0.999), 1e-5, 0.0)
    assert (defaults["lookahead_k"], defaults["lookahead_alpha"]) == (6, 0.5)


# ------------------------------------------------------------------------- SWATS
def _switch_steps(make, steps=60, dtype=torch.float64):
    problem = TinyProblem(dtype)
    params = problem.params()
    optimizer = make(params)
    switched = [None] * len(params)
    for step in range(1, steps + 1):
        set_grads(params, problem.gradients(params))
        optimizer.step()
        for i, p in enumerate(params):
            if switched[i] is None and optimizer.state[p]["sgd_phase"]:
                switched[i] = step
    return switched, optimizer, params


@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_swats_switches_per_tensor_at_different_steps(foreach, dtype):
    switched, optimizer, params = _switch_steps(lambda p: optzoo.SWATS(p, lr=1e-3, eps=1e-5, foreach=foreach),
                                                dtype=dtype)
    assert switched == [13, None, 2, 2]  # tensors switch on their own, at their own step; one never does
    for p, step in zip(params, switched, strict=True):
        state = optimizer.state[p]
        assert state["sgd_phase"] is (step is not None)
        assert isinstance(state["lambda_avg"], float) and isinstance(state["sgd_lr"], float)
        assert (state["sgd_lr"] > 0) is (step is not None)
    # the transcription agrees on where the switches are
    oracle_switched, _, _ = _switch_steps(lambda p: _PhaseView(KeskarSWATS(p, lr=1e-3, betas=(0.9, 0.999),
                                                                           eps=1e-5)), dtype=dtype)
    assert oracle_switched == switched


class _PhaseView:
    """The transcription's state read as optzoo.SWATS's ``sgd_phase``."""

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self.param_groups = optimizer.param_groups

    def step(self):
        self.optimizer.step()

    @property
    def state(self):
        return {p: {"sgd_phase": s.get("phase") == "SGD"} for p, s in self.optimizer.state.items()}


def test_swats_phase_and_lambda_survive_a_state_dict_exactly():
    problem = TinyProblem(torch.float32)
    params, optimizer = run(lambda p: optzoo.SWATS(p, lr=1e-3, eps=1e-5), 20, problem)
    saved = copy.deepcopy(optimizer.state_dict())
    other = optzoo.SWATS([p.detach().clone().requires_grad_() for p in params], lr=1e-3, eps=1e-5)
    other.load_state_dict(saved)
    for p, q in zip(params, other.param_groups[0]["params"], strict=True):
        a, b = optimizer.state[p], other.state[q]
        assert (a["sgd_phase"], a["sgd_lr"], a["lambda_avg"]) == (b["sgd_phase"], b["sgd_lr"], b["lambda_avg"])
        assert type(b["sgd_lr"]) is float and type(b["sgd_phase"]) is bool


def test_swats_sgd_phase_is_momentum_sgd_with_lambda():
    """After the switch, x -= (1 - beta1) Lambda v with v = beta1 v + g started at 0."""
    w = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    optimizer = optzoo.SWATS([w], lr=0.1, eps=1e-3, foreach=False)
    for _ in range(2):
        w.grad = torch.ones(3, dtype=torch.float64)
        optimizer.step()
    state = optimizer.state[w]
    assert state["sgd_phase"]
    lam, x = state["sgd_lr"], w.detach().clone()
    v = torch.zeros(3, dtype=torch.float64)
    for g in (2.0, -1.0, 0.5):
        w.grad = torch.full((3,), g, dtype=torch.float64)
        optimizer.step()
        v = 0.9 * v + g
        x = x - 0.1 * lam * v
        torch.testing.assert_close(w.detach(), x, rtol=1e-14, atol=1e-15)


# ---------------------------------------------------------------------- AdaBound
def test_adabound_bounds_close_in_on_final_lr():
    """Late in a run every coordinate's step size is within the bounds around final_lr: plain SGD
    with momentum, whatever the gradient scale."""
    w = torch.nn.Parameter(torch.tensor([1.0, 1.0], dtype=torch.float64))
    optimizer = optzoo.AdaBound([w], lr=1.0, final_lr=0.1, gamma=0.5, betas=(0.0, 0.999))
    for _ in range(1000):
        w.grad = torch.tensor([1e3, 1e-3], dtype=torch.float64)
        before = w.detach().clone()
        optimizer.step()
    eta = (before - w.detach()) / torch.tensor([1e3, 1e-3], dtype=torch.float64)
    lower, upper = 0.1 * (1 - 1 / (0.5 * 1000 + 1)), 0.1 * (1 + 1 / (0.5 * 1000))
    torch.testing.assert_close(eta, torch.tensor([lower, upper], dtype=torch.float64), rtol=1e-8, atol=0)


@pytest.mark.parametrize("foreach", [False, True], ids=["reference", "foreach"])
def test_adabound_gamma_zero_is_unbounded(foreach):
    """gamma = 0: bounds [0, inf) (the authors' code divides by zero there)."""
    problem = TinyProblem()
    params, _ = run(lambda p: optzoo.AdaBound(p, lr=0.01, gamma=0.0, foreach=foreach), 10, problem)
    # final_lr=1, gamma=1e-12: bounds about [1e-12 t, 1e12 / t], which Adam's steps here never reach
    unbounded, _ = run(lambda p: optzoo.AdaBound(p, lr=0.01, final_lr=1.0, gamma=1e-12, foreach=foreach), 10,
                       problem)
    for a, b in zip(params, unbounded, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


def test_adabound_resume_keeps_the_base_lr():
    """The bounds scale with lr / initial_lr; initial_lr is saved with the group, so a run resumed after
    the lr decayed keeps its bounds (the authors' code would take the decayed lr as its base)."""
    problem = TinyProblem()
    params, optimizer = run(lambda p: optzoo.AdaBound(p, lr=0.01, gamma=0.1), 5, problem)
    optimizer.param_groups[0]["lr"] = 0.001
    saved = copy.deepcopy(optimizer.state_dict())
    other = optzoo.AdaBound([p.detach().clone().requires_grad_() for p in params], lr=0.001, gamma=0.1)
    other.load_state_dict(saved)
    assert other.param_groups[0]["initial_lr"] == 0.01
