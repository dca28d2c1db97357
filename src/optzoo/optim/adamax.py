r"""Adamax: Adam with the infinity norm in place of the second moment.

Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
(arXiv:1412.6980), Section 7.1, Algorithm 2. For step :math:`t = 1, 2, \dots`
and gradient :math:`g_t` (after ``maximize`` and coupled weight decay), with
:math:`m_0 = u_0 = 0`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    u_t &= \max(\beta_2 u_{t-1},\ |g_t| + \epsilon) \\
    \theta_t &= \theta_{t-1} - \frac{\eta}{1 - \beta_1^t}\, \frac{m_t}{u_t}

:math:`u_t` needs no bias correction: it is an exponentially weighted infinity
norm, not a moving average started at zero.

Deliberate choice, following ``torch.optim.Adamax``: :math:`\epsilon` is added to
:math:`|g_t|` inside the max, so :math:`u_t > 0` even where every gradient so far
was zero. The paper has no :math:`\epsilon` (``eps=0`` gives it exactly, as long
as no coordinate's gradients are all zero).

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.Adamax([w], lr=0.1)
    >>> w.grad = torch.tensor([3.0, -0.5]); _ = opt.step()
    >>> w.detach()
    tensor([-0.1000,  0.1000])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_betas, check_number

__all__ = ["Adamax"]


class Adamax(ZooOptimizer):
    """Adamax (see the module docstring for the update rule).

    Drop-in for ``torch.optim.Adamax`` (torch 2.13's signature). One difference: ``fused``, which
    torch's class lacks, is a keyword-only extra, and ``fused=True`` runs optzoo's native kernel. The
    keywords' meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(Entry("step", "step"), Entry("exp_avg"), Entry("exp_inf"))
    native_kernel = "adamax"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        capturable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            capturable=capturable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        check_number("eps", group["eps"], 0.0)

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t = state["step"].item()
        m, u = state["exp_avg"], state["exp_inf"]

        m.lerp_(grad, 1 - beta1)  # m_t = beta1 m + (1 - beta1) g
        torch.maximum(u.mul_(beta2), grad.abs().add_(group["eps"]), out=u)  # u_t = max(beta2 u, |g| + eps)
        param.addcdiv_(m, u, value=-group["lr"] / (1 - beta1**t))  # theta -= lr / (1 - beta1^t) m / u

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        beta1, beta2 = group["betas"]
        return [group["lr"], beta1, beta2, group["eps"]]

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_infs = [s["exp_inf"] for s in states]

        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_infs, beta2)
        abs_grads = torch._foreach_abs(grads)
        torch._foreach_add_(abs_grads, group["eps"])
        torch._foreach_maximum_(exp_infs, abs_grads)
        # float(): a tensor lr's step sizes become the Scalars the per-tensor step passes
        torch._foreach_addcdiv_(params, exp_avgs, exp_infs, [float(-lr / (1 - beta1 ** step.item())) for step in steps])
