r"""Adadelta: RMSprop whose step is given the parameters' units by a moving RMS of past steps.

Zeiler, "ADADELTA: An Adaptive Learning Rate Method", arXiv:1212.5701 (2012),
Algorithm 1. For step :math:`t = 1, 2, \dots` and gradient :math:`g_t` (after
``maximize`` and coupled weight decay), with decay :math:`\rho`,
:math:`E[g^2]_0 = E[\Delta\theta^2]_0 = 0` and
:math:`\mathrm{RMS}[x]_t = \sqrt{E[x^2]_t + \epsilon}`:

.. math::

    E[g^2]_t &= \rho\, E[g^2]_{t-1} + (1 - \rho)\, g_t^2 \\
    \Delta\theta_t &= \frac{\mathrm{RMS}[\Delta\theta]_{t-1}}{\mathrm{RMS}[g]_t}\, g_t \\
    E[\Delta\theta^2]_t &= \rho\, E[\Delta\theta^2]_{t-1} + (1 - \rho)\, \Delta\theta_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\, \Delta\theta_t

Deliberate choice, following ``torch.optim.Adadelta``: the paper has no
learning rate; torch's ``lr`` multiplies the applied step only, while the
accumulator :math:`E[\Delta\theta^2]` keeps the unscaled step. The default
``lr=1.0`` is the paper's algorithm.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.Adadelta([w], eps=1e-2)
    >>> w.grad = torch.tensor([1.0, -1.0]); _ = opt.step()
    >>> w.detach()
    tensor([-0.3015,  0.3015])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_number

__all__ = ["Adadelta"]


class Adadelta(ZooOptimizer):
    """Adadelta (see the module docstring for the update rule).

    Drop-in for ``torch.optim.Adadelta`` (torch 2.13's signature). One difference: ``fused``, which
    torch's class lacks, is a keyword-only extra, and ``fused=True`` runs optzoo's native kernel. The
    keywords' meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(Entry("step", "step"), Entry("square_avg"), Entry("acc_delta"))
    native_kernel = "adadelta"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1.0,
        rho: float = 0.9,
        eps: float = 1e-6,
        weight_decay: float = 0.0,
        foreach: bool | None = None,
        *,
        capturable: bool = False,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            rho=rho,
            eps=eps,
            weight_decay=weight_decay,
            foreach=foreach,
            capturable=capturable,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_number("rho", group["rho"], 0.0, 1.0)
        check_number("eps", group["eps"], 0.0)

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        rho, eps = group["rho"], group["eps"]
        state["step"] += 1
        eg2, edx2 = state["square_avg"], state["acc_delta"]

        eg2.mul_(rho).addcmul_(grad, grad, value=1 - rho)  # E[g^2]_t = rho E[g^2] + (1-rho) g^2
        rms_g = eg2.add(eps).sqrt_()  # RMS[g]_t
        delta = edx2.add(eps).sqrt_()  # RMS[dtheta]_{t-1}
        delta.div_(rms_g).mul_(grad)  # dtheta_t = RMS[dtheta]_{t-1} / RMS[g]_t * g
        edx2.mul_(rho).addcmul_(delta, delta, value=1 - rho)  # E[dtheta^2]_t
        param.add_(delta, alpha=-group["lr"])  # theta -= lr dtheta

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        return [group["lr"], group["rho"], group["eps"]]

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        rho, eps = group["rho"], group["eps"]
        weight = float(1 - rho)  # a tensor rho's weight as the per-tensor step's Scalar
        torch._foreach_add_([s["step"] for s in states], 1.0)
        square_avgs = [s["square_avg"] for s in states]
        acc_deltas = [s["acc_delta"] for s in states]

        torch._foreach_mul_(square_avgs, rho)
        torch._foreach_addcmul_(square_avgs, grads, grads, weight)
        rms_g = torch._foreach_add(square_avgs, eps)
        torch._foreach_sqrt_(rms_g)
        deltas = torch._foreach_add(acc_deltas, eps)
        torch._foreach_sqrt_(deltas)
        torch._foreach_div_(deltas, rms_g)
        torch._foreach_mul_(deltas, grads)
        torch._foreach_mul_(acc_deltas, rho)
        torch._foreach_addcmul_(acc_deltas, deltas, deltas, weight)
        torch._foreach_add_(params, deltas, alpha=-group["lr"])
