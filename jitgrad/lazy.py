"""Lazy mode: ops record pending nodes; realization runs them as one Program.

In lazy mode an op checks its arguments and records a ``Pending`` node on its
output tensor instead of computing. When a value is needed (``.item()``,
``print``, ``backward()`` finishing, an in-place write, ``realize()``), the
pending graph behind the requested tensors is lowered into a ``Program``: one
instruction table over one arena, run by the native interpreter
(``kernels/cpu/interpreter.py``) in a single call. Programs are cached by a
signature of the graph (ops, attributes, wiring, input dtypes and sizes), so a
training loop lowers once and afterwards only records and binds.

What the user observes is eager mode's: view ops still return tensors that
alias their input's storage once realized, versions and grad_fns are recorded
as in eager mode, and any op the interpreter does not cover runs eagerly on
realized inputs.
"""
import os
import sys
import weakref

import numpy as np

from . import _launch
from .kernels.cpu import elementwise as ew
from .kernels.cpu import interpreter as I
from .kernels.cpu import reduce as rd

_STATE = {"lazy": os.environ.get("JITGRAD_MODE", "lazy").lower() != "eager"}
MAX_DEPTH = 2000  # a pending chain this deep realizes by itself (bounded memory)
_pending = []     # weakrefs to pending tensors, so writes can flush them first

_stats = {"programs": 0, "instructions": 0, "lowerings": 0, "cache_hits": 0,
          "eager_fallbacks": 0}


def set_mode(mode):
    """``"lazy"``: ops record and run as native Programs; ``"eager"``: each op runs at once."""
    if mode not in ("eager", "lazy"):
        raise ValueError(f"mode must be 'eager' or 'lazy', got {mode!r}")
    if mode == "eager":
        flush()
    _STATE["lazy"] = mode == "lazy"


def get_mode():
    return "lazy" if _STATE["lazy"] else "eager"


def is_lazy():
    return _STATE["lazy"]


def jit_stats():
    """What the runtime did, for users and tests to see.

    ``programs``/``instructions``: Programs run by the interpreter and their
    instructions; ``lowerings``: graphs lowered to new Programs; ``cache_hits``:
    realizations that reused one; ``eager_fallbacks``: ops lazy mode ran
    eagerly (integer results, mixed float dtypes); ``tier``: what runs ops now;
    ``compiles``/``disk_cache_loads``: Numba kernels compiled in this process
    versus loaded from the disk cache.
    """
    compiles = loads = 0
    for dispatcher in _kernel_dispatchers():
        compiles += sum(dispatcher.stats.cache_misses.values())
        loads += sum(dispatcher.stats.cache_hits.values())
    return dict(_stats, programs_cached=len(_cache) + len(_train_cache), mode=get_mode(),
                tier="interpreter" if _STATE["lazy"] else "eager kernels",
                compiles=compiles, disk_cache_loads=loads)


def _kernel_dispatchers():
    import sys
    from numba.core.registry import CPUDispatcher
    for name, module in list(sys.modules.items()):
        if name.startswith("jitgrad.kernels.") and module is not None:
            for v in vars(module).values():
                if isinstance(v, CPUDispatcher):
                    yield v


class Pending:
    """How to compute one output of one op, once its inputs are known.

    ``layout`` is, for view ops, an array over no memory with the strides the
    realized view will have; ``shares`` says whether it aliases its input.
    """

    __slots__ = ("op", "inputs", "attrs", "index", "shape", "dtype", "depth", "layout",
                 "shares", "value")

    def __init__(self, op, inputs, attrs, index, shape, dtype, depth, layout=None,
                 shares=False):
        self.op, self.inputs, self.attrs, self.index = op, inputs, attrs, index
        self.shape, self.dtype, self.depth = shape, dtype, depth
        self.layout, self.shares = layout, shares
        self.value = None  # set once computed (a saved output may hold only this object)


# --- recording --------------------------------------------------------------------

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(np.bool_)


def record(op, inputs, attrs):
    """Pending output tensors of ``op``, or None when the interpreter does not cover it
    (an op without a lowering rule, integer operands, or mixed float dtypes)."""
    if op.name not in LOWER:
        return None
    layouts = None
    if op.view and not (op.name == "index" and _advanced(attrs["key"])):
        src = _layout(inputs[0])
        views = op.forward(src, **attrs)
        layouts = views if op.multi else (views,)
        metas = [(v.shape, v.dtype) for v in layouts]
    elif op.view:  # advanced indexing copies: shapes from an array whose reads are all safe
        t = inputs[0]
        v = op.forward(fake_array(t._shape, t._npdtype, (0,) * len(t._shape)), **attrs)
        metas = [(v.shape, v.dtype)]
    else:
        metas = op.meta([(t._shape, t._npdtype) for t in inputs], **attrs)
    # one float dtype per Program (bools ride along as 0/1); ints run eagerly
    kind = None
    depth = 1
    for t in _operands(inputs, attrs):
        v = t._value
        if v is None:
            p = t._lazy
            d = p.dtype
            if p.depth >= depth:
                depth = p.depth + 1
        else:
            d = v.dtype
        if d is not kind and d is not _BOOL:
            if kind is not None or d not in _FLOATS:
                return None
            kind = d
    outs = []
    make = _Tensor_make
    for i, (shape, dtype) in enumerate(metas):
        if dtype is not kind:
            dtype = np.dtype(dtype)
            if dtype is not _BOOL and (dtype not in _FLOATS or (kind is not None and dtype != kind)):
                return None
        t = make(None)
        t._lazy = p = Pending(op, inputs, attrs, i, tuple(shape), dtype, depth)
        if layouts is not None:
            p.layout = layouts[i]
            p.shares = op.name != "view" or bool(np.may_share_memory(layouts[i], src))
        outs.append(t)
        _pending.append(weakref.ref(t))
    if len(_pending) > _PENDING_BOUND:
        _prune_pending()
    if depth >= MAX_DEPTH:
        realize(*outs)
    return outs


def _advanced(key):
    return any(isinstance(k, (np.ndarray, bool)) for k in key)


def _layout(t):
    """An array over no memory laid out as ``t`` is (or will be once realized)."""
    v = t._value
    if v is not None:
        return fake_array(v.shape, v.dtype, v.strides)
    p = t._lazy
    return p.layout if p.layout is not None else fake_array(p.shape, p.dtype)


def alias(t):
    """A pending tensor that takes ``t``'s value (for ``detach``, ``.data``, saved outputs)."""
    return record(ALIAS, [t], {})[0]


def _operands(inputs, attrs):
    """Every tensor a node reads: its inputs and tensor-valued attributes (``where``'s cond)."""
    cond = attrs.get("cond")
    return inputs if cond is None else list(inputs) + [cond]


_PENDING_BOUND = 4096


def _prune_pending():
    """Forget pending-tensor entries that died or were realized (keeps ``_pending`` small
    in loops that never write in place, so nothing ever flushes)."""
    global _PENDING_BOUND
    alive = [r for r in _pending if (t := r()) is not None and t._value is None]
    _pending[:] = alive
    _PENDING_BOUND = max(4096, 2 * len(alive))


def flush():
    """Realize every pending tensor still alive (before storage is written in place)."""
    if not _pending:
        return
    alive = [t for t in (r() for r in _pending) if t is not None and t._value is None]
    _pending.clear()
    if alive:
        realize(*alive)


# --- realization ------------------------------------------------------------------

def _collect(targets):
    """Pending nodes behind ``targets`` in dependency order, the realized inputs they read,
    and the graph's signature, in one walk.

    Returns ``(order, inputs, where, signature)``; ``where`` maps the id of every
    tensor met to ``("n", position in order)`` or ``("i", position in inputs)``.
    Two tensor objects over one pending computation (a saved output re-wrapped
    for the backward pass) are one node. The signature names each node's op,
    output index, wiring, attributes, shape and dtype, and each input's shape and
    dtype: equal signatures lower to the same Program.
    """
    order, inputs, where, nodes, sig = [], [], {}, {}, []
    stack = [(t, False) for t in reversed(targets)]
    while stack:
        t, done = stack.pop()
        p = t._lazy
        if done:
            operands = _operands(p.inputs, p.attrs)
            nodes[id(p)] = where[id(t)] = ("n", len(order))
            order.append(t)
            sig.append((p.op.name, p.index, tuple([where[id(u)] for u in operands]),
                        _attrs_key(p), p.shape, p.dtype.str))
            continue
        if id(t) in where:
            continue
        if t._value is None and p.value is not None:  # computed through a twin already
            t._value, t._lazy = p.value, None
        v = t._value
        if v is not None:
            where[id(t)] = ("i", len(inputs))
            inputs.append(t)
            sig.append((v.shape, v.dtype.str))
            continue
        if id(p) in nodes:
            where[id(t)] = nodes[id(p)]
            continue
        where[id(t)] = None
        nodes[id(p)] = None
        stack.append((t, True))
        for u in reversed(_operands(p.inputs, p.attrs)):
            if id(u) not in where:
                stack.append((u, False))
    return order, inputs, where, tuple(sig)


def _attr_key(v):
    if isinstance(v, _tensor.Tensor):
        return None  # wired as an operand
    if isinstance(v, (tuple, list)):
        return tuple(_attr_key(x) for x in v)
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, np.ndarray):
        return ("array", v.shape, v.dtype.str)  # values bound per run
    if isinstance(v, np.dtype):
        return v.str
    return v


def _attrs_key(p):
    return tuple([(k, _attr_key(v)) for k, v in p.attrs.items()])


def realize(*tensors):
    """Compute every pending tensor in ``tensors`` (and what they depend on) in one Program."""
    targets = []
    for t in tensors:
        if t._value is None and t._lazy is not None:
            if t._lazy.value is not None:   # computed already, through a twin
                t._value, t._lazy = t._lazy.value, None
            else:
                targets.append(t)
    if not targets:
        return
    order, inputs, where, graph_sig = _collect(targets)
    fdtype = _program_dtype(order, inputs)
    sig = (fdtype.str, graph_sig)
    program = _cache.get(sig)
    if program is None:
        _stats["lowerings"] += 1
        program = _cache[sig] = Lowering(order, inputs, where, fdtype).program()
    else:
        _stats["cache_hits"] += 1
    program.run(order, inputs)


def _program_dtype(order, inputs):
    for t in order:
        if t._lazy.dtype in _FLOATS:
            return t._lazy.dtype
    for t in inputs:
        if t._value.dtype in _FLOATS:
            return t._value.dtype
    return np.dtype(np.float32)


_cache = {}


class Program:
    """Instructions over one arena, plus where each input and node lives in it.

    ``index_specs`` say how to fill the index arena per run: ``(place, kind,
    shape)`` reads attribute ``key`` (flat positions of that index over
    ``shape``) or ``idx`` of the node at ``place`` in the realized order.
    """

    def __init__(self, code, scalars, index_specs, arena_size, input_slots, node_slots,
                 fdtype):
        self.code, self.scalars = code, scalars
        self.index_specs = index_specs
        self.arena_size, self.input_slots, self.node_slots = arena_size, input_slots, node_slots
        self.fdtype = fdtype
        self._last = None

    def execute(self, values, indices):
        """Run on input arrays ``values`` and index arrays; returns the arena.

        The last run's arena is reused when nothing references it any more (its
        values were views, now dropped): a fresh large allocation each step would
        pay the kernel's page faults again.
        """
        arena = self._last
        if arena is None or sys.getrefcount(arena) > 3:  # ours, the local, the call
            arena = np.empty(self.arena_size, self.fdtype)
            self._last = arena
        scalars = self.scalars.copy()
        for (kind, off, n), v in zip(self.input_slots, values):
            if kind == 1:   # a 0-d input: its value goes through the scalar table
                scalars[off] = v.item()
            else:
                arena[off:off + n] = v.reshape(-1)
        I.interpret(self.code, scalars,
                    np.concatenate(indices) if indices else _NO_INDICES, arena)
        _stats["programs"] += 1
        _stats["instructions"] += len(self.code)
        return arena

    def value(self, arena, k, p):
        """Node ``k``'s value: an arena view (or, for view ops, a view of its input)."""
        if p.op.view:
            value = p.op.forward(p.inputs[0]._data, **p.attrs)
            return value[p.index] if isinstance(value, tuple) else value
        off, n = self.node_slots[k]
        value = arena[off:off + n].reshape(p.shape)
        return value if p.dtype == self.fdtype else value.astype(p.dtype)

    def run(self, order, inputs):
        indices = [_index_array(order[place]._lazy.attrs, kind, shape)
                   for place, kind, shape in self.index_specs]
        arena = self.execute([t._value for t in inputs], indices)
        for k, t in enumerate(order):
            p = t._lazy
            t._value = p.value = self.value(arena, k, p)
            t._lazy = None


def _index_array(attrs, kind, shape):
    from .ops import _flat_positions
    if kind == "key":
        return _flat_positions(shape, attrs["key"]).reshape(-1)
    return attrs["idx"].reshape(-1).astype(np.int64, copy=False)


_NO_INDICES = np.zeros(1, np.int64)


# --- lowering ---------------------------------------------------------------------

def _c_strides(shape):
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def _broadcast_strides(shape, target):
    """Element strides of a contiguous ``shape`` broadcast to ``target`` (0 where broadcast)."""
    st = _c_strides(shape)
    lead = len(target) - len(shape)
    return tuple(0 if i < lead or shape[i - lead] == 1 else st[i - lead]
                 for i in range(len(target)))


class Lowering:
    """Turns a pending graph into a Program: assigns arena slots and emits rows."""

    def __init__(self, order, inputs, where, fdtype, outputs=()):
        """``outputs`` are nodes read straight from the arena afterwards: they must be laid
        out contiguously there (not left as a transpose flag)."""
        self.order, self.inputs, self.where, self.fdtype = order, inputs, where, fdtype
        self.outputs = outputs
        self.rows, self.scalars, self.index_specs = [], [], []
        self.index_len = 0
        self.size = 0
        self.input_slots, self.node_slots = [], []
        self.buf = {}   # id(tensor) -> (offset, shape)
        self.transposed = {}  # node key -> (offset, shape) of a 2-D matrix it transposes

    def alloc(self, n):
        off = self.size
        self.size += max(int(n), 1)
        return off

    def scalar(self, value):
        self.scalars.append(float(value))
        return len(self.scalars) - 1

    def program(self):
        for t in self.inputs:
            v = t._value
            if v.ndim == 0:
                k = self.scalar(0.0)
                off = self.alloc(1)
                self.row(I.FILL, k, off, dims=(1, 1, 1, 1))
                self.input_slots.append((1, k, 1))
            else:
                off = self.alloc(v.size)
                self.input_slots.append((0, off, v.size))
            self.buf[self.where[id(t)]] = (off, v.shape)
        for i, t in enumerate(self.order):
            p = t._lazy
            off = LOWER[p.op.name](self, t, p)
            self.buf[("n", i)] = (off, p.shape)
            self.node_slots.append((off, int(np.prod(p.shape, dtype=np.int64))))
        for t in self.outputs:
            self.operand(t)
        code = np.array(self.rows, np.int64).reshape(-1, I.WIDTH)
        return Program(code, np.array(self.scalars or [0.0]), self.index_specs,
                       max(self.size, 1), self.input_slots, self.node_slots, self.fdtype)

    # emitters -------------------------------------------------------------------
    def row(self, op, sub, out, a=0, b=0, c=0, dims=(1, 1, 1, 1), sa=(0,) * 4, sb=(0,) * 4,
            sc=(0,) * 4, flat=0):
        self.rows.append([op, sub, out, a, b, c, *dims, *sa, *sb, *sc, flat])

    def operand(self, u):
        """``u``'s contiguous buffer (offset, shape); a transpose kept as a flag is copied now."""
        key = self.where[id(u)]
        t = self.transposed.pop(key, None)
        if t is not None:
            src_off, src_shape = t
            out = self.alloc(np.prod(src_shape, dtype=np.int64))
            self.copy_view(out, src_shape[::-1], src_off, 0, (1, src_shape[1]))
            self.buf[key] = (out, src_shape[::-1])
            self.node_slots[key[1]] = (out, int(np.prod(src_shape)))
        return self.buf[key]

    def matrix(self, u):
        """``u`` as a matrix operand: (offset, shape, transposed flag)."""
        key = self.where[id(u)]
        t = self.transposed.get(key)
        if t is not None:
            return t[0], t[1][::-1], 1
        off, shape = self.buf[key]
        return off, shape, 0

    def new_out(self, t):
        return self.alloc(np.prod(t._lazy.shape, dtype=np.int64))

    def elementwise(self, op, sub, out, out_shape, operands):
        """out (contiguous, ``out_shape``) = op over operands [(offset, shape or strides)]."""
        strides = [_broadcast_strides(shape, out_shape) if geo is None else geo
                   for (_, shape, geo) in operands]
        n = int(np.prod(out_shape, dtype=np.int64))
        if n == 0:
            return
        dims = _launch._coalesce(out_shape, [tuple(strides_) for strides_ in strides]
                                 + [_c_strides(out_shape)])
        if not dims or (len(dims) == 1 and all(st == 1 for st in dims[0][1])):
            # every operand runs contiguously alongside the output: the 1-D kernels
            self.row(op, sub, out, *[o for o, _, _ in operands], dims=(n, 1, 1, 1), flat=1)
            return
        if len(dims) > 4:
            raise NotImplementedError("more than 4 dims after merging")
        dims = [(1, [0] * (len(strides) + 1))] * (4 - len(dims)) + dims
        shape4 = tuple(d for d, _ in dims)
        geos = [tuple(st[j] for _, st in dims) for j in range(len(strides))]
        while len(geos) < 3:
            geos.append((0,) * 4)
        offs = [o for o, _, _ in operands] + [0] * (3 - len(operands))
        self.row(op, sub, out, *offs, dims=shape4, sa=geos[0], sb=geos[1], sc=geos[2])

    def copy_view(self, out, out_shape, src_off, view_offset, view_strides):
        self.elementwise(I.COPY, 0, out, out_shape, [(src_off + view_offset, None, view_strides)])

    def reduce(self, code, x_off, shape, dims):
        """Reduce a contiguous buffer over sorted ``dims``; returns the result's offset."""
        for start, stop in _launch._runs(dims):
            a = int(np.prod(shape[:start], dtype=np.int64))
            r = int(np.prod(shape[start:stop], dtype=np.int64))
            b = int(np.prod(shape[stop:], dtype=np.int64))
            out = self.alloc(a * b)
            self.row(I.REDUCE, code, out, x_off, dims=(a, r, b, 1))
            x_off, shape = out, shape[:start] + shape[stop:]
        return x_off

    def constant(self, value):
        off = self.alloc(1)
        self.row(I.FILL, self.scalar(value), off, dims=(1, 1, 1, 1))
        return off

    def indices(self, kind, shape, n):
        """Reserve ``n`` entries of the index arena for the node being lowered (filled per
        run from its attribute ``key`` or ``idx``); returns their start."""
        start = self.index_len
        self.index_specs.append((len(self.node_slots), kind, shape))
        self.index_len += n
        return start


# --- per-op lowering rules -----------------------------------------------------------

def _ew_unary(code):
    def lower(lw, t, p):
        (x,) = p.inputs
        out = lw.new_out(t)
        off, shape = lw.operand(x)
        lw.elementwise(I.UNARY, code, out, p.shape, [(off, shape, None)])
        return out
    return lower


def _ew_binary(code, opcode=I.BINARY):
    def lower(lw, t, p):
        a, b = p.inputs
        out = lw.new_out(t)
        lw.elementwise(opcode, code, out, p.shape,
                       [(*lw.operand(a), None), (*lw.operand(b), None)])
        return out
    return lower


def _lower_where(lw, t, p):
    a, b = p.inputs
    out = lw.new_out(t)
    cond = p.attrs["cond"]
    lw.elementwise(I.WHERE, 0, out, p.shape, [(*lw.operand(cond), None),
                                              (*lw.operand(a), None), (*lw.operand(b), None)])
    return out


def _lower_clamp(lw, t, p):
    (x,) = p.inputs
    out = lw.new_out(t)
    k = lw.scalar(p.attrs["lo"])
    lw.scalar(p.attrs["hi"])
    lw.elementwise(I.CLAMP, k, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_pow_scalar(lw, t, p):
    (x,) = p.inputs
    out = lw.new_out(t)
    lw.elementwise(I.POW_SCALAR, lw.scalar(p.attrs["exponent"]), out, p.shape,
                   [(*lw.operand(x), None)])
    return out


def _lower_rpow(lw, t, p):
    (x,) = p.inputs
    out = lw.new_out(t)
    base = lw.constant(p.attrs["base"])
    lw.elementwise(I.BINARY, ew.POW, out, p.shape, [(base, (), None), (*lw.operand(x), None)])
    return out


def _lower_rsub(lw, t, p):
    (x,) = p.inputs
    out = lw.new_out(t)
    s = lw.constant(p.attrs["scalar"])
    lw.elementwise(I.BINARY, ew.SUB, out, p.shape, [(s, (), None), (*lw.operand(x), None)])
    return out


def _lower_copy(lw, t, p):
    (x,) = p.inputs
    out = lw.new_out(t)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_overwrite(lw, t, p):
    out = lw.new_out(t)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(p.inputs[1]), None)])
    return out


def _lower_alias(lw, t, p):
    return lw.operand(p.inputs[0])[0]


def _lower_view(lw, t, p):
    (x,) = p.inputs
    if p.op.name == "permute" and p.attrs["dims"] == (1, 0):
        off, shape, flag = lw.matrix(x)
        if not flag:  # a plain transpose: consumers that are matmuls read it as a flag
            lw.transposed[("n", len(lw.node_slots))] = (off, shape)
            return off
    off, shape = lw.operand(x)
    fake = fake_array(shape, p.dtype if p.dtype in _FLOATS else lw.fdtype)
    v = p.op.forward(fake, **p.attrs)
    v = v[p.index] if isinstance(v, tuple) else v
    item = fake.itemsize
    view_off = (v.__array_interface__["data"][0] - fake.__array_interface__["data"][0]) // item
    strides = tuple(s // item for s in v.strides)
    if strides == _c_strides(v.shape) or v.size <= 1:
        return off + view_off  # the view is a contiguous run of the buffer: share it
    out = lw.new_out(t)
    lw.copy_view(out, p.shape, off, view_off, strides)
    return out


def _lower_reduce(code, scale=None):
    def lower(lw, t, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        if not dims:
            out = lw.new_out(t)
            lw.elementwise(I.COPY, 0, out, p.shape, [(off, shape, None)])
            return out
        res = lw.reduce(code, off, shape, dims)
        if scale is not None:
            n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
            out = lw.new_out(t)
            lw.elementwise(I.BINARY, ew.DIV, out, p.shape,
                           [(res, p.shape, None), (lw.constant(n if n else np.nan), (), None)])
            return out
        return res
    return lower


def _lower_var(sqrt):
    def lower(lw, t, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
        n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
        total = lw.reduce(rd.SUM, off, shape, dims)
        mu = lw.alloc(np.prod(keep))
        lw.elementwise(I.BINARY, ew.DIV, mu, keep, [(total, keep, None),
                                                    (lw.constant(max(n, 1)), (), None)])
        centred = lw.alloc(np.prod(shape))
        lw.elementwise(I.BINARY, ew.SUB, centred, shape, [(off, shape, None), (mu, keep, None)])
        lw.elementwise(I.BINARY, ew.MUL, centred, shape, [(centred, shape, None),
                                                          (centred, shape, None)])
        sq = lw.reduce(rd.SUM, centred, shape, dims)
        out = lw.new_out(t)
        lw.elementwise(I.BINARY, ew.DIV, out, p.shape, [(sq, p.shape, None),
                                                        (lw.constant(p.attrs["denom"]), (), None)])
        if sqrt:
            lw.elementwise(I.UNARY, ew.SQRT, out, p.shape, [(out, p.shape, None)])
        return out
    return lower


def _lower_logsumexp(lw, t, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    dims = p.attrs["dims"]
    keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
    m = lw.reduce(rd.MAX, off, shape, dims)
    lw.elementwise(I.UNARY, ew.FINITE_OR_ZERO, m, keep, [(m, keep, None)])
    shifted = lw.alloc(np.prod(shape))
    lw.elementwise(I.BINARY, ew.SUB, shifted, shape, [(off, shape, None), (m, keep, None)])
    lw.elementwise(I.UNARY, ew.EXP, shifted, shape, [(shifted, shape, None)])
    s = lw.reduce(rd.SUM, shifted, shape, dims)
    lw.elementwise(I.UNARY, ew.LOG, s, keep, [(s, keep, None)])
    out = lw.new_out(t)
    lw.elementwise(I.BINARY, ew.ADD, out, keep, [(s, keep, None), (m, keep, None)])
    return out


def _lower_softmax(log):
    def lower(lw, t, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        shape = shape or (1,)  # a 0-d tensor is one row of one element
        d = p.attrs["dim"]
        a = int(np.prod(shape[:d], dtype=np.int64))
        b = int(np.prod(shape[d + 1:], dtype=np.int64))
        out = lw.new_out(t)
        if a * b * shape[d]:
            lw.row(I.SOFTMAX, int(log), out, off, dims=(a, shape[d], b, 1))
        return out
    return lower


def _lower_mm(lw, t, p):
    a, b = p.inputs
    ao, ash, ta = lw.matrix(a)
    bo, bsh, tb = lw.matrix(b)
    out = lw.new_out(t)
    if len(ash) == 1 and len(bsh) == 1:        # dot
        dims = (1, ash[0], 1, 1)
    elif len(bsh) == 1:                        # mv
        dims = (ash[0], ash[1], 1, 1)
    else:
        dims = (ash[0], ash[1], bsh[1], 1)
    lw.row(I.MM, ta | (tb << 1), out, ao, bo, dims=dims)
    return out


def _lower_linear(lw, t, p):
    x, w = p.inputs[0], p.inputs[1]
    xo, xsh, tx = lw.matrix(x)
    wo, wsh, tw = lw.matrix(w)
    out = lw.new_out(t)
    # x @ w.T: w's buffer read transposed (flag flips when w is itself a transpose)
    lw.row(I.MM, tx | ((1 - tw) << 1), out, xo, wo, dims=(xsh[0], xsh[1], wsh[0], 1))
    if len(p.inputs) == 3:
        bo, bsh = lw.operand(p.inputs[2])
        lw.elementwise(I.BINARY, ew.ADD, out, p.shape, [(out, p.shape, None), (bo, bsh, None)])
    return out


def _lower_bmm(lw, t, p):
    a, b = p.inputs
    (ao, ash), (bo, bsh) = lw.operand(a), lw.operand(b)
    out = lw.new_out(t)
    lw.row(I.BMM, 0, out, ao, bo, dims=(ash[0], ash[1], ash[2], bsh[2]))
    return out


def _lower_cat(lw, t, p):
    out = lw.new_out(t)
    d = p.attrs["dim"] if p.op.name == "cat" else None
    st = _c_strides(p.shape)
    start = 0
    for u in p.inputs:
        off, shape = lw.operand(u)
        if p.op.name == "stack":
            k = p.attrs["dim"]
            dst_shape = shape[:k] + (1,) + shape[k:]
            dst_off = start * st[k]
            start += 1
        else:
            if len(shape) == 1 and shape[0] == 0 and len(p.shape) != 1:
                continue
            dst_shape = shape
            dst_off = start * st[d]
            start += shape[d]
        n = int(np.prod(dst_shape, dtype=np.int64))
        if n == 0:
            continue
        # write the contiguous input into the output's strided window
        dims = _launch._coalesce(dst_shape, [_c_strides(dst_shape), st])
        dims = [(1, [0, 0])] * (4 - len(dims)) + dims
        shape4 = tuple(x for x, _ in dims)
        src = tuple(s[0] for _, s in dims)
        dst = tuple(s[1] for _, s in dims)
        lw.row(I.STRIDED_COPY, 0, out + dst_off, off, dims=shape4, sa=src, sb=dst)
    return out


def _lower_index(lw, t, p):
    if _advanced(p.attrs["key"]):
        return _lower_gather_index(lw, t, p)
    return _lower_view(lw, t, p)


def _lower_gather(kind):
    """out = x.flat[positions]: from an index ``key`` over x's shape, or a raw ``idx``."""
    def lower(lw, t, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        out = lw.new_out(t)
        n = int(np.prod(p.shape, dtype=np.int64))
        k = lw.indices(kind, shape if kind == "key" else None, n)
        if n:
            lw.row(I.GATHER, k, out, off, dims=(n, 1, 1, 1))
        return out
    return lower


_lower_gather_index = _lower_gather("key")
_lower_take = _lower_gather("idx")


def _lower_index_add(lw, t, p):
    (g,) = p.inputs
    off, gshape = lw.operand(g)
    out = lw.new_out(t)
    n = int(np.prod(gshape, dtype=np.int64))
    total = int(np.prod(p.shape, dtype=np.int64))
    if p.attrs.get("key") is not None:   # positions of a forward index, kept as its key
        k = lw.indices("key", tuple(p.attrs["shape"]), n)
    else:
        k = lw.indices("idx", None, n)
    lw.row(I.SCATTER_ADD, k, out, off, dims=(n, total, 1, 1))
    return out


def _lower_index_put(lw, t, p):
    x, v = p.inputs
    xo, xshape = lw.operand(x)
    vo, vshape = lw.operand(v)
    idx_shape = p.attrs["idx"].shape
    n = int(np.prod(idx_shape, dtype=np.int64))
    vals = lw.alloc(n)
    lw.elementwise(I.COPY, 0, vals, idx_shape, [(vo, vshape, None)])
    out = lw.new_out(t)
    total = int(np.prod(p.shape, dtype=np.int64))
    k = lw.indices("idx", None, n)
    lw.row(I.SCATTER, k, out, vals, xo, dims=(n, total, 1, 1))
    return out


LOWER = {
    "neg": _ew_unary(ew.NEG), "exp": _ew_unary(ew.EXP), "log": _ew_unary(ew.LOG),
    "sqrt": _ew_unary(ew.SQRT), "sin": _ew_unary(ew.SIN), "cos": _ew_unary(ew.COS),
    "tanh": _ew_unary(ew.TANH), "sigmoid": _ew_unary(ew.SIGMOID), "relu": _ew_unary(ew.RELU),
    "abs": _ew_unary(ew.ABS), "sign": _ew_unary(ew.SIGN),
    "reciprocal": _ew_unary(ew.RECIPROCAL), "rsqrt": _ew_unary(ew.RSQRT),
    "add": _ew_binary(ew.ADD), "sub": _ew_binary(ew.SUB), "mul": _ew_binary(ew.MUL),
    "div": _ew_binary(ew.DIV), "pow": _ew_binary(ew.POW), "maximum": _ew_binary(ew.MAXIMUM),
    "remainder": _ew_binary(ew.REMAINDER), "fmod": _ew_binary(ew.FMOD),
    "div_floor": _ew_binary(ew.FLOORDIV), "overwrite": _lower_overwrite,
    "minimum": _ew_binary(ew.MINIMUM),
    "eq": _ew_binary(ew.EQ, I.COMPARE), "ne": _ew_binary(ew.NE, I.COMPARE),
    "lt": _ew_binary(ew.LT, I.COMPARE), "le": _ew_binary(ew.LE, I.COMPARE),
    "gt": _ew_binary(ew.GT, I.COMPARE), "ge": _ew_binary(ew.GE, I.COMPARE),
    "logical_and": _ew_binary(ew.AND, I.COMPARE), "logical_or": _ew_binary(ew.OR, I.COMPARE),
    "logical_xor": _ew_binary(ew.XOR, I.COMPARE),
    "where": _lower_where, "clamp": _lower_clamp, "pow_scalar": _lower_pow_scalar,
    "rpow": _lower_rpow, "rsub": _lower_rsub, "to_copy": _lower_copy, "clone": _lower_copy,
    "alias": _lower_alias,
    "sum": _lower_reduce(rd.SUM), "mean": _lower_reduce(rd.SUM, scale=True),
    "prod": _lower_reduce(rd.PROD), "amax": _lower_reduce(rd.MAX),
    "amin": _lower_reduce(rd.MIN), "var": _lower_var(False), "std": _lower_var(True),
    "logsumexp": _lower_logsumexp, "softmax": _lower_softmax(False),
    "log_softmax": _lower_softmax(True),
    "mm": _lower_mm, "dot": _lower_mm, "mv": _lower_mm, "bmm": _lower_bmm,
    "linear": _lower_linear,
    "view": _lower_view, "permute": _lower_view, "expand": _lower_view,
    "split": _lower_view, "unbind": _lower_view, "index": _lower_index,
    "cat": _lower_cat, "stack": _lower_cat,
    "take": _lower_take, "index_add": _lower_index_add, "index_put": _lower_index_put,
}

from .ops import defop as _defop, fake_array  # noqa: E402  (ops imports this module last)
from . import tensor as _tensor  # noqa: E402

_tensor._realize = realize  # Tensor._data realizes through this without an import per access
_Tensor_make = _tensor.Tensor._make

ALIAS = _defop("alias", lambda x: x[...], lambda c, g: (g,), view=True,
               meta=lambda metas: [metas[0]])


# --- cached training steps -------------------------------------------------------------
#
# A lazy ``loss.backward()`` whose whole autograd graph is still pending is keyed by the
# forward graph's signature. The first time, the engine traces the VJP rules (recording
# the backward lazily) and forward and backward are realized as one Program; the entry
# remembers how that Program's inputs, index arrays and outputs map onto any later
# forward graph with the same signature. Later steps skip the engine entirely: bind the
# forward's inputs, run one native call, hand out values and gradients.

_train_cache = {}
_accumulate_leaf = None  # set by jitgrad.autograd.engine (which imports this module)


def train_step(root, seed, retain_graph):
    """Run ``root.backward(seed)`` from a cached Program (returns True), or return a
    recorder that registers this step's Program after the engine has traced it, or None
    when the graph is not eligible (hooks, realized non-leaf tensors inside, ...)."""
    if root._value is not None:
        return None
    order, inputs, where, graph_sig = _collect([root])
    for t in order:
        n = t.grad_fn
        if n is not None and (n._hooks or n._pre_hooks or n._watchers):
            return None
    for t in inputs:
        if t._requires_grad and (t.grad_fn is not None or t._hooks):
            return None
    fdtype = _program_dtype(order, inputs)
    # which nodes carry a grad_fn (no_grad sections, detach) shapes the backward graph
    sig = (fdtype.str, graph_sig,
           tuple(t._requires_grad for t in inputs), tuple(t.grad_fn is not None for t in order),
           seed._value.dtype.str)
    entry = _train_cache.get(sig)
    if entry is None:
        return _Recorder(sig, order, inputs, seed, fdtype)
    _stats["cache_hits"] += 1
    entry.run(order, inputs, seed, retain_graph)
    return True


def _has_arrays(obj):
    if isinstance(obj, np.ndarray):
        return True
    return isinstance(obj, tuple) and any(_has_arrays(x) for x in obj)


class _Recorder:
    """Realizes a traced training step and files it in ``_train_cache``."""

    def __init__(self, sig, order, inputs, seed, fdtype):
        self.sig, self.order, self.inputs, self.seed, self.fdtype = sig, order, inputs, seed, fdtype

    def register(self, leaf_grads):
        targets = [g for _, g in leaf_grads if g._value is None] + self.order
        c_order, c_inputs, c_where, _ = _collect(targets)
        _stats["lowerings"] += 1
        grad_nodes = [g for _, g in leaf_grads if g._value is None]
        program = Lowering(c_order, c_inputs, c_where, self.fdtype, grad_nodes).program()
        entry = self._entry(program, leaf_grads, c_order, c_inputs, c_where)
        if entry is not None:
            _train_cache[self.sig] = entry
        program.run(c_order, c_inputs)

    def _entry(self, program, leaf_grads, c_order, c_inputs, c_where):
        fwd_input = {id(t): k for k, t in enumerate(self.inputs)}
        input_specs = []
        for t in c_inputs:
            if id(t) in fwd_input:
                input_specs.append(("fwd", fwd_input[id(t)]))
            elif t is self.seed:
                input_specs.append(("seed", None))
            else:  # a constant the VJP rules made (a wrapped number, zeros, ...)
                input_specs.append(("const", t._value.copy()))
        owners = {}
        for k, t in enumerate(self.order):
            for v in t._lazy.attrs.values():
                if isinstance(v, (tuple, np.ndarray)):
                    owners[id(v)] = k
        index_specs = []
        for place, kind, shape in program.index_specs:
            attrs = c_order[place]._lazy.attrs
            obj = attrs["key"] if kind == "key" else attrs["idx"]
            if id(obj) in owners:
                index_specs.append(("fwd", owners[id(obj)], kind, shape))
            elif kind == "key" and not _has_arrays(obj):
                index_specs.append(("const", _index_array(attrs, kind, shape), None, None))
            else:
                return None  # positions that change per step but come from no forward node
        fwd_nodes = [c_where[id(t)][1] for t in self.order]
        grads = []
        for leaf, g in leaf_grads:
            wired = c_where.get(id(g))
            if wired is not None and wired[0] == "n":
                source = ("n", wired[1])
            elif g is self.seed:
                source = ("seed", None)
            elif id(g) in fwd_input:
                source = ("fwd", fwd_input[id(g)])
            else:
                source = ("const", g._value.copy())
            grads.append((fwd_input[id(leaf)], source))
        return _TrainEntry(program, input_specs, index_specs, fwd_nodes, grads)


class _TrainEntry:
    def __init__(self, program, input_specs, index_specs, fwd_nodes, grads):
        self.program, self.input_specs, self.index_specs = program, input_specs, index_specs
        self.fwd_nodes, self.grads = fwd_nodes, grads

    def run(self, order, inputs, seed, retain_graph):
        values = [inputs[k]._value if kind == "fwd" else (seed._value if kind == "seed" else k)
                  for kind, k in self.input_specs]
        indices = [_index_array(order[k]._lazy.attrs, kind, shape) if src == "fwd" else k
                   for src, k, kind, shape in self.index_specs]
        program = self.program
        arena = program.execute(values, indices)
        for t, pos in zip(order, self.fwd_nodes):
            p = t._lazy
            t._value = p.value = program.value(arena, pos, p)
            t._lazy = None
            if not retain_graph and t.grad_fn is not None:
                t.grad_fn.release()
        Tensor = _tensor.Tensor
        for k, (kind, src) in self.grads:
            leaf = inputs[k]
            if kind == "n":
                g = arena[program.node_slots[src][0]:][:leaf._value.size].reshape(leaf._value.shape)
                _accumulate_leaf(leaf, Tensor._make(g), False, owned=True)
                continue
            g = seed._value if kind == "seed" else (inputs[src]._value if kind == "fwd" else src)
            _accumulate_leaf(leaf, Tensor._make(g), False)  # copied: the array is not ours
