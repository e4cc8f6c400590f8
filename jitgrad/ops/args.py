"""Argument handling shared by the op families: the constant cache (``_wrap``), type
promotion, dim normalisation and PyTorch's wording for argument errors."""
import math
import numbers
import numpy as np

from .. import dtypes as dt
from .. import lazy as _lazy
from ..core.shapes import broadcast_shape as _broadcast_shape
from ..runtime.backends import cpu
from ..tensor import Tensor, result_type
from ..tensor import _dim

_WRAPPED = {}


def _wrap(x, d):
    """A Python number as a 0-d tensor of dtype ``d`` (it never requires grad).

    Equal numbers share one tensor, so a graph that uses ``0.5`` many times reads
    one input (lazy Programs bind fewer inputs); nothing writes to these tensors.
    """
    if type(x) is float and x:  # a nonzero float: value and dtype say which tensor
        t = _WRAPPED_FLOATS.get((x, d))
        if t is not None:
            return t
    key = (type(x), x, d, isinstance(x, float) and math.copysign(1.0, x) < 0)  # -0.0 != 0.0
    t = _WRAPPED.get(key)
    if t is None:
        if len(_WRAPPED) > 4096:
            _WRAPPED.clear()
            _WRAPPED_FLOATS.clear()
        t = Tensor._make(np.array(x, dtype=d.np))
        t._value.flags.writeable = False
        _WRAPPED[key] = t
        if type(x) is float and x:
            _WRAPPED_FLOATS[(x, d)] = t
    return t


_WRAPPED_FLOATS = {}


def _check_operand(x, what="other", fn=None, position=None):
    if not isinstance(x, (Tensor, numbers.Number, np.generic)):
        if fn is None:
            raise TypeError(f"{what} must be a Tensor or a number, not {type(x).__name__}")
        raise TypeError(f"{fn}(): argument '{what}' (position {position}) must be Tensor, not "
                        f"{type(x).__name__}")


def _check_tensor(x, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}(): argument 'input' (position 1) must be Tensor, not "
                        f"{type(x).__name__}")


def _as(a, d):
    return a if a.dtype == d else cpu.cast(a, d)


def _promote(a, b, name=None):
    """Both operands as tensors of their common dtype, plus that dtype (``name``: the op, for
    PyTorch's argument errors)."""
    if type(a) is Tensor:  # the common cases, decided without the general rules
        da = a._npdtype
        if type(b) is Tensor:
            if da == b._npdtype and a._shape == b._shape:
                return a, b, dt._FROM_NP[da]
        elif type(b) is float and da.kind == "f" or type(b) is int and da.kind in "fi":
            d = dt._FROM_NP[da]
            return a, _wrap(b, d), d
    _check_operand(a, "input", name, 1)
    _check_operand(b, "other", name, 2)
    d = result_type(a, b)
    a = a if isinstance(a, Tensor) else _wrap(a, d)
    b = b if isinstance(b, Tensor) else _wrap(b, d)
    _broadcast_shape(a.shape, b.shape)
    return a, b, d


def _dims(dim, ndim):
    """Sorted, normalised reduction dims; ``None`` means all."""
    if dim is None:
        return tuple(range(ndim))
    if isinstance(dim, (tuple, list)):
        dims = sorted(_dim(d, ndim) for d in dim)
        if len(set(dims)) != len(dims):
            raise RuntimeError(f"dim {dims[0]} appears multiple times in the list of dims")
        return tuple(dims) if dims or ndim == 0 else tuple(range(ndim))
    return (_dim(dim, ndim),) if ndim else ()


def _float_dtype(x):
    return x.dtype if x.dtype.is_floating_point else dt.get_default_dtype()


_C_NAMES = {"float32": "Float", "float64": "Double", "int64": "Long", "int32": "Int",
            "bool": "Bool"}


def _not_implemented(kernel, d):
    return NotImplementedError(f"\"{kernel}\" not implemented for '{_C_NAMES[d.name]}'")


def _layout(t):
    """``t``'s array, or for a pending tensor an array over no memory laid out as it will be."""
    return t._value if t._value is not None else _lazy._layout(t)
