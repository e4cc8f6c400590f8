"""Matrix products through BLAS (``np.dot`` inside njit needs SciPy).

Operands are C- or F-contiguous 2-D float32/float64 arrays of one dtype;
``out`` is C-contiguous. Integer matrices take the plain-loop kernel.
"""
import numpy as np

from .config import kernel


@kernel
def mm(a, b, out):
    """out = a @ b."""
    np.dot(a, b, out)


@kernel
def bmm(a, b, out):
    """out[i] = a[i] @ b[i] over 3-D operands whose matrices are contiguous."""
    for i in range(out.shape[0]):
        np.dot(a[i], b[i], out[i])


@kernel
def mm_loop(a, b, out):
    """out = a @ b for integer dtypes (no BLAS)."""
    n, k = a.shape
    m = b.shape[1]
    for i in range(n):
        for j in range(m):
            out[i, j] = 0
        for p in range(k):
            v = a[i, p]
            for j in range(m):
                out[i, j] += v * b[p, j]
