r"""Rprop: sign-based steps whose per-weight sizes grow while the gradient keeps its sign.

Riedmiller & Braun, "A Direct Adaptive Method for Faster Backpropagation
Learning: The RPROP Algorithm", IEEE ICNN 1993, in the form without
weight-backtracking that Igel & Hüsken name **iRprop-** ("Improving the Rprop
Learning Algorithm", NC 2000, Fig. 3). This is what ``torch.optim.Rprop``
computes. For step :math:`t = 1, 2, \dots`, gradient :math:`g_t` (after
``maximize``), :math:`g_0 = 0`, :math:`\Delta_0 = \eta` (``lr``), factors
:math:`0 < \eta^- < 1 < \eta^+` (``etas``) and bounds
:math:`[\Delta_{min}, \Delta_{max}]` (``step_sizes``), per coordinate:

.. math::

    \Delta_t &= \mathrm{clip}\big(\Delta_{t-1} \cdot
        \begin{cases} \eta^+ & g_{t-1} g_t > 0 \\ \eta^- & g_{t-1} g_t < 0 \\ 1 & g_{t-1} g_t = 0 \end{cases},
        \ \Delta_{min}, \Delta_{max}\big) \\
    g_t &\leftarrow 0 \quad \text{where } g_{t-1} g_t < 0
        \quad \text{(so the next step neither grows nor shrinks there)} \\
    \theta_t &= \theta_{t-1} - \mathrm{sign}(g_t)\, \Delta_t

Deliberate choices, following ``torch.optim.Rprop``:

* No weight-backtracking: when the sign flips, the original Rprop (and
  iRprop+) undo the previous step; iRprop- only skips this step. Igel & Hüsken
  found iRprop- as good as the others on their benchmarks, with less state.
* Rprop is a full-batch method: with mini-batches the gradient's sign flips
  from noise and the step sizes collapse (RMSprop is its mini-batch successor).
* ``lr`` sets only the initial step size :math:`\Delta_0`; changing it later
  (an LR scheduler) has no effect on the steps. There is no weight decay.
* No boolean-mask assignment: the sign cases use ``torch.where``, so the update
  also runs on sharded tensors (FSDP2's DTensor), where torch.optim.Rprop's
  masked writes fail.
* A NaN gradient makes its parameter (and that coordinate's step size) NaN, as
  in every other optimizer here. torch.optim.Rprop skips it silently, because
  ``torch.sign(nan)`` is 0 there; the cases are told apart on the product
  :math:`g_{t-1} g_t` itself, which keeps the NaN.

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.Rprop([w], lr=0.1)
    >>> for g in ([1.0, 1.0], [1.0, -1.0]):
    ...     w.grad = torch.tensor(g); _ = opt.step()
    >>> w.detach()  # the second coordinate flipped sign: its step shrank and was skipped
    tensor([-0.2200, -0.1000])
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._core import Entry, ParamsT, StateSchema, ZooOptimizer, check_number

__all__ = ["Rprop"]


def _check_pair(name: str, pair: Any) -> tuple[Any, Any]:
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        raise TypeError(f"{name} must be a tuple of 2 numbers, got {pair!r}")
    return pair[0], pair[1]


class Rprop(ZooOptimizer):
    """Resilient backpropagation, iRprop- (see the module docstring for the update rule).

    Drop-in for ``torch.optim.Rprop`` (torch 2.13's signature). One difference: ``fused``, which
    torch's class lacks, is a keyword-only extra, and ``fused=True`` runs optzoo's native kernel. The
    keywords' meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(
        Entry("step", "step"),
        Entry("prev"),  # g_0 = 0
        Entry("step_size", fill="lr"),  # Delta_0
    )
    native_kernel = "rprop"

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-2,
        etas: tuple[float, float] = (0.5, 1.2),
        step_sizes: tuple[float, float] = (1e-6, 50),
        *,
        capturable: bool = False,
        foreach: bool | None = None,
        maximize: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
    ) -> None:
        defaults = dict(
            lr=lr,
            etas=etas,
            step_sizes=step_sizes,
            capturable=capturable,
            foreach=foreach,
            maximize=maximize,
            differentiable=differentiable,
            fused=fused,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        eta_minus, eta_plus = _check_pair("etas", group["etas"])
        check_number("etas[0]", eta_minus, 0.0, 1.0, low_open=True, high_open=True)
        check_number("etas[1]", eta_plus, 1.0, low_open=True)
        low, high = _check_pair("step_sizes", group["step_sizes"])
        low = check_number("step_sizes[0]", low, 0.0)
        check_number("step_sizes[1]", high, low)

    @staticmethod
    def _factor(group: dict[str, Any], product: Tensor) -> Tensor:
        """eta+ where g_{t-1} g_t > 0, eta- where < 0, and 1 where = 0 (there ``1 + product`` is 1,
        or NaN for a NaN gradient, so that the NaN reaches its parameter)."""
        eta_minus, eta_plus = group["etas"]
        return torch.where(product > 0, eta_plus, torch.where(product < 0, eta_minus, 1 + product))

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        low, high = group["step_sizes"]
        state["step"] += 1
        prev, delta = state["prev"], state["step_size"]

        product = grad.mul(prev)  # g_{t-1} g_t
        delta.mul_(self._factor(group, product)).clamp_(low, high)  # Delta_t
        grad = torch.where(product < 0, 0.0, grad)  # g_t = 0 where the sign flipped
        param.addcmul_(grad.sign(), delta, value=-1)  # theta -= sign(g_t) Delta_t
        prev.copy_(grad)

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        eta_minus, eta_plus = group["etas"]
        low, high = group["step_sizes"]
        return [eta_minus, eta_plus, low, high]

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        low, high = group["step_sizes"]
        torch._foreach_add_([s["step"] for s in states], 1.0)
        prevs = [s["prev"] for s in states]
        deltas = [s["step_size"] for s in states]

        products = torch._foreach_mul(grads, prevs)
        torch._foreach_mul_(deltas, [self._factor(group, product) for product in products])
        for delta in deltas:  # per tensor: DTensor has no rule for the foreach clamps
            delta.clamp_(low, high)
        kept = [torch.where(product < 0, 0.0, g) for product, g in zip(products, grads, strict=True)]
        torch._foreach_addcmul_(params, torch._foreach_sign(kept), deltas, -1)
        for prev, g in zip(prevs, kept, strict=True):  # per tensor: DTensor has no rule for _foreach_copy_
            prev.copy_(g)
