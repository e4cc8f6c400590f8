"""Reductions (sum, mean, prod, amax/amin, argmax/argmin, max/min, var/std, logsumexp),
``sum_to_size`` (the inverse of broadcasting) and the softmax family."""
import builtins
import collections
import numpy as np
import warnings

from .. import dtypes as dt
from .. import lazy as _lazy
from ..core.shapes import keep_shape as _keep_shape
from ..kernels.cpu import elementwise as ew
from ..kernels.cpu import reduce as rd
from ..runtime.backends import cpu
from ..tensor import Tensor
from ..tensor import _dim
from ..tensor import arange
from .args import _C_NAMES, _check_tensor, _dims, _not_implemented
from .dispatch import apply
from .elementwise import _F32, _F64, eq, exp, maximum, minimum, ne, where
from .registry import _reduce_meta, _same_meta, defop
from .shape import _shape_tuple, expand, permute, reshape, unsqueeze
from ..kernels.cpu import interpreter as interp

def _expand_grad(g, c):
    """Broadcast a reduction's output gradient back over the reduced dims."""
    shape, dims, keepdim = c._inputs_meta[0][0], c.attrs["dims"], c.attrs["keepdim"]
    if not keepdim:
        g = reshape(g, _keep_shape(shape, dims))
    return expand(g, shape)


def _reduce_forward(code):
    def forward(x, dims, keepdim, dtype):
        out = cpu.reduce(code, x, dims, dtype)
        return out.reshape(_keep_shape(x.shape, dims)) if keepdim else out
    return forward


def _count_of(shape, dims):
    """The number of elements reduced (0 gives NaN means, as in PyTorch)."""
    n = int(np.prod([shape[d] for d in dims]))
    return float(n) if n else float("nan")


def _count(c):
    shape, dims = c._inputs_meta[0][0], c.attrs["dims"]
    return int(np.prod([shape[d] for d in dims]))


def _amax_vjp(c, g):
    x, out = c.saved(0), c.saved("out")
    if not c.attrs["keepdim"]:
        out = reshape(out, _keep_shape(x.shape, c.attrs["dims"]))
    mask = eq(x, out).to(x.dtype)
    return (_expand_grad(g, c) * mask / sum(mask, c.attrs["dims"], keepdim=True),)


def _prod_vjp(c, g):
    """d prod / d x_i is the product of the other elements, built without dividing by x
    (exact with zeros, and differentiable again): move the reduced dims last, lay each
    slice out n times with the diagonal set to 1, and multiply along it."""
    x, dims = c.saved(0), c.attrs["dims"]
    kept = [d for d in range(x.ndim) if d not in dims]
    moved = permute(x, kept + list(dims)) if x.ndim else x
    lead = tuple(x.shape[d] for d in kept)
    n = int(np.prod([x.shape[d] for d in dims]))
    rows = reshape(moved, lead + (1, n))
    eye_ = Tensor._make(np.eye(n, dtype=np.bool_))
    others = _reduction(_PROD, where(eye_, 1.0, expand(rows, lead + (n, n))), [len(lead) + 1],
                        False, x.dtype, ("ProdBackward1",) * 2)
    shape_moved = lead + tuple(x.shape[d] for d in dims)
    others = reshape(others, shape_moved)
    if x.ndim:
        others = permute(others, tuple(np.argsort(kept + list(dims))))
    return (_expand_grad(g, c) * others,)


def _lower_reduce(code, scale=None):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        if not dims:
            out = lw.new_out(p)
            lw.elementwise(interp.COPY, 0, out, p.shape, [(off, shape, None)])
            return out
        res = lw.reduce(code, off, shape, dims, p if scale is None else None)
        if scale is not None:
            n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
            out = lw.new_out(p)
            lw.elementwise(interp.BINARY, ew.DIV, out, p.shape,
                           [(res, p.shape, None), (lw.constant(n if n else np.nan), (), None)])
            return out
        return res
    return lower


_SUM = defop("sum", _reduce_forward(rd.SUM), lambda c, g: (_expand_grad(g, c),),
             meta=_reduce_meta, lower=_lower_reduce(rd.SUM))
def _mean_forward(x, dims, keepdim, dtype):
    with np.errstate(invalid="ignore"):  # an empty mean is NaN, quietly, as in PyTorch
        return _reduce_forward(rd.SUM)(x, dims, keepdim, dtype) / _count_of(x.shape, dims)


_MEAN = defop("mean", _mean_forward,
    lambda c, g: (_expand_grad(g, c) / _count(c),), meta=_reduce_meta,
              lower=_lower_reduce(rd.SUM, scale=True))
_PROD = defop("prod", _reduce_forward(rd.PROD), _prod_vjp, (0, "out"), meta=_reduce_meta,
              lower=_lower_reduce(rd.PROD))
_AMAX = defop("amax", _reduce_forward(rd.MAX), _amax_vjp, (0, "out"), meta=_reduce_meta,
              lower=_lower_reduce(rd.MAX))
_AMIN = defop("amin", _reduce_forward(rd.MIN), _amax_vjp, (0, "out"), meta=_reduce_meta,
              lower=_lower_reduce(rd.MIN))


def _reduction(op, input, dim, keepdim, dtype, names):
    dims = _dims(dim, input.ndim)
    return apply(op, [input], names[0] if dim is None else names[1],
                 dims=dims, keepdim=keepdim, dtype=dtype.np)


_ALL_DIMS = [tuple(range(n)) for n in range(65)]


def _reduce_all(op, input, name):
    """Lazy mode's lane for ``input.sum()`` / ``input.mean()`` of a float tensor: the op as
    the general path would record it, or None."""
    if _lazy._STATE["lazy"] and isinstance(input, Tensor):
        d = input._npdtype
        if d is _F32 or d is _F64:
            lanes = _REDUCE_ALL[d is _F64]
            lane = lanes.get(len(input._shape))
            if lane is None:  # the attributes and their key (the dtype by name: a numpy
                # dtype's hash costs 50 ns), made once: nothing writes them
                attrs = {"dims": _ALL_DIMS[len(input._shape)], "keepdim": False, "dtype": d}
                lane = lanes[len(input._shape)] = (
                    attrs, tuple((k, v.str if k == "dtype" else v) for k, v in attrs.items()))
            return _lazy.record(op, [input], lane[0], name, lane[1])
    return None


_REDUCE_ALL = ({}, {})  # float32's and float64's lanes by rank


def sum(input, dim=None, keepdim=False, dtype=None):
    """Sum over ``dim`` (all dims when ``None``); ints and bools sum to int64."""
    if dim is None and dtype is None and not keepdim:
        out = _reduce_all(_SUM, input, "SumBackward0")
        if out is not None:
            return out
    _check_tensor(input, "sum")
    d = dt.to_dtype(dtype) if dtype is not None else (
        input.dtype if input.dtype.is_floating_point else dt.int64)
    return _reduction(_SUM, input, dim, keepdim, d, ("SumBackward0", "SumBackward1"))


def mean(input, dim=None, keepdim=False, dtype=None):
    """Mean over ``dim`` (all dims when ``None``); floating inputs only."""
    if dim is None and dtype is None and not keepdim:
        out = _reduce_all(_MEAN, input, "MeanBackward0")
        if out is not None:
            return out
    _check_tensor(input, "mean")
    d = dt.to_dtype(dtype) if dtype is not None else input.dtype
    if not d.is_floating_point:
        raise RuntimeError("mean(): could not infer output dtype. Input dtype must be either a "
                           f"floating point or complex dtype. Got: {_C_NAMES[d.name]}")
    x = input if input.dtype is d else input.to(d)
    return _reduction(_MEAN, x, dim, keepdim, d, ("MeanBackward0", "MeanBackward1"))


def prod(input, dim=None, keepdim=False, dtype=None):
    """Product over ``dim`` (all dims when ``None``)."""
    _check_tensor(input, "prod")
    d = dt.to_dtype(dtype) if dtype is not None else (
        input.dtype if input.dtype.is_floating_point else dt.int64)
    if dim is not None and not isinstance(dim, int):
        raise TypeError("prod(): argument 'dim' must be int")
    return _reduction(_PROD, input, dim, keepdim, d, ("ProdBackward0", "ProdBackward1"))


def _check_nonempty(input, name, dims):
    if input.numel() == 0 and (dims is None or builtins.any(input.shape[d] == 0 for d in dims)):
        raise (IndexError if name.startswith("arg") else RuntimeError)(
            f"{name}(): Expected reduction dim to be specified for input.numel() == 0."
            + ("" if name.startswith("arg") else
               " Specify the reduction dim with the 'dim' argument."))


def amax(input, dim=(), keepdim=False):
    """Maximum over ``dim``; the gradient is shared evenly among ties."""
    dims = _dims(dim if dim != () else None, input.ndim)
    _check_nonempty(input, "amax", dims)
    return apply(_AMAX, [input], "AmaxBackward0", dims=dims, keepdim=keepdim,
                 dtype=input.dtype.np)


def amin(input, dim=(), keepdim=False):
    """Minimum over ``dim``; the gradient is shared evenly among ties."""
    dims = _dims(dim if dim != () else None, input.ndim)
    _check_nonempty(input, "amin", dims)
    return apply(_AMIN, [input], "AminBackward0", dims=dims, keepdim=keepdim,
                 dtype=input.dtype.np)


_ARGMAX = defop("argmax", lambda x, dim, keepdim, code: _arg_forward(x, dim, keepdim, code))


def _arg_forward(x, dim, keepdim, code):
    out = cpu.arg_reduce(code, x, dim)
    if keepdim:
        out = out.reshape((1,) * x.ndim if dim is None else _keep_shape(x.shape, [dim]))
    return out


def argmax(input, dim=None, keepdim=False):
    """Index of the maximum (over the flattened tensor when ``dim`` is None)."""
    dim = None if dim is None else _dim(dim, input.ndim)
    _check_nonempty(input, "argmax", None if dim is None else [dim])
    if input.ndim == 0:
        return Tensor._make(np.array(0, np.int64))
    return apply(_ARGMAX, [input], "", dim=dim, keepdim=keepdim, code=rd.ARGMAX)


def argmin(input, dim=None, keepdim=False):
    """Index of the minimum (over the flattened tensor when ``dim`` is None)."""
    dim = None if dim is None else _dim(dim, input.ndim)
    _check_nonempty(input, "argmin", None if dim is None else [dim])
    if input.ndim == 0:
        return Tensor._make(np.array(0, np.int64))
    return apply(_ARGMAX, [input], "", dim=dim, keepdim=keepdim, code=rd.ARGMIN)


class _ReturnType(collections.namedtuple("return_type", ["values", "indices"])):
    """``(values, indices)`` printed as ``jitgrad.return_types.max(...)``, as PyTorch does."""

    __slots__ = ()
    _name = "max"

    def __repr__(self):
        return (f"jitgrad.return_types.{self._name}(\nvalues={self.values!r},\n"
                f"indices={self.indices!r})")


class _Max(_ReturnType):
    __slots__ = ()


class _Min(_ReturnType):
    __slots__ = ()
    _name = "min"


def _MaxMin(values, indices, code=None):
    return (_Min if code == rd.ARGMIN else _Max)(values, indices)

_SELECT_MAX = defop(
    "max_dim", lambda x, dim, keepdim, code: _select_forward(x, dim, keepdim, code),
    lambda c, g: (_one_hot_grad(c, g),))


def _select_forward(x, dim, keepdim, code):
    idx = cpu.arg_reduce(code, x, dim)
    vals = np.take_along_axis(x, np.expand_dims(idx, dim), dim)
    return vals if keepdim else vals.reshape(idx.shape)


def _one_hot_grad(c, g):
    shape, dim = c._inputs_meta[0][0], c.attrs["dim"]
    idx = c.metadata["indices"]
    if not c.attrs["keepdim"]:
        g, idx = unsqueeze(g, dim), unsqueeze(idx, dim)
    pos = arange(shape[dim]).reshape([-1 if i == dim else 1 for i in range(len(shape))])
    return where(eq(pos, idx), expand(g, shape), 0.0)


def _max_min(input, dim, keepdim, other, code, name):
    if isinstance(dim, Tensor):
        return (maximum if code == rd.ARGMAX else minimum)(input, dim)
    if dim is None:
        _check_nonempty(input, name, None)
        return apply(_AMAX if code == rd.ARGMAX else _AMIN, [input],
                     "MaxBackward1" if code == rd.ARGMAX else "MinBackward1",
                     dims=list(range(input.ndim)), keepdim=False, dtype=input.dtype.np)
    dim = _dim(dim, input.ndim)
    _check_nonempty(input, name, [dim])
    if input.ndim == 0:
        return _MaxMin(input.clone(), Tensor._make(np.array(0, np.int64)), code)
    values = apply(_SELECT_MAX, [input], "MaxBackward0" if code == rd.ARGMAX else "MinBackward0",
                   dim=dim, keepdim=keepdim, code=code)
    indices = Tensor._make(cpu.arg_reduce(code, input._data, dim))
    if keepdim:
        indices = Tensor._make(np.expand_dims(indices._data, dim))
    if values.grad_fn is not None:
        values.grad_fn.metadata["indices"] = indices
    return _MaxMin(values, indices, code)


def max(input, dim=None, keepdim=False):
    """The maximum value, or with ``dim`` a ``(values, indices)`` pair; ``max(a, b)`` is ``maximum``."""
    return _max_min(input, dim, keepdim, None, rd.ARGMAX, "max")


def min(input, dim=None, keepdim=False):
    """The minimum value, or with ``dim`` a ``(values, indices)`` pair; ``min(a, b)`` is ``minimum``."""
    return _max_min(input, dim, keepdim, None, rd.ARGMIN, "min")


def all(input, dim=None, keepdim=False):
    """True where every element (along ``dim``) is nonzero."""
    return eq(amin(ne(input, 0).to(dt.int64), () if dim is None else dim, keepdim), 1)


def any(input, dim=None, keepdim=False):
    """True where some element (along ``dim``) is nonzero."""
    return eq(amax(ne(input, 0).to(dt.int64), () if dim is None else dim, keepdim), 1)


def _correction(unbiased, correction):
    if correction is not None:
        return correction
    return 1 if unbiased is None or unbiased else 0


def _check_float_var(input):
    if not input.dtype.is_floating_point:
        raise RuntimeError("std and var only support floating point and complex dtypes")


def _warn_dof(name, n, correction):
    if n - correction <= 0:
        warnings.warn(f"{name}(): degrees of freedom is <= 0. Correction should be strictly less "
                      "than the reduction factor (input numel divided by output numel).",
                      UserWarning, stacklevel=3)


def _spread(op, name, input, dim, unbiased, keepdim, correction):
    """``var`` or ``std`` (``op``): the denominator is the count less the correction."""
    _check_float_var(input)
    dims = _dims(dim, input.ndim)
    c = _correction(unbiased, correction)
    n = int(np.prod([input.shape[d] for d in dims]))
    _warn_dof(name, n, c)
    return apply(op, [input], name.capitalize() + "Backward0", dims=dims, keepdim=keepdim,
                 denom=builtins.max(n - c, 0))


def var(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Variance over ``dim`` with Bessel's correction by default."""
    return _spread(_VAR, "var", input, dim, unbiased, keepdim, correction)


def std(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    """Standard deviation over ``dim`` with Bessel's correction by default."""
    return _spread(_STD, "std", input, dim, unbiased, keepdim, correction)


def _var_forward(x, dims, keepdim, denom):
    n = builtins.max(1, int(np.prod([x.shape[d] for d in dims])))
    mu = cpu.binary(ew.DIV, cpu.reduce(rd.SUM, x, dims, x.dtype).reshape(_keep_shape(x.shape, dims)),
                  np.array(n, x.dtype), x.dtype)
    centred = cpu.binary(ew.SUB, x, mu, x.dtype)
    sq = cpu.binary(ew.MUL, centred, centred, x.dtype)
    total = _reduce_forward(rd.SUM)(sq, dims, keepdim, x.dtype)
    return cpu.binary(ew.DIV, total, np.array(denom, x.dtype), x.dtype)


def _centred(c):
    x, dims = c.saved(0), c.attrs["dims"]
    return x - mean(x, dims, keepdim=True)


def _lower_var(sqrt):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        dims = p.attrs["dims"]
        keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
        n = int(np.prod([shape[d] for d in dims], dtype=np.int64))
        total = lw.reduce(rd.SUM, off, shape, dims)
        mu = lw.alloc(np.prod(keep))
        lw.elementwise(interp.BINARY, ew.DIV, mu, keep, [(total, keep, None),
                                                         (lw.constant(builtins.max(n, 1)), (), None)])
        centred = lw.alloc(np.prod(shape))
        lw.elementwise(interp.BINARY, ew.SUB, centred, shape, [(off, shape, None), (mu, keep, None)])
        lw.elementwise(interp.BINARY, ew.MUL, centred, shape, [(centred, shape, None),
                                                               (centred, shape, None)])
        sq = lw.reduce(rd.SUM, centred, shape, dims)
        out = lw.new_out(p)
        lw.elementwise(interp.BINARY, ew.DIV, out, p.shape, [(sq, p.shape, None),
                                                             (lw.constant(p.attrs["denom"]), (), None)])
        if sqrt:
            lw.elementwise(interp.UNARY, ew.SQRT, out, p.shape, [(out, p.shape, None)])
        return out
    return lower


_VAR = defop("var", _var_forward,
             lambda c, g: (_expand_grad(g, c) * 2 * _centred(c) / c.attrs["denom"],), (0,),
             meta=_reduce_meta, lower=_lower_var(False))
_STD = defop("std", lambda x, **a: cpu.unary(ew.SQRT, _var_forward(x, **a)),
             lambda c, g: (_expand_grad(where(c.saved("out") == 0, 0.0, g / c.saved("out")), c)
                           * _centred(c) / c.attrs["denom"],), (0, "out"), meta=_reduce_meta,
             lower=_lower_var(True))


def var_mean(input, dim=None, unbiased=None, keepdim=False, *, correction=None):
    return (var(input, dim, unbiased, keepdim, correction=correction),
            mean(input, dim, keepdim))


def _lse_forward(x, dims, keepdim):
    keep = _keep_shape(x.shape, dims)
    m = cpu.reduce(rd.MAX, x, dims, x.dtype).reshape(keep)
    m = np.where(np.isfinite(m), m, 0).astype(x.dtype)
    shifted = cpu.unary(ew.EXP, cpu.binary(ew.SUB, x, m, x.dtype))
    s = cpu.reduce(rd.SUM, shifted, dims, x.dtype).reshape(keep)
    out = cpu.binary(ew.ADD, cpu.unary(ew.LOG, s), m, x.dtype)
    return out if keepdim else out.reshape(tuple(n for i, n in enumerate(x.shape)
                                                 if i not in dims))


def _lse_vjp(c, g):
    x, out = c.saved(0), c.saved("out")
    if not c.attrs["keepdim"]:
        out = reshape(out, _keep_shape(x.shape, c.attrs["dims"]))
    return (_expand_grad(g, c) * exp(x - out),)


def _lower_logsumexp(lw, p):
    (x,) = p.inputs
    off, shape = lw.operand(x)
    dims = p.attrs["dims"]
    keep = tuple(1 if i in dims else s for i, s in enumerate(shape))
    m = lw.reduce(rd.MAX, off, shape, dims)
    lw.elementwise(interp.UNARY, ew.FINITE_OR_ZERO, m, keep, [(m, keep, None)])
    shifted = lw.alloc(np.prod(shape))
    lw.elementwise(interp.BINARY, ew.SUB, shifted, shape, [(off, shape, None), (m, keep, None)])
    e = lw.alloc(np.prod(shape))  # (not in place: LLVM leaves such a loop unvectorised)
    lw.elementwise(interp.UNARY, ew.EXP, e, shape, [(shifted, shape, None)])
    s = lw.reduce(rd.SUM, e, shape, dims)
    lw.elementwise(interp.UNARY, ew.LOG, s, keep, [(s, keep, None)])
    out = lw.new_out(p)
    lw.elementwise(interp.BINARY, ew.ADD, out, keep, [(s, keep, None), (m, keep, None)])
    return out


_LOGSUMEXP = defop("logsumexp", _lse_forward, _lse_vjp, (0, "out"), meta=_reduce_meta,
                   lower=_lower_logsumexp)


def logsumexp(input, dim, keepdim=False):
    """``log(sum(exp(input), dim))`` computed without overflow."""
    x = input if input.dtype.is_floating_point else input.to(dt.get_default_dtype())
    return apply(_LOGSUMEXP, [x], "LogsumexpBackward0", dims=_dims(dim, x.ndim),
                 keepdim=keepdim)


def sum_to_size(input, *size):
    """Sum ``input`` down to ``size`` (the inverse of broadcasting it there)."""
    shape = _shape_tuple(size)
    lead = input.ndim - len(shape)
    dims = list(range(lead)) + [lead + i for i, n in enumerate(shape)
                                if n == 1 and input.shape[lead + i] != 1]
    if not dims:
        return input
    out = sum(input, dims, keepdim=True)
    return reshape(out, shape) if lead else out


def _lower_softmax(log):
    def lower(lw, p):
        (x,) = p.inputs
        off, shape = lw.operand(x)
        shape = shape or (1,)  # a 0-d tensor is one row of one element
        d = p.attrs["dim"]
        a = int(np.prod(shape[:d], dtype=np.int64))
        b = int(np.prod(shape[d + 1:], dtype=np.int64))
        out = lw.new_out(p)
        if a * b * shape[d]:
            lw.row(interp.SOFTMAX, int(log), out, off, dims=(a, shape[d], b, 1))
        return out
    return lower


_SOFTMAX = defop("softmax", lambda x, dim: cpu.softmax(x, dim, False),
                 lambda c, g: (c.saved("out") * (g - sum(g * c.saved("out"), c.attrs["dim"],
                                                           keepdim=True)),), ("out",),
                 meta=_same_meta, lower=_lower_softmax(False))
_LOG_SOFTMAX = defop("log_softmax", lambda x, dim: cpu.softmax(x, dim, True),
                     lambda c, g: (g - exp(c.saved("out")) * sum(g, c.attrs["dim"],
                                                                 keepdim=True),), ("out",),
                     meta=_same_meta, lower=_lower_softmax(True))


def _softmax(op, input, dim, dtype, name, kernel):
    if dim is None:
        raise TypeError(f"{name}() missing required argument 'dim' (jitgrad, unlike PyTorch's "
                        "deprecated implicit choice, needs it)")
    if dtype is not None:
        input = input.to(dtype)
    if not input.dtype.is_floating_point:
        raise _not_implemented(kernel, input.dtype)
    grad_name = "SoftmaxBackward0" if op is _SOFTMAX else "LogSoftmaxBackward0"
    return apply(op, [input], grad_name, dim=_dim(dim, input.ndim))


def softmax(input, dim=None, dtype=None):
    """``exp(x) / sum(exp(x), dim)``, computed stably."""
    return _softmax(_SOFTMAX, input, dim, dtype, "softmax", "softmax_lastdim_kernel_impl")


def log_softmax(input, dim=None, dtype=None):
    """``x - logsumexp(x, dim)``, computed stably."""
    return _softmax(_LOG_SOFTMAX, input, dim, dtype, "log_softmax",
                    "log_softmax_lastdim_kernel_impl")
