"""Numerically stable softmax and log-softmax over the middle axis of ``(A, R, B)``."""
import numpy as np

from . import mathfuncs as mf
from . import reduce as rd
from .config import kernel


@kernel
def softmax(x, out, log):
    """out = softmax(x) (or log_softmax when ``log``) along axis 1 of C-contiguous 3-D arrays."""
    A, R, B = x.shape
    if B == 1:  # along contiguous rows (the last axis): each exp computed once
        rows, outs = x.reshape((A, R)), out.reshape((A, R))
        for a in range(A):
            row, o = rows[a], outs[a]
            m = rd.row_extreme(row, True)
            if m == -np.inf:
                m = x.dtype.type(0)
            s = 0.0
            if log:
                for r in range(R):
                    s += mf.exp(row[r] - m)
                lse = m + np.log(s)
                for r in range(R):
                    o[r] = row[r] - lse
            else:
                for r in range(R):
                    e = mf.exp(row[r] - m)
                    o[r] = e
                    s += e
                inv = 1.0 / s
                for r in range(R):
                    o[r] = o[r] * inv
        return
    for a in range(A):
        for b in range(B):
            m = x[a, 0, b]
            for r in range(1, R):
                v = x[a, r, b]
                if v > m or v != v:
                    m = v
            if m == -np.inf:
                m = x.dtype.type(0)
            s = 0.0
            for r in range(R):
                s += mf.exp(x[a, r, b] - m)
            if log:
                lse = m + np.log(s)
                for r in range(R):
                    out[a, r, b] = x[a, r, b] - lse
            else:
                inv = 1.0 / s
                for r in range(R):
                    out[a, r, b] = mf.exp(x[a, r, b] - m) * inv
