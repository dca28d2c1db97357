r"""Lookahead: k steps forward with any optimizer, then one step back toward slow weights.

Zhang, Lucas, Hinton & Ba, "Lookahead Optimizer: k steps forward, 1 step back",
NeurIPS 2019 (arXiv:1907.08610), Algorithm 1. With slow weights :math:`\phi`,
fast weights :math:`\theta` (the model's parameters), an inner optimizer
:math:`A`, synchronisation period :math:`k` and slow step size :math:`\alpha`:

.. math::

    \theta_{t,0} &= \phi_{t-1} \\
    \theta_{t,i} &= \theta_{t,i-1} + A(L, \theta_{t,i-1}, d_i), \qquad i = 1, \dots, k \\
    \phi_t &= \phi_{t-1} + \alpha\,(\theta_{t,k} - \phi_{t-1})

Each call of :meth:`Lookahead.step` is one inner step; after every k-th one the
slow weights move a fraction :math:`\alpha` toward the fast ones and the fast
weights are reset to them. :math:`\alpha = 1` is the inner optimizer alone.
:math:`\phi_0`, the initial parameters, is each parameter as training starts
from it: a copy taken at its first step, before the inner update.

Deliberate choices:

* :math:`\phi_0` is taken at each parameter's first step, not when the
  Lookahead is built: weights loaded after that (a pretrained checkpoint, DDP
  broadcasting rank 0's weights) are :math:`\phi_0`, where a copy from
  construction would pull the first synchronisation half-way back to the stale
  weights. A parameter's first step is the first :meth:`Lookahead.step` in which
  it has a gradient (also one the closure computes); the copy is its value at the
  start of that step. A step that raises takes none.
* A parameter without a gradient takes no part: it gets no slow weights and is
  not synchronised. One that first has a gradient later than the rest of its
  group takes its :math:`\phi_0` then and synchronises with its group, after the
  group's next k-th step, so its first outer iteration may have fewer than k
  inner steps (counting steps per parameter would let a group's parameters fall
  out of phase). A group added later counts its own steps from 0, its
  parameters taking their :math:`\phi_0` at their first step likewise.
* The inner optimizer's state (momenta, second moments) carries on across
  synchronisations; it is neither reset nor interpolated.
* ``k``, ``alpha`` and the step counter are parameter-group entries
  (``lookahead_k``, ``lookahead_alpha``, ``lookahead_step``) in the inner
  optimizer's own groups, which the Lookahead shares: groups may differ in
  ``k`` and ``alpha``, a group added later counts its own steps, and
  ``ZeroRedundancyOptimizer`` (which copies group entries but never calls the
  local optimizer's ``load_state_dict``) carries them.
* The slow weights are per-parameter state (``state[p]["lookahead_slow"]``,
  next to the inner optimizer's entries), so they travel through
  ``ZeroRedundancyOptimizer`` and ``torch.distributed.checkpoint``. They appear
  there from the parameter's first step on: before it the state is empty, as a
  fresh torch optimizer's is (``torch.distributed.checkpoint`` relies on that),
  and a state dict saved then resumes with :math:`\phi_0` still to be taken.
* An inner optimizer that can synchronise within its own pass over memory
  (:class:`optzoo.RAdam`'s native kernel, so :class:`optzoo.Ranger`) is handed
  the k-th step's synchronisation (:class:`SynchronisationInStep`) and does it
  there; the Lookahead does the parameters it did not take. Same numbers, one
  pass fewer.
* torch-optimizer's ``Lookahead`` (0.3.0) starts its slow weights after the
  first inner step and synchronises after steps 1, k+1, 2k+1, ... (its update
  formula agrees, tested with its start aligned to Algorithm 1's); on torch 2.13
  its ``state_dict()`` fails (it skips ``Optimizer.__init__``, whose hooks that
  needs). Here ``param_groups`` is always the inner optimizer's, also after
  ``load_state_dict`` (where torch builds new group dicts).

Example:
    >>> import torch, optzoo
    >>> w = torch.nn.Parameter(torch.zeros(1))
    >>> opt = optzoo.Lookahead(torch.optim.SGD([w], lr=1.0), k=2, alpha=0.5)
    >>> for _ in range(2):
    ...     w.grad = torch.tensor([-1.0]); _ = opt.step()
    >>> w.detach()  # two SGD steps reach 2; the slow weights move half-way from 0
    tensor([1.])
"""

from __future__ import annotations

import numbers
from collections.abc import Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor
from torch.optim import Optimizer

from . import _dispatch, _native
from ._core import Closure, check_number, group_by_device_and_dtype

__all__ = ["Lookahead", "SynchronisationInStep"]

SLOW = "lookahead_slow"  # per-parameter state entry: the slow weights phi
K = "lookahead_k"  # group entries
ALPHA = "lookahead_alpha"
STEP = "lookahead_step"


@dataclass
class SynchronisationInStep:
    """A synchronisation a Lookahead hands to an inner optimizer that can do it within its own
    step, in the same pass over memory (one with a ``lookahead_sync`` attribute: RAdam's native
    kernel, so Ranger's k-th steps read and write each parameter once, not twice).

    ``slow`` holds the slow weights of the parameters to synchronise, by parameter, with the step
    size in their group's ``lookahead_alpha``; the inner optimizer adds each parameter it
    synchronised to ``done``, and the Lookahead synchronises the rest itself.
    """

    slow: dict[Tensor, Tensor]
    done: set[Tensor] = field(default_factory=set)


def _check_k(name: str, k: Any) -> int:
    if isinstance(k, bool) or not isinstance(k, numbers.Integral):
        raise TypeError(f"{name} must be an integer >= 1, got {k!r}")
    if k < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {k!r}")
    return int(k)


class Lookahead(Optimizer):
    """Wrap ``optimizer`` (any ``torch.optim.Optimizer``) in Lookahead; see the module docstring.

    The wrapper is itself an optimizer: its ``param_groups`` are the inner
    optimizer's (so LR schedulers and ``GradScaler`` drive it directly), its
    ``state`` shows the inner state and the slow weights, and its state dict
    carries both plus the step counters.
    """

    def __init__(self, optimizer: Optimizer, k: int = 5, alpha: float = 0.5) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        if isinstance(optimizer, Lookahead):
            raise TypeError("optimizer is already a Lookahead; wrapping it again would share its group entries")
        if optimizer.defaults.get("differentiable"):
            # The synchronisation writes the parameters in place under no_grad: autograd would miss it.
            raise ValueError("Lookahead's synchronisation is not differentiable; use differentiable=False")
        k = _check_k("k", k)
        alpha = check_number("alpha", alpha, 0.0, 1.0)
        self.optimizer = optimizer
        self._slow: dict[Tensor, Tensor] = {}  # phi, for the parameters that have had their first step
        # Optimizer's own machinery (step hooks, profiling) without building parameter groups:
        # those are the inner optimizer's.
        super().__setstate__({"defaults": {**optimizer.defaults, K: k, ALPHA: alpha}})
        self.state = _LookaheadState(self)
        for group in self.param_groups:
            self._adopt(group)

    # ------------------------------------------------------------------ groups
    @property
    def param_groups(self) -> list[dict[str, Any]]:  # type: ignore[override]
        return self.optimizer.param_groups

    @param_groups.setter
    def param_groups(self, value: list[dict[str, Any]]) -> None:
        self.optimizer.param_groups = value

    def _adopt(self, group: dict[str, Any]) -> None:
        """Give a group its Lookahead entries (its parameters take their phi_0 at their first step)."""
        group.setdefault(K, self.defaults[K])
        group.setdefault(ALPHA, self.defaults[ALPHA])
        group.setdefault(STEP, 0)
        self._check_group(group)

    @staticmethod
    def _check_group(group: dict[str, Any]) -> None:
        _check_k(K, group[K])
        check_number(ALPHA, group[ALPHA], 0.0, 1.0)
        step = group[STEP]
        if isinstance(step, bool) or not isinstance(step, numbers.Integral) or step < 0:
            raise ValueError(f"{STEP} must be an integer >= 0, got {step!r}")

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group to the inner optimizer; it counts its own steps, and its parameters take their slow
        weights at their first step."""
        if K in param_group:
            _check_k(K, param_group[K])
        if ALPHA in param_group:
            check_number(ALPHA, param_group[ALPHA], 0.0, 1.0)
        self.optimizer.add_param_group(param_group)
        self._adopt(self.param_groups[-1])

    # -------------------------------------------------------------------- step
    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self, closure: Closure | None = None) -> Any:
        """One inner step; after every k-th, phi += alpha (theta - phi) and theta = phi.

        Returns the closure's loss (the inner optimizer evaluates the closure).
        """
        for group in self.param_groups:
            if STEP not in group:  # added to the inner optimizer directly
                self._adopt(group)
            self._check_group(group)
        starting = self._first_slow_weights(closure is not None)
        in_step = self._synchronisation_in_step(starting)
        try:
            loss = self.optimizer.step() if closure is None else self.optimizer.step(closure)
        finally:
            if in_step.slow:
                del self.optimizer.lookahead_sync
        with torch.no_grad():
            # Those that had a gradient took part: this was their first step. The others' copies are dropped.
            self._slow.update((p, phi) for p, phi in starting.items() if p.grad is not None)
            for group in self.param_groups:
                group[STEP] += 1
                if group[STEP] % group[K] == 0:
                    params = [p for p in group["params"] if p in self._slow and p not in in_step.done]
                    self._synchronise(params, group[ALPHA], group.get("foreach"))
        return loss

    def _first_slow_weights(self, closure_given: bool) -> dict[Tensor, Tensor]:
        """phi_0 of the parameters for which this step may be the first: a copy, before the inner update,
        of each without slow weights that has a gradient, or may get one from the closure."""
        return {
            p: p.detach().clone()
            for group in self.param_groups
            for p in group["params"]
            if p not in self._slow and (p.grad is not None or (closure_given and p.requires_grad))
        }

    def _synchronisation_in_step(self, starting: dict[Tensor, Tensor]) -> SynchronisationInStep:
        """Hand the coming k-th steps' synchronisation to an inner optimizer that can merge it into
        its own step (see :class:`SynchronisationInStep`); empty if there is none to hand. ``starting``
        holds the phi_0 of the parameters whose first step this may be (a k-th step too, for k=1 or
        one that joins late)."""
        in_step = SynchronisationInStep({})
        if hasattr(self.optimizer, "lookahead_sync"):
            for group in self.param_groups:
                if (group[STEP] + 1) % group[K] == 0 and group.get("foreach") is None:
                    for p in group["params"]:
                        slow = self._slow.get(p, starting.get(p))
                        if slow is not None:
                            in_step.slow[p] = slow
        if in_step.slow:
            self.optimizer.lookahead_sync = in_step
        return in_step

    def _synchronise(self, params: list[Tensor], alpha: float, foreach: bool | None) -> None:
        """Synchronise; like the inner optimizer's step, ``foreach=None`` (the default) takes the
        native kernel where it fits and an explicit ``foreach`` the multi-tensor ops."""
        slows = [self._slow[p] for p in params]
        for bucket in group_by_device_and_dtype(params):
            fast = [params[i].detach() for i in bucket]
            slow = [slows[i] for i in bucket]
            if foreach is None:
                fast, slow = self._native_synchronise(fast, slow, alpha)
            if not fast:
                continue
            torch._foreach_lerp_(slow, fast, alpha)  # phi = phi + alpha (theta - phi)
            if type(params[bucket[0]]) in (Tensor, torch.nn.Parameter):
                torch._foreach_copy_(fast, slow)  # theta = phi
            else:  # DTensor has no _foreach_copy_
                for f, s in zip(fast, slow, strict=True):
                    f.copy_(s)

    @staticmethod
    def _native_synchronise(fast: list[Tensor], slow: list[Tensor], alpha: float) -> tuple[list[Tensor], list[Tensor]]:
        """Both lines of the synchronisation in one pass (kernels/lookahead.cpp) for the tensors
        ``_dispatch``'s allow-list lets it take; returns the fast and slow weights left to do."""
        if not _dispatch.native_bucket(fast):
            return fast, slow
        # The slow weights take the gradients' place: read and written, never in an autograd graph.
        taken, rest = _dispatch.split(fast, slow, [[]] * len(fast), [None] * len(fast))
        function = _native.kernel("lookahead") if taken else None
        if function is None:
            return fast, slow
        _native.run(function, [[fast[i] for i in taken], [slow[i] for i in taken]], [], [alpha])
        return [fast[i] for i in rest], [slow[i] for i in rest]

    # -------------------------------------------------------------- state dict
    def state_dict(self) -> dict[str, Any]:
        """The inner optimizer's state dict, with each parameter's slow weights added to its state
        (``lookahead_slow``) and ``lookahead_k``/``_alpha``/``_step`` in each group."""
        for pre_hook in self._optimizer_state_dict_pre_hooks.values():
            pre_hook(self)
        inner = self.optimizer.state_dict()
        state = {index: dict(entries) for index, entries in inner["state"].items()}
        for group, saved in zip(self.param_groups, inner["param_groups"], strict=True):
            for p, index in zip(group["params"], saved["params"], strict=True):
                if p in self._slow:
                    state.setdefault(index, {})[SLOW] = self._slow[p]
        state_dict = {"state": state, "param_groups": inner["param_groups"]}
        for post_hook in self._optimizer_state_dict_post_hooks.values():
            result = post_hook(self, state_dict)
            if result is not None:
                state_dict = result
        return state_dict

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a state dict from :meth:`state_dict`; refuse, leaving everything untouched, one that
        does not fit (another optimizer's, the inner optimizer's alone, other parameters)."""
        name = f"{type(self).__name__}.load_state_dict"
        for pre_hook in self._optimizer_load_state_dict_pre_hooks.values():
            result = pre_hook(self, state_dict)
            if result is not None:
                state_dict = result
        if not isinstance(state_dict, Mapping) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name} expects a dict with 'state' and 'param_groups'")
        saved_groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(
                f"{name}: the state dict has {len(saved_groups)} parameter groups, "
                f"this optimizer has {len(self.param_groups)}"
            )
        slow: dict[Tensor, Tensor] = {}
        for number, (saved, group) in enumerate(zip(saved_groups, self.param_groups, strict=True)):
            if len(saved["params"]) != len(group["params"]):
                raise ValueError(
                    f"{name}: group {number} holds {len(saved['params'])} parameters in the state dict "
                    f"and {len(group['params'])} here"
                )
            missing = {K, ALPHA, STEP} - set(saved)
            if missing:
                raise ValueError(
                    f"{name}: group {number} lacks {sorted(missing)}; is this the inner optimizer's "
                    "or another optimizer's state dict?"
                )
            try:
                self._check_group(saved)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}: group {number}: {error}") from error
            for p, index in zip(group["params"], saved["params"], strict=True):
                value = saved_state.get(index, {}).get(SLOW)
                if value is None:  # saved before its first step: it takes its phi_0 at its next one
                    continue
                if not isinstance(value, Tensor) or value.shape != p.shape:
                    raise ValueError(
                        f"{name}: the slow weights of parameter {index} have shape "
                        f"{getattr(value, 'shape', type(value).__name__)}, the parameter {tuple(p.shape)}"
                    )
                slow[p] = value.detach().to(device=p.device, dtype=p.dtype, copy=True)
        # A parameter may lack slow weights (no first step yet), but if every one does while the inner
        # optimizer has stepped some, this is the inner optimizer's own state dict.
        if not slow and any(saved_state.values()) and any(saved[STEP] > 0 for saved in saved_groups):
            raise ValueError(
                f"{name}: the state dict holds inner state but no slow weights ({SLOW}); "
                f"is it the inner {type(self.optimizer).__name__}'s own?"
            )
        inner = {
            "state": {
                index: {key: value for key, value in entries.items() if key != SLOW}
                for index, entries in saved_state.items()
                if set(entries) - {SLOW}
            },
            "param_groups": saved_groups,
        }
        try:
            self.optimizer.load_state_dict(inner)
        except (ValueError, KeyError, TypeError, RuntimeError) as error:
            raise ValueError(f"{name}: the inner {type(self.optimizer).__name__} refused it: {error}") from error
        # Nothing can fail from here on.
        for group, saved in zip(self.param_groups, saved_groups, strict=True):
            for key in (K, ALPHA, STEP):
                group[key] = saved[key]
            for p in group["params"]:
                self._slow.pop(p, None)
                if p in slow:
                    self._slow[p] = slow[p]
        for post_hook in self._optimizer_load_state_dict_post_hooks.values():
            post_hook(self)

    # ---------------------------------------------------------------- pickling
    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key != "state"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self.state = _LookaheadState(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__} over {self.optimizer!r}"


def _on_param(param: Tensor, slow: Tensor) -> Tensor:
    """Slow weights written from outside (ZeroRedundancyOptimizer moves 0-dim state to the CPU),
    put back on the parameter's device and dtype."""
    if slow.device != param.device or slow.dtype != param.dtype:
        return slow.to(device=param.device, dtype=param.dtype)
    return slow


class _ParamState(MutableMapping):
    """One parameter's entry of :attr:`Lookahead.state`: the inner optimizer's state for it,
    plus its slow weights under ``lookahead_slow`` from its first step on."""

    def __init__(self, owner: Lookahead, param: Tensor) -> None:
        self._owner, self._param = owner, param

    def _inner(self) -> Mapping[str, Any]:
        return self._owner.optimizer.state.get(self._param, {})

    def __getitem__(self, key: str) -> Any:
        if key == SLOW and self._param in self._owner._slow:
            return self._owner._slow[self._param]
        return self._inner()[key]

    def __setitem__(self, key: str, value: Any) -> None:
        if key == SLOW:
            self._owner._slow[self._param] = _on_param(self._param, value)
        else:
            self._owner.optimizer.state.setdefault(self._param, {})[key] = value

    def __delitem__(self, key: str) -> None:
        if key == SLOW and self._param in self._owner._slow:
            del self._owner._slow[self._param]
        else:
            del self._owner.optimizer.state[self._param][key]

    def __iter__(self) -> Iterator[str]:
        yield from self._inner()
        if self._param in self._owner._slow:
            yield SLOW

    def __len__(self) -> int:
        return len(self._inner()) + (self._param in self._owner._slow)

    def __repr__(self) -> str:
        return repr(dict(self))


class _LookaheadState(MutableMapping):
    """:attr:`Lookahead.state`: parameter -> its inner state and slow weights.

    Writing a whole entry (as ``ZeroRedundancyOptimizer.load_state_dict`` does) splits it
    between the inner optimizer's state and the slow weights.
    """

    def __init__(self, owner: Lookahead) -> None:
        self._owner = owner

    def __getitem__(self, param: Tensor) -> _ParamState:
        return _ParamState(self._owner, param)

    def __setitem__(self, param: Tensor, entries: Mapping[str, Any]) -> None:
        entries = dict(entries)
        slow = entries.pop(SLOW, None)
        self._owner.optimizer.state[param] = entries
        if slow is not None:
            self._owner._slow[param] = _on_param(param, slow)
        else:  # an entry without slow weights is one from before the parameter's first step
            self._owner._slow.pop(param, None)

    def __delitem__(self, param: Tensor) -> None:
        found = self._owner.optimizer.state.pop(param, None) is not None
        found = self._owner._slow.pop(param, None) is not None or found
        if not found:
            raise KeyError(param)

    def __contains__(self, param: object) -> bool:
        return param in self._owner._slow or bool(self._owner.optimizer.state.get(param))

    def __iter__(self) -> Iterator[Tensor]:
        inner = self._owner.optimizer.state
        for param, entries in inner.items():
            if entries or param in self._owner._slow:
                yield param
        for param in self._owner._slow:
            if not inner.get(param):
                yield param

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __repr__(self) -> str:
        return repr({param: dict(self[param]) for param in self})
