r"""RAdam: Adam whose adaptive step is switched on, and rectified, once its variance is tractable.

Liu, Jiang, He, Chen, Liu, Gao & Han, "On the Variance of the Adaptive Learning
Rate and Beyond", ICLR 2020 (arXiv:1908.03265), Algorithm 2. For step
:math:`t = 1, 2, \dots` and gradient :math:`g_t` (after ``maximize`` and coupled
weight decay), with :math:`\rho_\infty = 2 / (1 - \beta_2) - 1`:

.. math::

    m_t &= \beta_1 m_{t-1} + (1 - \beta_1)\, g_t \\
    v_t &= \beta_2 v_{t-1} + (1 - \beta_2)\, g_t^2 \\
    \hat m_t &= m_t / (1 - \beta_1^t) \\
    \rho_t &= \rho_\infty - 2 t \beta_2^t / (1 - \beta_2^t)

If :math:`\rho_t > \rho_{min}` (the variance of the adaptive learning rate is tractable):

.. math::

    l_t &= \sqrt{1 - \beta_2^t} \,/\, (\sqrt{v_t} + \epsilon) \\
    r_t &= \sqrt{\frac{(\rho_t - 4)(\rho_t - 2)\,\rho_\infty}{(\rho_\infty - 4)(\rho_\infty - 2)\,\rho_t}} \\
    \theta_t &= \theta_{t-1} - \eta\, r_t\, \hat m_t\, l_t

else :math:`\theta_t = \theta_{t-1} - \eta\, \hat m_t` (SGD with momentum).
Decoupled weight decay (``decoupled_weight_decay=True``) multiplies the
parameters by :math:`1 - \eta\lambda` before the update instead.

Deliberate choices, defaults following ``torch.optim.RAdam``:

* The threshold :math:`\rho_{min}` is ``rectify_threshold=5.0``, torch's
  :math:`\rho_t > 5` (also the authors' released code). The paper's Algorithm 2
  tests :math:`\rho_t > 4`: ``rectify_threshold=4.0``. With
  :math:`\beta_2 = 0.999` the two differ at step 5 only (:math:`\rho_5 \approx 4.996`).
  Values below 4 are refused: :math:`r_t` needs :math:`\rho_t > 4`.
* :math:`\epsilon` is added to :math:`\sqrt{v_t}` (the paper writes
  :math:`l_t = \sqrt{(1 - \beta_2^t) / v_t}`, without one).

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = optzoo.RAdam([w], lr=0.1)
    >>> w.grad = torch.tensor([3.0, -0.5]); _ = opt.step()  # rho_1 = 1: a momentum-SGD step
    >>> w.detach()
    tensor([-0.3000,  0.0500])
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
from .lookahead import ALPHA, SynchronisationInStep

__all__ = ["RAdam"]


class RAdam(ZooOptimizer):
    """Rectified Adam (see the module docstring for the update rule).

    Drop-in for ``torch.optim.RAdam`` (torch 2.13's signature). Differences: ``fused``, which torch's class
    lacks, and ``rectify_threshold`` are keyword-only extras, and ``fused=True`` runs optzoo's native kernel.
    The keywords' meanings: the ``optzoo.optim._core`` module docstring.
    """

    supports_complex = True  # over the real view, as torch.optim

    state_schema = StateSchema(Entry("step", "step"), Entry("exp_avg"), Entry("exp_avg_sq"))
    native_kernel = "radam"
    optional_hyper = frozenset({"decoupled_weight_decay", "rectify_threshold"})  # torch < 2.1 had no decoupled
    #: Set by a Lookahead around RAdam (Ranger) for its k-th steps: the synchronisation the
    #: native kernel does in the same pass (see ``SynchronisationInStep``).
    lookahead_sync: SynchronisationInStep | None = None

    def __init__(
        self,
        params: ParamsT,
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
        weight_decay: float = 0.0,
        decoupled_weight_decay: bool = False,
        *,
        foreach: bool | None = None,
        maximize: bool = False,
        capturable: bool = False,
        differentiable: bool = False,
        fused: bool | None = None,
        rectify_threshold: float = 5.0,
    ) -> None:
        defaults = dict(
            lr=lr,
            betas=betas,
            eps=eps,
            weight_decay=weight_decay,
            decoupled_weight_decay=decoupled_weight_decay,
            foreach=foreach,
            maximize=maximize,
            capturable=capturable,
            differentiable=differentiable,
            fused=fused,
            rectify_threshold=rectify_threshold,
        )
        super().__init__(params, defaults)

    def _check_hyper(self, group: dict[str, Any]) -> None:
        check_betas("betas", group["betas"])
        check_number("eps", group["eps"], 0.0)
        check_bool("decoupled_weight_decay", group["decoupled_weight_decay"])
        check_number("rectify_threshold", group["rectify_threshold"], 4.0)

    @staticmethod
    def _rectification(group: dict[str, Any], t: float) -> float | None:
        """r_t, or None while rho_t <= the threshold (no adaptive step yet)."""
        beta2 = group["betas"][1]
        rho_inf = 2 / (1 - beta2) - 1
        rho_t = rho_inf - 2 * t * beta2**t / (1 - beta2**t)
        if rho_t <= group["rectify_threshold"]:
            return None
        return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5

    def _reference_update(self, group: dict[str, Any], param: Tensor, grad: Tensor, state: dict[str, Any]) -> None:
        beta1, beta2 = group["betas"]
        lr = group["lr"]
        state["step"] += 1
        t = state["step"].item()
        m, v = state["exp_avg"], state["exp_avg_sq"]

        update_moments(m, v, grad, beta1, beta2)  # m_t = beta1 m + (1 - beta1) g; v_t = beta2 v + (1 - beta2) g^2
        m_hat = m / (1 - beta1**t)
        r_t = self._rectification(group, t)
        if r_t is None:
            param.add_(m_hat * lr, alpha=-1.0)  # theta -= lr m_hat
        else:
            l_t = (1 - beta2**t) ** 0.5 / v.sqrt().add_(group["eps"])  # sqrt(1 - beta2^t) / (sqrt(v) + eps)
            param.add_(m_hat * lr * l_t * r_t, alpha=-1.0)  # theta -= lr r_t m_hat l_t

    def _native_hyper(self, group: dict[str, Any]) -> list[float]:
        beta1, beta2 = group["betas"]
        alpha = group.get(ALPHA, 0.0) if self.lookahead_sync is not None else 0.0
        return [group["lr"], beta1, beta2, group["eps"], group["rectify_threshold"], alpha]

    def _kernel_buffers(self, group: dict[str, Any], param: Tensor, state: dict[str, Any]) -> list[Tensor | None]:
        slow = None if self.lookahead_sync is None else self.lookahead_sync.slow.get(param)
        return [*super()._kernel_buffers(group, param, state), slow]

    def _native_update(
        self,
        group: dict[str, Any],
        params: list[Tensor],
        grads: list[Tensor],
        states: list[dict[str, Any]],
        indices: list[int],
    ) -> list[int]:
        rest = super()._native_update(group, params, grads, states, indices)
        sync = self.lookahead_sync
        if sync is not None:
            skipped = set(rest)
            sync.done.update(params[i] for i in indices if i not in skipped and params[i] in sync.slow)
        return rest

    def _foreach_update(
        self, group: dict[str, Any], params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]]
    ) -> None:
        beta1, beta2 = group["betas"]
        # A tensor lr multiplies tensors in the per-tensor step: its value, in Python's float arithmetic here.
        lr = float(group["lr"])
        steps = [s["step"] for s in states]
        torch._foreach_add_(steps, 1.0)
        exp_avgs = [s["exp_avg"] for s in states]
        exp_avg_sqs = [s["exp_avg_sq"] for s in states]

        foreach_update_moments(exp_avgs, exp_avg_sqs, grads, beta1, beta2)

        # Tensors that joined at different times may sit on either side of the threshold.
        rectified, plain = [], []
        for i, step in enumerate(steps):
            t = step.item()
            r_t = self._rectification(group, t)
            # Each factor as the per-tensor step has it (a tensor beta's in its precision), multiplied here.
            bias1 = float(1 - beta1**t)
            if r_t is None:
                plain.append((i, -lr / bias1))
            else:
                rectified.append((i, -lr * float(r_t) * math.sqrt(float(1 - beta2**t)) / bias1))
        if plain:
            moments = torch._foreach_mul([exp_avgs[i] for i, _ in plain], [scale for _, scale in plain])
            torch._foreach_add_([params[i] for i, _ in plain], moments)
        if rectified:
            denom = torch._foreach_sqrt([exp_avg_sqs[i] for i, _ in rectified])
            torch._foreach_add_(denom, group["eps"])
            torch._foreach_addcdiv_(
                [params[i] for i, _ in rectified],
                [exp_avgs[i] for i, _ in rectified],
                denom,
                [scale for _, scale in rectified],
            )
