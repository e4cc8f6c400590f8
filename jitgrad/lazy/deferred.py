"""Deferred grad_fns: a recorded op's grad_fn is made only when something asks for it, or
before anything it depends on changes (``freeze``)."""
from weakref import ref as _weakref

from ..autograd.graph import SavedTensor, node_class
from .segment import Pending, _tls

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
        for p in rec.pending:
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
