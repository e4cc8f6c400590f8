"""Eager CPU launcher: lays numpy arrays out for the kernels and calls them.

Kernels take 1-D contiguous arrays (the fast path) or 4-D strided views. This
module decides which, broadcasts operands with zero strides, merges adjacent
axes that are laid out alike so most operands become 1-D or 2-D, and
allocates outputs. It is the only place that knows the kernels' layouts.
"""
import numpy as np
from numpy.lib.stride_tricks import as_strided

from ...kernels.cpu import elementwise as ew
from ...kernels.cpu import index as ix
from ...kernels.cpu import linalg, nn, reduce as rd

_ND = 4  # rank of the strided twins' views


def _coalesce(shape, strides):
    """Merge adjacent axes whose strides chain in every operand; drop size-1 axes."""
    dims = []
    for i, n in enumerate(shape):
        if n == 1:
            continue
        st = [s[i] for s in strides]
        if dims and all(prev == cur * n for prev, cur in zip(dims[-1][1], st)):
            dims[-1] = (dims[-1][0] * n, st)
        else:
            dims.append((n, st))
    return dims


def launch(k1, knd, arrays, out, prefix=(), suffix=()):
    """Run ``k(*prefix, *arrays, *suffix, out)`` with ``arrays`` broadcast to ``out``'s shape."""
    if out.size == 0:
        return out
    shape = out.shape
    if all(a.shape == shape and a.flags.c_contiguous for a in arrays):
        k1(*prefix, *[a.reshape(-1) for a in arrays], *suffix, out.reshape(-1))
        return out
    views = [np.broadcast_to(a, shape) for a in arrays] + [out]
    dims = _coalesce(shape, [v.strides for v in views])
    if len(dims) > _ND:
        flat = [np.ascontiguousarray(v).reshape(-1) for v in views[:-1]]
        k1(*prefix, *flat, *suffix, out.reshape(-1))
        return out
    dims = [(1, [0] * len(views))] * (_ND - len(dims)) + dims
    new_shape = tuple(n for n, _ in dims)
    nd = [as_strided(v, new_shape, tuple(st[j] for _, st in dims))
          for j, v in enumerate(views)]
    knd(*prefix, *nd[:-1], *suffix, nd[-1])
    return out


def _empty(shape, dtype):
    return np.empty(shape, dtype)


def unary(op, x):
    out = _empty(x.shape, x.dtype)
    if x.dtype.kind == "f":
        return launch(ew.unary, ew.unary_nd, [x], out, prefix=(op,))
    return launch(ew.unary_int, ew.unary_int_nd, [x], out, prefix=(op,))


def binary(op, a, b, dtype):
    out = _empty(np.broadcast_shapes(a.shape, b.shape), dtype)
    return launch(ew.binary, ew.binary_nd, [a, b], out, prefix=(op,))


def compare(op, a, b):
    out = _empty(np.broadcast_shapes(a.shape, b.shape), np.bool_)
    return launch(ew.compare, ew.compare_nd, [a, b], out, prefix=(op,))


def where(cond, a, b):
    out = _empty(np.broadcast_shapes(cond.shape, a.shape, b.shape), a.dtype)
    return launch(ew.where, ew.where_nd, [cond, a, b], out)


def clamp(x, lo, hi):
    t = x.dtype.type
    out = _empty(x.shape, x.dtype)
    return launch(ew.clamp, ew.clamp_nd, [x], out, suffix=(t(lo), t(hi)))


def pow_scalar(x, p):
    out = _empty(x.shape, x.dtype)
    return launch(ew.pow_scalar, ew.pow_scalar_nd, [x], out, suffix=(float(p),))


def cast(x, dtype, shape=None):
    """A fresh C-contiguous copy of ``x`` (broadcast to ``shape``) in ``dtype``."""
    out = _empty(x.shape if shape is None else shape, dtype)
    return launch(ew.cast, ew.cast_nd, [x], out)


def contiguous(x):
    return x if x.flags.c_contiguous else cast(x, x.dtype)


def _runs(dims):
    """Split sorted axes into runs of adjacent axes, last run first."""
    runs = []
    for d in dims:
        if runs and runs[-1][1] == d:
            runs[-1][1] = d + 1
        else:
            runs.append([d, d + 1])
    return runs[::-1]


def reduce(op, x, dims, dtype):
    """Reduce ``x`` over the sorted axes ``dims`` (keepdim=False) into ``dtype``."""
    y = contiguous(x)
    for start, stop in _runs(dims):
        shape = y.shape
        a = int(np.prod(shape[:start]))
        r = int(np.prod(shape[start:stop]))
        b = int(np.prod(shape[stop:]))
        out = _empty((a, b), dtype)
        if op == rd.SUM and b == 1:
            rd.sum_rows(y.reshape(a, r), out.reshape(a))
        else:
            rd.reduce(op, y.reshape(a, r, b), out)
        y = out.reshape(shape[:start] + shape[stop:])
    return y if dims else y.astype(dtype, copy=True)


def arg_reduce(op, x, dim):
    """Indices of the max/min along ``dim`` (None: over the flattened array)."""
    y = contiguous(x)
    if dim is None:
        y, dim = y.reshape(-1), 0
    shape = y.shape
    a, r, b = int(np.prod(shape[:dim])), shape[dim], int(np.prod(shape[dim + 1:]))
    out = _empty((a, b), np.int64)
    rd.arg_reduce(op, y.reshape(a, r, b), out)
    return out.reshape(shape[:dim] + shape[dim + 1:])


def _blas_ready(m):
    return m if (m.flags.c_contiguous or m.flags.f_contiguous) else np.ascontiguousarray(m)


def mm(a, b):
    out = _empty((a.shape[0], b.shape[1]), a.dtype)
    if a.dtype.kind == "f":
        if out.size and a.shape[1] == 0:
            out[...] = 0
        elif out.size:
            linalg.mm(_blas_ready(a), _blas_ready(b), out)
    else:
        linalg.mm_loop(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


def bmm(a, b):
    out = _empty((a.shape[0], a.shape[1], b.shape[2]), a.dtype)
    if a.dtype.kind != "f" or a.shape[2] == 0:
        for i in range(out.shape[0]):
            out[i] = mm(a[i], b[i])
    elif out.size:
        linalg.bmm(np.ascontiguousarray(a), np.ascontiguousarray(b), out)
    return out


def gather(x, idx):
    """x.flat[idx] with the shape of ``idx``."""
    out = _empty(idx.shape, x.dtype)
    ix.gather(contiguous(x).reshape(-1), idx.reshape(-1), out.reshape(-1))
    return out


def scatter_add(src, idx, shape):
    """zeros(shape) with src added at the flat positions ``idx``."""
    out = np.zeros(shape, src.dtype)
    src = cast(src, src.dtype, idx.shape)
    ix.scatter_add(src.reshape(-1), idx.reshape(-1), out.reshape(-1))
    return out


def index_put(x, idx, values):
    """A copy of ``x`` with ``values`` (broadcast to idx's shape) written at ``idx``."""
    out = cast(x, x.dtype)
    values = cast(values, x.dtype, idx.shape)
    ix.scatter(values.reshape(-1), idx.reshape(-1), out.reshape(-1))
    return out


def softmax(x, dim, log):
    y = contiguous(x)
    shape = y.shape or (1,)  # a 0-d tensor is one row of one element
    a, r, b = int(np.prod(shape[:dim])), shape[dim], int(np.prod(shape[dim + 1:]))
    out = _empty(x.shape, x.dtype)
    if out.size:
        nn.softmax(y.reshape(a, r, b), out.reshape(a, r, b), log)
    return out
