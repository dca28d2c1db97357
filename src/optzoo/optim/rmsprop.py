r"""RMSprop: the step divided by a moving root-mean-square of the gradients; centered and momentum forms.

Tieleman & Hinton, "Lecture 6.5 — rmsprop: divide the gradient by a running
average of its recent magnitude", COURSERA Neural Networks for Machine
Learning (2012), lecture 6e. For step :math:`t = 1, 2, \dots` and gradient
:math:`g_t` (after ``maximize`` and coupled weight decay), with decay
:math:`\alpha` and :math:`v_0 = 0`:

.. math::

    v_t &= \alpha v_{t-1} + (1 - \alpha)\, g_t^2 \\
    \theta_t &= \theta_{t-1} - \eta\, g_t / (\sqrt{v_t} + \epsilon)

Centered (Graves, "Generating Sequences With Recurrent Neural Networks",
arXiv:1308.0850, 2013, eq. (38)-(41)) divides by an estimate of the standard
deviation instead of the root mean square:

.. math::

    \bar g_t &= \alpha \bar g_{t-1} + (1 - \alpha)\, g_t \\
    \sigma_t &= \sqrt{v_t - \bar g_t^2} + \epsilon

and momentum :math:`\mu > 0` accumulates the normalised gradient,

.. math::

    b_t = \mu b_{t-1} + g_t / \sigma_t, \qquad \theta_t = \theta_{t-1} - \eta\, b_t

(with :math:`\sigma_t = \sqrt{v_t} + \epsilon` when not centered).

Deliberate choices, defaults following ``torch.optim.RMSprop``:

* ``eps`` is added outside the square root. ``eps_inside_sqrt=True`` gives
  :math:`\sqrt{v_t + \epsilon}` (:math:`\sqrt{v_t - \bar g_t^2 + \epsilon}`
  centered), the course notes' form and Graves's eq. (40).
* :math:`v_0 = 0`, so the first steps are large (:math:`v_1 = (1-\alpha) g_1^2`
  gives a first step of :math:`\eta / \sqrt{1 - \alpha}` per unit sign).
  ``init_with_first_grad=True`` starts as the course notes do,
  :math:`v_1 = g_1^2` (their :math:`v_1 = g_0^2`, the first gradient), then the
  same recursion; it changes :math:`v` only, never :math:`\bar g` or :math:`b`.
* The momentum buffer holds gradient units (torch's form); Graves's
  :math:`\Delta_t = -\eta b_t` is the same while :math:`\eta` is constant.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.RMSprop([w], lr=0.1, init_with_first_grad=True)
    >>> w.grad = torch.tensor([-4.0, 0.5]); _ = opt.step()
    >>> w.detach()
    tensor([ 0.1000, -0.1000])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_bool, check_number

__all__ = ["RMSprop"]


class RMSprop(ZooOptimizer):
    """RMSprop, optionally centered and with momentum (see the module docstring).

    Drop-in for ``torch.optim.RMSprop``: torch 2.13's signature (``capturable, foreach, maximize,
    differentiable`` positional, as torch's); ``fused``, ``eps_inside_sqrt`` and ``init_with_first_grad`` are
    optzoo's keyword-only extras. torch's class has no ``fused`` keyword (it raises TypeError); optzoo's
    keyword-only ``fused=True`` runs optzoo's native single-pass CPU kernel on every tensor it allows, whatever
    the size, and the reference step on the rest (torch's foreach/fused-vs-differentiable errors apply).
    The other keywords'
    meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("square_avg"),
        Entry("momentum_buffer", when="momentum"),
        Entry("grad_avg", when="centered"),
    )
    native_kernel = "rmsprop"
    optional_hyper = frozenset({"eps_inside_sqrt", "init_with_first_grad"})

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        alpha: float = 0.99,
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        momentum: float = 0.0,
        centered: bool = False,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        *,
        fused: bool | None = None,
        eps_inside_sqrt: bool = False,
        init_with_first_grad: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            alpha=alpha,
            eps=eps,
            weight_decay=weight_decay,
            momentum=momentum,
            centered=centered,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
            eps_inside_sqrt=eps_inside_sqrt,
            init_with_first_grad=init_with_first_grad,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_number("alpha", group["alpha"], 0.0, 1.0)
        check_number("eps", group["eps"], 0.0)
        check_number("momentum", group["momentum"], 0.0, 1.0)
        for flag in ("centered", "eps_inside_sqrt", "init_with_first_grad"):
            check_bool(flag, group[flag])

    def _square_weight(self, group: dict[str, Any], t: float) -> float:
        """The weight of g_t^2 in v_t: 1 - alpha, or 1 at t = 1 for the course notes' v_1 = g^2 start."""
        return 1.0 if group["init_with_first_grad"] and t == 1 else 1 - group["alpha"]

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        state["step"] += 1
        t = state["step"].item()
        v = state["square_avg"]

        v.mul_(alpha).addcmul_(grad, grad, value=self._square_weight(group, t))  # v_t = alpha v + (1-alpha) g^2
        if group["centered"]:
            g_bar = state["grad_avg"].lerp_(grad, 1 - alpha)  # g_bar_t = alpha g_bar + (1-alpha) g
            var = v.addcmul(g_bar, g_bar, value=-1)  # v_t - g_bar_t^2
        else:
            var = v
        # sigma = sqrt(v + eps), or sqrt(v) + eps
        sigma = var.add(eps).sqrt_() if group["eps_inside_sqrt"] else var.sqrt().add_(eps)
        if mu > 0:
            b = state["momentum_buffer"].mul_(mu).addcdiv_(grad, sigma)  # b_t = mu b + g / sigma
            param.add_(b, alpha=-lr)  # theta -= lr b
        else:
            param.addcdiv_(grad, sigma, value=-lr)  # theta -= lr g / sigma

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        return [
            group["lr"],
            group["alpha"],
            group["eps"],
            group["momentum"],
            group["centered"],
            group["eps_inside_sqrt"],
            group["init_with_first_grad"],
        ]

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        lr, alpha, eps, mu = group["lr"], group["alpha"], group["eps"], group["momentum"]
        # A tensor alpha's weights as the Scalars the per-tensor step passes (the multi-tensor ops take no 0-dim tensor)
        weight = float(1 - alpha)
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        square_avgs = [s["square_avg"] for s in states]

        torch._foreach_mul_(square_avgs, alpha)
        if group["init_with_first_grad"]:
            weights = [self._square_weight(group, step.item()) for step in steps]
            torch._foreach_addcmul_(square_avgs, grads, grads, weights)
        else:
            torch._foreach_addcmul_(square_avgs, grads, grads, weight)
        if group["centered"]:
            grad_avgs = [s["grad_avg"] for s in states]
            torch._foreach_lerp_(grad_avgs, grads, weight)
            sigma = torch._foreach_addcmul(square_avgs, grad_avgs, grad_avgs, -1)
            if group["eps_inside_sqrt"]:
                torch._foreach_add_(sigma, eps)
                torch._foreach_sqrt_(sigma)
            else:
                torch._foreach_sqrt_(sigma)
                torch._foreach_add_(sigma, eps)
        elif group["eps_inside_sqrt"]:
            sigma = torch._foreach_add(square_avgs, eps)
            torch._foreach_sqrt_(sigma)
        else:
            sigma = torch._foreach_sqrt(square_avgs)
            torch._foreach_add_(sigma, eps)
        if mu > 0:
            buffers = [s["momentum_buffer"] for s in states]
            torch._foreach_mul_(buffers, mu)
            torch._foreach_addcdiv_(buffers, grads, sigma)
            torch._foreach_add_(params, buffers, alpha=-lr)
        else:
            torch._foreach_addcdiv_(params, grads, sigma, float(-lr))  # a tensor lr as the loop's Scalar
