r"""Gradient descent: batch, mini-batch or stochastic, with heavy-ball or Nesterov momentum.

Whether this is batch, mini-batch or stochastic gradient descent depends only
on how many examples the gradient was computed from; the update is the same.
For gradient :math:`g_t` (after ``maximize`` and coupled weight decay
:math:`g_t \leftarrow g_t + \lambda\theta_{t-1}`):

Plain (Cauchy 1847; Robbins & Monro 1951):

.. math:: \theta_t = \theta_{t-1} - \eta\, g_t

Momentum (Polyak 1964, "heavy ball"; Rumelhart, Hinton & Williams 1986), with
dampening :math:`d` and the buffer started at :math:`b_1 = g_1`:

.. math::

    b_t &= \mu b_{t-1} + (1 - d)\, g_t \\
    \theta_t &= \theta_{t-1} - \eta\, b_t

``dampening = momentum`` gives the exponential-moving-average form of the
course notes, :math:`m_t = \beta m_{t-1} + (1-\beta) g_t`, :math:`\theta_t =
\theta_{t-1} - \eta m_t` (except that :math:`m_1 = g_1`, as in torch).

Nesterov (Nesterov 1983; Sutskever, Martens, Dahl & Hinton, ICML 2013),
written as torch writes it, on the look-ahead point:

.. math:: \theta_t = \theta_{t-1} - \eta\, (g_t + \mu b_t)

Deliberate choice: the buffer :math:`b` is kept in gradient units, as
``torch.optim.SGD`` does, so a change of :math:`\eta` acts at once on the whole
step. ``velocity_form=True`` keeps instead Sutskever et al.'s velocity in
parameter units, :math:`v_t = \mu v_{t-1} - \eta (1 - d) g_t` (with
:math:`v_1 = -\eta g_1`), and steps :math:`\theta_t = \theta_{t-1} + v_t`, or
:math:`\theta_t = \theta_{t-1} + \mu v_t - \eta g_t` with Nesterov. The two
forms agree while :math:`\eta` is constant and differ under a schedule, where
the velocity form lets earlier steps keep their old learning rate.

Sparse gradients (``nn.Embedding(sparse=True)``) and complex parameters (as their
real view) are handled as ``torch.optim.SGD`` handles them; sparse gradients with
``weight_decay`` are refused (RuntimeError), as torch fails on them.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.SGD([w], lr=0.5, momentum=0.9)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w - 1).pow(2).sum().backward(); _ = opt.step()
    >>> w.detach()
    tensor([1.9000, 1.9000])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_bool, check_number

__all__ = ["SGD"]


class SGD(ZooOptimizer):
    """Gradient descent with optional momentum / Nesterov (see the module docstring).

    Drop-in for ``torch.optim.SGD``: torch 2.13's signature, positional order included (``weight_decay`` before
    ``nesterov``); ``velocity_form`` is keyword-only, after torch's parameters. fused=True runs torch's fused
    kernel, but only on tensors optzoo's allow-list (``_dispatch``) proves it handles: a column slice, a
    gradient in another layout, CPU float16/bfloat16 take the reference step, where torch's fused=True would
    hand them to a kernel that updates them wrongly. fused=True with ``velocity_form=True`` is refused (no
    kernel computes it). The other keywords'
    meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim
    supports_sparse = True

    # Both buffers start as the first gradient, so the first update makes them; torch saves
    # momentum_buffer=None for plain SGD.
    state_schema = StateSchema(
        Entry("momentum_buffer", when="momentum", lazy=True, nullable=True),
        Entry("velocity", when="velocity_form", lazy=True),
    )
    optional_hyper = frozenset({"velocity_form"})
    foreach_refuses_differentiable = False

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        momentum: float = 0.0,
        dampening: float = 0.0,
        weight_decay: float = 0.0,
        nesterov: bool = False,
        *,
        maximize: bool = False,
        foreach: bool | None = None,
        differentiable: bool = False,
        fused: bool | None = None,
        velocity_form: bool = False,
    ) -> None:
        defaults = dict(
            lr=lr,
            momentum=momentum,
            dampening=dampening,
            weight_decay=weight_decay,
            nesterov=nesterov,
            maximize=maximize,
            foreach=foreach,
            differentiable=differentiable,
            fused=fused,
            velocity_form=velocity_form,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_number("momentum", group["momentum"], 0.0, 1.0)
        check_number("dampening", group["dampening"], 0.0, 1.0)
        check_bool("nesterov", group["nesterov"])
        check_bool("velocity_form", group["velocity_form"])
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("nesterov=True requires momentum > 0 and dampening = 0")

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        if mu == 0:
            param.add_(grad, alpha=-lr)  # theta -= lr g
        elif group["velocity_form"]:
            if "velocity" not in state:
                v = state["velocity"] = grad.mul(-lr)  # v_1 = -lr g_1
            else:
                v = state["velocity"].mul_(mu).add_(grad, alpha=-lr * (1 - damp))  # v = mu v - lr (1-d) g
            if group["nesterov"]:
                param.add_(v, alpha=mu).add_(grad, alpha=-lr)  # theta += mu v - lr g
            else:
                param.add_(v)  # theta += v
        else:
            if "momentum_buffer" not in state:
                b = state["momentum_buffer"] = grad.clone().detach()  # b_1 = g_1
            else:
                b = state["momentum_buffer"].mul_(mu).add_(grad, alpha=1 - damp)  # b = mu b + (1-d) g
            direction = grad.add(b, alpha=mu) if group["nesterov"] else b
            param.add_(direction, alpha=-lr)  # theta -= lr (g + mu b) or lr b

    def _fused_kernel(self, group: dict[str, Any]) -> str | None:
        return None if group["velocity_form"] else "sgd"

    def _fused_update(
        self, group: dict[str, Any], kernel: str, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> None:
        with_momentum = group["momentum"] != 0
        # The kernel takes one is_first_step flag per call: tensors whose buffer starts now
        # (b_1 = g_1) and those that have one go in separate calls.
        first = [i for i, s in enumerate(states) if with_momentum and "momentum_buffer" not in s]
        later = [i for i, s in enumerate(states) if not (with_momentum and "momentum_buffer" not in s)]
        for i in first:
            states[i]["momentum_buffer"] = torch.empty_like(params[i])
        try:
            for indices, first_step in ((later, False), (first, True)):
                if indices:
                    torch._fused_sgd_(
                        [params[i] for i in indices],
                        [grads[i] for i in indices],
                        [states[i]["momentum_buffer"] for i in indices] if with_momentum else [],
                        weight_decay=group["weight_decay"],
                        momentum=group["momentum"],
                        lr=group["lr"],
                        dampening=group["dampening"],
                        nesterov=group["nesterov"],
                        maximize=group["maximize"],
                        is_first_step=first_step,
                    )
        except BaseException:
            for i in first:  # an unfilled buffer must not pass for b_1 at the next step
                del states[i]["momentum_buffer"]
            raise

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        lr, mu, damp = group["lr"], group["momentum"], group["dampening"]
        if mu == 0:
            torch._foreach_add_(params, grads, alpha=-lr)
            return
        key = "velocity" if group["velocity_form"] else "momentum_buffer"
        fresh = [i for i, s in enumerate(states) if key not in s]
        old = [i for i, s in enumerate(states) if key in s]
        if old:
            buffers = [states[i][key] for i in old]
            torch._foreach_mul_(buffers, mu)
            scale = -lr * (1 - damp) if group["velocity_form"] else 1 - damp
            torch._foreach_add_(buffers, [grads[i] for i in old], alpha=scale)
        for i in fresh:
            states[i][key] = grads[i].mul(-lr) if group["velocity_form"] else grads[i].clone().detach()
        buffers = [s[key] for s in states]
        if group["velocity_form"]:
            if group["nesterov"]:
                torch._foreach_add_(params, buffers, alpha=mu)
                torch._foreach_add_(params, grads, alpha=-lr)
            else:
                torch._foreach_add_(params, buffers)
        elif group["nesterov"]:
            torch._foreach_add_(params, torch._foreach_add(grads, buffers, alpha=mu), alpha=-lr)
        else:
            torch._foreach_add_(params, buffers, alpha=-lr)
