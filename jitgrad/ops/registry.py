"""The op registry: ``Op`` and ``defop`` (every primitive declared once, with its forward,
its VJP and what the VJP saves) and the shape rules (``meta``) lazy mode records with."""
import numpy as np

from .. import dtypes as dt
from ..core.shapes import broadcast_shape as _broadcast_shape
from ..core.shapes import fake_array
from ..core.shapes import keep_shape as _keep_shape
from .. import ops as _ops  # (call time: Op.backward undoes broadcasting with an op)

REGISTRY = {}


class Op:
    """A primitive: ``forward(*arrays, **attrs)``, ``vjp(node, grad)`` and ``meta``.

    ``meta(input_metas, **attrs)`` gives each output's (shape, numpy dtype) from
    the inputs' (shape, dtype) without computing (lazy mode records with it);
    view ops get theirs by running ``forward`` on arrays that own no memory.
    ``save`` names what the VJP reads back: input positions and/or ``"out"``.
    ``view`` marks ops whose output may share the input's storage; ``multi``
    ops return a tuple.
    """

    __slots__ = ("name", "forward", "vjp", "save", "view", "meta", "multi", "nodes", "lower")

    def __init__(self, name, forward, vjp=None, save=(), view=False, meta=None, multi=False,
                 nodes=None, lower=None):
        self.name, self.forward, self.vjp, self.save, self.view = name, forward, vjp, save, view
        self.meta = meta if meta is not None or not view else _view_meta(forward)
        self.multi = multi
        # lazy mode only: for an op that fuses others, ``nodes(pending, saved_out)`` makes
        # the grad_fns the unfused ops would have made (``saved_out(node)`` saves the
        # output for the last) and returns them, the output's grad_fn last
        self.nodes = nodes
        # lazy mode only: ``lower(lowering, pending)`` emits the op's instruction rows into a
        # Program (see runtime.lowering) and returns its output's buffer; None: the
        # interpreter does not cover the op, which then runs eagerly
        self.lower = lower

    def __repr__(self):
        return f"<op {self.name}>"

    def backward(self, node, grads):
        g = grads if self.multi else grads[0]
        saved = node._saved
        if saved:
            # PyTorch checks the versions of all it saved before computing: its outputs
            # always, and its inputs where it saved them whatever needs a gradient (an op
            # of one input). A VJP that does not read one (``prod``'s output, ``rpow``'s
            # exponent) or reads it only for one input's gradient (``mul``) would miss it.
            one_input = len(node.next_functions) == 1
            for key, s in saved.items():
                if (one_input or key == "out") and s.counter[0] != s.version:
                    s.check(node)
        result = self.vjp(node, g)
        out = []
        for r, (shape, dtype), (fn, _) in zip(result, node._inputs_meta, node.next_functions):
            if r is None or fn is None:
                out.append(None)
                continue
            if r._shape != shape:
                r = _ops.sum_to_size(r, shape)
            if r._npdtype != dtype:
                r = r.to(dt._FROM_NP[dtype])
            out.append(r)
        return out


def defop(name, forward, vjp=None, save=(), view=False, meta=None, multi=False, nodes=None,
          lower=None):
    """Declare a primitive and add it to ``REGISTRY``."""
    op = REGISTRY[name] = Op(name, forward, vjp, save, view, meta, multi, nodes, lower)
    return op


def _view_meta(forward):
    def meta(metas, **attrs):
        out = forward(fake_array(*metas[0]), **attrs)
        return [(v.shape, v.dtype) for v in (out if isinstance(out, tuple) else (out,))]
    return meta


def _same_meta(metas, **attrs):
    return [metas[0]]


def _cast_meta(metas, dtype, **attrs):
    return [(metas[0][0], dtype)]


def _broadcast_meta(metas, dtype, **attrs):
    return [(_broadcast_shape(metas[0][0], metas[1][0]), dtype)]


def _compare_meta(metas, dtype, **attrs):
    return [(_broadcast_shape(*[m[0] for m in metas]), np.dtype(np.bool_))]


def _reduce_meta(metas, dims, keepdim, dtype=None, **attrs):
    shape = metas[0][0]
    out = _keep_shape(shape, dims) if keepdim else tuple(
        n for i, n in enumerate(shape) if i not in dims)
    return [(out, metas[0][1] if dtype is None else dtype)]
