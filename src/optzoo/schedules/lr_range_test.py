r"""The learning-rate range test ("LR finder").

Smith, "Cyclical Learning Rates for Training Neural Networks", WACV 2017,
Section 3.3, in the form fast.ai popularised (Howard & Gugger 2020): train for
``num_iter`` mini-batches while the LR grows from ``start_lr`` to ``end_lr``,
exponentially

.. math::

    \eta_i = \eta_{start} (\eta_{end} / \eta_{start})^{i / (n - 1)}

(``mode="exp"``) or linearly (``mode="linear"``), and record the loss of each
batch, smoothed by a bias-corrected exponential moving average with weight
:math:`\alpha` = ``smooth`` on the new loss (:math:`\beta = 1 - \alpha`):

.. math::

    a_i = \beta a_{i-1} + \alpha \ell_i, \qquad \bar\ell_i = a_i / (1 - \beta^{i+1}).

The test stops early once :math:`\bar\ell_i` exceeds ``diverge_threshold``
times the best smoothed loss so far (or the loss is not finite). Afterwards the
model (parameters, buffers, gradients, train/eval modes) and the optimizer
(state and param groups) are restored bit for bit: the test leaves no trace
but the random numbers it drew.

Read-outs:

* ``suggested_lr``: the LR of steepest descent of the smoothed loss (most
  negative slope against the step, i.e. against :math:`\log\eta` in ``"exp"``
  mode), searched between the first tenth of the sweep and the loss minimum;
* ``cyclical_range``: ``(base_lr, max_lr)`` for
  :class:`~optzoo.schedules.CyclicalLR`: ``max_lr`` is the LR at the minimum of
  the smoothed loss (the largest LR that still trains), and ``base_lr`` is
  ``max_lr / 4``, Smith's rule of thumb ("set base_lr to 1/3 or 1/4 of max_lr").

Example:
    >>> import torch
    >>> from optzoo.schedules import lr_range_test
    >>> _ = torch.manual_seed(0)
    >>> x = torch.randn(64, 3); y = x @ torch.tensor([1.0, -2.0, 0.5])
    >>> model = torch.nn.Linear(3, 1)
    >>> opt = torch.optim.SGD(model.parameters(), lr=0.01)
    >>> before = model.weight.detach().clone()
    >>> result = lr_range_test(model, lambda out, t: ((out.squeeze(1) - t) ** 2).mean(), [(x, y)], opt,
    ...                        start_lr=1e-4, end_lr=10, num_iter=60)
    >>> 1e-4 <= result.suggested_lr <= 10, torch.equal(model.weight, before), opt.param_groups[0]["lr"]
    (True, True, 0.01)
"""

from __future__ import annotations

import copy
import math
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from ..optim._core import check_choice, check_number
from ._base import check_int

__all__ = ["LRRangeTestResult", "lr_range_test"]


@dataclass(frozen=True)
class LRRangeTestResult:
    """What :func:`lr_range_test` measured: one entry per mini-batch trained."""

    lrs: tuple[float, ...]
    losses: tuple[float, ...]  # smoothed (bias-corrected EMA)
    raw_losses: tuple[float, ...]
    suggested_lr: float
    cyclical_range: tuple[float, float]  # (base_lr, max_lr) for CyclicalLR
    diverged: bool  # stopped early: the loss exceeded diverge_threshold * best


def _batches(data: Iterable[Any]) -> Iterator[Any]:
    """``data`` cycled forever; a one-shot iterator is replayed from a cache of its batches."""
    one_shot = iter(data) is data
    cache: list[Any] = []
    source: Iterable[Any] = data
    while True:
        count = 0
        for batch in source:
            count += 1
            if one_shot and source is data:
                cache.append(batch)
            yield batch
        if count == 0:
            raise ValueError("data yielded no batches; give an iterable of (inputs, targets) pairs")
        if one_shot:
            source = cache


def _to(value: Any, device: torch.device) -> Any:
    return value.to(device) if isinstance(value, Tensor) else value


def _gradient(values: list[float]) -> list[float]:
    """Central differences, one-sided at the ends (as ``numpy.gradient``)."""
    n = len(values)
    if n < 2:
        return [0.0] * n
    inner = [(values[i + 1] - values[i - 1]) / 2 for i in range(1, n - 1)]
    return [values[1] - values[0], *inner, values[-1] - values[-2]]


def _set_lr(optimizer: Optimizer, lr: float) -> None:
    for group in optimizer.param_groups:
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(lr)
        else:
            group["lr"] = lr


def lr_range_test(
    model: torch.nn.Module,
    loss_fn: Callable[[Any, Any], Tensor],
    data: Iterable[Any],
    optimizer: Optimizer,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_iter: int = 100,
    mode: str = "exp",
    smooth: float = 0.05,
    diverge_threshold: float = 5.0,
) -> LRRangeTestResult:
    """Sweep the LR over ``num_iter`` mini-batches and suggest one (see the module docstring).

    Args:
        model: the model; restored afterwards.
        loss_fn: ``loss_fn(model(inputs), targets) -> scalar tensor``.
        data: an iterable of ``(inputs, targets)`` pairs (a list, a DataLoader,
            a generator), cycled when shorter than ``num_iter``; tensors are moved
            to the model's device.
        optimizer: an optimizer over (some of) the model's parameters, used as
            it is configured except for the LR, which every param group gets;
            restored afterwards.
        start_lr, end_lr: the sweep's ends, ``0 < start_lr < end_lr``.
        num_iter: mini-batches, an integer >= 2.
        mode: ``"exp"`` (geometric sweep) or ``"linear"``.
        smooth: the EMA weight of the newest loss, in (0, 1] (1: no smoothing).
        diverge_threshold: stop once the smoothed loss exceeds this many times
            the best so far, > 1.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    if not callable(loss_fn):
        raise TypeError(f"loss_fn must be callable as loss_fn(outputs, targets), got {loss_fn!r}")
    if not isinstance(optimizer, Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    if isinstance(data, (str, bytes)) or not isinstance(data, Iterable):
        raise TypeError(f"data must be an iterable of (inputs, targets) pairs, got {type(data).__name__}")
    start_lr = check_number("start_lr", start_lr, 0.0, low_open=True)
    end_lr = check_number("end_lr", end_lr, 0.0, low_open=True)
    if end_lr <= start_lr:
        raise ValueError(f"end_lr must be larger than start_lr, got start_lr={start_lr!r}, end_lr={end_lr!r}")
    num_iter = check_int("num_iter", num_iter, 2)
    check_choice("mode", mode, ("exp", "linear"))
    smooth = check_number("smooth", smooth, 0.0, 1.0, low_open=True)
    diverge_threshold = check_number("diverge_threshold", diverge_threshold, 1.0, low_open=True)
    model_params = {id(p) for p in model.parameters()}
    if not any(id(p) in model_params for group in optimizer.param_groups for p in group["params"]):
        raise ValueError("the optimizer updates none of the model's parameters")

    device = next(model.parameters()).device
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    grads = [(p, None if p.grad is None else p.grad.detach().clone()) for p in model.parameters()]
    modes = [(module, module.training) for module in model.modules()]

    def lr_at(i: int) -> float:
        fraction = i / (num_iter - 1)
        if mode == "exp":
            return start_lr * (end_lr / start_lr) ** fraction
        return start_lr + (end_lr - start_lr) * fraction

    lrs: list[float] = []
    raw: list[float] = []
    smoothed: list[float] = []
    diverged = False
    beta = 1.0 - smooth
    average, best = 0.0, math.inf
    try:
        model.train()
        batches = _batches(data)
        for i in range(num_iter):
            lr = lr_at(i)
            _set_lr(optimizer, lr)
            batch = next(batches)
            try:
                inputs, targets = batch
            except (TypeError, ValueError) as error:
                raise TypeError(f"each batch must be an (inputs, targets) pair, got {type(batch).__name__}") from error
            inputs, targets = _to(inputs, device), _to(targets, device)
            seen: list[Tensor] = []

            def closure(inputs: Any = inputs, targets: Any = targets, seen: list[Tensor] = seen) -> Tensor:
                optimizer.zero_grad()
                loss = loss_fn(model(inputs), targets)
                loss.backward()
                seen.append(loss.detach())
                return loss

            optimizer.step(closure)
            loss = float(seen[0])
            if not math.isfinite(loss):
                diverged = True
                break
            average = beta * average + smooth * loss
            value = average / (1.0 - beta ** (i + 1))
            lrs.append(lr)
            raw.append(loss)
            smoothed.append(value)
            if i > 0 and value > diverge_threshold * best:
                diverged = True
                break
            best = min(best, value)
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        for param, grad in grads:
            param.grad = grad
        for module, training in modes:
            module.train(training)

    if not lrs:
        raise ValueError(f"the loss was not finite from the first batch on (at lr={start_lr:g})")
    lowest = min(range(len(smoothed)), key=smoothed.__getitem__)
    slopes = _gradient(smoothed)
    first = min(len(smoothed) // 10, lowest)
    steepest = min(range(first, lowest + 1), key=slopes.__getitem__)
    if lowest == 0:
        warnings.warn(
            f"the smoothed loss never fell below its first value: start_lr={start_lr:g} may already be too large",
            RuntimeWarning,
            stacklevel=2,
        )
    max_lr = lrs[lowest]
    return LRRangeTestResult(
        lrs=tuple(lrs),
        losses=tuple(smoothed),
        raw_losses=tuple(raw),
        suggested_lr=lrs[steepest],
        cyclical_range=(max_lr / 4.0, max_lr),
        diverged=diverged,
    )
