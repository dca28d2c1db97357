"""Capability-table rows for SGD, Adam and AdamW."""

from __future__ import annotations

import torch

import optzoo
from harness import Case, Check
from paper_sgd_adam import LoshchilovAdamW, ReddiAMSGrad, SeedAdam, SutskeverSGD


def decaying(t: int) -> float:
    """An LR schedule for the checks whose forms differ only when the LR changes."""
    return 0.97**t


SGD_SETTINGS = [
    dict(lr=0.1),
    dict(lr=0.1, weight_decay=0.1),
    dict(lr=0.1, maximize=True),
    dict(lr=0.05, momentum=0.9),
    dict(lr=0.05, momentum=0.9, dampening=0.9),  # EMA form
    dict(lr=0.05, momentum=0.8, dampening=0.3, weight_decay=0.05),
    dict(lr=0.05, momentum=0.9, nesterov=True),
    dict(lr=0.05, momentum=0.9, nesterov=True, weight_decay=0.1, maximize=True),
]

SGD = Case(
    name="SGD",
    make=optzoo.SGD,
    complex=True,
    sparse=True,
    fused=True,
    oracle_name="torch.optim.SGD; Sutskever et al. 2013 transcription for velocity_form",
    checks=[Check(h, torch.optim.SGD) for h in SGD_SETTINGS]
    + [
        Check({**h, "velocity_form": True}, SutskeverSGD, oracle_hyper=h, lr_factors=decaying,
              label=f"velocity_form,{','.join(f'{k}={v}' for k, v in h.items())}")
        for h in (dict(lr=0.05, momentum=0.9), dict(lr=0.05, momentum=0.9, dampening=0.5),
                  dict(lr=0.05, momentum=0.9, nesterov=True))
    ]
    + [Check(dict(lr=0.05, momentum=0.9, nesterov=True), torch.optim.SGD, lr_factors=decaying,
             label="nesterov-under-schedule")],
    bad_inputs=[
        (dict(lr=-0.1), "lr"),
        (dict(lr=float("nan")), "lr"),
        (dict(momentum=-0.5), "momentum"),
        (dict(momentum=1.5), "momentum"),
        (dict(dampening=2.0), "dampening"),
        (dict(weight_decay=-1.0), "weight_decay"),
        (dict(nesterov=True), "nesterov"),
        (dict(lr="fast"), "lr"),
        (dict(maximize="yes"), "maximize"),
    ],
    convergence_drop=0.1,  # lr=1e-3 is torch's default: slow but steady
)

ADAM_SETTINGS = [
    dict(lr=0.01),
    dict(lr=0.02, betas=(0.8, 0.99), eps=1e-6),
    dict(lr=0.01, weight_decay=0.1),
    dict(lr=0.01, amsgrad=True),
    dict(lr=0.01, amsgrad=True, weight_decay=0.05, maximize=True),
    dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True),
    dict(lr=0.01, maximize=True),
]

ADAM_BAD = [
    (dict(lr=-1e-3), "lr"),
    (dict(eps=-1e-8), "eps"),
    (dict(betas=(1.0, 0.999)), "betas[0]"),
    (dict(betas=(0.9, -0.1)), "betas[1]"),
    (dict(betas=(0.9,)), "betas"),
    (dict(weight_decay=-0.1), "weight_decay"),
    (dict(amsgrad=1), "amsgrad"),
]

Adam = Case(
    name="Adam",
    make=optzoo.Adam,
    complex=True,
    fused=True,
    oracle_name="torch.optim.Adam; Reddi et al. 2018, Loshchilov & Hutter 2019 and the course notes transcribed",
    checks=[Check(h, torch.optim.Adam) for h in ADAM_SETTINGS]
    + [
        Check(dict(lr=0.01, eps=1e-8, eps_inside_sqrt=True), SeedAdam,
              oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8), label="seed-form"),
        Check(dict(lr=0.01, amsgrad=True, amsgrad_bias_correction=False), ReddiAMSGrad,
              oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8), label="reddi-amsgrad"),
        Check(dict(lr=0.01, amsgrad=True, amsgrad_bias_correction=False, eps_inside_sqrt=True, eps=1e-6),
              ReddiAMSGrad, oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-6, eps_inside_sqrt=True),
              label="seed-amsgrad"),
        Check(dict(lr=0.01, weight_decay=0.5, decoupled_weight_decay=True, decay_scaled_by_lr=False),
              LoshchilovAdamW, oracle_hyper=dict(lr=0.01, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.5),
              lr_factors=decaying, label="paper-adamw-scheduled"),
    ],
    bad_inputs=ADAM_BAD,
)

AdamW = Case(
    name="AdamW",
    make=optzoo.AdamW,
    complex=True,
    fused=True,
    oracle_name="torch.optim.AdamW",
    checks=[
        Check(h, torch.optim.AdamW)
        for h in (dict(lr=0.01), dict(lr=0.01, weight_decay=0.2), dict(lr=0.01, amsgrad=True, maximize=True))
    ],
    bad_inputs=ADAM_BAD,
)

CASES = [SGD, Adam, AdamW]
