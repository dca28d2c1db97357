r"""Adam, with AMSGrad and decoupled weight decay as options.

Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
(arXiv:1412.6980), Algorithm 1. For step :math:`t = 1, 2, \dots` and gradient
:math:`g_t` (after ``maximize`` and coupled weight decay):

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1) g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2) g_t^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t), \qquad \hat v_t = v_t / (1 - \beta_2^t) \\
    \theta_t &= \theta_{t-1} - \eta\, \hat m_t / (\sqrt{\hat v_t} + \epsilon)

AMSGrad (Reddi, Kale & Kumar, "On the Convergence of Adam and Beyond", ICLR
2018) keeps :math:`v^{max}_t = \max(v^{max}_{t-1}, v_t)` and uses it in place of
:math:`v_t`. Decoupled weight decay (Loshchilov & Hutter, "Decoupled Weight Decay
Regularization", ICLR 2019) multiplies the parameters by
:math:`1 - \eta\lambda` before the update instead of adding :math:`\lambda\theta`
to the gradient.

Deliberate choices, defaults following ``torch.optim.Adam``:

* ``eps`` is added outside the square root. ``eps_inside_sqrt=True`` gives the
  course notes' :math:`\eta / \sqrt{\hat v_t + \epsilon}`.
* AMSGrad bias-corrects both moments, as torch does. ``amsgrad_bias_correction=False``
  gives Reddi et al.'s Algorithm 2 (and the course notes):
  :math:`\theta_t = \theta_{t-1} - \eta\, m_t / (\sqrt{v^{max}_t} + \epsilon)`, no
  de-biasing because the max operation breaks it.
* Decoupled decay is scaled by the current ``lr``, as torch's AdamW does.
  ``decay_scaled_by_lr=False`` gives the paper's Algorithm 2, where the decay is
  scaled by the schedule multiplier :math:`\eta_t = lr / lr_0` only
  (:math:`lr_0` is the group's ``initial_lr``, set by torch's schedulers, or its
  lr when the group was built).

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.ones(3))
    >>> opt = optzoo.Adam([w], lr=0.1)
    >>> w.sum().backward(); _ = opt.step()
    >>> w.detach()
    tensor([0.9000, 0.9000, 0.9000])
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

__all__ = ["Adam"]


class Adam(ZooOptimizer):
    """Adam / AMSGrad / AdamW (see the module docstring for the update rule).

    Drop-in for ``torch.optim.Adam``: torch 2.13's signature (``decoupled_weight_decay`` keyword-only, as
    torch's); the paper-form options are keyword-only extras after it. fused=True runs torch's fused kernel, but
    only on tensors optzoo's allow-list (``_dispatch``) proves it handles: a column slice, a gradient in another
    layout take the reference step, where torch's fused=True would hand them to a kernel that updates them
    wrongly. fused=True with a paper-form option (``eps_inside_sqrt``, ``amsgrad_bias_correction=False``,
    ``decay_scaled_by_lr=False``) is refused: no kernel computes it. The other keywords'
    meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("exp_avg"),
        Entry("exp_avg_sq"),
        Entry("max_exp_avg_sq", when="amsgrad"),
    )
    # decoupled_weight_decay: older torch saved none (its AdamW a class of its own)
    optional_hyper = frozenset(
        {"decoupled_weight_decay", "eps_inside_sqrt", "amsgrad_bias_correction", "decay_scaled_by_lr"}
    )

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        amsgrad: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        decoupled_weight_decay: bool = False,
        eps_inside_sqrt: bool = False,
        amsgrad_bias_correction: bool = True,
        decay_scaled_by_lr: bool = True,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            amsgrad=amsgrad,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            decoupled_weight_decay=decoupled_weight_decay,
            eps_inside_sqrt=eps_inside_sqrt,
            amsgrad_bias_correction=amsgrad_bias_correction,
            decay_scaled_by_lr=decay_scaled_by_lr,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        if group["foreach"]:
            # As torch.optim.Adam: the multi-tensor step takes its scalars as Python numbers.
            for name, value in (("lr", group["lr"]), ("betas[0]", group["betas"][0]), ("betas[1]", group["betas"][1])):
                if isinstance(value, Tensor):
                    raise ValueError(f"{name} as a Tensor is not supported with foreach=True")
        check_number("eps", group["eps"], 0.0)
        for flag in (
            "amsgrad",
            "decoupled_weight_decay",
            "eps_inside_sqrt",
            "amsgrad_bias_correction",
            "decay_scaled_by_lr",
        ):
            check_bool(flag, group[flag])

    def _complete_group(self, group: dict[str, Any]) -> None:
        # lr_0 of decay_scaled_by_lr=False: torch's schedulers set it; else the lr the group was
        # built (or, from a state dict without it, loaded) with.
        group.setdefault("initial_lr", group["lr"])

    def _decoupled_decay(self, group: dict[str, Any]) -> float:
        if group["decay_scaled_by_lr"]:
            return 1.0 - group["lr"] * group["weight_decay"]
        schedule_multiplier = group["lr"] / group["initial_lr"] if group["initial_lr"] else 0.0
        return 1.0 - schedule_multiplier * group["weight_decay"]

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr, eps = group["lr"], group["eps"]
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]

        # torch's loop casts a tensor beta1 to the parameter's dtype for the moment's lerp
        moment_beta1 = beta1.to(param.dtype) if isinstance(beta1, Tensor) else beta1
        # m_t = beta1 m + (1 - beta1) g; v_t = beta2 v + (1 - beta2) g^2
        update_moments(m, v, grad, moment_beta1, beta2)
        bias1, bias2 = 1 - beta1**t, 1 - beta2**t
        if group["amsgrad"]:
            torch.maximum(state["max_exp_avg_sq"], v, out=state["max_exp_avg_sq"])
            v = state["max_exp_avg_sq"]
            if not group["amsgrad_bias_correction"]:
                bias1 = bias2 = 1.0
        if group["eps_inside_sqrt"]:
            denom = (v / bias2 + eps).sqrt()  # sqrt(v_hat + eps)
        else:
            # sqrt(v_hat) + eps; a tensor beta2's root in its precision, as torch's loop takes it
            root = bias2.sqrt() if isinstance(bias2, Tensor) else math.sqrt(bias2)
            denom = (v.sqrt() / root).add_(eps)
        param.addcdiv_(m, denom, value=-lr / bias1)  # theta -= lr * m_hat / denom

    def _fused_kernel(self, group: dict[str, Any]) -> str | None:
        paper_form = group["eps_inside_sqrt"] or not group["amsgrad_bias_correction"]
        scheduled_decay = group["decoupled_weight_decay"] and not group["decay_scaled_by_lr"]
        # torch's loop (its default on CPU, and what foreach falls back to) computes a tensor lr's, betas'
        # or weight decay's scalars in the tensor's precision; the fused kernel would in float64.
        tensor_hyper = any(isinstance(v, Tensor) for v in (group["lr"], group["weight_decay"], *group["betas"]))
        if paper_form or scheduled_decay or tensor_hyper:
            return None
        return "adamw" if group["decoupled_weight_decay"] else "adam"

    def _fused_update(
        self, group: dict[str, Any], kernel: str, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> None:
        beta1, beta2 = group["betas"]
        function = torch._fused_adamw_ if kernel == "adamw" else torch._fused_adam_
        function(
            params,
            grads,
            [s["exp_avg"] for s in states],
            [s["exp_avg_sq"] for s in states],
            [s["max_exp_avg_sq"] for s in states] if group["amsgrad"] else [],
            [s["step"] for s in states],
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            amsgrad=group["amsgrad"],
            maximize=group["maximize"],
        )

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
        ts = [step.item() for step in steps]
        bias1 = [1 - beta1**t for t in ts]
        bias2 = [1 - beta2**t for t in ts]
        if group["amsgrad"]:
            second = [s["max_exp_avg_sq"] for s in states]
            torch._foreach_maximum_(second, exp_avg_sqs)
            if not group["amsgrad_bias_correction"]:
                bias1 = bias2 = [1.0] * len(ts)
        if group["eps_inside_sqrt"]:
            denom = torch._foreach_div(second, bias2)
            torch._foreach_add_(denom, eps)
            torch._foreach_sqrt_(denom)
        else:
            denom = torch._foreach_sqrt(second)
            torch._foreach_div_(denom, [math.sqrt(b) for b in bias2])
            torch._foreach_add_(denom, eps)
        # float(): a tensor lr (foreach=None on an accelerator) gives the per-tensor step's Scalars
        torch._foreach_addcdiv_(params, exp_avgs, denom, [float(-lr / b) for b in bias1])
