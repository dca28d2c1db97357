r"""NAdam: Adam with Nesterov momentum and a warming momentum schedule.

Dozat, "Incorporating Nesterov Momentum into Adam", ICLR 2016 workshop,
Algorithm 2, with the momentum schedule :math:`\mu_t = \beta_1 (1 - \tfrac12
\cdot 0.96^{t\psi})` (:math:`\psi` = ``momentum_decay``; the paper's
:math:`0.96^{t/250}` is :math:`\psi = 0.004`). For step :math:`t = 1, 2, \dots`
and gradient :math:`g_t` (after ``maximize`` and coupled weight decay):

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \hat v_t &= v_t / (1 - \beta_2^t) \\
    \theta_t &= \theta_{t-1} - \eta \left( \frac{(1 - \mu_t)\, g_t}{1 - \prod_{i=1}^{t} \mu_i}
        + \frac{\mu_{t+1}\, m_t}{1 - \prod_{i=1}^{t+1} \mu_i} \right) \Big/ \left(\sqrt{\hat v_t} + \epsilon\right)

Decoupled weight decay (``decoupled_weight_decay=True``, NAdamW) multiplies the
parameters by :math:`1 - \eta\lambda` before the update instead of adding
:math:`\lambda\theta` to the gradient.

Deliberate choices, following ``torch.optim.NAdam``:

* The first moment is averaged with the constant :math:`\beta_1`; the paper
  averages with the scheduled :math:`\mu_t`. The schedule enters only the step.
* The running product :math:`\prod_{i \le t} \mu_i` (state ``mu_product``) is
  rounded to float32 after every multiplication, exactly as torch keeps it (a
  float32 tensor; float64 when torch's default dtype is float64), so the
  trajectories agree. It is stored as a Python float, so saving and loading a
  state dict leaves it unchanged (torch casts it to the parameter's dtype on
  load, after which a resumed torch.optim.NAdam drifts slightly).

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.NAdam([w], lr=0.1)
    >>> w.grad = torch.tensor([1.0, -1.0]); _ = opt.step()
    >>> w.detach()
    tensor([-0.1056,  0.1056])
"""

from __future__ import annotations

import struct
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

__all__ = ["NAdam"]


def _times(product: float, mu: float) -> float:
    """``product * mu`` as torch computes it on its scalar state: in float32 unless the default
    dtype is float64. (Two float32 numbers multiply exactly in float64, so rounding that
    product once to float32 is the float32 multiplication.)"""
    if torch.get_default_dtype() == torch.float64:
        return product * mu
    as_float32 = struct.Struct("f")
    return as_float32.unpack(as_float32.pack(product * as_float32.unpack(as_float32.pack(mu))[0]))[0]


class NAdam(ZooOptimizer):
    """NAdam / NAdamW (see the module docstring for the update rule).

    Drop-in for ``torch.optim.NAdam`` (torch 2.13's signature). One difference: ``fused``, which
    torch's class lacks, is a keyword-only extra, and ``fused=True`` runs optzoo's native kernel. The
    keywords' meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("mu_product", "number", fill=1.0),  # the empty product
        Entry("exp_avg"),
        Entry("exp_avg_sq"),
    )
    native_kernel = "nadam"
    optional_hyper = frozenset({"decoupled_weight_decay"})  # torch < 2.1 had none

    def __init__(
        self,
        params: ParamsT,
        lr: float = 2e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum_decay: float = 4e-3,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            momentum_decay=momentum_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        check_number("eps", group["eps"], 0.0)
        check_number("momentum_decay", group["momentum_decay"], 0.0)
        check_bool("decoupled_weight_decay", group["decoupled_weight_decay"])

    @staticmethod
    def _schedule(group: dict[str, Any], t: float) -> tuple[float, float]:
        """mu_t and mu_{t+1}."""
        beta1, psi = group["betas"][0], group["momentum_decay"]
        return beta1 * (1.0 - 0.5 * 0.96 ** (t * psi)), beta1 * (1.0 - 0.5 * 0.96 ** ((t + 1) * psi))

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]
        mu, mu_next = self._schedule(group, t)
        prod = state["mu_product"] = _times(state["mu_product"], mu)  # prod_{i<=t} mu_i
        prod_next = prod * mu_next  # prod_{i<=t+1} mu_i

        update_moments(m, v, grad, beta1, beta2)  # m_t = beta1 m + (1 - beta1) g; v_t = beta2 v + (1 - beta2) g^2
        denom = v.div(1 - beta2**t).sqrt_().add_(group["eps"])  # sqrt(v_hat_t) + eps
        param.addcdiv_(grad, denom, value=-lr * (1 - mu) / (1 - prod))  # the current gradient's part
        param.addcdiv_(m, denom, value=-lr * mu_next / (1 - prod_next))  # the look-ahead momentum's part

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        beta1, beta2 = group["betas"]
        float64_product = torch.get_default_dtype() == torch.float64  # see _times
        return [group["lr"], beta1, beta2, group["eps"], group["momentum_decay"], float64_product]

    def _native_per_tensor(self, group: dict[str, Any], states: list[dict[str, Any]]) -> Tensor | None:
        # mu_product, which the kernel advances as _times does
        return torch.tensor([s["mu_product"] for s in states], dtype=torch.float64)

    def _native_after(self, group: dict[str, Any], states: list[dict[str, Any]], per_tensor: Tensor) -> None:
        for state, product in zip(states, per_tensor.tolist(), strict=True):
            state["mu_product"] = product

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]
        grad_scales, momentum_scales, bias2_roots = [], [], []
        for step, state in zip(steps, states, strict=True):
            t = step.item()
            mu, mu_next = self._schedule(group, t)
            prod = state["mu_product"] = _times(state["mu_product"], mu)
            # float(): a tensor lr's scales become the Scalars the per-tensor step passes
            grad_scales.append(float(-lr * (1 - mu) / (1 - prod)))
            momentum_scales.append(float(-lr * mu_next / (1 - prod * mu_next)))
            bias2_roots.append(float(1 - beta2**t) ** 0.5)  # a tensor beta2's 1 - beta2^t rounded as the loop's

        foreach_update_moments(exp_avgs, exp_avg_sqs, grads, beta1, beta2)
        denom = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denom, bias2_roots)
        torch._foreach_add_(denom, group["eps"])
        torch._foreach_addcdiv_(params, grads, denom, grad_scales)
        torch._foreach_addcdiv_(params, exp_avgs, denom, momentum_scales)
