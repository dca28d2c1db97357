r"""Adagrad: each coordinate's step divided by the root of its summed squared gradients.

Duchi, Hazan & Singer, "Adaptive Subgradient Methods for Online Learning and
Stochastic Optimization", JMLR 12 (2011), the diagonal form (eq. (1) with
:math:`\mathrm{diag}(G_t)`). For step :math:`t = 1, 2, \dots` and gradient
:math:`g_t` (after ``maximize`` and coupled weight decay), with
:math:`s_0` = ``initial_accumulator_value``:

.. math::

    s_t &= s_{t-1} + g_t^2 \\
    \eta_t &= \eta / (1 + (t - 1)\,\gamma) \\
    \theta_t &= \theta_{t-1} - \eta_t\, g_t / (\sqrt{s_t} + \epsilon)

where :math:`\gamma` is ``lr_decay`` (torch's inverse-time decay of the step;
:math:`\gamma = 0`, the default, is the paper's constant :math:`\eta`) and
:math:`\epsilon` is the paper's :math:`\delta`.

Deliberate choices, defaults following ``torch.optim.Adagrad``:

* ``initial_accumulator_value = 0`` (the default) is Duchi et al.'s
  :math:`G_0 = 0`; a positive value starts the sum at :math:`s_0`, which damps
  the first steps (no step is larger than :math:`\eta |g| / \sqrt{s_0}`).
* Sparse gradients (``nn.Embedding(sparse=True)``) are handled as torch.optim.Adagrad
  handles them: only the rows the gradient holds are updated, on the per-tensor path
  whatever ``foreach`` says; with ``weight_decay`` they are refused (RuntimeError), as in torch.
* Complex parameters are updated as their real view (real and imaginary parts as two real
  coordinates), each part of :math:`s_0` set to ``initial_accumulator_value``, as in torch.
* With ``foreach=None`` (the default) CPU tensors take torch's fused Adagrad
  kernel, which computes exactly this update.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.Adagrad([w], lr=0.5)
    >>> for _ in range(2):
    ...     opt.zero_grad(); (w - 1).pow(2).sum().backward(); _ = opt.step()
    >>> w.detach()
    tensor([0.7236, 0.7236])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_number

__all__ = ["Adagrad"]


class Adagrad(ZooOptimizer):
    """Adagrad (see the module docstring for the update rule).

    Drop-in for ``torch.optim.Adagrad``: torch 2.13's signature. fused=True runs torch's fused kernel, but only
    on tensors optzoo's allow-list (``_dispatch``) proves it handles: a column slice, a gradient in another
    layout take the reference step, where torch's fused=True would hand them to a kernel that updates them
    wrongly. On CUDA (torch 2.13 has no CUDA Adagrad kernel) fused=True takes the multi-tensor step. The other keywords'
    meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim
    supports_sparse = True

    state_schema = StateSchema(Entry("step", "step"), Entry("sum", fill="initial_accumulator_value"))  # s_0

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        lr_decay: float = 0.0,
        weight_decay: float = 0.0,
        initial_accumulator_value: float = 0.0,
        eps: float = 1e-10,
        foreach: bool | None = None,
        *,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            lr_decay=lr_decay,
            weight_decay=weight_decay,
            initial_accumulator_value=initial_accumulator_value,
            eps=eps,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_number("lr_decay", group["lr_decay"], 0.0)
        check_number("initial_accumulator_value", group["initial_accumulator_value"], 0.0)
        check_number("eps", group["eps"], 0.0)

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        state["step"] += 1
        t = state["step"].item()
        eta_t = group["lr"] / (1 + (t - 1) * group["lr_decay"])  # eta / (1 + (t-1) gamma)
        s = state["sum"]
        if grad.is_sparse:
            # torch's sparse form: s and theta change only where the (coalesced) gradient has entries.
            grad = grad.coalesce()
            indices, values = grad._indices(), grad._values()
            s.add_(torch.sparse_coo_tensor(indices, values.pow(2), grad.shape))  # s_t = s_{t-1} + g^2
            denom = s.sparse_mask(grad)._values().sqrt_().add_(group["eps"])  # sqrt(s_t) + eps, there
            param.add_(torch.sparse_coo_tensor(indices, values / denom, grad.shape), alpha=-eta_t)
            return

        s.addcmul_(grad, grad, value=1)  # s_t = s_{t-1} + g^2
        denom = s.sqrt().add_(group["eps"])  # sqrt(s_t) + eps
        param.addcdiv_(grad, denom, value=-eta_t)  # theta -= eta_t g / denom

    def _fused_kernel(self, group: dict[str, Any]) -> str | None:
        # torch's loop computes a tensor lr's or lr_decay's step size in the tensor's precision; the
        # fused kernel would in float64.
        if (isinstance(group["lr"], Tensor) and group["lr_decay"] != 0) or isinstance(group["lr_decay"], Tensor):
            return None
        return "adagrad"

    def _fused_update(
        self, group: dict[str, Any], kernel: str, params: list[Tensor], grads: list[Tensor], states: list[dict]
    ) -> None:
        torch._fused_adagrad_(
            params,
            grads,
            [s["sum"] for s in states],
            [s["step"] for s in states],
            lr=group["lr"],
            lr_decay=group["lr_decay"],
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=group["maximize"],
        )

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        lr, lr_decay = group["lr"], group["lr_decay"]
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        sums = [s["sum"] for s in states]

        torch._foreach_addcmul_(sums, grads, grads, 1.0)
        denom = torch._foreach_sqrt(sums)
        torch._foreach_add_(denom, group["eps"])
        minus_eta = [-lr / (1 + (step.item() - 1) * lr_decay) for step in steps]
        torch._foreach_addcdiv_(params, torch._foreach_mul(grads, minus_eta), denom)
