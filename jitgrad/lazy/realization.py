"""Realization: running the segment being recorded as one Program (lowered once per trie
node), the eager fallback, and the entry points that force it (``realize``, ``flush``,
``settle``, ``changing``)."""
import numpy as np

from .. import tensor as _tensor
from ..core.shapes import flat_positions as _flat_positions
from ..core.state import _stats
from ..runtime.lowering import Lowering
from . import trie as _trie
from .deferred import _keep_live, freeze
from .segment import _tls

def changing(t):
    """``t``'s autograd flags or grad_fn are about to change: recorded ops must keep
    what they saw."""
    rec = _tls.rec
    rec.sync()
    p = t._lazy
    if (p is not None and p.seg is rec.seg) or id(t) in rec.slots:
        _realize_segment()
    freeze()


def flush():
    """Realize the segment being recorded (before storage is written in place)."""
    if _tls.rec.pending:
        _realize_segment()


def settle():
    """``flush()`` then ``freeze()``: before parameters are updated in place."""
    rec = _tls.rec
    if rec.pending:
        _realize_segment()
    freeze(rec)


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
    recs, ext, node, seg = rec.pending, rec.inputs, rec.node, rec.seg
    if not recs:
        return None
    _trie.restart_if_full()
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


def _index_array(attrs, kind, shape):
    if kind == "key":
        return _flat_positions(shape, attrs["key"]).reshape(-1)
    return attrs["idx"].reshape(-1).astype(np.int64, copy=False)
