"""The recorder: ``record`` appends one op to the segment being recorded, walking the trie
of op sequences (a key seen before after the same prefix skips the shape and dtype
rules), and ``unary_lane``/``binary_lane`` put ``record``'s hot path inline in front of
the common elementwise functions."""
import numpy as np

from .. import tensor as _tensor
from ..autograd.grad_mode import _state as _grad_state
from ..core.shapes import advanced_key as _advanced_key, fake_array
from ..core.state import _STATE
from ..dtypes import _FROM_NP as _DTYPES
from .realization import _attrs_key, _realize_segment
from .segment import Pending, _tls
from .trie import TrieNode, _trie_size

_Tensor = _tensor.Tensor
_FLOATS = (np.dtype(np.float32), np.dtype(np.float64))
_BOOL = np.dtype(np.bool_)
MAX_OPS = 10_000      # a segment this long realizes by itself (bounded memory)


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
            recs = rec.pending
            n = len(inputs)
            if n == 1:
                r = expect[0]
                t = inputs[0]
                if (t._lazy is recs[r]) if r >= 0 else (rec.inputs[-1 - r] is t):
                    step = last[4]
            elif n == 2:
                r, q = expect
                t, u = inputs
                if (((t._lazy is recs[r]) if r >= 0 else (rec.inputs[-1 - r] is t))
                        and ((u._lazy is recs[q]) if q >= 0 else (rec.inputs[-1 - q] is u))):
                    step = last[4]
            elif n == len(expect):
                for t, r in zip(inputs, expect):
                    if (t._lazy is not recs[r]) if r >= 0 else (rec.inputs[-1 - r] is not t):
                        break
                else:
                    step = last[4]
        elif len(last[3]) == len(inputs):  # some operands were bound here at first use
            # (a step's parameters): bound again if each is the tensor the last segment
            # bound at that place, and its key is the same
            recs, ext, guess, strays = rec.pending, rec.inputs, rec.guess, rec.strays
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
        if rec.bound < len(rec.inputs):
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
    recs = rec.pending
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
                    recs = rec.pending
                    r = last[5][0]
                    if (p is recs[r]) if r >= 0 else (rec.inputs[-1 - r] is input):
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
                    recs = rec.pending
                    r, q = last[5]
                    if (((input._lazy is recs[r]) if r >= 0 else (rec.inputs[-1 - r] is input))
                            and ((other._lazy is recs[q]) if q >= 0
                                 else (rec.inputs[-1 - q] is other))):
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
    seg, recs = rec.seg, rec.pending
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
    ext, guess = rec.inputs, rec.guess
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
    changes it. Its strides are part of it: a Program reads each input as a contiguous
    buffer, but a view op's recorded layout, and whether it shares its input's memory or
    copies it (a reshape of a transposed input), follow from them."""
    v = t._value
    if v is not None:
        strides = v.strides
    else:  # a pending output of an earlier segment: laid out as its view says, or contiguous
        layout = t._lazy.layout
        strides = None if layout is None else layout.strides
    key = t._bk = (t._shape, t._npdtype, t._requires_grad, t._grad_fn is None, strides)
    return key


def _unbind(rec, n_ext):
    """Forget the inputs bound after the first ``n_ext`` (by an op not recorded after all)."""
    for t in rec.inputs[n_ext:]:
        rec.slots.pop(id(t), None)
        rec.strays.discard(id(t))
    del rec.inputs[n_ext:]
    rec.bound = min(rec.bound, n_ext)


def _new_step(op, inputs, operands, attrs, name, parent):
    """Check ``op`` on its inputs' metadata (errors raise here, at the call site) and
    decide how it is recorded; None when its float dtype differs from the segment's."""
    step = TrieNode(parent.fdtype, parent.deferred)
    if op.lower is None:
        step.mode = -1
        return step
    if op.view and not (op.name == "index" and _advanced_key(attrs["key"])):
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


# (ops records through this module and makes its lanes from it: it imports it first)
from ..ops.dispatch import _link_views, finish as _finish  # noqa: E402
from ..ops.registry import defop as _defop  # noqa: E402

def _lower_alias(lw, p):
    return lw.operand(p.inputs[0])[0]


ALIAS = _defop("alias", lambda x: x[...], lambda c, g: (g,), view=True,
               meta=lambda metas: [metas[0]], lower=_lower_alias)
