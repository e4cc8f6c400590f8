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
    """Seed the global generator so random ops repeat exactly; returns it (a ``Generator``)."""
    global _rng
    _rng = np.random.Generator(np.random.PCG64(int(seed)))
    g = Generator.__new__(Generator)
    g._rng = _rng
    return g


def _gen(generator):
    return _rng if generator is None else generator._rng


def _random(draw, size, dtype, requires_grad, device, generator):
    _check_device(device)
    d = dt.to_dtype(dtype) if dtype is not None else dt.get_default_dtype()
    _require_grad_ok(d, requires_grad)
    arr = draw(_gen(generator), _shape_arg(size), d.np)
    # (np.array, not ascontiguousarray, which makes a 0-d draw 1-d)
    return Tensor._make(np.array(arr, dtype=d.np, order="C"), requires_grad)


def _size(size, keywords, fn):
    """``size`` given positionally (``randn(2, 3)``) or as ``size=`` (``randn(size=(2, 3))``)."""
    given = keywords.pop("size", None)
    if keywords:
        raise TypeError(f"{fn}() got an unexpected keyword argument '{next(iter(keywords))}'")
    if given is not None:
        if size:
            raise TypeError(f"{fn}() got multiple values for argument 'size'")
        return (given,)
    return size


def _float_draw(fn):
    def draw(g, shape, np_dtype):
        if np_dtype.kind != "f":
            raise RuntimeError(f"\"{fn}\" not implemented for '{np_dtype.name}'")
        return getattr(g, fn)(shape, dtype=np_dtype)
    return draw


def rand(*size, generator=None, dtype=None, device=None, requires_grad=False, **kwargs):
    """Uniform samples on [0, 1)."""
    return _random(_float_draw("random"), _size(size, kwargs, "rand"), dtype, requires_grad,
                   device, generator)


def randn(*size, generator=None, dtype=None, device=None, requires_grad=False, **kwargs):
    """Standard normal samples."""
    return _random(_float_draw("standard_normal"), _size(size, kwargs, "randn"), dtype,
                   requires_grad, device, generator)


def multinomial(input, num_samples, replacement=False, *, generator=None):
    """Indices drawn from the categorical distributions in the rows of ``input``
    (non-negative weights, not necessarily normalised), as ``torch.multinomial``: with
    ``replacement`` each draw is independent; without, each row's draws are distinct
    (by exponential keys ``E / p``, smallest first, as PyTorch samples them, so an
    all-zero weight is drawn only once the others are used up)."""
    if not input.dtype.is_floating_point:
        raise RuntimeError("multinomial only supports floating-point dtypes for input, got: "
                           f"{input.dtype.name.capitalize().replace('Int64', 'Long')}")
    if input.ndim not in (1, 2):
        raise RuntimeError("prob_dist must be 1 or 2 dim")
    if num_samples <= 0:
        raise RuntimeError("cannot sample n_sample <= 0 samples")
    p = np.asarray(input.detach().numpy(), np.float64)
    rows = p.reshape(-1, p.shape[-1])
    if not replacement and num_samples > rows.shape[1]:
        raise RuntimeError("cannot sample n_sample > prob_dist.size(-1) samples without "
                           "replacement")
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
    totals = rows.sum(1)
    if (totals <= 0).any():
        raise RuntimeError("invalid multinomial distribution (sum of probabilities <= 0)")
    g = _gen(generator)
    if replacement:
        cdf = np.cumsum(rows / totals[:, None], 1)
        draws = g.random((rows.shape[0], num_samples))
        out = np.stack([np.minimum(np.searchsorted(c, u, side="right"), len(c) - 1)
                        for c, u in zip(cdf, draws)])
    else:
        with np.errstate(divide="ignore"):
            keys = g.exponential(size=rows.shape) / rows
        out = np.argsort(keys, 1, kind="stable")[:, :num_samples]
    return Tensor._make(out.reshape(p.shape[:-1] + (num_samples,)).astype(np.int64))


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
