"""Capability-table rows for Adagrad, RMSprop, Adadelta, Adamax, NAdam, RAdam and Rprop.

Every setting is compared with torch.optim over a whole trajectory; the paper-form
options (and the defaults that equal a paper) also with the transcriptions in
``paper_adaptive.py``.

``convergence_drop``: what the default hyper-parameters must cut the loss by in 200
full-batch steps of logistic regression on digits. Measured (torch 2.13 CPU, five
initialisations, every path): Adagrad 0.84-0.85, RMSprop 0.98, Adadelta 0.94,
Adamax 0.84-0.85, NAdam 0.87-0.88, RAdam 0.35-0.37 (lr=1e-3 and no adaptive step
for the first 5 steps), Rprop 1.00; each margin below is a round number under that.
"""

from __future__ import annotations

import torch

import optzoo
from harness import Case, Check
from paper_adaptive import (
    DuchiAdagrad,
    GravesRMSProp,
    HintonRMSProp,
    IgelRpropMinus,
    KingmaAdamax,
    LiuRAdam,
    ZeilerAdadelta,
)


def decaying(t: int) -> float:
    """An LR schedule, for the settings whose lr enters state (decoupled decay, lr_decay)."""
    return 0.97**t


def label(prefix: str, hyper: dict) -> str:
    return f"{prefix}," + ",".join(f"{k}={v}" for k, v in hyper.items())


def common_bad(*names: str) -> list[tuple[dict, str]]:
    """Bad values of the hyper-parameters most optimizers share."""
    rows = {
        "lr": [(dict(lr=-0.1), "lr"), (dict(lr=float("nan")), "lr"), (dict(lr="fast"), "lr")],
        "eps": [(dict(eps=-1e-8), "eps")],
        "weight_decay": [(dict(weight_decay=-0.1), "weight_decay")],
        "betas": [
            (dict(betas=(1.0, 0.999)), "betas[0]"),
            (dict(betas=(-0.1, 0.999)), "betas[0]"),
            (dict(betas=(0.9, 1.5)), "betas[1]"),
            (dict(betas=(0.9,)), "betas"),
        ],
        "maximize": [(dict(maximize="yes"), "maximize")],
        "foreach": [(dict(foreach=1), "foreach")],
    }
    return [row for name in names for row in rows[name]]


# --------------------------------------------------------------------- Adagrad
ADAGRAD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, lr_decay=0.01),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.1, initial_accumulator_value=0.5),
    dict(lr=0.1, maximize=True),
    dict(lr=0.05, lr_decay=0.05, weight_decay=0.05, initial_accumulator_value=0.1, eps=1e-6, maximize=True),
]

Adagrad = Case(
    name="Adagrad",
    make=optzoo.Adagrad,
    complex=True,
    sparse=True,
    fused=True,
    oracle_name="torch.optim.Adagrad; Duchi et al. 2011 (diagonal) transcribed",
    checks=[Check(h, torch.optim.Adagrad) for h in ADAGRAD_SETTINGS]
    + [Check(dict(lr=0.1, lr_decay=0.02), torch.optim.Adagrad, lr_factors=decaying, label="lr_decay-under-schedule")]
    + [
        Check(h, DuchiAdagrad, oracle_hyper={"eps": 1e-10, **h}, label=label("duchi", h))
        for h in (
            dict(lr=0.1),
            dict(lr=0.1, initial_accumulator_value=0.5),
            dict(lr=0.1, lr_decay=0.05, initial_accumulator_value=0.1),
        )
    ],
    bad_inputs=[
        *common_bad("lr", "eps", "weight_decay", "maximize", "foreach"),
        (dict(lr_decay=-0.01), "lr_decay"),
        (dict(initial_accumulator_value=-0.1), "initial_accumulator_value"),
        (dict(initial_accumulator_value=float("inf")), "initial_accumulator_value"),
    ],
    convergence_drop=0.7,  # measured 0.84
)

# --------------------------------------------------------------------- RMSprop
RMSPROP_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.01, alpha=0.9, eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, momentum=0.9),
    dict(lr=0.01, centered=True),
    dict(lr=0.005, momentum=0.8, centered=True, weight_decay=0.05),
    dict(lr=0.01, maximize=True),
    dict(lr=0.01, momentum=0.5, centered=True, weight_decay=0.1, maximize=True),
]

RMSprop = Case(
    name="RMSprop",
    native="rmsprop",
    make=optzoo.RMSprop,
    complex=True,
    oracle_name="torch.optim.RMSprop; Hinton's lecture 6e, the course notes and Graves 2013 transcribed",
    checks=[Check(h, torch.optim.RMSprop) for h in RMSPROP_SETTINGS]
    + [
        Check(dict(lr=0.01, eps=1e-8, eps_inside_sqrt=True), HintonRMSProp,
              oracle_hyper=dict(lr=0.01, alpha=0.99, eps=1e-8, eps_inside_sqrt=True), label="hinton-6e-eps-inside"),
        Check(dict(lr=0.01, eps=1e-8, init_with_first_grad=True), HintonRMSProp,
              oracle_hyper=dict(lr=0.01, alpha=0.99, eps=1e-8, first_grad_start=True), label="course-notes-v1=g0^2"),
        Check(dict(lr=0.01, alpha=0.9, eps=0.0, eps_inside_sqrt=True, init_with_first_grad=True), HintonRMSProp,
              oracle_hyper=dict(lr=0.01, alpha=0.9, eps=0.0, eps_inside_sqrt=True, first_grad_start=True),
              label="seed-001-literal-no-eps"),
        Check(dict(lr=0.01, alpha=0.95, eps=1e-4, momentum=0.9, centered=True, eps_inside_sqrt=True), GravesRMSProp,
              oracle_hyper=dict(lr=0.01, alpha=0.95, momentum=0.9, eps=1e-4), label="graves-2013-eq38-41"),
    ],
    bad_inputs=[
        *common_bad("lr", "eps", "weight_decay", "maximize", "foreach"),
        (dict(alpha=-0.1), "alpha"),
        (dict(alpha=1.5), "alpha"),
        (dict(momentum=-0.5), "momentum"),
        (dict(momentum=1.5), "momentum"),
        (dict(centered=1), "centered"),
        (dict(eps_inside_sqrt="no"), "eps_inside_sqrt"),
        (dict(init_with_first_grad=None), "init_with_first_grad"),
    ],
    convergence_drop=0.9,  # measured 0.98
)

# -------------------------------------------------------------------- Adadelta
ADADELTA_SETTINGS = [
    dict(lr=1.0),
    dict(lr=0.5, rho=0.95, eps=1e-5),
    dict(lr=1.0, weight_decay=0.1),
    dict(lr=1.0, maximize=True),
    dict(lr=2.0, rho=0.8, weight_decay=0.05, maximize=True),
]

Adadelta = Case(
    name="Adadelta",
    native="adadelta",
    make=optzoo.Adadelta,
    complex=True,
    oracle_name="torch.optim.Adadelta; Zeiler 2012 Algorithm 1 transcribed",
    checks=[Check(h, torch.optim.Adadelta) for h in ADADELTA_SETTINGS]
    + [
        Check(dict(lr=1.0, rho=rho, eps=eps), ZeilerAdadelta, oracle_hyper=dict(rho=rho, eps=eps),
              label=f"zeiler-algorithm-1,rho={rho},eps={eps}")
        for rho, eps in ((0.9, 1e-6), (0.95, 1e-8))
    ],
    bad_inputs=[
        *common_bad("lr", "eps", "weight_decay", "maximize", "foreach"),
        (dict(rho=-0.1), "rho"),
        (dict(rho=1.5), "rho"),
        (dict(rho=None), "rho"),
    ],
    convergence_drop=0.8,  # measured 0.94
)

# ---------------------------------------------------------------------- Adamax
ADAMAX_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, maximize=True),
    dict(lr=0.01, weight_decay=0.1, maximize=True),
]

Adamax = Case(
    name="Adamax",
    native="adamax",
    make=optzoo.Adamax,
    complex=True,
    oracle_name="torch.optim.Adamax; Kingma & Ba 2015 Algorithm 2 transcribed (eps=0)",
    checks=[Check(h, torch.optim.Adamax) for h in ADAMAX_SETTINGS]
    + [
        Check(dict(lr=0.01, betas=betas, eps=0.0), KingmaAdamax, oracle_hyper=dict(lr=0.01, betas=betas),
              label=f"kingma-algorithm-2,betas={betas}")
        for betas in ((0.9, 0.999), (0.8, 0.9))
    ],
    bad_inputs=common_bad("lr", "eps", "weight_decay", "betas", "maximize", "foreach"),
    convergence_drop=0.7,  # measured 0.84
)

# ----------------------------------------------------------------------- NAdam
NADAM_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, momentum_decay=0.01),
    dict(lr=0.01, momentum_decay=0.0),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    dict(lr=0.01, maximize=True),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True, maximize=True),
]

NAdam = Case(
    name="NAdam",
    native="nadam",
    make=optzoo.NAdam,
    complex=True,
    oracle_name="torch.optim.NAdam",
    checks=[Check(h, torch.optim.NAdam) for h in NADAM_SETTINGS]
    + [
        Check(dict(lr=0.01, weight_decay=0.2, decoupled_weight_decay=True), torch.optim.NAdam, lr_factors=decaying,
              label="decoupled-under-schedule"),
        # mu_product = prod mu_t (~0.45^t) reaches float32's subnormals and then 0 past step 130
        Check(dict(lr=0.01), torch.optim.NAdam, steps=160, label="mu_product-underflow"),
    ],
    bad_inputs=[
        *common_bad("lr", "eps", "weight_decay", "betas", "maximize", "foreach"),
        (dict(momentum_decay=-0.004), "momentum_decay"),
        (dict(decoupled_weight_decay="yes"), "decoupled_weight_decay"),
    ],
    convergence_drop=0.7,  # measured 0.87
)

# ----------------------------------------------------------------------- RAdam
RADAM_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    dict(lr=0.01, maximize=True),
    dict(lr=0.01, weight_decay=0.05, decoupled_weight_decay=True, maximize=True),
]

RAdam = Case(
    name="RAdam",
    native="radam",
    make=optzoo.RAdam,
    complex=True,
    oracle_name="torch.optim.RAdam; Liu et al. 2020 Algorithm 2 transcribed",
    checks=[Check(h, torch.optim.RAdam) for h in RADAM_SETTINGS]
    + [
        Check(dict(lr=0.01, weight_decay=0.2, decoupled_weight_decay=True), torch.optim.RAdam, lr_factors=decaying,
              label="decoupled-under-schedule"),
        # rho_5 = 4.996 (beta2 = 0.999): the paper's rho_t > 4 rectifies step 5, torch's > 5 does not
        Check(dict(lr=0.01, rectify_threshold=4.0), LiuRAdam,
              oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, threshold=4.0), label="liu-algorithm-2"),
        Check(dict(lr=0.01, betas=(0.8, 0.99), rectify_threshold=4.0), LiuRAdam,
              oracle_hyper=dict(lr=0.01, betas=(0.8, 0.99), eps=1e-8, threshold=4.0), label="liu-algorithm-2,betas"),
        Check(dict(lr=0.01, rectify_threshold=7.5), LiuRAdam,
              oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, threshold=7.5), label="threshold-7.5"),
        Check(dict(lr=0.01), LiuRAdam, oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, threshold=5.0),
              label="liu-transcription-at-torch-threshold"),
    ],
    bad_inputs=[
        *common_bad("lr", "eps", "weight_decay", "betas", "maximize", "foreach"),
        (dict(rectify_threshold=3.9), "rectify_threshold"),
        (dict(rectify_threshold=float("nan")), "rectify_threshold"),
        (dict(decoupled_weight_decay=1), "decoupled_weight_decay"),
    ],
    convergence_drop=0.25,  # measured 0.35: lr=1e-3, and the first 5 steps are momentum-SGD steps
)

# ----------------------------------------------------------------------- Rprop
RPROP_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2)),
    dict(lr=0.01, maximize=True),
    dict(lr=0.001, etas=(0.5, 1.1), step_sizes=(0.0, 1.0), maximize=True),
]

Rprop = Case(
    name="Rprop",
    native="rprop",
    make=optzoo.Rprop,
    complex=True,
    oracle_name="torch.optim.Rprop; Igel & Hüsken 2000 iRprop- transcribed",
    checks=[Check(h, torch.optim.Rprop) for h in RPROP_SETTINGS]
    + [
        Check(h, IgelRpropMinus, oracle_hyper={"etas": (0.5, 1.2), "step_sizes": (1e-6, 50), **h},
              label=label("igel-irprop-minus", h))
        for h in (dict(lr=0.01), dict(lr=0.05, etas=(0.3, 1.5), step_sizes=(1e-4, 0.2)))
    ],
    bad_inputs=[
        *common_bad("lr", "maximize", "foreach"),
        (dict(etas=(1.5, 1.2)), "etas[0]"),
        (dict(etas=(0.0, 1.2)), "etas[0]"),
        (dict(etas=(0.5, 1.0)), "etas[1]"),
        (dict(etas=(0.5,)), "etas"),
        (dict(step_sizes=(-1e-6, 50)), "step_sizes[0]"),
        (dict(step_sizes=(1.0, 0.5)), "step_sizes[1]"),
        (dict(step_sizes=0.5), "step_sizes"),
    ],
    convergence_drop=0.9,  # measured 1.00
)

CASES = [Adagrad, RMSprop, Adadelta, Adamax, NAdam, RAdam, Rprop]
