"""Special functions that ``mathfuncs`` does not cover."""
import math

from .config import kernel


@kernel
def erf(x, out):
    """out = erf(x) over 1-D arrays of one float dtype (libm's erf)."""
    for i in range(x.shape[0]):
        out[i] = math.erf(x[i])
