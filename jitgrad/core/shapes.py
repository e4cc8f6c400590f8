"""Shape and layout arithmetic over plain tuples and numpy arrays (no tensors)."""
import builtins

import numpy as np


def fake_array(shape, dtype, strides=None):
    """An array with the given (default C) strides over no real memory: numpy computes
    view geometry on it without touching data."""
    dtype = np.dtype(dtype)
    if strides is None:
        strides, acc = [], dtype.itemsize
        for n in reversed(shape):
            strides.append(acc)
            acc *= n
        strides = tuple(reversed(strides))
    return np.lib.stride_tricks.as_strided(np.zeros(1, dtype), shape=shape, strides=strides)


def c_strides(shape):
    """Element strides of a C-contiguous ``shape``."""
    strides, acc = [], 1
    for n in reversed(shape):
        strides.append(acc)
        acc *= n
    return tuple(reversed(strides))


def broadcast_strides(shape, target):
    """Element strides of a contiguous ``shape`` broadcast to ``target`` (0 where broadcast)."""
    st = c_strides(shape)
    lead = len(target) - len(shape)
    return tuple(0 if i < lead or shape[i - lead] == 1 else st[i - lead]
                 for i in range(len(target)))


def advanced_key(key):
    """Whether index ``key`` (a tuple) selects by arrays or booleans (a copy, not a view)."""
    return any(isinstance(k, (np.ndarray, bool)) for k in key)


def as_view_key(key):
    """``key`` with a trailing ``...`` so integer indexing yields a 0-d array, not a scalar."""
    return key if builtins.any(k is Ellipsis for k in key) else key + (Ellipsis,)


def flat_positions(shape, key):
    """Flat element positions that ``key`` selects from a C-ordered ``shape``."""
    return np.arange(int(np.prod(shape)), dtype=np.int64).reshape(shape)[as_view_key(key)]


def broadcast_shape(*shapes):
    """The shape ``shapes`` broadcast to, or PyTorch's error for the first mismatch."""
    if len(shapes) == 2:  # the common cases first: equal shapes, or a scalar operand
        a, b = shapes
        if a == b or not b:
            return tuple(a)
        if not a:
            return tuple(b)
    else:
        first = shapes[0]
        if builtins.all(s == first for s in shapes):
            return tuple(first)
    ndim = builtins.max(len(s) for s in shapes)
    out = []
    for i in range(-1, -ndim - 1, -1):  # from the right, as PyTorch reports mismatches
        size = 1
        for k, s in enumerate(shapes):
            n = s[i] if -i <= len(s) else 1
            if n != 1:
                if size != 1 and n != size:
                    raise RuntimeError(
                        f"The size of tensor a ({size}) must match the size of tensor b ({n}) "
                        f"at non-singleton dimension {i + ndim}")
                size = n
        out.append(size)
    return tuple(reversed(out))


def keep_shape(shape, dims):
    """``shape`` with the axes ``dims`` kept as size 1 (a reduction's ``keepdim`` shape)."""
    return tuple(1 if i in dims else n for i, n in enumerate(shape))
