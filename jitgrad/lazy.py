"""Lazy mode: ops record into segments; realization runs a segment as one Program.

In lazy mode an op checks its arguments and appends a ``Pending`` output to the
current ``Segment`` instead of computing. When a value is needed (``.item()``,
``print``, ``backward()``, an in-place write, ``realize()``), the whole segment
is lowered into a ``Program`` (one instruction table over one arena) and run by
the native interpreter (``kernels/cpu/interpreter.py``) in a single call; then
recording starts a new segment. A realized segment hands out each output's
value (a view of the arena) when first asked for.

Recording walks a trie of op sequences. Each op's key names the op, whether
autograd records it, its attributes, and where each operand comes from (an
earlier output of the segment, or a realized input described by shape, dtype
and autograd flags at first use). A key already seen after the same prefix
skips the shape/dtype rules, and the trie node at the end of a segment holds its
Program, so a training loop lowers once and afterwards only records and binds.
A ``loss.backward()`` that was seen before at the same trie node replays forward
and backward from one cached Program without running the autograd engine.

Grad_fn objects are made only when something asks for one (``.grad_fn``, a
backward pass that cannot be replayed), and before any version counter, grad_fn
or ``requires_grad`` changes (``freeze``), so they are the nodes eager mode would
have made. What the user observes is eager mode's: values, views that alias
their input's storage, versions, grad_fns and errors (raised at the call site);
an op the interpreter does not cover runs eagerly on realized inputs.

Each thread records into its own segment (and has its own jitgrad.jit capture);
a pending tensor handed to another thread is computed when that thread reads it.
"""
import collections
import itertools
import operator
import os
import sys
import threading
from sys import getrefcount as _getrefcount
from weakref import ref as _weakref

import numpy as np

from . import _launch
from . import tensor as _tensor
from .dtypes import _FROM_NP as _DTYPES
from .autograd import grad_mode as _grad_mode
from .autograd.grad_mode import _state as _grad_state
from .kernels.cpu import elementwise as ew
from .kernels.cpu import interpreter as I
from .kernels.cpu import reduce as rd

_Tensor = _tensor.Tensor
_STATE = {"lazy": os.environ.get("JITGRAD_MODE", "lazy").lower() != "eager"}

_stats = {"programs": 0, "instructions": 0, "lowerings": 0, "cache_hits": 0,
          "eager_fallbacks": 0, "replays": 0}
_module_epoch = [0]  # bumped when any nn.Module attribute changes (jit replays check it)
_leaf_epoch = [0]    # bumped when a tensor gains a hook or a gradient home (an optimizer's):
#                      what a cached training step checked about its inputs holds until then


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
    eagerly (integer results, mixed float dtypes); ``trie_nodes``: op-sequence
    prefixes remembered (at most ``MAX_TRIE``); ``replays``: calls of ``jitgrad.jit``
    functions replayed without running their Python; ``tier``: what runs ops now;
    ``compiles``/``disk_cache_loads``: Numba kernels compiled in this process
    versus loaded from the disk cache.
    """
    compiles = loads = 0
    for dispatcher in _kernel_dispatchers():
        compiles += sum(dispatcher.stats.cache_misses.values())
        loads += sum(dispatcher.stats.cache_hits.values())
    return dict(_stats, trie_nodes=_trie_size[0], mode=get_mode(),
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


class Segment:
    """One recorded run of ops, realized as a whole by one Program.

    Ops append to the current segment until a value is needed; then the whole
    segment runs (one native call) and recording starts a new one. A realized
    segment keeps its Program and arena: each output's value is a view taken
    when first asked for. ``released``: a backward pass without
    ``retain_graph`` freed the saved tensors of its (not yet made) grad_fns;
    ``materialized``: some of its grad_fns were made (hooks may sit on them).
    """

    __slots__ = ("program", "arena", "released", "materialized", "owner", "root",
                 "__weakref__")

    def __init__(self, owner):
        self.owner = owner  # the _Recording that records into it
        self.program = self.arena = None
        self.released = self.materialized = False
        self.root = None  # a replayed step's loss, weakly (see _give_back)


class Pending:
    """One output of one recorded op: how to compute it, and where its value will be.

    ``pos`` numbers the outputs of its segment in recording order. ``view`` is,
    for view ops, ``(layout, shares)``: an array over no memory with the strides
    the realized view will have, and whether it aliases its input. ``grad`` is,
    for an op whose grad_fn is deferred, the node's class name; ``node`` the node
    once made; ``vc`` the output's version counter (for a saved output).
    """

    __slots__ = ("op", "inputs", "attrs", "shape", "dtype", "seg", "pos", "grad", "vc",
                 "__weakref__", "__dict__")
    # set on few Pendings, or later: kept in the instance dict when set, so that making
    # the many others (one per recorded op) costs less
    index = 0
    view = None
    _v = None
    node = None

    def __init__(self, op, inputs, attrs, index, shape, dtype, seg, pos):
        self.op, self.inputs, self.attrs = op, inputs, attrs
        self.shape, self.dtype, self.seg, self.pos = shape, dtype, seg, pos
        self.grad = self.vc = None
        if index:
            self.index = index

    @property
    def layout(self):
        return None if self.view is None else self.view[0]

    @property
    def shares(self):
        return self.view is not None and self.view[1]

    @property
    def value(self):
        """The computed array, or None while its segment has not run."""
        v = self._v
        if v is None:
            seg = self.seg
            if seg.program is not None:
                v = self._v = seg.program.value(seg.arena, self.pos, self)
        return v


class _Step:
    """A node of the trie of recorded op sequences: what is known about the op that
    follows a given prefix with a given key (its outputs, its autograd treatment) and,
    for the sequence ending here, its Programs and cached training steps."""

    __slots__ = ("children", "last", "metas", "mode", "fdtype", "programs", "train",
                 "deferred")

    def __init__(self, fdtype=None, deferred=False):
        self.children = {}
        self.last = None  # (op, grad, akey, refs, child, refs when all are places) of the
        #                   child last taken with the caller's attributes key
        self.deferred = deferred  # some op on the path to here defers its grad_fn
        self.metas = None    # [(shape, dtype, view)] per output
        self.mode = 0        # 0: outputs finished by ops.finish (several outputs, a view
        #                      without grad, grad_fn made at once); 1: no grad; 2: grad_fn
        #                      deferred; 4: a view op's grad_fn deferred; -1: the
        #                      interpreter does not cover it (runs eagerly)
        self.fdtype = fdtype  # the float dtype of the segment's Program (one per Program)
        self.programs = None  # outputs that must be contiguous -> Program
        self.train = None    # (root position, seed dtype) -> _TrainEntry


class _Recording:
    """The segment being recorded: its outputs, the realized tensors it reads (``ext``:
    each bound once, by first use; ``slots``: id -> place, for ``ext[:bound]``) and its
    place in the trie.

    ``guess`` is the last segment's ``ext``: a loop's next segment binds the same
    tensors in the same places (the parameters; a new batch each step). An operand that
    is the tensor the guess has at the next place is bound there with no lookup: the
    guess holds each tensor once, so it can only be bound already at a place where the
    segment bound another tensor than the guess's (``strays``: their ids)."""

    __slots__ = ("seg", "recs", "ext", "slots", "node", "grad", "live", "bound", "guess",
                 "strays")

    def __init__(self):
        self.grad = _grad_state.enabled  # this thread's grad mode, kept current by _set
        self.live = []  # weakrefs: (segment, its deferred outputs) realized, nodes not made
        self.ext = self.guess = []
        self.reset()

    def reset(self):
        if self.ext:
            self.guess = self.ext
        self.seg, self.recs, self.ext, self.slots, self.node = Segment(self), [], [], {}, _ROOT
        self.bound, self.strays = 0, set()

    def sync(self):
        """Put the inputs the hot path bound into ``slots`` (before anything reads it)."""
        slots, ext = self.slots, self.ext
        for k in range(self.bound, len(ext)):
            slots[id(ext[k])] = k
        self.bound = len(ext)


# --- recording --------------------------------------------------------------------

_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(np.bool_)
MAX_OPS = 10_000      # a segment this long realizes by itself (bounded memory)
MAX_TRIE = 200_000    # trie nodes kept before the trie (and its Programs) is dropped
ARENA_BYTES = 256 << 20  # idle arenas kept for reuse by their Programs, in all, at most
_ROOT = _Step()
_trie_size = [0]


class _PerThread(threading.local):
    """What each thread records into: its segment, and the jitgrad.jit capture watching
    it (``quiet`` > 0 while the runtime itself, not the user, reads values)."""

    def __init__(self):
        self.rec = _Recording()
        self.capture = None
        self.quiet = 0


_tls = _PerThread()


def record(op, inputs, attrs, name, akey=None):
    """Pending output tensors of ``op`` (a tuple for multi-output ops), or None when the
    interpreter does not cover it (integer operands, mixed float dtypes, ...): the
    caller then runs it eagerly. ``akey``: ``attrs`` as a hashable tuple, when the
    caller has it at hand (the same object for the same attributes).

    The key of an op is its identity, whether autograd records it, its attributes and
    where each operand comes from (an earlier output of this segment, or a realized
    input described by shape, dtype and autograd flags at first use). A key seen
    before after the same prefix needs no shape or dtype rules: the trie node has
    the outputs' metadata, and the Program for the segment is cached there too.
    """
    rec = _tls.rec
    node = rec.node
    last = node.last  # a loop takes the same child each time: its key is not hashed then
    grad = rec.grad and name is not None
    step = None
    if last is not None and last[0] is op and last[2] is akey and last[1] is grad:
        expect = last[5]
        if expect is not None:  # the hot path: each operand an output of this segment or
            # an input bound already, so it only has to be where it was then
            recs = rec.recs
            n = len(inputs)
            if n == 1:
                r = expect[0]
                t = inputs[0]
                if (t._lazy is recs[r]) if r >= 0 else (rec.ext[-1 - r] is t):
                    step = last[4]
            elif n == 2:
                r, q = expect
                t, u = inputs
                if (((t._lazy is recs[r]) if r >= 0 else (rec.ext[-1 - r] is t))
                        and ((u._lazy is recs[q]) if q >= 0 else (rec.ext[-1 - q] is u))):
                    step = last[4]
            elif n == len(expect):
                for t, r in zip(inputs, expect):
                    if (t._lazy is not recs[r]) if r >= 0 else (rec.ext[-1 - r] is not t):
                        break
                else:
                    step = last[4]
        elif len(last[3]) == len(inputs):  # some operands were bound here at first use
            # (a step's parameters): bound again if each is the tensor the last segment
            # bound at that place, and its key is the same
            recs, ext, guess, strays = rec.recs, rec.ext, rec.guess, rec.strays
            k = n_ext = len(ext)
            n_guess = len(guess)
            for t, r in zip(inputs, last[3]):
                if r.__class__ is int:
                    if (t._lazy is recs[r]) if r >= 0 else (ext[-1 - r] is t):
                        continue
                elif k < n_guess and guess[k] is t:
                    if t._bk == r and (not strays or id(t) not in strays):
                        ext.append(t)
                        k += 1
                        continue
                elif (t._bk if t._bk is not None else _bind_key(t)) == r and (
                        t._lazy is None or t._lazy.seg is not rec.seg):
                    # another tensor of that key than last time (a new batch): bound
                    # unless it is bound already
                    rec.sync()
                    if id(t) not in rec.slots:
                        _bind(rec, t)
                        k += 1
                        continue
                _unbind(rec, n_ext)
                break
            else:
                step = last[4]
                if step.mode < 0:  # it runs eagerly: the inputs bound here are not read
                    _unbind(rec, n_ext)
                    return None
    if step is None:  # where each operand comes from, realized inputs bound at first use
        seg = rec.seg
        slots = rec.slots
        if rec.bound < len(rec.ext):
            rec.sync()
        n_ext = len(slots)
        operands = inputs
        given = akey is not None
        if akey is None:
            if not attrs:
                akey = ()
            elif "cond" in attrs:
                operands = [*inputs, attrs["cond"]]
                akey = tuple([(k, v) for k, v in attrs.items() if k != "cond"])
            else:
                akey = tuple(attrs.items())
        n_in = len(operands)
        if n_in == 1:
            t = operands[0]
            p = t._lazy
            if p is not None and p.seg is seg:
                refs = (p.pos,)
            else:
                a = slots.get(id(t))
                refs = (_bind(rec, t) if a is None else -1 - a,)
        elif n_in == 2:  # unrolled: the common binary case
            t, u = operands
            p = t._lazy
            if p is not None and p.seg is seg:
                a = p.pos
            else:
                a = slots.get(id(t))
                a = _bind(rec, t) if a is None else -1 - a
            p = u._lazy
            if p is not None and p.seg is seg:
                b = p.pos
            else:
                b = slots.get(id(u))
                b = _bind(rec, u) if b is None else -1 - b
            refs = (a, b)
        else:
            refs = []
            for t in operands:
                p = t._lazy
                if p is not None and p.seg is seg:
                    refs.append(p.pos)
                    continue
                slot = slots.get(id(t))
                refs.append(_bind(rec, t) if slot is None else -1 - slot)
            refs = tuple(refs)
        if last is not None and last[0] is op and last[2] is akey and last[3] == refs \
                and last[1] is grad:  # (a step binds its parameters again: refs compared)
            step = last[4]
        else:
            step = _child(node, op, inputs, operands, attrs, name, grad, akey, refs, rec,
                          n_ext, given)
            if step is None:  # a different float dtype: it starts a segment of its own
                _realize_segment()
                return record(op, inputs, attrs, name)
        if step.mode < 0:
            _unbind(rec, n_ext)
            return None
    mode = step.mode
    if mode <= 0:
        return None if mode < 0 else _outputs(rec, step, op, inputs, attrs, name)
    # a single output, made inline (no __init__ calls; the lanes have copies of this)
    rec.node = step
    recs = rec.recs
    shape, dtype, view = step.metas[0]
    p = _new_object(Pending)
    pos = len(recs)
    p.op = op  # (one store each: a multiple assignment would build a tuple)
    p.inputs = inputs
    p.attrs = attrs
    p.shape = shape
    p.dtype = dtype
    p.seg = rec.seg
    p.pos = pos
    recs.append(p)
    t = _new_object(_Tensor)
    t._value, t._lazy = None, p
    if mode == 1:
        p.grad = p.vc = None
        t._vc, t._requires_grad, t._grad_fn = [0], False, None
    else:
        vc = [0]
        p.grad, p.vc = name, vc
        t._vc, t._requires_grad, t._grad_fn = vc, True, p
        if mode == 4:  # a view: linked to its input's storage now, as ops.finish links it
            p.view = view
            _link_views(op, inputs[0], (t,), name, attrs, False)
    if pos >= MAX_OPS - 1:
        _realize_segment()
    return t


def _child(node, op, inputs, operands, attrs, name, grad, akey, refs, rec, n_ext, given):
    """The trie child of ``node`` for this op (made, and its checks run, when new); None
    when its float dtype differs from the segment's (after unbinding its inputs).
    ``given``: ``akey`` is the caller's own object (remembered as the last child's, with
    ``refs`` as the hot path of ``record`` reads them when all are places)."""
    key = (op, grad, akey, refs)
    try:
        step = node.children.get(key)
    except TypeError:  # unhashable attributes (lists, slices, arrays): a structural key
        key = (op, grad, _attrs_key(attrs), refs)
        step = node.children.get(key)
    if step is None:
        try:
            step = _new_step(op, inputs, operands, attrs, name, node)
        except BaseException:  # bad input: raise at the call site, recording nothing
            _unbind(rec, n_ext)
            raise
        if step is None:
            _unbind(rec, n_ext)
            return None
        node.children[key] = step
        _trie_size[0] += 1
    if given:
        places = operands is inputs and all(type(r) is int for r in refs)
        node.last = (op, grad, akey, refs, step, refs if places else None)
    return step


def unary_lane(op, name, general):
    """``general(x)`` with a lane for lazy mode's common case in front: a float tensor is
    recorded here, the hot path of ``record`` inlined; anything else (and any op the
    recorder declines) takes ``general`` with its checks and errors."""
    f32, f64 = _FLOATS
    state, Pending_, new, no_attrs, no_key = _STATE, Pending, _new_object, {}, ()

    def fn(input):
        if state["lazy"]:
            try:
                v = input._value
            except AttributeError:  # not a tensor: the general path says so
                return general(input)
            p = input._lazy
            d = v.dtype if v is not None else p.dtype
            if d is f32 or d is f64:
                rec = _tls.rec
                last = rec.node.last
                if (last is not None and last[0] is op and last[2] is no_key
                        and last[1] is rec.grad and last[5] is not None):
                    # ``record``'s hot path
                    recs = rec.recs
                    r = last[5][0]
                    if (p is recs[r]) if r >= 0 else (rec.ext[-1 - r] is input):
                        step = last[4]
                        mode = step.mode
                        if mode == 1 or mode == 2:  # (a copy of ``record``'s end)
                            rec.node = step
                            shape, dtype, _ = step.metas[0]
                            p = new(Pending_)
                            pos = len(recs)
                            p.op = op
                            p.inputs = [input]
                            p.attrs = no_attrs
                            p.shape = shape
                            p.dtype = dtype
                            p.seg = rec.seg
                            p.pos = pos
                            recs.append(p)
                            t = new(_Tensor)
                            t._value, t._lazy = None, p
                            if mode == 2:
                                vc = [0]
                                p.grad, p.vc = name, vc
                                t._vc, t._requires_grad, t._grad_fn = vc, True, p
                            else:
                                p.grad = p.vc = None
                                t._vc, t._requires_grad, t._grad_fn = [0], False, None
                            if pos >= MAX_OPS - 1:
                                _realize_segment()
                            return t
                out = record(op, [input], no_attrs, name, no_key)
                if out is not None:
                    return out
        return general(input)
    fn.__name__ = fn.__qualname__ = general.__name__
    fn.__doc__ = general.__doc__
    fn.op, fn.grad_fn_name = op, name  # for lanes that record it directly
    return fn


def binary_lane(op, name, general, wrap):
    """``general(a, b)`` with a lane for lazy mode's common case in front: float operands of
    one dtype (or a float tensor and a Python float, ``wrap``-ped into a shared 0-d
    tensor) are recorded here, the hot path of ``record`` inlined (a call costs more
    than the rest of the lane); anything else (and any op the recorder declines) takes
    ``general`` with its checks and errors."""
    # per dtype: the attributes and their key, made once (nothing writes to an op's
    # attrs), the jitgrad dtype, and the shared tensors of nonzero floats seen so far
    # (the key names the dtype by its string: hashing a numpy dtype costs 50 ns per op)
    lane32, lane64 = [({"dtype": d}, (("dtype", d.str),), _DTYPES[d], {}) for d in _FLOATS]
    f32, f64 = _FLOATS
    state, Tensor, Pending_, new = _STATE, _Tensor, Pending, _new_object

    def fn(input, other):
        if state["lazy"]:
            try:
                v = input._value
            except AttributeError:  # a number first (the function form): the general path
                return general(input, other)
            d = v.dtype if v is not None else input._lazy.dtype
            lane = lane32 if d is f32 else (lane64 if d is f64 else None)
            if lane is not None:
                attrs, akey, d, floats = lane
                if isinstance(other, Tensor):
                    v = other._value
                    if (v.dtype if v is not None else other._lazy.dtype) is not attrs["dtype"]:
                        return general(input, other)
                elif type(other) is float:
                    c = floats.get(other) if other else None  # 0.0 == -0.0: not cached
                    if c is None:
                        c = wrap(other, d)
                        if other:
                            if len(floats) > 4096:
                                floats.clear()
                            floats[other] = c
                    other = c
                else:
                    return general(input, other)
                rec = _tls.rec
                last = rec.node.last
                if (last is not None and last[0] is op and last[2] is akey
                        and last[1] is rec.grad and last[5] is not None):
                    # ``record``'s hot path
                    recs = rec.recs
                    r, q = last[5]
                    if (((input._lazy is recs[r]) if r >= 0 else (rec.ext[-1 - r] is input))
                            and ((other._lazy is recs[q]) if q >= 0
                                 else (rec.ext[-1 - q] is other))):
                        step = last[4]
                        mode = step.mode
                        if mode == 1 or mode == 2:  # (a copy of ``record``'s end)
                            rec.node = step
                            shape, dtype, _ = step.metas[0]
                            p = new(Pending_)
                            pos = len(recs)
                            p.op = op
                            p.inputs = [input, other]
                            p.attrs = attrs
                            p.shape = shape
                            p.dtype = dtype
                            p.seg = rec.seg
                            p.pos = pos
                            recs.append(p)
                            t = new(Tensor)
                            t._value, t._lazy = None, p
                            if mode == 2:
                                vc = [0]
                                p.grad, p.vc = name, vc
                                t._vc, t._requires_grad, t._grad_fn = vc, True, p
                            else:
                                p.grad = p.vc = None
                                t._vc, t._requires_grad, t._grad_fn = [0], False, None
                            if pos >= MAX_OPS - 1:
                                _realize_segment()
                            return t
                out = record(op, [input, other], attrs, name, akey)
                if out is not None:
                    return out
        return general(input, other)
    return fn


def _outputs(rec, step, op, inputs, attrs, name):
    """The pending outputs of ``op`` (trie child ``step``) that ``ops.finish`` completes:
    several outputs, a view without grad, a grad_fn made at once."""
    rec.node = step
    seg, recs = rec.seg, rec.recs
    outs = []
    for i, (shape, dtype, view) in enumerate(step.metas):
        t = _new_pending()
        t._lazy = p = Pending(op, inputs, attrs, i, shape, dtype, seg, len(recs))
        p.view = view
        recs.append(p)
        outs.append(t)
    out = _finish(op, inputs, outs, name, attrs)
    if len(recs) >= MAX_OPS:
        _realize_segment()
    return out


def _bind(rec, t):
    """Bind realized tensor ``t`` as the segment's next input; its key at first use."""
    ext, guess = rec.ext, rec.guess
    n = len(ext)
    if n >= len(guess) or guess[n] is not t:
        rec.strays.add(id(t))
    rec.slots[id(t)] = n
    ext.append(t)
    rec.bound = n + 1
    key = t._bk
    return key if key is not None else _bind_key(t)


def _bind_key(t):
    """``t``'s key as an input, kept on the tensor: only a new value or autograd state
    changes it."""
    key = t._bk = (t._shape, t._npdtype, t._requires_grad, t._grad_fn is None)
    return key


def _unbind(rec, n_ext):
    """Forget the inputs bound after the first ``n_ext`` (by an op not recorded after all)."""
    for t in rec.ext[n_ext:]:
        rec.slots.pop(id(t), None)
        rec.strays.discard(id(t))
    del rec.ext[n_ext:]
    rec.bound = min(rec.bound, n_ext)


def _new_step(op, inputs, operands, attrs, name, parent):
    """Check ``op`` on its inputs' metadata (errors raise here, at the call site) and
    decide how it is recorded; None when its float dtype differs from the segment's."""
    step = _Step(parent.fdtype, parent.deferred)
    if op.name not in LOWER:
        step.mode = -1
        return step
    if op.view and not (op.name == "index" and _advanced(attrs["key"])):
        src = _layout(inputs[0])
        views = op.forward(src, **attrs)
        layouts = views if op.multi else (views,)
        metas = [(v.shape, v.dtype) for v in layouts]
        viewinfo = [(v, op.name != "view" or bool(np.may_share_memory(v, src)))
                    for v in layouts]
    elif op.view:  # advanced indexing copies: shapes from an array whose reads are all safe
        t = inputs[0]
        v = op.forward(fake_array(t._shape, t._npdtype, (0,) * len(t._shape)), **attrs)
        metas, viewinfo = [(v.shape, v.dtype)], [None]
    else:
        metas = op.meta([(t._shape, t._npdtype) for t in inputs], **attrs)
        if metas is None:  # not the form the op records (its function takes another path)
            step.mode = -1
            return step
        viewinfo = [None] * len(metas)
    # one float dtype per Program (bools ride along as 0/1); ints run eagerly
    kind = None
    for t in operands:
        d = t._npdtype
        if d is not kind and d is not _BOOL:
            if kind is not None or d not in _FLOATS:
                step.mode = -1
                return step
            kind = d
    out_metas = []
    for (shape, dtype), view in zip(metas, viewinfo):
        dtype = np.dtype(dtype)
        if dtype is not _BOOL and (dtype not in _FLOATS or (kind is not None and dtype != kind)):
            step.mode = -1
            return step
        out_metas.append((tuple(shape), dtype, view))
    fdtype = kind if kind is not None else next((d for _, d, _ in out_metas if d in _FLOATS),
                                                None)
    if fdtype is not None:
        if step.fdtype is None:
            step.fdtype = fdtype
        elif step.fdtype != fdtype:
            return None
    step.metas = out_metas
    grad = (op.vjp is not None and name is not None and _grad_state.enabled
            and out_metas[0][1].kind == "f" and any(t._requires_grad for t in inputs))
    simple = len(out_metas) == 1 and not op.multi
    if not grad:
        step.mode = 1 if simple and not op.view else 0
    elif simple and all(k == "out" or isinstance(k, int) for k in op.save):
        step.mode = 4 if op.view else 2
        step.deferred = True
    return step


_new_object = object.__new__


def _new_pending():
    t = _new_object(_Tensor)
    t._value = None
    t._vc = [0]
    t._requires_grad = False
    t._grad_fn = None
    return t




def materialize(t):
    """Make ``t``'s deferred grad_fn (see ``_make_nodes``) and keep it on ``t``."""
    p = t._grad_fn
    node = p.node if p.node is not None else _make_nodes(p)
    t._grad_fn = node
    return node


def _make_nodes(p0):
    """Make the grad_fn of deferred op ``p0`` and first those of the deferred ops it reads
    (so each node finds its inputs' nodes); returns ``p0``'s node.

    A node made now is the node the op would have made when it ran: nothing that
    shapes a node (an input's version or grad_fn) changed since, because every
    such change calls ``freeze()`` first.
    """
    if _tls.capture is not None:
        _tls.capture.fail("a grad_fn was made (the graph was inspected or changed)")
    order, stack, seen = [], [(p0, False)], set()
    while stack:
        p, done = stack.pop()
        if done:
            order.append(p)
            continue
        if id(p) in seen or p.node is not None:
            continue
        seen.add(id(p))
        stack.append((p, True))
        for v in p.inputs:
            q = v._grad_fn
            if q is not None and q.__class__ is Pending and q.node is None and id(q) not in seen:
                stack.append((q, False))
    for p in order:
        if p.node is not None:  # made meanwhile (a tensor shared across threads)
            continue
        if p.op.nodes is not None:  # a fused op: the nodes of the ops it fuses
            nodes = p.op.nodes(p, lambda node, p=p: SavedTensor.output(
                p.vc, p._v if p._v is not None else p, node))
        else:
            node = node_class(p.grad)(p.op, p.attrs, p.inputs, 1)
            saved = node._saved
            for key in p.op.save:
                if key == "out":
                    saved[key] = SavedTensor.output(p.vc, p._v if p._v is not None else p, node)
                else:
                    node.save(key, p.inputs[key])
            nodes = (node,)
        if p.seg.released:
            for node in nodes:
                node._saved = None
        p.seg.materialized = True
        p.node = nodes[-1]
    return p0.node


def freeze(rec=None):
    """Make every deferred grad_fn of this thread that a backward pass may still use,
    before a version counter moves or a tensor's grad_fn or autograd flags change (other
    threads' graphs are theirs to freeze)."""
    if rec is None:
        rec = _tls.rec
    live = rec.live
    if live:
        rec.live = []
    else:
        live = ()  # (no new list each call: optimizer steps call this)
    if rec.node.deferred:  # the segment being recorded
        for p in rec.recs:
            if p.grad is not None and p.node is None:
                _make_nodes(p)
    for seg_ref, refs in live:
        seg = seg_ref()
        if seg is not None and not seg.released:
            for r in refs:
                p = r()
                if p is not None and p.node is None:
                    _make_nodes(p)


def _keep_live(rec, seg, recs):
    """Remember, by weak references, a realized segment whose grad_fns are deferred (a
    cached training step frees its graph instead, so it never comes here); forget the
    segments that died, were freed or had their grad_fns made."""
    live = rec.live
    if len(live) > 8:
        live[:] = [(s, refs) for s, refs in live
                   if (seg_ := s()) is not None and not seg_.released
                   and any((p := r()) is not None and p.node is None for r in refs)]
    live.append((_weakref(seg), [_weakref(p) for p in recs if p.grad is not None]))


def changing(t):
    """``t``'s autograd flags or grad_fn are about to change: recorded ops must keep
    what they saw."""
    rec = _tls.rec
    rec.sync()
    p = t._lazy
    if (p is not None and p.seg is rec.seg) or id(t) in rec.slots:
        _realize_segment()
    freeze()


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
    return record(ALIAS, [t], {}, None)


def flush():
    """Realize the segment being recorded (before storage is written in place)."""
    if _tls.rec.recs:
        _realize_segment()


def settle():
    """``flush()`` then ``freeze()``: before parameters are updated in place."""
    rec = _tls.rec
    if rec.recs:
        _realize_segment()
    freeze(rec)


# --- realization ------------------------------------------------------------------

def _attr_key(v):
    if isinstance(v, _tensor.Tensor):
        return None  # wired as an operand
    if isinstance(v, (tuple, list)):
        return tuple(_attr_key(x) for x in v)
    if isinstance(v, slice):
        return ("slice", v.start, v.stop, v.step)
    if isinstance(v, np.ndarray):  # positions are bound per run; a mask's count of True
        # sets the output's shape, so it is part of the structure
        if v.dtype == np.bool_:
            return ("mask", v.shape, int(np.count_nonzero(v)))
        return ("array", v.shape, v.dtype.str)
    if isinstance(v, np.dtype):
        return v.str
    return v


def _attrs_key(attrs):
    return tuple([(k, _attr_key(v)) for k, v in attrs.items()])


def realize(*tensors):
    """Compute every pending tensor in ``tensors`` (and what they depend on)."""
    for t in tensors:
        p = t._lazy
        if t._value is None and p is not None:
            _run_segment_of(p)
            t._value, t._lazy = p.value, None


def _realize_tensor(t):
    p = t._lazy
    if _tls.capture is not None and not _tls.quiet:
        _tls.capture.fail("a tensor's value was read (only returned .item() values replay)")
    _run_segment_of(p)
    t._value, t._lazy = p.value, None


def _run_segment_of(p):
    """Realize the segment ``p`` belongs to if it is still being recorded (by this
    thread or, for a tensor handed across threads, another)."""
    seg = p.seg
    if seg.program is None and p._v is None and seg.owner.seg is seg:
        _realize_segment(rec=seg.owner)


def _realize_segment(outputs=(), private_from=None, rec=None):
    """Run the segment being recorded (by this thread, or ``rec``) as one Program (lowered
    once per trie node) and start a new one; ``outputs``: outputs read straight from the
    arena afterwards. Returns the Program, or None when it ran op by op."""
    if rec is None:
        rec = _tls.rec
    recs, ext, node, seg = rec.recs, rec.ext, rec.node, rec.seg
    if not recs:
        return None
    if _trie_size[0] > MAX_TRIE:  # ever-new sequences: start the trie (and Programs) afresh
        global _ROOT
        _ROOT, _trie_size[0] = _Step(), 0
    rec.reset()
    if node.deferred:
        _keep_live(rec, seg, recs)
    fdtype = node.fdtype if node.fdtype is not None else np.dtype(np.float32)
    okey = (private_from, tuple(p.pos for p in outputs))
    programs = node.programs
    if programs is None:
        programs = node.programs = {}
    program = programs.get(okey)
    capture = _tls.capture
    if program is None:
        if capture is not None:
            capture.fail("a Program was lowered (a new structure)")
        try:
            program = Lowering(recs, ext, seg, fdtype, outputs, private_from).program()
        except NotImplementedError:  # a layout the interpreter has no row for
            _run_eagerly(recs, seg)
            return None
        _stats["lowerings"] += 1
        programs[okey] = program
    else:
        _stats["cache_hits"] += 1
    if capture is not None:
        if outputs:
            capture.fail("backward ran the autograd engine (a first step, hooks, ...)")
        capture.program(program, ext, seg, recs)
    indices = [_index_array(recs[place].attrs, kind, shape)
               for place, kind, shape in program.index_specs]
    _tls.quiet += 1
    try:
        values = [t._data for t in ext]
    finally:
        _tls.quiet -= 1
    seg.arena = program.execute(values, indices)
    seg.program = program
    return program


def _run_eagerly(recs, seg):
    for p in recs:
        value = p.op.forward(*[u._data for u in p.inputs], **p.attrs)
        p._v = value[p.index] if p.op.multi else value
    _stats["eager_fallbacks"] += len(recs)


class Program:
    """Instructions over one arena, plus where each input and node lives in it.

    ``index_specs`` say how to fill the index arena per run: ``(place, kind,
    shape)`` reads attribute ``key`` (flat positions of that index over
    ``shape``) or ``idx`` of the node at ``place`` in the realized order.

    Inputs (and a training step's gradients, ``out_bufs``: position -> buffer) are
    external buffers, numbered from 1: ``table`` (one row per buffer: address, arena
    offset, size; see the interpreter) places each in the arena by default. A run
    reads contiguous inputs of the Program's dtype where they live and copies the
    others in, as it does the ``must_copy`` ones (a node's value is read from the
    copy); a training step may have its gradients written straight into the
    optimizer's gradient arena (``homes``). ``node_slots`` are arena offsets.
    """

    def __init__(self, code, scalars, index_specs, arena_size, input_slots, node_slots,
                 fdtype, table, must_copy, out_bufs):
        self.code, self.scalars = code, scalars
        self.index_specs = index_specs
        self.arena_size, self.input_slots, self.node_slots = arena_size, input_slots, node_slots
        self.fdtype = fdtype
        self.table, self.must_copy, self.out_bufs = table, must_copy, out_bufs
        self._last = None
        self._plan = None
        self._seg = _dead  # the replayed step that last ran it (see _give_back)

    def execute(self, values, indices, homes=None):
        """Run on input arrays ``values`` and index arrays; returns the arena. ``homes``:
        ``[(buffer, address)]`` places gradient buffers (the caller keeps that memory).

        The last run's arena is reused when nothing references it any more (its
        values were views, now dropped): a fresh large allocation each step would
        pay the kernel's page faults again.
        """
        arena = self._last
        if (arena is not None and arena.nbytes >= _GIVE_BACK  # (a small one is remade
                and sys.getrefcount(arena) == 4):  # faster) ours, the local, the call's,
            seg = self._seg()  # and one more: the last step's segment's?
            if seg is not None and seg.arena is arena and seg.owner is _tls.rec:
                _give_back(seg)
        if arena is None or sys.getrefcount(arena) > 3:  # ours, the local, the call
            arena = np.empty(self.arena_size, self.fdtype)
            self._last = arena
            _kept(self, arena)
        plan = self._plan
        if plan is None or len(plan.values) != len(values):
            plan = self._plan = _Plan(self, values)
        elif not all(map(operator.is_, plan.values, values)):
            plan = self._plan = plan.updated(values)
        scalars = plan.table  # read-only 0-d inputs (shared constants) are in it already
        if plan.scalar_inputs:  # other 0-d inputs: their values go through the scalar table
            scalars = scalars.copy()
            for k, v in plan.scalar_inputs.values():
                scalars[k] = v.item()
        for dst, n, src in plan.copies.values() if plan.copies else ():
            if src.ndim == 1:
                arena[dst:dst + n] = src
            else:  # a strided input: copied from its memory as it is now
                arena[dst:dst + n].reshape(src.shape)[...] = src
        table = plan.where
        if homes is not None:
            if plan.homes is not homes:
                plan.homes, plan.homed = homes, plan.where.copy()
                for buf, address in homes:
                    plan.homed[buf, I.ADDRESS] = address
            table = plan.homed
        I.interpret(self.code, scalars, np.concatenate(indices) if indices else _NO_INDICES,
                    arena, table)
        _stats["programs"] += 1
        _stats["instructions"] += len(self.code)
        return arena

    def value(self, arena, k, p):
        """Node ``k``'s value: an arena view (or, for view ops, a view of its input)."""
        if p.op.view:
            # a view of a view of ...: the values under it first, from the bottom up (asking
            # each for its input would nest one call per view)
            chain, q = [], p.inputs[0]._lazy
            while q is not None and q._v is None and q.seg is p.seg and q.op.view:
                chain.append(q)
                q = q.inputs[0]._lazy
            for q in reversed(chain):
                q.value  # noqa: B018  (computes and keeps it)
            value = p.op.forward(p.inputs[0]._data, **p.attrs)
            return value[p.index] if isinstance(value, tuple) else value
        off, n = self.node_slots[k]
        value = arena[off:off + n].reshape(p.shape)
        d = p.dtype
        if d is not self.fdtype and d != self.fdtype:
            return value.astype(d)
        # a small value is copied out: kept (a loss in a list), a view would keep the
        # whole arena from going back to the Program
        return value.copy() if n <= 4096 else value


def _dead():
    return None


_GIVE_BACK = 1 << 16  # bytes: an arena this large is worth finding a kept step's values


def _give_back(seg):
    """Let the last replayed step's arena go back to its Program when what keeps it is
    that step's loss (kept in a list) and the nodes it was made from: the values a
    tensor held from outside can still ask for are copied out first. Done only when
    those nodes are all the segment's live ones (each holds the segment), so no other
    node can ask for a value later; otherwise the Program makes a new arena."""
    root = seg.root() if seg.root is not None else None
    if root is None:
        return
    found, stack, inner = {id(root): root}, [root], {}
    while stack:
        p = stack.pop()
        for t in p.inputs:
            q = t._lazy if t._lazy is not None else t._grad_fn
            if q is None or q.__class__ is not Pending or q.seg is not seg:
                continue
            entry = inner.get(id(t))
            if entry is None:
                inner[id(t)] = [t, 1]
            else:
                entry[1] += 1
            if id(q) not in found:
                found[id(q)] = q
                stack.append(q)
    if sys.getrefcount(seg) != len(found) + 3:  # (its live nodes', ours, the caller's,
        return  # the call's): a node not found lives too
    outside = {id(root)}
    for t, n in inner.values():  # a tensor held by more than the ops that read it
        if sys.getrefcount(t) > n + 3:  # (the inputs lists, the entry, the loop, the call)
            outside.add(id(t._lazy if t._lazy is not None else t._grad_fn))
    held = [found[key] for key in outside]
    if any(p.op.view for p in held):  # read through its base: the arena stays
        return
    for p in held:
        if p._v is None:
            p._v = seg.program.value(seg.arena, p.pos, p).copy()
    seg.arena = None


_KEPT = collections.deque()  # (Program, its arena's id, bytes), oldest first
_kept_bytes = [0]


def _kept(program, arena):
    """Count ``arena`` as kept by ``program`` for its next run; past ``ARENA_BYTES`` in
    all, the Programs that made theirs longest ago let theirs go (a step whose structure
    changes every time, lengths of a sequence, would keep one per structure otherwise;
    a Program in use makes a new one when it runs next)."""
    _KEPT.append((_weakref(program), id(arena), arena.nbytes))
    _kept_bytes[0] += arena.nbytes
    while (_kept_bytes[0] > ARENA_BYTES or len(_KEPT) > 4096) and len(_KEPT) > 1:
        # (a count too: tiny arenas made anew each run, their values kept, would let
        # the bookkeeping itself grow)
        ref, key, nbytes = _KEPT.popleft()
        _kept_bytes[0] -= nbytes
        old = ref()
        if old is not None and id(old._last) == key:
            old._last = None


class _Plan:
    """How a Program takes in one list of input arrays: kept while the same array
    objects come back (parameters, a fixed batch), whose memory stays where it is; a
    new array (a new batch each step) is placed again alone (``updated``).

    ``where``: the buffer table, with the address of each input read where it lives
    (contiguous, aligned, of the Program's dtype, not ``must_copy``; ``values`` keeps
    it alive);
    ``copies``: input position -> ``(arena offset, n, source)`` for the others (the
    source flat, or the strided array itself); ``scalar_inputs``: input position ->
    ``(scalar slot, array)`` for the writable 0-d inputs; ``table``: the scalar table
    with the read-only 0-d inputs (shared constants) filled in."""

    def __init__(self, program, values):
        self.program = program
        self.values = list(values)
        self.homes = self.homed = None
        self.copies, self.scalar_inputs = {}, {}
        self.table = program.scalars.copy()
        self.where = program.table.copy()
        for k, v in enumerate(values):
            self._place(k, v)

    def _place(self, k, v):
        program = self.program
        kind, buf, n = program.input_slots[k]
        if kind == 1:
            if v.flags.writeable or v.base is not None:
                self.scalar_inputs[k] = (buf, v)
            else:  # owns read-only memory (a wrapped Python number): never changes
                self.table[buf] = v.item()
        else:
            flags = v.flags
            if (v.dtype == program.fdtype and flags.c_contiguous and flags.aligned and v.size
                    and buf not in program.must_copy):
                address = _address(v)
            else:  # (a view of a strided array's memory: reshape(-1) would copy it now)
                address = program.table[buf, I.ADDRESS]  # its place in the arena
                self.copies[k] = (self.where[buf, I.HOME], n,
                                  v.reshape(-1) if flags.c_contiguous else v)
            self.where[buf, I.ADDRESS] = address
            if self.homed is not None:  # (a copy of ``where``)
                self.homed[buf, I.ADDRESS] = address

    def updated(self, values):
        """The plan for ``values``, where only the arrays that changed are placed again.
        A new plan: another thread may be running this Program on this one."""
        new = _new_object(_Plan)
        new.program, new.values, new.homes = self.program, list(values), self.homes
        new.homed = self.homed.copy() if self.homed is not None else None
        new.copies, new.scalar_inputs = dict(self.copies), dict(self.scalar_inputs)
        new.table, new.where = self.table, self.where.copy()
        for k, same in enumerate(map(operator.is_, self.values, values)):
            if not same:
                new.copies.pop(k, None)
                new.scalar_inputs.pop(k, None)
                if new.table is self.table and self.program.input_slots[k][0] == 1:
                    new.table = self.table.copy()
                new._place(k, values[k])
        return new


_address = I.address


def _index_array(attrs, kind, shape):
    if kind == "key":
        return _flat_positions(shape, attrs["key"]).reshape(-1)
    return attrs["idx"].reshape(-1).astype(np.int64, copy=False)


_NO_INDICES = np.zeros(1, np.int64)
_NONES = itertools.repeat(None)


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

    def __init__(self, recs, ext, seg, fdtype, outputs=(), private_from=None):
        """``recs``: the segment's outputs in order; ``ext``: the realized tensors it reads;
        ``outputs``: outputs read straight from the arena afterwards: they must be laid out
        contiguously there (not left as a transpose flag). ``private_from``: outputs from
        this position on (but for ``outputs``) are never read after the run (a cached
        training step's backward), so their buffers are reused once dead; its
        ``outputs`` are the leaves' gradients, made external buffers (see ``Program``)."""
        self.recs, self.ext, self.seg, self.fdtype = recs, ext, seg, fdtype
        self.slots = {id(t): k for k, t in enumerate(ext)}
        self.outputs = outputs
        self.private_from = private_from
        self.free = []   # (size, offset) of dead private buffers
        self.owned = {}  # position -> (offset, size) of a private node's own buffer
        self.rows, self.scalars, self.index_specs = [], [], []
        self.index_len = 0
        self.size = 0
        self.input_slots, self.node_slots = [], []
        self.buf = {}   # ("n", pos) or ("i", slot) -> (offset, shape)
        self.transposed = {}  # node key -> (offset, shape) of a 2-D matrix it transposes
        self.homes = []  # per external buffer: its arena offset (where it goes when copied)
        self.sizes = []  # and its size
        self.external = {p.pos for p in outputs} if private_from is not None else set()
        self.out_bufs = {}  # position of an external output -> its buffer number
        self.must_copy = set()  # input buffers some non-view node's value is read from

    def extern(self, n):
        """A new external buffer of ``n`` elements (its arena home reserved): its reference."""
        self.homes.append(self.alloc(n))
        self.sizes.append(n)
        return len(self.homes) << I.EXT

    def arena_offset(self, ref):
        """Where reference ``ref`` points when every external buffer sits in the arena."""
        return ref if ref < I.EXT_ONE else self.homes[(ref >> I.EXT) - 1] + (ref & I.EXT_MASK)

    def key(self, u):
        p = u._lazy
        if p is not None and p.seg is self.seg:
            return ("n", p.pos)
        return ("i", self.slots[id(u)])

    def alloc(self, n):
        off = self.size
        self.size += max(int(n), 1)
        return off

    def scalar(self, value):
        self.scalars.append(float(value))
        return len(self.scalars) - 1

    def program(self):
        for k, t in enumerate(self.ext):
            shape = t._shape
            if not shape:
                j = self.scalar(0.0)
                off = self.alloc(1)
                self.row(I.FILL, j, off, dims=(1, 1, 1, 1))
                self.input_slots.append((1, j, 1))
            else:
                n = int(np.prod(shape, dtype=np.int64))
                off = self.extern(n)
                self.input_slots.append((0, off >> I.EXT, n))
            self.buf[("i", k)] = (off, shape)
        n_inputs = len(self.homes)
        last = self._last_uses() if self.private_from is not None else {}
        dying = {}
        for k, p in enumerate(self.recs):
            off = LOWER[p.op.name](self, p)
            self.buf[("n", p.pos)] = (off, p.shape)
            if off >= I.EXT_ONE and (off >> I.EXT) <= n_inputs and not p.op.view:
                self.must_copy.add(off >> I.EXT)  # its value is read from the arena copy
            self.node_slots.append((self.arena_offset(off),
                                    int(np.prod(p.shape, dtype=np.int64))))
            if p.pos in last:
                own = self.owned.get(p.pos)
                if own is None or own[0] != off:
                    self._pin(off)  # it reads another node's buffer: that one lives on
                dying.setdefault(last[p.pos], []).append(p.pos)
            for q in dying.pop(k, ()):
                own = self.owned.pop(q, None)
                if own is not None:
                    self.free.append((own[1], own[0]))
        for p in self.outputs:
            key = ("n", p.pos)
            off, shape = self.operand_key(key)
            if self.private_from is not None and p.pos not in self.out_bufs:
                # a gradient that is a view shares another buffer (an input read where it
                # lives, whose arena home is never written): give it a buffer of its own
                out = self.new_out(p)
                self.elementwise(I.COPY, 0, out, p.shape, [(off, shape, None)])
                self.buf[key] = (out, p.shape)
                self.node_slots[p.pos] = (self.arena_offset(out), self.node_slots[p.pos][1])
        code = np.array(self.rows, np.int64).reshape(-1, I.WIDTH)
        table = np.zeros((len(self.homes) + 1, 3), np.int64)
        table[1:, I.HOME], table[1:, I.SIZE] = self.homes, self.sizes
        return Program(code, np.array(self.scalars or [0.0]), self.index_specs,
                       max(self.size, 1), self.input_slots, self.node_slots, self.fdtype,
                       table, self.must_copy, self.out_bufs)

    # emitters -------------------------------------------------------------------
    def row(self, op, sub, out, a=0, b=0, c=0, dims=(1, 1, 1, 1), sa=(0,) * 4, sb=(0,) * 4,
            sc=(0,) * 4, flat=0):
        self.rows.append([op, sub, out, a, b, c, *dims, *sa, *sb, *sc, flat])

    def operand(self, u):
        """``u``'s contiguous buffer (offset, shape); a transpose kept as a flag is copied now."""
        return self.operand_key(self.key(u))

    def operand_key(self, key):
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
        key = self.key(u)
        t = self.transposed.get(key)
        if t is not None:
            return t[0], t[1][::-1], 1
        off, shape = self.buf[key]
        return off, shape, 0

    def new_out(self, p):
        n = max(int(np.prod(p.shape, dtype=np.int64)), 1)
        if p.pos in self.external:
            ref = self.extern(n)
            self.out_bufs[p.pos] = ref >> I.EXT
            return ref
        if self.private_from is None or p.pos < self.private_from:
            return self.alloc(n)
        best = None
        for i, (size, off) in enumerate(self.free):
            if size >= n and (best is None or size < self.free[best][0]):
                best = i
        if best is None:
            off = self.alloc(n)
        else:
            size, off = self.free.pop(best)
            if size > n:
                self.free.append((size - n, off + n))
        self.owned[p.pos] = (off, n)
        return off

    def _last_uses(self):
        """Private position -> index (in ``recs``) of the last op reading it; outputs and
        unread nodes die right after they are made, outputs never."""
        keep = {p.pos for p in self.outputs}
        for p in self.outputs:  # a view's value is read through its base: keep that too
            while p.op.view:
                p = p.inputs[0]._lazy
                if p is None or p.seg is not self.seg:
                    break
                keep.add(p.pos)
        last = {}
        for k, p in enumerate(self.recs):
            if p.pos >= self.private_from and p.pos not in keep:
                last[p.pos] = k
            cond = p.attrs.get("cond") if p.attrs else None
            for u in (p.inputs if cond is None else [*p.inputs, cond]):
                q = u._lazy
                if q is not None and q.seg is self.seg and q.pos in last:
                    last[q.pos] = k
        return last

    def _pin(self, off):
        """The private buffer holding ``off`` is shared by a view: never reuse it."""
        for q, (start, n) in list(self.owned.items()):
            if start <= off < start + n:
                del self.owned[q]

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
        if (len(dims) == 2 and op == I.BINARY and len(operands) == 2
                and dims[1][1] == [1, 1, 1] and dims[0][1] == [dims[1][0], 0, dims[1][0]]):
            # a matrix and a row broadcast over it (a bias): one vectorised loop per row
            self.row(op, sub, out, operands[0][0], operands[1][0],
                     dims=(dims[0][0], dims[1][0], 1, 1), flat=I.ROWS)
            return
        if (len(dims) == 1 and op in (I.BINARY, I.COMPARE, I.WHERE) and dims[0][1][-1] == 1
                and all(st in (0, 1) for st in dims[0][1])):
            # contiguous operands and broadcast scalars: 1-D loops, a scalar read in place
            flat = 1
            for j, st in enumerate(dims[0][1][:-1]):
                if st == 0:
                    flat |= 2 << j
            self.row(op, sub, out, *[o for o, _, _ in operands], dims=(n, 1, 1, 1), flat=flat)
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

    def reduce(self, code, x_off, shape, dims, p=None):
        """Reduce a contiguous buffer over sorted ``dims``; returns the result's offset (the
        output buffer of node ``p``, if given)."""
        runs = _launch._runs(dims)
        for i, (start, stop) in enumerate(runs):
            a = int(np.prod(shape[:start], dtype=np.int64))
            r = int(np.prod(shape[start:stop], dtype=np.int64))
            b = int(np.prod(shape[stop:], dtype=np.int64))
            out = self.new_out(p) if p is not None and i == len(runs) - 1 else self.alloc(a * b)
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
    def lower(lw, p):
        (x,) = p.inputs
        out = lw.new_out(p)
        off, shape = lw.operand(x)
        lw.elementwise(I.UNARY, code, out, p.shape, [(off, shape, None)])
        return out
    return lower


def _ew_binary(code, opcode=I.BINARY):
    def lower(lw, p):
        a, b = p.inputs
        out = lw.new_out(p)
        lw.elementwise(opcode, code, out, p.shape,
                       [(*lw.operand(a), None), (*lw.operand(b), None)])
        return out
    return lower


def _lower_where(lw, p):
    a, b = p.inputs
    out = lw.new_out(p)
    cond = p.attrs["cond"]
    lw.elementwise(I.WHERE, 0, out, p.shape, [(*lw.operand(cond), None),
                                              (*lw.operand(a), None), (*lw.operand(b), None)])
    return out


def _lower_clamp(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    k = lw.scalar(p.attrs["lo"])
    lw.scalar(p.attrs["hi"])
    lw.elementwise(I.CLAMP, k, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_pow_scalar(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(I.POW_SCALAR, lw.scalar(p.attrs["exponent"]), out, p.shape,
                   [(*lw.operand(x), None)])
    return out


def _lower_rpow(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    base = lw.constant(p.attrs["base"])
    lw.elementwise(I.BINARY, ew.POW, out, p.shape, [(base, (), None), (*lw.operand(x), None)])
    return out


def _lower_rsub(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    s = lw.constant(p.attrs["scalar"])
    lw.elementwise(I.BINARY, ew.SUB, out, p.shape, [(s, (), None), (*lw.operand(x), None)])
    return out


def _lower_copy(lw, p):
    (x,) = p.inputs
    out = lw.new_out(p)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(x), None)])
    return out


def _lower_overwrite(lw, p):
    out = lw.new_out(p)
    lw.elementwise(I.COPY, 0, out, p.shape, [(*lw.operand(p.inputs[1]), None)])
    return out


def _lower_alias(lw, p):
    return lw.operand(p.inputs[0])[0]


def _lower_view(lw, p):
    (x,) = p.inputs
    if p.op.name == "permute" and p.attrs["dims"] == (1, 0):
        off, shape, flag = lw.matrix(x)
        if not flag:  # a plain transpose: consumers that are matmuls read it as a flag
            lw.transposed[("n", p.pos)] = (off, shape)
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
    out = lw.new_out(p)
    lw.copy_view(out, p.shape, off, view_off, strides)
    return out


def _lower_reduce(code, scale=None):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        if not dims:
            out = lw.new_out(p)
            lw.elementwise(I.COPY, 0, out, p.shape, [(off, shape, None)])
            return out
        res = lw.reduce(code, off, shape, dims, p if scale is None else None)
        if scale is not None:
            n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
            out = lw.new_out(p)
            lw.elementwise(I.BINARY, ew.DIV, out, p.shape,
                           [(res, p.shape, None), (lw.constant(n if n else np.nan), (), None)])
            return out
        return res
    return lower


def _lower_var(sqrt):
    def lower(lw, p):
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
        out = lw.new_out(p)
        lw.elementwise(I.BINARY, ew.DIV, out, p.shape, [(sq, p.shape, None),
                                                        (lw.constant(p.attrs["denom"]), (), None)])
        if sqrt:
            lw.elementwise(I.UNARY, ew.SQRT, out, p.shape, [(out, p.shape, None)])
        return out
    return lower


def _lower_logsumexp(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    dims = p.attrs["dims"]
    keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
    m = lw.reduce(rd.MAX, off, shape, dims)
    lw.elementwise(I.UNARY, ew.FINITE_OR_ZERO, m, keep, [(m, keep, None)])
    shifted = lw.alloc(np.prod(shape))
    lw.elementwise(I.BINARY, ew.SUB, shifted, shape, [(off, shape, None), (m, keep, None)])
    e = lw.alloc(np.prod(shape))  # (not in place: LLVM leaves such a loop unvectorised)
    lw.elementwise(I.UNARY, ew.EXP, e, shape, [(shifted, shape, None)])
    s = lw.reduce(rd.SUM, e, shape, dims)
    lw.elementwise(I.UNARY, ew.LOG, s, keep, [(s, keep, None)])
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.ADD, out, keep, [(s, keep, None), (m, keep, None)])
    return out


def _lower_softmax(log):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        shape = shape or (1,)  # a 0-d tensor is one row of one element
        d = p.attrs["dim"]
        a = int(np.prod(shape[:d], dtype=np.int64))
        b = int(np.prod(shape[d + 1:], dtype=np.int64))
        out = lw.new_out(p)
        if a * b * shape[d]:
            lw.row(I.SOFTMAX, int(log), out, off, dims=(a, shape[d], b, 1))
        return out
    return lower


def _lower_mse(lw, p):
    """(input - target)^2, summed or averaged unless the reduction is "none"."""
    x, t = p.inputs
    (xo, shape), (to, _) = lw.operand(x), lw.operand(t)
    reduction = p.attrs["reduction"]
    n = int(np.prod(shape, dtype=np.int64))
    sq = lw.new_out(p) if reduction == "none" or not shape else lw.alloc(n)
    lw.elementwise(I.BINARY, ew.SUB, sq, shape, [(xo, shape, None), (to, shape, None)])
    lw.elementwise(I.BINARY, ew.MUL, sq, shape, [(sq, shape, None), (sq, shape, None)])
    if reduction == "none" or not shape:
        return sq
    if reduction == "sum":
        return lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))), p)
    total = lw.reduce(rd.SUM, sq, shape, tuple(range(len(shape))))
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.DIV, out, (), [(total, (), None),
                                               (lw.constant(n if n else np.nan), (), None)])
    return out


def _lower_mm(lw, p):
    a, b = p.inputs
    ao, ash, ta = lw.matrix(a)
    bo, bsh, tb = lw.matrix(b)
    out = lw.new_out(p)
    if len(ash) == 1 and len(bsh) == 1:        # dot
        dims = (1, ash[0], 1, 1)
    elif len(bsh) == 1:                        # mv
        dims = (ash[0], ash[1], 1, 1)
    else:
        dims = (ash[0], ash[1], bsh[1], 1)
    lw.row(I.MM, ta | (tb << 1), out, ao, bo, dims=dims)
    return out


def _lower_linear(lw, p, out=None):
    """``x @ w.T (+ b)`` into ``out`` (by default the node's own buffer)."""
    x, w = p.inputs[0], p.inputs[1]
    xo, xsh, tx = lw.matrix(x)
    wo, wsh, tw = lw.matrix(w)
    if out is None:
        out = lw.new_out(p)
    # x @ w.T: w's buffer read transposed (flag flips when w is itself a transpose)
    lw.row(I.MM, tx | ((1 - tw) << 1), out, xo, wo, dims=(xsh[0], xsh[1], wsh[0], 1))
    if len(p.inputs) == 3:
        bo, bsh = lw.operand(p.inputs[2])
        lw.elementwise(I.BINARY, ew.ADD, out, p.shape, [(out, p.shape, None), (bo, bsh, None)])
    return out


def _lower_linear_act(lw, p):
    # (the activation reads another buffer: in place, LLVM's overlap check fails and the
    # loop runs unvectorised, 6x slower for tanh)
    linear = _lower_linear(lw, p, lw.alloc(np.prod(p.shape, dtype=np.int64)))
    out = lw.new_out(p)
    lw.elementwise(I.UNARY, _ACTIVATIONS[p.attrs["act"]][0], out, p.shape,
                   [(linear, p.shape, None)])
    return out


def _window_row(lw, opcode, out, a, b, image, out_hw, kernel, stride, padding, dilation):
    lw.row(opcode, 0, out, a, b, dims=image, sa=(*out_hw, *kernel),
           sb=(*stride, *padding), sc=(*dilation, 0, 0))


def _lower_im2col(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    out = lw.new_out(p)
    _window_row(lw, I.IM2COL, out, off, 0, shape, **p.attrs)
    return out


def _lower_col2im(lw, p):
    (g,) = p.inputs
    off, _ = lw.operand(g)
    out = lw.new_out(p)
    attrs = dict(p.attrs)
    _window_row(lw, I.COL2IM, out, off, 0, attrs.pop("shape"), **attrs)
    return out


def _lower_pool(opcode):
    def lower(lw, p):
        v, x = p.inputs if len(p.inputs) == 2 else p.inputs * 2  # max_pool2d: v is x
        (vo, _), (xo, image) = lw.operand(v), lw.operand(x)
        out = lw.new_out(p)
        _window_row(lw, opcode, out, vo, xo, image if len(image) == 4 else (1, *image),
                    **p.attrs)
        return out
    return lower


def _lower_bmm(lw, p):
    a, b = p.inputs
    (ao, ash), (bo, bsh) = lw.operand(a), lw.operand(b)
    out = lw.new_out(p)
    lw.row(I.BMM, 0, out, ao, bo, dims=(ash[0], ash[1], ash[2], bsh[2]))
    return out


def _lower_cat(lw, p):
    out = lw.new_out(p)
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


def _lower_index(lw, p):
    if _advanced(p.attrs["key"]):
        return _lower_gather_index(lw, p)
    return _lower_view(lw, p)


def _lower_gather(kind):
    """out = x.flat[positions]: from an index ``key`` over x's shape, or a raw ``idx``."""
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        out = lw.new_out(p)
        n = int(np.prod(p.shape, dtype=np.int64))
        k = lw.indices(kind, shape if kind == "key" else None, n)
        if n:
            lw.row(I.GATHER, k, out, off, dims=(n, 1, 1, 1))
        return out
    return lower


_lower_gather_index = _lower_gather("key")
_lower_take = _lower_gather("idx")


def _lower_nll(lw, p):
    """-sum(logp.flat[idx]) (over the rows' count for the mean): sum then one division (a
    negation is exact, so this is the composition's result bit for bit)."""
    (logp,) = p.inputs
    off, _ = lw.operand(logp)
    m = p.attrs["idx"].shape[0]
    picked = lw.alloc(m)
    lw.row(I.GATHER, lw.indices("idx", None, m), picked, off, dims=(m, 1, 1, 1))
    total = lw.reduce(rd.SUM, picked, (m,), (0,))
    out = lw.new_out(p)
    lw.elementwise(I.BINARY, ew.DIV, out, (), [
        (total, (), None), (lw.constant(-m if p.attrs["reduction"] == "mean" else -1), (), None)])
    return out


def _lower_index_add(lw, p):
    (g,) = p.inputs
    off, gshape = lw.operand(g)
    out = lw.new_out(p)
    n = int(np.prod(gshape, dtype=np.int64))
    total = int(np.prod(p.shape, dtype=np.int64))
    if p.attrs.get("key") is not None:   # positions of a forward index, kept as its key
        k = lw.indices("key", tuple(p.attrs["shape"]), n)
    else:
        k = lw.indices("idx", None, n)
    lw.row(I.SCATTER_ADD, k, out, off, dims=(n, total, 1, 1))
    return out


def _lower_index_put(lw, p):
    x, v = p.inputs
    xo, xshape = lw.operand(x)
    vo, vshape = lw.operand(v)
    idx_shape = p.attrs["idx"].shape
    n = int(np.prod(idx_shape, dtype=np.int64))
    vals = lw.alloc(n)
    lw.elementwise(I.COPY, 0, vals, idx_shape, [(vo, vshape, None)])
    out = lw.new_out(p)
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
    "threshold_backward": _ew_binary(ew.THRESHOLD_BACKWARD),
    "tanh_backward": _ew_binary(ew.TANH_BACKWARD),
    "sigmoid_backward": _ew_binary(ew.SIGMOID_BACKWARD),
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
    "linear": _lower_linear, "linear_act": _lower_linear_act, "mse_loss": _lower_mse,
    "im2col": _lower_im2col, "col2im": _lower_col2im, "nll_loss": _lower_nll,
    "max_pool2d": _lower_pool(I.POOL_GATHER), "max_pool2d_gather": _lower_pool(I.POOL_GATHER),
    "max_pool2d_scatter": _lower_pool(I.POOL_SCATTER),
    "view": _lower_view, "permute": _lower_view, "expand": _lower_view,
    "split": _lower_view, "unbind": _lower_view, "index": _lower_index,
    "cat": _lower_cat, "stack": _lower_cat,
    "take": _lower_take, "index_add": _lower_index_add, "index_put": _lower_index_put,
}

from .ops import (_ACTIVATIONS, _flat_positions, _link_views,  # noqa: E402  (ops
                  defop as _defop, fake_array, finish as _finish)  # imports this module last)
from .autograd.graph import SavedTensor, node_class  # noqa: E402
from .autograd.anomaly_mode import _state as _anomaly_state  # noqa: E402

# Tensor reaches these without an import per access
_tensor._realize, _tensor._Pending, _tensor._materialize = _realize_tensor, Pending, materialize
_tensor._changing = changing
_tensor._lazy_leaf_epoch = _leaf_epoch
_tensor._tls = _tls


def _grad_mode_set(enabled):
    _tls.rec.grad = enabled


_grad_mode._on_set = _grad_mode_set

ALIAS = _defop("alias", lambda x: x[...], lambda c, g: (g,), view=True,
               meta=lambda metas: [metas[0]])


# --- cached training steps -------------------------------------------------------------
#
# A lazy ``loss.backward()`` on a loss recorded in the current segment is keyed by the
# trie node the forward ops led to (which fixes the structure, shapes, dtypes and
# autograd flags of everything recorded) and the loss's position. The first time, the
# engine traces the VJP rules (recording the backward into the same segment) and forward
# and backward are realized as one Program; the entry remembers how that Program's
# inputs, index arrays and gradients map onto any later forward with the same key.
# Later steps skip the engine and the grad_fns entirely: bind the forward's inputs, run
# one native call, hand out gradients.

_accumulate_leaf = None  # set by jitgrad.autograd.engine (which imports this module)


def train_step(root, seed, retain_graph):
    """Run ``root.backward(seed)`` from a cached Program (returns True), or return a
    recorder that registers this step's Program after the engine has traced it, or None
    when the step is not eligible (hooks, a grad_fn already made, ...)."""
    entry = _train_entry(root, seed)
    if entry is None or entry.__class__ is _Recorder:
        if _tls.capture is not None:
            _tls.capture.fail("backward ran the autograd engine (a first step, hooks, ...)")
        return entry
    _run_entry(entry, seed, retain_graph)
    return True


def run_cached_step(root, retain_graph):
    """``root.backward()`` (the implicit gradient of a scalar) from a cached Program, if
    this step has one: returns True when it ran, False (having done nothing) otherwise."""
    p = root._lazy
    rec = _tls.rec
    train = rec.node.train
    if train is None or _anomaly_state.__dict__.get("enabled"):
        return False
    if p.shape and _numel(p.shape) != 1:  # no implicit gradient: the engine raises
        return False
    entry = train.get((p.pos, p.dtype.num))  # (a dtype's number: its hash costs 50 ns)
    if entry is None:
        return False
    hand = entry._hand  # checked for these very inputs, and no hook or home came since:
    if (hand is None or hand.epoch != _leaf_epoch[0] or p.seg is not rec.seg  # eligible
            or rec.seg.materialized or not hand.fits(rec.ext)):
        if not _eligible(p):
            return False
        hand = None
    seed = entry.seed  # the implicit gradient, 1 (never handed out: made once per entry)
    if seed is None:
        seed = entry.seed = _Tensor._make(_ones(p.shape, p.dtype))  # the engine's array
    _run_entry(entry, seed, retain_graph, hand)
    return True


_ones = None  # set by jitgrad.autograd.engine: a shared read-only array of ones
_tensor._run_cached_step = run_cached_step


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _eligible(p):
    """Whether a backward from pending ``p`` can be a cached step: ``p`` is in the segment
    being recorded, none of whose grad_fns was made, and no input it reads has hooks."""
    rec = _tls.rec
    if p is None or p.seg is not rec.seg or rec.seg.materialized:
        return False
    for t in rec.ext:
        if t._hooks is not None and t._requires_grad:
            return False
    return True


def _run_entry(entry, seed, retain_graph, hand=None):
    rec = _tls.rec
    _stats["cache_hits"] += 1
    if _tls.capture is not None:
        _tls.capture.train(entry, rec.ext, rec.seg, seed, retain_graph, rec.recs)
    entry.run(seed, retain_graph, hand)


def _train_entry(root, seed):
    p = root._lazy
    if seed._value is None or not _eligible(p):
        return None
    rec = _tls.rec
    key = (p.pos, seed._value.dtype.num)
    node = rec.node
    entry = node.train.get(key) if node.train is not None else None
    if entry is None:
        return _Recorder(rec.seg, node, key, len(rec.recs), list(rec.ext), seed)
    return entry


def _has_arrays(obj):
    if isinstance(obj, np.ndarray):
        return True
    return isinstance(obj, tuple) and any(_has_arrays(x) for x in obj)


class _Recorder:
    """Realizes a traced training step and files it under the forward's trie node."""

    def __init__(self, seg, node, key, n_fwd, fwd_ext, seed):
        self.seg, self.node, self.key = seg, node, key
        self.n_fwd, self.fwd_ext, self.seed = n_fwd, fwd_ext, seed

    def register(self, leaf_grads):
        rec = _tls.rec
        rec.sync()
        seg, recs, ext, slots = rec.seg, rec.recs, rec.ext, rec.slots
        if (seg is not self.seg or len(ext) < len(self.fwd_ext)
                or any(a is not b for a, b in zip(ext, self.fwd_ext))):
            return  # the forward was realized meanwhile: nothing to cache
        outputs = [g._lazy for _, g in leaf_grads
                   if g._value is None and g._lazy.seg is seg]
        program = _realize_segment(outputs, self.n_fwd)
        if program is None:
            return
        entry = self._entry(program, leaf_grads, seg, recs, ext, slots)
        if entry is not None:
            if self.node.train is None:
                self.node.train = {}
            self.node.train[self.key] = entry

    def _entry(self, program, leaf_grads, seg, recs, ext, slots):
        n_ext = len(self.fwd_ext)
        if any(t._requires_grad and t._grad_fn is not None for t in self.fwd_ext):
            return None  # gradients flow on into an earlier graph: the engine's job
        extra = []
        for t in ext[n_ext:]:
            if t is self.seed:
                extra.append(None)
            else:  # a constant the VJP rules made (a wrapped number, zeros, ...): read-only,
                c = t._data.copy()  # so a 0-d one sits in the Program's scalar table once
                c.flags.writeable = False
                extra.append(c)
        owners = {}
        for k, p in enumerate(recs[:self.n_fwd]):
            for v in p.attrs.values():
                if isinstance(v, (tuple, np.ndarray)):
                    owners[id(v)] = k
        index_specs = []
        for place, kind, shape in program.index_specs:
            if place < self.n_fwd:
                index_specs.append((place, kind, shape, None))
                continue
            seg_attrs = recs[place].attrs
            obj = seg_attrs["key"] if kind == "key" else seg_attrs["idx"]
            if id(obj) in owners:
                index_specs.append((owners[id(obj)], kind, shape, None))
            elif kind == "key" and not _has_arrays(obj):
                index_specs.append((None, kind, shape, _index_array(seg_attrs, kind, shape)))
            else:
                return None  # positions that change per step but come from no forward op
        grads = []
        for leaf, g in leaf_grads:
            slot = slots.get(id(leaf))
            if slot is None or slot >= n_ext:
                return None
            q = g._lazy
            if g._value is None and q.seg is seg:
                source = ("n", q.pos)
            elif g is self.seed:
                source = ("seed", None)
            elif slots.get(id(g), n_ext) < n_ext:
                source = ("fwd", slots[id(g)])
            else:
                source = ("const", g._data.copy())
            grads.append((slot, int(np.prod(leaf._shape, dtype=np.int64)), source))
        return _TrainEntry(program, extra, index_specs, grads, self.key[0])


class _TrainEntry:
    def __init__(self, program, extra, index_specs, grads, root_pos):
        self.program, self.extra, self.index_specs, self.grads = program, extra, index_specs, grads
        self.root_pos = root_pos  # where the loss is among the forward's ops
        # per index spec: the earlier spec reading the same array (a forward index and the
        # backward's scatter), whose array it reuses, or None
        first = {}
        self.index_same = [first.setdefault((place, kind), j) if const is None else j
                           for j, (place, kind, shape, const) in enumerate(index_specs)]
        self.other_grads = [(k, kind, src) for k, _, (kind, src) in grads if kind != "n"]
        self._hand = None  # how the gradients of the last run's inputs are handed out
        self.seed = None  # run_cached_step's seed tensor

    def run(self, seed, retain_graph, hand=None):
        rec = _tls.rec
        recs, ext, seg, node_deferred = rec.recs, rec.ext, rec.seg, rec.node.deferred
        rec.reset()
        seg.program, seg.arena = self.run_bound(ext, recs, seed, retain_graph, hand=hand)
        if not retain_graph:
            seg.released = True
            seg.root = _weakref(recs[self.root_pos])
            self.program._seg = _weakref(seg)
        elif node_deferred:
            _keep_live(rec, seg, recs)

    def run_bound(self, ext, recs, seed, retain_graph, indices=None, hand=None):
        """Run on the forward's inputs ``ext`` and index arrays (``indices``, or made from
        the ops ``recs``), hand the gradients to the leaves; returns ``(program, arena)``.
        ``hand``: this entry's ``_HandOut``, when the caller found it current for ``ext``.

        When every computed gradient's leaf has an optimizer home in one gradient arena
        and no gradient yet (after ``zero_grad()``) nor hooks, the Program writes the
        gradients there itself; otherwise they are handed out from its arena."""
        seed_value = seed._value
        values = list(map(_VALUE, ext))
        if any(map(operator.is_, values, _NONES)):  # an input of an earlier segment
            _tls.quiet += 1
            try:
                values = [t._data for t in ext]
            finally:
                _tls.quiet -= 1
        for v in self.extra:
            values.append(seed_value if v is None else v)
        if indices is None:
            indices = []
            for (place, kind, shape, const), j in zip(self.index_specs, self.index_same):
                indices.append(indices[j] if j < len(indices) else (
                    _index_array(recs[place].attrs, kind, shape) if const is None else const))
        if hand is None:  # (it keeps no arena views: the arena is reused when unreferenced)
            hand = self._hand
            if hand is None or hand.epoch != _leaf_epoch[0] or not hand.fits(ext):
                hand = self._hand = _HandOut(self, ext)
        homes = hand.homes  # (the leaves have no hooks, and these homes: see _HandOut)
        program = self.program
        if homes is not None:  # the gradient tensors, before the Program writes the homes
            # (home_grad inline: the tensor given last time, taken again as it is)
            for k, (leaf, home) in enumerate(hand.homed):
                if leaf._grad is not None:  # a gradient already: accumulate into it
                    for leaf, _ in hand.homed[:k]:
                        leaf._grad = None
                    homes = None
                    break
                g = leaf.__dict__.get("_home_grad")
                if (g is None or _getrefcount(g) > 3 or g._value is not home or g._vc[0]
                        or g._requires_grad or g._lazy is not None or g.__weakref__ is not None
                        or (g.__dict__ and g.__dict__.keys() != _BK_ONLY)):
                    g = None  # (home_grad counts the references to it)
                    g = home_grad(leaf, home)
                leaf._grad = g
        try:
            arena = program.execute(values, indices, homes)
        except BaseException:
            if homes is not None:  # no gradient came
                for leaf in hand.leaves:
                    leaf._grad = None
            raise
        if homes is None:  # (into an optimizer's home, if the leaf has one and no gradient yet)
            for leaf, off, n in hand.computed:
                _accumulate_leaf(leaf, _Tensor._make(arena[off:off + n].reshape(leaf._shape)),
                                 False, owned=True)
        for k, kind, src in self.other_grads:
            g = seed_value if kind == "seed" else (ext[src]._data if kind == "fwd" else src)
            _accumulate_leaf(ext[k], _Tensor._make(g), False)  # copied: not our array
        return program, arena


class _HandOut:
    """Where a training step's gradients go for one list of inputs ``ext``: ``computed``,
    per gradient the Program computes, (leaf, arena offset, size); ``homed`` and ``homes``
    (for ``Program.execute``), set when all those leaves have homes the Program can write
    into (writable, contiguous, aligned, of its dtype) and no hooks. Valid while no tensor
    gains a hook or a home (``_leaf_epoch``) and the inputs that require grad are the same
    tensors (``fits``; the others, a new batch each step, have no gradient or hooks, and
    the trie key says which require grad): a run then only checks that the leaves have
    no gradient yet."""

    def __init__(self, entry, ext):
        self.watch = [k for k, t in enumerate(ext) if t._requires_grad]
        self.watched = [ext[k] for k in self.watch]
        self.pick = (operator.itemgetter(*self.watch) if len(self.watch) > 1
                     else lambda ext, w=tuple(self.watch): [ext[k] for k in w])
        self.epoch = _leaf_epoch[0]
        program = entry.program
        self.computed, self.homed, self.homes = [], [], []
        for k, n, (kind, src) in entry.grads:
            if kind != "n":
                continue
            leaf = ext[k]
            home = leaf.__dict__.get("_grad_home")
            self.computed.append((leaf, program.node_slots[src][0], n))
            buf = program.out_bufs.get(src)
            if (self.homes is not None and buf is not None and home is not None
                    and leaf._hooks is None
                    and home.flags.writeable and home.flags.c_contiguous and home.flags.aligned
                    and home.dtype == program.fdtype and home.size == n and n):
                self.homes.append((buf, _address(home)))
                self.homed.append((leaf, home))
            else:
                self.homes = None
        if not self.homes:
            self.homes = None
        self.leaves = [leaf for leaf, _ in self.homed]

    def fits(self, ext):
        """Whether ``ext`` has this hand's tensors where inputs require grad."""
        return all(map(operator.is_, self.watched, self.pick(ext)))


def home_grad(leaf, home):
    """The gradient tensor to give ``leaf`` over ``home`` (its place in an optimizer's
    gradient arena), which is about to be written: the one given last time if nothing
    else holds it and it is as it was made (no one can tell it from a new one), else a
    new one (see ``release_home``)."""
    d = leaf.__dict__
    g = d.get("_home_grad")
    if g is not None:
        if _getrefcount(g) <= 3:  # the leaf's, ours and the call's: no one else holds it
            if (g._value is home and not g._vc[0] and not g._requires_grad
                    and g._lazy is None and g.__weakref__ is None
                    and (not g.__dict__ or g.__dict__.keys() == _BK_ONLY)):
                return g
        else:
            release_home(leaf, home)
    g = d["_home_grad"] = _new_object(_Tensor)  # Tensor._make(home), inline
    g._value, g._lazy, g._vc, g._requires_grad, g._grad_fn = home, None, [0], False, None
    return g


def release_home(leaf, home):
    """Before ``home`` is written with a gradient given otherwise: the tensor given over it
    last, if still held elsewhere, moves its values to memory of its own (unless views
    share its memory), so a gradient kept from an earlier step keeps its values, as in
    PyTorch, where each backward after ``zero_grad()`` makes a new one."""
    g = leaf.__dict__.pop("_home_grad", None)
    if g is not None and g._value is home and "_views" not in g.__dict__ \
            and _getrefcount(g) > 2:  # (ours and the call's)
        g._value = home.copy()


_BK_ONLY = {"_bk": None}.keys()  # (a gradient's cached input key may stay: see _bind_key)


_VALUE = operator.attrgetter("_value")
