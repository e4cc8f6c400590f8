"""Tensor dtypes and PyTorch's type-promotion rules."""
import numpy as np


class dtype:
    """A tensor element type; prints as ``jitgrad.float32`` like ``torch.float32``."""

    __slots__ = ("name", "np", "kind", "is_floating_point", "itemsize")

    # kind orders the promotion categories: bool < integer < floating
    def __init__(self, name, np_dtype, kind):
        self.name = name
        self.np = np.dtype(np_dtype)
        self.kind = kind
        self.is_floating_point = kind == 2
        self.itemsize = self.np.itemsize

    def __repr__(self):
        return f"jitgrad.{self.name}"

    def __reduce__(self):
        return (_by_name, (self.name,))


bool_ = dtype("bool", np.bool_, 0)
int32 = dtype("int32", np.int32, 1)
int64 = dtype("int64", np.int64, 1)
float32 = dtype("float32", np.float32, 2)
float64 = dtype("float64", np.float64, 2)

ALL = (bool_, int32, int64, float32, float64)
_FROM_NP = {d.np: d for d in ALL}
_RANK = {d: i for i, d in enumerate(ALL)}


def _by_name(name):
    return next(d for d in ALL if d.name == name)


_default_float = float32


def get_default_dtype():
    """The dtype of tensors made from Python floats (``float32`` unless changed)."""
    return _default_float


def set_default_dtype(d):
    """Set the default floating dtype (``float32`` or ``float64``), as ``torch.set_default_dtype``."""
    global _default_float
    if d not in (float32, float64):
        raise TypeError("only floating-point types are supported as the default type")
    _default_float = d


def from_numpy_dtype(np_dtype):
    """The jitgrad dtype for a numpy dtype; unsupported ones raise ``TypeError``."""
    d = _FROM_NP.get(np.dtype(np_dtype))
    if d is None:
        raise TypeError(
            f"can't convert np.ndarray of type numpy.{np.dtype(np_dtype).name}. The only "
            "supported types are: float64, float32, int64, int32, and bool.")
    return d


def to_dtype(d):
    """Accept a jitgrad dtype, a numpy dtype or a Python type (``float``, ``int``, ``bool``)."""
    if isinstance(d, dtype):
        return d
    if d is float:
        return float64
    if d is int:
        return int64
    if d is bool:
        return bool_
    return from_numpy_dtype(d)


def promote_types(a, b):
    """The smallest dtype both ``a`` and ``b`` convert to, as ``torch.promote_types``."""
    if a is b:
        return a
    if a.kind != b.kind:
        return a if a.kind > b.kind else b
    return a if _RANK[a] > _RANK[b] else b


def scalar_dtype(value):
    """The dtype a Python number takes when it becomes a tensor on its own."""
    if isinstance(value, (bool, np.bool_)):
        return bool_
    if isinstance(value, (int, np.integer)):
        return int64
    return _default_float
