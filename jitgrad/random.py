"""Random tensors from one global generator, seeded by ``manual_seed``.

jitgrad draws from numpy's PCG64: the same seed gives the same numbers run
after run, but not the same numbers as PyTorch's Mersenne Twister.
"""
import numpy as np

from . import dtypes as dt
from .tensor import Tensor, _check_device, _require_grad_ok, _shape_arg

_rng = np.random.Generator(np.random.PCG64())


class Generator:
    """A seeded source of random numbers (``torch.Generator``)."""

    def __init__(self, device="cpu"):
        self._rng = np.random.Generator(np.random.PCG64())

    def manual_seed(self, seed):
        self._rng = np.random.Generator(np.random.PCG64(int(seed)))
        return self


def manual_seed(seed):
    """Seed the global generator so random ops repeat exactly."""
    global _rng
    _rng = np.random.Generator(np.random.PCG64(int(seed)))


def _gen(generator):
    return _rng if generator is None else generator._rng


def _random(draw, size, dtype, requires_grad, device, generator):
    _check_device(device)
    d = dt.to_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    _require_grad_ok(d, requires_grad)
    arr = draw(_gen(generator), _shape_arg(size), d.np)
    return Tensor._make(np.ascontiguousarray(arr, dtype=d.np), requires_grad)


def _float_draw(fn):
    def draw(g, shape, np_dtype):
        if np_dtype.kind != "f":
            raise RuntimeError(f"\"{fn}\" not implemented for '{np_dtype.name}'")
        return getattr(g, fn)(shape, dtype=np_dtype)
    return draw


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Uniform samples on [0, 1)."""
    return _random(_float_draw("random"), size, dtype, requires_grad, device, generator)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False):
    """Standard normal samples."""
    return _random(_float_draw("standard_normal"), size, dtype, requires_grad, device, generator)


def randint(low, high=None, size=None, generator=None, dtype=None, device=None,
            requires_grad=False):
    """Integers uniform on [low, high) (``randint(high, size)`` starts at 0)."""
    if size is None:
        low, high, size = 0, low, high
    if high is None or size is None:
        raise TypeError("randint() missing required arguments: 'high' and 'size'")
    if low >= high:
        raise RuntimeError(f"random_ expects 'from' to be less than 'to', but got from={low} "
                           f">= to={high}")
    d = dt.to_dtype(dtype) if dtype is not None else dt.int64
    return _random(lambda g, shape, npd: g.integers(low, high, shape).astype(npd),
                   (tuple(size),), d, requires_grad, device, generator)


def randperm(n, generator=None, dtype=None, device=None, requires_grad=False):
    """A random permutation of ``0 .. n-1``."""
    d = dt.to_dtype(dtype) if dtype is not None else dt.int64
    return _random(lambda g, shape, npd: g.permutation(n).astype(npd), (), d,
                   requires_grad, device, generator)


def rand_like(input, dtype=None, requires_grad=False):
    return rand(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def randn_like(input, dtype=None, requires_grad=False):
    return randn(input.shape, dtype=dtype or input.dtype, requires_grad=requires_grad)


def randint_like(input, low, high=None, dtype=None):
    return randint(low, high, input.shape, dtype=dtype or input.dtype)
