"""Sorting: ``sort``, ``argsort`` and ``topk``, composites over the ``take`` primitive.

The order is found on the input's values (numpy's stable sort along ``dim``; in lazy mode
this computes the segment the input is pending in), NaN counting as the greatest value and
equal values keeping their order, as PyTorch's stable sort does. The values are then
gathered from the input at those positions by ``take``, recorded under PyTorch's grad_fn
names (``SortBackward0``, ``SortBackward1`` when ``stable`` is given, ``TopkBackward0``):
the gradient scatters back to the positions the values came from, and a lazy Program
records the gather like any other op. ``argsort`` is indices only (no gradient).
jitgrad's ``topk`` always returns its values sorted (``sorted=False`` leaves the order
unspecified in PyTorch too) and, among equal values, the first ones along ``dim``.
"""
import numbers

import numpy as np

from .. import dtypes as dt
from ..tensor import Tensor
from ..tensor import _dim
from .args import _check_tensor
from .dispatch import apply
from .index import _TAKE
from .reduce import _ReturnType


class _Sort(_ReturnType):
    """``(values, indices)`` printed as ``jitgrad.return_types.sort(...)``."""

    __slots__ = ()
    _name = "sort"


class _Topk(_ReturnType):
    """``(values, indices)`` printed as ``jitgrad.return_types.topk(...)``."""

    __slots__ = ()
    _name = "topk"


def _order(a, dim, descending):
    """Positions along ``dim`` that sort ``a`` (ascending or descending), stably: equal values
    keep their order either way, and NaN counts as the greatest value."""
    if not descending:
        return np.argsort(a, axis=dim, kind="stable")
    # descending, stably: sort the reversed array ascending, reverse the result, and map
    # positions in the reversed array back (ties then come out in their original order)
    n = a.shape[dim]
    return (n - 1) - np.flip(np.argsort(np.flip(a, dim), axis=dim, kind="stable"), dim)


def _indices(input, dim, descending, k=None):
    """The sorting positions along ``dim`` (the first ``k`` only, when given) of ``input``,
    a tensor of at least one dim, as an int64 array."""
    a = input._data
    idx = _order(a, dim, descending)
    if k is not None and k < a.shape[dim]:
        idx = np.take(idx, np.arange(k), axis=dim)
    return np.ascontiguousarray(idx, dtype=np.int64)


def _gather(input, idx, dim, name):
    """``input``'s values at positions ``idx`` along ``dim``, with a gradient (``take``)."""
    if input.ndim == 0:
        flat = np.zeros((), np.int64)
    else:
        grid = np.arange(input.numel(), dtype=np.int64).reshape(input.shape)
        flat = np.take_along_axis(grid, idx, dim)
    return apply(_TAKE, [input], name, idx=flat)


def _check_dim(input, dim, fn):
    _check_tensor(input, fn)
    if not isinstance(dim, numbers.Integral) or isinstance(dim, bool):
        raise TypeError(f"{fn}(): argument 'dim' must be int, not {type(dim).__name__}")
    return _dim(dim, input.ndim)


def sort(input, dim=-1, descending=False, *, stable=None):
    """``(values, indices)`` of ``input`` sorted along ``dim``, as ``torch.sort``.

    jitgrad's sort is always stable (equal values keep their order), which PyTorch's is
    with ``stable=True``; NaN sorts as the greatest value. The values carry a gradient
    (``SortBackward0``, or ``SortBackward1`` when ``stable`` is given, as PyTorch names
    its two overloads).
    """
    d = _check_dim(input, dim, "sort")
    name = "SortBackward0" if stable is None else "SortBackward1"
    if input.ndim == 0:
        return _Sort(_gather(input, None, 0, name), Tensor._make(np.zeros((), np.int64)))
    idx = _indices(input, d, descending)
    return _Sort(_gather(input, idx, d, name), Tensor._make(idx))


def argsort(input, dim=-1, descending=False, *, stable=False):
    """The indices that sort ``input`` along ``dim`` (``sort(...).indices``); stable."""
    d = _check_dim(input, dim, "argsort")
    if input.ndim == 0:
        return Tensor._make(np.zeros((), np.int64))
    return Tensor._make(_indices(input, d, descending))


def topk(input, k, dim=-1, largest=True, sorted=True):
    """``(values, indices)`` of the ``k`` largest (``largest=False``: smallest) elements
    along ``dim``, as ``torch.topk``; the values carry a gradient (``TopkBackward0``).

    The values come sorted whatever ``sorted`` says (PyTorch leaves the order unspecified
    when it is False); among equal values the first along ``dim`` are taken (PyTorch
    takes some of them), and NaN counts as the greatest value.
    """
    _check_tensor(input, "topk")
    if not isinstance(k, numbers.Integral) or isinstance(k, bool):
        raise TypeError(f"topk(): argument 'k' (position 2) must be int, not "
                        f"{type(k).__name__}")
    d = _check_dim(input, dim, "topk")
    n = input.shape[d] if input.ndim else 1
    if not 0 <= k <= n:
        raise RuntimeError("selected index k out of range")
    if input.dtype is dt.bool_:
        raise RuntimeError("topk does not support bool dtypes on CPU")
    if input.ndim == 0:
        return _Topk(_gather(input, None, 0, "TopkBackward0"),
                     Tensor._make(np.zeros((), np.int64)))
    idx = _indices(input, d, largest, k)
    return _Topk(_gather(input, idx, d, "TopkBackward0"), Tensor._make(idx))
