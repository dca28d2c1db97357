"""Capability-table rows for AdaBound, AMSBound, Lookahead (over Adam and over SGD momentum),
Ranger and SWATS.

Oracles: the AdaBound authors' code (PyPI ``adabound`` 0.0.5), torch-optimizer's
``Lookahead`` and pytorch_ranger's ``Ranger`` where their math agrees, and the
transcriptions in ``paper_wrappers.py``. The peers are used through thin test-only
shims that change no formula; each says what it adapts and why:

* ``maximize`` is given to an oracle that lacks it as negated gradients
  (maximising f is minimising -f), in both the authors' AdaBound and pytorch_ranger;
* torch-optimizer's Lookahead starts its slow weights after the first inner step and
  synchronises after steps 1, k+1, 2k+1, ...; its slow weights are started at theta_0
  and its counter at 1, which moves its synchronisations to steps k, 2k, ...
  (Algorithm 1), its own update code unchanged;
* pytorch_ranger computes in float32 whatever the parameters' dtype
  (``p.data.float()``): for float64 parameters its step runs with ``Tensor.float``
  returning float64 tensors unchanged, so it computes in float64.

The AdaBound authors' code uses torch's deprecated ``add_(scalar, tensor)`` overloads,
which torch 2.13 still accepts (with a warning, filtered in pyproject.toml): it runs
unchanged.

``convergence_drop``: what the default hyper-parameters must cut the loss by in 200
full-batch steps of logistic regression on digits; measured (torch 2.13 CPU) and
rounded down: see each row.
"""

from __future__ import annotations

import contextlib
import functools
import warnings

import adabound
import pytorch_ranger
import torch
import torch_optimizer

import optzoo
from harness import Case, Check
from paper_wrappers import KeskarSWATS, ZhangLookahead


def decaying(t: int) -> float:
    """An LR schedule, for the settings whose bounds or slow weights follow the lr."""
    return 0.97**t


def label(prefix: str, hyper: dict) -> str:
    return f"{prefix}," + ",".join(f"{k}={v}" for k, v in hyper.items())


def negating(cls):
    """``cls`` with a ``maximize`` keyword, given to it as negated gradients (its code unchanged)."""

    class Negated(cls):
        def __init__(self, params, maximize=False, **hyper):
            super().__init__(params, **hyper)
            self.maximize = maximize

        def step(self, closure=None):
            if self.maximize:
                for group in self.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.grad.neg_()
            return super().step(closure)

    Negated.__name__ = Negated.__qualname__ = f"Negated{cls.__name__}"
    return Negated


# -------------------------------------------------------------------- AdaBound
AuthorsAdaBound = negating(adabound.AdaBound)

ADABOUND_SETTINGS = [
    dict(lr=0.01, final_lr=0.1, gamma=0.1),  # both bounds bite within 60 steps
    dict(lr=1e-3),
    dict(lr=0.01, betas=(0.8, 0.99), final_lr=0.05, gamma=0.01, eps=1e-6),
    dict(lr=0.01, final_lr=0.1, gamma=0.1, weight_decay=0.1),
    dict(lr=0.01, final_lr=0.1, gamma=0.1, maximize=True),
    dict(lr=0.01, final_lr=0.1, gamma=0.1, weight_decay=0.05, maximize=True),
    dict(lr=0.03, final_lr=0.02, gamma=0.05),  # upper bound below Adam's steps early on
]

ADABOUND_BAD = [
    (dict(lr=-1e-3), "lr"),
    (dict(lr=float("nan")), "lr"),
    (dict(final_lr=-0.1), "final_lr"),
    (dict(gamma=-1e-3), "gamma"),
    (dict(gamma=1.0), "gamma"),
    (dict(eps=-1e-8), "eps"),
    (dict(betas=(1.0, 0.999)), "betas[0]"),
    (dict(betas=(0.9, -0.1)), "betas[1]"),
    (dict(betas=(0.9,)), "betas"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(amsbound=1), "amsbound"),
    (dict(maximize="yes"), "maximize"),
]

AdaBound = Case(
    name="AdaBound",
    native="adabound",
    make=optzoo.AdaBound,
    oracle_name="the authors' code (PyPI adabound 0.0.5)",
    checks=[Check(h, AuthorsAdaBound) for h in ADABOUND_SETTINGS]
    + [
        Check(dict(lr=0.01, final_lr=0.1, gamma=0.1), AuthorsAdaBound, lr_factors=decaying,
              label="schedule-moves-the-bounds"),
    ],
    bad_inputs=ADABOUND_BAD,
    convergence_drop=0.7,  # measured 0.79-0.80
)

AMSBOUND_SETTINGS = [
    dict(lr=0.01, final_lr=0.1, gamma=0.1),
    dict(lr=1e-3),
    dict(lr=0.01, betas=(0.8, 0.99), final_lr=0.05, gamma=0.01, weight_decay=0.1),
    dict(lr=0.01, final_lr=0.1, gamma=0.1, weight_decay=0.05, maximize=True),
]

AMSBound = Case(
    name="AMSBound",
    native="adabound",
    make=functools.partial(optzoo.AdaBound, amsbound=True),
    oracle_name="the authors' code (PyPI adabound 0.0.5), amsbound=True",
    checks=[Check(h, functools.partial(AuthorsAdaBound, amsbound=True)) for h in AMSBOUND_SETTINGS]
    + [
        Check(dict(lr=0.01, final_lr=0.1, gamma=0.1), functools.partial(AuthorsAdaBound, amsbound=True),
              lr_factors=decaying, label="schedule-moves-the-bounds"),
    ],
    bad_inputs=ADABOUND_BAD,
    convergence_drop=0.7,  # measured 0.79-0.80
)


# ------------------------------------------------------------------- Lookahead
def lookahead_adam(params, k=5, alpha=0.5, **hyper):
    """Lookahead(optzoo.Adam(params, **hyper), k, alpha)."""
    return optzoo.Lookahead(optzoo.Adam(params, **hyper), k=k, alpha=alpha)


def lookahead_sgd(params, k=5, alpha=0.5, momentum=0.9, **hyper):
    """Lookahead(optzoo.SGD(params, momentum=0.9, **hyper), k, alpha)."""
    return optzoo.Lookahead(optzoo.SGD(params, momentum=momentum, **hyper), k=k, alpha=alpha)


def aligned_torch_optimizer_lookahead(params, inner, k, alpha, **hyper):
    """torch-optimizer's Lookahead over ``inner``, its update code unchanged, started as Algorithm 1 is:
    slow weights theta_0 (it would take them after the first inner step) and its counter at 1 (it would
    synchronise after steps 1, k+1, 2k+1, ...; from 1 it does after steps k, 2k, ...)."""
    lookahead = torch_optimizer.Lookahead(inner(params, **hyper), k=k, alpha=alpha)
    for group in lookahead.param_groups:
        for p in group["params"]:
            lookahead.state[p]["slow_param"] = p.detach().clone()
        group["counter"] = 1 % k
    return lookahead


LOOKAHEAD_ADAM_SETTINGS = [
    dict(k=5, alpha=0.5, lr=0.01),
    dict(k=3, alpha=0.8, lr=0.01),
    dict(k=1, alpha=0.5, lr=0.01),
    dict(k=5, alpha=1.0, lr=0.01),
    dict(k=1, alpha=0.8, lr=0.02, betas=(0.8, 0.99)),
    dict(k=3, alpha=0.5, lr=0.01, weight_decay=0.1, amsgrad=True),
    dict(k=5, alpha=0.8, lr=0.01, maximize=True),
    dict(k=3, alpha=0.5, lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
]

LOOKAHEAD_BAD = [
    (dict(k=0), "k"),
    (dict(k=-3), "k"),
    (dict(k=2.5), "k"),
    (dict(k=True), "k"),
    (dict(alpha=-0.1), "alpha"),
    (dict(alpha=1.5), "alpha"),
    (dict(alpha=float("nan")), "alpha"),
    (dict(lr=-0.1), "lr"),
]

LookaheadAdam = Case(
    name="Lookahead-Adam",
    make=lookahead_adam,
    fused=True,
    native="lookahead",  # the synchronisation, every k-th step
    oracle_name="Zhang et al. 2019 Algorithm 1 over torch.optim.Adam (transcribed); torch-optimizer's Lookahead",
    checks=[
        Check(h, functools.partial(ZhangLookahead, inner=torch.optim.Adam)) for h in LOOKAHEAD_ADAM_SETTINGS
    ]
    + [
        Check(dict(k=3, alpha=0.5, lr=0.01), functools.partial(ZhangLookahead, inner=torch.optim.Adam),
              lr_factors=decaying, label="under-schedule"),
    ]
    + [
        Check(h, functools.partial(aligned_torch_optimizer_lookahead, inner=torch.optim.Adam),
              label=label("torch-optimizer", h))
        for h in (dict(k=5, alpha=0.5, lr=0.01), dict(k=1, alpha=0.8, lr=0.01), dict(k=3, alpha=1.0, lr=0.01))
    ],
    bad_inputs=[*LOOKAHEAD_BAD, (dict(betas=(0.9, 1.0)), "betas[1]"), (dict(eps=-1.0), "eps")],
    convergence_drop=0.55,  # measured 0.62-0.64
)

LOOKAHEAD_SGD_SETTINGS = [
    dict(k=5, alpha=0.5, lr=0.05, momentum=0.9),
    dict(k=3, alpha=0.8, lr=0.05, momentum=0.9),
    dict(k=1, alpha=0.5, lr=0.05, momentum=0.9),
    dict(k=5, alpha=1.0, lr=0.05, momentum=0.9),
    dict(k=3, alpha=0.8, lr=0.05, momentum=0.9, nesterov=True),
    dict(k=3, alpha=0.5, lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.1, maximize=True),
]

LookaheadSGD = Case(
    name="Lookahead-SGD",
    make=lookahead_sgd,
    fused=True,
    sparse=True,  # the inner SGD takes sparse gradients; the synchronisation touches parameters only
    oracle_name="Zhang et al. 2019 Algorithm 1 over torch.optim.SGD (transcribed); torch-optimizer's Lookahead",
    checks=[Check(h, functools.partial(ZhangLookahead, inner=torch.optim.SGD)) for h in LOOKAHEAD_SGD_SETTINGS]
    + [
        Check(dict(k=5, alpha=0.5, lr=0.05, momentum=0.9),
              functools.partial(ZhangLookahead, inner=torch.optim.SGD), lr_factors=decaying, label="under-schedule"),
    ]
    + [
        Check(h, functools.partial(aligned_torch_optimizer_lookahead, inner=torch.optim.SGD),
              label=label("torch-optimizer", h))
        for h in (dict(k=5, alpha=0.5, lr=0.05, momentum=0.9), dict(k=1, alpha=0.8, lr=0.05, momentum=0.9))
    ],
    bad_inputs=[*LOOKAHEAD_BAD, (dict(momentum=1.5), "momentum")],
    convergence_drop=0.4,  # measured 0.48-0.51 (lr=1e-3)
)


# ---------------------------------------------------------------------- Ranger
def paper_ranger(params, lr=1e-3, betas=(0.95, 0.999), eps=1e-5, weight_decay=0.0, k=6, alpha=0.5,
                 maximize=False):
    """Algorithm 1 (transcribed) over torch.optim.RAdam, with Ranger's defaults."""
    return ZhangLookahead(params, torch.optim.RAdam, k, alpha, lr=lr, betas=betas, eps=eps,
                          weight_decay=weight_decay, maximize=maximize)


@contextlib.contextmanager
def _float_keeps_float64():
    original = torch.Tensor.float

    def float_(self, *args, **kwargs):
        return self if self.dtype == torch.float64 else original(self, *args, **kwargs)

    torch.Tensor.float = float_
    try:
        yield
    finally:
        torch.Tensor.float = original


class ReferenceRanger(negating(pytorch_ranger.Ranger)):
    """pytorch_ranger's Ranger (0.1.1), its code unchanged, computing in the parameters' dtype:
    its step calls ``.float()``, which would round float64 parameters to float32 every step."""

    def step(self, closure=None):
        with _float_keeps_float64(), warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # its deprecated add_(scalar, tensor) overloads
            return super().step(closure)


RANGER_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.01, k=3, alpha=0.8, betas=(0.9, 0.99)),
    dict(lr=0.03, k=1, alpha=0.5, eps=1e-8),
    dict(lr=0.01, k=6, alpha=1.0),
    dict(lr=0.01, maximize=True),
]

Ranger = Case(
    name="Ranger",
    native="radam",
    make=optzoo.Ranger,
    oracle_name="Algorithm 1 over torch.optim.RAdam (transcribed); pytorch_ranger 0.1.1 with weight_decay=0",
    checks=[Check(h, paper_ranger, label=label("paper", h)) for h in RANGER_SETTINGS]
    + [
        Check(dict(lr=0.01, weight_decay=0.1), paper_ranger, label="paper,coupled-decay"),
        Check(dict(lr=0.01, k=4, weight_decay=0.05, maximize=True), paper_ranger, label="paper,decay-maximize"),
        Check(dict(lr=0.01, k=4), paper_ranger, lr_factors=decaying, label="paper,under-schedule"),
    ]
    + [Check(h, ReferenceRanger, label=label("pytorch_ranger", h)) for h in RANGER_SETTINGS]
    + [Check(dict(lr=0.01, k=4), ReferenceRanger, lr_factors=decaying, label="pytorch_ranger,under-schedule")],
    bad_inputs=[
        *LOOKAHEAD_BAD,
        (dict(betas=(0.95, 1.0)), "betas[1]"),
        (dict(betas=(-0.1, 0.999)), "betas[0]"),
        (dict(eps=-1e-5), "eps"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(maximize=1), "maximize"),
    ],
    convergence_drop=0.15,  # measured 0.20-0.21: lr=1e-3, RAdam's slow start (0.35), and pulled half-way back
)


# ----------------------------------------------------------------------- SWATS
# Settings chosen so that, on the harness's problem, tensors switch at different steps and some
# never: (switch step of each of the 4 tensors; None = stays Adam within 60 steps). Every switch
# test along these trajectories passes or fails by at least 1.4% of eps in both precisions (measured
# on the transcription), far beyond the paths' rounding differences (about 1e-6 relative). The
# resume test (stop at 11 of 30) crosses a switch in each of the first five.
SWATS_SETTINGS = [
    dict(lr=1e-3, eps=1e-5),  # [13, None, 2, 2]
    dict(lr=1e-3, betas=(0.9, 0.99), eps=1e-4, nesterov=True),  # [14, 10, 2, 2]
    dict(lr=3e-3, eps=1e-3, weight_decay=0.1),  # [2, 17, 2, 2]
    dict(lr=1e-3, betas=(0.9, 0.99), eps=1e-4, weight_decay=0.05, nesterov=True, maximize=True),  # [2, 19, 2, 2]
    dict(lr=1e-3, betas=(0.9, 0.99), eps=1e-4),  # [14, 10, 2, 2]
    dict(lr=1e-3, eps=1e-5, maximize=True),  # [44, None, 2, 2]
    dict(lr=1e-3, eps=1e-6),  # [9, 3, None, None]
    dict(lr=0.01),  # eps=1e-9: no switch, Adam all along
]

SWATS = Case(
    name="SWATS",
    native="swats",
    make=optzoo.SWATS,
    oracle_name="Keskar & Socher 2017 Algorithm 1 per parameter tensor (transcribed, DESIGN.md)",
    checks=[Check(h, functools.partial(KeskarSWATS, betas=(0.9, 0.999), eps=1e-9)) for h in SWATS_SETTINGS],
    bad_inputs=[
        (dict(lr=-1e-3), "lr"),
        (dict(eps=-1e-9), "eps"),
        (dict(betas=(1.0, 0.999)), "betas[0]"),
        (dict(betas=(0.9, 1.0)), "betas[1]"),
        (dict(weight_decay=-0.1), "weight_decay"),
        (dict(nesterov=1), "nesterov"),
        (dict(maximize="yes"), "maximize"),
    ],
    convergence_drop=0.7,  # measured 0.79-0.80: with eps=1e-9 it stays Adam here
)

CASES = [AdaBound, AMSBound, LookaheadAdam, LookaheadSGD, Ranger, SWATS]
