"""Containers: ``Sequential``, ``ModuleList`` and ``ModuleDict`` hold modules;
``ParameterList`` and ``ParameterDict`` hold parameters."""
import collections
import collections.abc
import operator

from .. import lazy as _lazy
from .. import ops
from ..tensor import Tensor
from . import layers
from .module import Module, _addindent
from .parameter import Parameter


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


class ModuleDict(Module):
    """An ordered dict of modules whose parameters the parent module sees under their keys.

    ``ModuleDict(modules)`` takes a mapping or an iterable of ``(key, module)`` pairs.
    """

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key):
        return self._modules[key]

    def __setitem__(self, key, module):
        self.add_module(key, module)

    def __delitem__(self, key):
        _lazy._module_epoch[0] += 1
        del self._modules[key]

    def __len__(self):
        return len(self._modules)

    def __iter__(self):
        return iter(self._modules)

    def __contains__(self, key):
        return key in self._modules

    def clear(self):
        """Remove every module."""
        _lazy._module_epoch[0] += 1
        self._modules.clear()

    def pop(self, key):
        """Remove ``key`` and return its module."""
        module = self[key]
        del self[key]
        return module

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def update(self, modules):
        """Add (or replace) the modules of a mapping or of ``(key, module)`` pairs, in order."""
        _update(self, modules, "ModuleDict", (collections.abc.Mapping, ModuleDict))


def _update(container, pairs, name, ordered):
    """``container[key] = value`` for each pair of a mapping or an iterable of pairs, with
    PyTorch's errors; a mapping that is not an ``ordered`` one goes in sorted key order."""
    if not isinstance(pairs, collections.abc.Iterable):
        raise TypeError(f"{'ParametersDict' if name == 'ParameterDict' else name}.update should "
                        "be called with an iterable of key/value pairs, but got "
                        + type(pairs).__name__)
    if isinstance(pairs, (collections.OrderedDict, ordered)):
        items = pairs.items()
    elif isinstance(pairs, collections.abc.Mapping):
        items = sorted(pairs.items())
    else:
        items = []
        for j, pair in enumerate(pairs):
            if not isinstance(pair, collections.abc.Iterable):
                raise TypeError(f"{name} update sequence element #{j} should be Iterable; is"
                                + type(pair).__name__)
            if len(pair) != 2:
                raise ValueError(f"{name} update sequence element #{j} has length {len(pair)}; "
                                 "2 is required")
            items.append(pair)
    for key, value in items:
        container[key] = value


def _as_parameter(value):
    """What a parameter container stores: a plain tensor becomes a ``Parameter``."""
    return Parameter(value) if isinstance(value, Tensor) and not isinstance(value, Parameter) \
        else value


def _entries_repr(items):
    """PyTorch's listing of a parameter container's entries (``type_of`` names the dtype)."""
    lines = []
    for key, p, type_of in items:
        if isinstance(p, Tensor):
            kind = "Parameter" if isinstance(p, Parameter) else "Tensor"
            size = "x".join(str(n) for n in p.shape)
            lines.append(f"  ({key}): {kind} containing: [{type_of(p)} of size {size}]")
        else:
            lines.append(f"  ({key}): Object of type: {type(p).__name__}")
    return "\n".join(lines)


class ParameterList(Module):
    """A list of parameters whose parent module sees them (``"0"``, ``"1"``, ...); a plain
    tensor put in becomes a ``Parameter``."""

    def __init__(self, values=None):
        super().__init__()
        self._size = 0
        if values is not None:
            self += values

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            out = type(self)()
            for i in range(*idx.indices(len(self))):
                out.append(self[i])
            return out
        return getattr(self, str(_index(idx, len(self))))

    def __setitem__(self, idx, param):
        setattr(self, str(_index(idx, len(self))), _as_parameter(param))

    def __len__(self):
        return self._size

    def __iter__(self):
        return iter(self[i] for i in range(len(self)))

    def __iadd__(self, parameters):
        return self.extend(parameters)

    def append(self, value):
        """Add ``value`` at the end."""
        self._size += 1
        self[self._size - 1] = value
        return self

    def extend(self, values):
        """Add each of ``values`` at the end."""
        if not isinstance(values, collections.abc.Iterable) or isinstance(values, Tensor):
            raise TypeError("ParameterList.extend should be called with an iterable, but got "
                            + type(values).__name__)
        for value in values:
            self.append(value)
        return self

    def extra_repr(self):
        return _entries_repr((i, p, lambda t: t.dtype) for i, p in enumerate(self))

    def __call__(self, *args, **kwargs):
        raise RuntimeError("ParameterList should not be called.")


class ParameterDict(Module):
    """An ordered dict of parameters whose parent module sees them under their keys; a
    plain tensor put in becomes a ``Parameter``. A plain ``dict`` given to the constructor
    or ``update`` goes in sorted key order, as in PyTorch."""

    def __init__(self, parameters=None):
        super().__init__()
        self._keys = {}
        if parameters is not None:
            self.update(parameters)

    @staticmethod
    def _attr(key):
        if not isinstance(key, str):
            raise TypeError("Index given to ParameterDict cannot be used as a key as it is not "
                            f"a string (type is '{type(key).__name__}'). Open an issue on "
                            "github if you need non-string keys.")
        return key

    def __getitem__(self, key):
        return getattr(self, self._attr(key))

    def __setitem__(self, key, value):
        attr = self._attr(key)
        self._keys[key] = None
        setattr(self, attr, _as_parameter(value))

    def __delitem__(self, key):
        del self._keys[key]
        delattr(self, self._attr(key))

    def __len__(self):
        return len(self._keys)

    def __iter__(self):
        return iter(self._keys)

    def __reversed__(self):
        return reversed(self._keys)

    def __contains__(self, key):
        return key in self._keys

    def copy(self):
        """A new ParameterDict holding the same parameters."""
        return ParameterDict(collections.OrderedDict((k, self[k]) for k in self._keys))

    def setdefault(self, key, default=None):
        if key not in self:
            self[key] = default
        return self[key]

    def clear(self):
        for key in list(self._keys):
            del self[key]

    def pop(self, key):
        value = self[key]
        del self[key]
        return value

    def popitem(self):
        """Remove and return the last inserted ``(key, parameter)`` pair."""
        key = next(reversed(self._keys))
        return key, self.pop(key)

    def get(self, key, default=None):
        return self[key] if key in self else default

    def fromkeys(self, keys, default=None):
        return ParameterDict((k, default) for k in keys)

    def keys(self):
        return self._keys.keys()

    def items(self):
        return ((k, self[k]) for k in self._keys)

    def values(self):
        return (self[k] for k in self._keys)

    def update(self, parameters):
        """Add (or replace) the entries of a mapping or of ``(key, value)`` pairs."""
        _update(self, parameters, "ParameterDict", ParameterDict)

    def extra_repr(self):
        return _entries_repr((k, p, lambda t: t.type()) for k, p in self.items())

    def __call__(self, input):
        raise RuntimeError("ParameterDict should not be called.")

    def __or__(self, other):
        out = self.copy()
        out.update(other)
        return out

    def __ror__(self, other):
        out = other.copy()
        out.update(self)
        return out

    def __ior__(self, other):
        self.update(other)
        return self
