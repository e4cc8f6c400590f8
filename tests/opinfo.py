"""The test-side op table: one ``OpInfo`` per public op, read by ``test_ops.py``.

An entry's ``op(m, *tensors, **kwargs)`` is written against a module ``m`` that is
either ``jitgrad`` or ``torch`` (they share names), so one callable serves the
jitgrad tests and the PyTorch parity tests. ``ref(*arrays, **kwargs)`` is an
obviously-correct float64 NumPy implementation. ``samples`` draws inputs from the
op's domain with a generator seeded from the entry's name, so every run sees the
same values.

A sample's float arrays become the inputs under test (in the test's dtype, and
requiring grad); its int and bool arrays (indices, masks, conditions) become
constant tensors. ``layouts`` makes an input non-contiguous, built with the
library's own ops on a bigger tensor: ``"T"`` a transposed view, ``"S"`` every
other element of a buffer whose gaps hold NaN (an op that ignores strides reads
them). ``grad=False`` marks a sample at a kink or tie: gradcheck's central
differences are meaningless there, but the PyTorch parity test still compares
the gradients each library picks.

``prims`` lists the ``jitgrad.ops.REGISTRY`` primitives an entry runs, forward
or backward; ``test_ops`` checks each list against a trace and that together they
cover the registry, so a new primitive without an entry here fails.
"""
import dataclasses
import math
import zlib
from typing import Callable

import numpy as np


@dataclasses.dataclass
class Sample:
    args: tuple
    kwargs: dict
    name: str
    layouts: tuple = ()
    dtypes: dict = dataclasses.field(default_factory=dict)  # arg position -> dtype name
    out_dtype: object = None  # overrides the entry's
    grad: bool = True

    def layout(self, i):
        return self.layouts[i] if i < len(self.layouts) else None


@dataclasses.dataclass
class OpInfo:
    name: str
    op: Callable
    ref: Callable
    samples: list
    prims: tuple
    differentiable: bool = True
    gradgrad: bool = True
    # "same" (the dtype the test runs in), a dtype name, or a tuple of these per output
    out_dtype: object = "same"
    tol32: tuple = (1e-5, 1e-6)  # (rtol, atol)
    tol64: tuple = (1e-12, 1e-12)
    # False where jitgrad documents that its grad_fn is that of the ops it composes
    torch_grad_fn: bool = True
    # prims that only run in lazy mode (not seen by the eager trace; still count as covered)
    lazy_prims: tuple = ()

    def out_dtypes(self, sample, dtype, n):
        spec = sample.out_dtype or self.out_dtype
        spec = spec if isinstance(spec, tuple) else (spec,) * n
        return tuple(dtype if s == "same" else s for s in spec)


# --- input domains --------------------------------------------------------------

def _arr(x):
    return np.asarray(x, dtype=np.float64)


def real(rng, shape):
    return _arr(rng.uniform(-2, 2, shape))


def pos(rng, shape):
    return _arr(rng.uniform(0.5, 2, shape))


def away(rng, shape, margin=0.2):
    """Values at least ``margin`` from 0 (kinks, poles)."""
    return _arr(rng.choice([-1, 1], shape) * rng.uniform(margin, 2, shape))


def distinct(rng, shape):
    """Values at least 0.2 apart, so max/min/argmax have no ties."""
    n = int(np.prod(shape))
    v = (rng.permutation(n) - n / 2) * 0.3 + rng.uniform(-0.05, 0.05, n)
    return _arr(v.reshape(shape))


def grid(rng, shape):
    """Small integers as floats, so comparisons see equal elements."""
    return _arr(rng.integers(-1, 2, shape))


def ints(rng, shape, lo=-3, hi=4):
    return np.asarray(rng.integers(lo, hi, shape), dtype=np.int64)


def with_zeros(rng, shape):
    """Values with some exact zeros (every third element)."""
    v = real(rng, shape).ravel()
    v[::3] = 0
    return v.reshape(shape)


def _shape_name(a):
    if a.ndim == 0:
        return "0d"
    return "x".join(map(str, a.shape)) + ("b" if a.dtype == np.bool_ else
                                          "i" if a.dtype.kind == "i" else "")


def _kw_name(k, v):
    return f"{k}={v}".replace(" ", "")


def S(*args, name=None, layouts=(), dtypes=None, out_dtype=None, grad=True, **kwargs):
    """A sample; its name says its shapes, layouts and parameters unless given."""
    args = tuple(np.asarray(a) for a in args)
    if name is None:
        parts = ["_".join(_shape_name(a) + (layouts[i] if i < len(layouts) and layouts[i]
                                            else "") for i, a in enumerate(args))]
        parts += [_kw_name(k, v) for k, v in kwargs.items() if k != "key"]
        name = "-".join(p for p in parts if p)
    return Sample(args, kwargs, name, tuple(layouts), dtypes or {}, out_dtype, grad)


def _rng(name):
    return np.random.default_rng(zlib.crc32(name.encode()))


# --- sample sets ------------------------------------------------------------------

UNARY_SHAPES = [(), (1,), (5,), (2, 3), (3, 1)]
BINARY_SHAPES = [((2, 3), (2, 3)), ((3, 1), (4,)), ((), (2, 3)), ((2, 3), ()), ((), ()),
                 ((1, 3), (2, 1)), ((2, 1, 3), (2, 3))]


def unary(gen, extra=lambda rng: []):
    def make(rng):
        s = [S(gen(rng, shape)) for shape in UNARY_SHAPES]
        s += [S(gen(rng, (2, 3)), layouts=("T",)), S(gen(rng, (2, 3)), layouts=("S",))]
        return s + extra(rng)
    return make


def binary(gen_a, gen_b):
    def make(rng):
        s = [S(gen_a(rng, a), gen_b(rng, b)) for a, b in BINARY_SHAPES]
        return s + [S(gen_a(rng, (2, 3)), gen_b(rng, (2, 3)), layouts=("T", "S"))]
    return make


def promotion(gen_a, gen_b):
    """Mixed-dtype operands: a 0-d float64 tensor does not widen a float32 one (its tier is
    lower), an int tensor takes the float one's dtype, and float32 with float64 gives float64."""
    def make(rng):
        return [S(gen_a(rng, (2, 3)), gen_b(rng, ()), dtypes={1: "float64"}, name="f64_0d"),
                S(gen_a(rng, ()), gen_b(rng, (3,)), dtypes={0: "float64"}, name="0d_f64"),
                S(gen_a(rng, (2, 3)), gen_b(rng, (3,)), dtypes={1: "float64"},
                  out_dtype="float64", name="f64_tensor"),
                S(gen_a(rng, (2, 3)), np.array([1, 2, 3], np.int64), name="int_tensor")]
    return make


def special(*values, **kwargs):
    """Infinities, NaN, overflow: forward only (no finite differences there)."""
    return lambda rng: [S(np.array(values, dtype=np.float64), grad=False, name="special",
                          **kwargs)]


def empty(*shapes, **kwargs):
    return lambda rng: [S(np.zeros(shape), name="-".join(
        ["empty_" + "x".join(map(str, shape))] + [_kw_name(k, v) for k, v in kwargs.items()]),
        **kwargs) for shape in shapes]


def _copy_into(m, x, v):
    """``copy_`` into a non-leaf: x's gradient is cut, v's is summed down to its shape."""
    y = x * 1
    y.copy_(v)
    return y


def both(*makers):
    return lambda rng: [s for mk in makers for s in mk(rng)]


def samples(*items):
    """Fixed samples (the generator ``rng`` is passed to callables)."""
    return lambda rng: [s for it in items for s in (it(rng) if callable(it) else [it])]


# --- references -------------------------------------------------------------------

def _linear_then(act):
    """``Sequential(Linear, act)`` over the given weight and bias (lazy mode records it as
    one op, ``linear_act``)."""
    def op(m, x, w, b):
        linear = m.nn.Linear(w.shape[1], w.shape[0])
        linear._parameters["weight"], linear._parameters["bias"] = w, b
        return m.nn.Sequential(linear, getattr(m.nn, act)())(x)
    return op


def _max_pool_ref(x, kernel_size, stride=None, padding=0, dilation=1, ceil_mode=False,
                  g=None):
    """Max pooling in numpy (float64); with ``g``, its gradient for output gradient ``g``
    (each window's first maximum takes it)."""
    k, s = (kernel_size,) * 2, (stride or kernel_size,) * 2
    p, d = (padding,) * 2, (dilation,) * 2
    batched = x.ndim == 4
    x = x if batched else x[None]
    n, c, h, w = x.shape

    def size(length, i):
        span = length + 2 * p[i] - d[i] * (k[i] - 1) - 1
        out = (-(-span // s[i]) if ceil_mode else span // s[i]) + 1
        return out - 1 if ceil_mode and (out - 1) * s[i] >= length + p[i] else out
    oh, ow = size(h, 0), size(w, 1)
    out, grad = np.empty((n, c, oh, ow)), np.zeros(x.shape)
    gb = None if g is None else (g if batched else g[None])
    for b, ch, oy, ox in np.ndindex(n, c, oh, ow):
        best = None
        for i, j in np.ndindex(*k):
            y, xx = oy * s[0] - p[0] + i * d[0], ox * s[1] - p[1] + j * d[1]
            if 0 <= y < h and 0 <= xx < w and (best is None or x[b, ch, y, xx] > best[0]):
                best = (x[b, ch, y, xx], y, xx)
        out[b, ch, oy, ox] = best[0]
        if gb is not None:
            grad[b, ch, best[1], best[2]] += gb[b, ch, oy, ox]
    result = out if g is None else grad
    return result if batched else result[0]


def _max_pool_backward(m, x, g, **kw):
    """The gradient of max pooling, kept differentiable (its own backward gathers)."""
    x = x if x.requires_grad else x.detach().requires_grad_()
    return m.autograd.grad(m.nn.functional.max_pool2d(x, **kw), x, g, create_graph=True)[0]


def _nll(x, t, reduction="mean"):
    picked = -x[np.arange(len(t)), t]
    return picked.mean() if reduction == "mean" else picked.sum()


def _mse(x, t, reduction="mean"):
    sq = (x - t) ** 2
    return sq if reduction == "none" else (sq.sum() if reduction == "sum" else sq.mean())


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def _lse(x, dim, keepdim=False):
    m = np.max(x, axis=dim, keepdims=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf slice gives -inf, not nan
    out = m + np.log(np.sum(np.exp(x - m), axis=dim, keepdims=True))
    return out if keepdim else np.squeeze(out, axis=dim)


def _softmax(x, dim):
    e = np.exp(x - np.max(x, axis=dim, keepdims=True))
    return e / np.sum(e, axis=dim, keepdims=True)


def _log_softmax(x, dim):
    return x - _lse(x, dim, keepdim=True)


def _red(np_fn):
    """A reduction reference; on a 0-d input, dim 0 or -1 is the input itself."""
    return lambda x, dim=None, keepdim=False: (
        x.copy() if x.ndim == 0 and dim is not None else np_fn(x, axis=dim, keepdims=keepdim))


def _mred(m_name):
    """A reduction call in both libraries; ``dim=None`` means over everything."""
    return lambda m, x, dim=None, keepdim=False: (
        getattr(m, m_name)(x) if dim is None else getattr(m, m_name)(x, dim, keepdim=keepdim))


class Idx:
    """In an index key: the ``i``-th index tensor that follows the indexed input."""

    def __init__(self, i):
        self.i = i


def _key(key, idx):
    return tuple(idx[k.i] if isinstance(k, Idx) else k for k in key)


def _setitem(x, key, value, idx):
    y = x.clone() if hasattr(x, "clone") else x.copy()
    y[_key(key, idx)] = value
    return y


def _pair(v):
    return tuple(v) if isinstance(v, (tuple, list)) else (v, v)


def _conv2d_ref(x, w, b=None, stride=1, padding=0, dilation=1, groups=1):
    """Cross-correlation as a sum over kernel taps of strided input slices."""
    unbatched = x.ndim == 3
    x = x[None] if unbatched else x
    (s0, s1), (p0, p1), (d0, d1) = _pair(stride), _pair(padding), _pair(dilation)
    x = np.pad(x, ((0, 0), (0, 0), (p0, p0), (p1, p1)))
    n, _, h, wd = x.shape
    o, cg, kh, kw = w.shape
    oh, ow = (h - d0 * (kh - 1) - 1) // s0 + 1, (wd - d1 * (kw - 1) - 1) // s1 + 1
    og = o // groups
    out = np.zeros((n, o, oh, ow))
    for g in range(groups):
        for i in range(kh):
            for j in range(kw):
                patch = x[:, g * cg:(g + 1) * cg, i * d0:i * d0 + s0 * (oh - 1) + 1:s0,
                          j * d1:j * d1 + s1 * (ow - 1) + 1:s1]
                out[:, g * og:(g + 1) * og] += np.einsum(
                    "ncyx,oc->noyx", patch, w[g * og:(g + 1) * og, :, i, j])
    if b is not None:
        out = out + b[None, :, None, None]
    return out[0] if unbatched else out


_erf = np.vectorize(math.erf, otypes=[np.float64])


def _gelu_ref(x, approximate="none"):
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / math.sqrt(2)))


def _var_op(name):
    def op(m, x, dim=None, keepdim=False, correction=None, unbiased=None):
        fn = getattr(m, name)
        if unbiased is not None:
            return fn(x, dim, unbiased, keepdim)
        if correction is not None:
            return fn(x, dim, keepdim=keepdim, correction=correction)
        return fn(x) if dim is None else fn(x, dim, keepdim=keepdim)
    return op


def _var_ref(sqrt):
    def ref(x, dim=None, keepdim=False, correction=None, unbiased=None):
        ddof = (1 if unbiased else 0) if unbiased is not None else (
            1 if correction is None else correction)
        v = np.var(x, axis=dim, ddof=ddof, keepdims=keepdim)
        return np.sqrt(v) if sqrt else v
    return ref


def _max_dim_ref(np_fn, np_arg):
    def ref(x, dim, keepdim=False):
        return (np_fn(x, axis=dim, keepdims=keepdim),
                np.expand_dims(np_arg(x, axis=dim), dim) if keepdim else np_arg(x, axis=dim))
    return ref


def _arg_ref(np_arg):
    def ref(x, dim=None, keepdim=False):
        if dim is None:
            r = np.asarray(np_arg(x))
            return r.reshape((1,) * x.ndim) if keepdim else r
        r = np_arg(x, axis=dim)
        return np.expand_dims(r, dim) if keepdim else r
    return ref


def _arg_op(name):
    return lambda m, x, dim=None, keepdim=False: getattr(m, name)(x, dim, keepdim)


def _allany_op(name):
    return lambda m, x, dim=None, keepdim=False: (
        getattr(m, name)(x) if dim is None else getattr(m, name)(x, dim, keepdim))


def _allany_ref(np_fn):
    return lambda x, dim=None, keepdim=False: np_fn(x != 0, axis=dim, keepdims=keepdim)


def _split_ref(x, split, dim=0, pick=None):
    n = x.shape[dim]
    sizes = list(split) if isinstance(split, (list, tuple)) else [
        min(split, n - i) for i in range(0, n, split)]
    parts = np.split(x, np.cumsum(sizes)[:-1], axis=dim)
    return parts if pick is None else parts[pick]


def _chunk_ref(x, chunks, dim=0, pick=None):
    return _split_ref(x, max(1, -(-x.shape[dim] // chunks)), dim, pick)


def _unbind_ref(x, dim=0, pick=None):
    parts = [np.take(x, i, axis=dim) for i in range(x.shape[dim])]
    return parts if pick is None else parts[pick]


def _pick(parts, pick):
    return tuple(parts) if pick is None else parts[pick]


def _mat_samples(pairs, layouts=()):
    def make(rng):
        out = [S(real(rng, a), real(rng, b)) for a, b in pairs]
        out += [S(real(rng, a), real(rng, b), layouts=lay) for (a, b), lay in layouts]
        return out
    return make


def _away_from(rng, shape, points, margin=0.1):
    """Values in [-2, 2] at least ``margin`` from each of ``points``."""
    v = rng.uniform(-2, 2, int(np.prod(shape)))
    for _ in range(100):
        bad = np.min([np.abs(v - p) for p in points], axis=0) < margin
        if not bad.any():
            break
        v[bad] = rng.uniform(-2, 2, bad.sum())
    return _arr(v.reshape(shape))


def _quotients(rng, shape, b):
    """Dividends whose quotient by ``b`` is at least 0.1 from an integer (no rounding flips)."""
    q = rng.integers(-3, 3, shape) + rng.uniform(0.1, 0.9, shape)
    return _arr(q * b)


def _cmp_samples(rng):
    return [S(grid(rng, (2, 3)), grid(rng, (2, 3))),
            S(grid(rng, (3, 1)), grid(rng, (4,))),
            S(grid(rng, ()), grid(rng, (2, 3))),
            S(grid(rng, (2, 3)), grid(rng, (2, 3)), layouts=("T", "S")),
            S(grid(rng, (2, 3)), other=0.0),
            S(grid(rng, (2, 3)), other=1),
            S(ints(rng, (2, 3), -1, 2), ints(rng, (3,), -1, 2)),
            S(grid(rng, (2, 3)), ints(rng, (3,), -1, 2))]


def _cmp_op(name):
    return lambda m, x, *y, other=None: getattr(m, name)(x, y[0] if y else other)


def _cmp_ref(np_fn):
    return lambda x, *y, other=None: np_fn(x, y[0] if y else other)


def _logic_samples(rng):
    def b(shape):
        return rng.integers(0, 2, shape).astype(bool)
    return [S(b((2, 3)), b((2, 3))), S(b((3, 1)), b((4,))), S(b(()), b((2, 3))),
            S(with_zeros(rng, (2, 3)), with_zeros(rng, (2, 3))),
            S(with_zeros(rng, (2, 3)), b((3,)), out_dtype="bool")]


def _to_samples(rng):
    return [S(real(rng, (2, 3)), dtype="float64", out_dtype="float64"),
            S(real(rng, ()), dtype="float64", out_dtype="float64"),
            S(real(rng, (2, 3)), dtype="float64", layouts=("T",), out_dtype="float64"),
            # float32 outputs are too coarse for central differences in float64
            S(real(rng, (2, 3)), dtype="float32", out_dtype="float32", grad=False),
            S(_away_from(rng, (2, 3), np.arange(-2, 3)), dtype="int64", out_dtype="int64",
              grad=False),
            S(with_zeros(rng, (2, 3)), dtype="bool", out_dtype="bool", grad=False)]


def _to_ref(x, dtype):
    if dtype == "int64":
        return np.trunc(x).astype(np.int64)
    return x.astype(dtype)


def _getitem_basic(rng):
    x = lambda *shape: real(rng, shape)  # noqa: E731
    return [S(x(3, 4), key=(1,), name="int"),
            S(x(3, 4), key=(-1, slice(1, 3)), name="negint_slice"),
            S(x(3, 4), key=(slice(None), slice(None, None, 2)), name="step"),
            S(x(3, 4), key=(None, 1), name="none_int"),
            S(x(3, 4), key=(Ellipsis, 0), name="ellipsis_int"),
            S(x(3, 4), key=(slice(1, 2), None, slice(None)), name="slice_none"),
            S(x(3, 4), key=(Ellipsis,), name="ellipsis"),
            S(x(4), key=(2,), name="to_0d"),
            S(x(), key=(None,), name="0d_none"),
            S(x(), key=(Ellipsis,), name="0d_ellipsis"),
            S(x(2, 1, 3), key=(slice(None), 0, slice(1, None)), name="size1_dim"),
            S(x(3, 4), key=(slice(None), 1), layouts=("T",), name="T_col"),
            S(x(3, 4), key=(slice(0, 3, 2), slice(1, 3)), layouts=("S",), name="S_slices")]


def _getitem_advanced(rng):
    x = lambda *shape: real(rng, shape)  # noqa: E731
    i = lambda *v: np.array(v, np.int64)  # noqa: E731
    return [S(x(3, 4), i(0, 2, 2), key=(Idx(0),), name="repeated"),
            S(x(3, 4), i(-1, 0), key=(Idx(0),), name="negative"),
            S(x(3, 4), i(0, 1, 2), i(3, 3, 0), key=(Idx(0), Idx(1)), name="pair"),
            S(x(3, 4), np.array([[0, 1], [3, 3]]), key=(slice(None), Idx(0)), name="slice_2d"),
            S(x(3, 4), i(2, 0), key=(Idx(0), slice(1, 3)), name="idx_slice"),
            S(x(3, 4), i(0, 2), key=(1, Idx(0)), name="int_idx"),
            S(x(2, 3, 2), i(1, 0, 1), i(1), key=(slice(None), Idx(0), Idx(1)),
              name="broadcast_pair"),
            S(x(3, 4), i(1, 2), key=(Idx(0),), layouts=("T",), name="T")]


def _getitem_bool(rng):
    x = lambda *shape: real(rng, shape)  # noqa: E731
    b = lambda *shape: rng.integers(0, 2, shape).astype(bool)  # noqa: E731
    return [S(x(3, 4), b(3, 4), key=(Idx(0),), name="full_mask"),
            S(x(3, 4), np.array([True, False, True]), key=(Idx(0),), name="dim0_mask"),
            S(x(3, 4), np.array([False, True, True, False]), key=(slice(None), Idx(0)),
              name="dim1_mask"),
            S(x(3, 4), np.zeros((3, 4), bool), key=(Idx(0),), name="empty_mask"),
            S(x(2, 3), b(2, 3), key=(Idx(0),), layouts=("S",), name="S_mask")]


def _setitem_samples(rng):
    x = lambda *shape: real(rng, shape)  # noqa: E731
    i = lambda *v: np.array(v, np.int64)  # noqa: E731
    mask = np.array([[True, False, True, False], [False, False, True, True],
                     [True, False, False, False]])
    return [S(x(3, 4), x(2, 4), key=(slice(1, 3),), name="rows"),
            S(x(3, 4), x(4), key=(slice(1, 3),), name="rows_broadcast"),
            S(x(3, 4), x(3), key=(slice(None), 1), name="column"),
            S(x(3, 4), x(), key=(0,), name="row_from_0d"),
            S(x(3, 4), x(2, 2), key=(slice(0, 3, 2), slice(1, 3)), name="strided_block"),
            S(x(3, 4), x(4), key=(Ellipsis,), name="everything_broadcast"),
            S(x(3, 4), x(2, 4), i(2, 0), key=(Idx(0),), name="adv_rows"),
            S(x(3, 4), x(2), i(0, 2), i(1, 3), key=(Idx(0), Idx(1)), name="adv_pair"),
            S(x(3, 4), x(5), mask, key=(Idx(0),), name="bool_mask"),
            S(x(3, 4), x(2, 2), key=(slice(0, 2), slice(1, 3)), layouts=("T",), name="T")]


def _setitem_scalar_samples(rng):
    x = lambda *shape: real(rng, shape)  # noqa: E731
    return [S(x(3, 4), key=(0,), value=2.5, name="row"),
            S(x(3, 4), key=(slice(None), slice(1, None, 2)), value=-1.0, name="strided"),
            S(x(3, 4), np.array([2, 0], np.int64), key=(Idx(0),), value=0.5, name="adv"),
            S(x(3, 4), real(rng, (3, 4)) > 0, key=(Idx(0),), value=0.0, name="bool_mask")]


def _matmul_pairs():
    return [((3,), (3,)), ((2, 3), (3,)), ((3,), (3, 2)), ((2, 3), (3, 2)),
            ((2, 2, 3), (3, 2)), ((2, 2, 3), (3,)), ((3,), (2, 3, 2)), ((2, 2, 3), (2, 3, 2)),
            ((2, 1, 2, 3), (3, 3, 2)), ((1, 2, 3), (2, 3, 1)), ((2, 3), (2, 3, 2)),
            ((1, 1), (1, 1))]


# --- the table ---------------------------------------------------------------------

def _entries():
    e = []

    def add(name, op, ref, make, prims, **kw):
        e.append(OpInfo(name, op, ref, make(_rng(name)), tuple(prims), **kw))

    # -- unary
    def kinks(rng):
        return [S(np.array([-1.0, 0.0, 1.5, 0.0]), grad=False, name="zeros")]

    def int_in(out):
        return lambda rng: [S(ints(rng, (4,), 0, 4), out_dtype=out, name="int")]

    inf, nan = np.inf, np.nan
    add("neg", lambda m, x: m.neg(x), np.negative,
        unary(real, both(int_in("int64"), empty((0,), (2, 0)))), ["neg"])
    add("exp", lambda m, x: m.exp(x), np.exp,
        unary(real, both(int_in("float32"), special(-inf, -1000, 0, 80, 100, 1000, inf, nan),
                         empty((0,)))), ["exp", "to_copy"])
    add("log", lambda m, x: m.log(x), np.log,
        unary(pos, special(0, -0.0, -1, 1e-30, inf, nan)), ["log", "div"])
    add("sqrt", lambda m, x: m.sqrt(x), np.sqrt,
        unary(pos, both(int_in("float32"), special(0, -1, inf, nan))), ["sqrt"])
    add("sin", lambda m, x: m.sin(x), np.sin, unary(real, special(0, 1e4, inf, nan)),
        ["sin", "cos"])
    add("cos", lambda m, x: m.cos(x), np.cos, unary(real, special(0, 1e4, inf, nan)),
        ["cos", "sin"])
    add("tanh", lambda m, x: m.tanh(x), np.tanh,
        unary(real, special(-50, 50, -inf, inf, nan, 1e-30)), ["tanh", "tanh_backward"])
    add("sigmoid", lambda m, x: m.sigmoid(x), _sigmoid,
        unary(real, special(-100, 100, -1000, -inf, inf, nan)), ["sigmoid", "sigmoid_backward"])
    add("relu", lambda m, x: m.relu(x), lambda x: np.maximum(x, 0),
        unary(away, both(kinks, int_in("int64"), special(-inf, inf, nan))),
        ["relu", "threshold_backward"])
    add("abs", lambda m, x: m.abs(x), np.abs, unary(away, both(kinks, int_in("int64"))),
        ["abs", "sign"])
    add("sign", lambda m, x: m.sign(x), np.sign, unary(away, both(kinks, int_in("int64"))),
        ["sign"])
    add("reciprocal", lambda m, x: m.reciprocal(x), lambda x: 1 / x,
        unary(away, special(0.0, -0.0, inf, -inf, nan)), ["reciprocal"])
    add("rsqrt", lambda m, x: m.rsqrt(x), lambda x: 1 / np.sqrt(x), unary(pos), ["rsqrt"])
    add("square", lambda m, x: m.square(x), lambda x: x * x, unary(real), ["pow_scalar"])

    # -- binary arithmetic
    add("add", lambda m, x, y, alpha=1: m.add(x, y, alpha=alpha),
        lambda x, y, alpha=1: x + alpha * y,
        both(binary(real, real), promotion(real, real),
             samples(lambda rng: [S(real(rng, (2, 3)), real(rng, (3,)), alpha=2)])),
        ["add", "mul"])
    add("add_scalar", lambda m, x: x + 2.5, lambda x: x + 2.5, unary(real), ["add"])
    add("sub", lambda m, x, y, alpha=1: m.sub(x, y, alpha=alpha),
        lambda x, y, alpha=1: x - alpha * y,
        both(binary(real, real), promotion(real, real),
             samples(lambda rng: [S(real(rng, (2, 3)), real(rng, (3,)), alpha=0.5)])),
        ["sub", "neg"])
    add("rsub", lambda m, x: 2.5 - x, lambda x: 2.5 - x, unary(real), ["rsub"])
    add("mul", lambda m, x, y: m.mul(x, y), np.multiply,
        both(binary(real, real), promotion(real, real)), ["mul"])
    add("mul_scalar", lambda m, x: x * 3, lambda x: x * 3, unary(real), ["mul"])
    add("div", lambda m, x, y: m.div(x, y), np.divide,
        both(binary(real, away), promotion(real, away),
             samples(lambda rng: [S(ints(rng, (2, 3)), np.array([1, -2, 4]), out_dtype="float32",
                                    name="int_int")])),
        ["div", "mul", "neg"])
    add("div_floor", lambda m, x, y: m.div(x, y, rounding_mode="floor"), np.floor_divide,
        binary(real, away), ["div_floor", "mul"])
    add("copy_", _copy_into, lambda x, v: np.broadcast_to(v, x.shape) + 0 * x,
        samples(lambda rng: [S(real(rng, (2, 3)), real(rng, (2, 3))),
                             S(real(rng, (2, 3)), real(rng, (3,)), name="broadcast"),
                             S(real(rng, (2, 3)), real(rng, (2, 3)), layouts=("T", "S"))]),
        ["overwrite", "mul"])
    add("rdiv", lambda m, x: 2.0 / x, lambda x: 2.0 / x, unary(away), ["reciprocal", "mul"])
    add("pow", lambda m, x, y: m.pow(x, y), np.power,
        both(binary(pos, real), promotion(pos, real)), ["pow", "log", "where", "mul"],
        tol32=(2e-5, 1e-6))
    add("pow_scalar", lambda m, x, exponent: x ** exponent, lambda x, exponent: x ** exponent,
        samples(*[lambda rng, e=e, g=g: [S(g(rng, (2, 3)), exponent=e),
                                          S(g(rng, ()), exponent=e),
                                          S(g(rng, (2, 3)), exponent=e, layouts=("T",))]
                  for e, g in [(2, real), (3, real), (0.5, pos), (-1.5, pos), (0, real),
                               (1, real), (-2, away), (2.5, pos)]],
                lambda rng: [S(ints(rng, (2, 3)), exponent=2, out_dtype="int64", name="int")]),
        ["pow_scalar", "mul"])
    add("rpow", lambda m, x, base: base ** x, lambda x, base: np.power(base, x),
        samples(*[lambda rng, b=b: [S(real(rng, (2, 3)), base=b), S(real(rng, ()), base=b),
                                    S(real(rng, (2, 3)), base=b, layouts=("S",))]
                  for b in (2.0, 0.5, math.e)]),
        ["rpow"])

    def ties(rng):
        x = grid(rng, (2, 3))
        return [S(x, np.where(rng.uniform(size=(2, 3)) < 0.5, x, -x), grad=False,
                  name="ties"),
                S(np.array([nan, 1.0, nan, -inf]), np.array([0.0, nan, nan, 2.0]), grad=False,
                  name="nan")]

    def shifted(rng, shape):  # paired with ``distinct``: never within 0.05 of its values
        return distinct(rng, shape) + 0.13

    for name, np_fn in (("maximum", np.maximum), ("minimum", np.minimum)):
        add(name, lambda m, x, y, name=name: getattr(m, name)(x, y), np_fn,
            both(binary(distinct, shifted), ties, promotion(distinct, shifted)),
            [name, "where", "lt" if name == "maximum" else "gt", "eq", "div"])

    # -- where, clamp, masked_fill
    def bmask(rng, shape):
        return rng.uniform(size=shape) < 0.5

    add("where", lambda m, c, x, y: m.where(c, x, y), np.where,
        samples(lambda rng: [S(bmask(rng, (2, 3)), real(rng, (2, 3)), real(rng, (2, 3))),
                             S(bmask(rng, (3, 1)), real(rng, (4,)), real(rng, ())),
                             S(bmask(rng, ()), real(rng, (2, 3)), real(rng, (3,))),
                             S(bmask(rng, (2, 3)), real(rng, (1, 3)), real(rng, (2, 1))),
                             S(bmask(rng, (2, 3)), real(rng, (2, 3)), real(rng, (2, 3)),
                               layouts=(None, "T", "S")),
                             S(bmask(rng, (2, 3)), real(rng, (2, 3)), real(rng, ()),
                               dtypes={2: "float64"}, name="f64_0d")]),
        ["where"])
    add("where_scalar", lambda m, c, x: m.where(c, x, 0.0), lambda c, x: np.where(c, x, 0.0),
        samples(lambda rng: [S(bmask(rng, (2, 3)), real(rng, (2, 3))),
                             S(bmask(rng, (3, 1)), real(rng, (4,)))]),
        ["where"])

    def clamp_samples(rng):
        out = []
        for kw in ({"min": -0.5, "max": 0.5}, {"min": -0.5}, {"max": 0.5}):
            for shape in ((2, 3), (), (5,)):
                out.append(S(_away_from(rng, shape, [-0.5, 0.5]), **kw))
            out.append(S(_away_from(rng, (2, 3), [-0.5, 0.5]), layouts=("T",), **kw))
        out.append(S(np.array([-0.5, 0.5, 0.0, 1.0]), min=-0.5, max=0.5, grad=False,
                     name="at_bounds"))
        out.append(S(np.array([np.nan, -np.inf, np.inf]), min=-0.5, max=0.5, grad=False,
                     name="special"))
        return out

    add("clamp", lambda m, x, **kw: m.clamp(x, **kw), lambda x, min=None, max=None:
        np.clip(x, min, max), clamp_samples, ["clamp", "where", "ge", "le", "logical_and"])

    def clamp_t_samples(rng):
        x = _arr(rng.choice([-1.5, -1.2, -0.3, 0.0, 0.4, 1.2, 1.6], (3, 4)))
        lo, hi = _arr(rng.uniform(-1, -0.6, (3, 1))), _arr(rng.uniform(0.6, 1, (4,)))
        return [S(x, lo, hi, name="both"), S(x[0], lo[0], hi[:1], name="1d")]

    add("clamp_tensor", lambda m, x, lo, hi: m.clamp(x, min=lo, max=hi),
        lambda x, lo, hi: np.minimum(np.maximum(x, lo), hi), clamp_t_samples,
        ["clamp_tensor"])
    add("masked_fill", lambda m, x, mask, value: m.masked_fill(x, mask, value),
        lambda x, mask, value: np.where(mask, value, x),
        samples(lambda rng: [S(real(rng, (2, 3)), bmask(rng, (2, 3)), value=2.5),
                             S(real(rng, (3, 4)), bmask(rng, (4,)), value=-1.0),
                             S(real(rng, (3, 4)), bmask(rng, (3, 1)), value=0),
                             S(real(rng, ()), np.array(True), value=1.5),
                             S(real(rng, (2, 3)), bmask(rng, (2, 3)), value=2.5,
                               layouts=("T",))]),
        ["where"])

    # -- reductions
    def red_samples(gen, tuples=True):
        def make(rng):
            s = [S(gen(rng, (3, 4))), S(gen(rng, (3, 4)), dim=0), S(gen(rng, (3, 4)), dim=-1,
                                                                     keepdim=True),
                 S(gen(rng, ())), S(gen(rng, ()), dim=0), S(gen(rng, (1,)), dim=0),
                 S(gen(rng, (2, 1, 3)), dim=1), S(gen(rng, (3, 4)), dim=1, layouts=("T",)),
                 S(gen(rng, (2, 3)), layouts=("S",))]
            if tuples:
                s += [S(gen(rng, (2, 3, 2)), dim=(0, 2)), S(gen(rng, (2, 3, 2)), dim=(-1, 0),
                                                            keepdim=True)]
            return s
        return make

    add("sum", _mred("sum"), _red(np.sum),
        both(red_samples(real), empty((0, 3)), empty((0, 3), dim=0), empty((2, 0), dim=1),
             samples(lambda rng: [S(ints(rng, (2, 3)), out_dtype="int64", name="int"),
                                  S(ints(rng, (2, 3)) > 0, out_dtype="int64", name="bool")])),
        ["sum", "expand", "view"], tol32=(1e-5, 1e-5))
    add("mean", _mred("mean"), _red(np.mean),
        both(red_samples(real), empty((0, 3), dim=0), empty((0, 3))),
        ["mean", "expand", "view"])

    def prod_samples(rng):
        base = red_samples(real, tuples=False)(rng)
        z = np.array([[0.0, 1.5, -0.7], [0.0, 0.0, 1.3], [1.2, -0.8, 1.1]])
        return base + [S(z, name="zeros"), S(z, dim=1, name="zeros-dim1"),
                       S(z, dim=0, keepdim=True, name="zeros-dim0")]

    add("prod", _mred("prod"), _red(np.prod), prod_samples, ["prod", "where", "permute", "expand"])
    for name, np_fn in (("amax", np.max), ("amin", np.min)):
        def amax_ties(rng):
            x = np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 2.0]])
            return [S(x, grad=False, name="ties"), S(x, dim=1, grad=False, name="ties-dim1"),
                    S(np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]]), dim=1, grad=False,
                      name="nan")]
        add(name, _mred(name), _red(np_fn), both(red_samples(distinct), amax_ties),
            [name, "eq", "to_copy", "sum", "div"])
    for name, np_fn in (("max", np.max), ("min", np.min)):
        add(name, lambda m, x, name=name: getattr(m, name)(x), np_fn,
            samples(lambda rng: [S(distinct(rng, s)) for s in [(3, 4), (), (5,)]],
                    lambda rng: [S(distinct(rng, (2, 3)), layouts=("T",)),
                                 S(np.array([[1.0, 3.0], [3.0, -1.0]]), grad=False, name="ties")]),
            ["amax" if name == "max" else "amin"])
        add(name + "_dim",
            lambda m, x, dim, keepdim=False, name=name: tuple(getattr(m, name)(x, dim, keepdim)),
            _max_dim_ref(np_fn, np.argmax if name == "max" else np.argmin),
            samples(lambda rng: [S(distinct(rng, (3, 4)), dim=1), S(distinct(rng, (3, 4)), dim=0,
                                                                    keepdim=True),
                                 S(distinct(rng, (2, 3, 2)), dim=-1), S(distinct(rng, (4,)), dim=0),
                                 S(distinct(rng, (3, 4)), dim=1, layouts=("T",)),
                                 S(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), dim=1,
                                   grad=False, name="ties")]),
            ["max_dim", "where", "eq", "view"], out_dtype=("same", "int64"))

    def var_samples(rng):
        x = lambda *s: real(rng, s)  # noqa: E731
        return [S(x(3, 4)), S(x(3, 4), dim=1), S(x(3, 4), dim=0, keepdim=True),
                S(x(2, 3, 2), dim=(0, 2)), S(x(3, 4), dim=1, unbiased=False),
                S(x(3, 4), dim=1, correction=0), S(x(3, 4), dim=1, correction=2),
                S(x(5,)), S(x(3, 4), dim=1, layouts=("T",)), S(x(2, 3), layouts=("S",))]

    add("var", _var_op("var"), _var_ref(False), var_samples, ["var", "mean", "sub", "mul"])
    add("std", _var_op("std"), _var_ref(True), var_samples, ["std", "mean", "sub", "div"])
    add("logsumexp", lambda m, x, dim, keepdim=False: m.logsumexp(x, dim, keepdim), _lse,
        samples(lambda rng: [S(real(rng, (3, 4)), dim=1), S(real(rng, (3, 4)), dim=0,
                                                             keepdim=True),
                             S(real(rng, (2, 3, 2)), dim=(0, 2)), S(real(rng, ()), dim=0),
                             S(real(rng, (3, 4)) + 80, dim=1, name="large"),
                             S(np.array([[-np.inf, -np.inf], [0.0, -np.inf]]), dim=1,
                               grad=False, name="neg_inf"),
                             S(real(rng, (3, 4)), dim=-1, layouts=("T",))]),
        ["logsumexp", "exp", "sub"])
    for name, ref in (("softmax", _softmax), ("log_softmax", _log_softmax)):
        add(name, lambda m, x, dim, name=name: getattr(m, name)(x, dim), ref,
            samples(lambda rng: [S(real(rng, (3, 4)), dim=1), S(real(rng, (3, 4)), dim=0),
                                 S(real(rng, (2, 3, 2)), dim=-1), S(real(rng, ()), dim=0),
                                 S(real(rng, (1,)), dim=0),
                                 S(real(rng, (3, 4)) * 30, dim=1, name="large"),
                                 S(np.array([[0.0, -np.inf, 1.0], [2.0, 2.0, -np.inf]]),
                                   dim=1, grad=False, name="neg_inf"),
                                 S(real(rng, (3, 4)), dim=1, layouts=("T",)),
                                 S(real(rng, (2, 3)), dim=0, layouts=("S",))]),
            [name, "sum"])

    def arg_samples(rng):
        return [S(distinct(rng, (3, 4))), S(distinct(rng, (3, 4)), dim=0),
                S(distinct(rng, (3, 4)), dim=1, keepdim=True), S(distinct(rng, ())),
                S(distinct(rng, (3, 4)), keepdim=True), S(distinct(rng, (3, 4)), dim=1,
                                                          layouts=("T",)),
                S(np.array([[1.0, 3.0, 3.0], [2.0, 2.0, 0.0]]), dim=1, name="ties"),
                S(np.array([[1.0, np.nan, 2.0], [0.0, 1.0, 2.0]]), dim=1, name="nan"),
                S(ints(rng, (2, 5)), dim=1, name="int")]

    for name, np_arg in (("argmax", np.argmax), ("argmin", np.argmin)):
        add(name, _arg_op(name), _arg_ref(np_arg), arg_samples, ["argmax"],
            differentiable=False, out_dtype="int64")
    for name, np_fn in (("all", np.all), ("any", np.any)):
        add(name, _allany_op(name), _allany_ref(np_fn),
            samples(lambda rng: [S(with_zeros(rng, (3, 4))), S(with_zeros(rng, (3, 4)), dim=1),
                                 S(with_zeros(rng, (3, 4)), dim=0, keepdim=True),
                                 S(np.array([[1.0, 2.0], [0.0, 0.0]]), dim=1, name="uniform_rows"),
                                 S(np.array([[True, True], [False, True]]), dim=0, name="bool"),
                                 S(real(rng, ())), S(with_zeros(rng, (2, 3)), layouts=("T",))]),
            ["ne", "to_copy", "amin" if name == "all" else "amax", "eq"],
            differentiable=False, out_dtype="bool")

    # -- matrix products
    add("mm", lambda m, a, b: m.mm(a, b), np.matmul,
        _mat_samples([((2, 3), (3, 2)), ((1, 3), (3, 1)), ((3, 1), (1, 2))],
                     [(((2, 3), (3, 2)), ("T", "T")), (((2, 3), (3, 2)), ("S", None))]),
        ["mm", "permute"], tol32=(1e-5, 1e-5))
    add("linear", lambda m, x, w, *b: m.nn.functional.linear(x, w, *b),
        lambda x, w, *b: x @ w.T + (b[0] if b else 0),
        both(_mat_samples([((2, 3), (4, 3)), ((1, 3), (1, 3))],
                          [(((2, 3), (4, 3)), ("T", "S"))]), samples(lambda rng: [
                         S(real(rng, (2, 3)), real(rng, (4, 3)), real(rng, (4,)), name="bias"),
                         S(real(rng, (3, 3)), real(rng, (2, 3)), real(rng, (2,)),
                           name="bias_2")])),
        ["linear"], tol32=(1e-5, 1e-5))
    for act, ref in (("Tanh", np.tanh), ("ReLU", lambda v: np.maximum(v, 0)),
                     ("Sigmoid", _sigmoid)):
        add(f"sequential_linear_{act.lower()}", _linear_then(act),
            lambda x, w, b, ref=ref: ref(x @ w.T + b),
            samples(lambda rng: [S(real(rng, (2, 3)), real(rng, (4, 3)), real(rng, (4,))),
                                 S(real(rng, (3, 2)), real(rng, (1, 2)), real(rng, (1,)),
                                   layouts=("T", "S"))]),
            ["linear", act.lower()], lazy_prims=("linear_act",), tol32=(1e-5, 1e-5))
    add("nll_loss", lambda m, x, t, **kw: m.nn.functional.nll_loss(x, t, **kw), _nll,
        samples(lambda rng: [S(real(rng, (4, 3)), ints(rng, (4,), 0, 3)),
                             S(real(rng, (5, 2)), ints(rng, (5,), 0, 2), reduction="sum"),
                             S(real(rng, (3, 4)), ints(rng, (3,), 0, 4), layouts=("T",))]),
        ["nll_loss", "index_add", "expand"])
    add("mse_loss", lambda m, x, t, **kw: m.nn.functional.mse_loss(x, t, **kw), _mse,
        samples(lambda rng: [S(real(rng, (2, 3)), real(rng, (2, 3))),
                             S(real(rng, (4,)), real(rng, (4,)), reduction="sum"),
                             S(real(rng, (3, 2)), real(rng, (3, 2)), reduction="none",
                               layouts=("T", "S")),
                             S(real(rng, ()), real(rng, ()))]),
        ["mse_loss"])

    def _bce(x, t, reduction="mean"):
        out = -(t * np.log(x) + (1 - t) * np.log1p(-x))
        return {"mean": np.mean, "sum": np.sum, "none": lambda v: v}[reduction](out)

    def prob(rng, shape):
        return _arr(rng.uniform(0.05, 0.95, shape))
    add("binary_cross_entropy",
        lambda m, x, t, **kw: m.nn.functional.binary_cross_entropy(x, t, **kw), _bce,
        samples(lambda rng: [S(prob(rng, (2, 3)), prob(rng, (2, 3))),
                             S(prob(rng, (4,)), prob(rng, (4,)), reduction="sum"),
                             S(prob(rng, (3, 2)), prob(rng, (3, 2)), reduction="none",
                               layouts=("T", "S")),
                             S(prob(rng, ()), prob(rng, ()))]),
        # the reduction is an op of its own (PyTorch's one node reduces too)
        ["binary_cross_entropy"], torch_grad_fn=False)
    add("bmm", lambda m, a, b: m.bmm(a, b), np.matmul,
        _mat_samples([((2, 2, 3), (2, 3, 2)), ((1, 1, 3), (1, 3, 1))],
                     [(((2, 2, 3), (2, 3, 2)), ("T", "S"))]),
        ["bmm", "permute"], tol32=(1e-5, 1e-5))
    add("dot", lambda m, a, b: m.dot(a, b), np.dot,
        _mat_samples([((3,), (3,)), ((1,), (1,))], [(((3,), (3,)), ("S", "S"))]),
        ["dot", "mul"], tol32=(1e-5, 1e-5))
    add("mv", lambda m, a, b: m.mv(a, b), np.matmul,
        _mat_samples([((2, 3), (3,)), ((1, 1), (1,))], [(((2, 3), (3,)), ("T", "S"))]),
        ["mv", "mm", "view", "permute"], tol32=(1e-5, 1e-5))
    add("matmul", lambda m, a, b: m.matmul(a, b), np.matmul,
        _mat_samples(_matmul_pairs(), [(((2, 3), (3, 2)), ("T", "S")),
                                       (((2, 2, 3), (2, 3, 2)), ("T", "T"))]),
        ["mm", "bmm", "dot", "mv", "view", "expand"], tol32=(1e-5, 1e-5))
    add("matmul_operator", lambda m, a, b: a @ b, np.matmul,
        _mat_samples([((2, 3), (3, 2)), ((2, 2, 3), (3,))]), ["mm"], tol32=(1e-5, 1e-5))

    # -- shape ops
    def shape_samples(*specs):
        """``specs``: (input shape, kwargs[, layout])."""
        def make(rng):
            return [S(real(rng, sp[0]), layouts=sp[2:] or (), **sp[1]) for sp in specs]
        return make

    add("reshape", lambda m, x, shape: m.reshape(x, shape), lambda x, shape: np.reshape(x, shape),
        shape_samples(((2, 3), {"shape": (3, 2)}), ((2, 3), {"shape": (-1,)}),
                      ((), {"shape": (1, 1)}), ((1,), {"shape": ()}),
                      ((2, 3), {"shape": (2, 3)}), ((2, 3), {"shape": (6, 1)}, "T"),
                      ((2, 4), {"shape": (2, 2, 2)}, "S")),
        ["view"])
    add("view", lambda m, x, shape: x.view(shape), lambda x, shape: np.reshape(x, shape),
        shape_samples(((2, 3), {"shape": (6,)}), ((2, 3), {"shape": (3, -1)}),
                      ((), {"shape": (1,)}), ((1, 3, 1), {"shape": (3,)}),
                      ((2, 3), {"shape": (2, 1, 3)}, "S")),
        ["view"])
    add("flatten", lambda m, x, start_dim=0, end_dim=-1: m.flatten(x, start_dim, end_dim),
        lambda x, start_dim=0, end_dim=-1: x.reshape(
            x.shape[:start_dim % max(x.ndim, 1)] + (-1,)
            + x.shape[end_dim % max(x.ndim, 1) + 1:]) if x.ndim else x.reshape(1),
        shape_samples(((2, 3, 2), {}), ((2, 3, 2), {"start_dim": 1}),
                      ((2, 3, 2), {"start_dim": 0, "end_dim": 1}), ((), {}),
                      ((3,), {}), ((2, 3), {}, "T")),
        ["view"])
    add("squeeze", lambda m, x, dim=None: m.squeeze(x) if dim is None else m.squeeze(x, dim),
        lambda x, dim=None: np.squeeze(x, axis=None if dim is None else tuple(
            d for d in np.atleast_1d(dim) if x.shape[d] == 1)),
        shape_samples(((1, 3, 1), {}), ((1, 3, 1), {"dim": 0}), ((1, 3, 1), {"dim": -1}),
                      ((1, 3, 1), {"dim": (0, 2)}), ((1, 3, 1), {"dim": 1}), ((), {}),
                      ((1, 3, 1), {"dim": 2}, "S")),
        ["view"])
    add("unsqueeze", lambda m, x, dim: m.unsqueeze(x, dim), lambda x, dim: np.expand_dims(x, dim),
        shape_samples(((2, 3), {"dim": 0}), ((2, 3), {"dim": -1}), ((2, 3), {"dim": 1}),
                      ((), {"dim": 0}), ((2, 3), {"dim": 1}, "T")),
        ["view"])
    add("permute", lambda m, x, dims: m.permute(x, dims), lambda x, dims: np.transpose(x, dims),
        shape_samples(((2, 3, 2), {"dims": (2, 0, 1)}), ((2, 3), {"dims": (1, 0)}),
                      ((2, 3, 2), {"dims": (-1, 0, 1)}), ((), {"dims": ()}),
                      ((2, 3, 2), {"dims": (1, 2, 0)}, "S")),
        ["permute"])
    add("transpose", lambda m, x, d0, d1: m.transpose(x, d0, d1),
        lambda x, d0, d1: np.swapaxes(x, d0, d1),
        shape_samples(((2, 3, 2), {"d0": 0, "d1": 2}), ((2, 3), {"d0": -1, "d1": -2}),
                      ((3,), {"d0": 0, "d1": 0}), ((2, 3), {"d0": 0, "d1": 1}, "T")),
        ["permute"])
    add("t", lambda m, x: m.t(x), lambda x: x.T,
        shape_samples(((2, 3), {}), ((3,), {}), ((), {}), ((2, 3), {}, "S")), ["permute"])
    add("T", lambda m, x: x.T, lambda x: x.T,
        shape_samples(((2, 3), {}), ((1, 3), {}), ((2, 3), {}, "T")), ["permute"])
    add("expand", lambda m, x, size: x.expand(*size), lambda x, size: np.broadcast_to(
        x, tuple(n if n != -1 else x.shape[i - (len(size) - x.ndim)] for i, n in enumerate(size))),
        shape_samples(((3, 1), {"size": (3, 4)}), ((1,), {"size": (2, 3)}),
                      ((3, 1), {"size": (2, -1, 4)}), ((), {"size": (2,)}),
                      ((2, 3), {"size": (2, 3)}), ((1, 3), {"size": (2, 3)}, "S")),
        ["expand", "sum"])

    def cat_samples(rng):
        x = lambda *s: real(rng, s)  # noqa: E731
        return [S(x(2, 3), x(1, 3), dim=0), S(x(2, 1), x(2, 3), dim=1),
                S(x(2, 3), x(2, 3), x(2, 2), dim=-1), S(x(3), x(2), dim=0),
                S(x(2, 3), x(1, 3), dim=0, layouts=("T", "S")),
                S(x(2, 3), x(1, 3), dim=0, dtypes={1: "float64"}, out_dtype="float64",
                  name="promote")]

    add("cat", lambda m, *xs, dim: m.cat(xs, dim), lambda *xs, dim: np.concatenate(xs, dim),
        cat_samples, ["cat", "index"])

    def stack_samples(rng):
        x = lambda *s: real(rng, s)  # noqa: E731
        return [S(x(2, 3), x(2, 3), dim=0), S(x(2, 3), x(2, 3), x(2, 3), dim=1),
                S(x(2, 3), x(2, 3), dim=-1), S(x(), x(), dim=0),
                S(x(2, 3), x(2, 3), dim=2, layouts=("T", "S")),
                S(x(3), x(3), dim=0, dtypes={1: "float64"}, out_dtype="float64", name="promote")]

    add("stack", lambda m, *xs, dim: m.stack(xs, dim), lambda *xs, dim: np.stack(xs, dim),
        stack_samples, ["stack", "index"])

    def multi_samples(specs):
        def make(rng):
            return [S(real(rng, shape), layouts=lay, **kw) for shape, kw, lay in specs]
        return make

    add("split", lambda m, x, split, dim=0, pick=None: _pick(m.split(x, split, dim), pick),
        _split_ref,
        multi_samples([((5, 2), {"split": 2}, ()), ((5, 2), {"split": [1, 4]}, ()),
                       ((2, 5), {"split": 3, "dim": 1}, ()), ((5, 2), {"split": 5}, ()),
                       ((5, 2), {"split": 2, "pick": 1}, ()),
                       ((2, 5), {"split": [2, 3], "dim": -1}, ("T",))]),
        ["split", "cat"])
    add("chunk", lambda m, x, chunks, dim=0, pick=None: _pick(m.chunk(x, chunks, dim), pick),
        _chunk_ref,
        multi_samples([((5, 2), {"chunks": 3}, ()), ((2, 4), {"chunks": 2, "dim": 1}, ()),
                       ((3, 2), {"chunks": 5}, ()), ((5, 2), {"chunks": 2, "pick": 0}, ()),
                       ((5, 2), {"chunks": 2}, ("S",)), ((2, 3), {"chunks": 1}, ())]),
        ["split"])
    add("unbind", lambda m, x, dim=0, pick=None: _pick(m.unbind(x, dim), pick), _unbind_ref,
        multi_samples([((3, 2), {}, ()), ((3, 2), {"dim": 1}, ()), ((2,), {}, ()),
                       ((3, 2), {"pick": 1}, ()), ((3, 2), {"dim": -1}, ("T",)),
                       ((1, 3), {}, ())]),
        ["unbind", "stack"])

    # -- indexing
    def getitem_ref(x, *idx, key):
        return x[_key(key, idx)]

    def getitem_op(m, x, *idx, key):
        return x[_key(key, idx)]

    add("getitem_basic", getitem_op, getitem_ref, _getitem_basic, ["index", "index_add"])
    add("getitem_advanced", getitem_op, getitem_ref, _getitem_advanced, ["index", "index_add"])
    add("getitem_bool", getitem_op, getitem_ref, _getitem_bool, ["index", "index_add"])
    add("setitem", lambda m, x, v, *idx, key: _setitem(x, key, v, idx),
        lambda x, v, *idx, key: _setitem(x, key, v, idx), _setitem_samples,
        ["clone", "index", "index_put", "expand"])
    add("setitem_scalar", lambda m, x, *idx, key, value: _setitem(x, key, value, idx),
        lambda x, *idx, key, value: _setitem(x, key, value, idx), _setitem_scalar_samples,
        ["clone", "index", "index_put", "expand"])
    add("take", lambda m, x, idx: m.take(x, idx), lambda x, idx: np.take(x, idx),
        samples(lambda rng: [S(real(rng, (3, 4)), np.array([[0, 5, 5], [-1, 11, 2]])),
                             S(real(rng, (3, 4)), np.array(7)), S(real(rng, ()), np.array([0, 0])),
                             S(real(rng, (3, 4)), np.array([1, 4, 6]), layouts=("T",))]),
        ["take", "index_add"])
    add("narrow", lambda m, x, dim, start, length: m.narrow(x, dim, start, length),
        lambda x, dim, start, length: np.take(
            x, np.arange(start % x.shape[dim], start % x.shape[dim] + length), axis=dim),
        shape_samples(((4, 3), {"dim": 0, "start": 1, "length": 2}),
                      ((4, 3), {"dim": -1, "start": -2, "length": 2}),
                      ((4, 3), {"dim": 1, "start": 0, "length": 0}),
                      ((4, 3), {"dim": 0, "start": 0, "length": 4}, "T")),
        ["index", "index_add"])
    add("select", lambda m, x, dim, index: m.select(x, dim, index),
        lambda x, dim, index: np.take(x, index, axis=dim),
        shape_samples(((3, 4), {"dim": 1, "index": -1}), ((3, 4), {"dim": 0, "index": 2}),
                      ((4,), {"dim": 0, "index": 1}), ((3, 4), {"dim": 1, "index": 0}, "S")),
        ["index", "index_add"])
    add("index_select", lambda m, x, idx, dim: m.index_select(x, dim, idx),
        lambda x, idx, dim: np.take(x, idx, axis=dim),
        samples(lambda rng: [S(real(rng, (3, 4)), np.array([2, 0, 2]), dim=0),
                             S(real(rng, (3, 4)), np.array([3]), dim=1),
                             S(real(rng, (3, 4)), np.array([1, 0]), dim=-1, layouts=("T",))]),
        ["index", "index_add"])

    # -- nn.functional ops with primitives of their own
    def conv_samples(rng):
        x = lambda *s: real(rng, s)  # noqa: E731
        return [S(x(1, 2, 4, 4), x(3, 2, 2, 2), x(3)),
                S(x(2, 1, 3, 3), x(2, 1, 2, 2), name="no_bias"),
                S(x(1, 2, 4, 4), x(2, 2, 3, 3), x(2), stride=2, padding=1),
                S(x(1, 1, 5, 5), x(1, 1, 2, 2), dilation=2, stride=(2, 1)),
                S(x(1, 4, 3, 3), x(2, 2, 2, 2), x(2), groups=2),
                S(x(2, 3, 3), x(2, 2, 2, 2), name="unbatched"),
                S(x(1, 2, 3, 3), x(2, 2, 2, 2), layouts=("T", "S"), name="noncontig")]

    pool_samples = samples(lambda rng: [
        S(distinct(rng, (2, 3, 6, 6)), kernel_size=2),
        S(distinct(rng, (1, 2, 7, 6)), kernel_size=3, stride=2, padding=1),
        S(distinct(rng, (1, 1, 7, 7)), kernel_size=2, stride=1, dilation=2),
        S(distinct(rng, (2, 5, 5)), kernel_size=2, stride=2, ceil_mode=True, name="unbatched"),
        S(distinct(rng, (1, 2, 6, 6)), kernel_size=2, layouts=("T",), name="noncontig")])
    add("max_pool2d", lambda m, x, **kw: m.nn.functional.max_pool2d(x, **kw), _max_pool_ref,
        pool_samples, ["max_pool2d", "max_pool2d_scatter"])
    add("max_pool2d_backward", _max_pool_backward,
        lambda x, g, **kw: _max_pool_ref(x, g=g, **kw),
        samples(lambda rng: [
            S(distinct(rng, (2, 3, 6, 6)), real(rng, (2, 3, 3, 3)), kernel_size=2),
            S(distinct(rng, (1, 2, 7, 6)), real(rng, (1, 2, 4, 3)), kernel_size=3, stride=2,
              padding=1)]),
        ["max_pool2d", "max_pool2d_scatter", "max_pool2d_gather"])
    add("conv2d", lambda m, x, w, *b, **kw: m.nn.functional.conv2d(x, w, *b, **kw), _conv2d_ref,
        conv_samples, ["im2col", "col2im", "mm", "view", "permute", "add"],
        tol32=(1e-5, 1e-5), torch_grad_fn=False)
    add("gelu", lambda m, x, **kw: m.nn.functional.gelu(x, **kw), _gelu_ref,
        both(unary(real), samples(lambda rng: [S(real(rng, (2, 3)), approximate="tanh"),
                                               S(real(rng, ()) * 4, approximate="tanh"),
                                               S(np.array([-10.0, -5.0, 5.0, 10.0]),
                                                 name="tails")])),
        ["erf", "mul", "add", "exp"], torch_grad_fn=False)

    # -- copies and casts
    add("detach", lambda m, x: x.detach(), np.copy, unary(real), [], differentiable=False,
        lazy_prims=("alias",))
    add("clone", lambda m, x: m.clone(x), np.copy, unary(real), ["clone"])
    add("contiguous", lambda m, x: x.contiguous(), np.copy,
        samples(lambda rng: [S(real(rng, (2, 3)), layouts=("T",)),
                             S(real(rng, (2, 3)), layouts=("S",))]), ["clone"])
    add("to", lambda m, x, dtype: x.to(getattr(m, dtype)), _to_ref, _to_samples, ["to_copy"])
    add("double", lambda m, x: x.double(), lambda x: x, unary(real), ["to_copy"],
        out_dtype="float64")
    add("float", lambda m, x: x.float(), lambda x: x,
        samples(lambda rng: [S(real(rng, (2, 3)), grad=False),
                             S(real(rng, ()), grad=False),
                             S(ints(rng, (3,)), name="int")]),
        ["to_copy"], out_dtype="float32")

    # -- comparisons, logic, integer division (no gradients)
    for name, np_fn in (("eq", np.equal), ("ne", np.not_equal), ("lt", np.less),
                        ("le", np.less_equal), ("gt", np.greater), ("ge", np.greater_equal)):
        add(name, _cmp_op(name), _cmp_ref(np_fn), _cmp_samples, [name],
            differentiable=False, out_dtype="bool")
    for name, np_fn in (("logical_and", np.logical_and), ("logical_or", np.logical_or),
                        ("logical_xor", np.logical_xor)):
        add(name, lambda m, x, y, name=name: getattr(m, name)(x, y),
            np_fn, _logic_samples, [name], differentiable=False, out_dtype="bool")

    def intdiv_samples(rng):
        b = away(rng, (3,), 0.5)
        return [S(_quotients(rng, (2, 3), b), b),
                S(_quotients(rng, (3,), b), b, layouts=("S", None)),
                S(_quotients(rng, (), 0.75), 0.75 * np.ones(()), name="0d"),
                S(_quotients(rng, (2, 3), 1.5), other=1.5),
                S(ints(rng, (2, 3), -7, 8), np.array([3, -2, 5]), out_dtype="int64", name="int"),
                S(ints(rng, (2, 3), -7, 8), other=-3, out_dtype="int64", name="int_scalar")]

    def intdiv_op(name):
        return lambda m, x, *y, other=None: getattr(m, name)(x, y[0] if y else other)

    add("floor_divide", intdiv_op("floor_divide"), _cmp_ref(np.floor_divide), intdiv_samples,
        ["floor_divide"], differentiable=False)
    add("remainder", intdiv_op("remainder"), _cmp_ref(np.remainder), intdiv_samples,
        ["remainder"], tol32=(1e-5, 1e-5))
    add("fmod", intdiv_op("fmod"), _cmp_ref(np.fmod), intdiv_samples, ["fmod"],
        tol32=(1e-5, 1e-5))
    return e


OPS = _entries()
BY_NAME = {op.name: op for op in OPS}
assert len(BY_NAME) == len(OPS), "duplicate OpInfo names"
for _op in OPS:
    _names = [s.name for s in _op.samples]
    assert len(set(_names)) == len(_names), f"duplicate sample names in {_op.name}: {_names}"


# --- building inputs ------------------------------------------------------------------

def _view_of_bigger(m, a, dtype, layout):
    """``a`` as a non-contiguous view of a bigger tensor, made with ``m``'s own ops."""
    if layout == "T":
        t = m.tensor(np.ascontiguousarray(np.swapaxes(a, -1, -2)), dtype=dtype).transpose(-1, -2)
    elif layout == "S":
        buf = np.full(a.shape[:-1] + (2 * a.shape[-1],), np.nan)
        buf[..., ::2] = a
        t = m.tensor(buf, dtype=dtype)[..., ::2]
    else:
        raise ValueError(layout)
    t = t.detach()
    assert not t.is_contiguous(), f"layout {layout} of shape {a.shape} is contiguous"
    return t


def make_args(m, sample, dtype, requires_grad=False):
    """The sample's arguments as ``m`` tensors; float ones in ``dtype`` (or the sample's
    per-argument dtype), requiring grad when asked."""
    out = []
    for i, a in enumerate(sample.args):
        if a.dtype.kind != "f":
            out.append(m.tensor(a))
            continue
        d = getattr(m, sample.dtypes.get(i, dtype))
        layout = sample.layout(i)
        t = m.tensor(a, dtype=d) if layout is None else _view_of_bigger(m, a, d, layout)
        out.append(t.requires_grad_() if requires_grad else t)
    return out


def ref_args(sample, dtype):
    """The sample's arrays as the reference sees them: float ones rounded to the dtype the
    op receives, then widened to float64, so only the op's own rounding counts."""
    return [a.astype(sample.dtypes.get(i, dtype)).astype(np.float64) if a.dtype.kind == "f"
            else a for i, a in enumerate(sample.args)]


def as_outputs(result):
    """An op's result (a tensor, or a tuple/list of them) as a tuple."""
    return tuple(result) if isinstance(result, (tuple, list)) else (result,)
