"""Build optimizers and schedules by name.

The lab and the CLI build everything through here. Hyper-parameters are passed
by the built class's own keyword names; a preset (``"nesterov"`` is ``SGD`` with
``momentum=0.9, nesterov=True``) only changes defaults, which the caller can
override.

Example:
    >>> import torch
    >>> from optzoo import registry
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = registry.optimizer("nesterov", [w], lr=0.1)
    >>> type(opt).__name__, opt.defaults["momentum"], opt.defaults["lr"]
    ('SGD', 0.9, 0.1)
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from torch.optim import Optimizer

from . import optim

__all__ = ["optimizer", "optimizers", "schedule", "schedules"]


@dataclass(frozen=True)
class _Entry:
    build_class: Callable[..., Any]
    description: str
    preset: dict[str, Any] = field(default_factory=dict)

    def build(self, first: Any, name: str, hyper: dict[str, Any]) -> Any:
        parameters = list(inspect.signature(self.build_class).parameters.values())[1:]
        accepted = [p.name for p in parameters if p.kind is not p.VAR_KEYWORD]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
        unknown = sorted(set(hyper) - set(accepted))
        if unknown and not takes_any:
            raise TypeError(
                f"{name!r} ({self.build_class.__name__}) takes no hyper-parameter {', '.join(unknown)}; "
                f"it accepts: {', '.join(accepted)}"
            )
        return self.build_class(first, **{**self.preset, **hyper})


def _lookahead(params: Iterable[Any], inner: str = "adam", k: int = 5, alpha: float = 0.5, **inner_hyper: Any):
    """Lookahead around any registered optimizer (``inner``), Adam by default."""
    return optim.Lookahead(optimizer(inner, params, **inner_hyper), k=k, alpha=alpha)


_OPTIMIZERS: dict[str, _Entry] = {
    "sgd": _Entry(optim.SGD, "gradient descent: batch, mini-batch or stochastic (the batch size decides)"),
    "momentum": _Entry(optim.SGD, "SGD with heavy-ball momentum 0.9", {"momentum": 0.9}),
    "ema-momentum": _Entry(
        optim.SGD, "SGD with momentum as an exponential moving average (dampening = momentum = 0.9)",
        {"momentum": 0.9, "dampening": 0.9},
    ),
    "nesterov": _Entry(optim.SGD, "SGD with Nesterov momentum 0.9", {"momentum": 0.9, "nesterov": True}),
    "adagrad": _Entry(optim.Adagrad, "Adagrad: step divided by the root of the summed squared gradients"),
    "rmsprop": _Entry(optim.RMSprop, "RMSProp: step divided by a moving RMS of the gradients"),
    "adadelta": _Entry(optim.Adadelta, "AdaDelta: RMSProp with units corrected by a moving RMS of the steps"),
    "adam": _Entry(optim.Adam, "Adam: momentum + RMSProp with bias correction"),
    "amsgrad": _Entry(optim.Adam, "AMSGrad: Adam with a non-decreasing second moment", {"amsgrad": True}),
    "adamw": _Entry(optim.AdamW, "AdamW: Adam with decoupled weight decay"),
    "adamax": _Entry(optim.Adamax, "AdaMax: Adam with the infinity norm"),
    "nadam": _Entry(optim.NAdam, "NAdam: Adam with Nesterov momentum"),
    "radam": _Entry(optim.RAdam, "RAdam: Adam with the variance of the adaptive step rectified"),
    "rprop": _Entry(optim.Rprop, "Rprop: sign-based steps with per-weight adaptive sizes (full batch)"),
    "adabound": _Entry(optim.AdaBound, "AdaBound: Adam whose step is clipped into bounds converging to SGD"),
    "amsbound": _Entry(optim.AdaBound, "AMSBound: AdaBound on AMSGrad", {"amsbound": True}),
    "lookahead": _Entry(_lookahead, "Lookahead: slow weights pulled towards k fast steps of an inner optimizer"),
    "ranger": _Entry(optim.Ranger, "Ranger: RAdam inside Lookahead"),
    "swats": _Entry(optim.SWATS, "SWATS: Adam that switches to SGD when its step settles"),
}


def _warmup(optimizer: Optimizer, warmup_steps: int, after: Any = None, **after_hyper: Any) -> Any:
    """Linear warm-up, then ``after``: a scheduler, or a registered schedule name built with ``after_hyper``."""
    from . import schedules as sched

    if isinstance(after, str):
        after = schedule(after, optimizer, **after_hyper)
    elif after_hyper:
        raise TypeError(
            f"'warmup' takes no hyper-parameter {', '.join(sorted(after_hyper))} unless after names a schedule"
        )
    return sched.WarmupLR(optimizer, warmup_steps, after=after)


def _schedule_table() -> dict[str, _Entry]:
    """The schedules, built on first use so that importing the registry stays light."""
    from torch.optim import lr_scheduler

    from . import schedules as sched

    inverse_time = "reciprocal eta_0 (1 + t/r)^-c: eta_0/t for c=1 (Robbins-Monro for 1/2 < c <= 1)"
    return {
        "step": _Entry(sched.StepDecay, "step decay: multiply the LR by gamma every step_size steps"),
        "piecewise": _Entry(sched.PiecewiseConstant, "piecewise constant: a pre-determined LR factor per interval"),
        "exponential": _Entry(sched.ExponentialDecay, "exponential decay eta_0 e^(-t/r)"),
        "inverse-time": _Entry(sched.InverseTimeLR, inverse_time),
        "reciprocal": _Entry(sched.InverseTimeLR, f"= inverse-time: {inverse_time}"),
        "warmup": _Entry(_warmup, "linear warm-up over warmup_steps, then any schedule (after=name or scheduler)"),
        "noam": _Entry(sched.NoamLR, "Transformer (Noam): linear warm-up, then 1/sqrt(step), scaled by d_model^-0.5"),
        "cyclical": _Entry(sched.CyclicalLR, "cyclical LR (Smith): triangular, triangular2 or exp_range cycles"),
        "sgdr": _Entry(sched.SGDR, "SGDR: cosine annealing with warm restarts (T_0, T_mult, eta_min)"),
        "plateau": _Entry(lr_scheduler.ReduceLROnPlateau, "performance-dependent: cut the LR when a metric stalls"),
        "onecycle": _Entry(lr_scheduler.OneCycleLR, "one cycle: warm up to max_lr, then anneal far below the start"),
    }


def _lookup(table: dict[str, _Entry], kind: str, name: str) -> _Entry:
    if not isinstance(name, str) or name.lower() not in table:
        raise ValueError(f"unknown {kind} {name!r}; choose one of: {', '.join(table)}")
    return table[name.lower()]


def optimizer(name: str, params: Iterable[Any], **hyper: Any) -> Optimizer:
    """Build the optimizer registered as ``name`` over ``params``.

    Raises ``ValueError`` for an unknown name (listing the valid ones) and
    ``TypeError`` for a hyper-parameter the optimizer does not take.
    """
    return _lookup(_OPTIMIZERS, "optimizer", name).build(params, name, hyper)


def optimizers() -> dict[str, str]:
    """Registered optimizer names with a one-line description each."""
    return {name: entry.description for name, entry in _OPTIMIZERS.items()}


def schedule(name: str, optimizer: Optimizer, **hyper: Any) -> Any:
    """Build the learning-rate schedule registered as ``name`` for ``optimizer``."""
    return _lookup(_schedule_table(), "schedule", name).build(optimizer, name, hyper)


def schedules() -> dict[str, str]:
    """Registered schedule names with a one-line description each."""
    return {name: entry.description for name, entry in _schedule_table().items()}
