r"""Linear learning-rate warm-up, handing over to any scheduler.

Goyal et al., "Accurate, Large Minibatch SGD: Training ImageNet in 1 Hour",
2017, Section 2.2 (gradual warm-up); the course notes' "linear warmup" that
RAdam (Liu et al. 2020) explains as a variance fix for adaptive methods. For
:math:`t < w` (``warmup_steps``):

.. math::

    \eta_t = \eta^{target} \frac{t + 1}{w},

so the LR reaches :math:`\eta^{target}` at :math:`t = w - 1`. From :math:`t = w`
on, the ``after`` scheduler takes over (none: the LR stays at the target). The
target is where ``after`` starts, the LR its construction set (build ``after``
first, then the warm-up); without ``after`` it is the optimizer's initial lr.
The ``after`` scheduler is not stepped during the warm-up: at :math:`t = w` it
is at its own step 0, at :math:`t = w + k` at its step :math:`k`.

``after`` may be torch's ``ReduceLROnPlateau``: ``step(metrics)`` is then
forwarded from :math:`t = w` on (metrics passed during the warm-up are ignored,
the LR is still climbing). ``state_dict()`` includes the ``after`` scheduler's.

Robbins-Monro (see :func:`~optzoo.schedules.robbins_monro`): a warm-up changes
finitely many terms, so it is the verdict of ``after`` (alone: a constant LR, no).

Example:
    >>> import torch
    >>> from optzoo.schedules import StepDecay, WarmupLR
    >>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    >>> sched = WarmupLR(opt, warmup_steps=4, after=StepDecay(opt, step_size=2, gamma=0.5))
    >>> lrs = []
    >>> for _ in range(8):
    ...     lrs.append(opt.param_groups[0]["lr"]); opt.step(); sched.step()
    >>> lrs
    [0.25, 0.5, 0.75, 1.0, 1.0, 1.0, 0.5, 0.5]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, SupportsFloat

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import ReduceLROnPlateau

from ._base import FactorLR, _copy_lr, check_int, register_factor

__all__ = ["LinearWarmupFactor", "WarmupLR"]


@register_factor
@dataclass(frozen=True)
class LinearWarmupFactor:
    r""":math:`f(t) = \min(1, (t + 1)/w)`."""

    warmup_steps: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "warmup_steps", check_int("warmup_steps", self.warmup_steps, 1))

    def __call__(self, step: float) -> float:
        return min(1.0, (step + 1) / self.warmup_steps)


def _needs_metrics(scheduler: Any) -> bool:
    return isinstance(scheduler, ReduceLROnPlateau) or bool(getattr(scheduler, "needs_metrics", False))


class WarmupLR(FactorLR):
    r"""Linear warm-up over ``warmup_steps`` steps, then ``after`` (any scheduler, or none).

    Args:
        optimizer: the optimizer; ``after`` must schedule the same one.
        warmup_steps: an integer >= 1.
        after: a scheduler built on ``optimizer`` *before* this one, e.g.
            ``StepDecay``, ``SGDR``, torch's ``CosineAnnealingLR`` or
            ``ReduceLROnPlateau``; ``None`` keeps the LR constant after the warm-up.

    ``step()`` advances one step; when ``after`` is a ``ReduceLROnPlateau``, call
    ``step(metrics)`` (``needs_metrics`` is then True).
    """

    def __init__(
        self, optimizer: Optimizer, warmup_steps: int, after: Any = None, last_epoch: int = -1
    ) -> None:
        factor = LinearWarmupFactor(warmup_steps)
        targets = None
        if after is not None:
            for method in ("step", "state_dict", "load_state_dict"):
                if not callable(getattr(after, method, None)):
                    raise TypeError(f"after must be an LR scheduler (with {method}()), got {type(after).__name__}")
            if getattr(after, "optimizer", None) is not optimizer:
                raise ValueError("after must schedule the same optimizer as the warm-up")
            if last_epoch != -1:
                raise ValueError("last_epoch must be -1 when after is given; resume with load_state_dict()")
            targets = [float(g["lr"]) if isinstance(g["lr"], Tensor) else g["lr"] for g in optimizer.param_groups]
        self.after = after
        super().__init__(optimizer, factor, last_epoch, base_lr=targets)

    @property
    def warmup_steps(self) -> int:
        return self.factor_fn.warmup_steps

    @property
    def needs_metrics(self) -> bool:
        """Whether ``step`` wants ``metrics`` (``after`` is a ``ReduceLROnPlateau``)."""
        return _needs_metrics(self.after)

    def step(self, metrics: SupportsFloat | None = None) -> None:  # type: ignore[override]
        """Advance one step; ``metrics`` goes to a ``ReduceLROnPlateau`` after the warm-up."""
        if metrics is not None and not self.needs_metrics:
            raise TypeError("metrics is only taken when after is a ReduceLROnPlateau; call step()")
        if self.after is None or self.last_epoch + 1 < self.warmup_steps:
            super().step()
            return
        if self.needs_metrics and metrics is None:
            raise ValueError(
                f"the warm-up is over and {type(self.after).__name__} takes over: call step(metrics)"
            )
        self._step_count += 1
        self.last_epoch += 1
        if self.last_epoch == self.warmup_steps:
            self._set_lrs(self.base_lrs)  # where ``after`` starts, its step 0
        if self.needs_metrics:
            self.after.step(metrics)
        elif self.last_epoch > self.warmup_steps:
            self.after.step()
        self._last_lr = [_copy_lr(group["lr"]) for group in self.optimizer.param_groups]

    def state_dict(self) -> dict[str, Any]:
        """This schedule's state, with the ``after`` scheduler's own ``state_dict()`` under ``"after"``."""
        state = super().state_dict()
        state["after"] = None if self.after is None else self.after.state_dict()
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        state = dict(state_dict)
        after_state = state.pop("after", None)
        if (after_state is None) != (self.after is None):
            raise ValueError("the state dict and this WarmupLR disagree on whether there is an after scheduler")
        super().load_state_dict(state)
        if self.after is not None:
            self.after.load_state_dict(after_state)
