"""Shared read-only arrays."""
import numpy as np

_ONES = {}


def shared_ones(shape, dtype):
    """A read-only array of ones (the implicit gradient of a scalar output), shared."""
    ones = _ONES.get((shape, dtype))
    if ones is None:
        if len(_ONES) > 64:
            _ONES.clear()
        ones = _ONES[(shape, dtype)] = np.ones(shape, dtype)
        ones.flags.writeable = False
    return ones
