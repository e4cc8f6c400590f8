"""Dispatch: ``apply`` runs a primitive eagerly or records it (lazy mode), and ``finish``
gives its outputs their grad_fn and links views to their base."""
import builtins
import numpy as np
import weakref

from .. import lazy as _lazy
from ..autograd.grad_mode import is_grad_enabled
from ..autograd.graph import node_class
from ..tensor import Tensor

def apply(op, inputs, grad_fn_name, **attrs):
    """Run ``op`` on tensors ``inputs`` (or record it, in lazy mode) and record it for
    autograd when needed."""
    if _lazy._STATE["lazy"]:
        outs = _lazy.record(op, inputs, attrs, grad_fn_name, None if attrs else ())
        if outs is not None:
            return outs
        _lazy._stats["eager_fallbacks"] += 1
        if _lazy._tls.capture is not None:
            _lazy._tls.capture.fail(f"{op.name} ran eagerly")
    datas = op.forward(*[t._data for t in inputs], **attrs)
    # (numpy gives a scalar, not a 0-d array, for arithmetic on 0-d arrays: ``mean``)
    outs = [Tensor._make(d if d.__class__ is np.ndarray else np.array(d))
            for d in (datas if op.multi else (datas,))]
    return finish(op, inputs, outs, grad_fn_name, attrs)


def finish(op, inputs, outs, grad_fn_name, attrs):
    """Link view outputs to their base and give the outputs a ``grad_fn`` when autograd
    records ``op``; returns the output (a tuple for multi-output ops)."""
    multi = op.multi
    if op.view:
        _link_views(op, inputs[0], outs, grad_fn_name, attrs, multi)
    if (op.vjp is not None and grad_fn_name is not None and is_grad_enabled()
            and outs[0]._npdtype.kind == "f" and builtins.any(t._requires_grad for t in inputs)):
        node = node_class(grad_fn_name)(op, attrs, inputs, len(outs))
        for i, o in enumerate(outs):
            o._requires_grad, o._grad_fn, o._output_nr = True, node, i
        for key in op.save:
            if key == "out":
                node.save(key, outs[0], 0)
            else:
                node.save(key, inputs[key])
    return tuple(outs) if multi else outs[0]


def unview(t):
    """``t`` stops being a view of its input: for a view of a temporary no one else sees
    (PyTorch squeezes matmul's temporary in place, so its result is no view)."""
    t.__dict__.pop("_base", None)
    t.__dict__.pop("_view_fn", None)
    return t


def _link_views(op, src, outs, name, attrs, multi):
    """Outputs that alias ``src``'s storage share its version counter and remember how
    to remake themselves from its base, so an in-place change can be replayed.

    ``UnsafeViewBackward0`` (matmul folding its batch, a reshape that copies) is PyTorch's
    ``_unsafe_view``: its result is no view (its base is a temporary no one else sees), so
    an in-place change of it is recorded on it, not as ``CopySlices`` on that base."""
    if name == "UnsafeViewBackward0":
        return
    base = src._base if src._view_fn is not None else src
    prev = src._view_fn
    for i, o in enumerate(outs):
        if o._value is None:
            if not o._lazy.shares:  # a pending view: does it alias its input once realized?
                continue
        elif src._value is None or (o._value.size and not np.may_share_memory(o._value,
                                                                             src._value)):
            continue  # (an empty result shares no memory, yet is a view: x[1:1] = v)
        o._vc = src._vc

        def remake(t, i=i):
            t = t if prev is None else prev(t)
            r = apply(op, [t], name, **attrs)
            return r[i] if multi else r
        o._base, o._view_fn = base, remake
        if base._requires_grad or o._requires_grad or is_grad_enabled():
            views = base.__dict__.setdefault("_views", [])
            n = len(views)
            if n >= 32 and not n & (n - 1):  # at each power of two, drop the views that died
                views[:] = [r for r in views if r() is not None]  # (a weight viewed each step)
            views.append(weakref.ref(o))
