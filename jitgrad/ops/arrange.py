"""Composites that rearrange or mask values: ``tril``/``triu`` (a ``where`` over a constant
mask), ``roll`` (a ``cat`` of two slices per rolled dim), ``one_hot`` (indices only, run
eagerly on the realized values) and ``named_where`` (``where`` recorded under another
grad_fn name, for the activations built from it). Each is recorded under PyTorch's
grad_fn name (``TrilBackward0``, ``TriuBackward0``, ``RollBackward0``) though it runs on
the other families' primitives."""
import numbers

import numpy as np

from .. import dtypes as dt
from ..tensor import Tensor
from ..tensor import _dim
from .args import _check_tensor, _promote, _wrap
from .dispatch import apply
from .elementwise import _WHERE, clone
from .index import narrow
from .shape import _CAT, reshape

_MASKS = {}


def _tri_mask(rows, cols, diagonal, lower):
    """A read-only bool (rows, cols) tensor, True where ``tril`` (``lower``) or ``triu``
    keeps the element; equal requests share one tensor (lazy Programs bind fewer inputs)."""
    key = (rows, cols, diagonal, lower)
    t = _MASKS.get(key)
    if t is None:
        if len(_MASKS) > 256:
            _MASKS.clear()
        m = np.tri(rows, cols, diagonal, dtype=np.bool_)  # m[i, j] = j - i <= diagonal
        if not lower:
            m = ~np.tri(rows, cols, diagonal - 1, dtype=np.bool_)
        t = Tensor._make(m)
        t._value.flags.writeable = False
        _MASKS[key] = t
    return t


def named_where(condition, input, other, name):
    """``where(condition, input, other)`` with the grad_fn ``name`` (``condition`` a bool
    tensor; ``input``/``other`` tensors or numbers, promoted as ``where`` does)."""
    a, b, d = _promote(input, other)
    return apply(_WHERE, [a, b], name, cond=condition, dtype=d.np)


def _tri(input, diagonal, lower):
    fn = "tril" if lower else "triu"
    _check_tensor(input, fn)
    if not isinstance(diagonal, numbers.Integral) or isinstance(diagonal, bool):
        raise TypeError(f"{fn}(): argument 'diagonal' (position 2) must be int, not "
                        f"{type(diagonal).__name__}")
    if input.ndim < 2:
        raise RuntimeError(f"{fn}: input tensor must have at least 2 dimensions")
    mask = _tri_mask(input.shape[-2], input.shape[-1], int(diagonal), lower)
    return apply(_WHERE, [input, _wrap(0, input.dtype)], "TrilBackward0" if lower else
                 "TriuBackward0", cond=mask, dtype=input.dtype.np)


def tril(input, diagonal=0):
    """The lower triangle of the last two dims (elements with ``col - row <= diagonal``),
    the rest zero."""
    return _tri(input, diagonal, True)


def triu(input, diagonal=0):
    """The upper triangle of the last two dims (elements with ``col - row >= diagonal``),
    the rest zero."""
    return _tri(input, diagonal, False)


def _as_tuple(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def roll(input, shifts, dims=None):
    """``input`` shifted circularly by ``shifts`` along ``dims`` (the flattened tensor when
    ``dims`` is None), as ``torch.roll``."""
    _check_tensor(input, "roll")
    shifts = _as_tuple(shifts)
    dims = () if dims is None else _as_tuple(dims)
    if not shifts:
        raise RuntimeError("`shifts` required")
    if not dims and len(shifts) == 1:
        flat = reshape(input, (-1,))
        return reshape(roll(flat, shifts, 0), input.shape)
    if len(shifts) != len(dims):
        raise RuntimeError(f"shifts and dimensions must align. shifts: {len(shifts)}, "
                           f"dims:{len(dims)}")
    dims = [_dim(d, input.ndim) for d in dims]
    out = input
    for s, d in zip(shifts, dims):
        n = out.shape[d] if out.ndim else 1
        s = int(s) % n if n else 0
        if s == 0 or out.ndim == 0:
            continue
        parts = [narrow(out, d, n - s, s), narrow(out, d, 0, n - s)]
        out = apply(_CAT, parts, "RollBackward0", dim=d, dtype=out.dtype.np)
    return clone(input) if out is input else out


def one_hot(tensor, num_classes=-1):
    """``tensor``'s int64 class indices as one-hot int64 rows: shape ``tensor.shape +
    (num_classes,)``; ``num_classes=-1`` takes ``tensor.max() + 1``. Run on the realized
    values (no gradient: an index op)."""
    _check_tensor(tensor, "one_hot")
    if tensor.dtype is not dt.int64:
        raise RuntimeError("one_hot is only applicable to index tensor of type LongTensor.")
    v = tensor._data
    if num_classes == -1:
        if v.size == 0:
            raise RuntimeError("Can not infer total number of classes from empty tensor.")
        num_classes = int(v.max()) + 1
    if v.size and v.min() < 0:
        raise RuntimeError("Class values must be non-negative.")
    if v.size and v.max() >= num_classes:
        raise RuntimeError("Class values must be smaller than num_classes.")
    return Tensor._make((v[..., None] == np.arange(num_classes)).astype(np.int64))
