"""Reductions over the middle axis of a C-contiguous ``(A, R, B)`` array.

Any reduction over one run of adjacent axes is this shape after a reshape:
``A`` is the product of the axes before the run, ``R`` of the run, ``B`` of the
axes after. ``out`` is ``(A, B)``. When ``B == 1`` the loop runs down each
contiguous row; otherwise it sweeps rows of ``B`` so the inner loop stays
contiguous. Floating values accumulate in float64, integers in int64 (float64
would round integer sums past 2**53).
"""
import numpy as np
from numba import types
from numba.extending import overload

from .config import JIT_OPTIONS, inline_kernel, kernel


def _accumulators(x, n):
    """``n`` accumulators for reductions of ``x``'s elements (float64 or int64)."""
    return np.empty(n, np.float64 if x.dtype.kind == "f" else np.int64)


@overload(_accumulators, jit_options=JIT_OPTIONS)
def _accumulators_impl(x, n):
    if isinstance(x.dtype, types.Float):
        return lambda x, n: np.empty(n, np.float64)
    return lambda x, n: np.empty(n, np.int64)


def _zero_sum(x):
    """A zero of the type sums of ``x``'s elements accumulate in."""
    return 0.0 if x.dtype.kind == "f" else 0


@overload(_zero_sum, jit_options=JIT_OPTIONS)
def _zero_sum_impl(x):
    if isinstance(x.dtype, types.Float):
        return lambda x: np.float64(0.0)
    return lambda x: np.int64(0)

SUM, PROD, MAX, MIN = range(4)
ARGMAX, ARGMIN = range(2)


@kernel
def reduce(op, x, out):
    """out[a, b] = reduce_r x[a, r, b] for SUM, PROD, MAX (NaN-propagating), MIN."""
    A, R, B = x.shape
    if B == 1 and (op == MAX or op == MIN):
        _extremes_of_rows(op == MAX, x, out)
        return
    acc = _accumulators(x, B)
    for a in range(A):
        if op == SUM:
            acc[:] = 0
            for r in range(R):
                for b in range(B):
                    acc[b] += x[a, r, b]
        elif op == PROD:
            acc[:] = 1
            for r in range(R):
                for b in range(B):
                    acc[b] *= x[a, r, b]
        elif op == MAX:
            for b in range(B):
                acc[b] = x[a, 0, b]
            for r in range(1, R):
                for b in range(B):
                    v = x[a, r, b]
                    c = acc[b]
                    acc[b] = v if (v > c) | (v != v) else c
        else:
            for b in range(B):
                acc[b] = x[a, 0, b]
            for r in range(1, R):
                for b in range(B):
                    v = x[a, r, b]
                    c = acc[b]
                    acc[b] = v if (v < c) | (v != v) else c
        for b in range(B):
            out[a, b] = acc[b]


_LANES = 64


@inline_kernel
def row_extreme(row, is_max):
    """The max (``is_max``) or min of a contiguous 1-D ``row``, NaN if it has one. The row
    is read as rows of 64 whose columns keep running extremes, each updated by a
    select, so the loop vectorises (one running extreme is a chain of dependent
    branches: 2 ns per element, against 0.3); the 64 are merged at the end (equal
    values are equal bits but for 0.0 and -0.0, either of which may win, as in numpy)."""
    R = row.shape[0]
    full = R - R % _LANES
    best = row[0]
    if full:
        acc = np.empty(_LANES, row.dtype)
        block = row[:full].reshape((full // _LANES, _LANES))
        for w in range(_LANES):
            acc[w] = block[0, w]
        if is_max:
            for r in range(1, full // _LANES):
                for w in range(_LANES):
                    v = block[r, w]
                    c = acc[w]
                    acc[w] = v if (v > c) | (v != v) else c
        else:
            for r in range(1, full // _LANES):
                for w in range(_LANES):
                    v = block[r, w]
                    c = acc[w]
                    acc[w] = v if (v < c) | (v != v) else c
        for w in range(_LANES):
            v = acc[w]
            if ((v > best) if is_max else (v < best)) or v != v:
                best = v
    for r in range(full, R):
        v = row[r]
        if ((v > best) if is_max else (v < best)) or v != v:
            best = v
    return best


@kernel
def _extremes_of_rows(is_max, x, out):
    """out[a, 0] = ``row_extreme`` of the contiguous row x[a, :, 0]."""
    rows = x.reshape((x.shape[0], x.shape[1]))
    for a in range(x.shape[0]):
        out[a, 0] = row_extreme(rows[a], is_max)


@kernel
def sum_rows(x, out):
    """out[a] = sum x[a, :] for a C-contiguous 2-D ``x`` (the ``B == 1`` sum)."""
    for a in range(x.shape[0]):
        acc = _zero_sum(x)
        for r in range(x.shape[1]):
            acc += x[a, r]
        out[a] = acc


@kernel
def arg_reduce(op, x, out):
    """out[a, b] = index along r of the max (ARGMAX) or min (ARGMIN); NaN wins, first index on ties."""
    A, R, B = x.shape
    for a in range(A):
        for b in range(B):
            best = x[a, 0, b]
            k = 0
            if best == best:
                for r in range(1, R):
                    v = x[a, r, b]
                    if v != v:
                        k = r
                        break
                    if (op == ARGMAX and v > best) or (op == ARGMIN and v < best):
                        best = v
                        k = r
            out[a, b] = k
