r"""AdaBound and AMSBound: Adam (or AMSGrad) whose per-coordinate step size is clipped
between bounds that close in on an SGD learning rate.

Luo, Xiong, Liu & Sun, "Adaptive Gradient Methods with Dynamic Bound of Learning
Rate", ICLR 2019 (arXiv:1902.09843), Algorithms 2 and 3, as the authors' released
code (PyPI ``adabound`` 0.0.5) computes them. For step :math:`t = 1, 2, \dots` and
gradient :math:`g_t` (after ``maximize`` and coupled L2 weight decay
:math:`g_t \leftarrow g_t + \lambda\theta_{t-1}`):

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2
        \qquad (\text{AMSBound: } v_t \leftarrow \max(v_{t-1}^{max}, v_t)) \\
    \alpha^*_t &= \alpha_0 / \alpha_{base}\, \alpha^*
        \qquad (\text{the final, SGD, learning rate, following the schedule}) \\
    \eta_l(t) &= \alpha^*_t \,\bigl(1 - 1 / (\gamma t + 1)\bigr), \qquad
    \eta_u(t) = \alpha^*_t \,\bigl(1 + 1 / (\gamma t)\bigr) \\
    \hat\eta_t &= \mathrm{clip}\!\left(
        \frac{\alpha_0 \sqrt{1 - \beta_2^t} / (1 - \beta_1^t)}{\sqrt{v_t} + \epsilon},\;
        \eta_l(t),\; \eta_u(t)\right) \\
    \theta_t &= \theta_{t-1} - \hat\eta_t \odot m_t

where :math:`\alpha_0` is the group's current ``lr``, :math:`\alpha^*` is
``final_lr`` and :math:`\alpha_{base}` the group's ``lr`` when it was built. As
:math:`t \to \infty` both bounds tend to :math:`\alpha^*_t`: the method starts as
Adam and ends as SGD with momentum.

Deliberate choices and differences:

* The paper's Algorithm 2 (written for its convergence analysis) clips
  :math:`\alpha / \sqrt{V_t}`, then divides by :math:`\sqrt{t}`, and has no
  :math:`\epsilon` or bias correction; the authors' code (the oracle, and what
  everyone uses) does not divide by :math:`\sqrt{t}`, adds :math:`\epsilon` to
  :math:`\sqrt{v_t}` and folds the bias corrections into the step size before
  clipping. This follows the code.
* The authors scale ``final_lr`` by ``lr / base_lr`` so that an LR scheduler
  moves the bounds too, with ``base_lr`` remembered in a Python attribute when
  the optimizer is built, which a state dict does not carry (a run resumed in an
  optimizer built with another lr, the decayed one say, gets other bounds).
  Here the base is the group's ``initial_lr`` (torch's schedulers'
  own key, set to ``lr`` when the group is built), so it is saved and resumed
  with the group. A scheduler that rewrites ``initial_lr`` (``OneCycleLR``)
  changes the base accordingly. A group whose ``initial_lr`` is 0 has bounds 0.
* ``gamma=0`` is accepted (the authors' code accepts it and then divides by
  zero): the bounds are then :math:`[0, \infty)`, i.e. Adam with the authors'
  :math:`\epsilon` placement.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.ones(2))
    >>> opt = optzoo.AdaBound([w], lr=0.1, final_lr=1.0, gamma=0.5)  # bounds at t=1: [1/3, 3]
    >>> w.grad = torch.tensor([1.0, 0.25]); _ = opt.step()  # step sizes 1 and 4; 4 is clipped to 3
    >>> w.detach()  # Adam would take 0.1 on both
    tensor([0.9000, 0.9250])
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ._core import (
    Entry,
    ParamsT,
    StateSchema,
    ZooOptimizer,
    check_betas,
    check_bool,
    check_number,
    foreach_update_moments,
    update_moments,
)

__all__ = ["AdaBound"]


class AdaBound(ZooOptimizer):
    """AdaBound / AMSBound (see the module docstring for the update rule)."""

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("exp_avg"),
        Entry("exp_avg_sq"),
        Entry("max_exp_avg_sq", when="amsbound"),
    )
    native_kernel = "adabound"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        final_lr: float = 0.1,
        gamma: float = 1e-3,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsbound: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            final_lr=final_lr,
            gamma=gamma,
            eps=eps,
            weight_decay=weight_decay,
            amsbound=amsbound,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        check_number("final_lr", group["final_lr"], 0.0)
        check_number("gamma", group["gamma"], 0.0, 1.0, high_open=True)
        check_number("eps", group["eps"], 0.0)
        check_bool("amsbound", group["amsbound"])

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        group.setdefault("initial_lr", group["lr"])

    @staticmethod
    def _final_lr(group: dict[str, Any]) -> float:
        """alpha*_t: final_lr scaled by lr / initial_lr, so that it follows the schedule."""
        base = group["initial_lr"]
        return group["final_lr"] * group["lr"] / base if base else 0.0

    @classmethod
    def _bounds(cls, group: dict[str, Any], t: float) -> tuple[float, float]:
        """(eta_l(t), eta_u(t)): the clipping range at step t, final_lr following the schedule."""
        final_lr = cls._final_lr(group)
        gamma_t = group["gamma"] * t
        lower = final_lr * (1 - 1 / (gamma_t + 1))
        upper = final_lr * (1 + 1 / gamma_t) if gamma_t else math.inf
        return lower, upper

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]

        update_moments(m, v, grad, beta1, beta2)  # m_t = beta1 m + (1 - beta1) g; v_t = beta2 v + (1 - beta2) g^2
        if group["amsbound"]:
            v = torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])  # v_t = max(v_max, v_t)
        step_size = lr * math.sqrt(1 - beta2**t) / (1 - beta1**t)  # Adam's bias-corrected lr
        lower, upper = self._bounds(group, t)
        eta = (step_size / (v.sqrt() + eps)).clamp_(lower, upper)  # clip(step / (sqrt(v) + eps), eta_l, eta_u)
        param.sub_(eta * m)  # theta -= eta * m

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        # kernels/adabound.cpp computes the step size and the bounds per tensor (from the scaled
        # final_lr) with _reference_update's formulas.
        beta1, beta2 = group["betas"]
        return [group["lr"], beta1, beta2, group["eps"], self._final_lr(group), group["gamma"], group["amsbound"]]

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        foreach_update_moments(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        second = exp_avg_sqs
        if group["amsbound"]:
            second = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(second, exp_avg_sqs)
        ts = [step.item() for step in steps]
        bounds = [self._bounds(group, t) for t in ts]

        etas = torch._foreach_sqrt(second)
        torch._foreach_add_(etas, eps)
        torch._foreach_reciprocal_(etas)
        torch._foreach_mul_(etas, [lr * math.sqrt(1 - beta2**t) / (1 - beta1**t) for t in ts])
        # clamp_min/clamp_max rather than maximum/minimum: DTensor has sharding rules for these only.
        torch._foreach_clamp_min_(etas, [lower for lower, _ in bounds])
        torch._foreach_clamp_max_(etas, [upper for _, upper in bounds])
        torch._foreach_mul_(etas, exp_avgs)
        torch._foreach_sub_(params, etas)
