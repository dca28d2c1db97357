r"""SWATS: start with Adam, switch to SGD with momentum once Adam's step size, projected
onto the gradient, has settled; each parameter tensor switches on its own.

Keskar & Socher, "Improving Generalization Performance by Switching from Adam to
SGD", arXiv:1712.07628 (2017), Algorithm 1, with the projection and the switch
test computed per parameter tensor. For a tensor's step :math:`k = 1, 2, \dots`
and gradient :math:`g_k` (after ``maximize``, then coupled L2 weight decay
:math:`g_k \leftarrow g_k + \lambda_{wd}\, x_{k-1}`; in both phases):

Adam phase:

.. math::

    m_k &= \beta_1 m_{k-1} + (1 - \beta_1)\, g_k, \qquad
    a_k = \beta_2 a_{k-1} + (1 - \beta_2)\, g_k^2 \\
    p_k &= -\eta\, \frac{\sqrt{1 - \beta_2^k}}{1 - \beta_1^k}\,
           \frac{m_k}{\sqrt{a_k} + \epsilon}, \qquad x_k = x_{k-1} + p_k

and, if :math:`p_k^\top g_k \ne 0` (sums over the whole tensor):

.. math::

    \gamma_k &= \frac{p_k^\top p_k}{-p_k^\top g_k}
        \qquad (\text{the SGD step along } g_k \text{ whose projection on } p_k \text{ is } p_k) \\
    \lambda_k &= \beta_2 \lambda_{k-1} + (1 - \beta_2)\, \gamma_k

and if :math:`k > 1` and :math:`|\lambda_k / (1 - \beta_2^k) - \gamma_k| < \epsilon`,
the tensor switches to SGD for good with :math:`\Lambda = \lambda_k / (1 - \beta_2^k)`
and :math:`v = 0`.

SGD phase:

.. math::

    v_k = \beta_1 v_{k-1} + g_k, \qquad x_k = x_{k-1} - (1 - \beta_1)\, \Lambda\, v_k
    \qquad (\text{Nesterov: } g_k + \beta_1 v_k \text{ in place of } v_k)

Deliberate choices and differences:

* The projection and the switch are per parameter tensor, as the paper's
  Algorithm 1 is written for one parameter vector. Both published ports
  (Mrpatekful/swats and torch-optimizer's ``SWATS``, 0.3.0, which follows it)
  switch a whole parameter group, as soon as one of its tensors passes a
  relative test (torch-optimizer: ``allclose(..., rtol=1e-6)`` and
  :math:`\Lambda > 0`), and then set the group's ``lr`` to that tensor's
  :math:`\Lambda`. torch-optimizer's SGD phase also multiplies its momentum
  buffer in place by :math:`1 - \beta_1` every step (a bug that shrinks
  :math:`v`). Neither is therefore an oracle: the tests compare with a
  transcription of the algorithm above.
* :math:`\epsilon` is both Adam's denominator term and the switch tolerance, as
  in the paper. With the default ``eps=1e-9`` a float32 tensor switches only
  when its estimate is flat to about :math:`10^{-9}` absolute; raise it to switch
  sooner.
* After the switch the step size is :math:`\Lambda`: the group's ``lr`` (and so
  an LR schedule) acts in the Adam phase only.
* State, per tensor: ``step`` (k), ``exp_avg`` (:math:`m`, and after the switch
  the SGD momentum :math:`v`, zeroed at the switch), ``exp_avg_sq`` (:math:`a`),
  ``lambda_avg`` (:math:`\lambda_k`), ``sgd_phase`` and ``sgd_lr``
  (:math:`\Lambda`). The last three are a Python float, bool and float, which
  ``load_state_dict`` keeps exactly (it would cast a floating tensor to the
  parameter's dtype); the entries are the same in both phases, so a state dict
  from before the switch and one from after have the same layout.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(3))
    >>> opt = optzoo.SWATS([w], lr=0.1, eps=1e-3)
    >>> w.grad = torch.ones(3); _ = opt.step()  # gamma_1 = 0.0969: Adam's step, eps-damped
    >>> opt.state[w]["sgd_phase"]  # never at k = 1
    False
    >>> _ = opt.step()  # gamma_2 = 0.0978, lambda_2 / (1 - beta2^2) = 0.0974: within eps
    >>> opt.state[w]["sgd_phase"], round(opt.state[w]["sgd_lr"], 4)
    (True, 0.0974)
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

__all__ = ["SWATS"]


def _dot(a: Tensor, b: Tensor) -> Tensor:
    """a.b over the whole tensor (a 0-dim tensor), accumulated in float32 at least.

    For a sharded DTensor the sum is a partial one on each rank (and ``float()`` of it would
    not reduce it): ``full_tensor()`` sums it across ranks.
    """
    if a.dtype in (torch.float16, torch.bfloat16):
        a, b = a.float(), b.float()
    total = torch.sum(a * b)
    return total.full_tensor() if hasattr(total, "full_tensor") else total


def _floats(values: list[Tensor]) -> list[float]:
    """Python floats of 0-dim tensors, with one device sync."""
    return torch.stack(values).tolist()


class SWATS(ZooOptimizer):
    """Adam that switches to SGD with momentum per parameter tensor (see the module docstring)."""

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("exp_avg"),
        Entry("exp_avg_sq"),
        Entry("lambda_avg", "number"),
        Entry("sgd_phase", "flag", fill=False),
        Entry("sgd_lr", "number"),  # Lambda, once switched
    )
    supports_capturable = False
    native_kernel = "swats"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-9,
        weight_decay: float = 0.0,
        nesterov: bool = False,
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
            eps=eps,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        check_number("eps", group["eps"], 0.0)
        check_bool("nesterov", group["nesterov"])

    @staticmethod
    def _projection(group: dict[str, Any], state: dict[str, Any], k: float, pg: float, pp: float) -> bool:
        """Update lambda_k from p.g and p.p; switch the tensor to SGD if the test passes. True if it switched."""
        beta2, eps = group["betas"][1], group["eps"]
        if pg == 0:
            return False
        gamma = pp / -pg  # gamma_k = p.p / (-p.g)
        state["lambda_avg"] = beta2 * state["lambda_avg"] + (1 - beta2) * gamma  # lambda_k
        corrected = state["lambda_avg"] / (1 - beta2**k)  # lambda_k / (1 - beta2^k)
        if k > 1 and abs(corrected - gamma) < eps:
            state["sgd_phase"] = True
            state["sgd_lr"] = corrected  # Lambda
            return True
        return False

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        state["step"] += 1
        k = state["step"].item()

        if state["sgd_phase"]:
            v = state["exp_avg"].mul_(beta1).add_(grad)  # v_k = beta1 v + g
            direction = grad.add(v, alpha=beta1) if group["nesterov"] else v  # g + beta1 v (Nesterov) or v
            param.add_(direction, alpha=-(1 - beta1) * state["sgd_lr"])  # x -= (1 - beta1) Lambda v
            return

        m, a = state["exp_avg"], state["exp_avg_sq"]
        update_moments(m, a, grad, beta1, beta2)  # m_k = beta1 m + (1 - beta1) g; a_k = beta2 a + (1 - beta2) g^2
        p = m / (a.sqrt() + eps) * (-lr * math.sqrt(1 - beta2**k) / (1 - beta1**k))  # p_k
        param.add_(p)  # x_k = x_{k-1} + p_k
        if self._projection(group, state, k, float(_dot(p, grad)), float(_dot(p, p))):
            m.zero_()  # v = 0: from now on exp_avg holds the SGD momentum

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        beta1, beta2 = group["betas"]
        return [group["lr"], beta1, beta2, group["eps"], group["nesterov"]]

    def _native_per_tensor(self, group: dict[str, Any], states: list[dict[str, Any]]) -> Tensor:
        # A row per tensor, as kernels/swats.cpp reads it: sgd_phase, sgd_lr, then p.g and p.p,
        # which the kernel writes for the tensors in the Adam phase.
        return torch.tensor([[float(s["sgd_phase"]), s["sgd_lr"], 0.0, 0.0] for s in states], dtype=torch.float64)

    def _native_after(self, group: dict[str, Any], states: list[dict[str, Any]], per_tensor: Tensor) -> None:
        # The kernel took the step (both phases); the projection and the switch test are
        # _reference_update's, on the kernel's whole-tensor sums (accumulated in float64).
        for state, (sgd_phase, _, pg, pp) in zip(states, per_tensor.tolist(), strict=True):
            if not sgd_phase and self._projection(group, state, state["step"].item(), pg, pp):
                state["exp_avg"].zero_()  # v = 0: from now on exp_avg holds the SGD momentum

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        sgd = [i for i, s in enumerate(states) if s["sgd_phase"]]
        adam = [i for i, s in enumerate(states) if not s["sgd_phase"]]

        if sgd:
            buffers = [states[i]["exp_avg"] for i in sgd]
            sgd_grads = [grads[i] for i in sgd]
            torch._foreach_mul_(buffers, beta1)
            torch._foreach_add_(buffers, sgd_grads)
            direction = torch._foreach_add(sgd_grads, buffers, alpha=beta1) if group["nesterov"] else buffers
            updates = torch._foreach_mul(direction, [-(1 - beta1) * states[i]["sgd_lr"] for i in sgd])
            torch._foreach_add_([params[i] for i in sgd], updates)

        if adam:
            exp_avgs = [states[i]["exp_avg"] for i in adam]
            exp_avg_sqs = [states[i]["exp_avg_sq"] for i in adam]
            adam_grads = [grads[i] for i in adam]
            foreach_update_moments(exp_avgs, exp_avg_sqs, adam_grads, beta1, beta2)
            ks = [steps[i].item() for i in adam]
            denom = torch._foreach_sqrt(exp_avg_sqs)
            torch._foreach_add_(denom, eps)
            moves = torch._foreach_div(exp_avgs, denom)
            torch._foreach_mul_(moves, [-lr * math.sqrt(1 - beta2**k) / (1 - beta1**k) for k in ks])
            torch._foreach_add_([params[i] for i in adam], moves)
            dots = _floats([_dot(p, g) for p, g in zip(moves, adam_grads, strict=True)] + [_dot(p, p) for p in moves])
            for j, i in enumerate(adam):
                if self._projection(group, states[i], ks[j], dots[j], dots[len(adam) + j]):
                    exp_avgs[j].zero_()
