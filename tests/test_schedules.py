"""Schedules: each LR sequence against its formula (written here, independently, with ``math``),
resumed from a state dict, inside SequentialLR, pickled; warm-up hand-overs; Noam's peak; SGDR's
fractional epochs; Smith's cyclical modes; bad input; Robbins-Monro verdicts; the LR range test
on a real problem (scikit-learn's digits)."""

from __future__ import annotations

import copy
import io
import math
import pickle

import pytest
import torch
from torch.optim import lr_scheduler as torch_sched

import optzoo
from optzoo import registry
from optzoo.schedules import (
    SGDR,
    ConstantFactor,
    CyclicalFactor,
    CyclicalLR,
    ExponentialDecay,
    ExponentialFactor,
    FactorLR,
    InverseTimeFactor,
    InverseTimeLR,
    Join,
    LinearWarmupFactor,
    LRFunction,
    NoamFactor,
    NoamLR,
    PiecewiseConstant,
    PiecewiseConstantFactor,
    Product,
    SGDRFactor,
    StepDecay,
    StepDecayFactor,
    WarmupLR,
    lr_curve,
    lr_range_test,
    robbins_monro,
)

LR0 = 0.1
STEPS = 2400
RESUME_AT = 1234


# ----------------------------------------------------------------------------- helpers


def _optimizer(lr: float = LR0) -> torch.optim.Optimizer:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(2))], lr=lr, momentum=0.9)


def _lr(optimizer: torch.optim.Optimizer) -> float:
    return float(optimizer.param_groups[0]["lr"])


def _run(optimizer, scheduler, steps: int, metrics=None) -> list[float]:
    """The LR used at each of ``steps`` steps (read before the optimizer's step, then the scheduler steps)."""
    lrs = []
    for _ in range(steps):
        lrs.append(_lr(optimizer))
        optimizer.step()
        scheduler.step() if metrics is None else scheduler.step(metrics(len(lrs)))
    return lrs


def _through_torch_save(state):
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer, weights_only=True)


def _assert_close(got: list[float], want: list[float], rel: float = 1e-12) -> None:
    assert len(got) == len(want)
    for t, (g, w) in enumerate(zip(got, want, strict=True)):
        assert math.isclose(g, w, rel_tol=rel, abs_tol=1e-15), f"step {t}: {g!r} != {w!r}"


# ----------------------------------------------------------------------------- the formulas, independently


def smith(t: int, base: float, peak: float, step_size: float, mode: str, gamma: float = 1.0) -> float:
    """Smith (2017), Section 3.1, as printed."""
    cycle = math.floor(1 + t / (2 * step_size))
    x = abs(t / step_size - 2 * cycle + 1)
    amplitude = (peak - base) * max(0.0, 1 - x)
    if mode == "triangular2":
        amplitude /= 2 ** (cycle - 1)
    elif mode == "exp_range":
        amplitude *= gamma**t
    return base + amplitude


def sgdr(t: float, eta_max: float, eta_min: float, t_0: int, t_mult: int) -> float:
    """Loshchilov & Hutter (2017), eq. (5), the restarts found by walking the runs."""
    t_i, restart = t_0, 0
    while t >= restart + t_i:
        restart += t_i
        t_i *= t_mult
    t_cur = t - restart
    return eta_min + 0.5 * (eta_max - eta_min) * (1 + math.cos(math.pi * t_cur / t_i))


def noam(t: int, d_model: int, warmup: int, lr0: float = 1.0) -> float:
    step_num = t + 1
    return lr0 * d_model**-0.5 * min(step_num**-0.5, step_num * warmup**-1.5)


def piecewise(t: int) -> float:
    if t < 500:
        return LR0 * 1.0
    if t < 1200:
        return LR0 * 0.3
    if t < 2000:
        return LR0 * 0.1
    return LR0 * 0.01


CASES = {
    "step": (lambda o: StepDecay(o, step_size=300, gamma=0.5), lambda t: LR0 * 0.5 ** (t // 300)),
    "piecewise": (lambda o: PiecewiseConstant(o, [500, 1200, 2000], factors=[1.0, 0.3, 0.1, 0.01]), piecewise),
    "piecewise gamma": (
        lambda o: PiecewiseConstant(o, milestones=[400, 900, 1700], gamma=0.5),
        lambda t: LR0 * 0.5 ** sum(t >= m for m in (400, 900, 1700)),
    ),
    "exponential": (lambda o: ExponentialDecay(o, r=700.0), lambda t: LR0 * math.exp(-t / 700.0)),
    "inverse-time c=1": (lambda o: InverseTimeLR(o, r=50.0, c=1.0), lambda t: LR0 / (1 + t / 50.0)),
    "eta0/t^2 (r=1, c=2)": (lambda o: InverseTimeLR(o, r=1.0, c=2.0), lambda t: LR0 / (t + 1) ** 2),
    "inverse-time c=0.75": (lambda o: InverseTimeLR(o, r=10.0, c=0.75), lambda t: LR0 * (1 + t / 10.0) ** -0.75),
    "noam": (lambda o: NoamLR(o, d_model=64, warmup_steps=400), lambda t: noam(t, 64, 400, LR0)),
    "warmup": (lambda o: WarmupLR(o, warmup_steps=300), lambda t: LR0 * min(t + 1, 300) / 300),
    "warmup->step": (
        lambda o: WarmupLR(o, 200, after=StepDecay(o, step_size=250, gamma=0.7)),
        lambda t: LR0 * (t + 1) / 200 if t < 200 else LR0 * 0.7 ** ((t - 200) // 250),
    ),
    "cyclical triangular": (
        lambda o: CyclicalLR(o, base_lr=0.01, max_lr=0.2, step_size=250),
        lambda t: smith(t, 0.01, 0.2, 250, "triangular"),
    ),
    "cyclical triangular2": (
        lambda o: CyclicalLR(o, base_lr=0.01, max_lr=0.2, step_size=250, mode="triangular2"),
        lambda t: smith(t, 0.01, 0.2, 250, "triangular2"),
    ),
    "cyclical exp_range": (
        lambda o: CyclicalLR(o, base_lr=0.01, max_lr=0.2, step_size=250, mode="exp_range", gamma=0.9995),
        lambda t: smith(t, 0.01, 0.2, 250, "exp_range", 0.9995),
    ),
    "sgdr T_mult=2": (lambda o: SGDR(o, T_0=100, T_mult=2, eta_min=1e-3), lambda t: sgdr(t, LR0, 1e-3, 100, 2)),
    "sgdr T_mult=1": (lambda o: SGDR(o, T_0=170), lambda t: sgdr(t, LR0, 0.0, 170, 1)),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lr_sequence_matches_the_formula(name):
    build, formula = CASES[name]
    optimizer = _optimizer()
    lrs = _run(optimizer, build(optimizer), STEPS)
    _assert_close(lrs, [formula(t) for t in range(STEPS)])


@pytest.mark.parametrize("name", list(CASES))
def test_resume_from_state_dict_continues_identically(name):
    build, _ = CASES[name]
    optimizer = _optimizer()
    whole = _run(optimizer, build(optimizer), STEPS)

    optimizer = _optimizer()
    scheduler = build(optimizer)
    first = _run(optimizer, scheduler, RESUME_AT)
    saved = _through_torch_save({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()})
    fresh_optimizer = _optimizer()
    fresh = build(fresh_optimizer)
    fresh_optimizer.load_state_dict(saved["opt"])
    fresh.load_state_dict(saved["sched"])
    rest = _run(fresh_optimizer, fresh, STEPS - RESUME_AT)
    assert first + rest == whole


@pytest.mark.parametrize("name", list(CASES))
def test_pickle_round_trip_continues_identically(name):
    build, _ = CASES[name]
    optimizer = _optimizer()
    scheduler = build(optimizer)
    _run(optimizer, scheduler, 321)
    clone = pickle.loads(pickle.dumps(scheduler))
    assert clone.optimizer is not optimizer
    assert _run(clone.optimizer, clone, 500) == _run(optimizer, scheduler, 500)


def test_every_schedule_class_is_exported_at_top_level():
    for name in ("StepDecay", "PiecewiseConstant", "ExponentialDecay", "InverseTimeLR", "NoamLR", "WarmupLR",
                 "CyclicalLR", "SGDR"):
        assert getattr(optzoo, name) is getattr(optzoo.schedules, name)
        assert issubclass(getattr(optzoo, name), torch_sched.LRScheduler)


# ----------------------------------------------------------------------------- composition


def _warmup_then_sgdr(optimizer):
    warm = WarmupLR(optimizer, warmup_steps=200)
    cosine = SGDR(optimizer, T_0=300, T_mult=2, eta_min=1e-4)
    return torch_sched.SequentialLR(optimizer, [warm, cosine], milestones=[200])


def _warmup_then_sgdr_formula(t: int) -> float:
    return LR0 * (t + 1) / 200 if t < 200 else sgdr(t - 200, LR0, 1e-4, 300, 2)


def test_sequential_warmup_then_sgdr_matches_formula_resumes_and_pickles():
    optimizer = _optimizer()
    scheduler = _warmup_then_sgdr(optimizer)
    whole = _run(optimizer, scheduler, STEPS)
    _assert_close(whole, [_warmup_then_sgdr_formula(t) for t in range(STEPS)])

    optimizer = _optimizer()
    scheduler = _warmup_then_sgdr(optimizer)
    first = _run(optimizer, scheduler, RESUME_AT)
    saved = _through_torch_save({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()})
    clone = pickle.loads(pickle.dumps(scheduler))
    fresh_optimizer = _optimizer()
    fresh = _warmup_then_sgdr(fresh_optimizer)
    fresh_optimizer.load_state_dict(saved["opt"])
    fresh.load_state_dict(saved["sched"])
    assert first + _run(fresh_optimizer, fresh, STEPS - RESUME_AT) == whole
    assert first + _run(clone.optimizer, clone, STEPS - RESUME_AT) == whole


def test_join_of_pure_functions_equals_sequential_lr():
    optimizer = _optimizer()
    sequential = torch_sched.SequentialLR(
        optimizer, [WarmupLR(optimizer, 150), SGDR(optimizer, T_0=120, T_mult=2)], milestones=[150]
    )
    joined_optimizer = _optimizer()
    joined = FactorLR(joined_optimizer, Join((LinearWarmupFactor(150), SGDRFactor(120, 2)), (150,)))
    _assert_close(_run(joined_optimizer, joined, STEPS), _run(optimizer, sequential, STEPS))


def test_product_of_pure_functions_equals_torchs_chained_scheduler():
    """Closed-form composition (no drift) against torch's recursive chaining of the same two schedules."""
    optimizer = _optimizer()
    chained = torch_sched.ChainedScheduler(
        [torch_sched.StepLR(optimizer, step_size=300, gamma=0.5),
         torch_sched.ExponentialLR(optimizer, gamma=math.exp(-1 / 700))]
    )
    product_optimizer = _optimizer()
    product = FactorLR(product_optimizer, Product((StepDecayFactor(300, 0.5), ExponentialFactor(700.0))))
    _assert_close(_run(product_optimizer, product, STEPS), _run(optimizer, chained, STEPS), rel=1e-9)


def test_a_schedule_is_a_chained_scheduler_member_with_state():
    optimizer = _optimizer()
    chained = torch_sched.ChainedScheduler([SGDR(optimizer, T_0=50)])
    lrs = _run(optimizer, chained, 300)
    _assert_close(lrs, [sgdr(t, LR0, 0.0, 50, 1) for t in range(300)])
    state = _through_torch_save(chained.state_dict())
    fresh_optimizer = _optimizer()
    fresh = torch_sched.ChainedScheduler([SGDR(fresh_optimizer, T_0=50)])
    fresh.load_state_dict(state)
    fresh_optimizer.load_state_dict(optimizer.state_dict())
    assert _run(fresh_optimizer, fresh, 100) == _run(optimizer, chained, 100)


def test_each_param_group_keeps_its_own_base_lr():
    params = [torch.nn.Parameter(torch.zeros(1)), torch.nn.Parameter(torch.zeros(1))]
    optimizer = torch.optim.SGD([{"params": [params[0]], "lr": 0.1}, {"params": [params[1]], "lr": 0.02}])
    scheduler = SGDR(optimizer, T_0=10, eta_min=[0.001, 0.0])
    for t in range(25):
        assert math.isclose(optimizer.param_groups[0]["lr"], sgdr(t, 0.1, 0.001, 10, 1), rel_tol=1e-12)
        assert math.isclose(optimizer.param_groups[1]["lr"], sgdr(t, 0.02, 0.0, 10, 1), rel_tol=1e-12, abs_tol=1e-18)
        optimizer.step()
        scheduler.step()


# ----------------------------------------------------------------------------- warm-up hand-overs


def _metric(step: int) -> float:
    """Improves for 30 steps, then stalls."""
    return 1.0 / min(step, 30)


def test_warmup_hands_over_to_reduce_on_plateau_with_metrics_forwarded():
    warmup_steps, steps = 10, 120
    optimizer = _optimizer(1.0)
    plateau = torch_sched.ReduceLROnPlateau(optimizer, factor=0.5, patience=4)
    scheduler = WarmupLR(optimizer, warmup_steps, after=plateau)
    assert scheduler.needs_metrics
    lrs = _run(optimizer, scheduler, steps, metrics=_metric)

    # reference: the same plateau rule alone, fed the metrics from the hand-over on
    reference_optimizer = _optimizer(1.0)
    reference = torch_sched.ReduceLROnPlateau(reference_optimizer, factor=0.5, patience=4)
    want = [(t + 1) / warmup_steps for t in range(warmup_steps)] + [1.0]
    for step in range(warmup_steps + 1, steps + 1):
        reference.step(_metric(step))
        want.append(_lr(reference_optimizer))
    _assert_close(lrs, want[:steps])
    assert min(lrs[warmup_steps:]) < 1.0 / 8  # the plateau did cut the LR, more than three times
    assert scheduler.state_dict()["after"]["best"] == pytest.approx(1.0 / 30)


def test_warmup_with_plateau_resumes_and_pickles():
    def build(optimizer):
        return WarmupLR(optimizer, 10, after=torch_sched.ReduceLROnPlateau(optimizer, factor=0.5, patience=3))

    optimizer = _optimizer(1.0)
    whole = _run(optimizer, build(optimizer), 150, metrics=_metric)
    optimizer = _optimizer(1.0)
    scheduler = build(optimizer)
    first = _run(optimizer, scheduler, 40, metrics=_metric)
    saved = _through_torch_save({"opt": optimizer.state_dict(), "sched": scheduler.state_dict()})
    clone = pickle.loads(pickle.dumps(scheduler))
    fresh_optimizer = _optimizer(1.0)
    fresh = build(fresh_optimizer)
    fresh_optimizer.load_state_dict(saved["opt"])
    fresh.load_state_dict(saved["sched"])

    def later(step):
        return _metric(step + 40)

    assert first + _run(fresh_optimizer, fresh, 110, metrics=later) == whole
    assert first + _run(clone.optimizer, clone, 110, metrics=later) == whole


def test_warmup_metrics_errors():
    optimizer = _optimizer()
    scheduler = WarmupLR(optimizer, 2, after=torch_sched.ReduceLROnPlateau(optimizer))
    optimizer.step()
    scheduler.step()  # still warming up: no metric needed
    with pytest.raises(ValueError, match="step\\(metrics\\)"):
        scheduler.step()
    plain = WarmupLR(_optimizer(), 2)
    with pytest.raises(TypeError, match="ReduceLROnPlateau"):
        plain.step(0.5)


def test_warmup_hands_over_to_torchs_cosine_annealing_too():
    optimizer = _optimizer()
    scheduler = WarmupLR(optimizer, 50, after=torch_sched.CosineAnnealingLR(optimizer, T_max=400))
    lrs = _run(optimizer, scheduler, 450)
    want = [LR0 * (t + 1) / 50 if t < 50 else LR0 * (1 + math.cos(math.pi * (t - 50) / 400)) / 2 for t in range(450)]
    _assert_close(lrs, want, rel=1e-9)


# ----------------------------------------------------------------------------- Noam, SGDR, cyclical


@pytest.mark.parametrize(("d_model", "warmup"), [(512, 4000), (64, 400)])
def test_noam_peaks_at_warmup_steps_with_the_papers_value(d_model, warmup):
    optimizer = _optimizer(1.0)
    lrs = _run(optimizer, NoamLR(optimizer, d_model=d_model, warmup_steps=warmup), 2 * warmup)
    peak = max(range(len(lrs)), key=lrs.__getitem__)
    assert peak + 1 == warmup  # step_num s = t + 1 = warmup_steps
    assert math.isclose(lrs[peak], d_model**-0.5 * warmup**-0.5, rel_tol=1e-12)
    assert math.isclose(lrs[0], d_model**-0.5 * warmup**-1.5, rel_tol=1e-12)


@pytest.mark.parametrize("t_mult", [1, 2, 3])
def test_sgdr_fractional_epochs_match_the_formula_and_torch(t_mult):
    optimizer, torch_optimizer = _optimizer(), _optimizer()
    scheduler = SGDR(optimizer, T_0=5, T_mult=t_mult, eta_min=0.002)
    oracle = torch_sched.CosineAnnealingWarmRestarts(torch_optimizer, T_0=5, T_mult=t_mult, eta_min=0.002)
    iters_per_epoch = 7
    for epoch in range(60):
        for i in range(iters_per_epoch):
            position = epoch + i / iters_per_epoch
            scheduler.step(position)
            oracle.step(position)
            want = sgdr(position, LR0, 0.002, 5, t_mult)
            assert math.isclose(_lr(optimizer), want, rel_tol=1e-12, abs_tol=1e-15), position
            assert math.isclose(_lr(torch_optimizer), want, rel_tol=1e-9, abs_tol=1e-12), position
    scheduler.step(2.5)
    scheduler.step()  # one epoch on from a fractional position
    assert math.isclose(_lr(optimizer), sgdr(3.5, LR0, 0.002, 5, t_mult), rel_tol=1e-12)


def test_sgdr_restarts_at_the_papers_epochs():
    f = SGDRFactor(T_0=10, T_mult=2)
    for restart in (0, 10, 30, 70, 150, 310):
        assert f(restart) == 1.0
        assert f(restart - 1e-9) < 1e-10 if restart else True


@pytest.mark.parametrize(("mode", "gamma"), [("triangular", 1.0), ("triangular2", 1.0), ("exp_range", 0.999)])
def test_cyclical_modes_match_smith_and_torchs_cycliclr(mode, gamma):
    optimizer, torch_optimizer = _optimizer(), _optimizer()
    scheduler = CyclicalLR(optimizer, base_lr=0.001, max_lr=0.05, step_size=37, mode=mode, gamma=gamma)
    oracle = torch_sched.CyclicLR(torch_optimizer, base_lr=0.001, max_lr=0.05, step_size_up=37, mode=mode,
                                  gamma=gamma, cycle_momentum=False)
    lrs, torch_lrs = _run(optimizer, scheduler, STEPS), _run(torch_optimizer, oracle, STEPS)
    _assert_close(lrs, [smith(t, 0.001, 0.05, 37, mode, gamma) for t in range(STEPS)])
    _assert_close(lrs, torch_lrs, rel=1e-9)
    assert lrs[0] == pytest.approx(0.001)
    assert lrs[37] == pytest.approx(0.001 + 0.049 * (gamma**37 if mode == "exp_range" else 1.0))
    if mode == "triangular2":
        assert lrs[37 + 74] == pytest.approx(0.001 + 0.049 / 2)


def test_pure_functions_plot_without_an_optimizer():
    assert lr_curve(StepDecayFactor(2, 0.5), 5, base_lr=0.1) == [0.1, 0.1, 0.05, 0.05, 0.025]
    curve = lr_curve(CyclicalFactor(4), 9, base_lr=0.5, min_lr=0.1)
    _assert_close(curve, [smith(t, 0.1, 0.5, 4, "triangular") for t in range(9)])
    optimizer = _optimizer()
    scheduler = NoamLR(optimizer, 32, 10)
    assert scheduler.lr_function() == LRFunction(NoamFactor(32, 10), LR0, 0.0)
    assert _run(optimizer, scheduler, 30) == lr_curve(NoamFactor(32, 10), 30, base_lr=LR0)
    assert pickle.loads(pickle.dumps(PiecewiseConstantFactor((3, 5), (1, 0.5, 0.1))))(4) == 0.5


def test_fractional_step_works_for_every_closed_form_schedule():
    optimizer = _optimizer()
    scheduler = ExponentialDecay(optimizer, r=4.0)
    scheduler.step(2.5)
    assert math.isclose(_lr(optimizer), LR0 * math.exp(-2.5 / 4), rel_tol=1e-12)
    scheduler.step()
    assert math.isclose(_lr(optimizer), LR0 * math.exp(-3.5 / 4), rel_tol=1e-12)


# ----------------------------------------------------------------------------- bad input


def _lambda_factor(opt):
    return FactorLR(opt, lambda t: 1.0)


BAD = [
    (lambda o: StepDecay(o, step_size=0), ValueError, "step_size"),
    (lambda o: StepDecay(o, step_size=2.5), ValueError, "step_size must be an integer"),
    (lambda o: StepDecay(o, step_size=10, gamma=1.5), ValueError, r"gamma must be in \(0, 1\]"),
    (lambda o: PiecewiseConstant(o, [5, 3], factors=[1, 0.1, 0.01]), ValueError, "strictly increasing"),
    (lambda o: PiecewiseConstant(o, [5], factors=[1, 0.1, 0.01]), ValueError, "len\\(milestones\\) \\+ 1"),
    (lambda o: PiecewiseConstant(o, [5], factors=[1, -0.1]), ValueError, "factors\\[1\\]"),
    (lambda o: PiecewiseConstant(o, [5], gamma=1.5), ValueError, "gamma must be in \\(0, 1\\]"),
    (lambda o: PiecewiseConstant(o, 5), TypeError, "milestones must be a sequence"),
    (lambda o: ExponentialDecay(o, r=0), ValueError, r"r must be in \(0, inf\)"),
    (lambda o: InverseTimeLR(o, r=1.0, c=-1.0), ValueError, r"c must be in \[0, inf\)"),
    (lambda o: InverseTimeLR(o, r=float("nan")), ValueError, "r must be"),
    (lambda o: NoamLR(o, d_model=0), ValueError, r"d_model must be in \(0, inf\)"),
    (lambda o: NoamLR(o, d_model=64, warmup_steps=0), ValueError, "warmup_steps"),
    (lambda o: WarmupLR(o, warmup_steps=0), ValueError, "warmup_steps"),
    (lambda o: WarmupLR(o, 5, after=StepDecay(_optimizer(), 3)), ValueError, "same optimizer"),
    (lambda o: WarmupLR(o, 5, after="sgdr"), TypeError, "after must be an LR scheduler"),
    (lambda o: CyclicalLR(o, base_lr=0.2, max_lr=0.1, step_size=10), ValueError, "base_lr must be <= max_lr"),
    (lambda o: CyclicalLR(o, base_lr=0.01, max_lr=0.1, step_size=0), ValueError, "step_size"),
    (lambda o: CyclicalLR(o, 0.01, 0.1, 10, mode="sine"), ValueError, "mode must be one of"),
    (lambda o: CyclicalLR(o, 0.01, 0.1, 10, mode="exp_range", gamma=0.0), ValueError, "gamma"),
    (lambda o: CyclicalLR(o, [0.01, 0.02], 0.1, 10), ValueError, "one per param group"),
    (lambda o: SGDR(o, T_0=0), ValueError, "T_0"),
    (lambda o: SGDR(o, T_0=10, T_mult=1.5), ValueError, "T_mult must be an integer"),
    (lambda o: SGDR(o, T_0=10, eta_min=-1.0), ValueError, "min_lr"),
    (lambda o: SGDR("not an optimizer", T_0=10), TypeError, "Optimizer"),
    (_lambda_factor, TypeError, "picklable"),
]


@pytest.mark.parametrize(("build", "error", "match"), BAD)
def test_bad_input_raises_a_clear_error(build, error, match):
    with pytest.raises(error, match=match):
        build(_optimizer())


def test_negative_epoch_is_refused():
    scheduler = SGDR(_optimizer(), T_0=10)
    with pytest.raises(ValueError, match="epoch must be in"):
        scheduler.step(-1)


def test_pure_function_state_dict_names_only_known_factors():
    optimizer = _optimizer()
    scheduler = SGDR(optimizer, T_0=10)
    state = scheduler.state_dict()
    state["factor_fn"] = {"factor": "os.system", "fields": {}}
    with pytest.raises(ValueError, match="unknown factor function"):
        SGDR(_optimizer(), T_0=10).load_state_dict(state)


# ----------------------------------------------------------------------------- Robbins-Monro

RM_VERDICTS = [
    # (schedule, sum diverges, sum of squares converges): proved per family
    (InverseTimeFactor(r=1.0, c=1.0), True, True),  # eta_0 / t
    (InverseTimeFactor(r=1.0, c=2.0), False, True),  # eta_0 / t^2: the steps sum to a finite distance
    (InverseTimeFactor(r=50.0, c=0.75), True, True),
    (InverseTimeFactor(r=1.0, c=0.5), True, False),
    (InverseTimeFactor(r=1e6, c=1.0), True, True),  # a long time scale changes nothing
    (InverseTimeFactor(r=1.0, c=1.05), False, True),
    (ExponentialFactor(r=1000.0), False, True),
    (ConstantFactor(), True, False),
    (StepDecayFactor(100, 0.5), False, True),
    (StepDecayFactor(100, 1.0), True, False),
    (PiecewiseConstantFactor((100, 200), (1.0, 0.1, 0.01)), True, False),
    (PiecewiseConstantFactor((100,), (1.0, 0.0)), False, True),
    (NoamFactor(512, 4000), True, False),
    (LinearWarmupFactor(100), True, False),
    (CyclicalFactor(250), True, False),
    (LRFunction(CyclicalFactor(250, "exp_range", 0.99), base_lr=0.1, min_lr=0.01), True, False),
    (SGDRFactor(10, 2), True, False),
    (SGDRFactor(10, 1), True, False),
]


@pytest.mark.parametrize(("fn", "diverges", "squares_converge"), RM_VERDICTS, ids=repr)
def test_robbins_monro_verdicts(fn, diverges, squares_converge):
    report = robbins_monro(fn)
    assert report.sum_diverges is diverges
    assert report.sum_of_squares_converges is squares_converge
    assert bool(report) is (diverges and squares_converge)


def test_robbins_monro_takes_a_scheduler_and_reads_well():
    scheduler = InverseTimeLR(_optimizer(), r=1.0, c=1.0)
    report = robbins_monro(scheduler)
    assert report.satisfied
    assert "Robbins-Monro satisfied" in str(report)
    assert robbins_monro(ExponentialDecay(_optimizer(), r=10.0)).satisfied is False


def test_robbins_monro_bad_input():
    with pytest.raises(TypeError, match="function of the step"):
        robbins_monro(3.0)
    with pytest.raises(ValueError, match="power of two"):
        robbins_monro(ConstantFactor(), samples_per_block=1000)
    with pytest.raises(ValueError, match="non-negative"):
        robbins_monro(lambda t: -1.0)


# ----------------------------------------------------------------------------- the LR range test

_DIGITS = {}


def _digits():
    if not _DIGITS:
        datasets = pytest.importorskip("sklearn.datasets")
        x, y = datasets.load_digits(return_X_y=True)
        x = torch.tensor(x, dtype=torch.float32)
        x = (x - x.mean(0)) / (x.std(0) + 1e-3)
        y = torch.tensor(y)
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))
        _DIGITS["x"], _DIGITS["y"] = x, y
        _DIGITS["batches"] = [(x[order[i:i + 64]], y[order[i:i + 64]]) for i in range(0, len(x), 64)]
    return _DIGITS["x"], _DIGITS["y"], _DIGITS["batches"]


def _mlp():
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Linear(64, 32), torch.nn.BatchNorm1d(32), torch.nn.ReLU(), torch.nn.Linear(32, 10)
    )


def _loss(model, x, y) -> float:
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(x), y))


def _train(model, lr, batches, steps=30) -> torch.nn.Module:
    model = copy.deepcopy(model)
    model.train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    for i in range(steps):
        xb, yb = batches[i % len(batches)]
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    return model.eval()


@pytest.mark.parametrize("make_optimizer", [
    lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    lambda params: optzoo.SGD(params, lr=0.01, momentum=0.9),
], ids=["torch.optim.SGD", "optzoo.SGD"])
def test_lr_range_test_on_digits_suggests_a_good_lr_and_restores_everything(make_optimizer):
    x, y, batches = _digits()
    model = _mlp()
    optimizer = make_optimizer(model.parameters())
    # some history worth restoring: momentum buffers, BatchNorm statistics, gradients, eval mode
    for xb, yb in batches[:3]:
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(model(xb), yb).backward()
        optimizer.step()
    model.eval()
    model_before = copy.deepcopy(model.state_dict())
    optimizer_before = copy.deepcopy(optimizer.state_dict())
    grads_before = [p.grad.clone() for p in model.parameters()]

    result = lr_range_test(model, torch.nn.functional.cross_entropy, batches, optimizer,
                           start_lr=1e-5, end_lr=10.0, num_iter=100)

    # restored bit for bit
    assert not model.training and not any(m.training for m in model.modules())
    after = model.state_dict()
    assert after.keys() == model_before.keys()
    assert all(torch.equal(after[k], model_before[k]) for k in after)
    assert all(torch.equal(p.grad, g) for p, g in zip(model.parameters(), grads_before, strict=True))
    optimizer_after = optimizer.state_dict()
    assert optimizer_after["param_groups"] == optimizer_before["param_groups"]
    assert optimizer_after["state"].keys() == optimizer_before["state"].keys()
    for key, state in optimizer_after["state"].items():
        for name, value in state.items():
            assert torch.equal(value, optimizer_before["state"][key][name]), (key, name)

    # the sweep
    n = len(result.lrs)
    assert 10 < n <= 100 and len(result.losses) == len(result.raw_losses) == n
    _assert_close(list(result.lrs), [1e-5 * (10.0 / 1e-5) ** (i / 99) for i in range(n)])
    if result.diverged:
        assert result.losses[-1] > 5 * min(result.losses[:-1])
    base_lr, max_lr = result.cyclical_range
    assert base_lr == pytest.approx(max_lr / 4) and max_lr == result.lrs[result.losses.index(min(result.losses))]
    assert 1e-5 < result.suggested_lr <= max_lr

    # the suggestion lies where the loss falls: a short run there beats one at start_lr by far
    start = _loss(model, x, y)
    at_suggested = _loss(_train(model, result.suggested_lr, batches), x, y)
    at_start = _loss(_train(model, 1e-5, batches), x, y)
    assert at_suggested < 0.5 * start
    assert at_start > 0.95 * start
    assert at_suggested < 0.5 * at_start


def test_lr_range_test_linear_mode_cycles_short_data_and_one_shot_iterators():
    _, _, batches = _digits()
    model = torch.nn.Linear(64, 10)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    generator = iter(batches[:3])  # a one-shot iterator of 3 batches, 40 iterations
    result = lr_range_test(model, torch.nn.functional.cross_entropy, generator, optimizer,
                           start_lr=1e-3, end_lr=1.0, num_iter=40, mode="linear", smooth=1.0)
    assert len(result.lrs) == 40 and not result.diverged
    _assert_close(list(result.lrs), [1e-3 + (1.0 - 1e-3) * i / 39 for i in range(40)])
    assert result.losses == result.raw_losses  # smooth=1: no smoothing
    assert result.losses[-1] < result.losses[0]


def test_lr_range_test_stops_when_the_loss_diverges():
    _, _, batches = _digits()
    model = _mlp()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    result = lr_range_test(model, torch.nn.functional.cross_entropy, batches, optimizer,
                           start_lr=1e-3, end_lr=1e4, num_iter=100, diverge_threshold=3.0)
    assert result.diverged and len(result.lrs) < 100
    assert result.losses[-1] > 3.0 * min(result.losses[:-1])


def test_lr_range_test_bad_input():
    model = torch.nn.Linear(2, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = [(torch.zeros(4, 2), torch.zeros(4, 1))]
    loss = torch.nn.functional.mse_loss
    for kwargs, error, match in [
        ({"start_lr": 0.0}, ValueError, "start_lr"),
        ({"start_lr": 1.0, "end_lr": 0.5}, ValueError, "end_lr must be larger"),
        ({"num_iter": 1}, ValueError, "num_iter"),
        ({"mode": "log"}, ValueError, "mode must be one of"),
        ({"smooth": 0.0}, ValueError, "smooth"),
        ({"diverge_threshold": 1.0}, ValueError, "diverge_threshold"),
    ]:
        with pytest.raises(error, match=match):
            lr_range_test(model, loss, data, optimizer, **kwargs)
    with pytest.raises(ValueError, match="no batches"):
        lr_range_test(model, loss, [], optimizer)
    with pytest.raises(TypeError, match=r"nn\.Module"):
        lr_range_test("model", loss, data, optimizer)
    with pytest.raises(ValueError, match="none of the model's parameters"):
        lr_range_test(model, loss, data, torch.optim.SGD(torch.nn.Linear(2, 1).parameters(), lr=0.1))
    with pytest.raises(TypeError, match="pair"):
        lr_range_test(model, loss, [torch.zeros(4, 2)], optimizer, num_iter=3)
    assert torch.equal(model.weight, model.weight)  # still usable after the errors


# ----------------------------------------------------------------------------- registry


def test_registry_builds_every_schedule_by_name_with_the_class_keywords():
    optimizer = _optimizer()
    built = {
        "step": registry.schedule("step", optimizer, step_size=10, gamma=0.5),
        "piecewise": registry.schedule("piecewise", _optimizer(), milestones=[5], factors=[1.0, 0.1]),
        "exponential": registry.schedule("exponential", _optimizer(), r=100.0),
        "inverse-time": registry.schedule("inverse-time", _optimizer(), r=2.0, c=1.0),
        "reciprocal": registry.schedule("reciprocal", _optimizer(), c=0.75),
        "noam": registry.schedule("noam", _optimizer(), d_model=64, warmup_steps=100),
        "cyclical": registry.schedule("cyclical", _optimizer(), base_lr=0.01, max_lr=0.1, step_size=20),
        "sgdr": registry.schedule("SGDR", _optimizer(), T_0=10, T_mult=2),
        "warmup": registry.schedule("warmup", _optimizer(), warmup_steps=5),
        "plateau": registry.schedule("plateau", _optimizer(), patience=3),
        "onecycle": registry.schedule("onecycle", _optimizer(), max_lr=0.1, total_steps=100),
    }
    classes = {"step": StepDecay, "piecewise": PiecewiseConstant, "exponential": ExponentialDecay,
               "inverse-time": InverseTimeLR, "reciprocal": InverseTimeLR, "noam": NoamLR, "cyclical": CyclicalLR,
               "sgdr": SGDR, "warmup": WarmupLR, "plateau": torch_sched.ReduceLROnPlateau,
               "onecycle": torch_sched.OneCycleLR}
    for name, scheduler in built.items():
        assert type(scheduler) is classes[name], name
    assert set(classes) <= set(registry.schedules())
    assert all(isinstance(d, str) and d for d in registry.schedules().values())


def test_registry_warmup_builds_its_after_schedule_by_name():
    optimizer = _optimizer()
    scheduler = registry.schedule("warmup", optimizer, warmup_steps=20, after="sgdr", T_0=50, eta_min=1e-3)
    assert isinstance(scheduler.after, SGDR)
    lrs = _run(optimizer, scheduler, 200)
    _assert_close(lrs, [LR0 * (t + 1) / 20 if t < 20 else sgdr(t - 20, LR0, 1e-3, 50, 1) for t in range(200)])
    with pytest.raises(TypeError, match="takes no hyper-parameter"):
        registry.schedule("step", _optimizer(), step_size=3, milestones=[1])
    with pytest.raises(TypeError, match="unless after names a schedule"):
        registry.schedule("warmup", _optimizer(), warmup_steps=3, T_0=5)
