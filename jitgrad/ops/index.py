"""Indexing: ``getitem`` (basic and advanced keys), select, narrow, index_select, take."""
import builtins
import numbers
import numpy as np

from .. import lazy as _lazy
from ..core.shapes import as_view_key as _as_view_key
from ..core.shapes import fake_array
from ..core.shapes import flat_positions as _flat_positions
from ..runtime.backends import cpu
from ..tensor import Tensor
from ..tensor import _dim
from .args import _wrap
from .dispatch import apply, finish
from .registry import defop
from ..core.shapes import advanced_key as _advanced_key
from ..kernels.cpu import interpreter as interp
from ..runtime.lowering import lower_view

def _lower_gather(kind):
    """out = x.flat[positions]: from an index ``key`` over x's shape, or a raw ``idx``."""
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        out = lw.new_out(p)
        n = int(np.prod(p.shape, dtype=np.int64))
        k = lw.indices(kind, shape if kind == "key" else None, n)
        if n:
            lw.row(interp.GATHER, k, out, off, dims=(n, 1, 1, 1))
        return out
    return lower


_lower_gather_index = _lower_gather("key")
_lower_take = _lower_gather("idx")


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
    lw.row(interp.SCATTER_ADD, k, out, off, dims=(n, total, 1, 1))
    return out


_INDEX_ADD = defop("index_add", lambda g, shape, idx, key=None: cpu.scatter_add(g, idx, shape),
                   lambda c, g: (take(g, c.attrs["idx"]),),
                   meta=lambda metas, shape, idx, key=None: [(tuple(shape), metas[0][1])],
                   lower=_lower_index_add)
# ``rows``, when given, is ``(labels, classes)`` with ``idx == arange(n) * classes + labels``:
# how the positions follow from a tensor, so a jitgrad.jit replay can rebuild them
_TAKE = defop("take", lambda x, idx, rows=None: cpu.gather(x, idx),
              lambda c, g: (apply(_INDEX_ADD, [g], "IndexAddBackward0",
                                  shape=c._inputs_meta[0][0], idx=c.attrs["idx"]),),
              meta=lambda metas, idx, rows=None: [(idx.shape, metas[0][1])], lower=_lower_take)


def take(input, index):
    """Elements at flat positions ``index`` (a tensor or int64 array), shaped like ``index``."""
    idx = index._data if isinstance(index, Tensor) else np.asarray(index, np.int64)
    n = input.numel()
    if idx.size and (idx.min() < -n or idx.max() >= n):
        bad = idx[(idx < -n) | (idx >= n)].flat[0]
        raise IndexError(f"out of range: tried to access index {bad} on a tensor of {n} elements.")
    return apply(_TAKE, [input], "TakeBackward0", idx=np.where(idx < 0, idx + n, idx))


def _index_vjp(c, g):
    shape, key = c._inputs_meta[0][0], c.attrs["key"]
    # ``key`` rides along so a cached lazy program can recompute the positions each step
    return (apply(_INDEX_ADD, [g], "IndexAddBackward0", shape=shape,
                  idx=_flat_positions(shape, key), key=key),)


def _lower_index(lw, p):
    if _advanced_key(p.attrs["key"]):
        return _lower_gather_index(lw, p)
    return lower_view(lw, p)


_INDEX = defop("index", lambda x, key: x[_as_view_key(key)], _index_vjp, view=True,
               lower=_lower_index)
def _lower_index_put(lw, p):
    x, v = p.inputs
    xo, xshape = lw.operand(x)
    vo, vshape = lw.operand(v)
    idx_shape = p.attrs["idx"].shape
    n = int(np.prod(idx_shape, dtype=np.int64))
    vals = lw.alloc(n)
    lw.elementwise(interp.COPY, 0, vals, idx_shape, [(vo, vshape, None)])
    out = lw.new_out(p)
    total = int(np.prod(p.shape, dtype=np.int64))
    k = lw.indices("idx", None, n)
    lw.row(interp.SCATTER, k, out, vals, xo, dims=(n, total, 1, 1))
    return out


_INDEX_PUT = defop("index_put",
                   lambda x, v, idx: cpu.index_put(x, idx, v),
                   lambda c, g: (apply(_INDEX_PUT, [g, _wrap(0, g.dtype)], "IndexPutBackward0",
                                       idx=c.attrs["idx"]) if c.needs_input_grad[0] else None,
                                 take(g, c.attrs["idx"]) if c.needs_input_grad[1] else None),
                   meta=lambda metas, idx: [metas[0]], lower=_lower_index_put)


def _normalise_key(key, ndim):
    """Turn tensors in an index into numpy arrays and check it, with PyTorch's errors."""
    if not isinstance(key, tuple):
        key = (key,)
    out, advanced, used = [], False, 0
    for k in key:
        if isinstance(k, Tensor):
            if k.dtype.kind == 2:
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            k = k._data
            advanced = True
        elif isinstance(k, (list, np.ndarray)):
            k = np.asarray(k)
            if k.dtype.kind == "f":
                raise IndexError("tensors used as indices must be long, int, byte or bool tensors")
            advanced = True
        elif isinstance(k, bool):
            advanced = True
        elif not (k is None or k is Ellipsis or isinstance(k, (slice, numbers.Integral))):
            raise IndexError("only integers, slices (`:`), ellipsis (`...`), None and long or "
                             "byte Variables are valid indices (got "
                             f"{type(k).__name__})")
        if isinstance(k, slice) and k.step is not None and k.step <= 0:
            raise ValueError("step must be greater than zero")
        if k is not None and k is not Ellipsis and not isinstance(k, bool):
            used += k.ndim if isinstance(k, np.ndarray) and k.dtype == np.bool_ else 1
        out.append(k)
    if ndim == 0 and builtins.any(isinstance(k, numbers.Integral) for k in out):
        raise IndexError("invalid index of a 0-dim tensor. Use `tensor.item()` in Python or "
                         "`tensor.item<T>()` in C++ to convert a 0-dim tensor to a number")
    if used > ndim:
        raise IndexError(f"too many indices for tensor of dimension {ndim}")
    return tuple(out), advanced


def _run_index(fn, *args):
    """Run numpy indexing, rewording its errors as PyTorch's."""
    try:
        return fn(*args)
    except IndexError as e:
        msg = str(e).replace("for axis", "for dimension")
        raise IndexError(msg) from None


def _index_name(key, advanced, shape=None, single=False):
    """PyTorch's node for a basic index: the last step that did something. In a tuple key
    a slice over a whole dim (``0::1``, ``0:5`` of 3) does nothing, and a tuple that did
    nothing records ``AliasBackward0``; a lone slice (``single``) always records a Slice."""
    if advanced:
        return "IndexBackward0"
    dims, d = [], 0  # the dim each key item indexes
    for k in key:
        dims.append(d)
        if k is Ellipsis:
            d += (len(shape) if shape is not None else 0) - builtins.sum(
                1 for j in key if j is not None and j is not Ellipsis)
        elif k is not None:
            d += 1
    for k, d in zip(reversed(key), reversed(dims)):
        if isinstance(k, numbers.Integral):
            return "SelectBackward0"
        if isinstance(k, slice) and (single or (
                k != slice(None) if shape is None else not _whole(k, shape[d]))):
            return "SliceBackward0"
        if k is None:
            return "UnsqueezeBackward0"
    # only full slices and ``...``
    return "SliceBackward0" if single else "AliasBackward0"


def _whole(k, n):
    """PyTorch skips a slice that starts at 0 (not -n), steps 1 and stops at n or beyond."""
    return (k.start or 0) == 0 and (k.step or 1) == 1 and (k.stop is None or k.stop >= n)


def getitem(input, key):
    """``input[key]``: a view for ints, slices, None and ``...``; a copy for tensor indices."""
    single = type(key) is slice
    key, advanced = _normalise_key(key, input.ndim)
    # raises on bad indices before anything is recorded; zero strides: nothing real is read
    _run_index(lambda: fake_array(input.shape, input._npdtype, (0,) * input.ndim)[key])
    if (input._value is not None and not input._requires_grad and _lazy._STATE["lazy"]
            and _lazy._tls.capture is None and builtins.all(type(k) is slice for k in key)):
        # lazy mode: slices of a computed tensor that needs no gradient (a batch cut
        # from a dataset) are taken at once, as numpy takes them, so the segment reads
        # the slice as its input: where it starts is no part of the recorded structure
        # (a Program, and its arena, for each batch otherwise)
        out = Tensor._make(_INDEX.forward(input._value, key=key))
        return finish(_INDEX, [input], [out], _index_name(key, advanced, input.shape, single),
                      {"key": key})
    return apply(_INDEX, [input], _index_name(key, advanced, input.shape, single), key=key)


def select(input, dim, index):
    """The slice at ``index`` along ``dim`` (drops that dim)."""
    d = _dim(dim, input.ndim)
    n = input.shape[d]
    if not -n <= index < n:
        raise IndexError(f"select(): index {index} out of range for tensor of size "
                         f"{list(input.shape)} at dimension {d}")
    return apply(_INDEX, [input], "SelectBackward0", key=(slice(None),) * d + (index,))


def narrow(input, dim, start, length):
    """The ``length`` elements from ``start`` along ``dim``, as a view."""
    d = _dim(dim, input.ndim)
    if start < 0:
        start += input.shape[d]
    if start + length > input.shape[d]:
        raise RuntimeError(f"start ({start}) + length ({length}) exceeds dimension size "
                           f"({input.shape[d]}).")
    return apply(_INDEX, [input], "SliceBackward0",
                 key=(slice(None),) * d + (slice(start, start + length),))


def index_select(input, dim, index):
    """Entries along ``dim`` at positions ``index`` (a 1-D int tensor)."""
    d = _dim(dim, input.ndim)
    if not isinstance(index, Tensor) or index.ndim > 1 or index.dtype.kind != 1:
        raise IndexError("index_select(): Expected a 1-D int64 or int32 index tensor")
    key, _ = _normalise_key((slice(None),) * d + (index,), input.ndim)
    n = input.shape[d] if input.ndim else 1
    idx = index._data
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise IndexError("index out of range in self")
    return apply(_INDEX, [input], "IndexSelectBackward0", key=key)
