"""``Sequential`` and ``ModuleList``: modules that hold other modules in order."""
import collections
import operator

from .. import lazy as _lazy
from .. import ops
from ..tensor import Tensor
from . import layers
from .module import Module, _addindent


def _index(idx, n):
    i = operator.index(idx)
    if not -n <= i < n:
        raise IndexError(f"index {idx} is out of range")
    return i % n


class _Ordered(Module):
    """What Sequential and ModuleList share: length, iteration, deletion, append."""

    def __delitem__(self, idx):
        keys = list(self._modules)
        _lazy._module_epoch[0] += 1
        for key in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self))]]):
            del self._modules[key]
        # renumber, as PyTorch does, so keys stay "0".."n-1"
        self.__dict__["_modules"] = dict(
            (str(i), m) for i, m in enumerate(self._modules.values()))

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules.values())

    def append(self, module):
        self.add_module(str(len(self)), module)
        return self


class Sequential(_Ordered):
    """Runs its children in order, each on the previous one's output.

    ``Sequential(a, b, c)`` names them ``"0"``, ``"1"``, ``"2"``;
    ``Sequential(OrderedDict(name=module, ...))`` keeps the given names.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], collections.OrderedDict):
            for name, module in args[0].items():
                self.add_module(name, module)
        else:
            for i, module in enumerate(args):
                self.add_module(str(i), module)

    def forward(self, input):
        modules = self._modules
        if _STATE["lazy"] and type(input) is Tensor:
            lane = self.__dict__.get("_lane")
            if lane is None or lane[0] != _lazy._module_epoch[0] or lane[1] is not modules:
                lane = self.__dict__["_lane"] = (_lazy._module_epoch[0], modules,
                                                 _lane_plan(modules.values()))
            if lane[2] is not None:
                return _record_lane(lane[2], input)
        for module in modules.values():
            input = module(input)
        return input

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(collections.OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self))]

    def __setitem__(self, idx, module):
        key = list(self._modules)[_index(idx, len(self))]
        setattr(self, key, module)


# Lazy mode's lane through a Sequential: children that are exactly Linear, Tanh, Sigmoid or
# ReLU (nothing of theirs overridden on the instance) have their op recorded directly,
# without a module call, a forward and a function per layer (W1's forward: 12.9 -> 7 us),
# a Linear with the activation after it as one op (ops._LINEAR_ACT: the grad_fns are
# those of the two). The recorder checks each op as those would (a form it does not
# record comes back None: the child is then called as usual). The lane is remade when
# any module attribute or this container's children change (jitgrad.lazy._module_epoch).
_STATE, _record, _NO_ATTRS = _lazy._STATE, _lazy.record, ops._NO_ATTRS
_LINEAR, _FUSED = 1, 2
_UNARY = {layers.Tanh: ops.tanh, layers.Sigmoid: ops.sigmoid, layers.ReLU: ops.relu}
_FUSABLE = {getattr(ops, act): act for act in ops.LINEAR_ACT_LANES}  # activation -> name


def _lane_kind(m):
    """How the lane runs child ``m``: 0 (call it), 1 (record linear) or an activation."""
    d = getattr(m, "__dict__", {})
    if "forward" in d:
        return 0
    if type(m) is layers.Linear:
        return _LINEAR if "weight" not in d and "bias" not in d else 0
    fn = _UNARY.get(type(m))
    if fn is None or d.get("inplace"):
        return 0
    return fn


def _lane_plan(modules):
    """``[(kind, module, fused)]``: a Linear followed by a fusable activation becomes one
    entry of kind ``_FUSED`` (module: both; fused: the op's attributes, key and grad_fn
    name, and the activation's kind); None when no child has a lane."""
    kinds = [(_lane_kind(m), m) for m in modules]
    if not any(kind for kind, _ in kinds):
        return None
    plan, i = [], 0
    while i < len(kinds):
        kind, m = kinds[i]
        after = kinds[i + 1][0] if i + 1 < len(kinds) else 0
        if kind is _LINEAR and after in _FUSABLE:
            plan.append((_FUSED, (m, kinds[i + 1][1]),
                         (*ops.LINEAR_ACT_LANES[_FUSABLE[after]], after)))
            i += 2
        else:
            plan.append((kind, m, None))
            i += 1
    return plan


def _record_lane(plan, h):
    for kind, m, fused in plan:
        if kind is _FUSED:
            linear, act = m
            out = None
            if type(h) is Tensor:
                p = linear._parameters
                w, b = p.get("weight"), p.get("bias")
                if b is not None and w is not None:
                    attrs, akey, name, act_kind = fused
                    out = _record(ops._LINEAR_ACT, [h, w, b], attrs, name, akey)
            h = out if out is not None else _layer(fused[3], act, _layer(_LINEAR, linear, h))
        else:
            h = _layer(kind, m, h)
    return h


def _layer(kind, m, h):
    """Child ``m``'s output: its op recorded directly where the lane has one, else its call."""
    out = None
    if kind and type(h) is Tensor:
        if kind is _LINEAR:
            p = m._parameters
            w, b = p.get("weight"), p.get("bias")
            if b is not None and w is not None:
                out = _record(ops._LINEAR, [h, w, b], _NO_ATTRS, "AddmmBackward0", ())
        else:
            out = _record(kind.op, [h], _NO_ATTRS, kind.grad_fn_name, ())
    return m(h) if out is None else out


class ModuleList(_Ordered):
    """A list of modules whose parameters the parent module sees ("0", "1", ...)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self)))]

    def __setitem__(self, idx, module):
        setattr(self, str(_index(idx, len(self))), module)

    def __iadd__(self, modules):
        return self.extend(modules)

    def extend(self, modules):
        for module in modules:
            self.append(module)
        return self

    def insert(self, index, module):
        mods = list(self._modules.values())
        mods.insert(index, module)
        self.__dict__["_modules"] = {}
        self.extend(mods)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList is not callable: index it or iterate over it")

    def __repr__(self):
        """Runs of identical children print once, as ``(0-2): 3 x Linear(...)``."""
        reprs = [repr(m) for m in self]
        if not reprs:
            return self._get_name() + "()"
        blocks = []  # [start, end, repr]
        for i, r in enumerate(reprs):
            if blocks and blocks[-1][2] == r:
                blocks[-1][1] = i
            else:
                blocks.append([i, i, r])
        lines = [_addindent(f"({a}): {r}" if a == b else f"({a}-{b}): {b - a + 1} x {r}", 2)
                 for a, b, r in blocks]
        return self._get_name() + "(\n  " + "\n  ".join(lines) + "\n)"
