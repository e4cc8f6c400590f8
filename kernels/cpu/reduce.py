"""Reductions over the middle axis of a C-contiguous ``(A, R, B)`` array.

Any reduction over one run of adjacent axes is this shape after a reshape:
``A`` is the product of the axes before the run, ``R`` of the run, ``B`` of the
axes after. ``out`` is ``(A, B)``. When ``B == 1`` the loop runs down each
contiguous row; otherwise it sweeps rows of ``B`` so the inner loop stays
contiguous. Floating sums accumulate in float64.
"""
import numpy as np

from .config import kernel

SUM, PROD, MAX, MIN = range(4)
ARGMAX, ARGMIN = range(2)


@kernel
def reduce(op, x, out):
    """out[a, b] = reduce_r x[a, r, b] for SUM, PROD, MAX (NaN-propagating), MIN."""
    A, R, B = x.shape
    acc = np.empty(B, np.float64)
    for a in range(A):
        if op == SUM:
            acc[:] = 0.0
            for r in range(R):
                for b in range(B):
                    acc[b] += x[a, r, b]
        elif op == PROD:
            acc[:] = 1.0
            for r in range(R):
                for b in range(B):
                    acc[b] *= x[a, r, b]
        elif op == MAX:
            for b in range(B):
                acc[b] = x[a, 0, b]
            for r in range(1, R):
                for b in range(B):
                    v = x[a, r, b]
                    if v > acc[b] or v != v:
                        acc[b] = v
        else:
            for b in range(B):
                acc[b] = x[a, 0, b]
            for r in range(1, R):
                for b in range(B):
                    v = x[a, r, b]
                    if v < acc[b] or v != v:
                        acc[b] = v
        for b in range(B):
            out[a, b] = acc[b]


@kernel
def sum_rows(x, out):
    """out[a] = sum x[a, :] for a C-contiguous 2-D ``x`` (the ``B == 1`` sum)."""
    for a in range(x.shape[0]):
        acc = 0.0
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
