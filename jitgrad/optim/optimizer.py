"""``Optimizer``: param groups, per-parameter state, and arenas that make a step one native call.

Each param group's parameters (one arena per dtype) are re-homed into one
contiguous array: the arena is filled with their values and every
parameter's ``_data`` becomes a view of its slice, so the Tensor objects the
model holds stay the same. Gradients get an arena too: each parameter's
``_grad_home`` is its slice of the gradient arena, where the autograd engine
writes a fresh gradient, and optimizer state (momentum, moments) lives in
arenas of the same layout. ``step()`` then checks in Python that each
parameter's data and gradient are still those views (a cheap identity test;
anything else is copied in), marks the parameters that have a gradient, and
calls one Numba kernel (``jitgrad.kernels.cpu.optim``) over the whole arena.

``state[p]`` holds tensors that are views of the state arenas, named as in
PyTorch, so ``state_dict()`` and ``load_state_dict()`` read and write the
arenas directly.
"""
import collections
import itertools
import warnings

import numpy as np

from .. import lazy as _lazy
from ..autograd.grad_mode import enable_grad
from ..tensor import Tensor


class _Required:
    def __repr__(self):
        return "<required parameter>"


required = _Required()


def _plain(v):
    t = type(v)
    return t is float or t is int or t is bool or (t is tuple and all(map(_plain, v)))


class _Arena:
    """One dtype's parameters of one param group, stored end to end."""

    def __init__(self, params):
        self.params = params
        self.offsets = np.zeros(len(params) + 1, np.int64)
        self.offsets[1:] = np.cumsum([p.numel() for p in params])
        dtype = params[0]._data.dtype
        self.data = np.empty(int(self.offsets[-1]), dtype)
        self.grad = np.zeros_like(self.data)
        self.views, self.grad_views = [], []
        for i, p in enumerate(params):
            view = self.slice(self.data, i)
            view[...] = p._data
            p._data = view
            home = self.slice(self.grad, i)
            if p._grad is not None:
                home[...] = p._grad._data
                p._grad = p.__dict__["_home_grad"] = Tensor._make(home)  # (see lazy.home_grad)
            p._grad_home = home
            self.views.append(view)
            self.grad_views.append(home)
        _lazy._leaf_epoch[0] += 1  # lazy mode's cached steps look for these homes
        self.buffers = {}
        self.active = np.zeros(len(params), np.uint8)  # has a gradient this step
        self.flag_list = [0] * len(params)  # active, as a list
        self.flags = np.zeros(len(params), np.uint8)   # SGD: momentum buffer exists
        self.steps = np.zeros(len(params), np.float32)  # Adam: state['step']
        self.args = None  # (hyperparameters, the update kernel's arguments made from them)

    def slice(self, arena, i):
        return arena[self.offsets[i]:self.offsets[i + 1]].reshape(self.params[i]._data.shape)

    def buffer(self, name):
        """The state arena called ``name`` (zeros when first asked for)."""
        buf = self.buffers.get(name)
        if buf is None:
            buf = self.buffers[name] = np.zeros_like(self.data)
        return buf

    def sync(self):
        """Bring every parameter's data and gradient into the arena; True if any has a gradient."""
        flags = []
        for p, view, home in zip(self.params, self.views, self.grad_views):
            if p._value is not view:  # the user rebound p.data: take its values back in
                data = p._data
                if data.shape != view.shape or data.dtype != view.dtype:
                    raise RuntimeError(
                        "a parameter changed shape or dtype after its optimizer was built; "
                        "build the optimizer after converting the model")
                view[...] = data
                p._data = view
            g = p._grad
            if g is None:
                flags.append(0)
                continue
            if g._value is not home:  # (a gradient kept in the arena is home itself)
                _lazy.release_home(p, home)
                np.copyto(home, g._data)
            flags.append(1)
            p._vc[0] += 1
        if flags != self.flag_list:  # most steps update the same parameters as the last
            self.active[:] = flags
            self.flag_list = flags
        return 1 in flags


class Optimizer:
    """Base class: holds ``param_groups`` (dicts of params and hyperparameters) and ``state``.

    Subclasses name their state (``_state_names``) and run one fused kernel per
    arena in ``_update``.
    """

    def __init__(self, params, defaults):
        self.defaults = defaults
        self.state = collections.defaultdict(dict)
        self.param_groups = []
        self._arenas = []
        self._opt_called = False
        self._n_params = 0  # parameters in all groups
        self._stated = 0    # times step() made a parameter's state
        if isinstance(params, Tensor):
            raise TypeError("params argument given to the optimizer should be an iterable of "
                            f"Tensors or dicts, but got {params.type()}")
        params = list(params)
        if not params:
            raise ValueError("optimizer got an empty parameter list")
        if not isinstance(params[0], dict):
            params = [{"params": params}]
        for group in params:
            self.add_param_group(group)

    def __repr__(self):
        s = type(self).__name__ + " ("
        for i, group in enumerate(self.param_groups):
            s += f"\nParameter Group {i}"
            for key in sorted(group):
                if key != "params":
                    s += f"\n    {key}: {group[key]}"
        return s + "\n)"

    def add_param_group(self, param_group):
        """Add a group of parameters (with its own hyperparameters) and build its arenas."""
        if not isinstance(param_group, dict):
            raise TypeError(f"param_group must be a dict, but got {type(param_group).__name__}")
        params = param_group["params"]
        if isinstance(params, Tensor):
            params = [params]
        elif isinstance(params, set):
            raise TypeError("optimizer parameters need to be organized in ordered collections, "
                            "but the ordering of tensors in sets will change between runs. "
                            "Please use a list instead.")
        params = list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise TypeError("optimizer can only optimize Tensors, but one of the params is "
                                + type(p).__name__)
            if not p.is_leaf:
                raise ValueError("can't optimize a non-leaf Tensor")
            if not p.dtype.is_floating_point:
                raise ValueError("optimizer can only optimize floating-point Tensors")
        if len({id(p) for p in params}) != len(params):
            warnings.warn("optimizer contains a parameter group with duplicate parameters; in "
                          "future, this will cause an error; see "
                          "github.com/pytorch/pytorch/issues/40967 for more information",
                          stacklevel=3)
            params = list({id(p): p for p in params}.values())
        group = dict(param_group, params=params)
        for name, default in self.defaults.items():
            if default is required and name not in group:
                raise ValueError("parameter group didn't specify a value of required "
                                 f"optimization parameter {name}")
            group.setdefault(name, default)
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        by_dtype = {}
        for p in params:
            by_dtype.setdefault(p._data.dtype, []).append(p)
        self.param_groups.append(group)
        self._arenas.append([_Arena(ps) for ps in by_dtype.values()])
        self._n_params += len(params)

    def zero_grad(self, set_to_none=True):
        """Reset gradients to None (the default: the next backward writes into the arena) or to 0."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p._grad = None
                elif p._grad is not None:
                    g = p._grad
                    if g.grad_fn is not None:
                        g.detach_()
                    _lazy.flush()
                    _lazy.freeze()
                    g._data[...] = 0
                    g._vc[0] += 1
        if _lazy._tls.capture is not None:  # a jitgrad.jit replay does this too
            _lazy._tls.capture.call("zero_grad", self, set_to_none)

    def step(self, closure=None):
        """Update every parameter that has a gradient: one kernel call per group and dtype.

        ``closure``, if given, re-evaluates the model and returns the loss.
        """
        loss = None
        if closure is not None:
            with enable_grad():
                loss = closure()
        self._opt_called = True
        _lazy.settle()  # recorded ops read the parameters as they are now, and recorded
        #                 grad_fns keep the versions they saw
        for group, arenas in zip(self.param_groups, self._arenas):
            for arena in arenas:
                if arena.sync():
                    self._update(group, arena)
                    if not (self._has_step or self._state_names(group)) or (
                            self._stated >= self._n_params <= len(self.state)):
                        continue  # no state to make, or every parameter has its state
                    for i in np.flatnonzero(arena.active):
                        p = arena.params[i]
                        if not self.state.get(p):
                            views = self._state_views(group, arena, i)
                            if views:
                                self.state[p] = views
                                self._stated += 1
        capture = _lazy._tls.capture
        if capture is not None:  # a jitgrad.jit replay calls step() too
            if closure is not None:
                capture.fail("optimizer.step(closure)")
            capture.call("step", self)
        return loss

    # --- what subclasses provide ---------------------------------------------------------

    def _update(self, group, arena):
        self._kernel(*self._kernel_args(group, arena))

    _kernel = None  # the update kernel: one call per arena
    _hyper = None   # operator.itemgetter of the group's hyperparameters the arguments use

    def _args(self, group, arena):
        """The update kernel's arguments for ``group`` on ``arena``."""
        raise NotImplementedError

    def _kernel_args(self, group, arena):
        """``_args``, made again only when one of the ``_hyper`` values changed (a
        scheduler's new lr); never kept while one is not a plain number (a tensor lr
        can change in place)."""
        hyper = self._hyper(group)
        kept = arena.args
        if kept is not None and kept[0] == hyper:
            return kept[1]
        args = self._args(group, arena)
        arena.args = (hyper, args) if all(map(_plain, hyper)) else None
        return args

    def _state_names(self, group):
        """The arena-backed tensor state of each parameter, in PyTorch's key order."""
        return ()

    def _state_views(self, group, arena, i):
        state = {}
        if self._has_step:
            state["step"] = Tensor._make(arena.steps[i:i + 1].reshape(()))
        for name in self._state_names(group):
            state[name] = Tensor._make(arena.slice(arena.buffer(name), i))
        return state

    _has_step = False  # Adam-like optimizers keep state['step']

    # --- state dicts ---------------------------------------------------------------------

    def _locate(self):
        """(group, arena, index) of every parameter, in param-group order."""
        where = {}
        for group, arenas in zip(self.param_groups, self._arenas):
            for arena in arenas:
                for i, p in enumerate(arena.params):
                    where[id(p)] = (group, arena, i)
        return where

    def state_dict(self):
        """``{'state': {index: {name: tensor}}, 'param_groups': [{..., 'params': [index]}]}``.

        Parameters are numbered in param-group order, as in PyTorch; the state
        tensors are views of the optimizer's arenas (save or clone them).
        """
        index, groups = {}, []
        counter = itertools.count()
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = []
            for p in group["params"]:
                index[id(p)] = next(counter)
                packed["params"].append(index[id(p)])
            groups.append(packed)
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if s}
        return {"state": dict(sorted(state.items())), "param_groups": groups}

    def load_state_dict(self, state_dict):
        """Restore hyperparameters and state (copied into this optimizer's arenas)."""
        saved = state_dict["param_groups"]
        if len(saved) != len(self.param_groups):
            raise ValueError("loaded state dict has a different number of parameter groups")
        if any(len(g["params"]) != len(s["params"]) for g, s in zip(self.param_groups, saved)):
            raise ValueError("loaded state dict contains a parameter group that doesn't match "
                             "the size of optimizer's group")
        params = {old: p for g, s in zip(self.param_groups, saved)
                  for old, p in zip(s["params"], g["params"])}
        for group, s in zip(self.param_groups, saved):
            kept = group["params"]
            group.clear()
            group.update({k: v for k, v in s.items() if k != "params"}, params=kept)
        where = self._locate()
        self.state.clear()
        self._stated = 0
        for arenas in self._arenas:
            for arena in arenas:
                for buf in arena.buffers.values():
                    buf[...] = 0
                arena.flags[...] = 0
                arena.steps[...] = 0
        for key, values in state_dict["state"].items():
            p = params.get(int(key) if isinstance(key, str) and key.isdigit() else key)
            if p is None:
                continue
            group, arena, i = where[id(p)]
            state = self._state_views(group, arena, i)
            for name, value in values.items():
                if name == "step":
                    arena.steps[i] = float(value)
                    continue
                if name not in state:
                    state[name] = Tensor._make(arena.slice(arena.buffer(name), i))
                target = state[name]._data
                source = value._data if isinstance(value, Tensor) else np.asarray(value)
                if source.size != target.size:
                    raise ValueError(f"state '{name}' of parameter {key} has {source.size} "
                                     f"elements, but the parameter has {target.size}")
                target[...] = source.reshape(target.shape)
                if name == "momentum_buffer":
                    arena.flags[i] = 1
            if state:
                self.state[p] = state
                self._stated += 1
